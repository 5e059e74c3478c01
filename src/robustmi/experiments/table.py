"""Reproduce a downstream-classification table of the paper (P Table 1, S Tables 3 and 5) end to end.

Per trial (seed): a standard DIM encoder and a worst-case-MI encoder trained without labels; on each,
linear and MLP heads trained standard and robust (PGD-AT, head only), plus the early-stopped standard head
(E.S.) on the worst-case-MI encoder; and fully-supervised Baseline-H (MLP top, linear top) trained standard
and robust. Every cell is evaluated by PGD with the paper's per-dataset settings on the test set.

Runs live in ``OUT/runs/trial-K/<run>`` (or ``--runs``); a finished run (results.json) is reused and an
interrupted one resumes from its checkpoint, so re-running the same command continues an interrupted
reproduction.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from robustmi.errors import ConfigError
from robustmi.experiments.paper_tables import COLUMNS, PAPER_TABLES, ROW_LABELS, TABLE_DATASETS
from robustmi.experiments.plots import plot_table_comparison
from robustmi.experiments.report import Report, fmt_mean_std, mean_std
from robustmi.experiments.runner import (
    RunSpec,
    check_overrides,
    print_line,
    run_config,
    run_in_processes,
    run_one,
)
from robustmi.progress import StageLog
from robustmi.runs._atomic import atomic_write_text
from robustmi.runs.environment import environment_info

BUDGETS = ("smoke", "cpu", "paper")

@dataclass(frozen=True)
class Cell:
    """Which run fills which (row, column pair) of the table."""

    row: str
    head: str  # "mlp" | "linear"
    run: str


def table_plan() -> tuple[list[RunSpec], list[Cell]]:
    """The runs of one trial, in execution order, and the table cells they fill."""
    runs: list[RunSpec] = []
    cells: list[Cell] = []
    for objective in ("mi", "worst-case-mi"):
        runs.append(
            RunSpec(f"encoder-{objective}", "encoder", {"objective": objective}, f"encoder-{objective}")
        )
    probe_modes = {"mi": ("standard", "robust"), "worst-case-mi": ("standard", "early-stop", "robust")}
    for objective, modes in probe_modes.items():
        for mode in modes:
            for head in ("mlp", "linear"):
                name = f"probe-{objective}-{head}-{mode}"
                fields = {"head": head, "mode": "standard" if mode == "early-stop" else mode}
                if mode == "early-stop":  # E.S.: a standard head kept at its best held-out PGD accuracy
                    fields["early_stop"] = "adversarial"  # (robust heads: the budget's preset decides)
                runs.append(
                    RunSpec(name, "probe", fields, f"probe-{mode}", encoder_run=f"encoder-{objective}")
                )
                cells.append(Cell(f"{objective}/{mode}", head, name))
    for mode in ("standard", "robust"):
        for head, arch in (("mlp", "baseline-h"), ("linear", "baseline-h-linear")):
            name = f"supervised-{arch}-{mode}"
            runs.append(RunSpec(name, "supervised", {"arch": arch, "mode": mode}, f"supervised-{mode}"))
            cells.append(Cell(f"supervised/{mode}", head, name))
    return runs, cells


@dataclass
class TableResult:
    """Per-cell values over trials (accuracy in %), the paper's numbers, and timing."""

    table: str
    dataset: str
    budget: str
    trials: int
    cells: dict[str, dict[str, list[float]]] = field(
        default_factory=dict
    )  # row -> column -> per-trial values
    run_seconds: dict[str, float] = field(default_factory=dict)
    wall_s: float = 0.0
    jobs: int = 1
    protocol: dict[str, Any] = field(default_factory=dict)  # run name -> its config (trial 0)


def _run_trial(
    trial: int, budget: str, dataset: str, runs: Path, data_dir: str | None, overrides: Sequence[str],
    log: Callable[[str], None], table: str,
) -> tuple[dict[str, dict[str, Any]], dict[str, float]]:
    """Every run of one trial (seed ``trial``), in plan order; returns their results and wall seconds."""
    trial_dir = runs / f"trial-{trial}"
    outputs: dict[str, dict[str, Any]] = {}
    seconds: dict[str, float] = {}
    for spec in table_plan()[0]:
        log(f"[{table} trial {trial}] {spec.name}")
        t0 = time.monotonic()
        fields: dict[str, Any] = {**spec.fields, "seed": trial, "data_dir": data_dir}
        if spec.encoder_run is not None:
            fields["encoder"] = str(trial_dir / spec.encoder_run)
        cfg = run_config(spec.kind, budget, dataset=dataset, fields=fields, overrides=overrides)
        outputs[spec.name] = run_one(spec, cfg, trial_dir / spec.name)
        seconds[f"trial-{trial}/{spec.name}"] = round(
            outputs[spec.name].get("wall_s", time.monotonic() - t0), 1
        )
    return outputs, seconds


