"""Each run kind on real MNIST (smoke preset): trains, checkpoints, resumes, evaluates, writes its folder."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from robustmi.errors import CheckpointError
from robustmi.mi import load_dim_objective
from robustmi.models import load_model
from robustmi.runs import load_checkpoint
from robustmi.training import get_preset, train_encoder, train_probe, train_supervised
from robustmi.training.supervised import crop_and_flip

RUN_FILES = ("config.yaml", "metrics.jsonl", "results.json", "checkpoints/last.pt", "checkpoints/last.json",
             "model.pt", "model.json")
PROTOCOL = ("dataset", "seed", "batch_size", "lr", "epochs", "training_attack", "config", "environment")


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(path)[0]["model"]


def _assert_equal_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_encoder_run_writes_its_folder(smoke_encoder_run) -> None:
    out, results = smoke_encoder_run
    for name in (*RUN_FILES, "critic.pt", "critic.json"):
        assert (out / name).is_file(), name
    on_disk = json.loads((out / "results.json").read_text())
    assert on_disk["kind"] == "encoder" and on_disk["objective"] == "worst-case-mi"
    for key in (*PROTOCOL, "estimator", "critic_width", "train_mi", "mi_clean", "mi_worst"):
        assert key in on_disk, key
    assert on_disk["training_attack"] == {"eps": 0.3, "norm": "linf", "steps": 2, "step_size": 0.15,
                                          "random_start": False}
    assert on_disk["training"]["stopped_by"] == "epochs" and on_disk["training"]["epochs"] == 2
    assert all(isinstance(on_disk[k], float) for k in ("train_mi", "mi_clean", "mi_worst"))
    assert on_disk["wall_s"] > 0 and on_disk["cpu_s"] > 0  # time to result: wall and CPU time
    encoder = load_model(out)
    assert encoder.feature_dim == 64 and encoder(torch.rand(2, 1, 28, 28)).shape == (2, 64)
    dim = load_dim_objective(out)
    assert torch.isfinite(dim.mi(torch.rand(8, 1, 28, 28), torch.randn(8, 64)))
    epochs = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in epochs if r["kind"] == "epoch"] == [0, 1]


def test_encoder_stopped_and_resumed_equals_uninterrupted(smoke_encoder_run, tmp_path) -> None:
    reference, _ = smoke_encoder_run
    cfg = get_preset("encoder", "smoke", objective="worst-case-mi", deterministic=True, max_steps=5)
    stopped = train_encoder(cfg, tmp_path / "enc")
    assert stopped["training"]["stopped_by"] == "max_steps"  # mid-epoch 0 (8 steps per epoch)
    assert all(isinstance(stopped[k], float) for k in ("train_mi", "mi_clean", "mi_worst"))  # partial epoch
    with pytest.raises(CheckpointError, match="--resume"):
        train_encoder(cfg, tmp_path / "enc")
    cfg = get_preset("encoder", "smoke", objective="worst-case-mi", deterministic=True)
    resumed = train_encoder(cfg, tmp_path / "enc", resume=True)
    assert resumed["training"]["steps"] == 16
    _assert_equal_weights(_weights(reference / "model.pt"), _weights(tmp_path / "enc" / "model.pt"))
    critic, resumed_critic = load_dim_objective(reference), load_dim_objective(tmp_path / "enc")
    _assert_equal_weights(critic.state_dict(), resumed_critic.state_dict())


def test_bf16_search_trains_a_different_encoder_and_is_recorded(smoke_encoder_run, tmp_path) -> None:
    reference, _ = smoke_encoder_run
    cfg = get_preset("encoder", "smoke", objective="worst-case-mi", deterministic=True, search_bf16=True)
    results = train_encoder(cfg, tmp_path / "enc")
    assert results["config"]["search_bf16"] is True and math.isfinite(results["train_mi"])
    changed = [k for k, v in _weights(reference / "model.pt").items()
               if not torch.equal(v, _weights(tmp_path / "enc" / "model.pt")[k])]
    assert changed  # the search's bf16 rounding moved the perturbations, hence the updates


def test_robust_probe_with_early_stopping(smoke_encoder_run, tmp_path) -> None:
    encoder_run, _ = smoke_encoder_run
    cfg = get_preset("probe", "smoke", encoder=str(encoder_run), head="mlp", mode="robust",
                     early_stop="adversarial")
    results = train_probe(cfg, tmp_path / "probe")
    for name in RUN_FILES:
        assert (tmp_path / "probe" / name).is_file(), name
    on_disk = json.loads((tmp_path / "probe" / "results.json").read_text())
    for key in (*PROTOCOL, "natural_accuracy", "adversarial_accuracy", "evaluation", "encoder", "mode"):
        assert key in on_disk, key
    paper = results["evaluation"]["attacks"]["paper"]
    assert paper["settings"]["eps"] == 0.3 and paper["settings"]["steps"] == 10
    assert 0.0 <= results["adversarial_accuracy"] <= results["natural_accuracy"] <= 1.0
    assert results["evaluation"]["num_samples"] == 128
    assert results["training"]["best_epoch"] in (0, 1)
    # the probe never changed the frozen encoder (weights and BatchNorm statistics)
    probe_weights = _weights(tmp_path / "probe" / "model.pt")
    encoder_weights = {k[len("encoder."):]: v for k, v in probe_weights.items() if k.startswith("encoder.")}
    _assert_equal_weights(encoder_weights, _weights(encoder_run / "model.pt"))


def test_finetune_probe_updates_the_encoder(smoke_encoder_run, tmp_path) -> None:
    encoder_run, _ = smoke_encoder_run
    cfg = get_preset("probe", "smoke", encoder=str(encoder_run), head="linear", mode="finetune", epochs=1,
                     train_limit=128)
    train_probe(cfg, tmp_path / "aff")
    probe_weights = _weights(tmp_path / "aff" / "model.pt")
    before = _weights(encoder_run / "model.pt")
    changed = [k for k, v in before.items() if not torch.equal(v, probe_weights["encoder." + k])]
    assert changed


def test_supervised_robust_run_and_resume_of_a_finished_run(tmp_path) -> None:
    cfg = get_preset("supervised", "smoke", arch="baseline-h-linear", mode="robust", fast=True, epochs=1,
                     bf16=True)
    results = train_supervised(cfg, tmp_path / "sup")
    for name in RUN_FILES:
        assert (tmp_path / "sup" / name).is_file(), name
    assert results["kind"] == "supervised" and results["fast"] and results["bf16"]
    assert results["training"]["steps"] == 8
    model = load_model(tmp_path / "sup")
    assert model(torch.rand(3, 1, 28, 28)).shape == (3, 10)
    again = train_supervised(cfg, tmp_path / "sup", resume=True)  # nothing left to train: re-evaluates
    assert again["training"]["steps"] == 8
    assert again["evaluation"]["attacks"] == results["evaluation"]["attacks"]


@pytest.mark.filterwarnings("ignore::robustmi.attacks.checks.SanityWarning")  # 2 SGD steps: near chance
def test_supervised_sgd_schedule_and_augmentation(tmp_path) -> None:
    cfg = get_preset("supervised", "smoke", arch="baseline-h", mode="standard", optimizer="sgd", lr=0.1,
                     lr_milestones=[1], lr_gamma=0.5, augment=True, train_limit=128, eval_limit=64)
    results = train_supervised(cfg, tmp_path / "sgd")
    assert results["optimizer"] == "sgd" and results["augment"]
    lines = (tmp_path / "sgd" / "metrics.jsonl").read_text().splitlines()
    lrs = [r["lr_opt"] for r in map(json.loads, lines) if r["kind"] == "epoch"]
    assert lrs == pytest.approx([0.05, 0.05])  # stepped after epoch 0 (milestone 1), logged after the step


def test_crop_and_flip_is_a_seeded_shape_preserving_augmentation() -> None:
    x = torch.rand(16, 3, 32, 32)
    a = crop_and_flip(x, torch.Generator().manual_seed(0))
    b = crop_and_flip(x, torch.Generator().manual_seed(0))
    assert a.shape == x.shape and torch.equal(a, b) and not torch.equal(a, x)
