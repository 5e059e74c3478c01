"""Train a critic on paired samples through the training engine and score it on held-out pairs.

The training half of :func:`robustmi.mi.estimate_mi`: AdamW ascent on an MI bound over minibatches of the
training pairs, run by the one training loop (:class:`robustmi.training.Engine`: data order, gradient
clipping, per-step cosine schedule, step-level validation and best-step selection, NaN checks). Every
``eval_every`` steps (and before the first and after the last) the critic is scored, frozen, on validation
pairs; with ``selection="best"`` the best-scoring weights are kept, as Algorithm 2 keeps
θ_opt = argmax_t V(t) (PAPER.md §3), but on held-out pairs. :func:`fit_split` builds, trains and scores the
critic of one split of the pairs (with cross-fitting, one per fold).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from robustmi.errors import ConfigError
from robustmi.mi.bounds import get_bound
from robustmi.mi.critics import create_critic, list_critics
from robustmi.mi.splits import Split

__all__ = ["build_critic", "evaluate_critic", "fit_critic", "fit_split"]


def build_critic(name: str, x: Tensor, z: Tensor, kwargs: dict[str, Any], seed: int) -> nn.Module:
    """Create critic ``name`` with sizes inferred from x (N, ...) and z (N, D), initialised from ``seed``."""
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


@torch.no_grad()
def evaluate_critic(critic: nn.Module, x: Tensor, z: Tensor, batch_size: int, report: str) -> list[float]:
    """Bound ``report`` on consecutive held-out batches (the remainder smaller than batch_size is dropped)."""
    bound = get_bound(report)
    was_training = critic.training
    critic.eval()  # frozen critic: BatchNorm uses its running statistics, so batches do not interact
    values = [
        float(bound(critic(x[k : k + batch_size], z[k : k + batch_size])))
        for k in range(0, x.shape[0] - batch_size + 1, batch_size)
    ]
    critic.train(was_training)
    return values


def fit_critic(critic: nn.Module, data: dict[str, Tensor], cfg: dict[str, Any]) -> dict[str, Any]:
    """Maximise the ``cfg["estimator"]`` bound for ``cfg["steps"]`` minibatches of the training pairs.

    The untrained critic (step 0) is a candidate too: on independent data nothing beats it, and its DV
    estimate is ~0. With ``selection="best"`` the critic is left holding the weights of the best validation
    step (``cfg["report"]`` bound averaged over the validation batches), else those of the last step.

    Args:
        critic: the critic to train in place.
        data: ``x``, ``z`` (training pairs) and ``x_val``, ``z_val`` (validation pairs), on one device.
        cfg: ``estimator``, ``report``, ``steps``, ``batch_size``, ``lr``, ``lr_schedule``, ``weight_decay``,
            ``max_grad_norm``, ``selection``, ``eval_every``, ``seed`` (as :func:`robustmi.mi.estimate_mi`).

    Returns:
        ``curve`` (the training bound after each step), ``val_steps``, ``val_curve`` and ``best_step``.
    """
    from robustmi.training.distributed import DistInfo  # lazy: robustmi.training imports robustmi.mi
    from robustmi.training.engine import Engine, EngineConfig

    bound, batch_size, steps = get_bound(cfg["estimator"]), cfg["batch_size"], cfg["steps"]
    groups = getattr(critic, "param_groups", None)  # a critic may exempt parameters from decay, or pace them
    params = groups(cfg["weight_decay"], cfg["lr"]) if callable(groups) else critic.parameters()
    opt = torch.optim.AdamW(params, lr=cfg["lr"], weight_decay=cfg["weight_decay"])
    schedulers = {}
    if cfg["lr_schedule"] == "cosine":  # anneal to 0: the final critic is not jittered by the last steps
        schedulers["lr"] = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
    select = cfg["selection"] == "best"
    engine_cfg = EngineConfig(
        epochs=math.ceil(steps / (data["x"].shape[0] // batch_size)), batch_size=batch_size, max_steps=steps,
        seed=cfg["seed"], progress=False, max_grad_norm=cfg["max_grad_norm"], scheduler_interval="step",
        eval_every=cfg["eval_every"] if select else None,
    )  # fmt: skip
    engine = Engine(engine_cfg, modules={"critic": critic}, optimizers={"critic": opt}, schedulers=schedulers,
                    dist_info=DistInfo(device=data["x"].device))
    curve: list[float] = []

    def step(x: Tensor, z: Tensor) -> tuple[Tensor, dict[str, float]]:
        objective = bound(critic(x, z))
        curve.append(float(objective.detach()))
        return -objective, {"mi": curve[-1]}

    def validate(done: int) -> dict[str, float]:
        values = evaluate_critic(critic, data["x_val"], data["z_val"], batch_size, cfg["report"])
        return {"val_mi": sum(values) / len(values)}

    summary = engine.fit(data["x"], data["z"], step, on_eval=validate if select else None,
                         select="val_mi" if select else None)
    evals = [h for h in summary["history"] if h["kind"] == "eval"]
    best = summary["best_step"] if select and summary["best_step"] is not None else steps
    val_steps, val_curve = [h["step"] for h in evals], [h["val_mi"] for h in evals]
    return {"curve": curve, "val_steps": val_steps, "val_curve": val_curve, "best_step": best}


def fit_split(
    x: Tensor, z: Tensor, split: Split, critic: str, kwargs: dict[str, Any], cfg: dict[str, Any]
) -> dict[str, Any]:
    """Build critic ``critic`` (``kwargs``, seeded by ``split.seed``), train it on ``split``'s training pairs
    (step selected on its validation pairs) and score its test pairs, frozen.

    Args:
        x, z: (N, ...) and (N, D_z) paired samples, on one device; ``split`` indexes them.
        split: one critic's parts (:func:`robustmi.mi.splits.plan_splits`).
        critic, kwargs: the critic's registry name and arguments.
        cfg: as :func:`fit_critic` (its ``seed`` is replaced by ``split.seed``).

    Returns:
        :func:`fit_critic`'s result plus ``values`` (the ``cfg["report"]`` bound on each test batch) and
        ``val_batches`` (the number of validation batches).
    """
    cfg = {**cfg, "seed": split.seed}
    net = build_critic(critic, x, z, kwargs, split.seed)
    data = {"x": x[split.train], "z": z[split.train], "x_val": x[split.val], "z_val": z[split.val]}
    fit = fit_critic(net, data, cfg)
    fit["values"] = evaluate_critic(net, x[split.test], z[split.test], cfg["batch_size"], cfg["report"])
    fit["val_batches"] = split.val.shape[0] // cfg["batch_size"]
    return fit
