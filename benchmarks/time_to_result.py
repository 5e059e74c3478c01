"""Time to result (issue 12, item 6): the CPU time a worst-case-MI encoder + robust MLP head needs on MNIST.

The issue's target is the paper's 300-epoch GPU result, worst-case MI + robust MLP head at 95.05 % natural and
60.64 % PGD-10 accuracy, within 3 hours of wall time on a quiet 2-core CPU, encoder and head together. This
script trains along a list of encoder-epoch *milestones* (the budget: work, never wall time, so every machine
trains the same) and at each milestone trains a robust MLP head on the encoder and evaluates it on the test
set (the full 10 000 images outside ``--smoke``). The same recipe with the standard DIM objective
(``objective: mi``) runs beside it, so a gain is attributable to the encoder.

How the time is counted (all of it read from the run folders' ``results.json``, where each training run
records its session's ``wall_s`` and process ``cpu_s``, every thread):

- the encoder is trained once: milestone k's run folder starts from milestone k-1's final checkpoint
  (with the config of k epochs; nothing in training depends on the epoch count, so this *is* the k-epoch run,
  interrupted at k-1 epochs) and continues it; ``continues.json`` in the folder names its predecessor. The
  encoder cost at k is the sum of the sessions along that chain (each also pays a small start-up and a final
  held-out MI measurement that a single straight run would pay once);
- ``wall_s`` / ``cpu_s`` of a point = encoder cost so far + this milestone's head run, which includes the
  head's final evaluation: the time a user needs for this result. ``benchmark_wall_s`` adds the heads of the
  earlier milestones too (what the curve itself cost);
- a run interrupted and resumed records only its last session's time (the engine's ``elapsed_s`` is kept
  beside it as ``*_train_s``, summed over sessions).

Evaluation is the head run's own (``robustmi.attacks.evaluate_robustness``, cascaded): natural accuracy, the
paper's PGD-10 (ε 0.3, 10 steps of 0.1, no random start), then the ``pgd20`` preset (20 steps of ε/4 from a
random start, 5 restarts) on the points PGD-10 left: ``worst_case_accuracy`` is the per-point worst case of
both.

Run folders live under ``--out`` and are reused when finished and resumed when interrupted, so re-running the
same command continues where it stopped. Outputs: a table on stdout, a JSON file (points, recipe, resolved
overrides, machine via ``environment_info()``, load averages) and a PNG of accuracy against wall hours.

Usage:
    python benchmarks/time_to_result.py [--recipe paper-search] [--out DIR] [--json PATH] [key=value ...]
    python benchmarks/time_to_result.py --smoke --out /tmp/ttr            # seconds, for tests

Overrides: ``milestones=[1,2,4]``, ``encoder.<key>=v`` (encoder runs), ``head.<key>=v`` (head runs), or a bare
``<key>=v`` for every run that has the key (``num_threads=1``, ``seed=1``, ``data_dir=...``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from robustmi.errors import ConfigError, RobustMIError
from robustmi.experiments.ablation import search_variants
from robustmi.experiments.runner import RunSpec, check_overrides, run_config, run_one
from robustmi.runs import config_to_dict
from robustmi.runs._atomic import atomic_write_text
from robustmi.runs.checkpoint import sidecar_path
from robustmi.runs.config import save_config_yaml
from robustmi.runs.environment import environment_info
from robustmi.runs.run_dir import read_results

OBJECTIVES = ("worst-case-mi", "mi")
EVAL_ATTACKS = ["paper", "pgd20"]  # PGD-10 of 0.1, then PGD-20 x 5 restarts on what PGD-10 left
PAPER = {"worst-case-mi": (0.9505, 0.6064), "mi": (0.4499, 0.1670)}  # Table 3, robust MLP head: nat, PGD-10
TARGET_HOURS = 3.0
RESULTS_DIR = Path(__file__).resolve().parent / "results"


@dataclass(frozen=True)
class Recipe:
    """Encoder and head settings over the ``cpu`` (or, with ``--smoke``, ``smoke``) presets.

    Attributes:
        about: one line for the table and the JSON.
        milestones: encoder epochs at which a head is trained and evaluated (increasing).
        encoder: encoder-run fields set over the preset (search attack, critic, lr, batch, ...).
        head: robust-head (probe) fields set over the preset (PGD-AT epochs, early stopping, fast, ...).
    """

    about: str
    milestones: tuple[int, ...] = (1, 2, 4, 8, 16, 24)
    encoder: dict[str, Any] = field(default_factory=dict)
    head: dict[str, Any] = field(default_factory=dict)


_ES_HEAD = {"early_stop": "adversarial"}  # the cpu preset's robust head: PGD-AT, best held-out PGD epoch
_SEARCHES = search_variants("mnist")  # the encoder searches of `reproduce search-ablation`
RECIPES = {
    "paper-search": Recipe("cpu presets (critic 512 / 3 convs, Adam 1e-3) with the paper's encoder search, "
                           "PGD-10 of 0.1; head PGD-10 AT, E.S.", encoder=_SEARCHES["pgd-10"], head=_ES_HEAD),
    "paper-search-bf16": Recipe("paper-search with the search's forward passes in bf16 (search_bf16: at "
                                "parity with fp32 for half the encoder CPU where bf16 is native; "
                                "docs/fidelity.md)",
                                encoder=_SEARCHES["pgd-10-bf16"], head=_ES_HEAD),
    "cpu": Recipe("cpu presets: search PGD-5 of 0.1 (0.67x the encoder CPU, not at parity: "
                  "docs/fidelity.md), critic 512 / 3 convs, Adam 1e-3; head PGD-10 AT, E.S.", head=_ES_HEAD),
}
# FGSM-RS on the MI objective is not a recipe: its encoders' robust heads collapsed to DIM's level in the
# search ablation (4.2 % PGD vs 39.7 % for PGD-10; docs/fidelity.md).
DEFAULT_RECIPE = "paper-search"
_SMOKE_MILESTONES = (1, 2)
# set by the benchmark itself: encoder epochs come from the milestones, heads are robust MLPs on them
_FIXED = {"encoder": ("epochs", "objective", "dataset"),
          "head": ("encoder", "mode", "head", "eval_attacks", "dataset")}
_RUN_KINDS = {"common": ("encoder", "probe"), "encoder": ("encoder",), "head": ("probe",)}


@dataclass(frozen=True)
class Plan:
    """What one invocation trains: the recipe, the preset it sits on and the user's overrides."""

    recipe: str
    preset: str
    milestones: tuple[int, ...]
    common: tuple[str, ...] = ()  # key=value for every run kind that has the key
    encoder: tuple[str, ...] = ()  # key=value for encoder runs only
    head: tuple[str, ...] = ()  # key=value for head runs only
    dataset: str = "mnist"


