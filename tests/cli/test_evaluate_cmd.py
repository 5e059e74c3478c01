"""``robustmi evaluate`` end to end on real MNIST, and its one-line errors (exit code 2)."""

from __future__ import annotations

import json

import pytest
import torch
import yaml

from robustmi.attacks import SanityWarning
from robustmi.cli.main import main
from robustmi.models import create_model, save_model

FACTORY = """
import torch.nn as nn


def tiny():
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 10))
"""


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """One intra-op thread for these small attacks (shared CI cores), restored afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A run folder as training writes it: model.pt (+ sidecar) and config.yaml naming the dataset."""
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("runs") / "sup"
    save_model(create_model("baseline-h", dataset="mnist"), folder)
    (folder / "config.yaml").write_text(yaml.safe_dump({"dataset": "mnist", "seed": 0}))
    return folder


def _run(argv) -> int:
    """Exit code of ``robustmi`` (0 when ``main`` returns normally)."""
    try:
        main(argv)
    except SystemExit as done:
        return done.code
    return 0


def _fail(argv, capsys) -> str:
    with pytest.raises(SystemExit) as done:
        main(argv)
    assert done.value.code == 2
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1
    return err


def test_run_folder_end_to_end(run, capsys) -> None:
    argv = ["evaluate", "--model", str(run), "--attack", "paper", "--limit", "12", "--batch-size", "6"]
    with pytest.warns(SanityWarning, match="chance"):  # an untrained model: the flag is expected here
        assert _run(argv) == 0
    printed = capsys.readouterr().out
    assert "natural" in printed and "paper" in printed and "worst case" in printed
    assert "flag chance_accuracy" in printed  # an untrained model is at chance, and the table says so
    results = json.loads((run / "eval" / "results.json").read_text())
    assert results["dataset"] == "mnist" and results["split"] == "test" and results["num_samples"] == 12
    paper = results["attacks"]["paper"]
    assert paper["implementation"] == "robustmi.pgd"
    settings = paper["settings"]
    assert (settings["eps"], settings["steps"], settings["step_size"]) == (0.3, 10, 0.1)
    assert 0 <= results["worst_case_accuracy"] <= paper["accuracy"] <= results["natural_accuracy"]
    assert [f["name"] for f in results["flags"]] == ["chance_accuracy"]
    assert "environment" in results  # RunDir.write_results adds versions, git commit, time
    err = _fail(["evaluate", "--model", str(run), "--attack", "paper", "--limit", "4"], capsys)
    assert "already holds a finished run" in err  # nothing overwritten


def test_factory_model_with_dataset_and_out(tmp_path, capsys) -> None:
    factory = tmp_path / "nets.py"
    factory.write_text(FACTORY)
    out = tmp_path / "eval"
    argv = ["evaluate", "--model", f"{factory}:tiny", "--dataset", "mnist", "--attack", "paper", "--attack"]
    argv += ["pgd20", "--individual", "--limit", "8", "--seed", "3", "--out", str(out)]
    with pytest.warns(SanityWarning, match="chance"):
        assert _run(argv) == 0
    results = json.loads((out / "results.json").read_text())
    assert list(results["attacks"]) == ["paper", "pgd20"]
    assert results["cascade"] is False and results["seed"] == 3 and results["model"] == f"{factory}:tiny"
    capsys.readouterr()


def test_errors_are_one_line(run, tmp_path, capsys) -> None:
    factory = tmp_path / "nets.py"
    factory.write_text(FACTORY)
    assert "no dataset" in _fail(["evaluate", "--model", f"{factory}:tiny"], capsys)
    assert "--out is required" in _fail(
        ["evaluate", "--model", f"{factory}:tiny", "--dataset", "mnist"], capsys
    )
    err = _fail(["evaluate", "--model", str(run), "--attack", "fgsm", "--out", str(tmp_path / "x")], capsys)
    assert "unknown attack preset 'fgsm'" in err and not (tmp_path / "x").exists()
    err = _fail(["evaluate", "--model", str(run), "--limit", "0", "--out", str(tmp_path / "y")], capsys)
    assert "limit must be" in err


