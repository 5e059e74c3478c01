"""Attack settings as immutable configs, the paper's threat model per dataset, and named presets.

``PAPER_THREAT`` holds the paper's L∞ PGD settings (Zhu et al. 2020, App. D.1; PAPER.md §2.4), used alike for
worst-case MI, adversarial training and evaluation. Presets (``get_attack_preset``):

- ``paper``: exactly those settings — no random start, one run (the authors' evaluation, PAPER.md §3).
- ``pgd20``: 20 steps of ε/4 from a random start, 5 restarts (a stronger PGD at the same ε).
- ``autoattack``: standard AutoAttack (Croce & Hein 2020: APGD-CE, APGD-T, FAB-T, Square) at the dataset's ε.
- ``apgd-ce``: AutoAttack's first component alone (APGD on cross-entropy, 100 steps): a quick reliable check.
"""

from __future__ import annotations

from dataclasses import dataclass

from robustmi.attacks.threat import list_norms
from robustmi.errors import AttackError

PAPER_THREAT: dict[str, tuple[float, int, float]] = {  # dataset -> (eps, steps, step_size), L∞
    "mnist": (0.3, 10, 0.1),
    "fashion-mnist": (0.1, 10, 0.02),
    "svhn": (4 / 255, 10, 0.005),
    "cifar10": (8 / 255, 7, 0.01),
}
_THREAT_ALIASES = {"synthetic-mnist": "mnist", "synthetic-cifar": "cifar10"}  # test sets of the same shape

METHODS = ("pgd", "autoattack", "apgd-ce")


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
        if self.norm not in list_norms():
            raise AttackError(
                f"unknown norm {self.norm!r} in attack {self.name!r}: use one of {list_norms()}"
            )
        if not self.eps >= 0 or self.steps < 1 or self.restarts < 1:
            raise AttackError(
                f"attack {self.name!r} needs eps >= 0, steps >= 1 and restarts >= 1; got "
                f"eps={self.eps}, steps={self.steps}, restarts={self.restarts}"
            )
        if self.method == "pgd" and not (self.step_size is not None and self.step_size > 0):
            raise AttackError(f"PGD attack {self.name!r} needs step_size > 0, got {self.step_size}")


def paper_threat(dataset: str) -> tuple[float, int, float]:
    """The paper's (eps, steps, step_size) for ``dataset``; synthetic sets use their real counterpart's."""
    key = _THREAT_ALIASES.get(dataset, dataset)
    if key not in PAPER_THREAT:
        valid = sorted(PAPER_THREAT) + sorted(_THREAT_ALIASES)
        raise AttackError(f"no paper threat model for dataset {dataset!r}: use one of {', '.join(valid)}")
    return PAPER_THREAT[key]


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