def reproduce_table(
    table: str,
    budget: str,
    out_dir: str | Path,
    *,
    trials: int = 1,
    jobs: int = 1,
    data_dir: str | None = None,
    runs_dir: str | Path | None = None,
    overrides: Sequence[str] = (),
    log: Callable[[str], None] = print,
) -> TableResult:
    """Run (or continue) the whole protocol of ``table`` and write report.md, report.html, results.json.

    Args:
        table: ``mnist-table``, ``fashion-mnist-table``, ``cifar10-table`` or ``svhn-table``.
        budget: ``smoke`` (seconds per run, for CI), ``cpu`` (the cpu presets' epochs: a work budget, the
            same numbers on every machine; hours per trial on 2 cores for MNIST) or ``paper`` (the paper's 300
            epochs; needs a GPU). Every cell is evaluated on the full test set except at ``smoke``.
        out_dir: report folder; runs go to ``out_dir/runs``.
        trials: independent repeats (seeds 0..trials-1); the paper used 4.
        jobs: trials trained at once, each in its own process with ``cores // jobs`` torch threads (on 2
            cores two 1-thread trials finish sooner than two 2-thread trials in sequence: README). The
            numbers do not depend on it.
        data_dir: dataset folder (CIFAR-10 and SVHN have no offline source: the user supplies the files).
        runs_dir: where the runs live (default ``out_dir/runs``); ``rv-vs-gap`` given the same folder reuses
            trial 0's models.
        overrides: ``key=value`` settings applied to every run of the protocol that has that key.
        log: progress messages.

    Raises:
        ConfigError: unknown table or budget, trials or jobs < 1, an override no run has.
        DataError: the dataset is not available (the message says what to supply).
    """
    if table not in TABLE_DATASETS:
        raise ConfigError(f"unknown table {table!r}; choose one of: {', '.join(TABLE_DATASETS)}")
    if budget not in BUDGETS:
        raise ConfigError(f"unknown budget {budget!r}; choose one of: {', '.join(BUDGETS)}")
    if trials < 1 or jobs < 1:
        raise ConfigError(f"--trials {trials} and --jobs {jobs} must be >= 1")
    check_overrides(overrides, {spec.kind for spec in table_plan()[0]})
    from robustmi.data import load_dataset

    dataset = TABLE_DATASETS[table]
    load_dataset(dataset, "test", data_dir)  # fail early, with the data layer's "what to supply" message
    out = Path(out_dir).resolve()  # absolute: run configs name their encoder by path
    result = TableResult(table, dataset, budget, trials)
    started = time.monotonic()
    jobs = min(jobs, trials)
    if jobs > 1:
        log(f"[{table}] {trials} trials, {jobs} at a time in separate processes")
    trial_log = StageLog(trials * len(table_plan()[0]), log) if jobs == 1 else print_line
    runs = Path(runs_dir).resolve() if runs_dir is not None else out / "runs"
    done = run_in_processes([(_run_trial, (t, budget, dataset, runs, data_dir, tuple(overrides), trial_log,
                                           table)) for t in range(trials)], jobs)
    result.protocol = {name: res.get("config") for name, res in done[0][0].items()}
    for outputs, seconds in done:
        result.run_seconds.update(seconds)
        for cell in table_plan()[1]:
            res = outputs[cell.run]
            row = result.cells.setdefault(cell.row, {})
            row.setdefault(f"{cell.head}_nat", []).append(100.0 * float(res["natural_accuracy"]))
            row.setdefault(f"{cell.head}_adv", []).append(100.0 * float(res["adversarial_accuracy"]))
    result.wall_s = round(time.monotonic() - started, 1)
    result.jobs = jobs
    write_table_report(result, out)
    return result


def _cell_rows(result: TableResult) -> list[dict[str, Any]]:
    paper = PAPER_TABLES.get(result.dataset)  # None: no paper numbers to compare with
    rows = []
    for row, label in ROW_LABELS.items():
        for col in COLUMNS:
            values = result.cells.get(row, {}).get(col, [])
            mean, std = mean_std(values)
            p_mean, p_std = paper[row][col] if paper is not None else (None, None)
            rows.append(
                {
                    "row": row,
                    "label": label,
                    "column": col,
                    "values": values,
                    "mean": mean if values else None,  # JSON has no NaN: a missing cell is null
                    "std": std if values else None,
                    "paper_mean": p_mean,
                    "paper_std": p_std,
                    "difference": None if not values or p_mean is None else round(mean - p_mean, 2),
                }
            )
    return rows