def test_config_file_and_overrides_set_the_threat_of_every_attack(run, tmp_path, capsys) -> None:
    """--config's attack section, then attack.*=value overrides (last word), on every selected attack."""
    (tmp_path / "threat.yaml").write_text("attack:\n  eps: 0.2\n  steps: 3\n")
    out = tmp_path / "eval"
    argv = ["evaluate", "--model", str(run), "--attack", "paper", "--attack", "pgd20", "--limit", "6",
            "--out", str(out), "--config", str(tmp_path / "threat.yaml"), "attack.eps=8/255"]
    with pytest.warns(SanityWarning, match="chance"):
        assert _run(argv) == 0
    attacks = json.loads((out / "results.json").read_text())["attacks"]
    for name in ("paper", "pgd20"):
        settings = attacks[name]["settings"]
        assert settings["eps"] == pytest.approx(8 / 255) and settings["steps"] == 3
    capsys.readouterr()
    for bad, needle in (("attack.eps=2", "pixel range"), ("attack.stpes=3", "unknown config key"),
                        ("epochs=3", "unknown config key 'epochs'")):
        argv = ["evaluate", "--model", str(run), "--limit", "4", "--out", str(tmp_path / "z"), bad]
        err = _fail(argv, capsys)
        assert needle in err and not (tmp_path / "z").exists()


SEEDED = """
import torch
import torch.nn as nn


def tiny():
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 10))
"""


@pytest.fixture(scope="module")
def linear(tmp_path_factory) -> list[str]:
    """``--model nets.py:tiny --weights w.pt``: the seeded linear classifier, fitted for a second on 2000 real
    MNIST images (most points correct, some robust at eps 0.03), so the attacks have work on every batch."""
    from robustmi.data import load_dataset

    folder = tmp_path_factory.mktemp("linear")
    (folder / "nets.py").write_text(SEEDED)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 10))
    train = load_dataset("mnist", "train").subset(2000)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for step in range(100):
        batch = slice(step % 20 * 100, step % 20 * 100 + 100)
        loss = torch.nn.functional.cross_entropy(model(train.images[batch]), train.labels[batch])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    torch.save(model.state_dict(), folder / "w.pt")
    return ["--model", f"{folder / 'nets.py'}:tiny", "--weights", str(folder / "w.pt")]


class _Interrupt(Exception):
    """Stands for a killed process: raised by the patched evaluation after a given number of batches."""


def _interrupt_after(monkeypatch, batches: int) -> list:
    """Make ``RobustnessEvaluation.step`` raise once ``batches`` batches have been saved; returns the log of
    batches stepped (the interrupted call included)."""
    from robustmi.attacks.evaluate import RobustnessEvaluation

    step, calls = RobustnessEvaluation.step, []

    def interrupted(self):
        calls.append(self.batches_done + 1)
        if len(calls) > batches:
            raise _Interrupt
        return step(self)

    monkeypatch.setattr(RobustnessEvaluation, "step", interrupted)
    return calls


def _comparable(folder) -> tuple[dict, list]:
    """results.json without what differs between runs (time, environment, where it resumed) + metrics."""
    results = json.loads((folder / "results.json").read_text())
    for key in ("environment", "resumed_at_batch"):
        results.pop(key)
    metrics = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
    return results, metrics


@pytest.mark.filterwarnings("ignore::robustmi.attacks.SanityWarning")
@pytest.mark.parametrize("attack", ["pgd20", "autoattack"])
def test_interrupted_evaluation_resumes_to_the_same_numbers(attack, linear, tmp_path, monkeypatch,
                                                            capsys) -> None:
    """Interrupted after 1 of 2 batches and resumed: results and per-batch metrics equal an uninterrupted
    run's exactly (pgd20: random starts from a saved generator; autoattack: torchattacks' cascade)."""
    if attack == "autoattack":
        pytest.importorskip("torchattacks")
    argv = ["evaluate", *linear, "--dataset", "mnist", "--attack", attack, "--limit", "8",
            "--batch-size", "4", "--no-progress", "attack.eps=0.06", "attack.steps=3"]
    assert _run(argv + ["--out", str(tmp_path / "whole")]) == 0
    calls = _interrupt_after(monkeypatch, 1)
    with pytest.raises(_Interrupt):
        main(argv + ["--out", str(tmp_path / "cut")])
    assert json.loads((tmp_path / "cut" / "checkpoints" / "last.json").read_text())["batches_done"] == 1
    assert not (tmp_path / "cut" / "results.json").exists()
    err = _fail(argv + ["--out", str(tmp_path / "cut")], capsys)  # not silently restarted or overwritten
    assert "unfinished run" in err and "--resume" in err
    calls.clear()
    monkeypatch.undo()
    calls = _interrupt_after(monkeypatch, 99)  # only counts now
    assert _run(argv + ["--out", str(tmp_path / "cut"), "--resume"]) == 0
    assert calls == [2]  # only the batch that was not saved ran again
    assert _comparable(tmp_path / "cut") == _comparable(tmp_path / "whole")
    resumed = json.loads((tmp_path / "cut" / "results.json").read_text())
    assert resumed["resumed_at_batch"] == 1 and resumed["kind"] == "evaluate"
    assert resumed["attacks"][attack]["settings"]["eps"] == 0.06
    entry = resumed["attacks"][attack]
    assert resumed["natural_accuracy"] > entry["accuracy"] > 0  # some points broken, some robust: real work
    capsys.readouterr()


