"""The one training loop every run kind shares; encoder, probe and supervised runs differ in their step.

``Engine.fit`` runs epochs over in-memory tensors: each epoch draws a permutation from its own
``torch.Generator`` (the same on every rank), cuts it into global batches of ``batch_size`` (the remainder is
dropped, so every step sees a full batch) and gives each rank its slice (``distributed.shard_batch``). For
each batch it calls ``step(images, labels) -> (loss, metrics)``, backpropagates ``loss`` (clipped to
``max_grad_norm`` if set) and steps every optimiser. Schedulers step once per epoch (or per step). Validation
runs at epoch ends (``on_epoch_end``) or every ``eval_every`` steps (``on_eval``); ``select`` keeps the best
epoch's or step's state. Encoder, probe and supervised runs, ``estimate_mi`` and Algorithm 2's critics all
train here. Metrics go to ``RunDir.log_metrics`` (and TensorBoard when asked).

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
import time
from contextlib import AbstractContextManager
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn

from robustmi.errors import CheckpointError, ConfigError
from robustmi.runs import get_rng_state, load_checkpoint, save_checkpoint, set_rng_state
from robustmi.training.distributed import DistInfo, all_gather_objects, all_reduce_mean, shard_batch
from robustmi.training.engine_parts import (
    EngineConfig,
    EngineState,
    EpochHook,
    EpochOrder,
    Hooks,
    Step,
    apply_configured_lr,
    base_lr,
    batches_per_epoch,
    epoch_bar,
    load_scheduler,
    logged_after,
    non_finite_modules,
    scheduler_state,
    tensorboard_writer,
)

__all__ = ["Engine", "EngineConfig", "EngineState", "Step"]

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
        checkpoint_path: the state file, instead of ``RUN/checkpoints/last.pt`` (a measurement that trains
            several models, as Algorithm 2's critics, gives each its own; it works without a ``run_dir``).
        settings: JSON data saved with the checkpoint; resuming a checkpoint saved with other settings is a
            ``CheckpointError`` (None: not checked).
    """

    def __init__(self, cfg: EngineConfig, *, modules: dict[str, nn.Module], optimizers: dict[str, Any],
                 schedulers: dict[str, Any] | None = None, run_dir: Any = None,
                 dist_info: DistInfo | None = None, checkpoint_path: str | Path | None = None,
                 settings: dict[str, Any] | None = None) -> None:
        self.cfg, self.modules, self.optimizers = cfg, modules, optimizers
        self.schedulers = schedulers or {}
        self.run_dir, self.dist = run_dir, dist_info or DistInfo()
        self._checkpoint_path = None if checkpoint_path is None else Path(checkpoint_path)
        self.settings = settings
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
        self._writer = tensorboard_writer(run_dir if self.dist.is_main else None, cfg.tensorboard)

    def autocast(self) -> AbstractContextManager:
        """bf16 autocast for a training forward pass when ``cfg.bf16`` (attacks disable it themselves)."""
        return torch.autocast(device_type=self.dist.device.type, dtype=torch.bfloat16, enabled=self.cfg.bf16)

    @property
    def checkpoint_path(self) -> Path | None:
        """The ``checkpoint_path`` given, else ``RUN/checkpoints/last.pt`` (``None`` without either)."""
        if self._checkpoint_path is not None:
            return self._checkpoint_path
        return None if self.run_dir is None else self.run_dir.checkpoint_dir / "last.pt"

    def fit(self, images: Tensor, labels: Tensor, step: Step, *, on_epoch_start: EpochHook | None = None,
            on_epoch_end: EpochHook | None = None, on_eval: EpochHook | None = None,
            epoch_order: EpochOrder | None = None, select: str | None = None, resume: bool = False) -> dict:
        """Train until ``epochs``, ``max_steps`` or ``max_minutes``; keep the best state if ``select`` is set.

        Args:
            images: (N, ...) training inputs on the training device (or CPU; batches are moved), e.g.
                (N, C, H, W) images.
            labels: (N, ...) labels or paired targets (ignored by unsupervised steps, still sliced alongside).
            step: ``step(x, y) -> (loss, metrics)`` for this rank's (B / W, ...) slice of a global batch.
            on_epoch_start: called with the epoch index after every module is put in ``train()`` mode.
            on_epoch_end: called with the epoch index; returns validation metrics to log (and select on).
            on_eval: called with the number of steps done, before the first step, every ``cfg.eval_every``
                steps and after the last; returns validation metrics to log (and select on, instead of
                ``on_epoch_end``'s): selection by step rather than by epoch.
            epoch_order: ``epoch -> (N,)`` permutation giving that epoch's data order (a protocol with its own
                seeds); None draws it from the engine's data generator.
            select: metric of ``on_eval`` (if given) or ``on_epoch_end`` to maximise; the best state of the
                modules is restored at the end (early stopping). ``None`` keeps the last one.
            resume: continue from the checkpoint (``checkpoint_path``) if it exists.

        Returns:
            Summary: epochs, steps, elapsed_s, stopped_by, best_epoch, best_step, best_score, the metrics of
            the last completed epoch (of this session), the step-metric means of an epoch cut short by a
            limit, ``recent_metrics`` (the step-metric means over the last ``log_every`` steps, rank 0's) and
            ``history`` (every validation record, over all sessions).
        """
        hooks = Hooks(on_epoch_start, on_epoch_end, on_eval, epoch_order, select)
        batches = batches_per_epoch(images.shape[0], self.cfg.batch_size)
        if resume:
            self.load()
        if self.run_dir is not None and hasattr(self.run_dir, "flush_config"):
            self.run_dir.flush_config()  # a resume held config.yaml back until its checkpoint loaded
        last: dict[str, float] = {}
        start = time.monotonic() - self.state.elapsed_s
        if on_eval is not None and self.state.step == 0 and not self.state.history:
            self._evaluate(hooks)  # the untrained state is a candidate too
        while self.state.epoch < self.cfg.epochs and not self.state.stopped_by:
            if self._run_epoch(images, labels, step, batches, hooks, start):
                last = self._end_epoch(hooks)
            self.state.elapsed_s = time.monotonic() - start
            if self.state.epoch < self.cfg.epochs and not self.state.stopped_by:
                self.save()
        evaluated = [h["step"] for h in self.state.history if h["kind"] == "eval"]
        if on_eval is not None and evaluated[-1:] != [self.state.step]:
            self._evaluate(hooks)  # the final state is a candidate too
        self.state.stopped_by = self.state.stopped_by or "epochs"
        self.save()
        if select is not None and self.best_modules is not None:
            for name, module in self.modules.items():
                module.load_state_dict(self.best_modules[name])
        if self._writer is not None:
            self._writer.close()
        return {"epochs": self.state.epoch, "steps": self.state.step,
                "elapsed_s": round(self.state.elapsed_s, 2), "stopped_by": self.state.stopped_by,
                "best_epoch": self.state.best_epoch, "best_step": self.state.best_step,
                "best_score": self.state.best_score, "last_epoch_metrics": last,
                "partial_epoch_metrics": self._partial_epoch_means(), "recent_metrics": self.recent,
                "lr_changes": self.state.lr_changes, "history": self.state.history}

    def _partial_epoch_means(self) -> dict[str, float]:
        """This rank's step-metric means over the batches of an epoch a limit cut short (else empty)."""
        done = self.state.batch
        return {k: v / done for k, v in self.state.epoch_sums.items()} if done else {}

    def _run_epoch(self, images: Tensor, labels: Tensor, step: Step, batches: int, hooks: Hooks,
                   start: float) -> bool:
        """Run the rest of the current epoch; True if it completed, False if a limit stopped it."""
        for module in self.modules.values():
            module.train()
        if hooks.on_epoch_start is not None:
            hooks.on_epoch_start(self.state.epoch)
        self.data_generator.set_state(self.epoch_generator_state)
        if hooks.epoch_order is not None:
            perm = hooks.epoch_order(self.state.epoch)  # (N,)
        else:
            perm = torch.randperm(images.shape[0], generator=self.data_generator)  # (N,)
        bar = epoch_bar(self.cfg, batches, self.state, self.cfg.progress and self.dist.is_main)
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
            every = self.cfg.eval_every
            if hooks.on_eval is not None and every and self.state.step % every == 0:
                self._evaluate(hooks)
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
        if self.cfg.max_grad_norm is not None:  # one rare huge gradient must not wreck Adam's moments
            params = [p for module in self.modules.values() for p in module.parameters()]
            torch.nn.utils.clip_grad_norm_(params, self.cfg.max_grad_norm)
        for optimizer in self.optimizers.values():
            try:
                optimizer.step()
            except RuntimeError as error:  # e.g. an lr beyond float32 ("cannot be converted ... overflow")
                if "overflow" not in str(error):
                    raise
                raise ConfigError(f"optimiser step {self.state.step + 1} overflowed (lr too large?); "
                                  f"{self._recovery_hint()}") from None
        bad = non_finite_modules(self.modules)
        if bad:  # stop before this state can reach a checkpoint
            raise ConfigError(f"parameters of {', '.join(bad)} became NaN/inf at step {self.state.step + 1}; "
                              f"{self._recovery_hint()}")
        if self.cfg.scheduler_interval == "step":
            for scheduler in self.schedulers.values():
                scheduler.step()
        return metrics

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

    def _end_epoch(self, hooks: Hooks) -> dict[str, float]:
        """Average the epoch's step metrics over steps and ranks, validate, select, log, step schedulers."""
        batches_done = max(self.state.batch, 1)
        train = all_reduce_mean({k: v / batches_done for k, v in self.state.epoch_sums.items()}, self.dist)
        extra = (hooks.on_epoch_end(self.state.epoch) if hooks.on_epoch_end is not None else None) or {}
        record = {**train, **extra}
        if hooks.on_eval is None:
            self._select(extra, hooks.select, "on_epoch_end")
        if self.cfg.scheduler_interval == "epoch":
            for scheduler in self.schedulers.values():
                scheduler.step()
        lrs = {f"lr_{n}": o.param_groups[0]["lr"] for n, o in self.optimizers.items()}
        entry = {"kind": "epoch", "epoch": self.state.epoch, "step": self.state.step, **record}
        self.state.history.append(entry)
        self._log({**entry, **lrs})
        self.state.epoch += 1
        self.state.batch = 0
        self.state.epoch_sums = {}
        return record

    def _evaluate(self, hooks: Hooks) -> None:
        """Step-level validation (``on_eval``): record, log and select on its metrics."""
        assert hooks.on_eval is not None
        metrics = hooks.on_eval(self.state.step) or {}
        self._select(metrics, hooks.select, "on_eval")
        record = {"kind": "eval", "epoch": self.state.epoch, "step": self.state.step, **metrics}
        self.state.history.append(record)
        self._log(record)

    def _select(self, metrics: dict[str, float], select: str | None, hook: str) -> None:
        """Keep a copy of every module's state when ``metrics[select]`` beats the best score so far."""
        if select is None:
            return
        if select not in metrics:
            raise KeyError(f"{hook} did not return the selection metric {select!r}")
        if self.state.best_score is None or metrics[select] > self.state.best_score:
            self.state.best_score, self.state.best_epoch = float(metrics[select]), self.state.epoch
            self.state.best_step = self.state.step
            # copies, not references: the optimisers keep changing the live weights
            self.best_modules = {n: copy.deepcopy(m.state_dict()) for n, m in self.modules.items()}

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
            "schedulers": {n: scheduler_state(s) for n, s in self.schedulers.items()},
            "rng": rng, "step_generators": step_gens,
            "epoch_generator": self.epoch_generator_state,
            "best_modules": self.best_modules or {},
        }
        meta = {**asdict(self.state), "world_size": self.dist.world_size, "settings": self.settings}
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
        if self.settings is not None and meta.get("settings") != self.settings:
            raise CheckpointError(f"checkpoint {str(path)!r} was written with other settings; resume with "
                                  f"the same settings or start a new --out folder")
        configured = {n: [base_lr(g) for g in o.param_groups] for n, o in self.optimizers.items()}
        try:
            for name, module in self.modules.items():
                module.load_state_dict(tensors["modules"][name])
            for name, optimizer in self.optimizers.items():
                optimizer.load_state_dict(tensors["optimizers"][name])
            for name, scheduler in self.schedulers.items():
                load_scheduler(scheduler, tensors["schedulers"][name])
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
        self.state.lr_changes += apply_configured_lr(self.optimizers, self.schedulers, configured,
                                                     self.state.step)
        if self.run_dir is not None and hasattr(self.run_dir, "drop_metrics"):
            epoch, done = self.state.epoch, self.state.step  # records after the checkpoint are logged again
            self.run_dir.drop_metrics(lambda r: logged_after(r, epoch, done))
        return True
