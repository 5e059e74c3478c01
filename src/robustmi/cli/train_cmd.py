"""``robustmi train-encoder`` / ``train-probe`` / ``train-supervised``: build a config, call the library.

Each command: a preset (``paper``, ``cpu``, ``smoke``), then ``--config file.yaml``, then its options, then
``key=value`` overrides (``epochs=5 attack.eps=0.1``); the same under ``torchrun`` for many processes:

    robustmi train-encoder --dataset mnist --objective worst-case-mi --preset cpu --out runs/enc
    robustmi train-probe --encoder runs/enc --head mlp --mode robust --early-stop adversarial --out runs/probe
    robustmi train-supervised --arch baseline-h --mode robust --dataset mnist --out runs/sup
    python -m torch.distributed.run --nproc_per_node 2 -m robustmi train-encoder ... (same flags)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

_PRESET = typer.Option("cpu", "--preset", help="paper | cpu | smoke (see robustmi.training.presets).")
_OUT = typer.Option(..., "--out", help="Run folder to create (refused if it holds another run).")
_CONFIG = typer.Option(None, "--config", help="YAML file with config values (over the preset).")
_RESUME = typer.Option(False, "--resume", help="Continue the run in --out from its last checkpoint.")
_OVERRIDES = typer.Argument(None, help="key=value overrides, e.g. epochs=5 attack.eps=0.1 seed=1.")
_DATASET = typer.Option(None, "--dataset", help="Dataset name (robustmi data check lists them).")
_DATA_DIR = typer.Option(None, "--data-dir", help="Folder searched first for the dataset's files.")
_SEED = typer.Option(None, "--seed", help="Seed of the run (initialisation, batches, random starts).")


def _report(results: dict[str, Any], out: Path) -> None:
    """One summary line per key number (rank 0 only: other ranks return no evaluation)."""
    if "kind" not in results:
        return
    keys = ("natural_accuracy", "adversarial_accuracy", "train_mi", "mi_clean", "mi_worst")
    shown = {k: results[k] for k in keys if results.get(k) is not None}
    typer.echo(f"{results['kind']} run finished -> {out}/results.json")
    typer.echo(json.dumps({**shown, "stopped_by": results["training"]["stopped_by"],
                           "epochs": results["training"]["epochs"]}))


def train_encoder_command(
    out: Path = _OUT,
    dataset: str = _DATASET,
    objective: str = typer.Option(None, "--objective", help="mi (DIM) | worst-case-mi (Algorithm 1)."),
    data_dir: str = _DATA_DIR,
    seed: int = _SEED,
    preset: str = _PRESET,
    config: Path = _CONFIG,
    resume: bool = _RESUME,
    overrides: list[str] = _OVERRIDES,
) -> None:
    """Train an unsupervised encoder by Deep InfoMax or worst-case mutual information."""
    from robustmi.training import build_config, train_encoder  # torch: imported here, not at --help

    cfg = build_config("encoder", preset, dataset=dataset, config_path=config,
                       fields={"objective": objective, "data_dir": data_dir, "seed": seed},
                       overrides=overrides or [])
    _report(train_encoder(cfg, out, resume=resume), out)


def train_probe_command(
    out: Path = _OUT,
    encoder: str = typer.Option(None, "--encoder", "--model", help="Encoder run folder (or model .pt file)."),
    head: str = typer.Option(None, "--head", help="linear | mlp."),
    mode: str = typer.Option(None, "--mode", help="standard | robust (PGD-AT, head only) | finetune (AFF)."),
    early_stop: str = typer.Option(None, "--early-stop", help="none | adversarial (best held-out PGD acc)."),
    dataset: str = typer.Option(None, "--dataset", help="Dataset (default: the encoder run's)."),
    data_dir: str = _DATA_DIR,
    seed: int = _SEED,
    preset: str = _PRESET,
    config: Path = _CONFIG,
    resume: bool = _RESUME,
    overrides: list[str] = _OVERRIDES,
) -> None:
    """Train a linear/MLP head on a frozen encoder, standard or adversarially."""
    from robustmi.training import build_config, train_probe

    fields = {"encoder": encoder, "head": head, "mode": mode, "early_stop": early_stop, "data_dir": data_dir,
              "seed": seed}
    cfg = build_config("probe", preset, dataset=dataset, config_path=config, fields=fields,
                       overrides=overrides or [])
    _report(train_probe(cfg, out, resume=resume), out)


def train_supervised_command(
    out: Path = _OUT,
    arch: str = typer.Option(None, "--arch", help="baseline-h | baseline-h-linear | resnet18 | vgg16 | ..."),
    mode: str = typer.Option(None, "--mode", help="standard | robust (PGD-AT)."),
    dataset: str = _DATASET,
    data_dir: str = _DATA_DIR,
    seed: int = _SEED,
    preset: str = _PRESET,
    config: Path = _CONFIG,
    resume: bool = _RESUME,
    overrides: list[str] = _OVERRIDES,
) -> None:
    """Train a fully supervised classifier, standard or adversarially."""
    from robustmi.training import build_config, train_supervised

    cfg = build_config("supervised", preset, dataset=dataset, config_path=config,
                       fields={"arch": arch, "mode": mode, "data_dir": data_dir, "seed": seed},
                       overrides=overrides or [])
    _report(train_supervised(cfg, out, resume=resume), out)


def register(app: typer.Typer) -> None:
    """Add ``train-encoder``, ``train-probe`` and ``train-supervised`` to the robustmi app."""
    app.command("train-encoder")(train_encoder_command)
    app.command("train-probe")(train_probe_command)
    app.command("train-supervised")(train_supervised_command)
