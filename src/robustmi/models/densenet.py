"""CIFAR-style DenseNet-BC 121 (Huang et al. 2017): growth 32, dense blocks 6-12-24-16, compression 0.5.

Compact CIFAR variant: a single 3x3 stem conv to ``2 * growth`` channels (no 7x7 conv, no max-pool); each
dense layer is BN-ReLU-conv1x1(4 * growth)-BN-ReLU-conv3x3(growth) concatenated to its input; transitions are
BN-ReLU-conv1x1 (halving channels) and a 2x2 average pool. The representation is the globally pooled output of
BN-ReLU after the last block: 1024-d at ``width=1`` (``width`` scales the growth rate). Spatial sizes: 32 ->
16 -> 8 -> 4 and 28 -> 14 -> 7 -> 3.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from robustmi.models.heads import Classifier, create_head
from robustmi.models.layers import Normalize, to_pair
from robustmi.models.registry import register_model


class DenseLayer(nn.Module):
    """(B, cin, H, W) -> (B, cin + growth, H, W): the input concatenated with ``growth`` new channels."""

    def __init__(self, cin: int, growth: int) -> None:
        super().__init__()
        self.bn1, self.relu1 = nn.BatchNorm2d(cin), nn.ReLU()
        self.conv1 = nn.Conv2d(cin, 4 * growth, kernel_size=1, bias=False)
        self.bn2, self.relu2 = nn.BatchNorm2d(4 * growth), nn.ReLU()
        self.conv2 = nn.Conv2d(4 * growth, growth, kernel_size=3, padding=1, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv1(self.relu1(self.bn1(x)))
        out = self.conv2(self.relu2(self.bn2(out)))
        return torch.cat([x, out], dim=1)  # (B, cin, H, W) + (B, growth, H, W) -> (B, cin + growth, H, W)


class Transition(nn.Sequential):
    """BN-ReLU-conv1x1 (cin -> cout) then 2x2 average pool: (B, cin, H, W) -> (B, cout, H/2, W/2)."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__(
            nn.BatchNorm2d(cin), nn.ReLU(), nn.Conv2d(cin, cout, kernel_size=1, bias=False), nn.AvgPool2d(2)
        )


class DenseNet(nn.Module):
    """DenseNet encoder: (B, C, H, W) in [0, 1] -> (B, feature_dim).

    Args:
        depths: dense layers per block, e.g. (6, 12, 24, 16) for DenseNet121.
        growth: growth rate before ``width`` scaling (32).
        in_chans: input channels.
        input_size: nominal input size (recorded; any size >= 28 works).
        width: multiplier on the growth rate.
        mean, std: per-channel normalisation applied first (None: identity).
        reduction: channel compression at transitions (0.5).
    """

    def __init__(
        self,
        depths: Sequence[int] = (6, 12, 24, 16),
        growth: int = 32,
        in_chans: int = 3,
        input_size: int | Sequence[int] = 32,
        width: float = 1.0,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        reduction: float = 0.5,
    ) -> None:
        super().__init__()
        growth = max(1, round(growth * width))
        self.in_chans, self.input_size = in_chans, to_pair(input_size)
        self.normalize = Normalize(mean, std, in_chans)
        chans = 2 * growth
        self.stem = nn.Conv2d(in_chans, chans, kernel_size=3, padding=1, bias=False)
        stages: list[nn.Module] = []
        for i, depth in enumerate(depths):
            stages.append(nn.Sequential(*[DenseLayer(chans + k * growth, growth) for k in range(depth)]))
            chans += depth * growth
            if i < len(depths) - 1:
                out = int(math.floor(chans * reduction))
                stages.append(Transition(chans, out))
                chans = out
        self.blocks = nn.Sequential(*stages)
        self.norm, self.relu = nn.BatchNorm2d(chans), nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.feature_dim = chans

    def forward_local(self, x: Tensor) -> Tensor:
        """(B, C, H, W) in [0, 1] -> final BN-ReLU map (B, feature_dim, h, w)."""
        return self.relu(self.norm(self.blocks(self.stem(self.normalize(x)))))

    def forward_features(self, x: Tensor) -> Tensor:
        """(B, C, H, W) in [0, 1] -> (B, feature_dim)."""
        return self.pool(self.forward_local(x)).flatten(1)  # (B, D, h, w) -> (B, D, 1, 1) -> (B, D)

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_features(x)


@register_model
def densenet121(
    in_chans: int = 3,
    input_size: int | Sequence[int] = 32,
    num_classes: int = 10,
    width: float = 1.0,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
) -> Classifier:
    """CIFAR DenseNet121 (growth 32, blocks 6-12-24-16, 1024-d features at width 1) with a linear head."""
    encoder = DenseNet((6, 12, 24, 16), 32, in_chans, input_size, width, mean, std)
    return Classifier(encoder, create_head("linear", encoder.feature_dim, num_classes))