@pytest.mark.filterwarnings("ignore::robustmi.attacks.SanityWarning")
def test_resume_with_other_settings_is_refused(tmp_path, monkeypatch, capsys) -> None:
    (tmp_path / "nets.py").write_text(SEEDED)
    out = tmp_path / "eval"
    argv = ["evaluate", "--model", f"{tmp_path / 'nets.py'}:tiny", "--dataset", "mnist", "--limit", "8",
            "--batch-size", "4", "--out", str(out), "attack.steps=2"]
    _interrupt_after(monkeypatch, 1)
    with pytest.raises(_Interrupt):
        main(argv)
    monkeypatch.undo()
    saved = (out / "config.yaml").read_bytes()
    metrics = (out / "metrics.jsonl").read_bytes()
    for change, needle in ((["attack.eps=0.1"], "attack.eps: None -> 0.1"), (["--seed", "2"], "seed: 0 -> 2"),
                           (["--batch-size", "2"], "batch_size: 4 -> 2")):
        err = _fail(argv + change + ["--resume"], capsys)
        assert "other settings" in err and needle in err and "choose another --out" in err
    assert (out / "config.yaml").read_bytes() == saved and (out / "metrics.jsonl").read_bytes() == metrics
    state = out / "checkpoints" / "last.pt"
    good = state.read_bytes()
    state.write_bytes(good[: len(good) // 2])  # a state cut short (e.g. a full disk)
    assert "truncated or corrupt" in _fail(argv + ["--resume"], capsys)
    state.write_bytes(good)
    assert _run(argv + ["--resume", "--data-dir", str(tmp_path)]) == 0  # where the data lives may change
    assert json.loads((out / "results.json").read_text())["resumed_at_batch"] == 1
    capsys.readouterr()


def test_run_folder_layout_and_config_reloads(run, tmp_path, capsys) -> None:
    """config.yaml (the resolved settings), metrics.jsonl (one record per batch) and the saved state; the
    config.yaml given back as --config reproduces the run."""
    out = tmp_path / "eval"
    argv = ["evaluate", "--model", str(run), "--limit", "6", "--batch-size", "4", "--out", str(out),
            "attack.steps=2"]
    with pytest.warns(SanityWarning):
        assert _run(argv) == 0
    cfg = yaml.safe_load((out / "config.yaml").read_text())
    assert cfg["dataset"] == "mnist" and cfg["attacks"] == ["paper"] and cfg["attack"]["steps"] == 2
    assert cfg["limit"] == 6 and cfg["batch_size"] == 4 and cfg["model"] == str(run)
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [(r["batch"], r["points"], r["size"]) for r in records] == [(1, 4, 4), (2, 6, 2)]
    assert sum(r["correct"] for r in records) == round(6 * json.loads(
        (out / "results.json").read_text())["natural_accuracy"])
    assert (out / "checkpoints" / "last.pt").is_file()
    again = tmp_path / "again"
    with pytest.warns(SanityWarning):
        assert _run(["evaluate", "--model", str(run), "--config", str(out / "config.yaml"), "--out",
                     str(again)]) == 0
    assert _comparable(again) == _comparable(out)
    capsys.readouterr()
