"""Run configurations of the three training run kinds: encoder, probe, supervised.

Each run config is a plain dataclass tree (``robustmi.runs`` reads it from YAML and ``a.b=value`` overrides,
checking keys and types); :mod:`robustmi.training.presets` fills it per preset and dataset. The knob names are
those of the library, the CLI and ``results.json`` (``eps``, ``steps``, ``step_size``, ``batch_size``, ``lr``,
``epochs``, ``estimator``, ``critic_width``, ``seed``).

Validation of values (not types, which ``robustmi.runs`` checks) happens in ``__post_init__`` and raises
``ConfigError`` with the field and the fix.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from robustmi.attacks.presets import AttackSettings
from robustmi.errors import ConfigError

OBJECTIVES = ("mi", "worst-case-mi")
PROBE_MODES = ("standard", "robust", "finetune")
TRAIN_ITERATES = ("last", "best")
SUPERVISED_MODES = ("standard", "robust")
HEADS = ("linear", "mlp")
EARLY_STOP = ("none", "adversarial")
OPTIMIZERS = ("adam", "sgd")


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"{name}={value!r} is not valid; choose one of: {', '.join(choices)}")


def _check_positive(name: str, value: float | int | None, *, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if value is None or value <= 0:
        raise ConfigError(f"{name}={value!r} must be > 0; set {name}=<positive number>")


@dataclass
class TrainSettings:
    """Knobs every run kind shares (the engine's and the final evaluation's).

    Attributes:
        dataset: ``robustmi.data`` name (``mnist``, ``fashion-mnist``, ``svhn``, ``cifar10``, synthetic ones).
        data_dir: where the dataset files are (``None``: ``$ROBUSTMI_DATA`` and the known offline sources).
        seed: seeds the model init, the data order and every attack's randomness.
        deterministic: ``torch.use_deterministic_algorithms`` (resume then gives bit-identical weights).
        batch_size: the global batch; under DDP each of W processes takes ``batch_size / W``.
        epochs: passes over the training set.
        max_steps: stop after this many optimiser steps in total (``None``: no limit).
        max_minutes: stop after this much training time in total, summed over resumes (``None``: no limit).
        lr: learning rate of every optimiser.
        bf16: bf16 autocast for the training forward pass only (attacks and evaluation stay fp32).
        train_limit: use only the first ``train_limit`` training images (``None``: all).
        eval_limit: evaluate on the first ``eval_limit`` test images (``None``: all).
        eval_batch_size: batch size of the final evaluation and the per-epoch validation.
        eval_attacks: ``robustmi.attacks.get_attack_preset`` names for the final evaluation.
        log_every: write a step record (metric means over the last ``log_every`` steps) every this many
            steps.
        tensorboard: also write TensorBoard events to RUN/tensorboard (needs ``pip install tensorboard``).
        num_threads: ``torch.set_num_threads`` for the run (``None``: leave torch's default).
    """

    dataset: str = "mnist"
    data_dir: str | None = None
    seed: int = 0
    deterministic: bool = False
    batch_size: int = 128
    epochs: int = 300
    max_steps: int | None = None
    max_minutes: float | None = None
    lr: float = 1e-4
    bf16: bool = False
    train_limit: int | None = None
    eval_limit: int | None = None
    eval_batch_size: int = 256
    eval_attacks: list[str] = field(default_factory=lambda: ["paper"])
    log_every: int = 50
    tensorboard: bool = False
    num_threads: int | None = None

    def __post_init__(self) -> None:
        for name in ("batch_size", "epochs", "lr", "eval_batch_size", "log_every"):
            _check_positive(name, getattr(self, name))
        for name in ("max_steps", "max_minutes", "train_limit", "eval_limit", "num_threads"):
            _check_positive(name, getattr(self, name), allow_none=True)


@dataclass
class EncoderRunConfig(TrainSettings):
    """An unsupervised encoder run: Baseline-H front trained by DIM (``mi``) or worst-case MI (Algorithm 1).

    Attributes:
        objective: ``mi`` (standard DIM, maximise the MI estimate on clean inputs) or ``worst-case-mi``
            (maximise it on inputs perturbed by PGD to minimise it, paper eq. 5.3 / Algorithm 1).
        arch: registered encoder name.
        estimator: MI bound of the DIM critic (``dv``, ``jsd``, ``infonce``, ``nwj``).
        critic_width: width of the critic's 1x1 layers (paper: 2048).
        num_convs: convs in the critic's x-branch (authors' code: 2; paper Table 2: 3; docs/fidelity.md).
        attack: the worst-case search (used by ``worst-case-mi``, and by the per-epoch worst-case MI probe).
        search_bf16: run the worst-case search's forward passes in bf16 autocast (the update keeps ``bf16``;
            held-out MI and evaluation attacks stay fp32). Only faster on a CPU with native bf16
            (``robustmi.runs.environment.cpu_capability``); elsewhere it is emulated and slower (a warning).
        through_critic: the worst-case search's gradient also flows through the critic's image branch (the
            paper's Algorithm 1 as written); default False, the authors' code (``robustmi.mi.worst_case``).
        gather_negatives: under DDP, score every rank's samples against each other (global-batch negatives).
        mi_eval_samples: test images for the per-epoch clean / worst-case MI measurement (0: skip it).
    """

    objective: str = "worst-case-mi"
    arch: str = "baseline-h-encoder"
    estimator: str = "dv"
    critic_width: int = 2048
    num_convs: int = 2
    attack: AttackSettings = field(default_factory=AttackSettings)
    search_bf16: bool = False
    through_critic: bool = False
    gather_negatives: bool = False
    mi_eval_samples: int = 512

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_choice("objective", self.objective, OBJECTIVES)
        _check_positive("critic_width", self.critic_width)
        _check_positive("num_convs", self.num_convs)
        if self.mi_eval_samples < 0:
            raise ConfigError(f"mi_eval_samples={self.mi_eval_samples} must be >= 0 (0: no measurement)")


@dataclass
class ClassifierSettings(TrainSettings):
    """Knobs of the classifier run kinds (probe, supervised): the adversarial-training attack.

    Attributes:
        attack: PGD of robust (and finetune) training and of early-stopping validation.
        fast: in robust training, replace PGD by FGSM with a random start (Wong et al. 2020, step 1.25 eps;
            one forward/backward per step instead of ``attack.steps``). Pair it with early stopping on
            validation adversarial accuracy: FGSM-RS can overfit catastrophically.
        train_iterate: which PGD iterate adversarial training uses: ``last`` (Madry et al.) or ``best``
            (each sample's highest-loss iterate). ``last`` was the stronger training attack
            (docs/fidelity.md).
        lr_milestones: epochs at which the learning rate is multiplied by ``lr_gamma`` (empty: constant).
    """

    attack: AttackSettings = field(default_factory=AttackSettings)
    fast: bool = False
    train_iterate: str = "last"
    lr_milestones: list[int] = field(default_factory=list)
    lr_gamma: float = 0.1

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_choice("train_iterate", self.train_iterate, TRAIN_ITERATES)
        if any(not isinstance(m, int) or m < 1 for m in self.lr_milestones) \
                or list(self.lr_milestones) != sorted(set(self.lr_milestones)):
            raise ConfigError(f"lr_milestones={list(self.lr_milestones)} must be increasing epochs >= 1, "
                              f"e.g. lr_milestones=[20,30]")
        if not 0 < self.lr_gamma <= 1:
            raise ConfigError(f"lr_gamma={self.lr_gamma} must be in (0, 1], e.g. lr_gamma=0.1")


@dataclass
class ProbeRunConfig(ClassifierSettings):
    """A downstream head on a frozen encoder (or adversarial full fine-tuning, ``mode=finetune``).

    ``robustmi.training.build_config`` takes ``dataset`` from the encoder run's config.yaml if not given.

    Attributes:
        encoder: the encoder: a run folder (its ``model.pt``) or a model file ``robustmi.models`` resolves.
        head: ``linear`` or ``mlp`` (paper S Table 2).
        mode: ``standard`` (cross-entropy on clean inputs), ``robust`` (PGD-AT of the composed model, head
            updated only) or ``finetune`` (PGD-AT updating encoder and head: AFF).
        early_stop: ``adversarial`` keeps the epoch with the best PGD accuracy on a held-out split of the
            training set (the paper's E.S. row); ``none`` keeps the last epoch.
        val_size: training images held out for early stopping (taken from the end of the training set).
    """

    encoder: str = ""
    head: str = "mlp"
    mode: str = "standard"
    early_stop: str = "none"
    val_size: int = 5000

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.fast and self.mode == "standard":
            raise ConfigError("fast=true (FGSM-RS) needs mode=robust or finetune; drop fast or change mode")
        _check_choice("head", self.head, HEADS)
        _check_choice("mode", self.mode, PROBE_MODES)
        _check_choice("early_stop", self.early_stop, EARLY_STOP)
        _check_positive("val_size", self.val_size)


@dataclass
class SupervisedRunConfig(ClassifierSettings):
    """A fully supervised classifier (the paper's "Fully-supervised" rows and Fig. 1 models).

    Attributes:
        arch: registered classifier name (``baseline-h``, ``baseline-h-linear``, ``resnet18``, ...).
        mode: ``standard`` or ``robust`` (PGD-AT, Madry et al.).
        optimizer: ``adam`` (paper's Baseline-H) or ``sgd`` (momentum; paper's ResNet/VGG/DenseNet).
        momentum, weight_decay: SGD/Adam extras.
        augment: random crop (padding 4) and horizontal flip of training batches (CIFAR-style).
    """

    arch: str = "baseline-h"
    mode: str = "standard"
    optimizer: str = "adam"
    momentum: float = 0.9
    weight_decay: float = 0.0
    augment: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_choice("mode", self.mode, SUPERVISED_MODES)
        _check_choice("optimizer", self.optimizer, OPTIMIZERS)
        if self.fast and self.mode != "robust":
            raise ConfigError("fast=true (FGSM-RS) needs mode=robust; drop fast or set mode=robust")
        if self.weight_decay < 0 or not 0 <= self.momentum < 1:
            raise ConfigError("weight_decay must be >= 0 and momentum in [0, 1); fix the value")