def make_plan(recipe: str, overrides: Sequence[str], smoke: bool = False) -> Plan:
    """Split ``overrides`` by prefix, check them, and fix the milestones (ConfigError naming a bad one)."""
    if recipe not in RECIPES:
        raise ConfigError(f"unknown recipe {recipe!r}; choose one of: {', '.join(RECIPES)}")
    milestones = _SMOKE_MILESTONES if smoke else RECIPES[recipe].milestones
    parts: dict[str, list[str]] = {"common": [], "encoder": [], "head": []}
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"malformed override {item!r}; write key=value, e.g. head.epochs=2")
        if key.strip() == "milestones":
            milestones = _parse_milestones(value)
            continue
        kind, dot, rest = key.partition(".")
        kind = kind.strip() if dot and kind.strip() in ("encoder", "head") else "common"
        rest = rest if kind != "common" else key
        fixed = _FIXED["encoder"] + _FIXED["head"] if kind == "common" else _FIXED[kind]
        if rest.split(".")[0].strip() in fixed:
            raise ConfigError(f"{item!r}: the benchmark sets {rest.split('.')[0].strip()} itself (encoder "
                              f"epochs come from milestones=[...]; the heads are robust MLPs on MNIST)")
        parts[kind].append(f"{rest}={value}")
    for kind, run_kinds in _RUN_KINDS.items():
        check_overrides(parts[kind], run_kinds)
    return Plan(recipe, "smoke" if smoke else "cpu", milestones, *(tuple(parts[k]) for k in parts))


