"""Robustness evaluation of a classifier: natural accuracy, accuracy under each attack, per-point worst case.

Per point, in a cascade (after AutoAttack's ``run_standard_evaluation``; STYLE.md rule 10): a point counts as
robust while it is classified correctly and no attack has found a valid adversarial input for it; each attack
runs only on the points still robust, and the first successful adversarial input of each point is kept. Our
PGD keeps, per point, a misclassified iterate whenever one occurred (not just the highest-loss iterate). With
``cascade=False`` every attack runs on every naturally correct point instead, which gives each attack's own
accuracy at the cost of more attack runs. An adversarial input counts only if it is finite, inside [0, 1] and
inside the attack's ε-ball; anything else is flagged (``checks.py``, docs/flags.md).

Attacks always run in fp32 (autocast off) on the model in eval mode with frozen parameters (``frozen_eval``);
the model's modes and ``requires_grad`` flags are restored afterwards.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import torch
from torch import Tensor, nn

from robustmi.attacks import checks
from robustmi.attacks.autoattack import autoattack_settings, implementation_name, run_apgd_ce, run_autoattack
from robustmi.attacks.frozen import frozen_eval
from robustmi.attacks.losses import get_loss
from robustmi.attacks.pgd import PGDResult, pgd_with_trace
from robustmi.attacks.presets import AttackConfig, get_attack_preset
from robustmi.attacks.threat import get_threat
from robustmi.errors import AttackError


@dataclass
class BatchOutcome:
    """One batch through the attack cascade.

    Attributes:
        correct: (B,) clean prediction is right.
        attacked: name -> (B,) the attack ran on the point.
        broken: name -> (B,) the attack found a valid misclassified input.
        x_adv: (B, C, H, W) each point's first successful adversarial input (the clean input where none).
        perturbation: name -> largest perturbation norm the attack returned on this batch.
        invalid: name -> adversarial inputs that were NaN, outside [0, 1] or outside the ε-ball.
        pgd: name -> ``PGDResult`` (objective trace, gradient statistics) for robustmi PGD attacks.
        logits: (B, K) clean model outputs.
    """

    correct: Tensor
    attacked: dict[str, Tensor] = field(default_factory=dict)
    broken: dict[str, Tensor] = field(default_factory=dict)
    x_adv: Tensor | None = None
    perturbation: dict[str, float] = field(default_factory=dict)
    invalid: dict[str, int] = field(default_factory=dict)
    pgd: dict[str, PGDResult] = field(default_factory=dict)
    logits: Tensor | None = None


_SUCCESS_BONUS = 1e6


def _success_first_objective(model: nn.Module, y: Tensor, loss: str):
    """Classifier loss (B,) plus a constant bonus where the input is already misclassified.

    The bonus has no gradient, so the ascent is the plain loss ascent; but best-iterate selection then keeps a
    misclassified iterate whenever one occurred (the highest loss is not always a misclassification).
    """
    loss_fn = get_loss(loss)

    def objective(x_adv: Tensor) -> Tensor:
        logits = model(x_adv)
        return loss_fn(logits, y) + _SUCCESS_BONUS * (logits.argmax(dim=1) != y).float()

    return objective


def _run_pgd(model, x, y, cfg: AttackConfig, generator, seed, num_classes) -> tuple[Tensor, PGDResult]:
    result = pgd_with_trace(
        _success_first_objective(model, y, cfg.loss),
        x,
        eps=cfg.eps,
        steps=cfg.steps,
        step_size=cfg.step_size,
        norm=cfg.norm,
        random_start=cfg.random_start,
        restarts=cfg.restarts,
        generator=generator,
    )
    return result.x_adv, result


def _run_autoattack(model, x, y, cfg: AttackConfig, generator, seed, num_classes) -> tuple[Tensor, None]:
    x_adv = run_autoattack(
        model, x, y, eps=cfg.eps, norm=cfg.norm, steps=cfg.steps, num_classes=num_classes, seed=seed
    )
    return x_adv, None


def _run_apgd_ce(model, x, y, cfg: AttackConfig, generator, seed, num_classes) -> tuple[Tensor, None]:
    return run_apgd_ce(
        model, x, y, eps=cfg.eps, norm=cfg.norm, steps=cfg.steps, restarts=cfg.restarts, seed=seed
    ), None


_RUNNERS = {"pgd": _run_pgd, "autoattack": _run_autoattack, "apgd-ce": _run_apgd_ce}


def attack_batch(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    attacks: Sequence[AttackConfig],
    *,
    generator: torch.Generator | None = None,
    seed: int = 0,
    cascade: bool = True,
) -> BatchOutcome:
    """Run ``attacks`` on one batch (see the module docstring for the cascade). Call inside ``frozen_eval``.

    Args:
        model: classifier returning logits (B, K) for inputs (B, C, H, W) in [0, 1].
        x: (B, C, H, W) fp32 inputs in [0, 1]; y: (B,) int64 labels.
        attacks: attack configs, run in order.
        generator: randomness of robustmi's PGD random starts; seed: seed of torchattacks' attacks.
        cascade: run each attack only on points still robust (else on every naturally correct point).
    """
    with torch.no_grad():
        logits = model(x)
    correct = logits.argmax(dim=1) == y
    out = BatchOutcome(correct=correct, x_adv=x.clone(), logits=logits)
    robust = correct.clone()
    for cfg in attacks:
        run = (robust if cascade else correct).clone()
        out.attacked[cfg.name], out.broken[cfg.name] = run, torch.zeros_like(run)
        out.perturbation[cfg.name], out.invalid[cfg.name] = 0.0, 0
        if not run.any():
            continue
        idx = run.nonzero().squeeze(1)  # (n,) positions of the attacked points
        x_adv, result = _RUNNERS[cfg.method](model, x[idx], y[idx], cfg, generator, seed, logits.shape[1])
        if result is not None:
            out.pgd[cfg.name] = result
        distance = get_threat(cfg.norm, cfg.eps).distance(x_adv, x[idx])  # (n,)
        finite = torch.isfinite(x_adv.flatten(1)).all(dim=1)
        valid = finite & (x_adv.flatten(1).amin(1) >= -1e-6) & (x_adv.flatten(1).amax(1) <= 1 + 1e-6)
        valid &= distance <= cfg.eps * (1 + 1e-5) + 1e-6
        with torch.no_grad():
            success = valid & (model(x_adv).argmax(dim=1) != y[idx])
        out.broken[cfg.name][idx] = success
        out.x_adv[idx[success & robust[idx]]] = x_adv[success & robust[idx]]  # keep the first success only
        robust[idx[success]] = False
        out.perturbation[cfg.name] = distance.nan_to_num(float("inf")).max().item()
        out.invalid[cfg.name] = int((~valid).sum())
    return out


def resolve_attacks(attacks: Sequence[AttackConfig | str], dataset: str) -> list[AttackConfig]:
    """Expand preset names (``get_attack_preset``) and check that attack names are unique."""
    if isinstance(attacks, (str, AttackConfig)):
        attacks = [attacks]
    configs = [
        c for a in attacks for c in ([a] if isinstance(a, AttackConfig) else get_attack_preset(a, dataset))
    ]
    names = [c.name for c in configs]
    if not configs or len(set(names)) != len(names):
        raise AttackError(f"give one or more attacks with distinct names, got {names}")
    return configs


def _dataset_tensors(dataset, limit: int | None) -> tuple[Tensor, Tensor]:
    images, labels = getattr(dataset, "images", None), getattr(dataset, "labels", None)
    if not isinstance(images, Tensor) or images.dim() != 4 or not isinstance(labels, Tensor):
        raise AttackError(
            "dataset must have .images (N, C, H, W) and .labels (N,): use robustmi.data.load_dataset"
        )
    if labels.shape != (images.shape[0],) or images.shape[0] == 0:
        raise AttackError(f"dataset has {images.shape[0]} images but labels of shape {tuple(labels.shape)}")
    if limit is not None and not (isinstance(limit, int) and limit >= 1):
        raise AttackError(f"limit must be a positive integer or None, got {limit!r}")
    if images.min() < 0 or images.max() > 1 or torch.isnan(images).any():
        raise AttackError("dataset images must lie in [0, 1] without NaN: models own their normalisation")
    return images[:limit], labels[:limit]


def _model_device(model: nn.Module) -> torch.device:
    params = [p for p in model.parameters() if p.is_floating_point()]
    if any(p.dtype != torch.float32 for p in params):
        raise AttackError(
            "attacks run in fp32 but the model has non-fp32 parameters: call model.float() first"
        )
    return params[0].device if params else torch.device("cpu")


@dataclass
class _Tally:
    """Per-point results over the whole evaluated set, plus what the flags need."""

    num: int
    correct: Tensor
    broken: dict[str, Tensor] = field(default_factory=dict)
    attacked: dict[str, Tensor] = field(default_factory=dict)
    perturbation: dict[str, float] = field(default_factory=dict)
    invalid: dict[str, int] = field(default_factory=dict)
    zero_grad: dict[str, list] = field(default_factory=dict)  # name -> [sample-weighted sum, samples]
    trace: dict[str, list] = field(
        default_factory=dict
    )  # name -> [sample-weighted sum (restarts, steps+1), n]
    flags: list[dict] = field(default_factory=list)

    def add(self, start: int, out: BatchOutcome) -> None:
        span = slice(start, start + out.correct.shape[0])
        self.correct[span] = out.correct.cpu()
        for name in out.broken:
            self.broken.setdefault(name, torch.zeros(self.num, dtype=torch.bool))[span] = out.broken[
                name
            ].cpu()
            self.attacked.setdefault(name, torch.zeros(self.num, dtype=torch.bool))[span] = out.attacked[
                name
            ].cpu()
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


def _strength(cfg: AttackConfig) -> float:
    """Budget to order attacks of one threat model: AutoAttack above any PGD, else steps × restarts."""
    return float("inf") if cfg.method == "autoattack" else float(cfg.steps * cfg.restarts)


def _attack_flags(configs: list[AttackConfig], tally: _Tally) -> list[dict]:
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


def _settings(cfg: AttackConfig, seed: int, num_classes: int) -> tuple[dict, str]:
    settings = {key: value for key, value in asdict(cfg).items() if key != "name"}
    settings["seed"] = seed
    if cfg.method == "autoattack":
        settings.update(autoattack_settings(cfg.steps, num_classes, seed))
    implementation = "robustmi.pgd" if cfg.method == "pgd" else implementation_name(cfg.method)
    return settings, implementation


def _summarise(
    configs: list[AttackConfig], tally: _Tally, num_classes: int, cascade: bool, seed: int
) -> dict:
    broken_so_far = torch.zeros(tally.num, dtype=torch.bool)
    attacks = {}
    for cfg in configs:
        broken_so_far |= tally.broken[cfg.name]
        counted = broken_so_far if cascade else tally.broken[cfg.name]
        settings, implementation = _settings(cfg, seed, num_classes)
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


def evaluate_robustness(
    model: nn.Module,
    dataset,
    attacks: Sequence[AttackConfig | str],
    *,
    batch_size: int = 256,
    limit: int | None = None,
    seed: int = 0,
    cascade: bool = True,
) -> dict:
    """Natural accuracy, accuracy under each attack and the per-point worst case over attacks.

    Args:
        model: classifier returning logits for inputs in [0, 1]; evaluated in eval mode and fp32.
        dataset: object with ``.images`` (N, C, H, W) in [0, 1], ``.labels`` (N,), ``.name``, ``.num_classes``
            (``robustmi.data.Dataset``).
        attacks: ``AttackConfig``s and/or preset names ("paper", "pgd20", "autoattack", "apgd-ce").
        batch_size: points per batch.
        limit: evaluate only the first ``limit`` points.
        seed: seeds PGD random starts and torchattacks' attacks (the caller's global RNG is untouched).
        cascade: each attack only on points still robust (default); False runs each on every correct point,
            so ``attacks[name]["accuracy"]`` is that attack's own accuracy.

    Returns:
        JSON-ready dict: ``natural_accuracy``, ``attacks`` {name: {accuracy, settings, implementation,
        attacked, broken, max_perturbation}}, ``worst_case_accuracy``, ``max_perturbation`` {name: norm},
        ``flags`` (docs/flags.md), ``num_samples``, ``cascade``. Accuracies are fractions in [0, 1]; in a
        cascade, an attack's accuracy is the accuracy after it and every attack before it.

    Raises:
        AttackError: unknown preset, bad settings, malformed dataset, non-fp32 model, torchattacks missing.

    Example:
        >>> test_set = load_dataset("mnist", "test")
        >>> results = evaluate_robustness(model, test_set, ["paper", "autoattack"], limit=1000)
        >>> results["worst_case_accuracy"]
    """
    configs = resolve_attacks(attacks, getattr(dataset, "name", ""))
    if not (isinstance(batch_size, int) and batch_size >= 1):
        raise AttackError(f"batch_size must be a positive integer, got {batch_size!r}")
    images, labels = _dataset_tensors(dataset, limit)
    num_classes = int(getattr(dataset, "num_classes", int(labels.max()) + 1))
    for cfg in configs:
        _settings(cfg, seed, num_classes)  # fails now, not after an hour, if torchattacks is missing
    device = _model_device(model)
    generator = torch.Generator(device=device).manual_seed(seed)
    tally = _Tally(num=labels.shape[0], correct=torch.zeros(labels.shape[0], dtype=torch.bool))
    from robustmi.progress import progress_bar  # quiet off a terminal

    bar = progress_bar(-(-tally.num // batch_size), "evaluate", unit="batch")
    with frozen_eval(model), torch.autocast(device_type=device.type, enabled=False):
        for start in range(0, tally.num, batch_size):
            x = images[start : start + batch_size].to(device=device, dtype=torch.float32)
            y = labels[start : start + batch_size].to(device=device, dtype=torch.int64)
            tally.add(
                start, attack_batch(model, x, y, configs, generator=generator, seed=seed, cascade=cascade)
            )
            bar.update(1)
    bar.close()
    results = _summarise(configs, tally, num_classes, cascade, seed)
    results.update(
        {"dataset": getattr(dataset, "name", None), "batch_size": batch_size, "limit": limit, "seed": seed}
    )
    return results
