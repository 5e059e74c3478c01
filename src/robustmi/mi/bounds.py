"""Variational lower bounds on mutual information, as pure functions of critic scores.

A critic T scores pairs: ``scores[i, j] = T(x_i, z_j)`` for a batch of B samples drawn from the joint
distribution P = p(x, z). The diagonal ``(x_i, z_i)`` holds the B positive pairs (samples of P); the B(B-1)
off-diagonal pairs ``(x_i, z_j), i != j`` serve as samples of the product of marginals Q = p(x) p(z)
("negatives"). The paper's per-location variant (PAPER.md §2.2, Hjelm et al. 2018) scores every spatial
location l of x_i's local feature map against z_j: ``scores[i, j, l]``, shape (B, B, L). Every bound below is
then computed separately at each location and averaged over locations (the authors' code does the same).

Bounds (natural logs, so values are in nats where the bound is an MI bound):

- ``dv``: Donsker–Varadhan, the MINE estimator used by the paper (Belghazi et al. 2018), eq. (5.4) / §2.2.
- ``jsd``: the f-GAN Jensen–Shannon form used by DIM (Nowozin et al. 2016; Hjelm et al. 2018).
- ``infonce``: InfoNCE / CPC (van den Oord et al. 2018), at most log B.
- ``nwj``: Nguyen–Wainwright–Jordan, the f-divergence (KL) dual ("MINE-f"; Poole et al. 2019).
- ``smile``: SMILE, DV with the negatives' scores clipped to [-tau, tau] (Song & Ermon 2020), tau = 5: trades
  a small bias for far less variance at high MI; not a strict lower bound.

All functions are numerically stable for arbitrarily large scores (log-sum-exp, softplus) and give finite
values and gradients for scores of magnitude 1e4 and beyond. MINE's moving-average DV gradient is stateful (it
carries a running average between training steps), a training device rather than a bound: it lives in
:mod:`robustmi.mi.dv_moving_average`, so that this module holds only pure functions of one batch's scores.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from robustmi.errors import ConfigError

__all__ = [
    "dv_bound",
    "get_bound",
    "infonce_bound",
    "jsd_bound",
    "list_bounds",
    "nwj_bound",
    "smile_bound",
]

NWJ_MAX_EXPONENT = 50.0
"""Above this, ``exp(u)`` in the NWJ negative term is continued linearly (see :func:`nwj_bound`)."""


def _as_locations(scores: Tensor) -> Tensor:
    """Validate a score tensor and view it as (B, B, L).

    Args:
        scores: (B, B) or (B, B, L) floating tensor, positives on the diagonal of the first two axes.

    Returns:
        (B, B, L) view (L = 1 for a (B, B) input).

    Raises:
        ConfigError: wrong rank, non-square batch axes, B < 2, or a non-floating dtype.
    """
    if not torch.is_tensor(scores) or not scores.is_floating_point():
        raise ConfigError("critic scores must be a floating-point tensor of shape (B, B) or (B, B, L)")
    if scores.dim() not in (2, 3) or scores.shape[0] != scores.shape[1]:
        raise ConfigError(
            f"critic scores must have shape (B, B) or (B, B, L), got {tuple(scores.shape)}; "
            "score every x_i against every z_j"
        )
    if scores.shape[0] < 2:
        raise ConfigError("a batch of at least 2 pairs is needed to form negatives; use batch_size >= 2")
    if scores.dim() == 2:
        return scores.unsqueeze(-1)  # (B, B) -> (B, B, 1)
    return scores


def _diagonal(scores: Tensor) -> Tensor:
    """(B, B, L) -> (B, L): the positive-pair scores."""
    return torch.diagonal(scores, dim1=0, dim2=1).transpose(0, 1)


def _eye(scores: Tensor) -> Tensor:
    """(B, B, 1) boolean mask of the diagonal, broadcastable over locations."""
    b = scores.shape[0]
    return torch.eye(b, dtype=torch.bool, device=scores.device).unsqueeze(-1)


def _log_mean_exp_negatives(scores: Tensor, include_positive_in_negatives: bool) -> Tensor:
    """log of the mean of exp(score) over the B(B-1) negative pairs, per location.

    Args:
        scores: (B, B, L).
        include_positive_in_negatives: if True, the diagonal is set to 0 instead of being removed, so each
            positive pair adds exp(0) = 1 to the sum (the authors' variant, PAPER.md §2.2 / §5.2). The
            normaliser stays B(B-1), the number of negative pairs.

    Returns:
        (L,) tensor.
    """
    b = scores.shape[0]
    fill = 0.0 if include_positive_in_negatives else float("-inf")
    masked = scores.masked_fill(_eye(scores), fill)  # (B, B, L)
    flat = masked.reshape(b * b, -1)  # (B, B, L) -> (B*B, L)
    return torch.logsumexp(flat, dim=0) - math.log(b * (b - 1))


def dv_bound(scores: Tensor, include_positive_in_negatives: bool = False) -> Tensor:
    """Donsker–Varadhan (MINE) lower bound on I(X; Z), in nats.

    The bound, for any critic T:

        I(X; Z) >= E_P[T] - log E_Q[exp T],

    estimated with the B positives and all B(B-1) negative pairs of the batch:

        mean_i T_ii - log( 1/(B(B-1)) * sum_{i != j} exp T_ij ).

    The positive pair is excluded from the negatives exactly (masked to -inf inside a log-sum-exp). With
    ``include_positive_in_negatives=True`` the function reproduces the authors' code instead (PAPER.md §2.2,
    §5.2): there the diagonal of the score matrix is zeroed by multiplication, so every positive pair adds
    exp(0) = 1 to the negative sum, ``log((sum_{i != j} exp T_ij + B) / (B(B-1)))``; this biases the estimate
    and is meant only for comparison.

    For (B, B, L) scores the bound is computed at each location (negatives are all off-diagonal pairs at that
    location) and averaged over the L locations.

    Args:
        scores: (B, B) or (B, B, L) critic scores, ``scores[i, j] = T(x_i, z_j)``.
        include_positive_in_negatives: reproduce the authors' biased negative term (see above).

    Returns:
        Scalar tensor, the bound in nats (maximise it to train the critic).

    Raises:
        ConfigError: malformed scores (see shapes above) or B < 2.

    Example:
        >>> scores = torch.randn(8, 8)
        >>> dv_bound(scores).shape
        torch.Size([])
    """
    s = _as_locations(scores)
    positive = _diagonal(s).mean(dim=0)  # (L,)
    negative = _log_mean_exp_negatives(s, include_positive_in_negatives)  # (L,)
    return (positive - negative).mean()


def _negative_mean(values: Tensor) -> Tensor:
    """Mean over the off-diagonal pairs of a (B, B, L) tensor, per location -> (L,)."""
    b = values.shape[0]
    off = values.masked_fill(_eye(values), 0.0)  # (B, B, L), diagonal removed from the sum
    return off.sum(dim=(0, 1)) / (b * (b - 1))


def jsd_bound(scores: Tensor) -> Tensor:
    """Jensen–Shannon (f-GAN) objective as used by Deep InfoMax, offset so that independence gives 0.

    The bound, for any critic T (Nowozin et al. 2016; Hjelm et al. 2018 add log 2 to each term):

        2 * JSD(P || Q) >= 2 log 2 + E_P[-softplus(-T)] - E_Q[softplus(T)],

    i.e. ``E_P[log sigmoid T] + E_Q[log(1 - sigmoid T)] + log 4``, with P the positives (diagonal) and Q all
    off-diagonal pairs. The value lies in (-inf, log 4]; it is **not** in nats of mutual information: it
    lower-bounds twice the Jensen–Shannon divergence between the joint and the product of marginals, which is
    monotone in the dependence but saturates at log 4. DIM/MINE train critics with it because its gradients
    are better behaved; :func:`robustmi.mi.estimate_mi` with ``estimator="jsd"`` therefore trains with this
    objective and *reports* the DV bound of the trained critic in nats (the optimal JSD critic equals log p/q,
    the optimal DV critic).

    Args:
        scores: (B, B) or (B, B, L) critic scores, positives on the diagonal.

    Returns:
        Scalar tensor (maximise it).

    Raises:
        ConfigError: malformed scores or B < 2.
    """
    s = _as_locations(scores)
    positive = (-F.softplus(-_diagonal(s))).mean(dim=0)  # (L,)
    negative = _negative_mean(F.softplus(s))  # (L,)
    return (positive - negative).mean() + 2.0 * math.log(2.0)


def infonce_bound(scores: Tensor) -> Tensor:
    """InfoNCE (CPC) lower bound on I(X; Z), in nats; never exceeds log B.

    The bound, with each row's positive competing against all B candidates z_j of the batch:

        I(X; Z) >= mean_i [ T_ii - log( 1/B * sum_j exp T_ij ) ]  (<= log B).

    Computed with a log-sum-exp per row (and per location for (B, B, L) scores, then averaged).

    Args:
        scores: (B, B) or (B, B, L) critic scores, positives on the diagonal.

    Returns:
        Scalar tensor in nats (maximise it).

    Raises:
        ConfigError: malformed scores or B < 2.
    """
    s = _as_locations(scores)
    b = s.shape[0]
    log_norm = torch.logsumexp(s, dim=1) - math.log(b)  # (B, L): row-wise over candidates z_j
    return (_diagonal(s) - log_norm).mean()


def _stable_exp(u: Tensor, limit: float = NWJ_MAX_EXPONENT) -> Tensor:
    """exp(u) for u <= limit, continued linearly above: exp(limit) * (1 + u - limit); finite for finite u."""
    clipped = torch.clamp(u, max=limit)
    return torch.exp(clipped) * (1.0 + (u - clipped))


def nwj_bound(scores: Tensor) -> Tensor:
    """Nguyen–Wainwright–Jordan (f-divergence / KL dual, "MINE-f") lower bound on I(X; Z), in nats.

    The bound, for any critic T (tight at T = 1 + log p(x, z) / (p(x) p(z))):

        I(X; Z) >= E_P[T] - e^{-1} E_Q[exp T] = E_P[T] - E_Q[exp(T - 1)],

    with P the diagonal and Q all off-diagonal pairs. To stay finite for huge scores, ``exp(u)`` (u = T - 1)
    is continued linearly above u = ``NWJ_MAX_EXPONENT`` (50): ``exp(50) * (1 + u - 50)``, its tangent there.
    This only changes the value where the true bound is below about -5e21 nats, keeps a non-zero gradient
    pushing such scores down, and keeps values and gradients finite in float32 up to |T| of about 1e16.

    Args:
        scores: (B, B) or (B, B, L) critic scores, positives on the diagonal.

    Returns:
        Scalar tensor in nats (maximise it).

    Raises:
        ConfigError: malformed scores or B < 2.
    """
    s = _as_locations(scores)
    positive = _diagonal(s).mean(dim=0)  # (L,)
    negative = _negative_mean(_stable_exp(s - 1.0))  # (L,)
    return (positive - negative).mean()


SMILE_CLIP = 5.0
"""SMILE's default clipping threshold tau (Song & Ermon 2020 report tau = 1, 5, inf; 5 is their usual one)."""


