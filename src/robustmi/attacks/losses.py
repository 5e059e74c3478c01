"""Classifier losses for attacks, one value per sample, and the objective that wraps a model around one.

All losses take logits ``(B, K)`` and labels ``(B,)`` and return ``(B,)`` values that an attack *maximises*:

- ``ce``: cross-entropy (Madry et al. 2018).
- ``cw``: Carlini–Wagner margin ``max_{j≠y} z_j − z_y`` (Carlini & Wagner 2017); positive once misclassified.
- ``dlr``: difference of logits ratio ``−(z_y − max_{j≠y} z_j) / (z_π1 − z_π3)``, ``π`` sorting the logits in
  decreasing order (Croce & Hein 2020, eq. 6): the margin made invariant to shifting and rescaling logits.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from robustmi.errors import AttackError


def _check(logits: Tensor, y: Tensor, min_classes: int = 2) -> None:
    if logits.dim() != 2 or y.shape != (logits.shape[0],):
        raise AttackError(
            f"classifier loss needs logits (B, K) and labels (B,), "
            f"got {tuple(logits.shape)} and {tuple(y.shape)}"
        )
    if logits.shape[1] < min_classes:
        raise AttackError(
            f"this loss needs at least {min_classes} classes, the model outputs {logits.shape[1]}"
        )


def _other_max(logits: Tensor, y: Tensor) -> Tensor:
    """(B,) largest logit among the wrong classes."""
    true_mask = F.one_hot(y, logits.shape[1]).bool()  # (B,) -> (B, K)
    return logits.masked_fill(true_mask, float("-inf")).amax(dim=1)


def ce_loss(logits: Tensor, y: Tensor) -> Tensor:
    """(B,) cross-entropy of logits (B, K) against labels (B,)."""
    _check(logits, y)
    return F.cross_entropy(logits, y, reduction="none")


def cw_loss(logits: Tensor, y: Tensor) -> Tensor:
    """(B,) Carlini–Wagner margin ``max_{j≠y} z_j − z_y``: > 0 exactly when the sample is misclassified."""
    _check(logits, y)
    return _other_max(logits, y) - logits.gather(1, y[:, None]).squeeze(1)


def dlr_loss(logits: Tensor, y: Tensor) -> Tensor:
    """(B,) DLR loss of Croce & Hein (2020): the CW margin divided by ``z_π1 − z_π3``; needs K >= 3."""
    _check(logits, y, min_classes=3)
    top = logits.sort(dim=1, descending=True).values  # (B, K), decreasing
    return cw_loss(logits, y) / (top[:, 0] - top[:, 2] + 1e-12)


_LOSSES: dict[str, Callable[[Tensor, Tensor], Tensor]] = {"ce": ce_loss, "cw": cw_loss, "dlr": dlr_loss}


def list_losses() -> list[str]:
    """Loss names accepted by ``get_loss`` and ``classifier_objective``: ``["ce", "cw", "dlr"]``."""
    return sorted(_LOSSES)


def get_loss(name: str) -> Callable[[Tensor, Tensor], Tensor]:
    """Look a classifier loss up by name; unknown names raise ``AttackError`` listing the valid ones."""
    if name not in _LOSSES:
        raise AttackError(f"unknown attack loss {name!r}: use one of {', '.join(list_losses())}")
    return _LOSSES[name]


def classifier_objective(model: nn.Module, y: Tensor, loss: str = "ce") -> Callable[[Tensor], Tensor]:
    """Objective ``x_adv -> loss(model(x_adv), y)`` of shape (B,), for ``pgd`` and ``fgsm_rs``.

    Args:
        model: classifier returning logits (B, K) for inputs in [0, 1] (it owns its normalisation).
        y: (B,) int64 true labels.
        loss: "ce", "cw" or "dlr".

    Example:
        >>> with frozen_eval(model):
        ...     x_adv = pgd(classifier_objective(model, y, "cw"), x, eps=0.3, steps=40, step_size=0.01)
    """
    loss_fn = get_loss(loss)
    if not isinstance(y, Tensor) or y.dim() != 1 or y.dtype not in (torch.int64, torch.int32):
        raise AttackError(
            f"labels must be a (B,) integer tensor, got {getattr(y, 'shape', type(y).__name__)}"
        )

    def objective(x_adv: Tensor) -> Tensor:
        if x_adv.shape[0] != y.shape[0]:
            raise AttackError(f"inputs and labels differ in batch size: {x_adv.shape[0]} vs {y.shape[0]}")
        return loss_fn(model(x_adv), y.long())

    return objective
