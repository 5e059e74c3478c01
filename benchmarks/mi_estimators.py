"""The MI-estimator staircase benchmark (Poole et al. 2019, Fig. 2; Song & Ermon 2020, Fig. 1), on our bounds.

Setting: x ~ N(0, I_20), y = rho x + sqrt(1 - rho^2) eps, per-coordinate rho chosen so that the true
I(X; Y) = -10 log(1 - rho^2) steps through 2, 4, 6, 8, 10 nats during training (``--steps`` per level),
and the same with y replaced by y^3 ("cubic": an invertible transform, so the MI is unchanged but the optimal
critic is no longer quadratic). Every step draws a fresh batch of 64 pairs: there is no fixed training set,
so this measures the bounds' bias and variance, not overfitting (that is estimate_mi's held-out selection).

Each step first reads the estimate off the current critic on the new batch (out of sample: the critic has not
seen it), then takes one Adam step (lr 5e-4, as both papers) on the training objective:

- ``dv``: trained and read out with DV (MINE without the moving average);
- ``nwj``: NWJ;
- ``infonce``: InfoNCE (at most log 64 = 4.16 nats);
- ``jsd``: trained with the JSD objective; read out twice from the same critic: with DV (``jsd-dv``, our
  estimate_mi convention) and with SMILE, DV with negatives clipped at tau = 5 (``smile``, Song & Ermon).

Critics: ``separable`` (f(x) . g(y), MLPs 20 -> 256 -> 256 -> 32) and ``concat`` (MLP([x; y]) 40 -> 256 -> 256
-> 1), as in the papers. Results: one JSON per (data, critic, objective) under ``--out`` (a rerun skips those
present: resumable), then ``mi_estimators.json`` (table + machine facts) and ``mi_estimators.png``.

``--defaults`` instead measures ``estimate_mi`` with its defaults (DV and NWJ) at the corners of issue 15's
grid, two data seeds each: rotated correlated Gaussians of dimension 10 / 30, 10 000 / 50 000 pairs,
1 / 4 nats and independent -> ``mi_estimate_defaults.json``; ``--folds K`` sets estimate_mi's cross-fitting
folds, ``--dims`` / ``--pairs`` keep some corners (file name suffixes ``-folds<K>``, ``-d<dims>``,
``-n<pairs>``); ``--pairs`` may name any pair count, e.g. 20 000, where the default folds change).

Usage:
    python benchmarks/mi_estimators.py [--steps 500] [--threads 1] [--out benchmarks/results/mi_estimators]
    python benchmarks/mi_estimators.py --defaults [--folds 5] [--dims 30] [--pairs 10000]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

from robustmi.mi import create_critic, estimate_mi, get_bound
from robustmi.mi.bounds import dv_bound, smile_bound

LEVELS = (2.0, 4.0, 6.0, 8.0, 10.0)
DIM, BATCH, LR = 20, 64, 5e-4
OBJECTIVES = {"dv": ("dv",), "nwj": ("nwj",), "infonce": ("infonce",), "jsd": ("jsd-dv", "smile")}
READOUTS = {"dv": dv_bound, "nwj": get_bound("nwj"), "infonce": get_bound("infonce"), "jsd-dv": dv_bound,
            "smile": lambda s: smile_bound(s, clip=5.0)}  # fmt: skip
CRITICS = {"separable": {"hidden": 256, "embed": 32}, "concat": {"hidden": 256}}
DEFAULT_OUT = Path(__file__).parent / "results" / "mi_estimators"


def sample(mi: float, cubic: bool, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """A fresh batch (BATCH, DIM) x 2 with I(X; Y) = ``mi`` nats."""
    rho = math.sqrt(1.0 - math.exp(-2.0 * mi / DIM))
    x = torch.randn(BATCH, DIM, generator=gen)
    y = rho * x + math.sqrt(1.0 - rho**2) * torch.randn(BATCH, DIM, generator=gen)
    return x, (y**3 if cubic else y)


def run_one(data: str, critic_name: str, objective: str, steps: int, seed: int = 0) -> dict:
    """Train one critic through the staircase; per-step out-of-sample estimates for each readout."""
    torch.manual_seed(seed)
    critic = create_critic(critic_name, x_dim=DIM, z_dim=DIM, **CRITICS[critic_name])
    opt = torch.optim.Adam(critic.parameters(), lr=LR)
    train_bound = get_bound(objective)
    gen = torch.Generator().manual_seed(seed)
    estimates: dict[str, list[float]] = {r: [] for r in OBJECTIVES[objective]}
    start = time.perf_counter()
    for mi in LEVELS:
        for _ in range(steps):
            x, y = sample(mi, data == "cubic", gen)
            scores = critic(x, y)  # (B, B); read out before the update: the critic has not seen this batch
            for readout in estimates:
                estimates[readout].append(float(READOUTS[readout](scores.detach())))
            loss = -train_bound(scores)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return {"data": data, "critic": critic_name, "objective": objective, "steps_per_level": steps,
            "seconds": time.perf_counter() - start, "estimates": estimates}  # fmt: skip


def level_stats(values: list[float], steps: int) -> list[dict]:
    """Bias and std of the estimates over the second half of each level (after the critic adapted)."""
    out = []
    for k, mi in enumerate(LEVELS):
        part = torch.tensor(values[k * steps + steps // 2 : (k + 1) * steps], dtype=torch.float64)
        finite = part[torch.isfinite(part)]
        mean = float(finite.mean()) if len(finite) else float("nan")
        std = float(finite.std()) if len(finite) > 1 else float("nan")
        median = float(finite.median()) if len(finite) else float("nan")
        nonfinite = len(part) - len(finite)
        out.append({"true": mi, "mean": mean, "bias": mean - mi, "std": std, "median": median,
                    "median_bias": median - mi, "nonfinite": nonfinite})  # fmt: skip
    return out


def machine_facts(threads: int) -> dict:
    return {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "torch": torch.__version__,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "threads": threads,
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "load_average": list(os.getloadavg()),
    }


def plot(runs: list[dict], path: Path) -> None:
    """Staircase plot: rows = data, columns = readouts; raw estimates faint, 100-step means bold."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    readouts = [r for names in OBJECTIVES.values() for r in names]
    fig, axes = plt.subplots(2, len(readouts), figsize=(3.2 * len(readouts), 6.2), sharex=True, sharey=True)
    colors = {"separable": "tab:blue", "concat": "tab:orange"}
    for run in runs:
        row = 0 if run["data"] == "gaussian" else 1
        steps = run["steps_per_level"]
        truth = [mi for mi in LEVELS for _ in range(steps)]
        for name, values in run["estimates"].items():
            ax = axes[row, readouts.index(name)]
            v = torch.tensor(values).clamp(-2, 14)
            ax.plot(v, color=colors[run["critic"]], alpha=0.15, lw=0.5)
            smooth = torch.nn.functional.avg_pool1d(v[None, None], 100, 1, 0)[0, 0]
            ax.plot(range(99, len(v)), smooth, color=colors[run["critic"]], lw=1.5, label=run["critic"])
            ax.plot(truth, color="black", lw=1)
            ax.set_title(f"{name} ({run['data']})", fontsize=9)
    axes[0, readouts.index("infonce")].axhline(math.log(BATCH), color="gray", ls="--", lw=0.8)
    axes[0, 0].legend(fontsize=8)
    axes[0, 0].set_ylim(-2, 14)
    fig.supxlabel("training step (true MI steps 2 -> 10 nats)")
    fig.supylabel("estimate (nats)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def table(runs: list[dict]) -> list[dict]:
    rows = []
    for run in runs:
        for name, values in run["estimates"].items():
            rows.append({"data": run["data"], "critic": run["critic"], "estimator": name,
                         "levels": level_stats(values, run["steps_per_level"])})  # fmt: skip
    return rows


def _num(v: float, sign: str = "") -> str:
    return f"{v:{sign}.2f}" if abs(v) < 1000 else f"{v:{sign}.1e}"


def print_table(rows: list[dict]) -> None:
    """Markdown: bias (mean - truth) ± std per level, then the median's bias in brackets."""
    head = " | ".join(f"{mi:g} nats" for mi in LEVELS)
    print(f"| data | critic | estimator | {head} |")
    print("|---|---|---|" + "---:|" * len(LEVELS))
    for row in rows:
        cells = " | ".join(
            f"{_num(lv['bias'], '+')} ± {_num(lv['std'])} [{_num(lv['median_bias'], '+')}]"
            for lv in row["levels"]
        )
        print(f"| {row['data']} | {row['critic']} | {row['estimator']} | {cells} |")


DEFAULTS_DIMS, DEFAULTS_PAIRS = (10, 30), (10_000, 50_000)
"""The corners of issue 15's grid: dimension 10 / 30, 10 000 / 50 000 pairs (1 / 4 nats, and independent)."""


def defaults_cells(dims: list[int] | None, pairs: list[int] | None) -> list[tuple[int, int, float]]:
    """(dim, pairs, true MI) cells: correlated ones (1 and 4 nats) by dimension, then independent ones by
    pair count; ``dims`` / ``pairs`` replace the grid's (any pair count, e.g. 20 000)."""
    dims, pairs = dims or list(DEFAULTS_DIMS), pairs or list(DEFAULTS_PAIRS)
    correlated = [(d, n, mi) for d in dims for n in pairs for mi in (1.0, 4.0)]
    return correlated + [(d, n, 0.0) for n in pairs for d in dims]


DEFAULTS_SEEDS = (1, 2)
"""Data seeds (sample, rotation); estimate_mi runs with ``seed = data seed - 1`` (the first: its default)."""


def rotated_pairs(n: int, d: int, mi: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """n pairs with I = ``mi`` nats (0: independent), the second variable turned by a random rotation."""
    g = torch.Generator().manual_seed(seed)
    rho = math.sqrt(1.0 - math.exp(-2.0 * mi / d))
    x = torch.randn(n, d, generator=g)
    y = rho * x + math.sqrt(1.0 - rho**2) * torch.randn(n, d, generator=g)
    rotation, _ = torch.linalg.qr(torch.randn(d, d, generator=g))
    return x, y @ rotation  # (n, d) @ (d, d)


def defaults_grid(path: Path, folds: int | None, dims: list[int] | None, pairs: list[int] | None) -> None:
    """estimate_mi with its defaults (``folds``: None = its default) on :func:`defaults_cells` x
    DEFAULTS_SEEDS; prints a markdown table, writes JSON."""
    rows = []
    columns = ("dim", "pairs", "true MI", "seed", "estimator", "folds", "estimate", "95 % CI", "ratio")
    print("| " + " | ".join((*columns, "best step", "flags", "s")) + " |")
    print("|---:|---:|---:|---:|---|---:|---:|---|---:|---:|---|---:|")
    for d, n, mi in defaults_cells(dims, pairs):
        for data_seed in DEFAULTS_SEEDS:
            x, y = rotated_pairs(n, d, mi, seed=data_seed)
            for estimator in ("dv", "nwj"):
                start = time.perf_counter()
                est = estimate_mi(x, y, estimator=estimator, seed=data_seed - 1, folds=folds)
                row = {"dim": d, "pairs": n, "true": mi, "seed": data_seed, "estimator": estimator,
                       "folds": est.settings["folds"], "value": est.value, "ci": est.ci,
                       "fold_values": est.fold_values, "best_step": est.best_step, "flags": est.flags,
                       "seconds": time.perf_counter() - start}  # fmt: skip
                rows.append(row)
                ratio = f"{est.value / mi:.3f}" if mi else "-"
                ci = f"[{est.ci[0]:.3f}, {est.ci[1]:.3f}]"
                cells = [d, n, f"{mi:g}", data_seed, estimator, row["folds"], f"{est.value:.3f}", ci, ratio,
                         est.best_step, ", ".join(est.flags), f"{row['seconds']:.0f}"]  # fmt: skip
                print("| " + " | ".join(str(c) for c in cells) + " |", flush=True)
    facts = machine_facts(torch.get_num_threads())
    facts["load_average_end"] = list(os.getloadavg())
    path.write_text(
        json.dumps({"machine": facts, "seeds": DEFAULTS_SEEDS, "folds": folds, "rows": rows}, indent=1)
    )


def defaults_path(out: Path, folds: int | None, dims: list[int] | None, pairs: list[int] | None) -> Path:
    """``mi_estimate_defaults[-folds<K>][-d<dims>][-n<pairs>].json`` beside ``out``: the full grid at the
    defaults keeps the plain name."""
    suffix = f"-folds{folds}" if folds is not None else ""
    suffix += "-d" + "_".join(map(str, dims)) if dims else ""
    suffix += "-n" + "_".join(map(str, pairs)) if pairs else ""
    return out.parent / f"mi_estimate_defaults{suffix}.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=500, help="training steps per MI level (papers: 4000)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--defaults", action="store_true", help="estimate_mi's defaults on issue 15's grid")
    parser.add_argument("--folds", type=int, help="--defaults: estimate_mi's folds (default: its default)")
    parser.add_argument("--dims", type=int, nargs="+", help="--defaults: these dimensions (default 10 30)")
    parser.add_argument("--pairs", type=int, nargs="+", help="--defaults: pair counts (10000 50000)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.defaults:
        path = defaults_path(args.out, args.folds, args.dims, args.pairs)
        defaults_grid(path, args.folds, args.dims, args.pairs)
        return
    args.out.mkdir(parents=True, exist_ok=True)
    facts_start = machine_facts(args.threads)
    runs = []
    for data in ("gaussian", "cubic"):
        for critic_name in CRITICS:
            for objective in OBJECTIVES:  # data, critic, objective order: the table's row order
                path = args.out / f"{data}-{critic_name}-{objective}-{args.steps}.json"
                if path.exists():  # resumable: finished runs are kept
                    runs.append(json.loads(path.read_text()))
                    continue
                run = run_one(data, critic_name, objective, args.steps)
                path.write_text(json.dumps(run))
                print(f"{data} {critic_name} {objective}: {run['seconds']:.0f} s", flush=True)
                runs.append(run)
    rows = table(runs)
    seconds = {f"{r['data']}-{r['critic']}-{r['objective']}": r["seconds"] for r in runs}
    summary = {"machine": facts_start, "load_average_end": list(os.getloadavg()),
               "steps_per_level": args.steps, "batch_size": BATCH, "dim": DIM, "lr": LR, "levels": LEVELS,
               "table": rows, "seconds": seconds}  # fmt: skip
    (args.out.parent / "mi_estimators.json").write_text(json.dumps(summary, indent=1))
    plot(runs, args.out.parent / "mi_estimators.png")
    print_table(rows)
    print(json.dumps(facts_start))


if __name__ == "__main__":
    main()