def smile_bound(scores: Tensor, clip: float = SMILE_CLIP) -> Tensor:
    """SMILE: the DV estimate with the negatives' scores clipped to [-clip, clip] (Song & Ermon 2020).

    The estimate, for any critic T:

        E_P[T] - log E_Q[exp(clamp(T, -clip, clip))],

    with P the diagonal and Q all off-diagonal pairs (as :func:`dv_bound`). The variance of the DV partition
    term grows like exp(I) (Song & Ermon, Theorem 2); clipping bounds it by a constant, at the price of a bias
    that is small while the density ratio stays within exp(+-clip), i.e. at MI up to a few nats. It is not a
    strict lower bound of I(X; Z), and it tends to DV as clip -> inf.

    The returned tensor has SMILE's value but the gradient of :func:`jsd_bound` (as Song & Ermon train the
    critic with the JS objective and read it out with SMILE), so maximising it trains a well-behaved critic;
    the clipped value's own gradient would push the positives up without limit.

    Args:
        scores: (B, B) or (B, B, L) critic scores, positives on the diagonal.
        clip: tau > 0, the clipping threshold on the negatives' scores.

    Returns:
        Scalar tensor in nats (maximise it).

    Raises:
        ConfigError: malformed scores, B < 2, or clip <= 0.
    """
    if not clip > 0:
        raise ConfigError(f"SMILE clip (tau) must be positive, got {clip}; e.g. 5.0")
    s = _as_locations(scores)
    positive = _diagonal(s).mean(dim=0)  # (L,)
    negative = _log_mean_exp_negatives(s.clamp(-clip, clip), include_positive_in_negatives=False)  # (L,)
    value = (positive - negative).mean()
    # Value of SMILE, gradient of the JSD objective (Song & Ermon train the critic with JS): the clipped
    # value's own gradient is degenerate -- negatives above clip get none, so ascent drives the positives up
    # without limit (measured: 92 nats on 1-nat data after 100 steps).
    jsd = jsd_bound(scores)
    return jsd + (value - jsd).detach()


_BOUNDS: dict[str, Callable[[Tensor], Tensor]] = {
    "dv": dv_bound,
    "jsd": jsd_bound,
    "infonce": infonce_bound,
    "nwj": nwj_bound,
    "smile": smile_bound,
}


def list_bounds() -> list[str]:
    """Names accepted by :func:`get_bound` (and by ``estimator=``): dv, jsd, infonce, nwj, smile."""
    return list(_BOUNDS)


def get_bound(name: str) -> Callable[[Tensor], Tensor]:
    """Look up a bound function by name.

    Args:
        name: one of :func:`list_bounds`.

    Returns:
        The bound, a function ``scores (B, B) | (B, B, L) -> scalar``.

    Raises:
        ConfigError: unknown name (the message lists the valid ones).
    """
    if name not in _BOUNDS:
        raise ConfigError(f"unknown MI estimator {name!r}; choose one of {', '.join(_BOUNDS)}")
    return _BOUNDS[name]
