"""Probe protocol knobs: standard heads on cached features, FGSM-RS robust heads, the PGD-AT iterate, the
learning-rate schedule."""

from __future__ import annotations

import contextlib
import json

import pytest
import torch

from robustmi.attacks import AttackSettings
from robustmi.errors import ConfigError
from robustmi.models import Classifier, create_head, create_model
from robustmi.training import ClassifierStep, CrossEntropyLoss, get_preset, train_probe
from robustmi.training.probe import encode


def _train_head(model, head, inputs, labels, steps: int = 5) -> dict[str, torch.Tensor]:
    torch.manual_seed(1)  # dropout in the MLP head draws from the global RNG: share it
    opt = torch.optim.Adam(head.parameters(), lr=1e-3)
    step = ClassifierStep(model, CrossEntropyLoss(model), None, contextlib.nullcontext)
    head.train()
    for k in range(steps):
        loss, _ = step(inputs[k * 16:(k + 1) * 16], labels[k * 16:(k + 1) * 16])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return {k: v.clone() for k, v in head.state_dict().items()}


def test_standard_head_on_cached_features_equals_training_through_the_frozen_encoder():
    torch.manual_seed(0)
    encoder = create_model("baseline-h-encoder", dataset="mnist").eval().requires_grad_(False)
    images, labels = torch.rand(80, 1, 28, 28), torch.randint(0, 10, (80,))
    torch.manual_seed(2)
    head_a = create_head("mlp", encoder.feature_dim, 10)
    head_b = create_head("mlp", encoder.feature_dim, 10)
    head_b.load_state_dict(head_a.state_dict())
    through = _train_head(Classifier(encoder, head_a), head_a, images, labels)
    cached = _train_head(head_b, head_b, encode(encoder, images), labels)
    for key in through:
        torch.testing.assert_close(cached[key], through[key], rtol=1e-4, atol=1e-5)


def test_pgd_at_iterate_knob_selects_last_or_best():
    """keep_best=False trains on the last PGD iterate, True on each sample's highest-loss one."""
    class Sin(torch.nn.Module):  # a loss that is not monotone along the attack's path: the last iterate
        def forward(self, t):       # can overshoot the best one
            return 5 * torch.sin(t)

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 10), Sin())
    x, y = torch.rand(16, 1, 28, 28), torch.randint(0, 10, (16,))
    attack = AttackSettings(eps=0.3, steps=5, step_size=0.2)
    loss_of = CrossEntropyLoss(model)
    last = ClassifierStep(model, loss_of, attack, contextlib.nullcontext, keep_best=False).perturb(x, y)
    best = ClassifierStep(model, loss_of, attack, contextlib.nullcontext, keep_best=True).perturb(x, y)
    per_sample = torch.nn.functional.cross_entropy
    with torch.no_grad():
        loss_best = per_sample(model(best), y, reduction="none")
        loss_last = per_sample(model(last), y, reduction="none")
    assert (loss_best >= loss_last - 1e-6).all() and (loss_best > loss_last + 1e-3).any()


def test_fast_robust_probe_runs_and_standard_fast_is_refused(smoke_encoder_run, tmp_path):
    encoder_run, _ = smoke_encoder_run
    cfg = get_preset("probe", "smoke", encoder=str(encoder_run), mode="robust", fast=True, epochs=1,
                     train_iterate="best")
    results = train_probe(cfg, tmp_path / "fast")
    assert results["fast"] is True and results["train_iterate"] == "best"
    with pytest.raises(ConfigError, match="fast=true"):
        get_preset("probe", "smoke", encoder=str(encoder_run), mode="standard", fast=True)
    with pytest.raises(ConfigError, match="train_iterate"):
        get_preset("probe", "smoke", encoder=str(encoder_run), mode="robust", train_iterate="first")


def test_probe_learning_rate_steps_down_at_its_milestones(smoke_encoder_run, tmp_path):
    encoder_run, _ = smoke_encoder_run
    cfg = get_preset("probe", "smoke", encoder=str(encoder_run), mode="standard", epochs=3, lr=0.004,
                     lr_milestones=[1, 2], lr_gamma=0.5)
    train_probe(cfg, tmp_path / "head")
    lines = (tmp_path / "head" / "metrics.jsonl").read_text().splitlines()
    lrs = [r["lr_adam"] for r in map(json.loads, lines) if r["kind"] == "epoch"]
    assert lrs == pytest.approx([0.002, 0.001, 0.001])  # logged after each epoch's scheduler step
    for bad in ([2, 1], [0], [1, 1]):
        with pytest.raises(ConfigError, match="lr_milestones=.* must be increasing epochs"):
            get_preset("probe", "smoke", encoder=str(encoder_run), lr_milestones=bad)
    with pytest.raises(ConfigError, match="lr_gamma=0.* must be in"):
        get_preset("probe", "smoke", encoder=str(encoder_run), lr_gamma=0)
