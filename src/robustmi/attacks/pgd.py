"""Projected gradient ascent (PGD) on any objective of the input, and FGSM with random start.

PGD (Madry et al. 2018) maximises ``objective(x_adv)`` over the ε-ball of a threat model (``threat.py``)
intersected with the box ``clamp``: from ``x`` (or a random point of the ball), repeat ``steps`` times: ascent
step, projection onto the ball, projection onto the box. The engine knows nothing of classifiers or MI:

- a **per-sample** objective returns ``(B,)`` losses; each sample keeps its own best iterate (``keep_best``)
  and, over ``restarts``, its own worst case. (The authors' code selected the best iterate per batch from a
  batch-mean loss: PAPER.md §5, point 4; per-sample selection is at least as strong for every sample.)
- a **batch-level** objective returns a scalar, e.g. a negative MI lower bound: the batch is attacked jointly,
  as in the paper's worst-case MI search (Algorithm 1, PAPER.md §2.3); best iterate and restarts are chosen
  for the whole batch.

Gradients are taken with ``torch.autograd.grad`` with respect to the input only, so no parameter ``.grad``
changes; wrap models in ``frozen_eval`` to also skip building parameter gradients. Autocast is disabled:
attacks run in fp32.

FGSM-RS (Wong, Rice & Kolter 2020, "Fast is better than free") is one L∞ step of size 1.25·ε from a uniform
random start, the last iterate kept.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from robustmi.attacks.threat import get_threat
from robustmi.errors import AttackError

Objective = Callable[[Tensor], Tensor]
_VANISHING = torch.finfo(torch.float32).tiny  # |grad| below the smallest normal fp32 number counts as zero


@dataclass
class PGDResult:
    """What ``pgd_with_trace`` found, with what the sanity checks (``checks.py``) need.

    Attributes:
        x_adv: (B, C, H, W) adversarial inputs, fp32, inside the ε-ball and the box.
        loss: (B,) objective at ``x_adv`` for a per-sample objective, () for a batch-level one.
        trace: (restarts, steps + 1) batch-mean objective at every iterate, the start first.
        zero_grad_fraction: fraction of samples whose input gradient was zero (or below the smallest normal
            fp32 number) at the first step of the first restart.
    """

    x_adv: Tensor
    loss: Tensor
    trace: Tensor
    zero_grad_fraction: float


def _validate(x: Tensor, eps: float, steps: int, step_size: float, restarts: int, clamp) -> None:
    if not isinstance(x, Tensor) or x.dim() != 4:
        shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise AttackError(f"attack input must be a (B, C, H, W) tensor, got {shape}: add a batch dimension")
    if not x.is_floating_point() or x.shape[0] == 0:
        raise AttackError(f"attack input must be a non-empty float tensor, got {x.dtype} {tuple(x.shape)}")
    if torch.isnan(x).any():
        raise AttackError("attack input contains NaN: check the data pipeline")
    if not (isinstance(steps, int) and steps >= 1):
        raise AttackError(f"steps must be an integer >= 1, got {steps!r}")
    if not (isinstance(restarts, int) and restarts >= 1):
        raise AttackError(f"restarts must be an integer >= 1, got {restarts!r}")
    if not (eps >= 0 and math.isfinite(eps)):
        raise AttackError(f"eps must be a finite number >= 0, got {eps}")
    if not (step_size > 0 and math.isfinite(step_size)):
        raise AttackError(f"step_size must be a finite number > 0, got {step_size}")
    if clamp is not None:
        low, high = clamp
        if not low < high:
            raise AttackError(f"clamp must be (low, high) with low < high, got {clamp}")
        if x.min() < low or x.max() > high:
            raise AttackError(
                f"attack input lies outside the box {tuple(clamp)} (min {x.min():.3g}, max {x.max():.3g}): "
                "pass unnormalised images in [0, 1]; models own their normalisation"
            )


def _evaluate(objective: Objective, x_adv: Tensor, with_grad: bool) -> tuple[Tensor, Tensor | None]:
    """Objective value (B,) or () at ``x_adv`` and, if asked, its gradient with respect to ``x_adv`` only."""
    x_adv = x_adv.detach().requires_grad_(with_grad)
    with torch.set_grad_enabled(with_grad):
        value = objective(x_adv)
    if not isinstance(value, Tensor) or value.shape not in ((), (x_adv.shape[0],)):
        shape = tuple(value.shape) if isinstance(value, Tensor) else type(value).__name__
        raise AttackError(f"objective must return a ({x_adv.shape[0]},) tensor or a scalar, got {shape}")
    if not torch.isfinite(value).all():
        raise AttackError(
            "objective returned NaN or inf: check the model and the loss for numerical problems"
        )
    if not with_grad:
        return value.detach(), None
    if not value.requires_grad:
        raise AttackError(
            "objective output does not depend on its input: do not detach it or use torch.no_grad"
        )
    # Differentiate w.r.t. the input only: parameter .grad stays untouched.
    (grad,) = torch.autograd.grad(value.sum(), x_adv)
    return value.detach(), grad


def _keep_higher(
    best: tuple[Tensor, Tensor] | None, x_new: Tensor, loss_new: Tensor
) -> tuple[Tensor, Tensor]:
    """Keep, per sample (for the whole batch if the loss is a scalar), whichever point has the higher loss."""
    if best is None:
        return x_new, loss_new
    x_best, loss_best = best
    better = loss_new > loss_best  # (B,) or ()
    x_best = torch.where(better.view(-1, *([1] * (x_new.dim() - 1))), x_new, x_best)  # (B,) -> (B, 1, 1, 1)
    return x_best, torch.where(better, loss_new, loss_best)


def _run_once(
    objective: Objective,
    x: Tensor,
    x_start: Tensor,
    threat,
    steps: int,
    step_size: float,
    keep_best: bool,
    box: Callable[[Tensor], Tensor],
) -> tuple[Tensor, Tensor, Tensor, float]:
    """One PGD run from ``x_start``: (x_best, loss_best, trace (steps + 1,), zero-gradient fraction)."""
    x_adv, best, trace, zero_fraction = box(threat.project(x_start, x)), None, [], 0.0
    for t in range(steps + 1):
        loss, grad = _evaluate(objective, x_adv, with_grad=t < steps)  # the last iterate needs no gradient
        trace.append(loss.mean())
        best = _keep_higher(best if keep_best else None, x_adv, loss)
        if grad is None:
            break
        if not torch.isfinite(grad).all():
            raise AttackError(
                "the input gradient contains NaN or inf: check the model for numerical problems"
            )
        if t == 0:
            zero_fraction = (grad.flatten(1).abs().amax(dim=1) < _VANISHING).float().mean().item()
        x_adv = box(threat.project(threat.step(x_adv, grad, step_size), x)).detach()
    return best[0], best[1], torch.stack(trace), zero_fraction


def pgd_with_trace(
    objective: Objective,
    x: Tensor,
    *,
    eps: float,
    steps: int,
    step_size: float,
    norm: str = "linf",
    random_start: bool = False,
    restarts: int = 1,
    keep_best: bool = True,
    clamp: tuple[float, float] | None = (0.0, 1.0),
    generator: torch.Generator | None = None,
) -> PGDResult:
    """PGD like ``pgd``, returning the objective trace and gradient statistics as well (see ``PGDResult``)."""
    _validate(x, eps, steps, step_size, restarts, clamp)
    threat = get_threat(norm, eps)

    def box(t: Tensor) -> Tensor:
        return t if clamp is None else t.clamp(clamp[0], clamp[1])

    x = x.detach().float()  # a copy only if x was not fp32; never modified in place
    best, traces, zero_fraction = None, [], None
    with torch.autocast(device_type=x.device.type, enabled=False), torch.enable_grad():
        for _ in range(restarts):
            x_start = threat.init(x, generator) if random_start else x
            x_run, loss_run, trace, zero = _run_once(
                objective, x, x_start, threat, steps, step_size, keep_best, box
            )
            best = _keep_higher(best, x_run, loss_run)  # restarts keep each sample's worst case
            traces.append(trace)
            zero_fraction = zero if zero_fraction is None else zero_fraction
    return PGDResult(best[0], best[1], torch.stack(traces), zero_fraction)


def pgd(
    objective: Objective,
    x: Tensor,
    *,
    eps: float,
    steps: int,
    step_size: float,
    norm: str = "linf",
    random_start: bool = False,
    restarts: int = 1,
    keep_best: bool = True,
    clamp: tuple[float, float] | None = (0.0, 1.0),
    generator: torch.Generator | None = None,
) -> Tensor:
    """Maximise ``objective`` over the ε-ball around ``x`` and the box ``clamp`` by projected gradient ascent.

    Args:
        objective: ``objective(x_adv)`` -> (B,) per-sample losses or a scalar batch-level loss, to maximise.
        x: (B, C, H, W) clean inputs inside ``clamp``; not modified.
        eps: radius of the threat model (0 returns ``x``).
        steps: ascent steps per restart (>= 1).
        step_size: step length α (L∞: per coordinate; L2: per sample).
        norm: "linf" or "l2".
        random_start: start each restart at a uniform random point of the ball (else at ``x``).
        restarts: independent runs; each sample keeps its worst case over runs.
        keep_best: return each sample's best iterate (else the last one).
        clamp: valid input box (low, high), or None for no box.
        generator: source of randomness for random starts (on ``x``'s device).

    Returns:
        (B, C, H, W) fp32 adversarial inputs with ``‖x_adv - x‖ <= eps`` inside the box.

    Raises:
        AttackError: bad settings (eps < 0, steps < 1, step_size <= 0, unknown norm), input not (B, C, H, W),
            NaN input, input outside the box, or an objective of the wrong shape.

    Example:
        >>> with frozen_eval(model):
        ...     x_adv = pgd(classifier_objective(model, y), x, eps=0.3, steps=10, step_size=0.1)
    """
    return pgd_with_trace(
        objective,
        x,
        eps=eps,
        steps=steps,
        step_size=step_size,
        norm=norm,
        random_start=random_start,
        restarts=restarts,
        keep_best=keep_best,
        clamp=clamp,
        generator=generator,
    ).x_adv


def fgsm_rs(
    objective: Objective,
    x: Tensor,
    *,
    eps: float,
    step_size: float | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """FGSM with random start (Wong et al. 2020): uniform start in the L∞ ball, one signed step, projection.

    Args:
        objective: as for ``pgd``.
        x: (B, C, H, W) clean inputs in [0, 1].
        eps: L∞ radius.
        step_size: step length; default 1.25·eps, the value Wong et al. recommend.
        generator: randomness for the start.

    Returns:
        (B, C, H, W) adversarial inputs (the last iterate, as in the paper: no best-iterate selection).
    """
    if step_size is None:
        step_size = 1.25 * eps if eps > 0 else 1.0  # with eps = 0 any step is projected away
    return pgd(
        objective,
        x,
        eps=eps,
        steps=1,
        step_size=step_size,
        norm="linf",
        random_start=True,
        keep_best=False,
        generator=generator,
    )