def _parse_milestones(text: str) -> tuple[int, ...]:
    value = yaml.safe_load(text)
    ok = isinstance(value, list) and value and all(isinstance(v, int) and v > 0 for v in value)
    if not ok or any(b <= a for a, b in zip(value, value[1:], strict=False)):
        raise ConfigError(f"milestones={text} must be increasing positive epochs, e.g. milestones=[1,2,4]")
    return tuple(value)


def encoder_config(plan: Plan, objective: str, epochs: int) -> Any:
    """The encoder run of ``objective`` trained for ``epochs``: preset, recipe, overrides."""
    fields = {**RECIPES[plan.recipe].encoder, "objective": objective, "epochs": epochs}
    return run_config("encoder", plan.preset, dataset=plan.dataset, fields=fields,
                      overrides=plan.common + plan.encoder)


def head_config(plan: Plan, encoder_dir: Path) -> Any:
    """The robust MLP head on the encoder in ``encoder_dir``, evaluated by PGD-10 then PGD-20 x 5."""
    fields = {**RECIPES[plan.recipe].head, "encoder": str(encoder_dir), "head": "mlp", "mode": "robust",
              "eval_attacks": EVAL_ATTACKS}
    return run_config("probe", plan.preset, dataset=plan.dataset, fields=fields,
                      overrides=plan.common + plan.head)


