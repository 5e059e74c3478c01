"""Confidence intervals and sanity checks of robustmi.mi.confidence against closed forms and scipy."""

from __future__ import annotations

import math
import statistics

import pytest

from robustmi.errors import ConfigError
from robustmi.mi.confidence import bootstrap_ci, holdout_overfit, negative_beyond_ci, t_interval, t_quantile


@pytest.mark.parametrize(
    "df, expected", [(1, 12.7062), (2, 4.3027), (3, 3.1824), (5, 2.5706), (10, 2.2281), (30, 2.0423)]
)
def test_t_quantile_matches_tables(df, expected):
    """0.975 quantiles of Student's t (standard tables): closed forms for df 1-2, within 0.3 % from 3 on."""
    assert t_quantile(0.975, df) == pytest.approx(expected, rel=3e-3)


def test_t_quantile_matches_scipy():
    stats = pytest.importorskip("scipy.stats")
    for df in (3, 4, 7, 20, 100):
        for p, rel in ((0.9, 3e-3), (0.95, 3e-3), (0.975, 3e-3), (0.995, 1e-2)):
            assert t_quantile(p, df) == pytest.approx(float(stats.t.ppf(p, df)), rel=rel)


def test_t_interval_closed_form():
    values = [1.0, 1.2, 0.9, 1.1]
    lo, hi = t_interval(values, 0.95)
    half = t_quantile(0.975, 3) * statistics.stdev(values) / 2
    assert (lo, hi) == pytest.approx((statistics.fmean(values) - half, statistics.fmean(values) + half))
    assert t_interval([1.0]) is None


def test_bootstrap_ci_is_deterministic_and_scales_with_spread():
    tight = [1.0 + 0.01 * k for k in range(-5, 6)]
    wide = [1.0 + 0.1 * k for k in range(-5, 6)]
    a, b = bootstrap_ci(tight, seed=3), bootstrap_ci(tight, seed=3)
    assert a == b and a[0] < 1.0 < a[1]
    lo, hi = bootstrap_ci(wide)
    assert (hi - lo) == pytest.approx(10 * (a[1] - a[0]), rel=0.2)
    # normal-theory check: ~2 * 1.96 * s / sqrt(n) for 11 values (the small-sample widening included)
    expected = 2 * 1.96 * statistics.stdev(wide) / math.sqrt(len(wide))
    assert (hi - lo) == pytest.approx(expected, rel=0.2)
    assert bootstrap_ci([0.5]) == (0.5, 0.5)
    with pytest.raises(ConfigError, match="at least one"):
        bootstrap_ci([])
    with pytest.raises(ConfigError, match="level"):
        bootstrap_ci([1.0, 2.0], level=1.5)


def test_negative_and_overfit_checks():
    assert negative_beyond_ci((-0.5, -0.1))
    assert not negative_beyond_ci((-0.5, 0.01)) and not negative_beyond_ci(None)
    assert not negative_beyond_ci((-0.03, -0.01))  # within 0.02 nats of 0: a constant critic's DV is < 0
    curve = [0.0, 0.5, 0.8, 0.7, 0.4]
    assert holdout_overfit(curve, best=2, noise=0.05)  # fell 0.4 > max(0.05, 3 * 0.05)
    assert not holdout_overfit(curve, best=2, noise=0.2)  # within the noise
    assert not holdout_overfit([0.1, 0.2, 0.3], best=2, noise=0.0)  # best is the last point
