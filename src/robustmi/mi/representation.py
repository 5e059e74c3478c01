"""MI between images and an encoder's representation, I(X; g(X)): the "normal-case MI" of PAPER.md §3.

Computes the representation once (encoder frozen, eval mode, no gradients) and hands the pairs to
:func:`robustmi.mi.estimate_mi`, by default with the paper's image critic.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from robustmi.errors import ConfigError, RobustMIError
from robustmi.mi.estimate import MIEstimate, estimate_mi

__all__ = ["estimate_mi_of"]


def _features(encoder: nn.Module, images: Tensor, layer: str | None, batch_size: int) -> Tensor:
    """Representations of ``images`` (N, C, H, W) -> (N, ...), encoder in eval mode, no gradients."""
    was_training = encoder.training
    encoder.eval()  # representation as deployed: BatchNorm running stats, no dropout
    device = next((p.device for p in encoder.parameters()), images.device)
    chunks = []
    try:
        with torch.no_grad():  # the encoder is only read, never trained, here
            for k in range(0, images.shape[0], batch_size):
                xb = images[k : k + batch_size].to(device)
                if layer is None:
                    chunks.append(encoder.forward_features(xb))
                else:
                    from robustmi.models import extract_layer  # lazy: models sits beside mi in the core layer

                    chunks.append(extract_layer(encoder, xb, layer))
    finally:
        encoder.train(was_training)
    return torch.cat(chunks)


def estimate_mi_of(
    encoder: nn.Module,
    dataset: Any,
    layer: str | None = None,
    limit: int | None = None,
    critic: str = "image",
    **kwargs: Any,
) -> MIEstimate:
    """Estimate I(X; g(X)) of an encoder's representation on a dataset ("normal-case MI", PAPER.md §3).

    Computes z = ``encoder.forward_features(x)`` (or the output of the named ``layer`` via
    :func:`robustmi.models.extract_layer`) with the encoder in eval mode and without gradients, then calls
    :func:`estimate_mi` with x the images (by default with the paper's image critic).

    Args:
        encoder: a model following the robustmi interface (``forward_features``); its mode is restored
            afterwards.
        dataset: a :class:`robustmi.data.Dataset` (its ``images``, (N, C, H, W) in [0, 1]) or an image tensor.
        layer: optional layer name to tap instead of the representation (e.g. a conv layer for per-neuron
            studies).
        limit: use only the first ``limit`` images.
        critic: critic name passed to :func:`estimate_mi` (default ``"image"``).
        **kwargs: further :func:`estimate_mi` arguments (estimator, steps, batch_size, lr, seed, holdout,
            critic_kwargs).

    Returns:
        :class:`MIEstimate`; ``settings`` also records ``layer``, ``limit`` and the encoder class.

    Raises:
        RobustMIError: as :func:`estimate_mi`, a dataset without images, or an unknown layer (ModelError).
    """
    images = dataset.images if hasattr(dataset, "images") else dataset
    if not torch.is_tensor(images) or images.dim() != 4:
        raise ConfigError("dataset must be a robustmi.data.Dataset or an image tensor (N, C, H, W)")
    if limit is not None:
        if limit < 1:
            raise ConfigError(f"limit must be a positive number of images, got {limit}")
        images = images[:limit]
    z = _features(encoder, images, layer, batch_size=256)
    if not torch.isfinite(z).all():
        raise RobustMIError("the encoder produced NaN/inf features; check the model weights and inputs")
    est = estimate_mi(images.to(z.device), z, critic=critic, **kwargs)
    est.settings.update(layer=layer, limit=limit, encoder=type(encoder).__name__)
    return est
