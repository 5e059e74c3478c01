"""Both cores: two independent runs at once on one torch thread each, or one after the other on two threads?

``reproduce``, the demo and the ablations schedule independent runs with
``robustmi.experiments.runner.run_in_processes`` (``--jobs 2``: spawned processes, ``cores // jobs`` torch
threads each). This benchmark measures that choice on real MNIST with robustmi's own training code, for two
workloads of the ``cpu`` presets:

- ``encoder``: a worst-case-MI encoder (critic width 512, 3 convs, PGD-5 search of 0.1), ``--steps`` steps;
- ``robust-probe``: a PGD-AT (PGD-10) MLP head on a frozen Baseline-H encoder, ``--steps`` steps, evaluated
  (natural + PGD-10) on ``--eval`` test images.

Each workload runs twice as a pair of identical runs (different seeds): ``sequential`` (``jobs=1``: in this
process, one after the other, with all cores' threads) and ``parallel`` (``jobs=2``). The wall time of the
pair is what a user waits for; speed-up = sequential / parallel (> 1: parallel is faster). The same work in
both modes (same steps, same evaluation), measured in one invocation. The matmul ceiling and the CPU's
capability are recorded beside the numbers, and load averages before and after: run it on a quiet machine.

Usage:
    python benchmarks/parallel_runs.py [--steps 40] [--eval 1000] [--workloads encoder,robust-probe] [--out P]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

WORKLOADS = ("encoder", "robust-probe")
DEFAULT_OUT = Path(__file__).parent / "results" / "parallel_runs.json"


def train_one(kind: str, fields: dict[str, Any], run_dir: str) -> float:
    """Train one run of the ``cpu`` preset into ``run_dir``; its wall seconds (picklable for the workers)."""
    from robustmi.experiments.runner import RunSpec, run_config, run_one

    start = time.perf_counter()
    cfg = run_config(kind, "cpu", dataset="mnist", fields=fields)
    run_one(RunSpec(Path(run_dir).name, kind, fields, kind), cfg, Path(run_dir))
    return time.perf_counter() - start


def workload_fields(workload: str, steps: int, eval_images: int, encoder: str, seed: int) -> tuple[str, dict]:
    """(run kind, run fields) of one run of ``workload``."""
    if workload == "encoder":
        return "encoder", {"objective": "worst-case-mi", "max_steps": steps, "epochs": 1, "seed": seed,
                           "mi_eval_samples": 0}
    return "probe", {"encoder": encoder, "mode": "robust", "head": "mlp", "early_stop": "none",
                     "max_steps": steps, "epochs": 1, "eval_limit": eval_images, "seed": seed}


def measure_pair(workload: str, jobs: int, steps: int, eval_images: int, encoder: str, root: Path) -> dict:
    """Wall seconds of two runs of ``workload`` scheduled with ``jobs`` (1: in turn here; 2: at once)."""
    from robustmi.experiments.runner import run_in_processes

    folder = root / f"{workload}-jobs{jobs}"
    calls = []
    for seed in (0, 1):
        kind, fields = workload_fields(workload, steps, eval_images, encoder, seed)
        calls.append((train_one, (kind, fields, str(folder / f"seed{seed}"))))
    start = time.perf_counter()
    per_run = run_in_processes(calls, jobs)
    return {"workload": workload, "mode": "parallel" if jobs > 1 else "sequential", "jobs": jobs,
            "threads_per_run": max(1, (os.cpu_count() or 1) // jobs) if jobs > 1 else _threads(),
            "pair_wall_s": round(time.perf_counter() - start, 2),
            "run_wall_s": [round(seconds, 2) for seconds in per_run]}


def pair_wall(rows: list[dict], workload: str, jobs: int) -> float:
    return next(r["pair_wall_s"] for r in rows if r["workload"] == workload and r["jobs"] == jobs)


def _threads() -> int:
    import torch

    return torch.get_num_threads()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=40, help="optimiser steps per run (default 40)")
    parser.add_argument("--eval", type=int, default=1000, help="test images evaluated per probe run")
    parser.add_argument("--workloads", default=",".join(WORKLOADS))
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    workloads = args.workloads.split(",")
    unknown = sorted(set(workloads) - set(WORKLOADS))
    if unknown or args.steps < 1 or args.eval < 1:
        parser.error(f"choose --workloads from {', '.join(WORKLOADS)}, --steps and --eval >= 1")

    sys.path.insert(0, str(Path(__file__).parent))
    from train_step import matmul_ceiling

    from robustmi.runs.environment import environment_info

    load_before = os.getloadavg()
    ceiling = {d: round(matmul_ceiling(d, _threads()), 1) for d in ("fp32", "bf16")}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        encoder = ""
        if "robust-probe" in workloads:  # the probes' frozen encoder: a short encoder run, not timed
            train_one("encoder", workload_fields("encoder", 5, 0, "", 0)[1], str(root / "frozen-encoder"))
            encoder = str(root / "frozen-encoder")
        for workload in workloads:
            for jobs in (1, 2):
                rows.append(measure_pair(workload, jobs, args.steps, args.eval, encoder, root))
                print(json.dumps(rows[-1]), flush=True)
    speedup = {w: pair_wall(rows, w, 1) / pair_wall(rows, w, 2) for w in workloads}
    report = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "steps": args.steps,
              "eval_images": args.eval, "rows": rows, "speedup_parallel_over_sequential": speedup,
              "matmul_ceiling_gflops": ceiling, "load_average_before": load_before,
              "load_average_after": os.getloadavg(), "environment": environment_info()}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    cpu = report["environment"]["cpu"]
    print(f"\n{cpu['capability']} (native bf16: {cpu['native_bf16']}), "
          f"{os.cpu_count()} cores; matmul ceiling fp32 {ceiling['fp32']} / bf16 {ceiling['bf16']} GFLOP/s")
    print("| workload | sequential: 2 runs x all threads, s | parallel: 2 runs x 1 thread, s | speed-up |")
    print("|---|---:|---:|---:|")
    for w in workloads:
        print(f"| {w} | {pair_wall(rows, w, 1):.1f} | {pair_wall(rows, w, 2):.1f} | {speedup[w]:.2f}x |")
    print(f"JSON: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
