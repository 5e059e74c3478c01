"""Baseline-H (Hjelm et al. 2019; paper S Table 2, PAPER.md §2.3): feature extractor g, classifiers.

Encoder front, BatchNorm + ReLU between layers::

    Conv(in_chans -> 64, 4x4, s2, p1) -> Conv(64 -> 128) -> Conv(128 -> 256)  # 28->14->7->3, 32->16->8->4
    flatten (256*3*3 = 2304 for 28x28, 256*4*4 = 4096 for 32x32)
    Linear(-> 1024) -> BN1d -> ReLU -> Linear(1024 -> feature_dim = 64)

Registered: ``baseline-h-encoder`` (the front), ``baseline-h`` (front + MLP head 64 -> 200 -> K, the paper's
fully-supervised reference), ``baseline-h-linear`` (front + linear head).
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from robustmi.errors import ModelError
from robustmi.models.heads import Classifier, create_head
from robustmi.models.layers import Normalize, to_pair
from robustmi.models.registry import register_model


def _conv_block(cin: int, cout: int) -> nn.Sequential:
    """Conv 4x4 stride 2 pad 1 (no bias: BN follows) -> BN -> ReLU; halves H and W (floor).

    The ReLU is not in-place: a layer tap on the BN must see BN's own output, not the rectified one.
    """
    return nn.Sequential(
        nn.Conv2d(cin, cout, kernel_size=4, stride=2, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(),
    )


def _conv_out(size: int) -> int:
    """Spatial size after one 4x4/s2/p1 conv."""
    return (size + 2 - 4) // 2 + 1


class BaselineHEncoder(nn.Module):
    """The Baseline-H feature extractor g: (B, C, H, W) in [0, 1] -> (B, feature_dim).

    Args:
        in_chans: input channels (1 for MNIST, 3 for CIFAR-10/SVHN).
        input_size: H (= W) or (H, W); fixes the flattened size feeding the FC layers.
        feature_dim: representation size (paper: 64).
        mean, std: per-channel normalisation applied first (None: identity).
        hidden: width of the first FC layer (paper: 1024).

    Attributes:
        feature_dim, in_chans, input_size, local_shape: (256, h, w), the ``forward_local`` map.
    """

    def __init__(
        self,
        in_chans: int = 1,
        input_size: int | Sequence[int] = 28,
        feature_dim: int = 64,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        hidden: int = 1024,
    ) -> None:
        super().__init__()
        height, width = to_pair(input_size)
        out_h, out_w = _conv_out(_conv_out(_conv_out(height))), _conv_out(_conv_out(_conv_out(width)))
        if out_h < 1 or out_w < 1:
            raise ModelError(f"Baseline-H needs inputs of at least 8x8, got input_size={input_size!r}")
        self.in_chans, self.input_size, self.feature_dim = in_chans, (height, width), feature_dim
        self.local_shape = (256, out_h, out_w)
        self.normalize = Normalize(mean, std, in_chans)
        self.convs = nn.Sequential(_conv_block(in_chans, 64), _conv_block(64, 128), _conv_block(128, 256))
        self.fc = nn.Sequential(
            nn.Linear(256 * out_h * out_w, hidden),
            nn.BatchNorm1d(hidden),
            nn.ReLU(),
            nn.Linear(hidden, feature_dim),
        )

    def forward_local(self, x: Tensor) -> Tensor:
        """(B, C, H, W) in [0, 1] -> the conv map feeding the FC layers, (B, 256, h, w)."""
        if tuple(x.shape[-2:]) != self.input_size:
            raise ModelError(
                f"this Baseline-H encoder was built for {self.input_size[0]}x{self.input_size[1]} inputs, "
                f"got "
                f"{x.shape[-2]}x{x.shape[-1]}; build it with input_size={x.shape[-2]} (or dataset=...)"
            )
        return self.convs(self.normalize(x))

    def forward_features(self, x: Tensor) -> Tensor:
        """(B, C, H, W) in [0, 1] -> representation (B, feature_dim)."""
        local = self.forward_local(x)
        return self.fc(local.flatten(1))  # (B, 256, h, w) -> (B, 256*h*w) -> (B, feature_dim)

    def forward(self, x: Tensor) -> Tensor:
        """Same as :meth:`forward_features`: an encoder's output is its representation."""
        return self.forward_features(x)


@register_model
def baseline_h_encoder(
    in_chans: int = 1,
    input_size: int | Sequence[int] = 28,
    feature_dim: int = 64,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
) -> BaselineHEncoder:
    """The Baseline-H feature extractor (representation of size ``feature_dim``)."""
    return BaselineHEncoder(in_chans, input_size, feature_dim, mean, std)


@register_model
def baseline_h(
    in_chans: int = 1,
    input_size: int | Sequence[int] = 28,
    num_classes: int = 10,
    feature_dim: int = 64,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
) -> Classifier:
    """Baseline-H: the feature extractor plus the MLP head (feature_dim -> 200 -> num_classes)."""
    encoder = BaselineHEncoder(in_chans, input_size, feature_dim, mean, std)
    return Classifier(encoder, create_head("mlp", feature_dim, num_classes))


@register_model
def baseline_h_linear(
    in_chans: int = 1,
    input_size: int | Sequence[int] = 28,
    num_classes: int = 10,
    feature_dim: int = 64,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
) -> Classifier:
    """The Baseline-H feature extractor plus a linear head (feature_dim -> num_classes)."""
    encoder = BaselineHEncoder(in_chans, input_size, feature_dim, mean, std)
    return Classifier(encoder, create_head("linear", feature_dim, num_classes))
