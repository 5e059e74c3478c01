"""CIFAR-style ResNets (He et al. 2016): 3x3 stem convolution, no max-pool, global average pool.

Used for the paper's §6.1 vulnerability analysis (ResNet18, ResNet50). Stages of BasicBlocks (ResNet18:
2-2-2-2) or Bottlenecks (ResNet50: 3-4-6-3) with 64/128/256/512 base planes (times ``width``) and strides
1/2/2/2; the representation is the pooled output of the last stage (512 or 2048 wide at ``width=1``). Any
input of at least 28x28 works (32 -> 32 -> 16 -> 8 -> 4; 28 -> 28 -> 14 -> 7 -> 4).
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from robustmi.models.heads import Classifier, create_head
from robustmi.models.layers import Normalize, to_pair
from robustmi.models.registry import register_model


def _conv3x3(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, kernel_size=3, stride=stride, padding=1, bias=False)


def _shortcut(cin: int, cout: int, stride: int) -> nn.Module:
    """Identity when shapes agree, else a 1x1 strided conv + BN (projection shortcut)."""
    if stride == 1 and cin == cout:
        return nn.Identity()
    return nn.Sequential(nn.Conv2d(cin, cout, kernel_size=1, stride=stride, bias=False), nn.BatchNorm2d(cout))


class BasicBlock(nn.Module):
    """conv3x3-BN-ReLU-conv3x3-BN, plus shortcut, then ReLU: (B, cin, H, W) -> (B, planes, H/s, W/s)."""

    expansion = 1

    def __init__(self, cin: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1, self.bn1, self.relu1 = _conv3x3(cin, planes, stride), nn.BatchNorm2d(planes), nn.ReLU()
        self.conv2, self.bn2 = _conv3x3(planes, planes), nn.BatchNorm2d(planes)
        self.shortcut = _shortcut(cin, planes, stride)
        self.relu2 = nn.ReLU()  # separate modules (not in-place, not shared) so every layer can be tapped

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu2(out + self.shortcut(x))


class Bottleneck(nn.Module):
    """1x1 -> 3x3 (strided) -> 1x1, BN after each, plus shortcut: ``4 * planes`` output channels."""

    expansion = 4

    def __init__(self, cin: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        cout = planes * self.expansion
        self.conv1 = nn.Conv2d(cin, planes, kernel_size=1, bias=False)
        self.bn1, self.relu1 = nn.BatchNorm2d(planes), nn.ReLU()
        self.conv2, self.bn2, self.relu2 = _conv3x3(planes, planes, stride), nn.BatchNorm2d(planes), nn.ReLU()
        self.conv3, self.bn3 = nn.Conv2d(planes, cout, kernel_size=1, bias=False), nn.BatchNorm2d(cout)
        self.shortcut = _shortcut(cin, cout, stride)
        self.relu3 = nn.ReLU()

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.relu2(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu3(out + self.shortcut(x))


class ResNet(nn.Module):
    """ResNet encoder: (B, C, H, W) in [0, 1] -> pooled last-stage features (B, feature_dim).

    Args:
        block: ``BasicBlock`` or ``Bottleneck``.
        depths: blocks per stage, e.g. (2, 2, 2, 2).
        in_chans: input channels.
        input_size: nominal input size (recorded; any size >= 28 works).
        width: channel multiplier (1.0 = the standard 64-128-256-512 planes).
        mean, std: per-channel normalisation applied first (None: identity).
    """

    def __init__(
        self,
        block: type[BasicBlock] | type[Bottleneck],
        depths: Sequence[int],
        in_chans: int = 3,
        input_size: int | Sequence[int] = 32,
        width: float = 1.0,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
    ) -> None:
        super().__init__()
        base = max(1, round(64 * width))
        self.in_chans, self.input_size = in_chans, to_pair(input_size)
        self.normalize = Normalize(mean, std, in_chans)
        self.stem = nn.Sequential(_conv3x3(in_chans, base), nn.BatchNorm2d(base), nn.ReLU())
        stages, cin = [], base
        for i, depth in enumerate(depths):
            planes, blocks = base * 2**i, []
            for j in range(depth):
                blocks.append(block(cin, planes, stride=2 if (i > 0 and j == 0) else 1))
                cin = planes * block.expansion
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.feature_dim = cin

    def forward_local(self, x: Tensor) -> Tensor:
        """(B, C, H, W) in [0, 1] -> last-stage map (B, feature_dim, h, w)."""
        out = self.stem(self.normalize(x))
        return self.layer4(self.layer3(self.layer2(self.layer1(out))))

    def forward_features(self, x: Tensor) -> Tensor:
        """(B, C, H, W) in [0, 1] -> (B, feature_dim)."""
        return self.pool(self.forward_local(x)).flatten(1)  # (B, D, 1, 1) -> (B, D)

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_features(x)


def _resnet_classifier(
    block: type[BasicBlock] | type[Bottleneck],
    depths: Sequence[int],
    in_chans: int,
    input_size: int | Sequence[int],
    num_classes: int,
    width: float,
    mean: Sequence[float] | None,
    std: Sequence[float] | None,
) -> Classifier:
    """A :class:`ResNet` encoder plus a linear head."""
    encoder = ResNet(block, depths, in_chans, input_size, width, mean, std)
    return Classifier(encoder, create_head("linear", encoder.feature_dim, num_classes))


@register_model
def resnet18(
    in_chans: int = 3,
    input_size: int | Sequence[int] = 32,
    num_classes: int = 10,
    width: float = 1.0,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
) -> Classifier:
    """CIFAR ResNet18 (BasicBlock 2-2-2-2, 512-d features at width 1) with a linear head."""
    return _resnet_classifier(BasicBlock, (2, 2, 2, 2), in_chans, input_size, num_classes, width, mean, std)


@register_model
def resnet50(
    in_chans: int = 3,
    input_size: int | Sequence[int] = 32,
    num_classes: int = 10,
    width: float = 1.0,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
) -> Classifier:
    """CIFAR ResNet50 (Bottleneck 3-4-6-3, 2048-d features at width 1) with a linear head."""
    return _resnet_classifier(Bottleneck, (3, 4, 6, 3), in_chans, input_size, num_classes, width, mean, std)