def train_encoder_to(cfg: Any, run_dir: Path, previous: Path | None) -> dict[str, Any]:
    """Train the encoder run ``cfg`` into ``run_dir``, continuing ``previous`` (a finished run of fewer
    epochs of the same config) instead of starting over; a finished ``run_dir`` is reused."""
    fresh = read_results(run_dir) is None and not (run_dir / "checkpoints" / "last.pt").is_file()
    if previous is not None and fresh:
        (run_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
        save_config_yaml(cfg, run_dir / "config.yaml", header=f"continues the run in {previous}")
        if (previous / "metrics.jsonl").is_file():
            shutil.copyfile(previous / "metrics.jsonl", run_dir / "metrics.jsonl")
        atomic_write_text(run_dir / "continues.json", json.dumps({"run": str(previous)}) + "\n")
        last = previous / "checkpoints" / "last.pt"
        for source in (sidecar_path(last), last):  # last.pt last: its presence marks the folder resumable
            _copy_atomic(source, run_dir / "checkpoints" / source.name)
    return run_one(RunSpec(run_dir.name, "encoder", {}, "encoder"), cfg, run_dir)


def _copy_atomic(source: Path, target: Path) -> None:
    """``source`` at ``target``, never half there: a hard link where the filesystem allows (the engine
    replaces checkpoints by rename, so the previous run's file is never written through it), else a copy."""
    partial = target.with_name(f".{target.name}.partial")
    partial.unlink(missing_ok=True)
    try:
        os.link(source, partial)
    except OSError:  # another filesystem, or no hard links
        shutil.copyfile(source, partial)
    os.replace(partial, target)


def encoder_cost(run_dir: Path) -> tuple[float, float]:
    """(wall s, CPU s) of every session along ``run_dir``'s chain of continued runs."""
    wall = cpu = 0.0
    folder: Path | None = run_dir
    while folder is not None:
        results = read_results(folder) or {}
        wall, cpu = wall + float(results.get("wall_s") or 0.0), cpu + float(results.get("cpu_s") or 0.0)
        link = folder / "continues.json"
        folder = Path(json.loads(link.read_text(encoding="utf-8"))["run"]) if link.is_file() else None
    return wall, cpu


def make_point(objective: str, epochs: int, encoder_dir: Path, encoder: dict[str, Any],
               head: dict[str, Any], spent: tuple[float, float]) -> dict[str, Any]:
    """One point of the curve; ``spent``: (wall, CPU) s of the earlier milestones' heads of this objective."""
    enc_wall, enc_cpu = encoder_cost(encoder_dir)
    head_wall, head_cpu = float(head["wall_s"]), float(head["cpu_s"])
    evaluation = head.get("evaluation", {})
    return {
        "objective": objective, "epochs": epochs,
        "wall_s": round(enc_wall + head_wall, 2), "cpu_s": round(enc_cpu + head_cpu, 2),
        "encoder_wall_s": round(enc_wall, 2), "encoder_cpu_s": round(enc_cpu, 2),
        "encoder_train_s": encoder["training"]["elapsed_s"],
        "head_wall_s": head_wall, "head_cpu_s": head_cpu, "head_train_s": head["training"]["elapsed_s"],
        "head_best_epoch": head["training"].get("best_epoch"),
        "benchmark_wall_s": round(enc_wall + spent[0] + head_wall, 2),
        "benchmark_cpu_s": round(enc_cpu + spent[1] + head_cpu, 2),
        "natural_accuracy": head["natural_accuracy"],
        "pgd10_accuracy": head["attack_accuracy"]["paper"],
        "worst_case_accuracy": head["adversarial_accuracy"],
        "pgd20x5_extra_broken": evaluation.get("attacks", {}).get("pgd20", {}).get("broken"),
        "eval_images": evaluation.get("num_samples"),
        "flags": [flag["name"] for flag in evaluation.get("flags", [])],
        "mi_clean": encoder.get("mi_clean"), "mi_worst": encoder.get("mi_worst"),
    }


def run_objective(plan: Plan, objective: str, out: Path, on_point: Callable[[dict], None]) -> list[dict]:
    """Every milestone of ``objective``: grow the encoder, train and evaluate a head, report the point."""
    points: list[dict[str, Any]] = []
    previous, spent = None, (0.0, 0.0)
    for epochs in plan.milestones:
        enc_dir, head_dir = (out / objective / f"{kind}-e{epochs:04d}" for kind in ("encoder", "head"))
        encoder = train_encoder_to(encoder_config(plan, objective, epochs), enc_dir, previous)
        head = run_one(RunSpec(head_dir.name, "probe", {}, "probe"), head_config(plan, enc_dir), head_dir)
        points.append(make_point(objective, epochs, enc_dir, encoder, head, spent))
        on_point(points[-1])
        previous, spent = enc_dir, (spent[0] + head["wall_s"], spent[1] + head["cpu_s"])
    return points


def projection(points: Sequence[dict], milestones: Sequence[int]) -> str:
    """Hours left for this objective at the rates measured so far (encoder per epoch, head per milestone)."""
    last = points[-1]
    left = [m for m in milestones if m > last["epochs"]]
    if not left:
        return "done"
    per_epoch = last["encoder_wall_s"] / last["epochs"]
    hours = (per_epoch * (left[-1] - last["epochs"]) + last["head_wall_s"] * len(left)) / 3600
    return f"about {hours:.1f} h left for this objective at the measured rates"


TABLE_HEADER = ("objective", "epochs", "encoder min", "head+eval min", "time to result h", "CPU h",
                "natural %", "PGD-10 %", "+PGD-20x5 %")


def table_rows(points: Sequence[dict]) -> list[list[str]]:
    """The printed (and RESULTS.md) table: one row per point."""
    return [[p["objective"], str(p["epochs"]), f"{p['encoder_wall_s'] / 60:.1f}",
             f"{p['head_wall_s'] / 60:.1f}", f"{p['wall_s'] / 3600:.2f}", f"{p['cpu_s'] / 3600:.2f}",
             f"{100 * p['natural_accuracy']:.2f}", f"{100 * p['pgd10_accuracy']:.2f}",
             f"{100 * p['worst_case_accuracy']:.2f}"] for p in points]


def markdown_table(points: Sequence[dict]) -> str:
    lines = ["| " + " | ".join(TABLE_HEADER) + " |", "|" + "---|" * len(TABLE_HEADER)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in table_rows(points)])


