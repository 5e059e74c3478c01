"""Bounds as pure functions: closed-form MI with the exact critic, hand-computed values, stability, errors."""

from __future__ import annotations

import math

import pytest
import torch

from robustmi.errors import ConfigError
from robustmi.mi import (
    DVMovingAverage,
    dv_bound,
    dv_moving_average_surrogate,
    get_bound,
    infonce_bound,
    jsd_bound,
    list_bounds,
    nwj_bound,
    smile_bound,
)
from robustmi.mi.bounds import NWJ_MAX_EXPONENT

TRUE_MI = [0.5, 1.0, 2.0, 4.0]


def _mean_bound(bound, gaussian_pairs, gaussian_critic, mi, d, batch, reps, offset=0.0):
    """Average of ``bound(exact critic + offset)`` over ``reps`` independent batches."""
    values = []
    for rep in range(reps):
        x, y, rho = gaussian_pairs(batch, d, mi, rep)
        values.append(float(bound(gaussian_critic(x, y, rho) + offset)))
    return sum(values) / reps


@pytest.mark.parametrize("mi", TRUE_MI)
@pytest.mark.parametrize("d", [1, 5])
def test_dv_and_nwj_with_exact_critic_match_closed_form(gaussian_pairs, gaussian_critic, mi, d):
    """With T* = log p/q, DV and NWJ (at T* + 1, its optimum) recover I = -d/2 log(1 - rho^2) within 5 %."""
    dv = _mean_bound(dv_bound, gaussian_pairs, gaussian_critic, mi, d, batch=512, reps=6)
    nwj = _mean_bound(nwj_bound, gaussian_pairs, gaussian_critic, mi, d, batch=512, reps=6, offset=1.0)
    assert dv == pytest.approx(mi, rel=0.05)
    assert nwj == pytest.approx(mi, rel=0.05)


@pytest.mark.parametrize("mi", [1.0, 4.0, 8.0])
def test_infonce_never_exceeds_log_batch(gaussian_pairs, gaussian_critic, mi):
    """InfoNCE <= log B for any scores; with the exact critic it is close to I while I << log B."""
    batch = 64
    for rep in range(5):
        x, y, rho = gaussian_pairs(batch, 5, mi, rep)
        scores = gaussian_critic(x, y, rho)
        assert float(infonce_bound(scores)) <= math.log(batch) + 1e-9
        assert float(infonce_bound(100.0 * scores)) <= math.log(batch) + 1e-9  # any critic, not just T*
    if mi == 1.0:
        value = _mean_bound(infonce_bound, gaussian_pairs, gaussian_critic, mi, 5, batch=512, reps=4)
        assert value == pytest.approx(mi, rel=0.05)
    if mi == 8.0:  # saturation: I >> log 64, the bound sits just below log B
        value = _mean_bound(infonce_bound, gaussian_pairs, gaussian_critic, mi, 5, batch=batch, reps=4)
        assert math.log(batch) - 0.5 < value <= math.log(batch)


def test_dv_switch_matches_hand_computed_3x3():
    """Exact exclusion vs the authors' zeroed diagonal, on a 3 x 3 matrix computed by hand."""
    scores = torch.tensor([[1.0, 0.5, -1.0], [2.0, 3.0, 0.0], [-0.5, 1.5, 2.0]])
    positive = (1.0 + 3.0 + 2.0) / 3
    off = [0.5, -1.0, 2.0, 0.0, -0.5, 1.5]
    total = sum(math.exp(s) for s in off)
    exact = positive - math.log(total / 6)
    authors = positive - math.log((total + 3 * math.exp(0.0)) / 6)  # each zeroed positive adds exp(0) = 1
    assert float(dv_bound(scores)) == pytest.approx(exact, abs=1e-6)
    assert float(dv_bound(scores, include_positive_in_negatives=True)) == pytest.approx(authors, abs=1e-6)
    gap = float(dv_bound(scores)) - float(dv_bound(scores, include_positive_in_negatives=True))
    assert gap == pytest.approx(math.log((total + 3) / total), abs=1e-6)


