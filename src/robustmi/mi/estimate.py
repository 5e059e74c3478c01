"""Neural MI estimation: train a fresh critic on paired samples, report a held-out lower bound in nats.

This is the "normal-case MI" half of the paper's Algorithm 2 (S App. B; PAPER.md §3) with an
interchangeable bound: a critic is trained by gradient ascent on the chosen bound over random minibatches of
the training pairs, then the bound is evaluated, critic frozen, on held-out pairs, in batches of the same
size, and averaged.

Reported value: the DV bound (nats) of the trained critic for ``estimator`` in {"dv", "jsd", "nwj"} (as in the
MINE/DIM literature, a critic trained with the JSD or NWJ objective is read out with DV, which is invariant to
the critic's additive offset and is the tightest of the three for a given critic), and the InfoNCE bound for
``estimator="infonce"`` (so it never exceeds log batch_size).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from robustmi.errors import ConfigError, RobustMIError
from robustmi.mi.bounds import dv_bound, get_bound, infonce_bound
from robustmi.mi.critics import create_critic, list_critics

__all__ = ["MIEstimate", "estimate_mi", "estimate_mi_of", "report_bound_name"]


@dataclass
class MIEstimate:
    """Result of :func:`estimate_mi`.

    Attributes:
        value: held-out MI lower bound in nats (mean over held-out batches).
        train_curve: the training objective (the chosen bound) after each step, as floats.
        settings: every knob used (estimator, critic and its kwargs, steps, batch_size, lr, seed, holdout,
            sample counts, shapes, the bound used for the reported value).
        holdout_values: the reported bound on each held-out batch (``value`` is their mean).
        flags: sanity flags: ``"not_converged"`` when the training objective was still rising at the end (a
            line fitted to the last quarter of the curve rises by more than 0.05 nats + 5 % across it): train
            longer or with a larger ``lr``.
    """

    value: float
    train_curve: list[float]
    settings: dict[str, Any]
    holdout_values: list[float] = field(default_factory=list)
    flags: list[str] = field(default_factory=list)


def report_bound_name(estimator: str) -> str:
    """The bound used to report nats for a training ``estimator``: "infonce" for InfoNCE, "dv" otherwise."""
    get_bound(estimator)  # validates the name
    return "infonce" if estimator == "infonce" else "dv"


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


def _check_sizes(n: int, n_z: int, batch_size: int, holdout: float, steps: int) -> tuple[int, int]:
    """Validate sizes; return (n_train, n_holdout)."""
    if n != n_z:
        raise ConfigError(f"x and z have different numbers of samples ({n} vs {n_z}); pass paired samples")
    if batch_size < 2:
        raise ConfigError(f"batch_size must be >= 2 to form negative pairs, got {batch_size}")
    if not 0.0 < holdout < 1.0:
        raise ConfigError(f"holdout must be a fraction in (0, 1), got {holdout}")
    if steps < 1:
        raise ConfigError(f"steps must be >= 1, got {steps}")
    n_hold = int(round(n * holdout))
    n_train = n - n_hold
    if n_hold < batch_size or n_train < batch_size:
        raise ConfigError(
            f"too few samples: {n} pairs give {n_train} train / {n_hold} held-out, each needs >= batch_size "
            f"({batch_size}); pass more samples or a smaller batch_size"
        )
    return n_train, n_hold


def _build_critic(name: str, x: Tensor, z: Tensor, kwargs: dict[str, Any], seed: int) -> nn.Module:
    """Create the critic with sizes inferred from x (N, ...) and z (N, D), initialised from ``seed``."""
    if name not in list_critics():
        raise ConfigError(f"unknown critic {name!r}; choose one of {', '.join(list_critics())}")
    if name == "image":
        if x.dim() != 4:
            raise ConfigError(f"critic 'image' needs images x (N, C, H, W), got {tuple(x.shape)}")
        sizes = {"in_chans": x.shape[1], "z_dim": z.shape[1]}
    else:
        sizes = {"x_dim": x[0].numel(), "z_dim": z.shape[1]}
    # fork_rng: seed the initialisation without disturbing the caller's global RNG state.
    with torch.random.fork_rng(devices=[x.device] if x.device.type == "cuda" else []):
        torch.manual_seed(seed)
        critic = create_critic(name, **{**sizes, **kwargs})
    return critic.to(x.device)


def _batches(n: int, batch_size: int, steps: int, generator: torch.Generator) -> list[Tensor]:
    """``steps`` index batches: consecutive slices of reshuffled epochs (sampling without replacement)."""
    out: list[Tensor] = []
    while len(out) < steps:
        perm = torch.randperm(n, generator=generator)
        out += [perm[k : k + batch_size] for k in range(0, n - batch_size + 1, batch_size)]
    return out[:steps]


def _train(critic: nn.Module, x: Tensor, z: Tensor, estimator: str, cfg: dict[str, Any]) -> list[float]:
    """Maximise the bound over minibatches of (x, z); returns the per-step objective values."""
    bound = get_bound(estimator)
    opt = torch.optim.Adam(critic.parameters(), lr=cfg["lr"])
    sched = None
    if cfg["lr_schedule"] == "cosine":  # anneal to 0: the final critic is not jittered by the last steps
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg["steps"])
    gen = torch.Generator().manual_seed(cfg["seed"])
    critic.train()
    curve: list[float] = []
    for idx in _batches(x.shape[0], cfg["batch_size"], cfg["steps"], gen):
        idx = idx.to(x.device)
        objective = bound(critic(x[idx], z[idx]))
        opt.zero_grad(set_to_none=True)
        (-objective).backward()
        if cfg["max_grad_norm"] is not None:  # a rare huge exp(T) term must not wreck Adam's moments
            torch.nn.utils.clip_grad_norm_(critic.parameters(), cfg["max_grad_norm"])
        opt.step()
        if sched is not None:
            sched.step()
        curve.append(float(objective.detach()))
    return curve


@torch.no_grad()
def _evaluate(critic: nn.Module, x: Tensor, z: Tensor, batch_size: int, report: str) -> list[float]:
    """Reported bound on consecutive held-out batches (the remainder smaller than batch_size is dropped)."""
    bound = infonce_bound if report == "infonce" else dv_bound
    critic.eval()  # frozen critic: BatchNorm uses its running statistics, so batches do not interact
    return [
        float(bound(critic(x[k : k + batch_size], z[k : k + batch_size])))
        for k in range(0, x.shape[0] - batch_size + 1, batch_size)
    ]


def _not_converged(curve: list[float]) -> bool:
    """True when the training objective still rises over the last quarter of the steps.

    A least-squares line through the last quarter of ``curve``; flagged when its rise over that quarter
    exceeds 0.05 nats + 5 % of the quarter's mean. Curves shorter than 20 steps are not judged.
    """
    if len(curve) < 20:
        return False
    tail = torch.tensor(curve[-(len(curve) // 4) :], dtype=torch.float64)
    t = torch.arange(len(tail), dtype=torch.float64)
    slope = float(((t - t.mean()) * (tail - tail.mean())).sum() / ((t - t.mean()) ** 2).sum())
    return slope * len(tail) > 0.05 + 0.05 * abs(float(tail.mean()))


def estimate_mi(
    x: Tensor,
    z: Tensor,
    estimator: str = "dv",
    critic: str = "separable",
    steps: int = 1000,
    batch_size: int = 128,
    lr: float = 1e-3,
    seed: int = 0,
    *,
    holdout: float = 0.2,
    lr_schedule: str = "cosine",
    max_grad_norm: float | None = 10.0,
    critic_kwargs: dict[str, Any] | None = None,
) -> MIEstimate:
    """Estimate I(X; Z) in nats from paired samples with a freshly trained neural critic.

    The pairs are shuffled (``seed``) and split into training and held-out parts (``holdout`` fraction). A
    critic is trained with Adam for ``steps`` minibatches of ``batch_size`` pairs, maximising the
    ``estimator`` bound; then the bound named by :func:`report_bound_name` (DV, or InfoNCE for
    ``estimator="infonce"``) is averaged over consecutive held-out batches of ``batch_size`` pairs with the
    critic frozen.

    The learning rate is annealed to zero with a cosine schedule by default. With a constant rate the
    final critic keeps jittering and the held-out estimate sits 5-15 % below the truth on correlated
    Gaussians at the same step count (measured while building this module); ``lr_schedule="constant"``
    gives the paper's fixed rate. Gradients are clipped to norm ``max_grad_norm``: without it, one batch
    with a huge exp(T) term (NWJ at 4 nats, measured) inflated Adam's second moments and the critic never
    recovered (held-out estimate -500 nats instead of 3.9).

    Args:
        x: (N, ...) samples of X, any shape after the sample axis; flattened to (N, D_x) for vector critics,
            (N, C, H, W) images in [0, 1] for ``critic="image"``.
        z: (N, ...) samples of Z paired with x; flattened to (N, D_z).
        estimator: training bound, one of :func:`robustmi.mi.list_bounds` ("dv", "jsd", "infonce", "nwj").
        critic: one of :func:`robustmi.mi.list_critics` ("separable", "concat", "image").
        steps: training steps (minibatches).
        batch_size: pairs per batch (>= 2); also the held-out batch size, which sets the negatives per
            positive.
        lr: Adam learning rate.
        seed: seeds the split, the batch order and the critic initialisation (the global RNG is left
            untouched).
        holdout: fraction of pairs kept for the reported estimate.
        lr_schedule: ``"cosine"`` (anneal from ``lr`` to 0 over ``steps``) or ``"constant"``.
        max_grad_norm: clip the critic's gradient norm to this value each step; None disables clipping.
        critic_kwargs: extra critic arguments (e.g. ``hidden``, ``embed``, ``width``, ``num_convs``).

    Returns:
        :class:`MIEstimate` with ``value`` (nats, held-out), ``train_curve`` and ``settings``.

    Raises:
        ConfigError: mismatched sample counts, NaN/inf inputs, unknown estimator or critic, batch_size < 2,
            too few samples for the split, or invalid critic arguments.

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> x = torch.randn(2000, 2, generator=g)
        >>> est = estimate_mi(x, x + 0.1 * torch.randn(2000, 2, generator=g), steps=200)
        >>> est.value > 1.0
        True
    """
    report = report_bound_name(estimator)
    if lr_schedule not in ("cosine", "constant"):
        raise ConfigError(f"unknown lr_schedule {lr_schedule!r}; choose 'cosine' or 'constant'")
    if max_grad_norm is not None and not max_grad_norm > 0:
        raise ConfigError(f"max_grad_norm must be positive or None, got {max_grad_norm}")
    x, z = _as_samples(x, "x"), _as_samples(z, "z")
    n_train, n_hold = _check_sizes(x.shape[0], z.shape[0], batch_size, holdout, steps)
    z = z.reshape(z.shape[0], -1).to(x.device)  # (N, ...) -> (N, D_z)
    if critic != "image":
        x = x.reshape(x.shape[0], -1)  # (N, ...) -> (N, D_x)
    kwargs = dict(critic_kwargs or {})
    net = _build_critic(critic, x, z, kwargs, seed)
    perm = torch.randperm(x.shape[0], generator=torch.Generator().manual_seed(seed)).to(x.device)
    train_idx, hold_idx = perm[:n_train], perm[n_train:]
    cfg = {"lr": lr, "lr_schedule": lr_schedule, "seed": seed, "batch_size": batch_size, "steps": steps,
           "max_grad_norm": max_grad_norm}
    curve = _train(net, x[train_idx], z[train_idx], estimator, cfg)
    values = _evaluate(net, x[hold_idx], z[hold_idx], batch_size, report)
    settings = {
        "estimator": estimator, "critic": critic, "critic_kwargs": kwargs, "steps": steps,
        "batch_size": batch_size, "lr": lr, "lr_schedule": lr_schedule, "seed": seed, "holdout": holdout,
        "max_grad_norm": max_grad_norm, "report_bound": report,
        "num_train": n_train, "num_holdout": n_hold, "num_holdout_batches": len(values),
        "x_shape": list(x.shape[1:]), "z_shape": list(z.shape[1:]),
    }  # fmt: skip
    flags = ["not_converged"] if _not_converged(curve) else []
    return MIEstimate(sum(values) / len(values), curve, settings, values, flags)


def _features(encoder: nn.Module, images: Tensor, layer: str | None, batch_size: int) -> Tensor:
    """Representations of ``images`` (N, C, H, W) -> (N, ...), encoder in eval mode, no gradients."""
    was_training = encoder.training
    encoder.eval()  # representation as deployed: BatchNorm running stats, no dropout
    device = next((p.device for p in encoder.parameters()), images.device)
    chunks = []
    try:
        with torch.no_grad():  # the encoder is only read, never trained, here
            for k in range(0, images.shape[0], batch_size):
                xb = images[k : k + batch_size].to(device)
                if layer is None:
                    chunks.append(encoder.forward_features(xb))
                else:
                    from robustmi.models import extract_layer  # lazy: models sits beside mi in the core layer

                    chunks.append(extract_layer(encoder, xb, layer))
    finally:
        encoder.train(was_training)
    return torch.cat(chunks)


def estimate_mi_of(
    encoder: nn.Module,
    dataset: Any,
    layer: str | None = None,
    limit: int | None = None,
    critic: str = "image",
    **kwargs: Any,
) -> MIEstimate:
    """Estimate I(X; g(X)) of an encoder's representation on a dataset ("normal-case MI", PAPER.md §3).

    Computes z = ``encoder.forward_features(x)`` (or the output of the named ``layer`` via
    :func:`robustmi.models.extract_layer`) with the encoder in eval mode and without gradients, then calls
    :func:`estimate_mi` with x the images (by default with the paper's image critic).

    Args:
        encoder: a model following the robustmi interface (``forward_features``); its mode is restored
            afterwards.
        dataset: a :class:`robustmi.data.Dataset` (its ``images``, (N, C, H, W) in [0, 1]) or an image tensor.
        layer: optional layer name to tap instead of the representation (e.g. a conv layer for per-neuron
            studies).
        limit: use only the first ``limit`` images.
        critic: critic name passed to :func:`estimate_mi` (default ``"image"``).
        **kwargs: further :func:`estimate_mi` arguments (estimator, steps, batch_size, lr, seed, holdout,
            critic_kwargs).

    Returns:
        :class:`MIEstimate`; ``settings`` also records ``layer``, ``limit`` and the encoder class.

    Raises:
        RobustMIError: as :func:`estimate_mi`, a dataset without images, or an unknown layer (ModelError).
    """
    images = dataset.images if hasattr(dataset, "images") else dataset
    if not torch.is_tensor(images) or images.dim() != 4:
        raise ConfigError("dataset must be a robustmi.data.Dataset or an image tensor (N, C, H, W)")
    if limit is not None:
        if limit < 1:
            raise ConfigError(f"limit must be a positive number of images, got {limit}")
        images = images[:limit]
    z = _features(encoder, images, layer, batch_size=256)
    if not torch.isfinite(z).all():
        raise RobustMIError("the encoder produced NaN/inf features; check the model weights and inputs")
    est = estimate_mi(images.to(z.device), z, critic=critic, **kwargs)
    est.settings.update(layer=layer, limit=limit, encoder=type(encoder).__name__)
    return est
