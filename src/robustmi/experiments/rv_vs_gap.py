"""Representation vulnerability against the adversarial gap (P Fig. 1) and worst-case MI against measured
adversarial accuracy with the Theorem 3.4 ceiling (P Fig. 2), on classifiers' logit layers.

Trains (or reuses) standard and PGD-trained classifiers at several ε and architectures, and standard and
robust MLP heads on a DIM and a worst-case-MI encoder; measures each logit layer's normal and worst-case MI
with Algorithm 2 at the dataset's paper threat, and plots both figures with the Spearman rank correlation
between RV and the natural − adversarial accuracy gap.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from robustmi.errors import ConfigError
from robustmi.experiments.plots import plot_scatter
from robustmi.experiments.report import Report
from robustmi.experiments.runner import (
    RunSpec,
    check_overrides,
    measure_vulnerability,
    print_line,
    run_config,
    run_in_processes,
    run_one,
)
from robustmi.experiments.table import BUDGETS
from robustmi.runs._atomic import atomic_write_text
from robustmi.runs.environment import environment_info

_MODELS: tuple[tuple[str, str, float | None], ...] = (  # (arch, mode, training eps; None: the paper's)
    ("baseline-h", "standard", None),
    ("baseline-h", "robust", 0.1),
    ("baseline-h", "robust", 0.2),
    ("baseline-h", "robust", None),
    ("baseline-h-linear", "standard", None),
    ("baseline-h-linear", "robust", None),
    ("resnet18", "standard", None),
    ("resnet18", "robust", None),
)


@dataclass(frozen=True)
class ModelPoint:
    """One model's measurements (accuracies as fractions, MI in nats)."""

    name: str
    natural_accuracy: float
    adversarial_accuracy: float
    mi_normal: float
    mi_worst: float
    vulnerability: float
    ceiling: float

    @property
    def gap(self) -> float:
        return self.natural_accuracy - self.adversarial_accuracy


def spearman(xs: Sequence[float], ys: Sequence[float]) -> float:
    """Spearman rank correlation (average ranks for ties); NaN for fewer than 3 points or constant input."""

    def ranks(values: Sequence[float]) -> list[float]:
        order = sorted(range(len(values)), key=lambda i: values[i])
        out = [0.0] * len(values)
        i = 0
        while i < len(order):
            j = i
            while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
                j += 1
            for k in range(i, j + 1):
                out[order[k]] = (i + j) / 2.0
            i = j + 1
        return out

    if len(xs) != len(ys) or len(xs) < 3:
        return math.nan
    rx, ry = ranks(xs), ranks(ys)
    mx, my = sum(rx) / len(rx), sum(ry) / len(ry)
    cov = sum((a - mx) * (b - my) for a, b in zip(rx, ry, strict=True))
    sx = math.sqrt(sum((a - mx) ** 2 for a in rx))
    sy = math.sqrt(sum((b - my) ** 2 for b in ry))
    return math.nan if sx == 0 or sy == 0 else cov / (sx * sy)


def _model_specs(budget: str, dataset: str) -> list[tuple[RunSpec, float | None]]:
    """The supervised models: (spec, training ε); names match the table's runs so one runs folder serves
    both studies (``--runs``)."""
    from robustmi.attacks import paper_attack

    eps_paper = paper_attack(dataset).eps
    specs = []
    for arch, mode, eps in _MODELS:
        if budget != "paper" and arch == "resnet18":
            continue  # CPU budgets keep to Baseline-H (6 models): a ResNet-18 epoch under PGD-AT takes hours
        tag = f"supervised-{arch}-{mode}" + (f"-eps{eps:g}" if eps is not None else "")
        eps = eps_paper if mode == "robust" and eps is None else eps
        specs.append((RunSpec(tag, "supervised", {"arch": arch, "mode": mode}, mode), eps))
    return specs


def _representation_specs() -> tuple[list[RunSpec], list[RunSpec]]:
    """The unsupervised encoders and the MLP heads on them (standard and robust), from the table's plan."""
    from robustmi.experiments.table import table_plan

    runs = table_plan()[0]
    encoders = [spec for spec in runs if spec.kind == "encoder"]
    heads = [spec for spec in runs if spec.kind == "probe" and "-mlp-" in spec.name
             and spec.name.rsplit("-", 1)[-1] in ("standard", "robust") and "early" not in spec.name]
    return encoders, heads


