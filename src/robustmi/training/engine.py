"""The one training loop every run kind shares; encoder, probe and supervised runs differ in their step.

``Engine.fit`` runs epochs over in-memory tensors: each epoch draws a permutation from its own
``torch.Generator`` (the same on every rank), cuts it into global batches of ``batch_size`` (the remainder is
dropped, so every step sees a full batch) and gives each rank its slice (``distributed.shard_batch``). For
each batch it calls ``step(images, labels) -> (loss, metrics)``, backpropagates ``loss`` and steps every
optimiser. Schedulers step once per epoch. Metrics go to ``RunDir.log_metrics`` (and TensorBoard when asked).

State for ``resume`` is written to ``RUN/checkpoints/last.pt`` at each epoch end and whenever a limit
(``max_steps``, ``max_minutes``) stops training: modules, optimisers, schedulers, every rank's global RNG
state, the data and step generators, epoch, batch position, step, elapsed time and the early-stopping best.
Resuming replays the permutation of the interrupted epoch from its saved generator state and skips the batches
already done, so in deterministic mode a resumed run ends with the same weights as an uninterrupted one. The
metrics records logged after the checkpoint are dropped (they are logged again), and a learning rate changed
since the checkpoint is applied (the optimisers' saved state would restore the old one) and recorded in
``lr_changes``. After every optimiser step the parameters are checked: a NaN/inf stops training before
anything is saved, so ``last.pt`` always holds the last good state, and the error names it.

Example:
    >>> engine = Engine(EngineConfig(epochs=2, batch_size=64), modules={"model": model},
    ...                 optimizers={"model": torch.optim.Adam(model.parameters())}, run_dir=run)
    >>> summary = engine.fit(images, labels, step)   # step(x, y) -> (loss, {"loss": float})
"""

from __future__ import annotations

import copy
import math
import time
from collections import Counter
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn

from robustmi.errors import CheckpointError, ConfigError
from robustmi.progress import progress_bar
from robustmi.runs import get_rng_state, load_checkpoint, save_checkpoint, set_rng_state
from robustmi.training.distributed import DistInfo, all_gather_objects, all_reduce_mean, shard_batch

Step = Callable[[Tensor, Tensor], tuple[Tensor, dict[str, float]]]
EpochHook = Callable[[int], dict[str, float] | None]


@dataclass
class EngineConfig:
    """Loop knobs (the run configs' shared fields map onto these one to one)."""

    epochs: int
    batch_size: int
    max_steps: int | None = None
    max_minutes: float | None = None
    log_every: int = 50
    seed: int = 0
    bf16: bool = False
    progress: bool = True
    tensorboard: bool = False


@dataclass
class EngineState:
    """Where training stands; saved in the checkpoint's meta (JSON)."""

    epoch: int = 0            # epochs completed
    batch: int = 0            # batches of the current epoch done
    step: int = 0             # optimiser steps done
    elapsed_s: float = 0.0    # training time over all sessions
    best_score: float | None = None
    best_epoch: int | None = None
    stopped_by: str = ""      # "epochs", "max_steps" or "max_minutes" once training ends
    epoch_sums: dict[str, float] = field(default_factory=dict)  # running sums of this epoch's step metrics
    lr_changes: list[dict[str, Any]] = field(default_factory=list)  # lr changed on resume: step, from, to


