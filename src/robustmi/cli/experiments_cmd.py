"""``robustmi demo`` and ``robustmi reproduce``: the experiments layer from the command line."""

from __future__ import annotations

from pathlib import Path

import typer

from robustmi.errors import ConfigError

_OVERRIDES = typer.Argument(
    None, help="key=value settings for every run that has the key, e.g. num_threads=1 lr=1e-4."
)
_TARGETS = ("mnist-table", "fashion-mnist-table", "cifar10-table", "svhn-table", "rv-vs-gap",
            "fidelity-ablation", "search-ablation")


def demo(
    out: Path = typer.Option(Path("report"), "--out", help="Report folder (runs go to OUT/runs)."),
    data_dir: str | None = typer.Option(None, "--data-dir", help="Folder with the MNIST files."),
    scale: float = typer.Option(1.0, "--scale", help="Multiplies every step budget (0.1: quick)."),
    seed: int = typer.Option(0, "--seed", help="Seeds every run (same seed: same numbers on any load)."),
    overrides: list[str] = _OVERRIDES,
) -> None:
    """Real-MNIST study of the paper's claims (fixed work, ~15 min on 2 cores) -> OUT/report.md."""
    if not scale > 0:
        raise ConfigError(f"--scale {scale} must be > 0")
    if seed < 0:
        raise ConfigError(f"--seed {seed} must be >= 0")
    from robustmi.experiments.demo import run_demo

    run_demo(out, data_dir=data_dir, scale=scale, seed=seed, overrides=overrides or [])


def reproduce(
    target: str = typer.Argument(..., help=f"One of: {', '.join(_TARGETS)}."),
    budget: str = typer.Option(
        "cpu", "--budget", help="smoke (seconds), cpu (hours on 2 cores) or paper (GPU)."
    ),
    trials: int = typer.Option(1, "--trials", help="Independent repeats with seeds 0..N-1 (paper: 4)."),
    out: Path = typer.Option(Path("report"), "--out", help="Report folder; re-running continues it."),
    data_dir: str | None = typer.Option(
        None, "--data-dir", help="Dataset folder (needed for CIFAR-10/SVHN)."
    ),
    dataset: str = typer.Option("mnist", "--dataset", help="Dataset of rv-vs-gap and the ablations."),
    seed: int = typer.Option(
        None, "--seed", help="Ablations: run only this seed (seeds can run in parallel processes)."
    ),
    jobs: int = typer.Option(1, "--jobs", help="Tables, rv-vs-gap: runs trained at once, one process each."),
    runs: Path = typer.Option(None, "--runs", help="Tables, rv-vs-gap: runs folder (default OUT/runs); "
                              "share one between studies to reuse their runs."),
    overrides: list[str] = _OVERRIDES,
) -> None:
    """Run a paper experiment end to end and write report.md, report.html and results.json."""
    if target not in _TARGETS:
        raise ConfigError(f"unknown target {target!r}; choose one of: {', '.join(_TARGETS)}")
    if target.endswith("-ablation"):
        from robustmi.experiments.ablation import reproduce_ablation

        reproduce_ablation(target, budget, out, trials=trials, only_seed=seed, dataset=dataset,
                           data_dir=data_dir, overrides=overrides or [])
    elif target == "rv-vs-gap":
        from robustmi.experiments.rv_vs_gap import reproduce_rv_vs_gap

        reproduce_rv_vs_gap(budget, out, dataset=dataset, data_dir=data_dir, jobs=jobs, runs_dir=runs,
                            overrides=overrides or [])
    else:
        from robustmi.experiments.table import reproduce_table

        reproduce_table(target, budget, out, trials=trials, jobs=jobs, data_dir=data_dir, runs_dir=runs,
                        overrides=overrides or [])
    typer.echo(f"report: {out / 'report.md'}")


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)
    app.command("reproduce")(reproduce)
