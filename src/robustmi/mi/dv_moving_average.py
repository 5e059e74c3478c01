"""MINE's bias-corrected Donsker–Varadhan gradient: a moving average of the partition term across batches.

The DV bound's minibatch gradient is biased (its denominator is a batch mean); MINE (Belghazi et al. 2018,
§3.2) divides by an exponential moving average over batches instead. That needs state carried between
training steps, so it lives here, apart from the pure, stateless bounds of :mod:`robustmi.mi.bounds`, whose
score-layout helpers it shares.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from robustmi.errors import ConfigError
from robustmi.mi.bounds import _as_locations, _diagonal, _log_mean_exp_negatives

__all__ = ["DVMovingAverage", "dv_moving_average_surrogate"]


def dv_moving_average_surrogate(
    scores: Tensor,
    log_average: Tensor | None,
    momentum: float = 0.99,
    include_positive_in_negatives: bool = False,
) -> tuple[Tensor, Tensor]:
    """DV bound with MINE's moving-average bias-corrected gradient (Belghazi et al. 2018, §3.2).

    The DV gradient ``E_P[grad T] - E_Q[exp(T) grad T] / E_Q[exp T]`` is biased when the denominator is a
    minibatch mean. MINE replaces the denominator by an exponential moving average (EMA) over batches. This
    function keeps that EMA in the log domain (``log_average``, one value per location) and returns a
    surrogate whose *value* is the plain DV bound of this batch and whose *gradient* is the bias-corrected
    one:

        surrogate = dv + (g - g.detach()),   g = mean_i T_ii - mean_Q[exp T] / EMA,

    with the EMA treated as a constant. Overflow is avoided by computing ``mean_Q[exp T] / EMA`` as
    ``exp(log_mean_Q_exp_T - log_EMA)`` (the EMA tracks the same quantity, so the exponent stays moderate).

    Args:
        scores: (B, B) or (B, B, L) critic scores, positives on the diagonal.
        log_average: (L,) running log of E_Q[exp T] per location, or None on the first call (then this batch's
            value is used, which makes the first gradient equal to the plain DV gradient).
        momentum: EMA decay in [0, 1): ``avg <- momentum * avg + (1 - momentum) * batch`` (MINE's alpha = 1 -
            momentum; 0 recovers the plain DV gradient).
        include_positive_in_negatives: as in :func:`robustmi.mi.bounds.dv_bound`.

    Returns:
        (surrogate, new_log_average): scalar tensor to maximise, and the detached (L,) updated running
        log-average to pass to the next call.

    Raises:
        ConfigError: malformed scores, momentum outside [0, 1), or a running average of the wrong length.
    """
    if not 0.0 <= momentum < 1.0:
        raise ConfigError(f"moving-average momentum must be in [0, 1), got {momentum}")
    s = _as_locations(scores)
    positive = _diagonal(s).mean(dim=0)  # (L,)
    log_mean_neg = _log_mean_exp_negatives(s, include_positive_in_negatives)  # (L,)
    batch_log = log_mean_neg.detach()  # the EMA is a statistic, not part of the graph
    if log_average is None:
        new_log = batch_log
    else:
        if log_average.shape != batch_log.shape:
            raise ConfigError(
                f"moving average has {tuple(log_average.shape)} locations but scores have "
                f"{tuple(batch_log.shape)}; use one DVMovingAverage per critic output shape"
            )
        old = log_average.to(batch_log)
        if momentum == 0.0:
            new_log = batch_log
        else:
            new_log = torch.logaddexp(old + math.log(momentum), batch_log + math.log1p(-momentum))
    corrected = positive - torch.exp(log_mean_neg - new_log)  # (L,), gradient uses the EMA denominator
    value = (positive - log_mean_neg).mean()
    surrogate = value.detach() + (corrected.mean() - corrected.mean().detach())
    return surrogate, new_log


class DVMovingAverage:
    """Stateful wrapper of :func:`dv_moving_average_surrogate` (MINE's bias-corrected DV gradient).

    Holds the running log-average of E_Q[exp T] between training steps. Call it on each batch's scores and
    maximise the result; its value equals :func:`robustmi.mi.bounds.dv_bound` on the batch, its gradient
    uses the moving-average denominator.

    Args:
        momentum: EMA decay (MINE uses alpha = 0.01, i.e. momentum 0.99).
        include_positive_in_negatives: as in :func:`robustmi.mi.bounds.dv_bound`.

    Example:
        >>> ema = DVMovingAverage(momentum=0.99)
        >>> scores = torch.randn(8, 8, requires_grad=True)
        >>> (-ema(scores)).backward()
    """

    def __init__(self, momentum: float = 0.99, include_positive_in_negatives: bool = False) -> None:
        if not 0.0 <= momentum < 1.0:
            raise ConfigError(f"moving-average momentum must be in [0, 1), got {momentum}")
        self.momentum = momentum
        self.include_positive_in_negatives = include_positive_in_negatives
        self.log_average: Tensor | None = None

    def __call__(self, scores: Tensor) -> Tensor:
        """Return the surrogate for ``scores`` ((B, B) or (B, B, L)) and update the running average."""
        surrogate, self.log_average = dv_moving_average_surrogate(
            scores, self.log_average, self.momentum, self.include_positive_in_negatives
        )
        return surrogate

    def reset(self) -> None:
        """Forget the running average (e.g. when the critic is re-initialised)."""
        self.log_average = None
