"""Two processes, one run folder: the second is refused (exit 2, naming the holder's pid); the first's folder
stays consistent."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

ARGS = ["train-supervised", "--arch", "baseline-h", "--dataset", "synthetic-mnist", "--preset", "smoke",
        "train_limit=256", "batch_size=32", "epochs=2", "eval_limit=8", "num_threads=1", "log_every=1"]


def _start(out: Path, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    return subprocess.Popen([sys.executable, "-m", "robustmi", *ARGS, "--out", str(out), *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def _wait_for_lock(out: Path, pid: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        lock = out / ".lock"
        if lock.is_file() and lock.read_text().strip() == str(pid):
            return
        time.sleep(0.05)
    raise AssertionError(f"process {pid} never locked {out}")


@pytest.mark.slow  # two interpreter start-ups and a short run: ~12 s (tests/runs covers the lock in ~3 s)
def test_second_writer_is_refused_and_first_folder_is_consistent(tmp_path) -> None:
    out = tmp_path / "run"
    first = _start(out)
    _wait_for_lock(out, first.pid)
    os.kill(first.pid, signal.SIGSTOP)  # hold the first writer mid-run: the verdict never depends on timing
    try:
        second = _start(out, "seed=1")
        _, err = second.communicate(timeout=120)
    finally:
        os.kill(first.pid, signal.SIGCONT)
    assert second.returncode == 2, err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert f"in use by another robustmi process (pid {first.pid})" in err
    _, err_first = first.communicate(timeout=300)
    assert first.returncode == 0, err_first
    config = yaml.safe_load((out / "config.yaml").read_text())
    results = json.loads((out / "results.json").read_text())
    assert config["seed"] == 0 and results["config"]["seed"] == 0  # only the first writer's
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    steps = [r["step"] for r in records if r["kind"] == "step"]
    assert steps == list(range(1, 2 * 8 + 1))  # one writer: every step once, in order
    assert first.pid != second.pid
