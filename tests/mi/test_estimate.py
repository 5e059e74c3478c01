"""estimate_mi with trained critics on correlated Gaussians (closed-form MI), settings, bad input."""

from __future__ import annotations

import math

import pytest
import torch

from robustmi.errors import ConfigError
from robustmi.mi import estimate_mi, estimate_mi_over_seeds, t_interval
from robustmi.mi.confidence import not_converged
from robustmi.mi.estimate import default_folds, default_steps
from robustmi.mi.splits import plan_splits

D = 5  # dimension of x and y; I = -D/2 log(1 - rho^2)


def _estimate(gaussian_pairs, mi, estimator, steps, n, seed=0, **kwargs):
    x, y, _ = gaussian_pairs(n, D, mi, seed)
    return estimate_mi(x, y, estimator=estimator, steps=steps, batch_size=128, lr=1e-3, seed=seed, **kwargs)


@pytest.mark.parametrize("estimator, mi", [("dv", 2.0), ("nwj", 1.0)])
def test_trained_critic_lands_within_10_percent(gaussian_pairs, estimator, mi):
    """Default-suite check: a separable critic trained 1500 steps recovers the closed-form MI within 10 %."""
    est = _estimate(gaussian_pairs, mi, estimator, steps=1500, n=50_000)
    assert est.value == pytest.approx(mi, rel=0.10), est.value
    assert est.flags == []


@pytest.mark.slow
@pytest.mark.parametrize("estimator", ["dv", "nwj"])
@pytest.mark.parametrize("mi", [0.5, 1.0, 2.0, 4.0])
def test_trained_critic_within_10_percent_up_to_4_nats(gaussian_pairs, estimator, mi):
    """DV and NWJ at 0.5, 1, 2, 4 nats (4 nats: more data and steps), two seeds each."""
    steps, n = (3000, 100_000) if mi == 4.0 else (1500, 50_000)
    for seed in (0, 1):
        est = _estimate(gaussian_pairs, mi, estimator, steps=steps, n=n, seed=seed)
        assert est.value == pytest.approx(mi, rel=0.10), (seed, est.value)


@pytest.mark.parametrize("estimator", ["dv", "infonce"])
def test_independent_data_gives_about_zero(estimator):
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(20_000, D, generator=g), torch.randn(20_000, D, generator=g)
    est = estimate_mi(x, y, estimator=estimator, steps=500, batch_size=128, seed=0)
    assert abs(est.value) < 0.05, est.value


def test_infonce_never_exceeds_log_batch(gaussian_pairs):
    """At 8 nats with batch 16, InfoNCE saturates just below log 16 and never exceeds it (train, held out)."""
    batch = 16
    x, y, _ = gaussian_pairs(10_000, D, 8.0, 0)
    est = estimate_mi(x, y, estimator="infonce", steps=400, batch_size=batch, seed=0, folds=1)
    log_b = math.log(batch)
    assert max(est.train_curve) <= log_b + 1e-6
    assert max(est.holdout_values) <= log_b + 1e-6
    assert log_b - 0.5 < est.value <= log_b
    assert est.settings["report_bound"] == "infonce"


def test_jsd_trained_critics_rank_dependence(gaussian_pairs):
    """JSD-trained critics, read out with DV in nats, order three dependence levels correctly."""
    values = []
    for mi in (0.2, 1.0, 3.0):
        x, y, _ = gaussian_pairs(10_000, 2, mi, 0)
        est = estimate_mi(x, y, estimator="jsd", steps=400, batch_size=128, seed=0, folds=1)
        assert est.settings["report_bound"] == "dv"
        values.append(est.value)
    assert values[0] < values[1] < values[2], values