class Engine:
    """Epoch loop, optimiser steps, checkpoints, resume, logging and early-stopping selection.

    Args:
        cfg: loop knobs.
        modules: name -> module whose state is checkpointed (unwrapped; DDP wrappers live in the step).
        optimizers: name -> optimiser; all are zeroed before and stepped after each ``step``.
        schedulers: name -> LR scheduler stepped at each epoch end.
        run_dir: the ``robustmi.runs.RunDir`` for metrics and checkpoints (every rank reads a checkpoint on
            resume; rank 0 alone writes), or ``None`` for neither.
        dist_info: this process's rank, world size and device.
    """

    def __init__(self, cfg: EngineConfig, *, modules: dict[str, nn.Module], optimizers: dict[str, Any],
                 schedulers: dict[str, Any] | None = None, run_dir: Any = None,
                 dist_info: DistInfo | None = None) -> None:
        self.cfg, self.modules, self.optimizers = cfg, modules, optimizers
        self.schedulers = schedulers or {}
        self.run_dir, self.dist = run_dir, dist_info or DistInfo()
        self.state = EngineState()
        # data order: identical on every rank, so the ranks' slices tile each global batch
        self.data_generator = torch.Generator().manual_seed(cfg.seed)
        self.epoch_generator_state = self.data_generator.get_state()
        # attack starts, augmentation: different on every rank, on the training device
        self.step_generator = torch.Generator(device=self.dist.device)
        self.step_generator.manual_seed(cfg.seed + 1 + self.dist.rank)
        self.best_modules: dict[str, dict[str, Tensor]] | None = None
        self.recent: dict[str, float] = {}  # means of the step metrics over the last logged window
        self._window: dict[str, float] = {}
        self._window_steps = 0
        self._saved_at: tuple[int, int] | None = None  # (epoch, step) of the last checkpoint written or read
        # every rank checks that tensorboard imports (same error everywhere); rank 0 alone writes events
        self._writer = _tensorboard_writer(run_dir if self.dist.is_main else None, cfg.tensorboard)

    def autocast(self) -> AbstractContextManager:
        """bf16 autocast for a training forward pass when ``cfg.bf16`` (attacks disable it themselves)."""
        return torch.autocast(device_type=self.dist.device.type, dtype=torch.bfloat16, enabled=self.cfg.bf16)

    @property
    def checkpoint_path(self) -> Path | None:
        """``RUN/checkpoints/last.pt`` (``None`` without a run folder)."""
        return None if self.run_dir is None else self.run_dir.checkpoint_dir / "last.pt"

    def fit(self, images: Tensor, labels: Tensor, step: Step, *, on_epoch_start: EpochHook | None = None,
            on_epoch_end: EpochHook | None = None, select: str | None = None, resume: bool = False) -> dict:
        """Train until ``epochs``, ``max_steps`` or ``max_minutes``; keep the best epoch if ``select`` is set.

        Args:
            images: (N, C, H, W) training images on the training device (or CPU; batches are moved).
            labels: (N,) labels (ignored by unsupervised steps, still sliced alongside).
            step: ``step(x, y) -> (loss, metrics)`` for this rank's (B / W, ...) slice of a global batch.
            on_epoch_start: called with the epoch index after every module is put in ``train()`` mode.
            on_epoch_end: called with the epoch index; returns validation metrics to log (and select on).
            select: metric of ``on_epoch_end`` to maximise; the best epoch's module states are restored at the
                end (early stopping). ``None`` keeps the last epoch.
            resume: continue from ``RUN/checkpoints/last.pt`` if it exists.

        Returns:
            Summary: epochs, steps, elapsed_s, stopped_by, best_epoch, best_score, the metrics of the last
            completed epoch (of this session), the step-metric means of an epoch cut short by a limit, and
            ``recent_metrics``: the step-metric means over the last ``log_every`` steps (rank 0's).
        """
        batches = _batches_per_epoch(images.shape[0], self.cfg.batch_size)
        if resume:
            self.load()
        if self.run_dir is not None and hasattr(self.run_dir, "flush_config"):
            self.run_dir.flush_config()  # a resume held config.yaml back until its checkpoint loaded
        last: dict[str, float] = {}
        start = time.monotonic() - self.state.elapsed_s
        while self.state.epoch < self.cfg.epochs and not self.state.stopped_by:
            if self._run_epoch(images, labels, step, batches, on_epoch_start, start):
                last = self._end_epoch(on_epoch_end, select)
            self.state.elapsed_s = time.monotonic() - start
            if self.state.epoch < self.cfg.epochs and not self.state.stopped_by:
                self.save()
        self.state.stopped_by = self.state.stopped_by or "epochs"
        self.save()
        if select is not None and self.best_modules is not None:
            for name, module in self.modules.items():
                module.load_state_dict(self.best_modules[name])
        if self._writer is not None:
            self._writer.close()
        return {"epochs": self.state.epoch, "steps": self.state.step,
                "elapsed_s": round(self.state.elapsed_s, 2), "stopped_by": self.state.stopped_by,
                "best_epoch": self.state.best_epoch, "best_score": self.state.best_score,
                "last_epoch_metrics": last, "partial_epoch_metrics": self._partial_epoch_means(),
                "recent_metrics": self.recent, "lr_changes": self.state.lr_changes}

    def _partial_epoch_means(self) -> dict[str, float]:
        """This rank's step-metric means over the batches of an epoch a limit cut short (else empty)."""
        done = self.state.batch
        return {k: v / done for k, v in self.state.epoch_sums.items()} if done else {}

    def _run_epoch(self, images: Tensor, labels: Tensor, step: Step, batches: int,
                   on_epoch_start: EpochHook | None, start: float) -> bool:
        """Run the rest of the current epoch; True if it completed, False if a limit stopped it."""
        for module in self.modules.values():
            module.train()
        if on_epoch_start is not None:
            on_epoch_start(self.state.epoch)
        self.data_generator.set_state(self.epoch_generator_state)
        perm = torch.randperm(images.shape[0], generator=self.data_generator)  # (N,)
        bar = _progress(self.cfg, batches, self.state, self.cfg.progress and self.dist.is_main)
        while self.state.batch < batches:
            if self._limit_reached(start):
                bar.close()
                return False
            b = self.state.batch
            idx = shard_batch(perm[b * self.cfg.batch_size:(b + 1) * self.cfg.batch_size], self.dist)
            metrics = self._train_step(step, images[idx], labels[idx])
            self.state.batch += 1
            self.state.step += 1
            for key, value in metrics.items():
                self.state.epoch_sums[key] = self.state.epoch_sums.get(key, 0.0) + value
                self._window[key] = self._window.get(key, 0.0) + value
            self._window_steps += 1
            if self.state.step % self.cfg.log_every == 0:
                self._log_window()
            bar.update(1)
            bar.set_postfix({k: f"{v:.3g}" for k, v in metrics.items()}, refresh=False)
        bar.close()
        self.epoch_generator_state = self.data_generator.get_state()
        return True

    def _log_window(self) -> None:
        """Log the means of the step metrics since the last step record (this rank's, not all-reduced)."""
        self.recent = {k: v / self._window_steps for k, v in self._window.items()}
        self._log({"kind": "step", "epoch": self.state.epoch, "step": self.state.step, **self.recent})
        self._window, self._window_steps = {}, 0

    def _train_step(self, step: Step, x: Tensor, y: Tensor) -> dict[str, float]:
        x, y = x.to(self.dist.device, non_blocking=True), y.to(self.dist.device, non_blocking=True)
        for optimizer in self.optimizers.values():
            optimizer.zero_grad(set_to_none=True)
        loss, metrics = step(x, y)
        if not torch.isfinite(loss.detach()):
            raise ConfigError(f"training loss is {loss.item()} at step {self.state.step + 1}; "
                              f"{self._recovery_hint()}")
        loss.backward()
        for optimizer in self.optimizers.values():
            try:
                optimizer.step()
            except RuntimeError as error:  # e.g. an lr beyond float32 ("cannot be converted ... overflow")
                if "overflow" not in str(error):
                    raise
                raise ConfigError(f"optimiser step {self.state.step + 1} overflowed (lr too large?); "
                                  f"{self._recovery_hint()}") from None
        bad = self._non_finite_modules()
        if bad:  # stop before this state can reach a checkpoint
            raise ConfigError(f"parameters of {', '.join(bad)} became NaN/inf at step {self.state.step + 1}; "
                              f"{self._recovery_hint()}")
        return metrics

    def _non_finite_modules(self) -> list[str]:
        """Names of the modules with a NaN/inf parameter or float buffer (one device sync for all)."""
        flags = {name: [t.detach().isfinite().all() for t in (*m.parameters(), *m.buffers())
                        if t.is_floating_point()] for name, m in self.modules.items()}
        flat = [f for fs in flags.values() for f in fs]
        if not flat or bool(torch.stack(flat).all()):
            return []
        return [name for name, fs in flags.items() if fs and not bool(torch.stack(fs).all())]

    def _recovery_hint(self) -> str:
        """Where the last good state is and how to continue from it (nothing newer was saved)."""
        path = self.checkpoint_path
        if path is None or not path.is_file():
            return "no checkpoint was saved yet; lower lr (or turn off bf16) and start again"
        epoch, step = self._saved_at or ("?", "?")
        return (f"nothing was saved; the last good checkpoint {str(path)!r} (epoch {epoch}, step {step}) "
                f"is kept: lower lr (or turn off bf16) and resume it, e.g. --resume lr=...")

    def _limit_reached(self, start: float) -> bool:
        """Check max_steps / max_minutes; under DDP rank 0's clock decides for everyone (no rank left
        behind)."""
        if self.cfg.max_steps is not None and self.state.step >= self.cfg.max_steps:
            self.state.stopped_by = "max_steps"
        elif self.cfg.max_minutes is not None:
            late = torch.tensor([float(time.monotonic() - start >= 60.0 * self.cfg.max_minutes)],
                                device=self.dist.device)  # NCCL broadcasts CUDA tensors only
            if self.dist.enabled:
                dist.broadcast(late, src=0)
            if late.item():
                self.state.stopped_by = "max_minutes"
        return bool(self.state.stopped_by)

    def _end_epoch(self, on_epoch_end: EpochHook | None, select: str | None) -> dict[str, float]:
        """Average the epoch's step metrics over steps and ranks, validate, select, log, step schedulers."""
        batches_done = max(self.state.batch, 1)
        train = all_reduce_mean({k: v / batches_done for k, v in self.state.epoch_sums.items()}, self.dist)
        extra = (on_epoch_end(self.state.epoch) if on_epoch_end is not None else None) or {}
        record = {**train, **extra}
        if select is not None:
            if select not in extra:
                raise KeyError(f"on_epoch_end did not return the selection metric {select!r}")
            if self.state.best_score is None or extra[select] > self.state.best_score:
                self.state.best_score, self.state.best_epoch = float(extra[select]), self.state.epoch
                self.best_modules = {n: copy.deepcopy(m.state_dict()) for n, m in self.modules.items()}
        for scheduler in self.schedulers.values():
            scheduler.step()
        lrs = {f"lr_{n}": o.param_groups[0]["lr"] for n, o in self.optimizers.items()}
        self._log({"kind": "epoch", "epoch": self.state.epoch, "step": self.state.step, **record, **lrs})
        self.state.epoch += 1
        self.state.batch = 0
        self.state.epoch_sums = {}
        return record

    def _log(self, record: dict[str, Any]) -> None:
        if not self.dist.is_main:
            return
        if self.run_dir is not None:
            self.run_dir.log_metrics(record)
        if self._writer is not None:
            for key, value in record.items():
                if isinstance(value, float):
                    self._writer.add_scalar(f"{record['kind']}/{key}", value, record["step"])

    def save(self) -> None:
        """Write the training state to ``RUN/checkpoints/last.pt`` (all ranks take part; rank 0 writes)."""
        rng = all_gather_objects(get_rng_state(), self.dist)
        step_gens = all_gather_objects(self.step_generator.get_state(), self.dist)
        if not self.dist.is_main or self.checkpoint_path is None:
            return
        tensors: dict[str, Any] = {
            "modules": {n: m.state_dict() for n, m in self.modules.items()},
            "optimizers": {n: o.state_dict() for n, o in self.optimizers.items()},
            "schedulers": {n: _scheduler_state(s) for n, s in self.schedulers.items()},
            "rng": rng, "step_generators": step_gens,
            "epoch_generator": self.epoch_generator_state,
            "best_modules": self.best_modules or {},
        }
        meta = {**asdict(self.state), "world_size": self.dist.world_size}
        meta["elapsed_s"] = float(meta["elapsed_s"])
        save_checkpoint(self.checkpoint_path, tensors, meta)
        self._saved_at = (self.state.epoch, self.state.step)

    def load(self) -> bool:
        """Restore the state saved by :meth:`save`; False (and a fresh start) if there is no checkpoint
        yet."""
        path = self.checkpoint_path
        if path is None:
            raise CheckpointError("resume needs a run folder; pass the --out folder of the run to resume")
        if not path.is_file():
            return False
        tensors, meta = load_checkpoint(path)
        configured = {n: [_base_lr(g) for g in o.param_groups] for n, o in self.optimizers.items()}
        try:
            for name, module in self.modules.items():
                module.load_state_dict(tensors["modules"][name])
            for name, optimizer in self.optimizers.items():
                optimizer.load_state_dict(tensors["optimizers"][name])
            for name, scheduler in self.schedulers.items():
                _load_scheduler(scheduler, tensors["schedulers"][name])
        except (KeyError, RuntimeError, ValueError, TypeError) as error:
            problem = " ".join(str(error).split())[:120]  # torch's messages span lines
            raise CheckpointError(f"checkpoint {str(path)!r} does not match this run ({problem}); "
                                  f"resume with the same config, or start a new --out folder") from None
        same_world = meta.get("world_size") == self.dist.world_size
        rank = self.dist.rank if same_world else 0  # another world size: the resume is not bit-exact
        set_rng_state(tensors["rng"][rank])
        self.step_generator.set_state(tensors["step_generators"][rank])
        self.epoch_generator_state = tensors["epoch_generator"]
        self.best_modules = tensors["best_modules"] or None
        fields = {k: meta[k] for k in asdict(EngineState()) if k in meta}
        self.state = EngineState(**fields)
        self.state.stopped_by = ""  # limits are re-checked against this session's config
        self._saved_at = (self.state.epoch, self.state.step)
        self._apply_configured_lr(configured)
        if self.run_dir is not None and hasattr(self.run_dir, "drop_metrics"):
            epoch, done = self.state.epoch, self.state.step  # records after the checkpoint are logged again
            self.run_dir.drop_metrics(lambda r: _after(r, epoch, done))
        return True

    def _apply_configured_lr(self, configured: dict[str, list[float]]) -> None:
        """Keep the lr this session was configured with: loading an optimiser's state restores the saved
        one. The schedule is rescaled by new/old base lr (so its position is kept) and the change recorded."""
        for name, optimizer in self.optimizers.items():
            for i, (group, new) in enumerate(zip(optimizer.param_groups, configured[name], strict=True)):
                old = _base_lr(group)
                if old == new:
                    continue
                scale = new / old if old and math.isfinite(old) else None
                group["lr"] = group["lr"] * scale if scale is not None else new
                if "initial_lr" in group:
                    group["initial_lr"] = new
                for scheduler in self.schedulers.values():
                    if getattr(scheduler, "optimizer", None) is optimizer:
                        scheduler.base_lrs[i] = new
                        if hasattr(scheduler, "_last_lr"):
                            scheduler._last_lr[i] = group["lr"]
                self.state.lr_changes.append({"step": self.state.step, "optimizer": name, "group": i,
                                              "from": old, "to": new})


