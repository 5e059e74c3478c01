"""``robustmi train-encoder / train-probe / train-supervised``: a run via the CLI, and bad input -> exit 2.

Bad input must give one stderr line, exit code 2, no traceback, and leave existing run folders untouched.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from robustmi.cli.main import main
from robustmi.models import create_model, save_model


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def run_main(argv: list[str]) -> int:
    try:
        main(argv)
    except SystemExit as done:
        return int(done.code or 0)
    return 0


@pytest.fixture
def encoder_file(tmp_path: Path) -> Path:
    """An (untrained) Baseline-H encoder saved as a run folder's model.pt."""
    run = tmp_path / "enc"
    save_model(create_model("baseline-h-encoder", dataset="mnist"), run)
    (run / "config.yaml").write_text("dataset: mnist\n")
    return run


@pytest.mark.filterwarnings("ignore::robustmi.attacks.checks.SanityWarning")  # untrained encoder: chance
def test_train_probe_via_cli_writes_a_run(encoder_file: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "probe"
    code = run_main(["train-probe", "--encoder", str(encoder_file), "--head", "linear", "--mode", "standard",
                     "--preset", "smoke", "--out", str(out), "epochs=1", "train_limit=128"])
    assert code == 0
    results = json.loads((out / "results.json").read_text())
    assert (results["head"], results["mode"], results["dataset"], results["epochs"]) == ("linear", "standard",
                                                                                          "mnist", 1)
    assert "results.json" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["train-encoder", "--preset", "huge"], "unknown preset"),
        (["train-encoder", "--preset", "smoke", "epochz=2"], "did you mean 'epochs'"),
        (["train-encoder", "--preset", "smoke", "attack.eps"], "malformed override"),
        (["train-encoder", "--preset", "smoke", "--objective", "maximal"], "objective"),
        (["train-encoder", "--preset", "smoke", "--dataset", "mnsit"], "mnsit"),
        (["train-probe", "--preset", "smoke", "--encoder", "/nonexistent/run"], "/nonexistent/run"),
        (["train-probe", "--preset", "smoke"], "encoder"),
        (["train-supervised", "--preset", "smoke", "--arch", "alexnet"], "alexnet"),
        (["train-supervised", "--preset", "smoke", "--mode", "robust", "fast=maybe"], "fast"),
    ],
)
def test_bad_input_is_one_line_exit_2(argv: list[str], needle: str, tmp_path: Path, capsys) -> None:
    out = tmp_path / "run"
    assert run_main([*argv, "--out", str(out)]) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("robustmi: error:") and needle in lines[0]
    assert "Traceback" not in captured.err
    assert not (out / "results.json").exists() and not (out / "checkpoints" / "last.pt").exists()


def test_existing_run_is_not_overwritten(tmp_path: Path, capsys) -> None:
    out = tmp_path / "done"
    out.mkdir()
    (out / "results.json").write_text('{"natural_accuracy": 0.9}\n')
    argv = ["train-supervised", "--preset", "smoke", "--out", str(out)]
    assert run_main(argv) == 2
    assert "--resume" in capsys.readouterr().err
    assert (out / "results.json").read_text() == '{"natural_accuracy": 0.9}\n'