def test_result_settings_reproducibility_and_global_rng(gaussian_pairs):
    x, y, _ = gaussian_pairs(1000, 2, 1.0, 0)
    state = torch.random.get_rng_state()
    kwargs = {"steps": 30, "batch_size": 32, "seed": 3, "critic_kwargs": {"hidden": 16, "embed": 8}}
    first = estimate_mi(x, y, folds=1, **kwargs)
    assert torch.equal(state, torch.random.get_rng_state())  # the caller's global RNG is untouched
    second = estimate_mi(x, y, folds=1, **kwargs)
    assert first.value == second.value and first.train_curve == second.train_curve
    assert len(first.train_curve) == 30 and all(isinstance(v, float) for v in first.train_curve)
    s = first.settings
    assert (s["estimator"], s["critic"], s["steps"], s["batch_size"], s["lr"], s["seed"]) == (
        "dv", "separable", 30, 32, 1e-3, 3
    )
    assert (s["num_train"], s["num_val"], s["num_holdout"], s["num_holdout_batches"]) == (800, 100, 100, 3)
    assert s["critic_kwargs"] == {"hidden": 16, "embed": 8, "layers": 1, "linear": True, "quadratic": True}
    assert s["lr_schedule"] == "cosine" and s["selection"] == "best"
    assert s["weight_decay"] == pytest.approx(250 * (2 + 2) / 800)  # default_weight_decay: dims per pair
    assert s["max_grad_norm"] == 10.0
    assert first.value == pytest.approx(sum(first.holdout_values) / 3)
    assert first.ci[0] <= first.value <= first.ci[1] and first.ci_level == 0.95
    assert first.val_steps == [0, 30] and len(first.val_curve) == 2 and first.best_step in (0, 30)


def test_any_sample_shapes_are_flattened():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(600, 2, 3, generator=g)
    z = x.sum(dim=(1, 2)) + 0.1 * torch.randn(600, generator=g)  # (N,) scalar feature
    est = estimate_mi(x, z, estimator="dv", critic="concat", steps=20, batch_size=16,
                      critic_kwargs={"hidden": 16}, lr_schedule="constant")
    assert est.settings["x_shape"] == [6] and est.settings["z_shape"] == [1]
    assert math.isfinite(est.value)


def test_not_converged_flag():
    assert not_converged([0.01 * k for k in range(100)])  # still rising at the end
    assert not not_converged([min(0.1 * k, 2.0) for k in range(100)])  # rose, then flat
    assert not not_converged([0.0, 5.0])  # too short to judge
    g = torch.Generator().manual_seed(0)
    x = torch.randn(4000, 2, generator=g)
    est = estimate_mi(x, x + 0.05 * torch.randn(4000, 2, generator=g), steps=100, batch_size=64, lr=1e-4,
                      lr_schedule="constant")  # far too few steps at a small rate
    assert "not_converged" in est.flags, est.train_curve[-12:]