def test_hand_computed_jsd_infonce_nwj():
    """The other three bounds on a 2 x 2 matrix, from their formulas."""
    scores = torch.tensor([[2.0, -1.0], [0.5, 1.0]])
    sp = lambda v: math.log1p(math.exp(v))  # noqa: E731  (softplus)
    jsd = 2 * math.log(2) + (-sp(-2.0) - sp(-1.0)) / 2 - (sp(-1.0) + sp(0.5)) / 2
    infonce = ((2.0 - math.log((math.exp(2.0) + math.exp(-1.0)) / 2))
               + (1.0 - math.log((math.exp(0.5) + math.exp(1.0)) / 2))) / 2
    nwj = (2.0 + 1.0) / 2 - (math.exp(-1.0 - 1) + math.exp(0.5 - 1)) / 2
    assert float(jsd_bound(scores)) == pytest.approx(jsd, abs=1e-6)
    assert float(infonce_bound(scores)) == pytest.approx(infonce, abs=1e-6)
    assert float(nwj_bound(scores)) == pytest.approx(nwj, abs=1e-6)


def test_jsd_range_zero_at_constant_and_log4_at_perfect_separation():
    """JSD objective: 0 for an uninformative critic, -> log 4 when positives and negatives separate."""
    assert float(jsd_bound(torch.zeros(6, 6))) == pytest.approx(0.0, abs=1e-6)
    separated = torch.full((6, 6), -50.0).fill_diagonal_(50.0)
    assert float(jsd_bound(separated)) == pytest.approx(math.log(4), abs=1e-6)


@pytest.mark.parametrize("name", list_bounds())
def test_per_location_is_mean_of_per_location_bounds(name):
    """(B, B, L) scores: the bound at each location, averaged over locations."""
    bound = get_bound(name)
    scores = torch.randn(5, 5, 4, generator=torch.Generator().manual_seed(0))
    per_location = [float(bound(scores[:, :, k])) for k in range(4)]
    assert float(bound(scores)) == pytest.approx(sum(per_location) / 4, abs=1e-5)


@pytest.mark.parametrize("name", list_bounds())
@pytest.mark.parametrize("magnitude", [1e4, -1e4])
def test_huge_scores_give_finite_values_and_gradients(name, magnitude):
    """Scores of +-1e4 (uniform, or mixed signs) keep every bound and its gradient finite."""
    bound = get_bound(name)
    g = torch.Generator().manual_seed(1)
    for base in (torch.full((8, 8, 3), magnitude), magnitude * torch.randn(8, 8, 3, generator=g)):
        scores = base.clone().requires_grad_(True)
        value = bound(scores)
        value.backward()
        assert torch.isfinite(value), (name, magnitude)
        assert torch.isfinite(scores.grad).all(), (name, magnitude)
    if name == "dv":
        scores = (magnitude * torch.randn(8, 8, generator=g)).requires_grad_(True)
        dv_bound(scores, include_positive_in_negatives=True).backward()
        assert torch.isfinite(scores.grad).all()


def test_nwj_linear_continuation_above_the_exponent_limit():
    """Above exp(50) the NWJ negative term is continued by its tangent: exp(50) * (1 + u - 50)."""
    u = NWJ_MAX_EXPONENT + 10.0
    scores = torch.zeros(2, 2, dtype=torch.float64)
    scores[0, 1] = u + 1.0  # exponent u after the -1 shift
    expected_negative = (math.exp(NWJ_MAX_EXPONENT) * (1 + u - NWJ_MAX_EXPONENT) + math.exp(-1.0)) / 2
    assert float(nwj_bound(scores)) == pytest.approx(0.0 - expected_negative, rel=1e-9)