def ordering_checks(result: TableResult) -> dict[str, bool | None]:
    """The paper's qualitative claims (P §6.2) evaluated on our means (``None`` where a cell is missing)."""

    def m(row: str, col: str) -> float | None:
        values = result.cells.get(row, {}).get(col)
        return mean_std(values)[0] if values else None

    def gt(a: float | None, b: float | None) -> bool | None:
        return None if a is None or b is None else a > b

    return {
        "worst-case-mi + robust MLP beats DIM + robust MLP (adv)": gt(
            m("worst-case-mi/robust", "mlp_adv"), m("mi/robust", "mlp_adv")
        ),
        "worst-case-mi + robust linear beats DIM + robust linear (adv)": gt(
            m("worst-case-mi/robust", "linear_adv"), m("mi/robust", "linear_adv")
        ),
        "worst-case-mi + standard MLP beats DIM + standard MLP (adv)": gt(
            m("worst-case-mi/standard", "mlp_adv"), m("mi/standard", "mlp_adv")
        ),
        "DIM + standard MLP has near-zero adversarial accuracy (< 5 %)": None
        if m("mi/standard", "mlp_adv") is None
        else m("mi/standard", "mlp_adv") < 5.0,
    }


def write_table_report(result: TableResult, out: Path) -> None:
    """results.json, report.md, report.html and a comparison plot for a finished table."""
    rows = _cell_rows(result)
    checks = ordering_checks(result)
    out.mkdir(parents=True, exist_ok=True)
    plot_name = "table_comparison.png"
    versus = " vs paper" if result.dataset in PAPER_TABLES else ""  # no paper numbers: no markers
    plot_table_comparison(rows, out / plot_name, title=f"{result.table} ({result.budget} budget){versus}")
    payload = {
        "table": result.table,
        "dataset": result.dataset,
        "budget": result.budget,
        "trials": result.trials,
        "cells": rows,
        "ordering_checks": checks,
        "run_seconds": result.run_seconds,
        "wall_s": result.wall_s,
        "jobs": result.jobs,
        "protocol": result.protocol,
    }
    payload["environment"] = environment_info()  # versions, CPU capability, git commit
    atomic_write_text(out / "results.json", json.dumps(payload, indent=2))

    report = Report(f"robustmi reproduction: {result.table}")
    report.text(
        f"Dataset {result.dataset}; budget '{result.budget}'; {result.trials} trial(s); "
        f"total wall time {result.wall_s / 60:.1f} min (reused runs count their original time in the "
        f"per-run list only). Accuracy in %, adversarial = PGD with the paper's settings on the test set."
    )
    if result.budget != "paper":
        report.text(
            "This is NOT the paper's budget (300 epochs per model on a GPU): encoders and heads trained "
            "for minutes, so absolute numbers are far from the paper's. Compare the ordering of rows, "
            "not the values."
        )
    header = ["g + h", "MLP nat", "MLP adv", "Linear nat", "Linear adv"]
    ours, theirs = [], []
    by_row: dict[str, dict[str, dict[str, Any]]] = {}
    for r in rows:
        by_row.setdefault(r["row"], {})[r["column"]] = r
    for row, label in ROW_LABELS.items():
        cols = by_row[row]
        ours.append([label] + [fmt_mean_std(cols[c]["mean"], cols[c]["std"]) for c in COLUMNS])
        theirs.append(
            [label]
            + [
                f"{fmt_mean_std(cols[c]['paper_mean'], cols[c]['paper_std'])} "
                f"(Δ {cols[c]['difference']:+.1f})"
                if cols[c]["difference"] is not None
                else fmt_mean_std(cols[c]["paper_mean"], cols[c]["paper_std"])
                for c in COLUMNS
            ]
        )
    report.heading("Our numbers (mean ± std over trials)").table(header, ours)
    if result.dataset in PAPER_TABLES:
        report.heading("Paper's numbers (Δ = ours − paper)").table(header, theirs)
    else:
        report.text(f"The paper's {result.dataset} numbers are not recorded here; ours only.")
    report.heading("The paper's claims on our numbers")
    report.bullets(
        [f"{claim}: {'yes' if ok else 'no' if ok is not None else 'n/a'}" for claim, ok in checks.items()]
    )
    report.image(plot_name, "Adversarial accuracy per row: ours (bars) and the paper's (markers)."
                 if result.dataset in PAPER_TABLES else "Adversarial accuracy per row (ours).")
    report.heading("Time per run (s)")
    report.table(["run", "seconds"], [[k, f"{v:.0f}"] for k, v in result.run_seconds.items()])
    report.write(out)
