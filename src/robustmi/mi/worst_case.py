"""Algorithm 1: the worst-case input distribution of a batch against a fixed MI estimator.

Zhu, Zhang & Evans (ICML 2020), supplement Algorithm 1 and eq. (4.2) (PAPER.md §2.4): PGD over per-sample
ε-perturbations ``x'_i ∈ B(x_i, ε)`` of the empirical distribution, jointly minimising the batch-level MI
estimate ``Î(x'; g(x'))`` (so the batch, not each sample, has one objective; the best iterate is kept for the
whole batch, as the authors' ``use_best``). The critic is fixed during the search.

This is the one implementation every caller uses: worst-case-MI encoder training (eq. 5.4), the per-epoch
held-out MI of encoder runs, Algorithm 2's worst-case critic (``robustmi.vulnerability``) and per-neuron
vulnerability. Callers supply the MI estimate as ``mi(x_critic, z)`` and the representation as
``represent(x)``; this module decides what the gradient flows through:

- ``through_critic=False`` (default; the authors' released code, ``BigEncoder.extract``): the critic's image
  branch receives a *detached* copy of ``x'``, so ``x'`` moves only through ``g``. The search then changes the
  representation, not how the critic reads the image, and skips a backward pass through the critic's
  image branch (the most expensive part of the critic).
- ``through_critic=True`` (the paper's Algorithm 1 as written): the gradient also flows through the critic's
  image branch; the search can lower the estimate by fooling the critic rather than the encoder.

Which one the tables need is measured in docs/fidelity.md.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass

import torch
from torch import Tensor

from robustmi.attacks.pgd import pgd_with_trace
from robustmi.attacks.presets import AttackSettings

__all__ = ["WorstCase", "worst_case_inputs"]

MIFunction = Callable[[Tensor, Tensor], Tensor]  # (x for the critic (B, C, H, W), z) -> MI estimate
Represent = Callable[[Tensor], Tensor]  # x (B, C, H, W) -> z, differentiable w.r.t. x


@dataclass
class WorstCase:
    """The search's result.

    Attributes:
        x: (B, C, H, W) perturbed batch, fp32, detached, inside the ε-ball and [0, 1].
        mi_trace: (steps + 1,) MI estimate at every iterate, the clean batch first (it decreases when the
            search works).
        zero_grad_fraction: fraction of samples with a zero input gradient at the first step.
    """

    x: Tensor
    mi_trace: Tensor
    zero_grad_fraction: float


def worst_case_inputs(
    mi: MIFunction,
    represent: Represent,
    x: Tensor,
    attack: AttackSettings,
    *,
    through_critic: bool = False,
    generator=None,
    autocast: Callable[[], AbstractContextManager] | None = None,
) -> WorstCase:
    """Per-sample ε-perturbations of batch ``x`` that minimise the batch MI estimate (Algorithm 1).

    The caller freezes the modules (``robustmi.attacks.frozen_eval``: eval mode, no parameter gradients),
    so only the input gradient is computed. Runs in fp32 (``pgd`` disables autocast) unless ``autocast``
    is given: then the forward passes of ``mi`` and ``represent`` run under it (bf16 search inside
    training, ``search_bf16``), while the perturbation, its gradient step and the MI trace stay fp32.

    Args:
        mi: ``mi(x_critic, z) -> Tensor`` MI estimate of the batch (scalar; a vector is summed, e.g. one value
            per head of a per-neuron critic), computed with the critic's parameters fixed.
        represent: ``x -> z`` the representation whose information is attacked.
        x: (B, C, H, W) clean batch in [0, 1].
        attack: eps / norm / steps / step_size / random_start (the paper: no random start).
        through_critic: let the gradient flow through the critic's image branch too (see module docstring).
        generator: randomness of a random start.
        autocast: context factory for the search's forward passes, e.g. bf16 autocast (None: fp32).

    Returns:
        :class:`WorstCase` with the perturbed batch and the MI trace. ``eps = 0`` returns ``x`` itself.

    Example:
        >>> attack = AttackSettings(eps=0.3, steps=10, step_size=0.1)
        >>> with frozen_eval(encoder, dim):
        ...     found = worst_case_inputs(dim.mi, encoder, x, attack)
    """

    precision = autocast or contextlib.nullcontext

    def objective(xa: Tensor) -> Tensor:  # PGD ascends: the negative MI of the batch
        x_critic = xa if through_critic else xa.detach()  # detached: x' moves only through g
        with precision():
            value = mi(x_critic, represent(xa)).sum()
        return -value.float()

    if attack.eps == 0:  # the ball is the clean batch: nothing to search
        with torch.no_grad():
            value = mi(x, represent(x)).sum().float()
        return WorstCase(x.detach(), value.reshape(1), 0.0)
    result = pgd_with_trace(objective, x, eps=attack.eps, steps=attack.steps, step_size=attack.step_size,
                            norm=attack.norm, random_start=attack.random_start, keep_best=True,
                            generator=generator)
    return WorstCase(result.x_adv.detach(), -result.trace[0], result.zero_grad_fraction)
