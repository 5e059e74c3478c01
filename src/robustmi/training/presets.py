"""Presets (``paper``, ``cpu``, ``smoke``) of each run kind; a config from preset + YAML + overrides.

- ``paper``: the paper's settings (PAPER.md §2.4–2.5): the dataset's PGD threat for every attack (MNIST
  ε 0.3, 10 steps of 0.1; Fashion-MNIST 0.1/10/0.02; SVHN 4/255/10/0.005; CIFAR-10 8/255/7/0.01), Adam
  1e-4, batch 128, 300 epochs, critic width 2048; supervised ResNet/VGG/DenseNet: SGD 0.1 with momentum,
  ÷10 every 50 of 200 epochs.
- ``cpu``: a work budget (``CPU_EPOCHS``: epochs, never wall time, so every machine trains the same) that
  a 2-core CPU finishes in minutes to an hour per run: critic width 512 with the paper-table 3-conv image
  branch (better and cheaper than the authors' 2-conv one at this budget: docs/fidelity.md), the authors'
  encoder-only worst-case search of 5 steps, Adam 1e-3 (1e-4 barely moves in a few epochs), fp32, robust
  heads by PGD-AT, early-stopped on held-out PGD accuracy (the authors keep the best epoch), evaluation on
  the full test set.
- ``smoke``: seconds; 512 training images, 2 epochs, a tiny critic, 2 PGD steps. For tests and CI only.

Precedence when building a config: preset < ``--config`` YAML < command options < ``key=value`` overrides.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from robustmi.attacks.presets import paper_attack
from robustmi.errors import ConfigError
from robustmi.runs import config_to_dict
from robustmi.runs.config import apply_override, read_yaml_mapping
from robustmi.runs.run_config import layered_config
from robustmi.training.config import EncoderRunConfig, ProbeRunConfig, SupervisedRunConfig

PRESETS = ("paper", "cpu", "smoke")
RUN_KINDS = {"encoder": EncoderRunConfig, "probe": ProbeRunConfig, "supervised": SupervisedRunConfig}
_CNN_ARCHS = ("resnet18", "resnet50", "vgg16", "densenet121")


def list_presets() -> list[str]:
    """Names accepted by :func:`get_preset`."""
    return list(PRESETS)


def _attack(dataset: str, **changes: Any) -> dict[str, Any]:
    """The paper's threat of ``dataset`` (``robustmi.attacks.paper_attack``) as config fields, changed."""
    return {**config_to_dict(paper_attack(dataset)), **changes}


def cpu_search(dataset: str) -> dict[str, Any]:
    """The encoder's worst-case search on the cpu budget: half the paper's steps at twice its step size
    (MNIST: 5 steps of 0.1, which still crosses the 0.3 ball; as prototyped, DESIGN.md)."""
    attack = paper_attack(dataset)
    step_size = 0.1 if attack.eps == 0.3 else 2 * attack.step_size
    return _attack(dataset, steps=5, step_size=step_size)


def _smoke_attack(dataset: str) -> dict[str, Any]:
    return _attack(dataset, steps=2, step_size=paper_attack(dataset).eps / 2)


_SMOKE = {"train_limit": 512, "epochs": 2, "batch_size": 64, "lr": 1e-3, "eval_limit": 128,
          "eval_batch_size": 128, "log_every": 2}
# cpu: fp32 (bf16 autocast gains <= 1.1x here since every search runs in fp32, and is several times slower
# on CPUs without native bf16: benchmarks/RESULTS.md); Adam 1e-3 (1e-4 barely moves in a few epochs).
_CPU = {"lr": 1e-3, "bf16": False, "log_every": 50}
# Work budgets of the cpu preset (epochs, the same science on every machine; wall times in README). Robust
# heads and supervised models train by PGD-AT (FGSM-RS is not at parity on standard encoders: a DIM encoder's
# FGSM-RS head kept 1 % held-out PGD accuracy where PGD-AT's kept 10 %: docs/fidelity.md).
CPU_EPOCHS = {"encoder": 1, "probe-standard": 20, "probe-robust": 1, "supervised-standard": 3,
              "supervised-robust": 1}


def _encoder_preset(name: str, dataset: str) -> dict[str, Any]:
    if name == "paper":
        return {"epochs": 300, "lr": 1e-4, "critic_width": 2048, "num_convs": 2,
                "attack": _attack(dataset), "mi_eval_samples": 1000}
    if name == "cpu":
        # 3 convs on the cpu budget: at 200 steps the 3-conv critic gave robust heads twice the PGD accuracy
        # of the 2-conv one, 2 seeds each (docs/fidelity.md), in about half the wall time per step
        return {**_CPU, "epochs": CPU_EPOCHS["encoder"], "critic_width": 512, "num_convs": 3,
                "attack": cpu_search(dataset), "mi_eval_samples": 512}
    return {**_SMOKE, "critic_width": 64, "num_convs": 2, "attack": _smoke_attack(dataset),
            "mi_eval_samples": 64}


