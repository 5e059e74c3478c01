"""Layer taps: read any named layer's activation with a forward hook, keeping the autograd graph.

Names are those of ``model.named_modules()`` plus two special names: ``"features"`` (the representation,
``model.forward_features(x)``) and ``"logits"`` (``model(x)`` for classifiers, i.e. models with
``forward_head``). Taps never detach and never switch off gradients, so attacks, MI estimates and saliency
maps can differentiate a tapped activation with respect to the input. ``LayerTap`` wraps a tapped layer as an
encoder.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from robustmi.errors import ModelError

_MAX_LISTED = 30


def list_layers(model: nn.Module) -> list[str]:
    """Names ``extract_layer`` accepts: ``"features"``/``"logits"`` if meaningful, then named submodules."""
    special = []
    if hasattr(model, "forward_features"):
        special.append("features")
    if hasattr(model, "forward_head"):
        special.append("logits")
    return special + [name for name, _ in model.named_modules() if name]


def _unknown_layer(model: nn.Module, layer: str) -> ModelError:
    names = list_layers(model)
    shown = ", ".join(names[:_MAX_LISTED])
    if len(names) > _MAX_LISTED:
        shown += f", ... ({len(names) - _MAX_LISTED} more; see list_layers(model))"
    return ModelError(f"model {type(model).__name__} has no layer {layer!r}; available: {shown}")


def extract_layer(model: nn.Module, x: Tensor, layer: str) -> Tensor:
    """The activation of ``layer`` for input ``x``, with gradients flowing back to ``x``.

    Args:
        model: any module; the pass run is ``model(x)`` (``model.forward_features(x)`` for "features").
        x: input batch (B, C, H, W) in [0, 1].
        layer: a name from :func:`list_layers`.

    Returns:
        The layer's output tensor as the model computed it, e.g. (B, C', h, w) for a conv layer.

    Raises:
        ModelError: unknown layer (lists the available ones), a layer not run once by ``model(x)``, or a layer
            whose output is not a tensor.
    """
    if layer == "features" and hasattr(model, "forward_features"):
        return model.forward_features(x)
    if layer == "logits" and hasattr(model, "forward_head"):
        return model(x)
    modules = dict(model.named_modules())
    if not layer or layer not in modules:
        raise _unknown_layer(model, layer)
    outputs: list = []
    handle = modules[layer].register_forward_hook(lambda _mod, _inp, out: outputs.append(out))
    try:
        model(x)
    finally:
        handle.remove()
    if len(outputs) != 1:
        raise ModelError(
            f"layer {layer!r} ran {len(outputs)} times in one forward pass; tap a layer run exactly once"
        )
    if not isinstance(outputs[0], Tensor):
        raise ModelError(
            f"layer {layer!r} returns {type(outputs[0]).__name__}, not a tensor; tap a sub-layer"
        )
    return outputs[0]


def _example_input(model: nn.Module) -> Tensor | None:
    """A zero batch (2, C, H, W) matching the model's ``in_chans``/``input_size`` attributes, if any."""
    chans, size = getattr(model, "in_chans", None), getattr(model, "input_size", None)
    if not isinstance(chans, int) or size is None:
        return None
    height, width = (size, size) if isinstance(size, int) else tuple(size)
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    return torch.zeros(2, chans, height, width, device=device)


class LayerTap(nn.Module):
    """Expose a layer of ``model`` as an encoder: ``forward(x)`` returns that layer's activation.

    Args:
        model: the model to tap (kept as a submodule, so it moves and saves with the tap).
        layer: a name from :func:`list_layers`.
        flatten: flatten the activation to (B, D) (default), so the tap can stand wherever an encoder's
            representation is expected; False returns the raw activation, e.g. (B, C', h, w).

    Attributes:
        feature_dim: D, found with one no-grad eval-mode pass on a zero batch when the model has ``in_chans``
            and ``input_size``; otherwise set by the first forward call.
    """

    def __init__(self, model: nn.Module, layer: str, flatten: bool = True) -> None:
        super().__init__()
        if layer not in list_layers(model):
            raise _unknown_layer(model, layer)
        self.model, self.layer, self.flatten = model, layer, flatten
        self.in_chans = getattr(model, "in_chans", None)
        self.input_size = getattr(model, "input_size", None)
        self.feature_dim: int | None = None
        example = _example_input(model)
        if example is not None:
            modes = [(m, m.training) for m in model.modules()]
            model.eval()  # eval: a shape probe must not update BatchNorm running statistics
            with torch.no_grad():  # no_grad: only the output size is needed here, never a gradient
                self.forward(example)
            for module, training in modes:  # restore each submodule's own mode (e.g. a frozen encoder)
                module.training = training

    def forward(self, x: Tensor) -> Tensor:
        """(B, C, H, W) in [0, 1] -> the tapped activation, (B, D) if ``flatten`` else as output."""
        out = extract_layer(self.model, x, self.layer)
        if self.flatten and out.dim() > 2:
            out = out.flatten(1)  # (B, C', h, w) -> (B, C'*h*w)
        if self.feature_dim is None and out.dim() == 2:
            self.feature_dim = int(out.shape[1])
        return out

    def forward_features(self, x: Tensor) -> Tensor:
        """Same as :meth:`forward`: the tap is an encoder whose representation is the tapped activation."""
        return self.forward(x)
