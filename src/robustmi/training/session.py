"""What every run kind does around the engine: threads, process group, seeds, run folder, data, results.

A :class:`Session` is entered by ``train_encoder`` / ``train_probe`` / ``train_supervised``. It refuses a
folder holding another run (unless resuming) or being written by another process before anything is written,
and a start that fails leaves no half-made folder behind (nor a changed config.yaml when resuming); it joins
the torchrun process group if there is one, seeds every generator from ``cfg.seed`` (models are built
identically on every rank), and after training (:meth:`Session.finish_training`) leaves the process group, so
that rank 0's final evaluation and file writes never keep the other ranks waiting at a collective.
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path
from typing import Any

import torch

from robustmi.attacks import resolve_attacks
from robustmi.data import Dataset, load_dataset
from robustmi.errors import ConfigError
from robustmi.runs import RunDir, config_to_dict, seed_everything
from robustmi.runs.environment import cpu_capability
from robustmi.training.config import ClassifierSettings, TrainSettings
from robustmi.training.distributed import (
    DistInfo,
    check_batch_size,
    setup_distributed,
    teardown_distributed,
)
from robustmi.training.engine import EngineConfig

PROTOCOL_KEYS = ("dataset", "seed", "batch_size", "lr", "epochs", "bf16", "train_limit", "eval_limit")


class Session:
    """Context manager around one run (see module docstring).

    Args:
        cfg: the run config (any of the three kinds).
        out_dir: the run folder.
        resume: continue the run in ``out_dir`` from its last checkpoint.

    Attributes:
        run: the :class:`robustmi.runs.RunDir`.
        dist: this process's :class:`DistInfo`.
        device: where training happens (``cuda:LOCAL_RANK`` under torchrun with GPUs, else CPU).
    """

    def __init__(self, cfg: TrainSettings, out_dir: str | Path, resume: bool = False) -> None:
        self.cfg, self.out_dir, self.resume = cfg, Path(out_dir), resume
        self.run: Any = None
        self.dist = DistInfo()
        self._threads = torch.get_num_threads()
        self._started = time.monotonic()
        self._cpu_started = time.process_time()  # this process's CPU time, every thread

    def __enter__(self) -> Session:
        if self.cfg.num_threads is not None:
            torch.set_num_threads(self.cfg.num_threads)
        self.dist = setup_distributed()
        check_batch_size(self.cfg.batch_size, self.dist)
        resolve_attacks(list(self.cfg.eval_attacks), self.cfg.dataset)  # bad preset: fail before training
        for knob in ("bf16", "search_bf16"):
            if getattr(self.cfg, knob, False) and self.dist.device.type == "cpu" \
                    and not cpu_capability()["native_bf16"]:
                warnings.warn(f"{knob}=true on a CPU without native bf16 (no avx512_bf16/amx_bf16): "
                              f"autocast is emulated and several times slower than fp32; set {knob}=false",
                              stacklevel=2)
        self.run = RunDir(self.out_dir, resume=self.resume)
        try:
            self.run.write_config(self.cfg)  # held back when resuming, until the checkpoint has loaded
            seed_everything(self.cfg.seed, deterministic=self.cfg.deterministic)
        except BaseException:
            self.run.discard_if_unstarted()
            raise
        return self

    @property
    def device(self) -> torch.device:
        return self.dist.device

    def after_models_built(self) -> None:
        """Give each rank its own global RNG stream (dropout) once the identical models exist."""
        if self.dist.enabled:
            seed_everything(self.cfg.seed + self.dist.rank, deterministic=self.cfg.deterministic)

    def engine_config(self) -> EngineConfig:
        c = self.cfg
        return EngineConfig(epochs=c.epochs, batch_size=c.batch_size, max_steps=c.max_steps,
                            max_minutes=c.max_minutes, log_every=c.log_every, seed=c.seed, bf16=c.bf16,
                            tensorboard=c.tensorboard)

    def finish_training(self) -> None:
        """Leave the process group (after a barrier); later work is rank 0's alone."""
        teardown_distributed(self.dist)

    def results(self, kind: str, training: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
        """results.json content: the knobs at top level, the full config, training summary and ``extra``."""
        knobs = {key: getattr(self.cfg, key) for key in PROTOCOL_KEYS}
        attack = getattr(self.cfg, "attack", None)
        return {"kind": kind, **knobs, "world_size": self.dist.world_size, **extra, "training": training,
                "training_attack": config_to_dict(attack) if attack is not None else None,
                "config": config_to_dict(self.cfg), "wall_s": round(time.monotonic() - self._started, 2),
                "cpu_s": round(time.process_time() - self._cpu_started, 2)}  # this session's, like wall_s

    def write_results(self, results: dict[str, Any]) -> None:
        if self.dist.is_main:
            self.run.write_results(results)

    def __exit__(self, kind, error, traceback) -> None:
        if error is not None and self.dist.enabled and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()  # no barrier: the other ranks may never reach it
        torch.set_num_threads(self._threads)
        if self.run is not None:
            if error is not None:
                self.run.discard_if_unstarted()  # removes only a folder it created that holds no checkpoint
            self.run.close()


def load_train_split(cfg: TrainSettings) -> Dataset:
    """The training set, cut to its first ``train_limit`` images.

    Raises:
        ConfigError: ``train_limit`` exceeds the training set.
    """
    data = load_dataset(cfg.dataset, "train", cfg.data_dir)
    if cfg.train_limit is not None and cfg.train_limit > len(data):
        raise ConfigError(f"train_limit={cfg.train_limit} exceeds the {len(data)} training images of "
                          f"{cfg.dataset}; lower train_limit or drop it")
    return data.subset(cfg.train_limit) if cfg.train_limit is not None else data


def load_test_split(cfg: TrainSettings) -> Dataset:
    """The test set (evaluation takes its first ``eval_limit`` images)."""
    return load_dataset(cfg.dataset, "test", cfg.data_dir)


def hold_out(data: Dataset, size: int) -> tuple[Dataset, Dataset]:
    """Split off the last ``size`` images as a validation set: (train part, validation part)."""
    n = len(data)
    if size >= n:
        raise ConfigError(f"val_size={size} leaves no training images out of {n}; lower val_size")
    return data.subset(torch.arange(n - size)), data.subset(torch.arange(n - size, n))


def evaluation_summary(evaluation: dict[str, Any]) -> dict[str, Any]:
    """Top-level accuracy fields from ``evaluate_robustness``'s dict (which is kept whole beside them)."""
    attacks = evaluation.get("attacks", {})
    return {"natural_accuracy": evaluation.get("natural_accuracy"),
            "adversarial_accuracy": evaluation.get("worst_case_accuracy"),
            "attack_accuracy": {name: a.get("accuracy") for name, a in attacks.items()},
            "evaluation": evaluation}



def lr_schedulers(cfg: ClassifierSettings, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """The engine's schedulers for a classifier run: step decay (``MultiStepLR``) at ``cfg.lr_milestones``
    epochs, or none for a constant learning rate."""
    if not cfg.lr_milestones:
        return {}
    return {"lr": torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=list(cfg.lr_milestones),
                                                       gamma=cfg.lr_gamma)}
