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
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from robustmi.attacks.autoattack import run_apgd_ce, run_autoattack
from robustmi.attacks.frozen import frozen_eval
from robustmi.attacks.losses import get_loss
from robustmi.attacks.pgd import PGDResult, pgd_with_trace
from robustmi.attacks.presets import AttackConfig, get_attack_preset
from robustmi.attacks.tally import Tally, attack_settings, summarise
from robustmi.attacks.threat import get_threat
from robustmi.errors import AttackError, CheckpointError


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


class RobustnessEvaluation:
    """An evaluation taken one batch at a time, whose state after any batch can be saved and restored.

    :func:`evaluate_robustness` runs it to the end; ``robustmi.attacks.evaluation_run.run_evaluation`` saves
    :meth:`state_dict` after every batch, so an interrupted evaluation resumes at the next batch and ends with
    the numbers an uninterrupted one gives. The state is every point's tally and the generator of robustmi's
    PGD random starts; torchattacks' attacks reseed from ``seed`` on every call, so a batch's AutoAttack
    result depends on the batch alone (AutoAttack's own resumable state is likewise its robust flags).

    Args: those of :func:`evaluate_robustness`.

    Example:
        >>> evaluation = RobustnessEvaluation(model, test_set, ["paper"], batch_size=100)  # doctest: +SKIP
        >>> while not evaluation.finished:  # doctest: +SKIP
        ...     record = evaluation.step()  # save evaluation.state_dict() here to resume later
        >>> evaluation.results()["worst_case_accuracy"]  # doctest: +SKIP
    """

    def __init__(self, model: nn.Module, dataset, attacks: Sequence[AttackConfig | str], *,
                 batch_size: int = 256, limit: int | None = None, seed: int = 0,
                 cascade: bool = True) -> None:
        self.configs = resolve_attacks(attacks, getattr(dataset, "name", ""))
        if not (isinstance(batch_size, int) and batch_size >= 1):
            raise AttackError(f"batch_size must be a positive integer, got {batch_size!r}")
        self.images, self.labels = _dataset_tensors(dataset, limit)
        self.num_classes = int(getattr(dataset, "num_classes", int(self.labels.max()) + 1))
        for cfg in self.configs:
            attack_settings(cfg, seed, self.num_classes)  # fails now, not after an hour, without torchattacks
        self.model, self.device = model, _model_device(model)
        self.batch_size, self.seed, self.cascade = batch_size, seed, cascade
        self.about = {"dataset": getattr(dataset, "name", None), "batch_size": batch_size, "limit": limit,
                      "seed": seed}
        self.generator = torch.Generator(device=self.device).manual_seed(seed)  # PGD random starts
        num = self.labels.shape[0]
        self.tally = Tally(num=num, correct=torch.zeros(num, dtype=torch.bool))
        self.done = 0  # points evaluated so far (always a whole number of batches, or all of them)

    @property
    def num_batches(self) -> int:
        return -(-self.tally.num // self.batch_size)

    @property
    def batches_done(self) -> int:
        return -(-self.done // self.batch_size)

    @property
    def finished(self) -> bool:
        return self.done >= self.tally.num

    def step(self) -> dict:
        """Attack the next batch. Returns its metrics record: ``batch`` (1-based), ``points`` done so far,
        and this batch's ``size``, ``correct`` and per-attack ``broken`` counts and ``robust`` (correct and
        broken by no attack)."""
        start, stop = self.done, min(self.done + self.batch_size, self.tally.num)
        x = self.images[start:stop].to(device=self.device, dtype=torch.float32)
        y = self.labels[start:stop].to(device=self.device, dtype=torch.int64)
        with frozen_eval(self.model), torch.autocast(device_type=self.device.type, enabled=False):
            out = attack_batch(self.model, x, y, self.configs, generator=self.generator, seed=self.seed,
                               cascade=self.cascade)
        self.tally.add(start, out)
        self.done = stop
        broken = torch.zeros_like(out.correct)
        for hit in out.broken.values():
            broken |= hit
        return {"batch": self.batches_done, "points": stop, "size": stop - start,
                "correct": int(out.correct.sum()), "broken": {k: int(v.sum()) for k, v in out.broken.items()},
                "robust": int((out.correct & ~broken).sum())}

    def state_dict(self) -> dict:
        """Points done, PGD generator state and every point's tally: tensors and plain containers."""
        return {"done": self.done, "generator": self.generator.get_state(), "tally": self.tally.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        """Continue from :meth:`state_dict` of an evaluation with the same model, data and settings.

        Raises:
            CheckpointError: the state belongs to an evaluation of other attacks or points.
        """
        try:
            attacks = set(state["tally"]["broken"])
            fits = attacks <= {cfg.name for cfg in self.configs} and 0 <= int(state["done"]) <= self.tally.num
        except (KeyError, TypeError, ValueError):
            fits = False
        if not fits:
            raise CheckpointError("the saved evaluation state belongs to other attacks or points; resume "
                                  "with the same settings, or choose another --out")
        self.tally.load_state_dict(state["tally"])
        self.generator.set_state(state["generator"])
        self.done = int(state["done"])

    def results(self) -> dict:
        """The summary of every batch done (see :func:`evaluate_robustness`, Returns)."""
        results = summarise(self.configs, self.tally, self.num_classes, self.cascade, self.seed)
        return results | self.about


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
    from robustmi.progress import progress_bar  # quiet off a terminal

    evaluation = RobustnessEvaluation(model, dataset, attacks, batch_size=batch_size, limit=limit, seed=seed,
                                      cascade=cascade)
    bar = progress_bar(evaluation.num_batches, "evaluate", unit="batch")
    while not evaluation.finished:
        evaluation.step()
        bar.update(1)
    bar.close()
    return evaluation.results()
