"""The paper's encode-and-dot-product image critic (S Table 2; Hjelm et al. 2018), per-location scores.

Architecture (PAPER.md §2.3):

- x-branch ("estimator part 1 + part 2"): ``num_convs`` convolutions 4x4, stride 2, padding 1, with 64,
  128, 256 (doubling) channels, each followed by BatchNorm and ReLU (the paper lists three; the authors'
  code uses two, so it is a parameter), then a 1x1 residual block to ``width`` channels with LayerNorm over
  channels (:class:`ResidualBlock1x1`). Each location of the resulting map embeds one input patch.
- z-branch ("part 2"): z as a 1x1 map through the same kind of 1x1 residual block, giving one
  ``width``-vector. With ``z_branch="identity"`` (the paper's choice for a scalar feature, S Table 2) z is
  used as it is, and the x-branch ends with a 1x1 projection to ``z_dim`` channels instead.
- score of (x_i, z_j) at location l: the dot product of z_j's embedding with x_i's embedding at l, divided
  by sqrt(E) (:func:`pair_scores`, the one scoring rule of every image critic). The embeddings are
  layer-normalised, so raw dot products are ~N(0, E) at initialisation and a DV bound would start near
  -3 sqrt(E) nats; the authors' code uses raw products (a fixed temperature the critic can learn either way).

The critic takes images in [0, 1] and normalises them itself with a fixed per-channel mean/std.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from robustmi.errors import ConfigError

__all__ = ["ImageCritic", "ResidualBlock1x1", "conv_branch", "pair_scores"]


def pair_scores(ex: Tensor, ez: Tensor) -> Tensor:
    """Scaled dot products of every (x_i, z_j) pair: (B, E, L), (B, E) -> (B, B, L), divided by sqrt(E).

    A location-pooled x embedding (B, E) gives (B, B).
    """
    if ex.dim() == 2:
        return (ex @ ez.t()) / math.sqrt(ex.shape[1])  # (B, E) @ (E, B) -> (B, B)
    return torch.einsum("iel,je->ijl", ex, ez) / math.sqrt(ex.shape[1])  # (B, B, L)


def conv_branch(in_chans: int, num_convs: int) -> tuple[nn.Sequential, int]:
    """Strided conv stack of the critic's x-branch: ``num_convs`` x (conv 4x4 s2 p1 -> BN -> ReLU).

    Channels are 64, 128, 256, ... (doubling). A 28x28 input gives 14x14, 7x7, 3x3 maps after 1, 2, 3 convs;
    32x32 gives 16x16, 8x8, 4x4.

    Args:
        in_chans: image channels.
        num_convs: number of strided convs (>= 1).

    Returns:
        (module mapping (B, in_chans, H, W) -> (B, C, h, w), C = 64 * 2**(num_convs - 1)).
    """
    layers: list[nn.Module] = []
    chans = in_chans
    for k in range(num_convs):
        out = 64 * 2**k
        layers += [nn.Conv2d(chans, out, 4, stride=2, padding=1, bias=False), nn.BatchNorm2d(out), nn.ReLU()]
        chans = out
    return nn.Sequential(*layers), chans


class ResidualBlock1x1(nn.Module):
    """1x1 residual block with LayerNorm over channels ("estimator part 2", S Table 2).

    ``y = LayerNorm_C( conv1x1(ReLU(BN(conv1x1(x)))) + shortcut(x) )`` with a linear 1x1 shortcut.

    Args:
        in_chans: input channels.
        width: output channels.
        identity_init: initialise the shortcut as the identity embedding (first ``in_chans`` output channels
            copy the input) when ``in_chans <= width``, so the block starts close to passing its input
            through.

    Shapes:
        (B, in_chans, h, w) -> (B, width, h, w).
    """

    def __init__(self, in_chans: int, width: int, identity_init: bool = True) -> None:
        super().__init__()
        self.main = nn.Sequential(
            nn.Conv2d(in_chans, width, 1, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(),
            nn.Conv2d(width, width, 1),
        )
        self.shortcut = nn.Conv2d(in_chans, width, 1, bias=False)
        if identity_init and in_chans <= width:
            with torch.no_grad():
                eye = torch.eye(width, in_chans)  # (width, in_chans): rectangular identity
                self.shortcut.weight.copy_(eye.view(width, in_chans, 1, 1))
        self.norm = nn.LayerNorm(width)

    def forward(self, x: Tensor) -> Tensor:
        """(B, in_chans, h, w) -> (B, width, h, w), layer-normalised over channels at each location.

        Computed with one row per location: the 1x1 convs are plain matrix products (their weights viewed as
        (out, in) matrices, so parameters and checkpoints are the conv layout's) and the LayerNorm reads its
        channels contiguously, without the layout copies a conv-layout LayerNorm needs. The result is a
        channels-last view, so ``flatten(2)`` of it is free. Same math as the conv layout (rounding aside).
        """
        b, c, h, w = x.shape
        rows = x.permute(0, 2, 3, 1).reshape(b * h * w, c)  # (B, C, h, w) -> (N, C), N = B*h*w locations
        conv_in, batch_norm, relu, conv_out = self.main
        hidden = F.linear(rows, conv_in.weight.flatten(1))  # (N, width)
        hidden = relu(batch_norm(hidden.view(*hidden.shape, 1, 1))).flatten(1)  # BN statistics over N rows
        skip = F.linear(rows, self.shortcut.weight.flatten(1))  # (N, width)
        y = self.norm(F.linear(hidden, conv_out.weight.flatten(1), conv_out.bias) + skip)  # LN over channels
        return y.view(b, h, w, -1).permute(0, 3, 1, 2)  # (N, width) -> (B, width, h, w), channels-last view


def _channel_stats(value: float | Sequence[float], in_chans: int, name: str) -> Tensor:
    """Broadcast a scalar or per-channel sequence to a (1, C, 1, 1) tensor."""
    vals = [float(value)] * in_chans if isinstance(value, int | float) else [float(v) for v in value]
    if len(vals) != in_chans:
        raise ConfigError(f"critic {name}: {len(vals)} values for {in_chans} channels; give one per channel")
    if name == "std" and min(vals) <= 0:
        raise ConfigError(f"image critic std must be positive, got {vals}")
    return torch.tensor(vals, dtype=torch.float32).view(1, in_chans, 1, 1)


class ImageCritic(nn.Module):
    """Encode-and-dot-product critic: per-location scores of images against representations.

    Args:
        in_chans: image channels (1 for MNIST, 3 for CIFAR-10).
        z_dim: size of the (flattened) representation z.
        num_convs: strided 4x4 convs in the x-branch (paper: 3; authors' code: 2).
        width: embedding width of the 1x1 residual blocks (paper: 2048).
        z_branch: ``"mlp"`` (a 1x1 residual block, the default) or ``"identity"`` (z itself is the embedding;
            the x-branch then projects each location to ``z_dim`` channels, so the score is
            ``z_j . P(x_i)_l``; this is the paper's choice for a scalar feature, z_dim = 1).
        mean: per-channel (or scalar) mean used to normalise [0, 1] inputs.
        std: per-channel (or scalar) std used to normalise [0, 1] inputs.

    Shapes:
        forward(x (B, in_chans, H, W) in [0, 1], z (B, z_dim)) -> scaled scores (B, B, L)
        (:func:`pair_scores`), L = h * w locations of the
        conv map (e.g. 3 x 3 = 9 for MNIST with 3 convs, 7 x 7 = 49 with 2).

    Example:
        >>> critic = ImageCritic(1, 64, width=128)
        >>> critic(torch.rand(4, 1, 28, 28), torch.randn(4, 64)).shape
        torch.Size([4, 4, 9])
    """

    def __init__(
        self,
        in_chans: int,
        z_dim: int,
        num_convs: int = 3,
        width: int = 2048,
        z_branch: str = "mlp",
        mean: float | Sequence[float] = 0.5,
        std: float | Sequence[float] = 0.5,
    ) -> None:
        super().__init__()
        if num_convs < 1 or width < 1 or z_dim < 1 or in_chans < 1:
            raise ConfigError(
                f"image critic needs in_chans, z_dim, num_convs, width >= 1; got {in_chans}, {z_dim}, "
                f"{num_convs}, {width}"
            )
        if z_branch not in ("mlp", "identity"):
            raise ConfigError(f"unknown z_branch {z_branch!r}; choose 'mlp' or 'identity'")
        self.in_chans, self.z_dim, self.width, self.z_branch = in_chans, z_dim, width, z_branch
        self.register_buffer("mean", _channel_stats(mean, in_chans, "mean"))
        self.register_buffer("std", _channel_stats(std, in_chans, "std"))
        self.convs, chans = conv_branch(in_chans, num_convs)
        self.x_block = ResidualBlock1x1(chans, width, identity_init=True)
        if z_branch == "identity":
            self.x_project: nn.Module = nn.Conv2d(width, z_dim, 1)
            self.z_block: nn.Module = nn.Identity()
        else:
            self.x_project = nn.Identity()
            self.z_block = ResidualBlock1x1(z_dim, width, identity_init=True)

    def embed_x(self, x: Tensor) -> Tensor:
        """Per-location x embeddings: (B, in_chans, H, W) in [0, 1] -> (B, E, L), E = width (or z_dim)."""
        if x.dim() != 4 or x.shape[1] != self.in_chans:
            raise ConfigError(
                f"image critic expects images (B, {self.in_chans}, H, W), got {tuple(x.shape)}; "
                "check in_chans or pass 4-D image tensors"
            )
        h = self.convs((x - self.mean) / self.std)  # (B, C, h, w)
        h = self.x_project(self.x_block(h))  # (B, E, h, w)
        return h.flatten(2)  # (B, E, h, w) -> (B, E, L)

    def embed_z(self, z: Tensor) -> Tensor:
        """z embeddings: (B, z_dim) -> (B, E)."""
        if z.dim() != 2 or z.shape[1] != self.z_dim:
            raise ConfigError(
                f"image critic expects z (B, {self.z_dim}), got {tuple(z.shape)}; flatten z or set z_dim"
            )
        e = self.z_block(z[:, :, None, None])  # (B, z_dim) -> (B, z_dim, 1, 1) -> (B, E, 1, 1)
        return e.flatten(1)  # (B, E, 1, 1) -> (B, E)

    def forward(self, x: Tensor, z: Tensor) -> Tensor:
        """Score all pairs: -> (B, B, L), ``scores[i, j, l] = x_emb[i, :, l] . z_emb[j]``."""
        if x.shape[0] != z.shape[0]:
            raise ConfigError(f"x and z batch sizes differ ({x.shape[0]} vs {z.shape[0]}); pass pairs")
        return pair_scores(self.embed_x(x), self.embed_z(z))  # (B, E, L), (B, E) -> (B, B, L)