def test_dv_moving_average_value_and_gradient():
    """Value = DV of the batch; gradient = E_P grad T - E_Q[e^T grad T] / EMA with the EMA as a constant."""
    g = torch.Generator().manual_seed(0)
    first, second = torch.randn(6, 6, generator=g), torch.randn(6, 6, generator=g).requires_grad_(True)
    ema = DVMovingAverage(momentum=0.9)
    ema(first)
    log_avg_first = float(ema.log_average[0])
    surrogate = ema(second)
    assert float(surrogate.detach()) == pytest.approx(float(dv_bound(second.detach())), abs=1e-6)
    off = ~torch.eye(6, dtype=torch.bool)
    batch_mean = float(second.detach()[off].exp().mean())
    running = 0.9 * math.exp(log_avg_first) + 0.1 * batch_mean
    assert float(ema.log_average[0]) == pytest.approx(math.log(running), rel=1e-5)
    surrogate.backward()
    expected = torch.eye(6) / 6 - off.float() * second.detach().exp() / 30 / running
    torch.testing.assert_close(second.grad, expected, atol=1e-6, rtol=1e-5)


def test_dv_moving_average_momentum_zero_is_plain_dv_gradient():
    """With momentum 0 the surrogate's gradient equals the DV gradient."""
    scores = torch.randn(5, 5, 2, generator=torch.Generator().manual_seed(3), requires_grad=True)
    surrogate, _ = dv_moving_average_surrogate(scores, None, momentum=0.0)
    (grad_surrogate,) = torch.autograd.grad(surrogate, scores)
    (grad_dv,) = torch.autograd.grad(dv_bound(scores), scores)
    torch.testing.assert_close(grad_surrogate, grad_dv)


def test_dv_moving_average_errors_and_reset():
    with pytest.raises(ConfigError, match="momentum"):
        DVMovingAverage(momentum=1.0)
    ema = DVMovingAverage()
    ema(torch.randn(4, 4, 3))
    with pytest.raises(ConfigError, match="locations"):
        ema(torch.randn(4, 4, 2))
    ema.reset()
    assert ema.log_average is None
    assert torch.isfinite(ema(torch.randn(4, 4, 2)))


def test_registry_lists_all_bounds_and_rejects_unknown_names():
    assert list_bounds() == ["dv", "jsd", "infonce", "nwj", "smile"]
    assert get_bound("dv") is dv_bound
    with pytest.raises(ConfigError, match="dv, jsd, infonce, nwj, smile"):
        get_bound("mine-f")


def test_smile_is_dv_with_clipped_negatives():
    """SMILE = mean T_ii - log mean_{i != j} exp(clamp(T_ij, -tau, tau)); DV once no score reaches tau."""
    g = torch.Generator().manual_seed(0)
    small = torch.randn(6, 6, generator=g)
    assert float(smile_bound(small, clip=5.0)) == pytest.approx(float(dv_bound(small)), abs=1e-6)
    scores = 4.0 * torch.randn(6, 6, dtype=torch.float64, generator=g)
    off = ~torch.eye(6, dtype=torch.bool)
    expected = scores.diagonal().mean() - scores.clamp(-1.0, 1.0)[off].exp().mean().log()
    assert float(smile_bound(scores, clip=1.0)) == pytest.approx(float(expected), rel=1e-9)
    with pytest.raises(ConfigError, match="clip"):
        smile_bound(scores, clip=0.0)


def test_smile_caps_the_partition_term_variance():
    """One huge negative score wrecks DV but SMILE stays above -log(1 + e^tau / (B (B - 1)))."""
    scores = torch.zeros(8, 8, dtype=torch.float64)
    scores[0, 1] = 40.0
    assert float(dv_bound(scores)) < -30.0
    assert float(smile_bound(scores, clip=5.0)) > -math.log(1 + math.exp(5.0) / 56) - 1e-9


@pytest.mark.parametrize(
    "scores, match",
    [
        (torch.zeros(3, 4), "shape"),
        (torch.zeros(3), "shape"),
        (torch.zeros(1, 1), "at least 2"),
        (torch.zeros(3, 3, dtype=torch.long), "floating"),
    ],
)
@pytest.mark.parametrize("name", list_bounds())
def test_malformed_scores_raise_config_error(name, scores, match):
    with pytest.raises(ConfigError, match=match):
        get_bound(name)(scores)
