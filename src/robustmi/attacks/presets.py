"""Threat settings and attack configs as immutable objects, the paper's threat model per dataset, presets.

- ``AttackSettings``: the one threat-settings class (eps, norm, steps, step_size, random_start) that every
  run kind reuses: the worst-case MI search (training and Algorithm 2), PGD-AT and validation; YAML and the
  CLI spell its fields ``attack.eps=...`` in every command.
- ``AttackConfig``: one *evaluation* attack: the same threat knobs, validated by the same rule, plus a name,
  restarts, loss and method (robustmi's PGD or torchattacks' AutoAttack).

``PAPER_THREAT`` holds the paper's L∞ PGD settings (Zhu et al. 2020, App. D.1; PAPER.md §2.4), used alike for
worst-case MI, adversarial training and evaluation. Presets (``get_attack_preset``):

- ``paper``: exactly those settings — no random start, one run (the authors' evaluation, PAPER.md §3).
- ``pgd20``: 20 steps of ε/4 from a random start, 5 restarts (a stronger PGD at the same ε).
- ``autoattack``: standard AutoAttack (Croce & Hein 2020: APGD-CE, APGD-T, FAB-T, Square) at the dataset's ε.
- ``apgd-ce``: AutoAttack's first component alone (APGD on cross-entropy, 100 steps): a quick reliable check.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from robustmi.attacks.threat import list_norms
from robustmi.errors import AttackError, ConfigError

PAPER_THREAT: dict[str, tuple[float, int, float]] = {  # dataset -> (eps, steps, step_size), L∞
    "mnist": (0.3, 10, 0.1),
    "fashion-mnist": (0.1, 10, 0.02),
    "svhn": (4 / 255, 10, 0.005),
    "cifar10": (8 / 255, 7, 0.01),
}
_THREAT_ALIASES = {"synthetic-mnist": "mnist", "synthetic-cifar": "cifar10"}  # test sets of the same shape

METHODS = ("pgd", "autoattack", "apgd-ce")


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def threat_problem(
    eps: object, norm: object, steps: object, step_size: object, prefix: str = ""
) -> str | None:
    """What is wrong with these threat knobs (None: nothing). The one rule every settings class applies.

    ``eps`` must be finite and >= 0 (at most 1 for L∞: inputs live in [0, 1], a larger ball is the whole
    box), ``norm`` one of :func:`list_norms`, ``steps`` an integer >= 1, ``step_size`` finite and > 0 (or
    None, for attacks that adapt it). ``prefix`` names the section in messages (``"attack."``).
    """
    p = prefix
    if norm not in list_norms():
        return f"unknown {p}norm {norm!r}: use one of {', '.join(list_norms())}"
    if not (_is_number(eps) and math.isfinite(eps) and eps >= 0):
        return f"{p}eps must be a finite number >= 0, got {eps!r}"
    if norm == "linf" and eps > 1:
        return f"{p}eps={eps} exceeds the [0, 1] pixel range of an L∞ threat; pass e.g. {p}eps=0.3 or 8/255"
    if not (isinstance(steps, int) and not isinstance(steps, bool) and steps >= 1):
        return f"{p}steps must be an integer >= 1, got {steps!r}"
    if step_size is not None and not (_is_number(step_size) and math.isfinite(step_size) and step_size > 0):
        return f"{p}step_size must be a finite number > 0, got {step_size!r}"
    return None


@dataclass(frozen=True)
class AttackSettings:
    """A PGD threat: the ε-ball and how the search walks it (PAPER.md §2.4).

    Attributes:
        eps: radius of the ball (MNIST paper threat: 0.3).
        norm: "linf" (the paper's) or "l2".
        steps: PGD iterations (>= 1).
        step_size: step length (L∞: per coordinate).
        random_start: start at a uniform random point of the ball (the paper's searches: no).

    Raises:
        ConfigError: a value outside its range (the message names the field and the fix).
    """

    eps: float = 0.3
    norm: str = "linf"
    steps: int = 10
    step_size: float = 0.1
    random_start: bool = False

    def __post_init__(self) -> None:
        problem = threat_problem(self.eps, self.norm, self.steps, self.step_size, prefix="attack.")
        if problem is None and self.step_size is None:
            problem = "attack.step_size must be a finite number > 0, got None"
        if problem is None and not isinstance(self.random_start, bool):
            problem = f"attack.random_start must be true or false, got {self.random_start!r}"
        if problem is not None:
            raise ConfigError(problem)


@dataclass(frozen=True)
class AttackConfig:
    """One attack's knobs, recorded verbatim in results.json.

    Attributes:
        name: label in results (e.g. "paper", "pgd20", "autoattack").
        eps: radius of the threat model.
        norm: "linf" or "l2".
        steps: iterations (PGD steps; APGD/FAB iterations for the AutoAttack methods).
        step_size: PGD step length; None for the AutoAttack methods (they adapt it).
        random_start: start from a random point of the ball.
        restarts: independent runs; the worst case per sample is kept.
        loss: classifier loss maximised by PGD: "ce", "cw" or "dlr".
        method: "pgd" (robustmi's engine), "autoattack" or "apgd-ce" (torchattacks).
    """

    name: str
    eps: float
    norm: str = "linf"
    steps: int = 10
    step_size: float | None = None
    random_start: bool = False
    restarts: int = 1
    loss: str = "ce"
    method: str = "pgd"

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise AttackError(f"unknown attack method {self.method!r}: use one of {', '.join(METHODS)}")
        problem = threat_problem(self.eps, self.norm, self.steps, self.step_size)
        if problem is not None:
            raise AttackError(f"attack {self.name!r}: {problem}")
        if not (isinstance(self.restarts, int) and self.restarts >= 1):
            raise AttackError(f"attack {self.name!r} needs restarts >= 1, got {self.restarts!r}")
        if self.method == "pgd" and self.step_size is None:
            raise AttackError(f"PGD attack {self.name!r} needs step_size > 0, got {self.step_size}")

    @classmethod
    def from_settings(cls, name: str, settings: AttackSettings, **extra: object) -> AttackConfig:
        """An evaluation attack with the threat of ``settings`` (e.g. a run's ``attack``), plus ``extra``."""
        return cls(name, settings.eps, settings.norm, settings.steps, settings.step_size,
                   random_start=settings.random_start, **extra)  # type: ignore[arg-type]


def paper_threat(dataset: str) -> tuple[float, int, float]:
    """The paper's (eps, steps, step_size) for ``dataset``; synthetic sets use their real counterpart's.

    The one alias table: every preset (training, vulnerability, evaluation) resolves its threat here.
    """
    key = _THREAT_ALIASES.get(dataset, dataset)
    if key not in PAPER_THREAT:
        valid = sorted(PAPER_THREAT) + sorted(_THREAT_ALIASES)
        raise AttackError(f"no paper threat model for dataset {dataset!r}: use one of {', '.join(valid)}")
    return PAPER_THREAT[key]


def paper_attack(dataset: str) -> AttackSettings:
    """The paper's PGD threat of ``dataset`` (S App. D.1) as :class:`AttackSettings` (no random start)."""
    eps, steps, step_size = paper_threat(dataset)
    return AttackSettings(eps=float(eps), norm="linf", steps=int(steps), step_size=float(step_size))


def _paper(dataset: str) -> list[AttackConfig]:
    eps, steps, step_size = paper_threat(dataset)
    return [AttackConfig("paper", eps, "linf", steps, step_size, random_start=False, restarts=1)]


def _pgd20(dataset: str) -> list[AttackConfig]:
    eps = paper_threat(dataset)[0]
    return [AttackConfig("pgd20", eps, "linf", 20, eps / 4, random_start=True, restarts=5)]


def _autoattack(dataset: str) -> list[AttackConfig]:
    eps = paper_threat(dataset)[0]
    return [AttackConfig("autoattack", eps, "linf", 100, None, method="autoattack")]


def _apgd_ce(dataset: str) -> list[AttackConfig]:
    eps = paper_threat(dataset)[0]
    return [AttackConfig("apgd-ce", eps, "linf", 100, None, method="apgd-ce")]


_PRESETS = {"paper": _paper, "pgd20": _pgd20, "autoattack": _autoattack, "apgd-ce": _apgd_ce}


def list_attack_presets() -> list[str]:
    """Preset names accepted by ``get_attack_preset`` and ``robustmi evaluate --attack``."""
    return sorted(_PRESETS)


def get_attack_preset(name: str, dataset: str) -> list[AttackConfig]:
    """The attacks of preset ``name`` at ``dataset``'s paper ε.

    Raises:
        AttackError: unknown preset or dataset (the message lists the valid ones).

    Example:
        >>> get_attack_preset("paper", "mnist")[0].eps
        0.3
    """
    if name not in _PRESETS:
        raise AttackError(f"unknown attack preset {name!r}: use one of {', '.join(list_attack_presets())}")
    return _PRESETS[name](dataset)


def with_threat(configs: list[AttackConfig], changes: dict[str, object]) -> list[AttackConfig]:
    """``configs`` with the threat knobs in ``changes`` (``AttackSettings`` field names) set on every attack.

    Values are converted as in run configs (``"8/255"`` -> a float); step sizes are not rescaled with ``eps``.
    The result is checked by the one validation rule (e.g. an L∞ ``eps`` above 1 is refused).

    Raises:
        ConfigError: an unknown knob or a value of the wrong type; AttackError: an invalid combination.
    """
    import dataclasses

    from robustmi.runs.config import config_from_dict  # runs sits below attacks

    if not changes:
        return list(configs)
    settings = config_from_dict(AttackSettings, changes, _path="attack")  # unknown key / wrong type / range
    converted = {key: getattr(settings, key) for key in changes}
    return [dataclasses.replace(cfg, **converted) for cfg in configs]