def _base_lr(group: dict[str, Any]) -> float:
    """A param group's configured lr: ``initial_lr`` when a scheduler manages it, else ``lr``."""
    return float(group.get("initial_lr", group["lr"]))


def _after(record: dict[str, Any], epoch: int, step: int) -> bool:
    """True for a metrics record logged after a checkpoint taken at (``epoch`` epochs done, ``step``)."""
    late_step = isinstance(record.get("step"), int) and record["step"] > step
    late_epoch = record.get("kind") == "epoch" and isinstance(record.get("epoch"), int) \
        and record["epoch"] >= epoch
    return late_step or late_epoch


def _scheduler_state(scheduler: Any) -> dict[str, Any]:
    """A scheduler's state_dict with ``Counter`` s (MultiStepLR's milestones) as plain dicts, which
    ``torch.load(weights_only=True)`` accepts."""
    return {k: dict(v) if isinstance(v, Counter) else v for k, v in scheduler.state_dict().items()}


def _load_scheduler(scheduler: Any, state: dict[str, Any]) -> None:
    """Inverse of :func:`_scheduler_state`: restores the ``Counter`` s of the live scheduler's state."""
    live = scheduler.state_dict()
    state = {k: Counter(v) if isinstance(live.get(k), Counter) else v for k, v in state.items()}
    scheduler.load_state_dict(state)


def _batches_per_epoch(n: int, batch_size: int) -> int:
    if n < batch_size:
        raise ConfigError(f"{n} training images are fewer than batch_size={batch_size}; lower batch_size or "
                          f"raise train_limit")
    return n // batch_size


def _progress(cfg: EngineConfig, batches: int, state: EngineState, enabled: bool) -> Any:
    """This epoch's bar, counting the whole run's steps so its ETA is the run's; epochs counted from 1."""
    total = cfg.epochs * batches if cfg.max_steps is None else min(cfg.epochs * batches, cfg.max_steps)
    desc = f"epoch {state.epoch + 1}/{cfg.epochs}"
    return progress_bar(total, desc, enabled, initial=state.step, unit="step")


def _tensorboard_writer(run_dir: Any, enabled: bool) -> Any:
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

