"""benchmarks/time_to_result.py at the smoke budget: points of both objectives with cumulative times, a PNG, a
re-run that reuses every run, an encoder grown milestone by milestone that equals a straight run, and refused
overrides."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch

import robustmi.training
from robustmi.errors import ConfigError

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "time_to_result.py"


def _load_script():
    spec = importlib.util.spec_from_file_location("time_to_result", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


ttr = _load_script()


def _main(args: list[str]) -> int:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return ttr.main(args)
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    out = tmp_path_factory.mktemp("ttr")
    assert _main(["--smoke", "--out", str(out)]) == 0
    path = out / "time_to_result_smoke.json"
    return out, path, json.loads(path.read_text())


def test_smoke_records_both_objectives_along_the_milestones(smoke):
    out, path, payload = smoke
    assert payload["milestones"] == [1, 2] and payload["preset"] == "smoke"
    assert payload["environment"]["cpu"]["capability"]  # the machine is recorded, CPU capability included
    assert path.with_suffix(".png").stat().st_size > 0
    for objective in ("worst-case-mi", "mi"):
        points = [p for p in payload["points"] if p["objective"] == objective]
        assert [p["epochs"] for p in points] == [1, 2]
        for key in ("encoder_wall_s", "encoder_cpu_s", "encoder_train_s", "benchmark_wall_s"):
            assert 0 < points[0][key] < points[1][key], key  # cumulative: the encoder is trained once
        for p in points:
            assert p["wall_s"] == pytest.approx(p["encoder_wall_s"] + p["head_wall_s"], abs=0.02)
            assert 0 <= p["worst_case_accuracy"] <= p["pgd10_accuracy"] <= p["natural_accuracy"] <= 1
            assert p["eval_images"] == 128
        grown = out / objective / "encoder-e0002"
        first = str(out / objective / "encoder-e0001")
        assert json.loads((grown / "continues.json").read_text())["run"] == first
        head = json.loads((out / objective / "head-e0002" / "results.json").read_text())
        assert head["config"]["encoder"] == str(grown) and head["config"]["mode"] == "robust"
        assert list(head["evaluation"]["attacks"]) == ["paper", "pgd20"]
        assert head["evaluation"]["attacks"]["pgd20"]["settings"]["restarts"] == 5


def test_rerun_reuses_every_run(smoke, monkeypatch, tmp_path):
    out, _, payload = smoke

    def refuse(*args, **kwargs):
        raise AssertionError("a finished run was trained again")

    monkeypatch.setattr(robustmi.training, "train_encoder", refuse)
    monkeypatch.setattr(robustmi.training, "train_probe", refuse)
    assert _main(["--smoke", "--out", str(out), "--json", str(tmp_path / "again.json")]) == 0
    assert json.loads((tmp_path / "again.json").read_text())["points"] == payload["points"]


def test_grown_encoder_equals_a_straight_run(tmp_path):
    plan = ttr.make_plan("cpu", ["deterministic=true"], smoke=True)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        ttr.train_encoder_to(ttr.encoder_config(plan, "mi", 1), tmp_path / "e1", None)
        ttr.train_encoder_to(ttr.encoder_config(plan, "mi", 2), tmp_path / "e2", tmp_path / "e1")
        ttr.train_encoder_to(ttr.encoder_config(plan, "mi", 2), tmp_path / "straight", None)
    finally:
        torch.set_num_threads(threads)
    from robustmi.models import load_model

    grown, straight = load_model(tmp_path / "e2").state_dict(), load_model(tmp_path / "straight").state_dict()
    assert all(torch.equal(grown[key], straight[key]) for key in straight)
    assert ttr.encoder_cost(tmp_path / "e2")[0] > ttr.encoder_cost(tmp_path / "e1")[0]
    assert json.loads((tmp_path / "e1" / "checkpoints" / "last.json").read_text())["epoch"] == 1  # untouched


@pytest.mark.parametrize("overrides, match", [
    (["encoder.epochs=3"], "milestones"),
    (["milestones=[2,1]"], "increasing"),
    (["head.no_such_key=1"], "no_such_key"),
    (["no_such_key=1"], "no_such_key"),
    (["epochs"], "key=value"),
])
def test_bad_overrides_are_refused(overrides, match):
    with pytest.raises(ConfigError, match=match):
        ttr.make_plan("cpu", overrides)


def test_overrides_reach_their_runs(tmp_path):
    plan = ttr.make_plan("paper-search", ["milestones=[3,5]", "head.epochs=4", "seed=2"], smoke=True)
    assert plan.milestones == (3, 5)
    encoder = ttr.encoder_config(plan, "worst-case-mi", 5)
    head = ttr.head_config(plan, tmp_path)
    assert (encoder.epochs, encoder.attack.steps, encoder.seed) == (5, 10, 2)
    assert (head.epochs, head.seed, head.early_stop) == (4, 2, "adversarial")
    assert head.eval_attacks == ["paper", "pgd20"] and head.mode == "robust" and head.head == "mlp"
    assert _main(["--recipe", "no-such-recipe", "--smoke", "--out", str(tmp_path)]) == 2