@pytest.mark.parametrize(
    "x, z, kwargs, match",
    [
        (torch.randn(100, 2), torch.randn(99, 2), {}, "different numbers of samples"),
        (torch.full((100, 2), float("nan")), torch.randn(100, 2), {}, "NaN or inf"),
        (torch.randn(100, 2), torch.full((100, 2), float("inf")), {}, "NaN or inf"),
        (torch.randn(100, 2), torch.randn(100, 2), {"estimator": "mine"}, "unknown MI estimator"),
        (torch.randn(100, 2), torch.randn(100, 2), {"critic": "bilinear"}, "unknown critic"),
        (torch.randn(100, 2), torch.randn(100, 2), {"batch_size": 1}, "batch_size must be >= 2"),
        (torch.randn(100, 2), torch.randn(100, 2), {"batch_size": 64}, "too few samples"),
        (torch.randn(100, 2), torch.randn(100, 2), {"holdout": 1.5}, "holdout"),
        (torch.randn(100, 2), torch.randn(100, 2), {"steps": 0}, "steps"),
        (torch.randn(100, 2), torch.randn(100, 2), {"lr_schedule": "step"}, "lr_schedule"),
        (torch.randn(100, 2), torch.randn(100, 2), {"max_grad_norm": 0.0}, "max_grad_norm"),
        (torch.randn(100, 2), torch.randn(100, 2), {"selection": "first"}, "selection"),
        (torch.randn(100, 2), torch.randn(100, 2), {"eval_every": 0}, "eval_every"),
        (torch.randn(100, 2), torch.randn(100, 2), {"weight_decay": -1.0}, "weight_decay"),
        (torch.randn(100, 2), torch.randn(100, 2), {"critic": "image"}, "images"),
        ([1.0, 2.0], torch.randn(2, 2), {}, "torch.Tensor"),
        (torch.randn(100, 2), torch.randn(100, 2), {"critic_kwargs": {"depth": 2}}, "does not take depth"),
    ],
)
def test_bad_input_raises_one_line_config_error(x, z, kwargs, match):
    with pytest.raises(ConfigError, match=match) as info:
        estimate_mi(x, z, **{"steps": 5, "batch_size": 8, **kwargs})
    assert "\n" not in str(info.value)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_estimate_runs_on_the_inputs_device(gaussian_pairs):
    x, y, _ = gaussian_pairs(2000, 2, 1.0, 0)
    est = estimate_mi(x.cuda(), y.cuda(), steps=50, batch_size=64)
    assert math.isfinite(est.value)


