"""CIFAR-style VGG16 with BatchNorm (Simonyan & Zisserman 2015), global average pool, linear head.

Thirteen 3x3 convs (64-64-M-128-128-M-256x3-M-512x3-M-512x3-M, times ``width``), each followed by BN and ReLU.
Max-pools use ``ceil_mode`` so that 28x28 inputs survive all five (28 -> 14 -> 7 -> 4 -> 2 -> 1; 32 -> ... ->
1), and a global average pool makes the 512-d representation independent of the input size.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from robustmi.models.heads import Classifier, create_head
from robustmi.models.layers import Normalize, to_pair
from robustmi.models.registry import register_model

VGG16_CFG: tuple[int | str, ...] = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M",
                                    512, 512, 512, "M")  # fmt: skip


class VGG(nn.Module):
    """VGG encoder: (B, C, H, W) in [0, 1] -> globally pooled last conv map (B, feature_dim).

    Args:
        cfg: conv widths, ``"M"`` for a 2x2 max-pool.
        in_chans: input channels.
        input_size: nominal input size (recorded; any size >= 28 works).
        width: channel multiplier.
        mean, std: per-channel normalisation applied first (None: identity).
    """

    def __init__(
        self,
        cfg: Sequence[int | str] = VGG16_CFG,
        in_chans: int = 3,
        input_size: int | Sequence[int] = 32,
        width: float = 1.0,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
    ) -> None:
        super().__init__()
        self.in_chans, self.input_size = in_chans, to_pair(input_size)
        self.normalize = Normalize(mean, std, in_chans)
        layers: list[nn.Module] = []
        cin = in_chans
        for item in cfg:
            if item == "M":
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2, ceil_mode=True))
                continue
            cout = max(1, round(int(item) * width))
            layers += [
                nn.Conv2d(cin, cout, kernel_size=3, padding=1, bias=False),
                nn.BatchNorm2d(cout),
                nn.ReLU(),
            ]
            cin = cout
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.feature_dim = cin

    def forward_local(self, x: Tensor) -> Tensor:
        """(B, C, H, W) in [0, 1] -> last conv map after the final pool, (B, feature_dim, h, w)."""
        return self.features(self.normalize(x))

    def forward_features(self, x: Tensor) -> Tensor:
        """(B, C, H, W) in [0, 1] -> (B, feature_dim)."""
        return self.pool(self.forward_local(x)).flatten(1)  # (B, D, h, w) -> (B, D, 1, 1) -> (B, D)

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_features(x)


@register_model
def vgg16(
    in_chans: int = 3,
    input_size: int | Sequence[int] = 32,
    num_classes: int = 10,
    width: float = 1.0,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
) -> Classifier:
    """CIFAR VGG16-BN (512-d pooled features at width 1) with a linear head."""
    encoder = VGG(VGG16_CFG, in_chans, input_size, width, mean, std)
    return Classifier(encoder, create_head("linear", encoder.feature_dim, num_classes))
