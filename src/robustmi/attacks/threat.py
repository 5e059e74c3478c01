"""Threat models: the ε-ball an attack may search, as small objects with ``init``, ``step`` and ``project``.

A threat model knows one norm and one radius ε. The PGD engine (``robustmi.attacks.pgd``) calls
``init`` once per restart (random start), then alternates ``step`` (ascent along the input gradient) and
``project`` (back onto the ε-ball around the clean input); the box ``[0, 1]`` is applied by the engine.

- L∞ (the paper's threat model, PAPER.md §2.4): signed-gradient step, elementwise clip (Madry et al. 2018).
- L2: step along the per-sample normalised gradient, radial projection onto the L2 ball of each sample.

Every tensor is ``(B, C, H, W)``; norms are taken per sample over ``C·H·W``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from robustmi.errors import AttackError

_TINY = 1e-12  # guards divisions by a zero norm (a zero gradient or zero perturbation)


def _per_sample_l2(t: Tensor) -> Tensor:
    """(B, C, H, W) -> (B, 1, 1, 1) L2 norm of each sample, shaped to broadcast back."""
    return t.flatten(1).norm(dim=1).view(-1, *([1] * (t.dim() - 1)))


@dataclass(frozen=True)
class LinfThreat:
    """L∞ ball of radius ``eps``: sign step, elementwise clip."""

    eps: float
    norm: str = "linf"

    def init(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Uniform random point in the L∞ ball around ``x`` (B, C, H, W)."""
        noise = torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        return x + (2 * noise - 1) * self.eps

    def step(self, x_adv: Tensor, grad: Tensor, step_size: float) -> Tensor:
        """Ascent step ``x + α·sign(∇)``; a zero gradient gives no move."""
        return x_adv + step_size * grad.sign()

    def project(self, x_adv: Tensor, x: Tensor) -> Tensor:
        """Closest point of the L∞ ball around ``x``: clip each coordinate of the perturbation to [-ε, ε]."""
        return x + (x_adv - x).clamp(-self.eps, self.eps)

    def distance(self, x_adv: Tensor, x: Tensor) -> Tensor:
        """(B,) L∞ norm of each perturbation."""
        return (x_adv - x).flatten(1).abs().amax(dim=1)


@dataclass(frozen=True)
class L2Threat:
    """L2 ball of radius ``eps``: normalised-gradient step, radial projection per sample."""

    eps: float
    norm: str = "l2"

    def init(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Uniform random point in the L2 ball: random direction, radius ε·u^(1/d) with d = C·H·W."""
        direction = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        u = torch.rand((x.shape[0],), generator=generator, device=x.device, dtype=x.dtype)
        radius = self.eps * u.pow(1.0 / x[0].numel()).view(-1, *([1] * (x.dim() - 1)))
        return x + radius * direction / (_per_sample_l2(direction) + _TINY)

    def step(self, x_adv: Tensor, grad: Tensor, step_size: float) -> Tensor:
        """Ascent step ``x + α·∇/‖∇‖₂`` per sample; a zero gradient gives no move."""
        return x_adv + step_size * grad / (_per_sample_l2(grad) + _TINY)

    def project(self, x_adv: Tensor, x: Tensor) -> Tensor:
        """Closest point of the L2 ball around ``x``: shrink perturbations longer than ε to length ε."""
        delta = x_adv - x
        scale = (self.eps / (_per_sample_l2(delta) + _TINY)).clamp(max=1.0)
        return x + delta * scale

    def distance(self, x_adv: Tensor, x: Tensor) -> Tensor:
        """(B,) L2 norm of each perturbation."""
        return (x_adv - x).flatten(1).norm(dim=1)


_THREATS = {"linf": LinfThreat, "l2": L2Threat}


def list_norms() -> list[str]:
    """Names accepted as ``norm``: ``["l2", "linf"]``."""
    return sorted(_THREATS)


def get_threat(norm: str, eps: float) -> LinfThreat | L2Threat:
    """Build the threat model for ``norm`` ("linf" or "l2") and radius ``eps``.

    Raises:
        AttackError: unknown norm or negative ``eps``.
    """
    if norm not in _THREATS:
        raise AttackError(f"unknown norm {norm!r}: use one of {', '.join(list_norms())}")
    if not eps >= 0:  # also rejects NaN
        raise AttackError(f"eps must be >= 0, got {eps}: pass the radius of the threat model, e.g. eps=0.3")
    return _THREATS[norm](float(eps))
