"""``robustmi saliency``: input-gradient maps of several models on the same samples (paper §4.3).

Builds a :class:`~robustmi.saliency.SaliencyConfig` (defaults, then ``--config`` YAML, then ``key=value``
overrides, then the flags given) and calls :func:`~robustmi.saliency.saliency_report`.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import typer

from robustmi.errors import ConfigError

_FLAGS = (
    "dataset", "split", "data_dir", "samples", "method", "target", "layer", "channel", "seed", "ig_steps",
    "baseline", "smoothgrad_samples", "noise", "scale", "threshold", "grid_rows",
)


def model_names(specs: list[str]) -> list[str]:
    """Column names for ``--model`` values, unique (``-2``, ``-3``, ...) and off the reserved npz keys.

    A run folder gives its name, a ``.pt`` file its stem (``RUN/model.pt`` -> ``RUN``), ``module:factory`` the
    factory's name.
    """
    from robustmi.saliency import RESERVED_NAMES

    names: list[str] = []
    for spec in specs:
        path = Path(spec.rstrip("/"))
        if ":" in spec and not path.exists():
            base = spec.rsplit(":", 1)[1]
        elif path.suffix in (".pt", ".pth"):
            base = path.parent.name if path.stem == "model" and path.parent.name else path.stem
        else:
            base = path.name or spec
        name, k = base, 2
        while name in names or name in RESERVED_NAMES:
            name, k = f"{base}-{k}", k + 1
        names.append(name)
    return names


def saliency(
    model: list[str] = typer.Option(
        None, "--model", help="Run folder, model .pt, 'module:factory' or registry name; repeat for columns."
    ),
    weights: list[str] = typer.Option(
        None,
        "--weights",
        help="state_dict for a factory-built --model; one per --model, in order ('-': none).",
    ),
    out: Path = typer.Option(..., "--out", help="Run folder to write: saliency.png, .npz, results.json."),
    dataset: str = typer.Option(None, "--dataset", help="Dataset name (default mnist)."),
    split: str = typer.Option(None, "--split", help="Dataset split (default test)."),
    data_dir: str = typer.Option(None, "--data-dir", help="Folder searched first for dataset files."),
    samples: int = typer.Option(None, "--samples", help="Images (rows), a seeded choice (default 8)."),
    method: str = typer.Option(None, "--method", help="grad | smoothgrad | ig (default grad)."),
    target: str = typer.Option(
        None, "--target", help="auto | mi | ce | logit | neuron (auto: mi for encoder runs, else ce)."
    ),
    layer: str = typer.Option(None, "--layer", help="Layer name for --target neuron (see list_layers)."),
    channel: int = typer.Option(None, "--channel", help="Channel index for --target neuron."),
    seed: int = typer.Option(None, "--seed", help="Picks the samples and SmoothGrad's noise (default 0)."),
    ig_steps: int = typer.Option(None, "--ig-steps", help="Integrated-Gradients intervals (default 50)."),
    baseline: float = typer.Option(None, "--baseline", help="Integrated-Gradients baseline (default 0)."),
    smoothgrad_samples: int = typer.Option(None, "--smoothgrad-samples", help="SmoothGrad copies (50)."),
    noise: float = typer.Option(None, "--noise", help="SmoothGrad noise / input range (0.15)."),
    scale: str = typer.Option(None, "--scale", help="Grid colours: absolute | signed (default absolute)."),
    threshold: float = typer.Option(None, "--threshold", help="Foreground threshold (default 0.1)."),
    grid_rows: int = typer.Option(None, "--grid-rows", help="Samples shown in the PNG (default 16)."),
    config: Path = typer.Option(None, "--config", help="YAML file with SaliencyConfig keys."),
    overrides: list[str] = typer.Argument(None, help="key=value overrides of the config, e.g. noise=0.2."),
) -> None:
    """Saliency maps of one or more models on the same samples, a PNG grid, raw maps and alignment scores."""
    from robustmi.runs import load_config  # torch, matplotlib: imported by the command, not by --help
    from robustmi.saliency import SaliencyConfig, saliency_report

    cfg = load_config(SaliencyConfig, config, overrides or ())
    given = {name: value for name, value in locals().items() if name in _FLAGS and value is not None}
    if model:
        given["models"] = list(model)
    if weights:
        given["weights"] = list(weights)
    try:
        cfg = dataclasses.replace(cfg, **given)  # re-runs SaliencyConfig's validation
    except ConfigError as error:
        raise ConfigError(f"invalid option: {error}") from None
    if not cfg.models:
        raise ConfigError("no models given; pass --model RUN (repeat it for more columns)")
    positional = ("models", "dataset", "samples", "method")
    settings = {k: v for k, v in dataclasses.asdict(cfg).items() if k not in positional}
    specs = zip(cfg.models, cfg.weights or ["-"] * len(cfg.models), strict=True)  # (spec, weights) pairs
    models = dict(zip(model_names(cfg.models), specs, strict=True))
    results = saliency_report(models, cfg.dataset, cfg.samples, cfg.method, out, **settings)
    for name, scores in results["per_model"].items():
        edge, mass = scores["edge_spearman"], scores["foreground_mass"]
        typer.echo(
            f"{name}: target={scores['target']} edge_spearman={_fmt(edge)} foreground_mass={_fmt(mass)}"
        )
    typer.echo(f"chance foreground_mass={results['foreground_fraction']:.3f}; wrote {out}/saliency.png")


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def register(app: typer.Typer) -> None:
    """Add the ``saliency`` command to the robustmi app."""
    app.command("saliency")(saliency)
