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
                        ("epochs=3", "only attack.* settings")):
        argv = ["evaluate", "--model", str(run), "--limit", "4", "--out", str(tmp_path / "z"), bad]
        err = _fail(argv, capsys)
        assert needle in err and not (tmp_path / "z").exists()
