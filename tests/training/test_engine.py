"""The training engine on a toy problem: exact resume, limits, early-stopping selection, logging, errors."""

from __future__ import annotations

import importlib.util
import sys

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from robustmi.errors import ConfigError
from robustmi.runs import RunDir, seed_everything
from robustmi.training import DistInfo, Engine, EngineConfig, EngineState, engine_parts
from robustmi.training.distributed import shard_batch

N, BATCH = 100, 16  # 6 full batches per epoch, 4 images dropped


class Killed(RuntimeError):
    """Stands in for the process dying mid-epoch."""


def _data() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    x = torch.rand(N, 1, 4, 4, generator=g)
    return x, (x.flatten(1).sum(1) > 8).long()


def _setup(tmp_path, name: str, seed: int = 0, resume: bool = False, **cfg):
    """A dropout MLP (global RNG), Adam, a MultiStepLR and a step that also draws from the step generator."""
    seed_everything(seed, deterministic=True)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 32), nn.ReLU(), nn.Dropout(0.3), nn.Linear(32, 2))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=[1, 2], gamma=0.5)  # a Counter in its state
    run = RunDir(tmp_path / name, resume=resume)
    config = EngineConfig(**{"epochs": 3, "batch_size": BATCH, "log_every": 2, "seed": 0, **cfg})
    engine = Engine(config, modules={"model": model}, optimizers={"adam": opt}, schedulers={"lr": sched},
                    run_dir=run)

    def step(x, y):
        noise = 0.01 * torch.randn(x.shape, generator=engine.step_generator)
        loss = F.cross_entropy(model(x + noise), y)
        return loss, {"loss": loss.item()}

    return engine, model, step, run


def _killing(step, after: int):
    calls = {"n": 0}

    def wrapped(x, y):
        calls["n"] += 1
        if calls["n"] > after:
            raise Killed("process killed")
        return step(x, y)

    return wrapped


def _assert_same_weights(a: nn.Module, b: nn.Module) -> None:
    for (name, p), q in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(p, q), name


def test_killed_and_resumed_run_equals_uninterrupted_run(tmp_path) -> None:
    x, y = _data()
    engine, reference, step, _ = _setup(tmp_path, "full")
    summary = engine.fit(x, y, step)
    assert summary["epochs"] == 3 and summary["steps"] == 18 and summary["stopped_by"] == "epochs"

    engine, _, step, _ = _setup(tmp_path, "killed")
    with pytest.raises(Killed):
        engine.fit(x, y, _killing(step, after=9))  # dies in epoch 1; last checkpoint: end of epoch 0
    engine, resumed, step, _ = _setup(tmp_path, "killed", seed=123, resume=True)  # new process, other init
    summary = engine.fit(x, y, step, resume=True)
    assert summary["steps"] == 18
    _assert_same_weights(reference, resumed)
    assert engine.optimizers["adam"].param_groups[0]["lr"] == pytest.approx(1e-2 * 0.5**2)


def test_limit_mid_epoch_then_resume_continues_exactly(tmp_path) -> None:
    x, y = _data()
    engine, reference, step, _ = _setup(tmp_path, "full")
    engine.fit(x, y, step)
    engine, _, step, run = _setup(tmp_path, "limited", max_steps=8)
    summary = engine.fit(x, y, step)
    assert (summary["stopped_by"], summary["steps"], summary["epochs"]) == ("max_steps", 8, 1)
    meta = run.read_metrics()
    assert [r["epoch"] for r in meta if r["kind"] == "epoch"] == [0]
    engine, resumed, step, _ = _setup(tmp_path, "limited", seed=7, resume=True)  # limit lifted on resume
    assert engine.fit(x, y, step, resume=True)["steps"] == 18
    _assert_same_weights(reference, resumed)


def test_max_minutes_stops_and_checkpoints(tmp_path) -> None:
    x, y = _data()
    engine, _, step, run = _setup(tmp_path, "timed", max_minutes=1e-9)
    summary = engine.fit(x, y, step)
    assert summary["stopped_by"] == "max_minutes" and summary["steps"] < 18
    assert (run.checkpoint_dir / "last.pt").is_file() and (run.checkpoint_dir / "last.json").is_file()


def test_selection_restores_the_best_epoch(tmp_path) -> None:
    x, y = _data()
    engine, model, step, _ = _setup(tmp_path, "select")
    scores, snapshots = [0.2, 0.9, 0.5], {}

    def on_epoch_end(epoch: int) -> dict[str, float]:
        snapshots[epoch] = {k: v.clone() for k, v in model.state_dict().items()}
        return {"val": scores[epoch]}

    summary = engine.fit(x, y, step, on_epoch_end=on_epoch_end, select="val")
    assert (summary["best_epoch"], summary["best_score"]) == (1, 0.9)
    for key, value in model.state_dict().items():
        assert torch.equal(value, snapshots[1][key])


def test_metrics_log_steps_and_epochs(tmp_path) -> None:
    x, y = _data()
    engine, _, step, run = _setup(tmp_path, "log", epochs=2)
    engine.fit(x, y, step, on_epoch_start=lambda epoch: None, on_epoch_end=lambda epoch: {"val": 1.0})
    records = run.read_metrics()
    steps = [r for r in records if r["kind"] == "step"]
    epochs = [r for r in records if r["kind"] == "epoch"]
    assert [r["step"] for r in steps] == [2, 4, 6, 8, 10, 12]
    assert [r["epoch"] for r in epochs] == [0, 1]
    assert {"loss", "val", "lr_adam"} <= set(epochs[0])
    assert epochs[1]["lr_adam"] == pytest.approx(2.5e-3)  # logged after the epoch's scheduler step


def test_non_finite_loss_and_too_small_data_raise_config_error(tmp_path) -> None:
    x, y = _data()
    engine, model, _, _ = _setup(tmp_path, "nan")

    def nan_step(xb, yb):
        loss = model(xb).sum() * float("nan")
        return loss, {}

    with pytest.raises(ConfigError, match="lower lr"):
        engine.fit(x, y, nan_step)
    engine, _, step, _ = _setup(tmp_path, "small", batch_size=200)
    with pytest.raises(ConfigError, match="batch_size"):
        engine.fit(x, y, step)


@pytest.mark.skipif(importlib.util.find_spec("tensorboard") is not None, reason="tensorboard is installed")
def test_tensorboard_without_the_package_is_a_config_error(tmp_path) -> None:
    with pytest.raises(ConfigError, match="pip install tensorboard"):
        _setup(tmp_path, "tb", tensorboard=True)


def test_progress_bar_only_on_an_interactive_main_process(monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = EngineConfig(epochs=4, batch_size=8)
    resumed = EngineState(epoch=1, batch=2, step=12)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: False)
    assert engine_parts.epoch_bar(cfg, 10, resumed, enabled=True).disable
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    assert engine_parts.epoch_bar(cfg, 10, resumed, enabled=False).disable
    bar = engine_parts.epoch_bar(cfg, 10, resumed, enabled=True)  # the whole run's steps: an overall ETA
    assert not bar.disable and (bar.n, bar.total, bar.desc) == (12, 40, "epoch 2/4")
    bar.close()


def test_shards_tile_the_global_batch() -> None:
    batch = torch.arange(12)
    parts = [shard_batch(batch, DistInfo(rank, 3)) for rank in range(3)]
    assert torch.equal(torch.cat(parts), batch)
    assert torch.equal(shard_batch(batch, DistInfo()), batch)
