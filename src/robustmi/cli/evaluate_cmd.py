"""``robustmi evaluate``: robust accuracy of a classifier under one or more attacks.

    robustmi evaluate --model runs/probe --attack paper --attack autoattack --limit 1000
    robustmi evaluate --model runs/probe --attack pgd20 attack.eps=0.2        # every attack at eps 0.2

Reads the model with ``robustmi.models.resolve_model`` (run folder, .pt file, ``module:factory``), the dataset
named by ``--dataset`` or else by the run folder's config.yaml, calls ``robustmi.attacks.evaluate_robustness``
and writes ``results.json`` (natural accuracy, accuracy per attack with its settings and implementation,
per-point worst case, sanity flags) into ``--out`` (default ``RUN/eval``), then prints a short table.
"""

from __future__ import annotations

from pathlib import Path

import typer
import yaml

from robustmi.errors import ConfigError

# Shown by --help without importing torch; tests/cli/test_startup.py keeps it equal to list_attack_presets().
ATTACK_PRESETS = ("apgd-ce", "autoattack", "paper", "pgd20")


def _run_config(model: str) -> dict:
    """The run folder's config.yaml as a dict ({} when ``model`` is not a run folder or has none)."""
    path = Path(model) / "config.yaml"
    if not path.is_file():
        return {}
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError:
        raise ConfigError(f"{path} is not valid YAML; fix it or pass --dataset") from None
    return data if isinstance(data, dict) else {}


def _threat_changes(config: Path | None, overrides: list[str]) -> dict:
    """The ``attack`` section of ``--config``, then ``attack.*=value`` overrides (its only settings)."""
    from robustmi.runs.config import apply_override, read_yaml_mapping

    raw = read_yaml_mapping(config) if config is not None else {}
    for item in overrides:
        apply_override(raw, item)
    unknown = sorted(set(raw) - {"attack"})
    section = raw.get("attack", {})
    if unknown or not isinstance(section, dict):
        got = ", ".join(unknown) if unknown else f"attack={section!r}"
        raise ConfigError(f"evaluate takes only attack.* settings (e.g. attack.eps=0.1), got {got}")
    return section


def _default_out(model: str) -> Path:
    if Path(model).is_dir():
        return Path(model) / "eval"
    raise ConfigError("--out is required when --model is not a run folder; e.g. --out runs/eval-mymodel")


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
    split: str = typer.Option("test", "--split", help="Dataset split to evaluate on."),
    data_dir: str = typer.Option(None, "--data-dir", help="Folder searched first for dataset files."),
    weights: str = typer.Option(
        None, "--weights", help="state_dict file loaded into a 'module:factory' model."
    ),
    limit: int = typer.Option(None, "--limit", help="Evaluate only the first N points."),
    batch_size: int = typer.Option(256, "--batch-size", help="Points per batch."),
    seed: int = typer.Option(0, "--seed", help="Seed of random starts (PGD, AutoAttack)."),
    individual: bool = typer.Option(
        False, "--individual", help="Run every attack on every correct point (default: cascade)."
    ),
    out: Path = typer.Option(None, "--out", help="Folder for results.json (default RUN/eval)."),
    config: Path = typer.Option(None, "--config", help="YAML file with an 'attack:' section (threat knobs)."),
    overrides: list[str] = typer.Argument(
        None, help="Threat knobs for every attack, e.g. attack.eps=0.1 attack.steps=20 (applied last)."
    ),
) -> None:
    """Natural accuracy, accuracy under each attack and the per-point worst case; writes results.json."""
    from robustmi.attacks import evaluate_robustness, resolve_attacks  # torch: not at `robustmi --help`
    from robustmi.attacks.presets import with_threat
    from robustmi.data import load_dataset
    from robustmi.models import check_classifier, resolve_model
    from robustmi.runs import RunDir

    if seed < 0:
        raise ConfigError(f"--seed {seed} must be >= 0 (seeds random starts)")
    run_config = _run_config(model)
    dataset = dataset or run_config.get("dataset")
    if not dataset:
        raise ConfigError("no dataset: pass --dataset (only run folders record their dataset)")
    out = out if out is not None else _default_out(model)
    attacks = resolve_attacks(list(attack or ["paper"]), dataset)  # bad presets fail before anything is read
    attacks = with_threat(attacks, _threat_changes(config, list(overrides or [])))
    data = load_dataset(dataset, split, data_dir or run_config.get("data_dir"))
    network = resolve_model(model, weights)
    check_classifier(network, data.images, data.num_classes, model)  # wrong input size, an encoder, NaN
    run = RunDir(out)  # refuses to overwrite an earlier evaluation, before the attacks spend any time
    try:
        results = evaluate_robustness(
            network,
            data,
            attacks,
            batch_size=batch_size,
            limit=limit,
            seed=seed,
            cascade=not individual,
        )
        results.update({"model": model, "weights": weights, "split": split})
        run.write_results(results)
    except BaseException:
        run.discard_if_unstarted()  # a failed evaluation leaves no half-made folder
        raise
    _print_table(results, out)


def register(app: typer.Typer) -> None:
    """Add ``evaluate`` to the robustmi app."""
    app.command("evaluate")(evaluate_command)
