"""benchmarks/parallel_runs.py at a tiny budget: both scheduling modes of each workload measured, the speed-up
and the machine recorded, bad arguments refused."""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "parallel_runs.py"


def _load_script():
    spec = importlib.util.spec_from_file_location("parallel_runs", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_both_modes_of_both_workloads_are_measured(tmp_path):
    out = tmp_path / "parallel.json"
    assert _load_script().main(["--steps", "1", "--eval", "16", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    modes = {(r["workload"], r["mode"]) for r in report["rows"]}
    assert modes == {(w, m) for w in ("encoder", "robust-probe") for m in ("sequential", "parallel")}
    for row in report["rows"]:
        assert len(row["run_wall_s"]) == 2 and row["pair_wall_s"] > 0
        if row["mode"] == "parallel":  # run_in_processes: cores // jobs torch threads per process
            assert row["threads_per_run"] == max(1, (os.cpu_count() or 1) // 2)
    for workload, ratio in report["speedup_parallel_over_sequential"].items():
        rows = {r["mode"]: r["pair_wall_s"] for r in report["rows"] if r["workload"] == workload}
        assert ratio == pytest.approx(rows["sequential"] / rows["parallel"])
    assert report["matmul_ceiling_gflops"]["fp32"] > 0 and "native_bf16" in report["environment"]["cpu"]


def test_bad_arguments_are_refused(tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        _load_script().main(["--workloads", "gpu", "--out", str(tmp_path / "x.json")])
    assert exit_info.value.code == 2