def plot_curves(points: Sequence[dict], path: Path, title: str) -> Path:
    """Natural, PGD-10 and worst-case accuracy (%) against time to result (wall hours), per objective."""
    import matplotlib

    matplotlib.use("Agg")  # headless: the figure goes to a file
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.2, 4.8))
    colours = {"worst-case-mi": "tab:blue", "mi": "tab:orange"}
    series = (("natural_accuracy", "natural", "--", "o"), ("pgd10_accuracy", "PGD-10", "-", "s"),
              ("worst_case_accuracy", "PGD-10 + PGD-20x5", ":", "^"))
    for objective in OBJECTIVES:
        mine = [p for p in points if p["objective"] == objective]
        if not mine:
            continue
        hours = [p["wall_s"] / 3600 for p in mine]
        for key, label, style, marker in series:
            ax.plot(hours, [100 * p[key] for p in mine], linestyle=style, marker=marker,
                    color=colours[objective], label=f"{objective}: {label}")
        for value in PAPER[objective]:
            ax.axhline(100 * value, color=colours[objective], linewidth=0.6, alpha=0.5)
    ax.axvline(TARGET_HOURS, color="grey", linewidth=0.8, linestyle="-.", label="3-hour target")
    ax.set_xlabel("time to result: encoder + robust head + evaluation (wall hours)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_ylim(0, 100)
    ax.set_title(title + "\n(thin lines: the paper's natural and PGD-10 accuracy, Table 3)", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2, loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def write_outputs(payload: dict[str, Any], json_path: Path) -> None:
    """The JSON (atomically) and, beside it, the PNG of the curves."""
    json_path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(json_path, json.dumps(payload, indent=2) + "\n")
    plot_curves(payload["points"], json_path.with_suffix(".png"),
                f"Time to result on {payload['dataset']}: recipe {payload['recipe']} ({payload['preset']})")


def run_benchmark(plan: Plan, out: str | Path, json_path: str | Path,
                  log: Callable[[str], None] = print) -> dict[str, Any]:
    """Train and evaluate every milestone of both objectives into ``out`` (reusing finished runs); write the
    JSON and PNG after every point. Returns the JSON payload."""
    out, json_path = Path(out).resolve(), Path(json_path)  # absolute: head configs name their encoder by path
    payload: dict[str, Any] = {
        "recipe": plan.recipe, "about": RECIPES[plan.recipe].about, "preset": plan.preset,
        "dataset": plan.dataset, "milestones": list(plan.milestones), "objectives": list(OBJECTIVES),
        "overrides": {"common": list(plan.common), "encoder": list(plan.encoder), "head": list(plan.head)},
        "eval_attacks": EVAL_ATTACKS, "paper_table3": PAPER, "target_hours": TARGET_HOURS, "out": str(out),
        "encoder_config": config_to_dict(encoder_config(plan, OBJECTIVES[0], plan.milestones[-1])),
        "environment": environment_info(), "load_average_start": os.getloadavg(), "points": [],
    }
    log(f"time to result: recipe {plan.recipe} ({payload['about']}), preset {plan.preset}; milestones "
        f"{list(plan.milestones)} encoder epochs (each trained once), one robust head per milestone and "
        f"objective; runs in {out}")
    log(" | ".join(TABLE_HEADER))
    for objective in OBJECTIVES:
        def on_point(point: dict, objective: str = objective) -> None:
            payload["points"].append(point)
            payload["load_average_end"] = os.getloadavg()
            write_outputs(payload, json_path)
            mine = [p for p in payload["points"] if p["objective"] == objective]
            log(" | ".join(table_rows([point])[0]) + f"  ({projection(mine, plan.milestones)})")

        run_objective(plan, objective, out, on_point)
    log(f"\n{markdown_table(payload['points'])}\n\nJSON: {json_path}\nPNG: {json_path.with_suffix('.png')}")
    return payload


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipe", default=DEFAULT_RECIPE,
                        help=f"one of: {', '.join(RECIPES)} (default {DEFAULT_RECIPE})")
    parser.add_argument("--smoke", action="store_true", help="smoke presets, milestones [1, 2]: seconds")
    parser.add_argument("--out", type=Path, default=None,
                        help="run folders (default runs/time-to-result/RECIPE, or RECIPE-smoke)")
    parser.add_argument("--json", type=Path, default=None,
                        help="JSON path, PNG beside it (default benchmarks/results/"
                             "time_to_result_RECIPE.json; with --smoke: OUT/time_to_result_smoke.json)")
    parser.add_argument("overrides", nargs="*", help="milestones=[1,2,4] encoder.k=v head.k=v k=v")
    args = parser.parse_args(argv)
    try:
        plan = make_plan(args.recipe, args.overrides, smoke=args.smoke)
        name = f"{args.recipe}-smoke" if args.smoke else args.recipe
        out = args.out or Path("runs") / "time-to-result" / name
        default_json = out / "time_to_result_smoke.json" if args.smoke \
            else RESULTS_DIR / f"time_to_result_{args.recipe}.json"
        run_benchmark(plan, out, args.json or default_json)
    except RobustMIError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
