"""Engine safety: NaN/inf parameters never reach a checkpoint; a new lr on resume is applied and recorded;
replayed steps are not logged twice."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from robustmi.errors import ConfigError
from robustmi.runs import RunDir, load_checkpoint, seed_everything
from robustmi.training import Engine, EngineConfig

N, BATCH = 64, 16  # 4 steps per epoch


def _data():
    g = torch.Generator().manual_seed(1)
    x = torch.rand(N, 8, generator=g)
    return x, (x.sum(1) > 4).long()


def _engine(tmp_path, lr: float, epochs: int, resume: bool, scheduler: bool = False, **cfg):
    seed_everything(0, deterministic=True)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 2))
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    scheds = {"lr": torch.optim.lr_scheduler.MultiStepLR(opt, milestones=[1], gamma=0.5)} if scheduler else {}
    run = RunDir(tmp_path / "run", resume=resume)
    engine = Engine(EngineConfig(epochs=epochs, batch_size=BATCH, log_every=1, progress=False, **cfg),
                    modules={"model": model}, optimizers={"adam": opt}, schedulers=scheds, run_dir=run)

    def step(x, y):
        loss = F.cross_entropy(model(x), y)
        return loss, {"loss": loss.item()}

    return engine, model, step, run


def _finite(state: dict) -> bool:
    return all(torch.isfinite(t).all() for t in state.values() if t.is_floating_point())


def test_nan_update_keeps_last_good_checkpoint_and_resumes_with_lower_lr(tmp_path):
    x, y = _data()
    engine, _, step, _ = _engine(tmp_path, 1e-2, epochs=1, resume=False)
    engine.fit(x, y, step)
    last = tmp_path / "run" / "checkpoints" / "last.pt"
    good = last.read_bytes()
    engine, model, step, _ = _engine(tmp_path, 1e-2, epochs=2, resume=True)
    model[0].weight.register_hook(lambda grad: grad * float("nan"))  # a finite loss, a NaN update
    with pytest.raises(ConfigError, match=r"model became NaN/inf at step 5; nothing was saved; the last good "
                                          r"checkpoint .*last.pt' \(epoch 1, step 4\) is kept") as info:
        engine.fit(x, y, step, resume=True)
    assert "\n" not in str(info.value)
    assert last.read_bytes() == good and _finite(load_checkpoint(last)[0]["modules"]["model"])
    engine, _, step, _ = _engine(tmp_path, 1e39, epochs=2, resume=True)  # beyond float32: torch refuses it
    with pytest.raises(ConfigError, match="step 5 overflowed .*last good checkpoint"):
        engine.fit(x, y, step, resume=True)
    assert last.read_bytes() == good
    engine, model, step, run = _engine(tmp_path, 1e-3, epochs=2, resume=True)
    summary = engine.fit(x, y, step, resume=True)
    assert summary["epochs"] == 2 and _finite(model.state_dict())
    assert summary["lr_changes"] == [{"step": 4, "optimizer": "adam", "group": 0, "from": 1e-2, "to": 1e-3}]
    assert [r["lr_adam"] for r in run.read_metrics() if r["kind"] == "epoch"] == [1e-2, 1e-3]


def test_nan_loss_before_any_checkpoint_says_start_again(tmp_path):
    x, y = _data()
    engine, _, _, _ = _engine(tmp_path, 1e-2, epochs=1, resume=False)
    with pytest.raises(ConfigError, match="loss is nan at step 1; no checkpoint was saved yet"):
        engine.fit(x, y, lambda a, b: (torch.tensor(float("nan"), requires_grad=True), {}))


def test_new_lr_rescales_the_schedule(tmp_path):
    x, y = _data()
    engine, _, step, _ = _engine(tmp_path, 0.1, epochs=2, resume=False, scheduler=True)
    engine.fit(x, y, step)  # milestone 1 passed: lr 0.05
    engine, _, step, _ = _engine(tmp_path, 0.01, epochs=3, resume=True, scheduler=True)
    engine.fit(x, y, step, resume=True)
    opt = engine.optimizers["adam"]
    assert opt.param_groups[0]["lr"] == pytest.approx(0.005)  # new base 0.01, halved once (schedule)
    assert engine.schedulers["lr"].base_lrs == [0.01]


def test_same_lr_resume_records_nothing(tmp_path):
    x, y = _data()
    engine, _, step, _ = _engine(tmp_path, 1e-2, epochs=1, resume=False)
    engine.fit(x, y, step)
    engine, _, step, _ = _engine(tmp_path, 1e-2, epochs=2, resume=True)
    assert engine.fit(x, y, step, resume=True)["lr_changes"] == []


def test_replayed_steps_are_not_logged_twice(tmp_path):
    x, y = _data()
    engine, _, step, run = _engine(tmp_path, 1e-2, epochs=2, resume=False, max_steps=6)
    engine.fit(x, y, step)  # checkpoint at step 6 (mid epoch 1)
    run.log_metrics({"kind": "step", "epoch": 1, "step": 7, "loss": 0.0})  # logged, then killed before a save
    run.log_metrics({"kind": "epoch", "epoch": 1, "step": 8, "loss": 0.0})
    engine, _, step, run = _engine(tmp_path, 1e-2, epochs=2, resume=True)
    engine.fit(x, y, step, resume=True)
    steps = [r["step"] for r in run.read_metrics() if r["kind"] == "step"]
    assert steps == list(range(1, 9))
    assert [r["epoch"] for r in run.read_metrics() if r["kind"] == "epoch"] == [0, 1]
