"""``robustmi evaluate``: robust accuracy of a classifier under one or more attacks, as a resumable run.

    robustmi evaluate --model runs/probe --attack paper --attack autoattack --limit 1000
    robustmi evaluate --model runs/probe --attack pgd20 attack.eps=0.2        # every attack at eps 0.2
    robustmi evaluate --model runs/probe --attack autoattack --resume          # continue an interrupted one

Settings (``robustmi.attacks.evaluation_run.EvaluationConfig``): its defaults (the dataset: the run folder's),
then ``--config file.yaml``, then the options, then ``key=value`` arguments. Reads the model with
``robustmi.models.resolve_model`` (run folder, .pt file, ``module:factory``) and calls
``robustmi.attacks.evaluation_run.run_evaluation``, which writes ``config.yaml``, per-batch
``metrics.jsonl``, the resumable state in ``checkpoints/`` and ``results.json`` into ``--out`` (default
``RUN/eval``); then prints a short table.
"""

from __future__ import annotations

from pathlib import Path

import typer

from robustmi.errors import ConfigError

# Shown by --help without importing torch; tests/cli/test_startup.py keeps it equal to list_attack_presets().
ATTACK_PRESETS = ("apgd-ce", "autoattack", "paper", "pgd20")


def _default_out(model: str) -> Path:
    if Path(model).is_dir():
        return Path(model) / "eval"
    raise ConfigError("--out is required when --model is not a run folder; e.g. --out runs/eval-mymodel")


def _settings(model: str, config: Path | None, options: dict, overrides: list[str]):
    """EvaluationConfig: the run folder's dataset and data_dir, then the YAML file, then options, then
    key=value."""
    from robustmi.attacks.evaluation_run import EvaluationConfig
    from robustmi.runs.config import read_yaml_mapping
    from robustmi.runs.run_config import layered_config, run_defaults

    user = read_yaml_mapping(config) if config is not None else {}
    given = {key: value for key, value in options.items() if value is not None}
    run = run_defaults(model)
    if not (given.get("dataset") or user.get("dataset") or run.get("dataset")
            or any(item.startswith("dataset=") for item in overrides)):
        raise ConfigError("no dataset: pass --dataset (only run folders record their dataset)")
    return layered_config(EvaluationConfig, [run, user, given], overrides)


def _print_table(results: dict, out: Path) -> None:
    typer.echo(f"{'attack':<16}{'accuracy':>10}  implementation")
    typer.echo(f"{'natural':<16}{results['natural_accuracy']:>10.2%}")
    for name, entry in results["attacks"].items():
        typer.echo(f"{name:<16}{entry['accuracy']:>10.2%}  {entry['implementation']}")
    typer.echo(f"{'worst case':<16}{results['worst_case_accuracy']:>10.2%}")
    for flag in results["flags"]:
        typer.echo(f"flag {flag['name']}: {flag['message']} (explained by: robustmi flags {flag['name']})")
    typer.echo(f"results -> {out / 'results.json'}")


def evaluate_command(
    model: str = typer.Option(..., "--model", help="Run folder, model .pt file or 'module:factory'."),
    attack: list[str] = typer.Option(
        None,
        "--attack",
        help=f"Attack preset, repeatable: {' | '.join(ATTACK_PRESETS)} (default paper).",
    ),
    dataset: str = typer.Option(None, "--dataset", help="Dataset name (default: the run folder's dataset)."),
    split: str = typer.Option(None, "--split", help="Dataset split to evaluate on (default test)."),
    data_dir: str = typer.Option(None, "--data-dir", help="Folder searched first for dataset files."),
    weights: str = typer.Option(
        None, "--weights", help="state_dict file loaded into a 'module:factory' model."
    ),
    limit: int = typer.Option(None, "--limit", help="Evaluate only the first N points."),
    batch_size: int = typer.Option(None, "--batch-size", help="Points per batch (default 256)."),
    seed: int = typer.Option(None, "--seed", help="Seed of random starts (PGD, AutoAttack; default 0)."),
    individual: bool = typer.Option(
        False, "--individual", help="Run every attack on every correct point (default: cascade)."
    ),
    out: Path = typer.Option(None, "--out", help="Run folder to write (default RUN/eval)."),
    config: Path = typer.Option(None, "--config", help="YAML file of settings (e.g. a config.yaml)."),
    resume: bool = typer.Option(False, "--resume", help="Continue the evaluation saved in --out."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
    overrides: list[str] = typer.Argument(
        None, help="key=value settings, e.g. attack.eps=0.1 attack.steps=20 limit=500 (applied last)."
    ),
) -> None:
    """Natural accuracy, accuracy under each attack and the per-point worst case; a resumable run folder."""
    from robustmi.attacks.evaluation_run import run_evaluation  # torch: not at `robustmi --help`
    from robustmi.data import load_dataset
    from robustmi.models import check_classifier, resolve_model

    options = {"model": model, "dataset": dataset, "weights": weights, "split": split, "data_dir": data_dir,
               "attacks": list(attack) if attack else None, "limit": limit, "batch_size": batch_size,
               "seed": seed, "cascade": False if individual else None}
    cfg = _settings(model, config, options, list(overrides or []))
    out = out if out is not None else _default_out(model)
    cfg.attack_configs()  # bad presets or threat knobs fail before anything is read
    data = load_dataset(cfg.dataset, cfg.split, cfg.data_dir)
    network = resolve_model(model, cfg.weights)
    check_classifier(network, data.images, data.num_classes, model)  # wrong input size, an encoder, NaN
    results = run_evaluation(network, data, cfg, out, resume=resume, progress=progress)
    _print_table(results, out)


def register(app: typer.Typer) -> None:
    """Add ``evaluate`` to the robustmi app."""
    app.command("evaluate")(evaluate_command)
