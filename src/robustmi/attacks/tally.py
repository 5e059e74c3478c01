"""Per-point tallies of a robustness evaluation and the summary (accuracies, settings, flags) made from them.

``Tally`` holds, for every evaluated point, whether it was classified correctly and which attacks ran on it
and broke it, plus what the sanity flags need (largest perturbation, invalid outputs, gradient statistics of
robustmi's PGD). It is the whole state of an evaluation between batches: saved after every batch, it lets an
interrupted evaluation resume where it stopped (as AutoAttack's ``EvaluationState`` keeps robust flags).
``summarise`` turns it into the JSON-ready result.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from robustmi.attacks import checks
from robustmi.attacks.autoattack import autoattack_settings, implementation_name
from robustmi.attacks.presets import AttackConfig
from robustmi.errors import CheckpointError

if TYPE_CHECKING:  # evaluate.py builds the outcomes and imports this module
    from robustmi.attacks.evaluate import BatchOutcome

_STATE_KEYS = ("correct", "broken", "attacked", "perturbation", "invalid", "zero_grad", "trace", "flags")


@dataclass
class Tally:
    """Per-point results over the whole evaluated set, plus what the flags need."""

    num: int
    correct: Tensor
    broken: dict[str, Tensor] = field(default_factory=dict)
    attacked: dict[str, Tensor] = field(default_factory=dict)
    perturbation: dict[str, float] = field(default_factory=dict)
    invalid: dict[str, int] = field(default_factory=dict)
    zero_grad: dict[str, list] = field(default_factory=dict)  # name -> [sample-weighted sum, samples]
    trace: dict[str, list] = field(default_factory=dict)  # name -> [weighted sum (restarts, steps+1), n]
    flags: list[dict] = field(default_factory=list)

    def add(self, start: int, out: BatchOutcome) -> None:
        span = slice(start, start + out.correct.shape[0])
        self.correct[span] = out.correct.cpu()
        for name in out.broken:
            for per_point, batch in ((self.broken, out.broken), (self.attacked, out.attacked)):
                per_point.setdefault(name, torch.zeros(self.num, dtype=torch.bool))[span] = batch[name].cpu()
            self.perturbation[name] = max(self.perturbation.get(name, 0.0), out.perturbation[name])
            self.invalid[name] = self.invalid.get(name, 0) + out.invalid[name]
        for name, result in out.pgd.items():
            n = result.x_adv.shape[0]
            zero, trace = self.zero_grad.setdefault(name, [0.0, 0]), self.trace.setdefault(name, [0.0, 0])
            zero[0], zero[1] = zero[0] + result.zero_grad_fraction * n, zero[1] + n
            trace[0], trace[1] = trace[0] + result.trace.cpu() * n, trace[1] + n
        if start == 0:  # output checks on the first batch are enough to spot logits/probabilities mix-ups
            found = [
                checks.check_finite_outputs(out.logits, "clean inputs"),
                checks.check_probability_outputs(out.logits),
            ]
            self.flags += [f for f in found if f is not None]

    def state_dict(self) -> dict:
        """Everything counted so far, as tensors and plain containers (``save_checkpoint`` stores it)."""
        return {key: getattr(self, key) for key in _STATE_KEYS}

    def load_state_dict(self, state: dict) -> None:
        """Restore what :meth:`state_dict` returned (a resumed evaluation continues the same counts)."""
        if state["correct"].shape != self.correct.shape:
            raise CheckpointError(f"the saved evaluation covers {state['correct'].shape[0]} points, this one "
                                  f"{self.num}; resume with the same limit, or choose another --out")
        for key in _STATE_KEYS:
            setattr(self, key, state[key])


def _strength(cfg: AttackConfig) -> float:
    """Budget to order attacks of one threat model: AutoAttack above any PGD, else steps × restarts."""
    return float("inf") if cfg.method == "autoattack" else float(cfg.steps * cfg.restarts)


def _attack_flags(configs: list[AttackConfig], tally: Tally) -> list[dict]:
    flags = []
    for cfg in configs:
        name = cfg.name
        if name in tally.zero_grad and tally.zero_grad[name][1] > 0:
            flags.append(
                checks.check_zero_gradients(tally.zero_grad[name][0] / tally.zero_grad[name][1], name)
            )
            if cfg.eps > 0:  # with eps = 0 nothing can move
                flags.append(checks.check_loss_increase(tally.trace[name][0] / tally.trace[name][1], name))
        flags.append(checks.check_perturbation_size(tally.perturbation[name], cfg.eps, name))
        flags.append(checks.check_adversarial_range(tally.invalid[name], name))
    for strong in configs:
        for weak in configs:
            if strong.norm != weak.norm or strong.eps < weak.eps or _strength(strong) <= _strength(weak):
                continue
            failed = tally.attacked[strong.name] & ~tally.broken[strong.name]
            extra = int((failed & tally.broken[weak.name]).sum())
            flags.append(checks.check_attack_strength(strong.name, weak.name, extra, tally.num))
    return [f for f in flags if f is not None]


def attack_settings(cfg: AttackConfig, seed: int, num_classes: int) -> tuple[dict, str]:
    settings = {key: value for key, value in asdict(cfg).items() if key != "name"}
    settings["seed"] = seed
    if cfg.method == "autoattack":
        settings.update(autoattack_settings(cfg.steps, num_classes, seed))
    implementation = "robustmi.pgd" if cfg.method == "pgd" else implementation_name(cfg.method)
    return settings, implementation


def summarise(
    configs: list[AttackConfig], tally: Tally, num_classes: int, cascade: bool, seed: int
) -> dict:
    broken_so_far = torch.zeros(tally.num, dtype=torch.bool)
    attacks = {}
    for cfg in configs:
        broken_so_far |= tally.broken[cfg.name]
        counted = broken_so_far if cascade else tally.broken[cfg.name]
        settings, implementation = attack_settings(cfg, seed, num_classes)
        attacks[cfg.name] = {
            "accuracy": (tally.correct & ~counted).float().mean().item(),
            "settings": settings,
            "implementation": implementation,
            "attacked": int(tally.attacked[cfg.name].sum()),
            "broken": int(tally.broken[cfg.name].sum()),
            "max_perturbation": tally.perturbation[cfg.name],
        }
    natural = tally.correct.float().mean().item()
    flags = [f for f in [checks.check_chance_accuracy(natural, num_classes, tally.num)] if f is not None]
    return {
        "natural_accuracy": natural,
        "attacks": attacks,
        "worst_case_accuracy": (tally.correct & ~broken_so_far).float().mean().item(),
        "max_perturbation": {name: entry["max_perturbation"] for name, entry in attacks.items()},
        "flags": tally.flags + flags + _attack_flags(configs, tally),
        "num_samples": tally.num,
        "cascade": cascade,
    }
