"""What a saliency map differentiates: small callables ``f(x) -> (B,)`` (or one batch scalar).

Paper §4.3 (Fig. 4-6): the input gradient of

- a **representation**'s DIM / MI-maximisation loss, ``-dim.mi(x, encoder(x))`` (:func:`mi_target`). The DIM
  bound is a *batch* objective, its negatives are the other samples of the batch, so this target is one scalar
  for the whole batch and each sample's map depends on its batch mates; the report computes it on the batch of
  shown samples. The gradient flows through both the encoder and the critic's own input branch: it is the
  gradient of the loss the encoder was trained on (the worst-case search, ``robustmi.mi.worst_case``, by
  default follows the encoder path only);
- a **classifier**'s cross-entropy at the true label (``"ce"``) or its true-class logit (``"logit"``)
  (:func:`classifier_target`), per sample; a classifier is a model with ``forward_head``/``num_classes`` or
  any plain module returning ``(B, K)`` logits (what ``robustmi evaluate`` takes);
- one **neuron**: a channel's spatially averaged activation in a named layer (:func:`neuron_target`), per
  sample; a ``(B, D)`` layer's channel is its unit ``D``.

Each builder returns a :class:`SaliencyTarget`, which also names the modules it runs, so
:func:`~robustmi.saliency.methods.compute_saliency` can hold them in ``eval()`` without parameter gradients.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch.nn.functional as F
from torch import Tensor, nn

from robustmi.errors import ModelError
from robustmi.models import extract_layer

TARGETS = ("auto", "mi", "ce", "logit", "neuron")


@dataclass(frozen=True)
class SaliencyTarget:
    """A differentiable target: ``target(x) -> (B,)`` per sample, or ``()`` if ``per_sample`` is False.

    Attributes:
        fn: the function of the input batch ``(B, C, H, W)``.
        name: ``"mi"``, ``"ce"``, ``"logit"`` or ``"neuron"``.
        modules: the modules ``fn`` runs (held frozen while a map is computed).
        per_sample: False for a batch-level objective (the DIM loss).
    """

    fn: Callable[[Tensor], Tensor]
    name: str
    modules: tuple[nn.Module, ...] = ()
    per_sample: bool = True

    def __call__(self, x: Tensor) -> Tensor:
        return self.fn(x)


def is_classifier(model: nn.Module) -> bool:
    """True for the classifier interface (``forward_head`` and ``num_classes``) and for a plain module without
    the encoder interface (no ``forward_features``): a bring-your-own classifier, as ``evaluate`` takes, whose
    output is checked to be ``(B, K)`` logits when its target runs."""
    return (hasattr(model, "forward_head") and hasattr(model, "num_classes")) or not hasattr(
        model, "forward_features"
    )


def mi_target(encoder: nn.Module, dim: nn.Module) -> SaliencyTarget:
    """The DIM loss ``-dim.mi(x, encoder(x))`` of the whole batch (a scalar).

    Args:
        encoder: ``x (B, C, H, W) -> z (B, D)``.
        dim: a ``robustmi.mi.DIMObjective`` (``mi(x, z)`` -> scalar lower bound, nats).
    """

    def loss(x: Tensor) -> Tensor:
        return -dim.mi(x, encoder(x))

    return SaliencyTarget(loss, "mi", (encoder, dim), per_sample=False)


def classifier_target(model: nn.Module, labels: Tensor, kind: str = "ce") -> SaliencyTarget:
    """Per-sample cross-entropy at ``labels`` (``kind="ce"``) or the ``labels`` logit (``kind="logit"``).

    Args:
        model: a classifier, ``x (B, C, H, W) -> logits (B, num_classes)``.
        labels: ``(B,)`` int64 true labels of the batch the target will be evaluated on.
        kind: ``"ce"`` or ``"logit"``.

    Raises:
        ModelError: the model is not a classifier or a label is outside its classes.
    """
    if kind not in ("ce", "logit"):
        raise ValueError(f"kind must be 'ce' or 'logit', got {kind!r}")
    if not is_classifier(model):
        raise ModelError(
            f"target {kind!r} needs a classifier (logits out), got the encoder {type(model).__name__}; "
            "use --target mi for an encoder run folder or --target neuron --layer NAME --channel K"
        )
    top = int(labels.max()) if labels.numel() else -1  # one sync here, not one per evaluation
    if top >= getattr(model, "num_classes", top + 1):
        raise ModelError(
            f"label {top} is outside the model's {model.num_classes} classes; "
            "use a model trained on this dataset"
        )

    def logits_of(x: Tensor) -> Tensor:
        logits = model(x)
        if logits.ndim != 2 or top >= logits.shape[1]:  # a plain module's output, checked on first use
            raise ModelError(
                f"target {kind!r} needs (B, num_classes) logits covering label {top}; {type(model).__name__} "
                f"returned shape {tuple(logits.shape)}; use --target neuron --layer NAME --channel K"
            )
        return logits

    def ce(x: Tensor) -> Tensor:
        return F.cross_entropy(logits_of(x), labels.to(x.device), reduction="none")

    def logit(x: Tensor) -> Tensor:
        return logits_of(x).gather(1, labels.to(x.device).view(-1, 1)).squeeze(1)  # (B, K) -> (B, 1) -> (B,)

    return SaliencyTarget(ce if kind == "ce" else logit, kind, (model,))


def neuron_target(model: nn.Module, layer: str, channel: int) -> SaliencyTarget:
    """Per-sample spatial mean of channel ``channel`` of layer ``layer`` (``robustmi.models.extract_layer``).

    Args:
        model: any model with layer taps.
        layer: a name from ``robustmi.models.list_layers(model)`` (or ``"features"`` / ``"logits"``).
        channel: the channel (conv map) or unit (flat layer) index.

    Raises:
        ModelError: unknown layer (raised by ``extract_layer`` when first evaluated) or channel out of range.
    """
    if channel < 0:
        raise ModelError(f"channel must be >= 0, got {channel}; pick one of the layer's channels")

    def activation(x: Tensor) -> Tensor:
        act = extract_layer(model, x, layer)  # (B, C, h, w) or (B, D)
        if act.ndim < 2 or channel >= act.shape[1]:
            size = act.shape[1] if act.ndim >= 2 else 0
            raise ModelError(
                f"channel {channel} is out of range for layer {layer!r} with {size} channels; "
                f"use --channel 0..{max(size - 1, 0)}"
            )
        return act[:, channel].reshape(act.shape[0], -1).mean(dim=1)  # (B, h, w) -> (B, h*w) -> (B,)

    return SaliencyTarget(activation, "neuron", (model,))
