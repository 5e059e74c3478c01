"""How image-aligned a saliency map is: one number per model, so the paper's qualitative claim can be checked.

The paper (§4.3, Fig. 4-6) only shows maps and says that worst-case-MI and adversarially trained models give
"less noisy maps that align better with the image". Two simple numbers make that checkable:

- **edge alignment** (the primary number, ``edge_spearman``): per sample, the Spearman rank correlation
  between the saliency magnitude ``|s|`` (summed over channels) and the image's edge map (Sobel gradient
  magnitude of the channel-mean image, replicate padding), averaged over samples. 1 = the map ranks pixels
  exactly as the edges do; about 0 = unrelated (e.g. noise). Rank correlation ignores the map's scale, which
  differs by orders of magnitude between models, and is not dominated by a few extreme pixels.
  ``edge_pearson`` (linear correlation) is reported beside it.
- **foreground mass** (``foreground_mass``): the fraction of the total ``|s|`` that lies on foreground pixels
  (channel-mean intensity > ``threshold``, 0.1 by default: the digit on MNIST's black background). Its chance
  level, a map spread evenly over the image, is the foreground fraction of the image (``foreground_fraction``,
  about 0.19 on MNIST), reported beside it.

Caveats: both numbers measure agreement with one notion of "the image" (its edges or its bright pixels), not
faithfulness to the model; a map that copies the image itself also scores well on both; the sign of the map is
discarded; the foreground threshold suits dark-background images (MNIST, Fashion-MNIST) far better than
natural images; MNIST edge maps have many exactly-zero pixels, whose tied ranks are averaged. A constant map
(e.g. an all-zero gradient) or a constant image has no defined correlation: that sample's value is NaN, the
mean skips it and ``constant_maps`` counts it.

Integrated Gradients (and any input-times-gradient map) from a black baseline is exactly zero wherever the
pixel is black, so on MNIST every model's IG map sits on the digit and scores high on both numbers, even an
untrained network's: compare models with ``grad`` (the paper's maps) or ``smoothgrad``, or give IG another
``baseline``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

_SOBEL_X = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])


def sobel_edges(images: Tensor) -> Tensor:
    """Sobel gradient magnitude of the channel-mean image.

    Args:
        images: ``(B, C, H, W)``.

    Returns:
        ``(B, H, W)`` edge magnitude, >= 0.
    """
    gray = images.float().mean(dim=1, keepdim=True)  # (B, C, H, W) -> (B, 1, H, W)
    # Replicate padding: zero padding would invent edges along the border of an image that is not black there.
    padded = F.pad(gray, (1, 1, 1, 1), mode="replicate")
    kernels = torch.stack([_SOBEL_X, _SOBEL_X.T]).unsqueeze(1).to(gray.device)  # (2, 1, 3, 3)
    grads = F.conv2d(padded, kernels)  # (B, 2, H, W): horizontal and vertical derivatives
    return grads.pow(2).sum(dim=1).sqrt()  # (B, 2, H, W) -> (B, H, W)


def saliency_magnitude(maps: Tensor) -> Tensor:
    """Channel-summed absolute saliency ``(B, C, H, W) -> (B, H, W)``."""
    return maps.float().abs().sum(dim=1)


def _pearson_rows(a: Tensor, b: Tensor) -> Tensor:
    """Row-wise Pearson correlation of ``(B, P)`` tensors -> ``(B,)``; NaN where a row is constant."""
    a = a.double() - a.double().mean(dim=1, keepdim=True)
    b = b.double() - b.double().mean(dim=1, keepdim=True)
    denom = (a.pow(2).sum(dim=1) * b.pow(2).sum(dim=1)).sqrt()
    r = (a * b).sum(dim=1) / denom
    return torch.where(denom > 0, r, torch.full_like(r, math.nan)).float()


def average_ranks(values: Tensor) -> Tensor:
    """Ranks 0..P-1 of a 1-D tensor, ties given the mean of their ranks (as ``scipy.stats.rankdata - 1``)."""
    order = torch.argsort(values, stable=True)
    _, inverse, counts = torch.unique_consecutive(values[order], return_inverse=True, return_counts=True)
    ends = torch.cumsum(counts, dim=0)
    mean_rank = (ends - counts + ends - 1).double() / 2  # mean 0-based rank of each tie group
    ranks = torch.empty(values.shape, dtype=torch.float64, device=values.device)
    ranks[order] = mean_rank[inverse]
    return ranks


def edge_correlation(maps: Tensor, images: Tensor, method: str = "spearman") -> Tensor:
    """Per-sample correlation of ``|maps|`` (channel-summed) with the images' Sobel edge maps.

    Args:
        maps: ``(B, C, H, W)`` saliency maps.
        images: ``(B, C, H, W)`` the inputs the maps explain.
        method: ``"spearman"`` (rank) or ``"pearson"`` (linear).

    Returns:
        ``(B,)`` correlations in [-1, 1]; NaN for a constant map or image.
    """
    a = saliency_magnitude(maps).flatten(1)  # (B, H, W) -> (B, H*W)
    b = sobel_edges(images).flatten(1)  # (B, H, W) -> (B, H*W)
    if method == "spearman":
        a = torch.stack([average_ranks(row) for row in a])
        b = torch.stack([average_ranks(row) for row in b])
    elif method != "pearson":
        raise ValueError(f"method must be 'spearman' or 'pearson', got {method!r}")
    return _pearson_rows(a, b)


def foreground_mask(images: Tensor, threshold: float = 0.1) -> Tensor:
    """Foreground pixels: channel-mean intensity above ``threshold``; ``(B, C, H, W) -> (B, H, W)`` bool."""
    return images.float().mean(dim=1) > threshold


def foreground_mass(maps: Tensor, images: Tensor, threshold: float = 0.1) -> Tensor:
    """Per-sample fraction of ``|maps|`` (channel-summed) on foreground pixels; ``(B,)``, NaN if all zero."""
    mag = saliency_magnitude(maps).double()
    total = mag.flatten(1).sum(dim=1)  # (B, H, W) -> (B,)
    on_fg = (mag * foreground_mask(images, threshold)).flatten(1).sum(dim=1)  # (B, H, W) -> (B,)
    frac = on_fg / total
    return torch.where(total > 0, frac, torch.full_like(frac, math.nan)).float()


def foreground_fraction(images: Tensor, threshold: float = 0.1) -> float:
    """Mean fraction of foreground pixels: the foreground mass of a map spread evenly over the image."""
    return float(foreground_mask(images, threshold).float().mean())


def _nanmean(values: Tensor) -> float | None:
    finite = values[~torch.isnan(values)]
    return float(finite.mean()) if finite.numel() else None


def alignment_scores(maps: Tensor, images: Tensor, threshold: float = 0.1) -> dict:
    """All alignment numbers of one model's maps, means over samples plus per-sample values.

    Args:
        maps: ``(B, C, H, W)`` saliency maps.
        images: ``(B, C, H, W)`` the inputs.
        threshold: foreground intensity threshold.

    Returns:
        ``{"edge_spearman", "edge_pearson", "foreground_mass"}`` means (None if no sample is defined),
        ``"constant_maps"`` (samples whose edge correlation is undefined) and ``"per_sample"`` lists
        (NaN -> None, so the dict is valid JSON).
    """
    per_sample = {
        "edge_spearman": edge_correlation(maps, images, "spearman"),
        "edge_pearson": edge_correlation(maps, images, "pearson"),
        "foreground_mass": foreground_mass(maps, images, threshold),
    }
    scores: dict = {name: _nanmean(values) for name, values in per_sample.items()}
    scores["constant_maps"] = int(torch.isnan(per_sample["edge_spearman"]).sum())
    scores["per_sample"] = {
        name: [None if math.isnan(v) else round(v, 6) for v in values.tolist()]
        for name, values in per_sample.items()
    }
    return scores
