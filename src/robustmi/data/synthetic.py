"""Synthetic image sets for tests and smoke runs: no files, deterministic, learnable by a small network.

Each of the 10 classes owns a smooth random prototype (a 4x4 Gaussian grid upsampled to the image size and
squashed into (0, 1)). A sample is its class prototype shifted by up to 2 pixels, with a random contrast and
Gaussian pixel noise, clipped to [0, 1]. Prototypes depend only on the dataset name, samples on (name,
split), so train and test come from the same distribution and every call returns the same tensors.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from robustmi.data.dataset import get_dataset_info
from robustmi.data.transforms import random_crop

SYNTHETIC_SIZES = {"train": 5000, "test": 1000}
_SEEDS = {"synthetic-mnist": 1000, "synthetic-cifar": 2000}
_SPLIT_OFFSET = {"train": 1, "test": 2}
_NOISE = 0.1
_MAX_SHIFT = 2


def _prototypes(name: str) -> Tensor:
    """Class prototypes ``(num_classes, C, H, W)`` in (0, 1), fixed by the dataset name."""
    info = get_dataset_info(name)
    c, h, w = info.image_shape
    generator = torch.Generator().manual_seed(_SEEDS[name])
    coarse = torch.randn(info.num_classes, c, 4, 4, generator=generator)
    # (K, C, 4, 4) -> (K, C, H, W)
    smooth = F.interpolate(coarse, size=(h, w), mode="bilinear", align_corners=False)
    return torch.sigmoid(3.0 * smooth)


def make_synthetic(name: str, split: str) -> tuple[Tensor, Tensor]:
    """Generate the synthetic set ``name`` / ``split``.

    Args:
        name: ``"synthetic-mnist"`` (1x28x28) or ``"synthetic-cifar"`` (3x32x32).
        split: ``"train"`` (5000 samples) or ``"test"`` (1000 samples).

    Returns:
        ``(images, labels)``: float32 ``(N, C, H, W)`` in [0, 1] and int64 ``(N,)`` with balanced classes.
    """
    prototypes = _prototypes(name)
    num_classes = prototypes.shape[0]
    n = SYNTHETIC_SIZES[split]
    generator = torch.Generator().manual_seed(_SEEDS[name] + _SPLIT_OFFSET[split])
    labels = torch.randperm(n, generator=generator) % num_classes  # balanced, shuffled
    images = random_crop(prototypes[labels], padding=_MAX_SHIFT, generator=generator)
    contrast = 0.6 + 0.4 * torch.rand(n, 1, 1, 1, generator=generator)
    noise = _NOISE * torch.randn(images.shape, generator=generator)
    images = (0.5 + contrast * (images - 0.5) + noise).clamp_(0.0, 1.0)
    return images, labels.to(torch.int64)
