"""Input-attribution methods: plain gradient, SmoothGrad and Integrated Gradients.

Each method takes a *target* ``f(x) -> Tensor`` (per-sample scalars ``(B,)`` or one batch scalar ``()``) and
an input batch ``x`` of shape ``(B, C, H, W)`` and returns a map of the same shape as ``x``.

- ``grad``: the input gradient ``d f / d x`` (Simonyan et al. 2014; the paper's §4.3 maps, after Etmann et al.
  2019).
- ``smoothgrad``: the mean input gradient over ``samples`` noisy copies ``x + N(0, sigma^2)``, with ``sigma =
  noise * (max(x_i) - min(x_i))`` per sample (Smilkov et al. 2017). Noisy copies are not clipped to [0, 1], as
  in the original method.
- ``ig``: Integrated Gradients (Sundararajan et al. 2017) from a constant ``baseline`` image (0 = black), the
  path integral approximated by the trapezoid rule on ``steps`` equal intervals. Completeness: the
  attributions sum to ``f(x) - f(baseline)`` up to the quadrature error, which falls as ``1 / steps**2`` for
  smooth ``f``.

Gradients are taken with ``torch.autograd.grad`` with respect to the input only, so no parameter ``.grad`` is
ever written. A target that is a :class:`~robustmi.saliency.targets.SaliencyTarget` names its modules; those
run in ``eval()`` with ``requires_grad_(False)`` while the map is computed, and their previous mode and flags
are restored afterwards.

A batch-level target (a scalar, e.g. the DIM loss whose negatives are the other samples of the batch) couples
the samples: each sample's map is the gradient of the *batch* objective with respect to that sample, so it
depends on which other samples are in the batch. SmoothGrad then perturbs the whole batch at once and IG moves
the whole batch along the path together; completeness holds for the batch sum.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from robustmi.attacks import frozen_eval
from robustmi.errors import ConfigError

Target = Callable[[Tensor], Tensor]

METHODS = ("grad", "smoothgrad", "ig")


def input_gradient(target_fn: Target, x: Tensor) -> Tensor:
    """Gradient of ``target_fn(x).sum()`` with respect to ``x`` (no parameter gradients).

    Args:
        target_fn: ``f(x) -> (B,)`` per-sample scalars or ``()`` one batch scalar.
        x: ``(B, ...)`` input batch; not modified.

    Returns:
        ``(B, ...)`` gradient, detached.

    Raises:
        ConfigError: if the target returns anything other than ``(B,)`` or a scalar.
    """
    # A fresh leaf: the caller's tensor keeps its own requires_grad and never collects a .grad.
    x = x.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        value = target_fn(x)
        if value.ndim != 0 and tuple(value.shape) != (x.shape[0],):
            raise ConfigError(
                f"saliency target returned shape {tuple(value.shape)}; it must return per-sample scalars "
                f"({x.shape[0]},) or one scalar"
            )
        if not value.requires_grad:  # the target does not depend on x at all: its saliency is zero
            return torch.zeros_like(x)
        (grad,) = torch.autograd.grad(value.sum(), x, allow_unused=True)
    if grad is None:  # the graph reaches only other leaves (e.g. parameters), never x
        return torch.zeros_like(x)
    return grad.detach()


def smoothgrad(
    target_fn: Target,
    x: Tensor,
    *,
    samples: int = 50,
    noise: float = 0.15,
    generator: torch.Generator | None = None,
) -> Tensor:
    """SmoothGrad: mean input gradient over ``samples`` Gaussian-noised copies of ``x``.

    Args:
        target_fn: ``f(x) -> (B,)`` or ``()``.
        x: ``(B, ...)`` input batch.
        samples: number of noisy copies (n in Smilkov et al.).
        noise: noise standard deviation as a fraction of each sample's value range ``max - min``.
        generator: source of the noise (CPU or on ``x``'s device); the same generator state, the same map.

    Returns:
        ``(B, ...)`` averaged gradient.
    """
    span = x.flatten(1).amax(dim=1) - x.flatten(1).amin(dim=1)  # (B, ...) -> (B,)
    sigma = (noise * span).view(-1, *([1] * (x.ndim - 1)))  # (B,) -> (B, 1, ..., 1) for broadcasting
    noise_device = generator.device if generator is not None else x.device
    total = torch.zeros_like(x)
    for _ in range(samples):
        draw = torch.randn(x.shape, generator=generator, device=noise_device, dtype=x.dtype).to(x.device)
        total += input_gradient(target_fn, x + sigma * draw)
    return total / samples


def integrated_gradients(
    target_fn: Target, x: Tensor, *, steps: int = 50, baseline: float | Tensor = 0.0
) -> Tensor:
    """Integrated Gradients along the straight path from ``baseline`` to ``x``, trapezoid rule.

    ``IG(x) = (x - b) * integral_0^1 grad f(b + a (x - b)) da`` with the integral replaced by
    ``sum_k w_k grad f(b + a_k (x - b))``, ``a_k = k / steps``, ``w_k = 1 / steps`` (halved at both ends).

    Args:
        target_fn: ``f(x) -> (B,)`` or ``()``.
        x: ``(B, ...)`` input batch.
        steps: number of intervals (``steps + 1`` gradient evaluations).
        baseline: a constant (0.0 = black image) or a tensor broadcastable to ``x``.

    Returns:
        ``(B, ...)`` attributions; per sample they sum to ``f(x) - f(baseline)`` (for a batch scalar, the
        batch total does).
    """
    base = torch.as_tensor(baseline, dtype=x.dtype, device=x.device).expand_as(x)
    delta = x - base
    total = torch.zeros_like(x)
    for k in range(steps + 1):
        weight = (0.5 if k in (0, steps) else 1.0) / steps
        total += weight * input_gradient(target_fn, base + (k / steps) * delta)
    return delta * total


def _check_settings(method: str, samples: int, noise: float, steps: int) -> None:
    if method not in METHODS:
        raise ConfigError(f"unknown saliency method {method!r}; use one of {', '.join(METHODS)}")
    if samples < 1:
        raise ConfigError(f"smoothgrad samples must be >= 1, got {samples}")
    if noise < 0:
        raise ConfigError(f"smoothgrad noise must be >= 0 (a fraction of the input range), got {noise}")
    if steps < 1:
        raise ConfigError(f"integrated-gradients steps must be >= 1, got {steps}")


def compute_saliency(
    target_fn: Target,
    x: Tensor,
    method: str = "grad",
    *,
    ig_steps: int = 50,
    samples: int = 50,
    noise: float = 0.15,
    baseline: float | Tensor = 0.0,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Saliency map of ``target_fn`` at ``x`` by one of :data:`METHODS`.

    Args:
        target_fn: ``f(x) -> (B,)`` or ``()``; a ``SaliencyTarget`` also freezes its modules (eval mode, no
            parameter gradients) for the duration and restores them afterwards.
        x: ``(B, C, H, W)`` inputs in [0, 1]; computed in float32.
        method: ``"grad"``, ``"smoothgrad"`` or ``"ig"``.
        ig_steps: Integrated-Gradients intervals.
        samples: SmoothGrad noisy copies.
        noise: SmoothGrad noise level (fraction of each sample's value range).
        baseline: Integrated-Gradients baseline (0.0 = black).
        generator: SmoothGrad noise source, for determinism.

    Returns:
        ``(B, C, H, W)`` float32 map, detached.

    Raises:
        ConfigError: unknown method or invalid setting.

    Example:
        >>> w = torch.randn(1, 1, 4, 4)
        >>> x = torch.rand(2, 1, 4, 4)
        >>> bool(torch.allclose(compute_saliency(lambda v: (v * w).flatten(1).sum(1), x), w.expand_as(x)))
        True
    """
    _check_settings(method, samples, noise, ig_steps)
    x = x.detach().float()
    run = {
        "grad": lambda: input_gradient(target_fn, x),
        "smoothgrad": lambda: smoothgrad(target_fn, x, samples=samples, noise=noise, generator=generator),
        "ig": lambda: integrated_gradients(target_fn, x, steps=ig_steps, baseline=baseline),
    }[method]
    # eval(): saliency explains the deployed model, so BatchNorm uses its running statistics (samples stay
    # independent, buffers untouched) and dropout is off; frozen parameters: only input gradients are needed.
    with frozen_eval(*getattr(target_fn, "modules", ())):
        return run()
