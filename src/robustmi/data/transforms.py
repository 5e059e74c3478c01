"""Batched image augmentations on tensors (no torchvision): zero-padded random crop and horizontal flip.

Both act on a whole batch at once, draw randomness from an explicit ``torch.Generator`` (same generator
state -> same output), run on the images' device and never modify their input.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def _check_batch(images: Tensor) -> None:
    if images.dim() != 4:
        raise ValueError(f"expected a batch of images (N, C, H, W), got shape {tuple(images.shape)}")


def _draw_device(generator: torch.Generator | None) -> torch.device:
    # Random numbers come from the generator's device (CPU by default), so results do not depend on where the
    # images live; they are moved to the images' device afterwards.
    return generator.device if generator is not None else torch.device("cpu")


def random_crop(images: Tensor, padding: int, generator: torch.Generator | None = None) -> Tensor:
    """Pad each image with ``padding`` zeros on every side, then crop it back at a random offset.

    Args:
        images: ``(N, C, H, W)`` batch.
        padding: Zero border width in pixels (>= 0); each image moves by up to ``padding`` pixels per axis.
        generator: Source of the offsets; ``None`` uses torch's default CPU generator.

    Returns:
        A new ``(N, C, H, W)`` tensor; sample ``i`` equals ``pad(images[i])[:, dy:dy+H, dx:dx+W]`` for its own
        offsets ``dy, dx`` in ``[0, 2 * padding]``.

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> random_crop(torch.rand(8, 3, 32, 32), padding=4, generator=g).shape
        torch.Size([8, 3, 32, 32])
    """
    _check_batch(images)
    if int(padding) != padding or padding < 0:
        raise ValueError(f"padding must be a non-negative integer, got {padding!r}")
    padding = int(padding)
    if padding == 0:
        return images.clone()
    n, _, h, w = images.shape
    padded = F.pad(images, (padding, padding, padding, padding))  # (N, C, H + 2p, W + 2p), zero border
    offsets = torch.randint(0, 2 * padding + 1, (2, n), generator=generator, device=_draw_device(generator))
    offsets = offsets.to(images.device)
    rows = offsets[0, :, None] + torch.arange(h, device=images.device)  # (N, H)
    cols = offsets[1, :, None] + torch.arange(w, device=images.device)  # (N, W)
    batch = torch.arange(n, device=images.device)[:, None, None]  # (N, 1, 1)
    # Advanced indexing with a slice in dim 1 puts the broadcast dims first: (N, H, W, C) -> (N, C, H, W)
    crops = padded[batch, :, rows[:, :, None], cols[:, None, :]]
    return crops.permute(0, 3, 1, 2).contiguous()


def horizontal_flip(images: Tensor, p: float = 0.5, generator: torch.Generator | None = None) -> Tensor:
    """Mirror each image left-right with probability ``p``.

    Args:
        images: ``(N, C, H, W)`` batch.
        p: Flip probability per image, in [0, 1].
        generator: Source of the coin flips; ``None`` uses torch's default CPU generator.

    Returns:
        A new ``(N, C, H, W)`` tensor.
    """
    _check_batch(images)
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"flip probability p must lie in [0, 1], got {p!r}")
    coins = torch.rand(images.shape[0], generator=generator, device=_draw_device(generator))
    flip = (coins < p).to(images.device)[:, None, None, None]  # (N,) -> (N, 1, 1, 1)
    return torch.where(flip, images.flip(-1), images)