def _rotated_pairs(n: int, d: int, mi: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Correlated Gaussians with I = ``mi`` nats (0: independent), the second variable randomly rotated;
    the same draws as ``benchmarks/mi_estimators.py`` ``rotated_pairs`` (so the slow grid is its table)."""
    g = torch.Generator().manual_seed(seed)
    rho = math.sqrt(1.0 - math.exp(-2.0 * mi / d))  # I = -d/2 log(1 - rho^2); 0 for mi = 0
    x = torch.randn(n, d, generator=g)
    y = rho * x + math.sqrt(1.0 - rho**2) * torch.randn(n, d, generator=g)
    rotation, _ = torch.linalg.qr(torch.randn(d, d, generator=g))
    return x, y @ rotation  # (n, d) @ (d, d): any rotation leaves the MI unchanged


def test_defaults_give_about_zero_on_independent_data():
    """Issue 15: |estimate| < 0.05 nats on independent 30-d data (rotated, 10 000 pairs), the defaults."""
    x, y = _rotated_pairs(10_000, 30, 0.0, 0)
    est = estimate_mi(x, y, steps=300)
    assert abs(est.value) < 0.05, est.value
    assert est.ci[0] <= est.value <= est.ci[1] and "negative_mi" not in est.flags


def test_best_step_selection_stops_a_memorising_critic():
    """The cause of issue 15's -0.33 nats: the previous defaults' critic (2 x 256 hidden, no weight decay)
    kept the last step, after it had memorised the training pairs. Its held-out DV on independent data is
    far below 0 (flagged ``negative_mi``); best-step selection keeps the untrained critic (all scores 0, DV
    exactly 0) and flags the fall of the validation curve as ``critic_overfit``."""
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(2000, 20, generator=g), torch.randn(2000, 20, generator=g)
    old = {"critic_kwargs": {"hidden": 256, "embed": 128, "layers": 2, "linear": False, "quadratic": False},
           "weight_decay": 0.0}
    last = estimate_mi(x, y, steps=250, batch_size=64, selection="last", folds=1, **old)
    assert last.value < -0.2 and "negative_mi" in last.flags, (last.value, last.flags)
    best = estimate_mi(x, y, steps=250, batch_size=64, folds=1, **old)
    assert abs(best.value) < 0.05 and "critic_overfit" in best.flags, (best.value, best.flags)
    assert "negative_mi" not in best.flags


@pytest.mark.parametrize("estimator", ["dv", "nwj"])
def test_defaults_within_10_percent_at_1_nat_rotated(estimator):
    """Issue 15's case (DV 0.81 at 1 nat before): 10-d, rotated, 10 000 pairs, the defaults: 10 cross-fitted
    critics (measured 0.984 DV, 0.985 NWJ, 95 % CI +-0.032); the 10 % margin is three times that."""
    x, y = _rotated_pairs(10_000, 10, 1.0, 1)
    est = estimate_mi(x, y, estimator=estimator)
    assert est.settings["folds"] == 10 and len(est.holdout_values) == 10_000 // 128
    assert est.value == pytest.approx(1.0, rel=0.10), (est.value, est.ci)
    assert est.ci[1] - est.ci[0] < 0.1 and est.flags == []


def test_default_folds_cross_fit_below_50000_pairs():
    assert default_folds(10_000, 128, "separable") == default_folds(19_999, 128, "concat") == 10
    assert default_folds(20_000, 128, "separable") == default_folds(49_999, 128, "separable") == 5
    assert default_folds(50_000, 128, "separable") == 1
    assert default_folds(600, 128, "separable") == 4  # at most one fold per batch of pairs
    assert default_folds(10_000, 128, "image") == 1  # a convolutional critic's steps cost far more


def test_default_steps_grow_with_the_training_pairs():
    assert default_steps(8_000, 128) == 1000  # the floor
    assert default_steps(40_000, 128) == 3125  # 10 epochs
    x, y = _rotated_pairs(600, 2, 1.0, 0)
    assert estimate_mi(x, y, batch_size=32, eval_every=500, folds=1).settings["steps"] == 1000


CORNERS = [(d, n, mi) for d in (10, 30) for n in (10_000, 20_000, 50_000) for mi in (1, 4)]
CORNERS += [(20, 20_000, mi) for mi in (1, 4)]  # the dimension, where one split once missed
INDEPENDENT = [(d, n) for n in (10_000, 20_000, 50_000) for d in (10, 30)] + [(20, 20_000)]


@pytest.mark.slow
@pytest.mark.parametrize("estimator", ["dv", "nwj"])
@pytest.mark.parametrize("seed", [1, 2])
@pytest.mark.parametrize("d, n, mi", CORNERS)
def test_defaults_within_10_percent_from_1_to_4_nats(estimator, seed, d, n, mi):
    """The corners of the issue's grid (dimension 10 / 30, 10 000 / 50 000 pairs, 1 / 4 nats) and 20 000
    pairs in 10 / 20 / 30 dimensions (where the default folds change), rotated, two data seeds, the defaults
    (estimate seed = data seed - 1): benchmarks/mi_estimators.py --defaults [--dims 20 30 10 --pairs 20000].
    """
    x, y = _rotated_pairs(n, d, mi, seed)
    est = estimate_mi(x, y, estimator=estimator, seed=seed - 1)
    assert est.value == pytest.approx(mi, rel=0.10), (est.value, est.ci)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2])
@pytest.mark.parametrize("d, n", INDEPENDENT)
def test_defaults_about_zero_on_independent_data_grid(d, n, seed):
    x, y = _rotated_pairs(n, d, 0.0, seed)
    for estimator in ("dv", "nwj"):
        assert abs(estimate_mi(x, y, estimator=estimator, seed=seed - 1).value) < 0.05


def test_selection_last_reports_on_the_whole_holdout():
    x, y = _rotated_pairs(2000, 3, 1.0, 0)
    est = estimate_mi(x, y, steps=40, batch_size=64, selection="last", folds=1)
    s = est.settings
    assert (s["num_train"], s["num_val"], s["num_holdout"]) == (1600, 0, 400)
    assert est.best_step == 40 and est.val_curve == [] and len(est.holdout_values) == 6


def test_over_seeds_gives_a_student_t_interval():
    x, y = _rotated_pairs(3000, 3, 1.0, 0)
    est = estimate_mi_over_seeds(x, y, seeds=3, steps=100, batch_size=64)
    assert len(est.seed_values) == 3 and est.value == pytest.approx(sum(est.seed_values) / 3)
    assert est.ci == pytest.approx(t_interval(est.seed_values))
    assert est.settings["seeds"] == [0, 1, 2] and est.settings["ci"] == "student-t over seeds"
    with pytest.raises(ConfigError, match="at least 2 seeds"):
        estimate_mi_over_seeds(x, y, seeds=[0])
    with pytest.raises(ConfigError, match="seeds="):
        estimate_mi_over_seeds(x, y, seed=1)


def test_smile_estimator_reports_smile():
    x, y = _rotated_pairs(3000, 3, 1.0, 0)
    est = estimate_mi(x, y, estimator="smile", steps=100, batch_size=64)
    assert est.settings["report_bound"] == "smile" and 0.5 < est.value < 1.2


def test_cross_fitting_splits_report_every_pair_once():
    """K folds of whole test batches: disjoint test parts covering all pairs but a remainder < batch_size;
    each critic's train, validation and test parts disjoint; folds=1 is the single split."""
    n, batch = 1000, 32  # 31 batches (remainder 8) in 4 folds of 8, 8, 8, 7 batches
    splits = plan_splits(n, batch, 0.2, 4, True, seed=5, device=torch.device("cpu"))
    tests = torch.cat([s.test for s in splits])
    assert [s.test.shape[0] for s in splits] == [256, 256, 256, 224]
    assert tests.unique().shape[0] == tests.shape[0] == n - n % batch
    for s in splits:
        parts = torch.cat([s.train, s.val, s.test])
        assert parts.unique().shape[0] == parts.shape[0] == n  # disjoint, and every pair in one part
        assert s.val.shape[0] == 100  # holdout / 2 of the pairs, as the single split's validation part
    assert len({s.seed for s in splits}) == 4 and splits[0].seed == 5
    (single,) = plan_splits(n, batch, 0.2, 1, True, seed=5, device=torch.device("cpu"))
    assert (single.train.shape[0], single.val.shape[0], single.test.shape[0]) == (800, 100, 100)


def test_cross_fitting_estimate_is_deterministic_pools_every_fold_and_has_a_ci():
    x, y = _rotated_pairs(1000, 3, 1.0, 0)
    kwargs = {"steps": 30, "batch_size": 32, "seed": 2, "critic_kwargs": {"hidden": 16, "embed": 8}}
    state = torch.random.get_rng_state()
    first = estimate_mi(x, y, folds=4, **kwargs)
    assert torch.equal(state, torch.random.get_rng_state())  # the caller's global RNG is untouched
    second = estimate_mi(x, y, folds=4, **kwargs)
    assert first.value == second.value and first.holdout_values == second.holdout_values
    assert first.fold_values == second.fold_values and len(first.fold_values) == 4
    s = first.settings
    assert (s["folds"], s["num_holdout"], s["num_holdout_batches"]) == (4, 992, 31)
    assert len(first.holdout_values) == 31  # every test batch of every fold is reported once
    assert first.value == pytest.approx(sum(first.holdout_values) / 31)
    assert first.ci[0] <= first.value <= first.ci[1] and s["ci"] == "bootstrap over test batches of 4 folds"
    assert len(first.train_curve) == 30 and first.val_steps == [0, 30]  # the first fold's curves
    single = estimate_mi(x, y, folds=1, **kwargs)
    assert single.settings["folds"] == 1 and single.fold_values == [single.value]
    assert len(single.holdout_values) == 3  # the single split's 100 test pairs


@pytest.mark.parametrize("folds, match", [(0, "folds must be >= 1"), (40, "fewer than folds")])
def test_bad_folds_raise_one_line_config_error(folds, match):
    with pytest.raises(ConfigError, match=match) as info:
        estimate_mi(torch.randn(1000, 2), torch.randn(1000, 2), steps=5, batch_size=32, folds=folds)
    assert "\n" not in str(info.value)
