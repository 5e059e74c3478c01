"""Step functions of the three run kinds: one batch in, ``(loss, metrics)`` out; the engine does the update.

- :class:`EncoderStep` (paper §5): ``objective="mi"`` is standard Deep InfoMax, loss ``-I(x; g(x))``;
  ``objective="worst-case-mi"`` is Algorithm 1 inside the step (paper eq. 5.4): PGD searches the ε-ball
  for the batch that *minimises* the MI estimate against the current critic (``robustmi.mi.worst_case``:
  encoder and critic frozen in eval mode, no random start, by default the gradient flows through the
  encoder only), then encoder and critic are updated on ``-I(x'; g(x'))`` of that batch in train mode.
- :class:`ClassifierStep`: cross-entropy of a classifier on clean inputs, or PGD adversarial training
  (Madry et al. 2018) of the composed model; which parameters move is decided by the optimiser (probe: head
  only; finetune/supervised: everything); FGSM-RS (Wong et al. 2020) as the fast variant.

Losses are computed by small ``nn.Module`` s (:class:`MILoss`, :class:`CrossEntropyLoss`) whose ``forward``
runs the trainable modules, so that under DDP one ``DistributedDataParallel`` wrapper sees the whole forward.
Attacks always use the unwrapped modules in eval mode and fp32 (``pgd`` turns autocast off).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from robustmi.attacks import AttackSettings, classifier_objective, fgsm_rs, frozen_eval, pgd
from robustmi.mi.worst_case import worst_case_inputs
from robustmi.training.distributed import gather_no_grad, gather_with_grad

Autocast = Callable[[], AbstractContextManager]
Augment = Callable[[Tensor, "torch.Generator | None"], Tensor]


class MILoss(nn.Module):
    """``-dim.mi(x, encoder(x))``: the DIM loss of a batch (scalar, nats), as one module for DDP.

    Args:
        encoder: (B, C, H, W) -> (B, D) representation.
        dim: a ``robustmi.mi.DIMObjective`` (critic + bound).
        gather_negatives: under DDP, gather every rank's inputs and codes so each sample is scored against the
            global batch (more negatives). Codes keep their gradient (``gather_with_grad``); inputs need none.
    """

    def __init__(self, encoder: nn.Module, dim: nn.Module, gather_negatives: bool = False) -> None:
        super().__init__()
        self.encoder, self.dim, self.gather_negatives = encoder, dim, gather_negatives

    def forward(self, x: Tensor) -> Tensor:
        z = self.encoder(x)  # (B, D)
        if self.gather_negatives:
            x, z = gather_no_grad(x), gather_with_grad(z)  # (W·B, C, H, W), (W·B, D)
        return -self.dim.mi(x, z)


def search_worst_case(encoder: nn.Module, dim: nn.Module, x: Tensor, attack: AttackSettings, *,
                      through_critic: bool = False, generator: torch.Generator | None = None,
                      autocast: Autocast | None = None) -> Tensor:
    """Algorithm 1 against the current DIM critic (:func:`robustmi.mi.worst_case_inputs`), modules frozen.

    Encoder and critic are held in eval mode (BatchNorm running statistics, as in the authors' code) with
    frozen parameters; their modes and flags are restored afterwards.

    Returns:
        (B, C, H, W) perturbed batch, fp32, detached.
    """
    with frozen_eval(encoder, dim):
        return worst_case_inputs(dim.mi, encoder, x, attack, through_critic=through_critic,
                                 generator=generator, autocast=autocast).x


class EncoderStep:
    """One DIM or worst-case-MI step (see module docstring).

    Args:
        encoder, dim: unwrapped modules (the attack differentiates through them in eval mode).
        loss: :class:`MILoss` over the same modules, possibly DDP-wrapped (the training forward).
        attack: the worst-case search, or ``None`` for standard DIM.
        autocast: context factory for the training forward (bf16 or a no-op).
        through_critic: the search's gradient also flows through the critic's image branch.
        generator: randomness of the search's random start.
        search_autocast: context factory for the search's forward passes (bf16 search), or None (fp32).

    Returns (when called):
        ``(loss, {"mi": ...})`` where ``mi`` is the MI estimate of the (perturbed, for worst-case) batch.
    """

    def __init__(self, encoder: nn.Module, dim: nn.Module, loss: nn.Module, attack: AttackSettings | None,
                 autocast: Autocast, *, through_critic: bool = False,
                 generator: torch.Generator | None = None, search_autocast: Autocast | None = None) -> None:
        self.encoder, self.dim, self.loss, self.attack = encoder, dim, loss, attack
        self.autocast, self.through_critic, self.generator = autocast, through_critic, generator
        self.search_autocast = search_autocast

    def __call__(self, x: Tensor, y: Tensor) -> tuple[Tensor, dict[str, float]]:
        if self.attack is not None:
            x = search_worst_case(self.encoder, self.dim, x, self.attack, through_critic=self.through_critic,
                                  generator=self.generator, autocast=self.search_autocast)
        with self.autocast():
            loss = self.loss(x)
        return loss.float(), {"mi": -loss.item()}


class CrossEntropyLoss(nn.Module):
    """Mean cross-entropy of ``model(x)`` against ``y`` and the batch accuracy, as one module for DDP."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        logits = self.model(x)  # (B, K)
        accuracy = (logits.argmax(dim=1) == y).float().mean()
        return F.cross_entropy(logits.float(), y), accuracy.detach()


class ClassifierStep:
    """One step of standard training or adversarial training (PGD-AT / FGSM-RS) of a classifier.

    Args:
        model: the unwrapped classifier (for probes ``Classifier(frozen encoder, head)``).
        loss: :class:`CrossEntropyLoss` over ``model``, possibly DDP-wrapped (the training forward).
        attack: PGD settings for adversarial training, or ``None`` for standard training.
        autocast: context factory for the training forward (bf16 or a no-op).
        fast: with an attack, one FGSM step from a random start (step 1.25·eps) instead of PGD.
        keep_best: PGD-AT trains on each sample's highest-loss iterate (True) or the last one (False, the
            default of Madry et al.; the stronger training attack on a small budget, docs/fidelity.md).
        augment: optional ``augment(x, generator) -> x`` applied before the attack (random crop/flip).
        generator: randomness of random starts and augmentation.

    Returns (when called):
        ``(loss, {"loss", "accuracy"})``: accuracy on the inputs trained on (adversarial ones in AT).
    """

    def __init__(self, model: nn.Module, loss: nn.Module, attack: AttackSettings | None, autocast: Autocast,
                 *, fast: bool = False, keep_best: bool = False, augment: Augment | None = None,
                 generator: torch.Generator | None = None) -> None:
        self.model, self.loss, self.attack, self.autocast = model, loss, attack, autocast
        self.fast, self.keep_best, self.augment, self.generator = fast, keep_best, augment, generator

    def perturb(self, x: Tensor, y: Tensor) -> Tensor:
        """Adversarial inputs against the current model, in eval mode with frozen parameters (fp32)."""
        a = self.attack
        with frozen_eval(self.model):
            objective = classifier_objective(self.model, y)
            if self.fast:
                return fgsm_rs(objective, x, eps=a.eps, generator=self.generator).detach()
            return pgd(objective, x, eps=a.eps, steps=a.steps, step_size=a.step_size, norm=a.norm,
                       random_start=a.random_start, keep_best=self.keep_best,
                       generator=self.generator).detach()

    def __call__(self, x: Tensor, y: Tensor) -> tuple[Tensor, dict[str, float]]:
        if self.augment is not None:
            x = self.augment(x, self.generator)
        if self.attack is not None:
            x = self.perturb(x, y)
        with self.autocast():
            loss, accuracy = self.loss(x, y)
        return loss, {"loss": loss.item(), "accuracy": accuracy.item()}
