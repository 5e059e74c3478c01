"""The training engine's knobs, state, hooks and small helpers; the loop itself is ``engine.py``.

Kept apart so that ``engine.py`` reads as the loop: what a run configures (:class:`EngineConfig`), what a
checkpoint records (:class:`EngineState`), what a caller plugs in (:class:`Hooks`), and the helpers for
schedulers in checkpoints, a changed lr on resume, the NaN check, progress bars and TensorBoard.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from robustmi.errors import ConfigError
from robustmi.progress import progress_bar

Step = Callable[[Tensor, Tensor], tuple[Tensor, dict[str, float]]]
EpochHook = Callable[[int], dict[str, float] | None]
EpochOrder = Callable[[int], Tensor]


@dataclass
class EngineConfig:
    """Loop knobs (the run configs' shared fields map onto these one to one).

    ``max_grad_norm`` clips the norm of all modules' gradients before each optimiser step (None: no
    clipping); ``scheduler_interval`` steps the schedulers after every ``"epoch"`` or every ``"step"``;
    ``eval_every`` calls ``fit``'s ``on_eval`` hook every that many steps (besides before the first step and
    after the last).
    """

    epochs: int
    batch_size: int
    max_steps: int | None = None
    max_minutes: float | None = None
    log_every: int = 50
    seed: int = 0
    bf16: bool = False
    progress: bool = True
    tensorboard: bool = False
    max_grad_norm: float | None = None
    scheduler_interval: str = "epoch"
    eval_every: int | None = None

    def __post_init__(self) -> None:
        if self.scheduler_interval not in ("epoch", "step"):
            raise ConfigError(f"unknown scheduler_interval {self.scheduler_interval!r}; "
                              f"choose 'epoch' or 'step'")
        if self.max_grad_norm is not None and not self.max_grad_norm > 0:
            raise ConfigError(f"max_grad_norm must be positive or None, got {self.max_grad_norm}")
        if self.eval_every is not None and self.eval_every < 1:
            raise ConfigError(f"eval_every must be >= 1 step, got {self.eval_every}")


@dataclass
class EngineState:
    """Where training stands; saved in the checkpoint's meta (JSON)."""

    epoch: int = 0            # epochs completed
    batch: int = 0            # batches of the current epoch done
    step: int = 0             # optimiser steps done
    elapsed_s: float = 0.0    # training time over all sessions
    best_score: float | None = None
    best_epoch: int | None = None
    best_step: int | None = None  # optimiser steps done when the best score was measured
    stopped_by: str = ""      # "epochs", "max_steps" or "max_minutes" once training ends
    epoch_sums: dict[str, float] = field(default_factory=dict)  # running sums of this epoch's step metrics
    lr_changes: list[dict[str, Any]] = field(default_factory=list)  # lr changed on resume: step, from, to
    history: list[dict[str, Any]] = field(default_factory=list)  # every validation record ("epoch", "eval")


@dataclass
class Hooks:
    """What a caller plugs into ``Engine.fit`` (see its docstring)."""

    on_epoch_start: EpochHook | None = None
    on_epoch_end: EpochHook | None = None
    on_eval: EpochHook | None = None
    epoch_order: EpochOrder | None = None
    select: str | None = None


def base_lr(group: dict[str, Any]) -> float:
    """A param group's configured lr: ``initial_lr`` when a scheduler manages it, else ``lr``."""
    return float(group.get("initial_lr", group["lr"]))


def apply_configured_lr(optimizers: dict[str, Any], schedulers: dict[str, Any],
                        configured: dict[str, list[float]], step: int) -> list[dict[str, Any]]:
    """Keep the lr a resumed session was configured with (loading an optimiser's state restores the saved
    one). The schedule is rescaled by new/old base lr (so its position is kept); returns the changes made."""
    changes = []
    for name, optimizer in optimizers.items():
        for i, (group, new) in enumerate(zip(optimizer.param_groups, configured[name], strict=True)):
            old = base_lr(group)
            if old == new:
                continue
            scale = new / old if old and math.isfinite(old) else None
            group["lr"] = group["lr"] * scale if scale is not None else new
            if "initial_lr" in group:
                group["initial_lr"] = new
            for scheduler in schedulers.values():
                if getattr(scheduler, "optimizer", None) is optimizer:
                    scheduler.base_lrs[i] = new
                    if hasattr(scheduler, "_last_lr"):
                        scheduler._last_lr[i] = group["lr"]
            changes.append({"step": step, "optimizer": name, "group": i, "from": old, "to": new})
    return changes


def non_finite_modules(modules: dict[str, nn.Module]) -> list[str]:
    """Names of the modules with a NaN/inf parameter or float buffer (one device sync for all)."""
    flags = {name: [t.detach().isfinite().all() for t in (*m.parameters(), *m.buffers())
                    if t.is_floating_point()] for name, m in modules.items()}
    flat = [f for fs in flags.values() for f in fs]
    if not flat or bool(torch.stack(flat).all()):
        return []
    return [name for name, fs in flags.items() if fs and not bool(torch.stack(fs).all())]


def logged_after(record: dict[str, Any], epoch: int, step: int) -> bool:
    """True for a metrics record logged after a checkpoint taken at (``epoch`` epochs done, ``step``)."""
    late_step = isinstance(record.get("step"), int) and record["step"] > step
    late_epoch = record.get("kind") == "epoch" and isinstance(record.get("epoch"), int) \
        and record["epoch"] >= epoch
    return late_step or late_epoch


def scheduler_state(scheduler: Any) -> dict[str, Any]:
    """A scheduler's state_dict with ``Counter`` s (MultiStepLR's milestones) as plain dicts, which
    ``torch.load(weights_only=True)`` accepts."""
    return {k: dict(v) if isinstance(v, Counter) else v for k, v in scheduler.state_dict().items()}


def load_scheduler(scheduler: Any, state: dict[str, Any]) -> None:
    """Inverse of :func:`scheduler_state`: restores the ``Counter`` s of the live scheduler's state."""
    live = scheduler.state_dict()
    state = {k: Counter(v) if isinstance(live.get(k), Counter) else v for k, v in state.items()}
    scheduler.load_state_dict(state)


def batches_per_epoch(n: int, batch_size: int) -> int:
    """Full batches of one epoch (the remainder is dropped); a one-line error if there is none."""
    if n < batch_size:
        raise ConfigError(f"{n} training images are fewer than batch_size={batch_size}; lower batch_size or "
                          f"raise train_limit")
    return n // batch_size


def epoch_bar(cfg: EngineConfig, batches: int, state: EngineState, enabled: bool) -> Any:
    """This epoch's bar, counting the whole run's steps so its ETA is the run's; epochs counted from 1."""
    total = cfg.epochs * batches if cfg.max_steps is None else min(cfg.epochs * batches, cfg.max_steps)
    desc = f"epoch {state.epoch + 1}/{cfg.epochs}"
    return progress_bar(total, desc, enabled, initial=state.step, unit="step")


def tensorboard_writer(run_dir: Any, enabled: bool) -> Any:
    """A SummaryWriter in ``RUN/tensorboard`` (None when off or without a run folder)."""
    if not enabled:
        return None
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise ConfigError("tensorboard=true needs the tensorboard package; pip install tensorboard "
                          "(or set tensorboard=false)") from None
    if run_dir is None:
        return None
    return SummaryWriter(log_dir=str(run_dir.path / "tensorboard"))