def _supervised_config(spec: RunSpec, eps: float | None, budget: str, dataset: str, data_dir: str | None,
                       overrides: Sequence[str]):
    threat: list[str] = []
    fields = dict(spec.fields, data_dir=data_dir, seed=0)
    if eps is not None:
        attack = run_config("supervised", budget, dataset=dataset, fields={}).attack
        scale = eps / attack.eps  # keep the paper's steps; scale the step size with ε
        threat = [f"attack.eps={eps}", f"attack.step_size={attack.step_size * scale}"]
    return run_config("supervised", budget, dataset=dataset, fields=fields, overrides=[*threat, *overrides])


def measure_model(
    run_dir: Path, budget: str, dataset: str, data_dir: str | None, seed: int
) -> dict[str, Any]:
    """Algorithm 2 on the logit layer of the model in ``run_dir`` (a run in ``run_dir/vulnerability``)."""
    from robustmi.vulnerability import vulnerability_preset

    # the preset carries the dataset's paper threat (eps, steps, step size)
    settings = {**vulnerability_preset(budget, dataset), "layer": "logits", "seed": seed}
    return measure_vulnerability(run_dir, dataset, data_dir, settings)


def _train_and_measure(spec: RunSpec, cfg: Any, runs: Path, budget: str, dataset: str, data_dir: str | None,
                       seed: int, log: Callable[[str], None]) -> ModelPoint:
    run_dir = runs / spec.name
    log(f"[rv-vs-gap] {spec.name}: training")
    trained = run_one(spec, cfg, run_dir)
    log(f"[rv-vs-gap] {spec.name}: vulnerability of the logit layer")
    vuln = measure_model(run_dir, budget, dataset, data_dir, seed)
    return ModelPoint(spec.name, float(trained["natural_accuracy"]), float(trained["adversarial_accuracy"]),
                      float(vuln["mi_normal"]), float(vuln["mi_worst"]), float(vuln["vulnerability"]),
                      float(vuln["adv_accuracy_ceiling"]))


def reproduce_rv_vs_gap(
    budget: str,
    out_dir: str | Path,
    *,
    dataset: str = "mnist",
    data_dir: str | None = None,
    seed: int = 0,
    jobs: int = 1,
    runs_dir: str | Path | None = None,
    overrides: Sequence[str] = (),
    log: Callable[[str], None] = print,
) -> list[ModelPoint]:
    """Train/collect the models, measure them, and write report.md/.html, results.json and both figures.

    The models: Baseline-H classifiers trained standard and by PGD-AT at several ε, and MLP heads (standard
    and robust) on a DIM and a worst-case-MI encoder. They are seed-0 runs named as in the table
    reproduction, kept in ``runs_dir/trial-0`` (default ``out_dir/runs``): give both studies the same
    ``runs_dir`` and the second reuses the first's runs. ``jobs`` models train and are measured at once.
    """
    if budget not in BUDGETS:
        raise ConfigError(f"unknown budget {budget!r}; choose one of: {', '.join(BUDGETS)}")
    if jobs < 1:
        raise ConfigError(f"--jobs {jobs} must be >= 1")
    check_overrides(overrides, ("supervised", "encoder", "probe"))
    runs = Path(runs_dir if runs_dir is not None else Path(out_dir) / "runs").resolve() / "trial-0"
    started = time.monotonic()
    worker_log = log if jobs == 1 else print_line
    encoders, heads = _representation_specs()

    def representation_config(spec: RunSpec) -> Any:
        fields = {**spec.fields, "seed": 0, "data_dir": data_dir}
        if spec.encoder_run is not None:
            fields["encoder"] = str(runs / spec.encoder_run)
        return run_config(spec.kind, budget, dataset=dataset, fields=fields, overrides=overrides)

    run_in_processes([(run_one, (spec, representation_config(spec), runs / spec.name)) for spec in encoders],
                     jobs)  # the heads' encoders first: heads of both train at once after them
    calls = [(_train_and_measure, (spec, _supervised_config(spec, eps, budget, dataset, data_dir, overrides),
                                   runs, budget, dataset, data_dir, seed, worker_log))
             for spec, eps in _model_specs(budget, dataset)]
    calls += [(_train_and_measure, (spec, representation_config(spec), runs, budget, dataset, data_dir, seed,
                                    worker_log)) for spec in heads]
    points = run_in_processes(calls, jobs)
    write_rv_report(points, Path(out_dir), budget, dataset, time.monotonic() - started)
    return points


