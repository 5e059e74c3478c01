"""The engine's measurement features: step-level validation and selection, clipping, per-step schedules,
a caller's data order, a named checkpoint with settings (what estimate_mi and Algorithm 2 use)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from robustmi.errors import CheckpointError, ConfigError
from robustmi.training import Engine, EngineConfig

N, BATCH = 64, 16  # 4 batches per epoch


def _setup(checkpoint_path=None, settings=None, **cfg):
    """A linear model whose validation score is scripted per call, so the selected step is known."""
    torch.manual_seed(0)
    model = nn.Linear(2, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    engine = Engine(EngineConfig(**{"epochs": 3, "batch_size": BATCH, "progress": False, **cfg}),
                    modules={"model": model}, optimizers={"sgd": opt}, checkpoint_path=checkpoint_path,
                    settings=settings)
    x = torch.randn(N, 2, generator=torch.Generator().manual_seed(1))

    def step(xb, yb):
        loss = (model(xb).squeeze(1) - yb).pow(2).mean()
        return loss, {"loss": loss.item()}

    return engine, model, x, x.sum(1), step


def test_on_eval_runs_before_every_k_steps_and_after_the_last_and_selects_the_best_step():
    engine, model, x, y, step = _setup(eval_every=5, max_steps=12)
    scores = iter([0.0, 3.0, 1.0, 2.0])  # steps 0, 5, 10, 12
    weights = {}

    def on_eval(done):
        weights[done] = model.weight.detach().clone()
        return {"score": next(scores)}

    summary = engine.fit(x, y, step, on_eval=on_eval, select="score")
    assert [h["step"] for h in summary["history"] if h["kind"] == "eval"] == [0, 5, 10, 12]
    assert (summary["best_step"], summary["best_score"], summary["steps"]) == (5, 3.0, 12)
    assert torch.equal(model.weight, weights[5])  # the best step's state is restored


def test_untrained_state_wins_when_nothing_beats_it():
    engine, model, x, y, step = _setup(eval_every=4)
    start = model.weight.detach().clone()
    scores = iter([1.0] + [0.0] * 10)
    summary = engine.fit(x, y, step, on_eval=lambda done: {"score": next(scores)}, select="score")
    assert summary["best_step"] == 0 and torch.equal(model.weight, start)


def test_gradient_clipping_and_per_step_schedule():
    engine, model, x, y, step = _setup(max_grad_norm=1e-3, scheduler_interval="step", max_steps=3)
    opt = engine.optimizers["sgd"]
    engine.schedulers = {"lr": torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)}
    before = [p.detach().clone() for p in model.parameters()]
    engine.fit(x, y, step)
    moved = torch.cat([(p - b).flatten() for p, b in zip(model.parameters(), before, strict=True)])
    # three steps at lr 0.1, 0.05, 0.025 of a gradient clipped to norm 1e-3
    assert moved.norm() <= (0.1 + 0.05 + 0.025) * 1e-3 + 1e-9
    assert opt.param_groups[0]["lr"] == pytest.approx(0.1 * 0.5**3)


def test_epoch_order_gives_the_batches():
    engine, _, x, y, _ = _setup(epochs=2)
    seen = []

    def step(xb, yb):
        seen.append(xb[:, 0].clone())
        return xb.sum() * 0.0 + engine.modules["model"].weight.sum() * 0.0, {}

    orders = {e: torch.randperm(N, generator=torch.Generator().manual_seed(10 + e)) for e in range(2)}
    engine.fit(x, y, step, epoch_order=orders.__getitem__)
    expected = [x[orders[e][b * BATCH:(b + 1) * BATCH], 0] for e in range(2) for b in range(4)]
    assert all(torch.equal(a, b) for a, b in zip(seen, expected, strict=True))


def test_named_checkpoint_with_settings_resumes_and_refuses_other_settings(tmp_path):
    path = tmp_path / "critic.pt"
    engine, model, x, y, step = _setup(path, {"eps": 0.3}, epochs=1)
    engine.fit(x, y, step)
    assert path.is_file() and engine.run_dir is None
    again, *_ = _setup(path, {"eps": 0.3}, epochs=2)
    assert again.load() and again.state.epoch == 1
    other, *_ = _setup(path, {"eps": 0.1}, epochs=2)
    with pytest.raises(CheckpointError, match="other settings"):
        other.load()


@pytest.mark.parametrize("knob, match", [({"scheduler_interval": "batch"}, "scheduler_interval"),
                                         ({"max_grad_norm": 0.0}, "max_grad_norm"),
                                         ({"eval_every": 0}, "eval_every")])
def test_bad_knobs_are_config_errors(knob, match):
    with pytest.raises(ConfigError, match=match):
        EngineConfig(epochs=1, batch_size=2, **knob)
