"""Run folders: layout, refusal to overwrite, resume, results with environment, rank-0-only writes."""

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import torch

import robustmi
from robustmi.errors import CheckpointError
from robustmi.runs import RunDir, environment_info, is_main_process, load_config, save_checkpoint


@dataclass(frozen=True)
class Inner:
    eps: float = 0.3
    steps: int = 10


@dataclass(frozen=True)
class Outer:
    name: str = "mnist"
    attack: Inner = field(default_factory=Inner)
    milestones: tuple[int, ...] = (1, 2)


def test_layout_config_metrics_results(tmp_path: Path) -> None:
    run = RunDir(tmp_path / "a" / "run")
    assert run.path.is_dir() and run.checkpoint_dir == run.path / "checkpoints"
    assert run.checkpoint_dir.is_dir()
    cfg = load_config(Outer, overrides=["attack.eps=8/255"])
    run.write_config(cfg, argv=["robustmi", "train", "attack.eps=8/255"])
    text = (run.path / "config.yaml").read_text()
    assert text.splitlines()[0] == '# argv: ["robustmi", "train", "attack.eps=8/255"]'
    assert run.read_config(Outer) == cfg == load_config(Outer, run.path / "config.yaml")

    run.log_metrics({"epoch": 1, "loss": torch.tensor(0.5), "acc": np.float32(0.25),
                     "per_class": torch.ones(2)})
    run.log_metrics({"epoch": 2, "loss": float("nan")})
    lines = (run.path / "metrics.jsonl").read_text().splitlines()
    assert json.loads(lines[0]) == {"epoch": 1, "loss": 0.5, "acc": 0.25, "per_class": [1.0, 1.0]}
    assert [r["epoch"] for r in run.read_metrics()] == [1, 2] and math.isnan(run.read_metrics()[1]["loss"])

    assert run.read_results() is None
    run.write_results({"natural_accuracy": 0.97, "eps": 0.3, "config": cfg, "out": run.path})
    results = json.loads((run.path / "results.json").read_text())
    assert results == run.read_results()
    assert results["natural_accuracy"] == 0.97
    assert results["config"]["attack"]["eps"] == pytest.approx(8 / 255)
    assert results["out"] == str(run.path)
    env = results["environment"]
    assert env["torch"] == torch.__version__ and env["numpy"] == np.__version__
    assert env["robustmi"] == robustmi.__version__ and env["python"].count(".") == 2
    assert {"git_commit", "git_dirty", "timestamp", "device", "torch_threads", "world_size"} <= env.keys()
    assert sorted(p.name for p in run.path.iterdir()) == [".lock", "checkpoints", "config.yaml",
                                                           "metrics.jsonl", "results.json"]


def test_environment_info_git_commit_is_a_hash_or_none() -> None:
    commit = environment_info()["git_commit"]
    assert commit is None or (len(commit) == 40 and int(commit, 16) >= 0)


def test_refuses_finished_run_without_resume(tmp_path: Path) -> None:
    run = RunDir(tmp_path)
    run.log_metrics({"epoch": 1})
    run.write_results({"acc": 1.0})
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}
    with pytest.raises(CheckpointError, match=r"already holds a finished run \(results.json\); pass --resume "
                                              r"to continue it or choose another --out") as info:
        RunDir(tmp_path)
    assert "\n" not in str(info.value)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()} == before


def test_refuses_unfinished_run_with_checkpoint(tmp_path: Path) -> None:
    run = RunDir(tmp_path)
    save_checkpoint(run.checkpoint_dir / "last.pt", {"w": torch.ones(1)}, {"epoch": 1})
    with pytest.raises(CheckpointError, match=r"already holds an unfinished run \(checkpoints/last.pt\)"):
        RunDir(tmp_path)


def test_resume_appends_metrics(tmp_path: Path) -> None:
    first = RunDir(tmp_path)
    first.log_metrics({"epoch": 1})
    with (tmp_path / "metrics.jsonl").open("a") as file:
        file.write('{"epoch": 2, "lo')  # a crash cut this line short
    first.write_results({"acc": 0.5})
    resumed = RunDir(tmp_path, resume=True)
    resumed.log_metrics({"epoch": 2})
    assert [r["epoch"] for r in resumed.read_metrics()] == [1, 2]


def test_fresh_run_replaces_a_dead_runs_log(tmp_path: Path) -> None:
    RunDir(tmp_path).log_metrics({"epoch": 1})  # crashed before any checkpoint: nothing worth keeping
    run = RunDir(tmp_path)
    run.log_metrics({"epoch": 1, "fresh": True})
    assert run.read_metrics() == [{"epoch": 1, "fresh": True}]


def test_path_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    with pytest.raises(CheckpointError, match=r"is a file, not a folder"):
        RunDir(tmp_path / "f")


def test_corrupt_results_and_metrics(tmp_path: Path) -> None:
    run = RunDir(tmp_path)
    (tmp_path / "metrics.jsonl").write_text('{"a": 1}\nnot json\n{"a": 2}\n')
    with pytest.raises(CheckpointError, match=r"line 2 is not JSON"):
        run.read_metrics()
    (tmp_path / "results.json").write_text("{")
    with pytest.raises(CheckpointError, match=r"results.json' is not valid JSON"):
        run.read_results()


def test_unserialisable_metric_is_a_bug(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match=r"cannot write a object to JSON"):
        RunDir(tmp_path).log_metrics({"x": object()})


def test_only_rank_zero_writes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert is_main_process()  # torch.distributed not initialised
    monkeypatch.setattr(torch.distributed, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.distributed, "get_rank", lambda: 1)
    assert not is_main_process()
    run = RunDir(tmp_path / "run")
    run.write_config(Outer())
    run.log_metrics({"epoch": 1})
    run.write_results({"acc": 1.0})
    assert not (tmp_path / "run").exists()
    monkeypatch.setattr(torch.distributed, "get_rank", lambda: 0)
    assert is_main_process()