def write_rv_report(points: list[ModelPoint], out: Path, budget: str, dataset: str, wall_s: float,
                    missing: Sequence[str] = ()) -> None:
    """Both figures, the per-model table, the Spearman correlation and whether Theorem 3.4 held.

    ``missing``: planned models not measured yet (a report of finished models while the rest still run);
    the report and results.json name them.
    """
    out.mkdir(parents=True, exist_ok=True)
    rho = spearman([p.vulnerability for p in points], [p.gap for p in points])
    supervised = [p for p in points if p.name.startswith("supervised-")]  # the paper's Fig. 1 has only these
    rho_supervised = spearman([p.vulnerability for p in supervised], [p.gap for p in supervised])
    holds = all(p.adversarial_accuracy <= p.ceiling + 1e-9 for p in points)
    names = [p.name for p in points]
    plot_scatter(
        [p.vulnerability for p in points],
        [100 * p.gap for p in points],
        names,
        out / "fig1_rv_vs_gap.png",
        xlabel="representation vulnerability RV (nats)",
        ylabel="natural − PGD accuracy (% points)",
        title=f"Fig. 1: RV vs adversarial gap ({dataset}; Spearman ρ {rho:.2f}, "
              f"supervised {rho_supervised:.2f})",
    )
    ws = [0.0, math.log(10) - math.log(2)]
    plot_scatter(
        [p.mi_worst for p in points],
        [100 * p.adversarial_accuracy for p in points],
        names,
        out / "fig2_worst_mi_vs_accuracy.png",
        xlabel="worst-case MI of the logit layer (nats)",
        ylabel="PGD accuracy (%)",
        title=f"Fig. 2: Theorem 3.4 ceiling vs measured accuracy ({dataset})",
        line=(ws, [100 * min(1.0, (w + math.log(2)) / math.log(10)) for w in ws]),
        line_label="ceiling (I_worst + log 2) / log 10",
    )
    rows = [{**vars(p), "gap": p.gap} for p in points]
    payload = {
        "budget": budget,
        "dataset": dataset,
        "spearman_rv_gap": None if math.isnan(rho) else rho,  # JSON has no NaN (fewer than 3 distinct points)
        "spearman_rv_gap_supervised": None if math.isnan(rho_supervised) else rho_supervised,
        "theorem34_holds": holds,
        "models": rows,
        "missing_models": list(missing),
        "wall_s": round(wall_s, 1),
    }
    from robustmi.vulnerability import vulnerability_preset

    payload["algorithm2_settings"] = {**vulnerability_preset(budget, dataset), "layer": "logits"}
    payload["environment"] = environment_info()  # versions, CPU capability, git commit
    atomic_write_text(out / "results.json", json.dumps(payload, indent=2))
    report = Report(f"robustmi: representation vulnerability vs adversarial gap ({dataset})")
    report.text(
        f"Budget '{budget}'; {len(points)} models (supervised, and heads on DIM / worst-case-MI "
        f"encoders); logit-layer MI by Algorithm 2 at the paper's threat; this invocation took "
        f"{wall_s / 60:.1f} min of wall time (finished runs and measurements are read back, not redone). "
        f"Spearman correlation of RV with the natural − adversarial gap: {rho:.2f} over every model, "
        f"{rho_supervised:.2f} over the {len(supervised)} supervised models (the paper's Fig. 1 shows "
        f"supervised models only: RV and gap decrease together). Theorem 3.4 ceiling above "
        f"every measured PGD accuracy: {'yes' if holds else 'NO'}."
    )
    if missing:
        report.text(f"**Incomplete**: {len(missing)} planned model(s) not measured yet "
                    f"({', '.join(missing)}); re-running the same command measures them and rewrites this "
                    f"report.")
    report.table(
        ["model", "nat %", "PGD %", "gap", "I normal", "I worst", "RV", "ceiling %"],
        [
            [
                p.name,
                f"{100 * p.natural_accuracy:.1f}",
                f"{100 * p.adversarial_accuracy:.1f}",
                f"{100 * p.gap:.1f}",
                f"{p.mi_normal:.3f}",
                f"{p.mi_worst:.3f}",
                f"{p.vulnerability:.3f}",
                f"{100 * p.ceiling:.1f}",
            ]
            for p in points
        ],
    )
    report.image("fig1_rv_vs_gap.png", "RV of the logit layer against the natural − PGD accuracy gap.")
    report.image(
        "fig2_worst_mi_vs_accuracy.png",
        "Measured PGD accuracy against worst-case MI; the red line is "
        "the Theorem 3.4 ceiling, which every point must lie under.",
    )
    report.write(out)