def _probe_preset(name: str, dataset: str, mode: str) -> dict[str, Any]:
    if name == "paper":
        return {"epochs": 300, "lr": 1e-4, "attack": _attack(dataset), "val_size": 5000}
    if name == "cpu":
        if mode == "standard":
            return {**_CPU, "epochs": CPU_EPOCHS["probe-standard"], "attack": _attack(dataset),
                    "val_size": 2000, "early_stop": "none"}
        return {**_CPU, "epochs": CPU_EPOCHS["probe-robust"], "attack": _attack(dataset), "val_size": 2000,
                "early_stop": "adversarial"}
    return {**_SMOKE, "attack": _smoke_attack(dataset), "val_size": 128}


def _supervised_preset(name: str, dataset: str, arch: str, mode: str) -> dict[str, Any]:
    from robustmi.data import get_dataset_info

    augment = get_dataset_info(dataset).image_shape[0] == 3 and dataset != "svhn"
    if name == "paper":
        if arch in _CNN_ARCHS:
            return {"epochs": 200, "lr": 0.1, "optimizer": "sgd", "momentum": 0.9, "weight_decay": 5e-4,
                    "lr_milestones": [50, 100, 150], "augment": augment, "attack": _attack(dataset)}
        return {"epochs": 300, "lr": 1e-4, "optimizer": "adam", "augment": augment,
                "attack": _attack(dataset)}
    if name == "cpu":
        epochs = CPU_EPOCHS.get(f"supervised-{mode}", CPU_EPOCHS["supervised-robust"])
        return {**_CPU, "epochs": epochs, "augment": augment,
                "attack": _attack(dataset)}
    return {**_SMOKE, "attack": _smoke_attack(dataset)}


def get_preset(kind: str, name: str, dataset: str = "mnist", **fields: Any) -> Any:
    """The config of run ``kind`` under preset ``name`` for ``dataset``.

    Args:
        kind: ``"encoder"``, ``"probe"`` or ``"supervised"``.
        name: ``"paper"``, ``"cpu"`` or ``"smoke"``.
        dataset: dataset name (selects the threat model and augmentation).
        **fields: further top-level fields (e.g. ``objective``, ``arch``, ``encoder``) set after the preset.

    Returns:
        An ``EncoderRunConfig``, ``ProbeRunConfig`` or ``SupervisedRunConfig``.

    Raises:
        ConfigError: unknown kind, preset or field.
    """
    return build_config(kind, name, dataset=dataset, fields=fields)


def build_config(kind: str, preset: str = "paper", *, dataset: str | None = None,
                 config_path: str | Path | None = None, fields: Mapping[str, Any] | None = None,
                 overrides: Sequence[str] = ()) -> Any:
    """Preset, then YAML file, then ``fields`` (command options), then ``key=value`` overrides.

    Args:
        kind: ``"encoder"``, ``"probe"`` or ``"supervised"``.
        preset: ``"paper"``, ``"cpu"`` or ``"smoke"``.
        dataset: dataset of the preset (``None``: the YAML/fields/overrides value, else the config default;
            for probes, the encoder run's dataset).
        config_path: optional YAML file with a partial config.
        fields: top-level values from command options (``None`` values are skipped).
        overrides: ``"key=value"`` / ``"attack.eps=8/255"`` strings, values parsed as YAML.

    Returns:
        The validated run config.

    Raises:
        ConfigError: unknown kind/preset/key, wrong type, invalid value, unreadable YAML.
    """
    if kind not in RUN_KINDS:
        raise ConfigError(f"unknown run kind {kind!r}; choose one of: {', '.join(RUN_KINDS)}")
    if preset not in PRESETS:
        raise ConfigError(f"unknown preset {preset!r}; choose one of: {', '.join(PRESETS)}")
    user = read_yaml_mapping(Path(config_path)) if config_path is not None else {}
    user.update({key: value for key, value in (fields or {}).items() if value is not None})
    for override in overrides:
        apply_override(user, override)
    cls = RUN_KINDS[kind]
    dataset = dataset or user.get("dataset") or _default_dataset(kind, user)
    arch = user.get("arch", cls.arch if kind == "supervised" else "")
    mode = str(user.get("mode", "standard"))
    table = {"encoder": lambda: _encoder_preset(preset, dataset),
             "probe": lambda: _probe_preset(preset, dataset, mode),
             "supervised": lambda: _supervised_preset(preset, dataset, arch, mode)}
    return layered_config(cls, [table[kind](), {"dataset": dataset}, user])


def _default_dataset(kind: str, user: Mapping[str, Any]) -> str:
    if kind == "probe" and user.get("encoder"):
        found = encoder_dataset(str(user["encoder"]))
        if found:
            return found
    return "mnist"


def encoder_dataset(encoder: str | Path) -> str | None:
    """The ``dataset`` recorded in an encoder run folder's config.yaml (``None`` if not a run folder)."""
    from robustmi.runs.run_config import run_dataset

    return run_dataset(encoder)
