"""Neural MI estimation: train a fresh critic on paired samples, report a held-out estimate in nats with a CI.

This is the "normal-case MI" half of the paper's Algorithm 2 (S App. B; PAPER.md §3) with an
interchangeable bound. The pairs are split three ways: a critic is trained by gradient ascent on the chosen
bound over minibatches of the *training* pairs; every ``eval_every`` steps it is scored, frozen, on the
*validation* pairs, and the best step's critic is kept (as Algorithm 2 keeps θ_opt = argmax_t V(t), but on
held-out pairs); that critic's bound on the *test* pairs, in batches, is the reported value, with a bootstrap
confidence interval over the test batches. Below 50 000 pairs vector critics cross-fit by default
(:func:`default_folds`): ten (from 20 000 pairs: five) critics, each trained and selected on the other
folds, score their own fold, so every pair is reported once.

Reported value: the DV bound (nats) of the trained critic for ``estimator`` in {"dv", "jsd", "nwj"} (as in the
MINE/DIM literature, a critic trained with the JSD or NWJ objective is read out with DV, which is invariant to
the critic's additive offset and is the tightest of the three for a given critic), the InfoNCE bound for
``estimator="infonce"`` (so it never exceeds log batch_size) and the SMILE estimate for ``estimator="smile"``.

Why these defaults (benchmarks/RESULTS.md, "MI estimators"): with the previous defaults (last step, no
validation) a critic trained 1000 steps on 16 000 pairs memorised them: on 20-d rotated Gaussians its
held-out DV estimate was 0.36 nats *below zero* on independent data and ~20 % low at 1–4 nats, while its
training-batch estimate was 0.6 nats *above* zero. Selecting the step on validation pairs bounds that damage,
and the smaller, weight-decayed critic below removes most of it. Its linear and quadratic paths hold the
second-order part of the dependence, and the step count grows with the data (:func:`default_steps`): DV and
NWJ are within 10 % at 1-4 nats at every corner of issue 15's grid (10 / 30 dimensions, 10 000 / 50 000
pairs, two data draws; 0.906-1.013 of the truth), and 0 on independent data. At 30-d with 10 000 pairs one
split's 1000 test pairs added +-4 % of noise (DV 0.955 and 0.802 at 1 nat for two data draws); cross-fitting
removes it (0.908 / 0.906), leaving the critic's finite-data bias. NWJ reached DV's level once the critic's
score offset could reach NWJ's optimal constant of 1 + I nats (``SeparableCritic.OFFSET_LR_FACTOR``; before,
0.88-0.89 of the truth at 30-d, 10 000 pairs).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from robustmi.errors import ConfigError
from robustmi.mi.bounds import get_bound
from robustmi.mi.confidence import (
    bootstrap_ci,
    holdout_overfit,
    negative_beyond_ci,
    not_converged,
    t_interval,
)
from robustmi.mi.critic_training import fit_split
from robustmi.mi.splits import plan_splits

__all__ = [
    "CROSS_FIT_FOLDS",
    "MIEstimate",
    "default_folds",
    "default_steps",
    "default_weight_decay",
    "estimate_mi",
    "estimate_mi_over_seeds",
    "report_bound_name",
]

CRITIC_DEFAULTS: dict[str, dict[str, Any]] = {
    "separable": {"hidden": 128, "embed": 64, "layers": 1, "linear": True, "quadratic": True},
}
"""estimate_mi's per-critic defaults (``critic_kwargs`` given by the caller win).

