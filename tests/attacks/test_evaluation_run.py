"""Evaluation resumable per batch: RobustnessEvaluation's saved state and run_evaluation's run folder."""

from __future__ import annotations

import json

import pytest
import torch

from robustmi.attacks import AttackConfig, evaluate_robustness
from robustmi.attacks.evaluate import RobustnessEvaluation
from robustmi.attacks.evaluation_run import EvaluationConfig, ThreatChanges, run_evaluation
from robustmi.errors import CheckpointError, ConfigError
from robustmi.runs import load_checkpoint, save_checkpoint

# random starts and restarts: the PGD generator's state is part of what must be saved
RANDOM_PGD = AttackConfig("pgd-rs", 0.1, "linf", 5, 0.025, random_start=True, restarts=2)


def test_state_saved_after_a_batch_resumes_to_the_same_results(mnist_model, mnist_test, tmp_path) -> None:
    data = mnist_test.subset(40)
    kwargs = {"batch_size": 16, "seed": 3}
    whole = evaluate_robustness(mnist_model, data, [RANDOM_PGD], **kwargs)
    first = RobustnessEvaluation(mnist_model, data, [RANDOM_PGD], **kwargs)
    record = first.step()
    assert (record["batch"], record["points"], record["size"]) == (1, 16, 16)
    assert record["robust"] == record["correct"] - record["broken"]["pgd-rs"]  # one attack, on correct points
    save_checkpoint(tmp_path / "state.pt", {"evaluation": first.state_dict()}, {})
    torch.manual_seed(123)  # the global RNG plays no part
    resumed = RobustnessEvaluation(mnist_model, data, [RANDOM_PGD], **kwargs)
    resumed.load_state_dict(load_checkpoint(tmp_path / "state.pt")[0]["evaluation"])
    assert (resumed.batches_done, resumed.num_batches) == (1, 3)
    while not resumed.finished:
        resumed.step()
    assert resumed.results() == whole
    assert 0 < whole["attacks"]["pgd-rs"]["accuracy"] < whole["natural_accuracy"]  # the attack had work


def test_state_of_another_limit_is_refused(mnist_model, mnist_test) -> None:
    first = RobustnessEvaluation(mnist_model, mnist_test.subset(8), ["paper"], batch_size=4)
    first.step()
    saved = first.state_dict()
    other = RobustnessEvaluation(mnist_model, mnist_test.subset(12), ["paper"])
    with pytest.raises(CheckpointError, match="covers 8 points, this one 12; resume with the same limit"):
        other.load_state_dict(saved)
    with pytest.raises(CheckpointError, match="belongs to other attacks or points"):
        RobustnessEvaluation(mnist_model, mnist_test.subset(8), ["pgd20"]).load_state_dict(saved)


def test_run_evaluation_writes_a_run_folder(mnist_model, mnist_test, tmp_path) -> None:
    cfg = EvaluationConfig(model="tiny-cnn", dataset="mnist", attacks=("paper", "pgd20"), limit=20,
                           batch_size=8, attack=ThreatChanges(eps=0.1, steps=3))
    results = run_evaluation(mnist_model, mnist_test, cfg, tmp_path / "eval", progress=False)
    assert results["num_samples"] == 20 and results["kind"] == "evaluate" and results["resumed_at_batch"] == 0
    assert all(entry["settings"]["eps"] == 0.1 for entry in results["attacks"].values())
    lines = (tmp_path / "eval" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["points"] for line in lines] == [8, 16, 20]
    saved = json.loads((tmp_path / "eval" / "results.json").read_text())
    assert saved["config"]["attack"]["eps"] == 0.1 and "environment" in saved


def test_config_validates_its_values() -> None:
    for bad, needle in (({"limit": 0}, "limit must be"), ({"seed": -1}, "seed -1 must be >= 0"),
                        ({"attacks": ()}, "at least one attack"), ({"batch_size": 0}, "batch_size")):
        with pytest.raises(ConfigError, match=needle):
            EvaluationConfig(model="m", dataset="mnist", **bad)
    with pytest.raises(ConfigError, match="pixel range"):
        EvaluationConfig(model="m", dataset="mnist", attack=ThreatChanges(eps=2.0)).attack_configs()
