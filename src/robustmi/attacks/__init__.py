"""robustmi.attacks: one PGD engine over any objective, classifier attacks, AutoAttack, robustness evaluation.

- ``pgd`` / ``pgd_with_trace``: projected gradient ascent on a per-sample or batch-level objective (L∞, L2).
- ``fgsm_rs``: FGSM with random start, for fast adversarial training.
- ``ce_loss``, ``cw_loss``, ``dlr_loss``, ``classifier_objective``: classifier losses (B,) and objectives.
- ``frozen_eval``: eval mode + frozen parameters for the duration of an attack, restored afterwards.
- ``evaluate_robustness``: natural / per-attack / worst-case accuracy with presets ``paper``, ``pgd20``,
  ``autoattack`` (torchattacks) and sanity flags (``checks``; docs/flags.md).
"""

from robustmi.attacks.autoattack import INSTALL_HINT, run_apgd_ce, run_autoattack, torchattacks_version
from robustmi.attacks.checks import (
    SanityWarning,
    check_adversarial_range,
    check_attack_strength,
    check_chance_accuracy,
    check_finite_outputs,
    check_loss_increase,
    check_perturbation_size,
    check_pgd_result,
    check_probability_outputs,
    check_zero_gradients,
)
from robustmi.attacks.evaluate import BatchOutcome, attack_batch, evaluate_robustness, resolve_attacks
from robustmi.attacks.frozen import frozen_eval
from robustmi.attacks.losses import ce_loss, classifier_objective, cw_loss, dlr_loss, get_loss, list_losses
from robustmi.attacks.pgd import PGDResult, fgsm_rs, pgd, pgd_with_trace
from robustmi.attacks.presets import (
    PAPER_THREAT,
    AttackConfig,
    AttackSettings,
    get_attack_preset,
    list_attack_presets,
    paper_attack,
    paper_threat,
)
from robustmi.attacks.threat import L2Threat, LinfThreat, get_threat, list_norms

__all__ = [
    "INSTALL_HINT",
    "PAPER_THREAT",
    "AttackConfig",
    "AttackSettings",
    "BatchOutcome",
    "L2Threat",
    "LinfThreat",
    "PGDResult",
    "SanityWarning",
    "attack_batch",
    "ce_loss",
    "check_adversarial_range",
    "check_attack_strength",
    "check_chance_accuracy",
    "check_finite_outputs",
    "check_loss_increase",
    "check_perturbation_size",
    "check_pgd_result",
    "check_probability_outputs",
    "check_zero_gradients",
    "classifier_objective",
    "cw_loss",
    "dlr_loss",
    "evaluate_robustness",
    "fgsm_rs",
    "frozen_eval",
    "get_attack_preset",
    "get_loss",
    "get_threat",
    "list_attack_presets",
    "list_losses",
    "list_norms",
    "paper_attack",
    "paper_threat",
    "pgd",
    "pgd_with_trace",
    "resolve_attacks",
    "run_apgd_ce",
    "run_autoattack",
    "torchattacks_version",
]
