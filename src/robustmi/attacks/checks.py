"""Sanity checks that catch evaluations which overstate robustness (after AutoAttack's ``checks.py``).

Each check is a small function that returns ``None`` when all is well, or a flag
``{"name", "message", "doc"}`` — and then also emits a ``SanityWarning``. Flags go into results.json; every
name is explained in docs/flags.md (what it means, what to do). The gradient and loss checks work on any
``PGDResult``, so MI attacks (worst-case MI search) use them exactly like classifier attacks do.
"""

from __future__ import annotations

import math
import warnings

import torch
from torch import Tensor

from robustmi.attacks.pgd import PGDResult

DOC = "docs/flags.md"


class SanityWarning(UserWarning):
    """An evaluation result that is probably wrong; see docs/flags.md."""


def make_flag(name: str, message: str) -> dict:
    """Build the flag record and warn with its message and the doc anchor."""
    doc = f"{DOC}#{name}"
    warnings.warn(f"{message} (see {doc})", SanityWarning, stacklevel=3)
    return {"name": name, "message": message, "doc": doc}


def check_zero_gradients(zero_grad_fraction: float, context: str, threshold: float = 0.1) -> dict | None:
    """Flag when more than ``threshold`` of the samples had a zero (or vanishing) input gradient.

    Args:
        zero_grad_fraction: ``PGDResult.zero_grad_fraction`` (or a sample-weighted mean over batches).
        context: what was attacked, e.g. the attack's name.
    """
    if zero_grad_fraction <= threshold:
        return None
    return make_flag(
        "zero_gradients",
        f"{context}: {zero_grad_fraction:.0%} of the samples have a zero input "
        "gradient, so gradient attacks cannot move them (gradient masking or saturated outputs)",
    )


def check_loss_increase(trace: Tensor, context: str, rtol: float = 1e-4) -> dict | None:
    """Flag when the attacked objective never rose above its starting value, in any restart.

    Args:
        trace: (restarts, steps + 1) batch-mean objective per iterate (``PGDResult.trace``).
    """
    start, later = trace[:, 0], trace[:, 1:].amax(dim=1)
    if (later > start + rtol * start.abs().clamp_min(1e-12)).any():
        return None
    return make_flag(
        "loss_not_increasing",
        f"{context}: the attacked objective did not increase over "
        f"{trace.shape[1] - 1} steps (start {start.mean():.4g}, best later {later.mean():.4g})",
    )


def check_pgd_result(result: PGDResult, context: str) -> list[dict]:
    """Both gradient checks on one ``PGDResult``: zero gradients and a loss that does not increase."""
    flags = [
        check_zero_gradients(result.zero_grad_fraction, context),
        check_loss_increase(result.trace, context),
    ]
    return [flag for flag in flags if flag is not None]


def check_chance_accuracy(accuracy: float, num_classes: int, num_samples: int) -> dict | None:
    """Flag a natural accuracy within 3 binomial standard deviations of chance (1 / num_classes)."""
    chance = 1.0 / num_classes
    if accuracy > chance + 3 * math.sqrt(chance * (1 - chance) / max(num_samples, 1)):
        return None
    return make_flag(
        "chance_accuracy",
        f"natural accuracy {accuracy:.1%} is at chance level ({chance:.1%} for "
        f"{num_classes} classes): the model or its input preprocessing is wrong, robustness is moot",
    )


def check_probability_outputs(outputs: Tensor) -> dict | None:
    """Flag model outputs (B, K) whose rows are non-negative and sum to 1: probabilities, not logits."""
    sums = outputs.sum(dim=1)
    if (
        outputs.shape[1] < 2
        or (outputs < 0).any()
        or not torch.allclose(sums, torch.ones_like(sums), atol=1e-4)
    ):
        return None
    return make_flag(
        "probability_outputs",
        "the model outputs probabilities (rows >= 0 summing to 1) instead "
        "of logits: attack losses saturate and underestimate the attack; remove the final softmax",
    )


def check_finite_outputs(outputs: Tensor, context: str) -> dict | None:
    """Flag NaN or inf in model outputs."""
    if torch.isfinite(outputs).all():
        return None
    return make_flag("nan_outputs", f"{context}: the model output contains NaN or inf")


def check_perturbation_size(max_perturbation: float, eps: float, context: str) -> dict | None:
    """Flag an attack whose largest perturbation exceeds its ε (beyond float rounding)."""
    if max_perturbation <= eps * (1 + 1e-5) + 1e-6:
        return None
    return make_flag(
        "perturbation_beyond_eps",
        f"{context}: largest perturbation {max_perturbation:.6g} "
        f"exceeds eps {eps:.6g}; those points were not counted as broken",
    )


def check_adversarial_range(num_invalid: int, context: str) -> dict | None:
    """Flag adversarial inputs that are NaN or outside [0, 1] (they are not counted as broken)."""
    if num_invalid == 0:
        return None
    return make_flag(
        "adversarial_out_of_range",
        f"{context}: {num_invalid} adversarial inputs are NaN or "
        "outside [0, 1]; they were not counted as broken",
    )


def check_attack_strength(stronger: str, weaker: str, extra_broken: int, num_samples: int) -> dict | None:
    """Flag a weaker attack breaking points a stronger one (same threat, larger budget) left robust.

    Args:
        stronger, weaker: attack names.
        extra_broken: points the stronger attack ran on and failed, but the weaker one broke.
        num_samples: evaluated points; the flag needs at least max(2, 1 %) of them.
    """
    if extra_broken < max(2, 0.01 * num_samples):
        return None
    return make_flag(
        "weaker_attack_stronger",
        f"{weaker} broke {extra_broken} points that the stronger "
        f"{stronger} left robust: {stronger} is mis-tuned (step size, steps) or gradients are masked",
    )