Chosen on correlated Gaussians, 10-30 dimensions, rotated, 10 000 - 50 000 pairs (benchmarks/RESULTS.md, "MI
estimators"): the linear skip path finds linear dependence from few pairs; one narrow hidden layer and weight
decay on it (:func:`default_weight_decay`) keep the MLP part from memorising the training pairs. The quadratic
forms ``u(x) + v(z)`` complete the second-order part of the log density ratio (for jointly Gaussian
variables it is exactly bilinear + quadratic in each variable): a separable ``f(x) . g(z)`` cannot form a term
of one variable alone except through a constant embedding component, so without them the critic stays
tempered (its scores fit 0.7-0.8 x the true log-ratio at 30-d, 4 nats; the bilinear part alone tops out at
3.19 nats there). Measured on 20 000 fresh pairs: DV 0.938 -> 0.965 and NWJ 0.884 -> 0.892 of the truth at
30-d, 10 000 pairs, 4 nats; DV 0.942 -> 0.958 at 10-d, 1 nat. The previous critic (2 x 256 hidden, embed 128,
no decay) reached 0.79 / 3.71 nats at 1 / 4 nats (20-d, 20 000 pairs) even at its best validation step.
"""


def default_weight_decay(critic: str, x_dim: int, z_dim: int, num_train: int) -> float:
    """Default AdamW weight decay: ``min(2, 250 (x_dim + z_dim) / num_train)`` for "separable", else 0.

    Like a ridge penalty, the decay that stops memorisation scales with input dimensions per training pair.
    Measured (DV / NWJ, held out): 30-d, 8 000 training pairs, 1 nat needs ~2 (0.5: DV 0.89, NWJ 0.86; 2: DV
    0.94); 10-d, 40 000 pairs, 4 nats is hurt by 2 (NWJ 3.28) and fine at 0.2-0.5 (NWJ 3.69-3.72). The decay
    applies to the MLP part only (:meth:`SeparableCritic.param_groups`).
    """
    if critic != "separable":
        return 0.0
    return min(2.0, 250.0 * (x_dim + z_dim) / num_train)


def default_steps(num_train: int, batch_size: int) -> int:
    """Default training steps: ``max(1000, 10 epochs)``, 10 epochs = ``ceil(10 num_train / batch_size)``.

    A fixed step count under-trains on large data: 1000 steps of 128 are 3.2 epochs of 40 000 training pairs,
    and the NWJ-trained critic read 0.886 of the truth at 30-d, 50 000 pairs, 4 nats (DV on 20 000 fresh
    pairs); 3000 steps (9.6 epochs) read 0.944. Below 12 800 training pairs the 1000-step floor rules.
    """
    return max(1000, math.ceil(10 * num_train / batch_size))


CROSS_FIT_FOLDS: tuple[tuple[int, int], ...] = ((20_000, 10), (50_000, 5))
"""Default cross-fitting of vector critics, ``(below this many pairs, folds)`` in increasing order; one split
from the last threshold on (see :func:`default_folds`)."""


def default_folds(num_pairs: int, batch_size: int, critic: str) -> int:
    """Default folds: 10 below 20 000 pairs (at most one per batch of pairs), 5 below 50 000, else 1 (one
    split); 1 for the convolutional ``"image"`` critic, whose steps cost far more (folds not measured there).

    Measured on rotated Gaussians (benchmarks/RESULTS.md, "Cross-fitting" and "20 000 pairs"): one split
    reports on its 10 % test part only, whose own noise decides a draw's luck. At 10 000 pairs (1000 test
    pairs, sigma 0.042 nats at 1 nat) 30-d DV read 0.955 and 0.802 for two data draws; 10 folds read 0.908 /
    0.906 (CI +-3 % instead of +-9 %), and ten critics keep the single split's training size (5 folds read
    0.007-0.015 lower there). At 20 000 pairs one split still missed 10 % on one draw (20-d, 1 nat: 0.896,
    CI +-6 %) where 5 and 10 folds both read 0.958 (+-2 %), so 5 folds (each critic on 70 % of the pairs)
    hold up to 50 000, where one split's 5000 test pairs kept every corner within 10 % (CIs +-2-4 %). Cost:
    K critics (10 x 1000 steps below 20 000 pairs: 40-60 s instead of 4-6 s on a shared 2-vCPU machine).
    """
    if critic == "image":
        return 1
    for below, folds in CROSS_FIT_FOLDS:
        if num_pairs < below:
            return max(1, min(folds, num_pairs // batch_size))
    return 1


@dataclass
class MIEstimate:
    """Result of :func:`estimate_mi`.

    With cross-fitting (``settings["folds"]`` K >= 2) the curves and ``best_step`` are the first fold's
    critic's, ``value``, ``holdout_values`` and ``ci`` pool the test batches of all K critics, and the
    per-critic flags are raised when any critic raises them.

    Attributes:
        value: held-out MI estimate in nats (mean of the reported bound over the test batches).
        train_curve: the training objective (the chosen bound) after each step, as floats.
        settings: every knob used (estimator, critic and its kwargs, steps, batch_size, lr, seed, holdout,
            selection, folds, sample counts (train / validation: the first fold's), shapes, the bound used for
            the reported value).
        holdout_values: the reported bound on each test batch, fold after fold (``value`` is their mean).
        flags: sanity flags (docs/flags.md): ``"not_converged"`` (the training objective still rose over the
            last quarter of the steps by more than 0.05 nats + 5 %), ``"negative_mi"`` (the whole CI lies
            below -0.02 nats) and ``"critic_overfit"`` (the validation curve fell after its best step by more
            than its noise).
        ci: ``(low, high)`` confidence interval of ``value`` at ``ci_level``: bootstrap over the test batches
            (held-out sampling noise) or, from :func:`estimate_mi_over_seeds`, Student-t over seeds. It is an
            interval for the selected critic's bound, not for the true MI: the bound sits below the truth by
            the critic's approximation gap (measured 4-8 % for DV at 1-4 nats, docs in benchmarks/RESULTS.md).
            With ``best_step == 0`` (nothing learnt generalised) every score is 0 and the interval is [0, 0].
        ci_level: coverage of ``ci``.
        best_step: training steps of the selected critic (0 = untrained); ``steps`` with ``selection="last"``.
        val_steps, val_curve: the validation estimates and the steps at which they were taken.
        seed_values: per-seed values (only from :func:`estimate_mi_over_seeds`).
        fold_values: each critic's mean over its own test batches (one value without cross-fitting); their
            spread shows how much the critic's training, not the test pairs, moves the estimate.
    """

    value: float
    train_curve: list[float]
    settings: dict[str, Any]
    holdout_values: list[float] = field(default_factory=list)
    flags: list[str] = field(default_factory=list)
    ci: tuple[float, float] | None = None
    ci_level: float = 0.95
    best_step: int | None = None
    val_steps: list[int] = field(default_factory=list)
    val_curve: list[float] = field(default_factory=list)
    seed_values: list[float] = field(default_factory=list)
    fold_values: list[float] = field(default_factory=list)


def report_bound_name(estimator: str) -> str:
    """The bound used to report nats for a training ``estimator``: "infonce", "smile", or "dv" otherwise."""
    get_bound(estimator)  # validates the name
    return estimator if estimator in ("infonce", "smile") else "dv"


def _as_samples(t: Tensor, name: str) -> Tensor:
    """Validate a paired-sample tensor: at least 1-D, finite, floating; 1-D becomes (N, 1)."""
    if not torch.is_tensor(t):
        raise ConfigError(f"{name} must be a torch.Tensor of samples, got {type(t).__name__}")
    if t.dim() == 0:
        raise ConfigError(f"{name} must have a sample axis first, got a scalar")
    t = t.float() if not t.is_floating_point() else t
    if not torch.isfinite(t).all():
        raise ConfigError(f"{name} contains NaN or inf values; clean the inputs before estimating MI")
    return t.unsqueeze(1) if t.dim() == 1 else t  # (N,) -> (N, 1)


def _check_options(steps: int, lr_schedule: str, max_grad_norm: float | None, opts: dict[str, Any]) -> None:
    """One-line ConfigErrors for the training and selection knobs."""
    if steps < 1:
        raise ConfigError(f"steps must be >= 1, got {steps}")
    if lr_schedule not in ("cosine", "constant"):
        raise ConfigError(f"unknown lr_schedule {lr_schedule!r}; choose 'cosine' or 'constant'")
    if max_grad_norm is not None and not max_grad_norm > 0:
        raise ConfigError(f"max_grad_norm must be positive or None, got {max_grad_norm}")
    if opts["selection"] not in ("best", "last"):
        raise ConfigError(f"unknown selection {opts['selection']!r}; choose 'best' or 'last'")
    if opts["eval_every"] < 1:
        raise ConfigError(f"eval_every must be >= 1 step, got {opts['eval_every']}")
    if opts["weight_decay"] < 0:
        raise ConfigError(f"weight_decay must be >= 0, got {opts['weight_decay']}")


def _overfit(fit: dict[str, Any], level: float, seed: int) -> bool:
    """``critic_overfit`` for one critic: its validation curve fell after the best step by more than noise.

    The noise of one validation evaluation is the standard error of the mean over that critic's test
    batches (from their bootstrap interval), scaled to the number of validation batches.
    """
    if not fit["val_curve"]:
        return False
    low, high = bootstrap_ci(fit["values"], level, seed=seed)
    noise = (high - low) / (2 * 1.96) * math.sqrt(len(fit["values"]) / fit["val_batches"])
    last = len(fit["val_curve"]) - 1
    best = fit["val_steps"].index(fit["best_step"]) if fit["best_step"] in fit["val_steps"] else last
    return holdout_overfit(fit["val_curve"], best, noise)


def _flags(fits: list[dict[str, Any]], ci: tuple[float, float], level: float, seed: int) -> list[str]:
    """Sanity flags (see :class:`MIEstimate`): per-critic flags raised by any critic, ``negative_mi`` from
    the reported interval."""
    flags = ["not_converged"] if any(not_converged(fit["curve"]) for fit in fits) else []
    if negative_beyond_ci(ci):
        flags.append("negative_mi")
    if any(_overfit(fit, level, seed) for fit in fits):
        flags.append("critic_overfit")
    return flags


def estimate_mi(
    x: Tensor,
    z: Tensor,
    estimator: str = "dv",
    critic: str = "separable",
    steps: int | None = None,
    batch_size: int = 128,
    lr: float = 1e-3,
    seed: int = 0,
    *,
    holdout: float = 0.2,
    selection: str = "best",
    eval_every: int = 50,
    weight_decay: float | None = None,
    lr_schedule: str = "cosine",
    max_grad_norm: float | None = 10.0,
    critic_kwargs: dict[str, Any] | None = None,
    ci_level: float = 0.95,
    folds: int | None = None,
) -> MIEstimate:
    """Estimate I(X; Z) in nats from paired samples with a freshly trained neural critic, with a CI.

    The pairs are shuffled (``seed``) and split: a ``holdout`` fraction is held out, the rest trains. With
    ``selection="best"`` (default) the held-out pairs are halved into validation and test parts: a critic is
    trained with AdamW for ``steps`` minibatches of ``batch_size`` pairs, maximising the ``estimator`` bound,
    and scored on the validation pairs before training and every ``eval_every`` steps; the best-scoring
    weights are kept. The bound named by :func:`report_bound_name` (DV; InfoNCE for ``"infonce"``; SMILE for
    ``"smile"``) is then averaged over consecutive test batches of ``batch_size`` pairs with the critic
    frozen, and a percentile bootstrap over those batches gives ``ci``. ``selection="last"`` keeps the last
    step and reports on the whole held-out part (no validation split).

    Cross-fitting (``folds`` = K >= 2): the shuffled pairs are cut into K test folds of whole batches
    (:func:`robustmi.mi.splits.plan_splits`); for each fold a critic is trained, as above, on the other folds
    (its step selected on a validation part of them, ``holdout / 2`` of all pairs) and scores that fold,
    frozen. ``value`` is the mean bound over all test batches of all folds and ``ci`` the bootstrap over
    them: every pair (but a remainder of fewer than ``batch_size``) is reported once, by a critic that never
    trained or selected on it, at K times the cost. Why: with a single split the report rests on the
    ``holdout / 2`` test part only, whose own noise (+-4 % at 1 nat with 1000 test pairs, measured) adds to
    the critic's finite-data bias.

    Why best-step selection: a critic keeps raising its training bound by memorising training pairs long
    after its held-out bound has peaked; the last step's held-out estimate was measured 0.36 nats below zero
    on independent data. Selecting on a validation part and reporting on a separate test part keeps the
    report free of the selection's optimism. The learning rate is annealed to zero with a cosine schedule
    (a constant rate left the held-out estimate 5-15 % low at the same step count); ``lr_schedule="constant"``
    gives the paper's fixed rate. Gradients are clipped to norm ``max_grad_norm``: without it, one batch with
    a huge exp(T) term (NWJ at 4 nats, measured) inflated Adam's second moments and the critic never
    recovered.

    Args:
        x: (N, ...) samples of X, any shape after the sample axis; flattened to (N, D_x) for vector critics,
            (N, C, H, W) images in [0, 1] for ``critic="image"``.
        z: (N, ...) samples of Z paired with x; flattened to (N, D_z).
        estimator: training bound, one of :func:`robustmi.mi.list_bounds` ("dv", "jsd", "infonce", "nwj",
            "smile").
        critic: one of :func:`robustmi.mi.list_critics` ("separable", "concat", "image").
        steps: training steps (minibatches); None: :func:`default_steps` (1000, more on large data).
        batch_size: pairs per batch (>= 2); also the held-out batch size (it sets the negatives per positive).
        lr: AdamW learning rate.
        seed: seeds the split, the batch order, the critic initialisation and the bootstrap (the global RNG is
            left untouched); with folds, the first critic's seed, the others' drawn from it.
        holdout: fraction of pairs held out (validation + test, or test alone with ``selection="last"``); with
            folds >= 2 each critic's validation part is ``holdout / 2`` of the pairs.
        selection: ``"best"`` (validation-selected step) or ``"last"``.
        eval_every: validation period in steps (``selection="best"``).
        weight_decay: AdamW's decoupled weight decay; None: :func:`default_weight_decay`.
        lr_schedule: ``"cosine"`` (anneal from ``lr`` to 0 over ``steps``) or ``"constant"``.
        max_grad_norm: clip the critic's gradient norm to this value each step; None disables clipping.
        critic_kwargs: critic arguments (e.g. ``hidden``, ``embed``, ``width``, ``num_convs``), applied over
            :data:`CRITIC_DEFAULTS`.
        ci_level: coverage of the confidence interval.
        folds: 1 (one train / validation / test split) or K >= 2 (cross-fitting, K critics, see above);
            None: :func:`default_folds` (10 below 20 000 pairs, 5 below 50 000, else 1; 1 for the
            image critic).

    Returns:
        :class:`MIEstimate` with ``value`` (nats, test part; with folds, all folds' test parts), ``ci``,
        ``flags``, ``best_step``, the curves, ``fold_values`` and ``settings``.

    Raises:
        ConfigError: mismatched sample counts, NaN/inf inputs, unknown estimator, critic or selection,
            batch_size < 2, folds < 1, too few samples for the split or folds, or invalid critic arguments.

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> x = torch.randn(2000, 2, generator=g)
        >>> est = estimate_mi(x, x + 0.1 * torch.randn(2000, 2, generator=g), steps=200)
        >>> est.value > 1.0 and est.ci[0] <= est.value <= est.ci[1]
        True
    """
    report = report_bound_name(estimator)
    opts = {"selection": selection, "eval_every": eval_every, "weight_decay": weight_decay}
    x, z = _as_samples(x, "x"), _as_samples(z, "z")
    if x.shape[0] != z.shape[0]:
        raise ConfigError(
            f"x and z have different numbers of samples ({x.shape[0]} vs {z.shape[0]}); pass paired samples"
        )
    z = z.reshape(z.shape[0], -1).to(x.device)  # (N, ...) -> (N, D_z)
    if critic != "image":
        x = x.reshape(x.shape[0], -1)  # (N, ...) -> (N, D_x)
    folds = default_folds(x.shape[0], batch_size, critic) if folds is None else folds
    splits = plan_splits(x.shape[0], batch_size, holdout, folds, selection == "best", seed, x.device)
    n_train = splits[0].train.shape[0]  # the first split's sizes set the defaults of every fold
    if weight_decay is None:
        opts["weight_decay"] = default_weight_decay(critic, x[0].numel(), z.shape[1], n_train)
    steps = default_steps(n_train, batch_size) if steps is None else steps
    _check_options(steps, lr_schedule, max_grad_norm, opts)
    kwargs = {**CRITIC_DEFAULTS.get(critic, {}), **(critic_kwargs or {})}
    cfg = {"estimator": estimator, "report": report, "lr": lr, "lr_schedule": lr_schedule, "seed": seed,
           "batch_size": batch_size, "steps": steps, "max_grad_norm": max_grad_norm, **opts}  # fmt: skip
    fits = [fit_split(x, z, split, critic, kwargs, cfg) for split in splits]
    values = [v for fit in fits for v in fit["values"]]
    settings = {
        "estimator": estimator, "critic": critic, "critic_kwargs": kwargs, "steps": steps,
        "batch_size": batch_size, "lr": lr, "lr_schedule": lr_schedule, "seed": seed, "holdout": holdout,
        "selection": selection, "eval_every": eval_every, "weight_decay": opts["weight_decay"],
        "max_grad_norm": max_grad_norm, "report_bound": report, "folds": folds, "num_train": n_train,
        "num_val": splits[0].val.shape[0], "num_holdout": sum(s.test.shape[0] for s in splits),
        "num_holdout_batches": len(values), "x_shape": list(x.shape[1:]), "z_shape": list(z.shape[1:]),
        "ci": "bootstrap over test batches" + (f" of {folds} folds" if folds > 1 else ""),
    }  # fmt: skip
    first = fits[0]
    ci = bootstrap_ci(values, ci_level, seed=seed)
    return MIEstimate(
        sum(values) / len(values), first["curve"], settings, values, _flags(fits, ci, ci_level, seed), ci,
        ci_level, first["best_step"], first["val_steps"], first["val_curve"],
        fold_values=[sum(fit["values"]) / len(fit["values"]) for fit in fits],
    )  # fmt: skip


def estimate_mi_over_seeds(x: Tensor, z: Tensor, seeds: int | list[int] = 3, **kwargs: Any) -> MIEstimate:
    """:func:`estimate_mi` once per seed (new split, batch order and initialisation each); CI over seeds.

    The bootstrap CI of one :func:`estimate_mi` call covers held-out sampling noise only; repeating with
    other seeds also covers the randomness of the critic's training. ``value`` is the mean over seeds and
    ``ci`` the Student-t interval of that mean (``ci_level``), which accounts for the few repeats.

    Args:
        x, z: paired samples, as :func:`estimate_mi`.
        seeds: number of seeds (``0 .. seeds-1``) or the list of seeds; at least 2.
        **kwargs: further :func:`estimate_mi` arguments (``seed`` is not allowed).

    Returns:
        :class:`MIEstimate`: mean ``value``, Student-t ``ci``, ``seed_values``; the curves, test-batch values
        and ``best_step`` are the first seed's; ``flags`` is the union over seeds plus ``negative_mi`` from
        the seed interval.

    Raises:
        ConfigError: fewer than 2 seeds, a ``seed`` keyword, or anything :func:`estimate_mi` raises.
    """
    if "seed" in kwargs:
        raise ConfigError("pass seeds=[...] to estimate_mi_over_seeds, not seed=")
    seed_list = list(range(seeds)) if isinstance(seeds, int) else list(seeds)
    if len(seed_list) < 2:
        raise ConfigError(f"estimate_mi_over_seeds needs at least 2 seeds, got {seed_list}")
    runs = [estimate_mi(x, z, seed=s, **kwargs) for s in seed_list]
    first, level = runs[0], runs[0].ci_level
    values = [r.value for r in runs]
    ci = t_interval(values, level)
    flags = sorted({f for r in runs for f in r.flags if f != "negative_mi"})
    if negative_beyond_ci(ci):
        flags.append("negative_mi")
    settings = {**first.settings, "seeds": seed_list, "ci": "student-t over seeds"}
    return MIEstimate(
        sum(values) / len(values), first.train_curve, settings, first.holdout_values, flags, ci, level,
        first.best_step, first.val_steps, first.val_curve, values,
    )  # fmt: skip
