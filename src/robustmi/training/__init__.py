"""robustmi.training: one engine, three run kinds (encoder, probe, supervised), presets, DDP.

- :func:`train_encoder`: Deep InfoMax (``objective="mi"``) or worst-case MI (``"worst-case-mi"``, Algorithm
1).
- :func:`train_probe`: a linear/MLP head on a frozen encoder, standard or PGD-AT; AFF fine-tuning; E.S.
- :func:`train_supervised`: Baseline-H / ResNet / VGG / DenseNet, standard or PGD-AT (FGSM-RS fast mode).
- :func:`get_preset` / :func:`build_config`: ``paper``, ``cpu``, ``smoke`` presets + YAML + overrides.
- :class:`Engine`: the loop (checkpoint/resume, bf16, limits, metrics, early-stopping selection).

Example:
    >>> from robustmi.training import get_preset, train_encoder, train_probe
    >>> enc = train_encoder(get_preset("encoder", "cpu", objective="worst-case-mi"), "runs/enc")
    >>> cfg = get_preset("probe", "cpu", encoder="runs/enc", head="mlp", mode="robust")
    >>> probe = train_probe(cfg, "runs/probe")
    >>> probe["adversarial_accuracy"]
"""

from robustmi.attacks import AttackSettings
from robustmi.training.config import (
    EncoderRunConfig,
    ProbeRunConfig,
    SupervisedRunConfig,
    TrainSettings,
)
from robustmi.training.distributed import DistInfo, setup_distributed, teardown_distributed
from robustmi.training.encoder import build_encoder_and_critic, train_encoder
from robustmi.training.engine import Engine, EngineConfig, EngineState
from robustmi.training.presets import PRESETS, build_config, get_preset, list_presets
from robustmi.training.probe import build_probe, load_encoder, train_probe
from robustmi.training.steps import ClassifierStep, CrossEntropyLoss, EncoderStep, MILoss, search_worst_case
from robustmi.training.supervised import train_supervised

__all__ = [
    "PRESETS",
    "AttackSettings",
    "ClassifierStep",
    "CrossEntropyLoss",
    "DistInfo",
    "EncoderRunConfig",
    "EncoderStep",
    "Engine",
    "EngineConfig",
    "EngineState",
    "MILoss",
    "ProbeRunConfig",
    "SupervisedRunConfig",
    "TrainSettings",
    "build_config",
    "build_encoder_and_critic",
    "build_probe",
    "get_preset",
    "list_presets",
    "load_encoder",
    "setup_distributed",
    "teardown_distributed",
    "train_encoder",
    "train_probe",
    "train_supervised",
    "search_worst_case",
]
