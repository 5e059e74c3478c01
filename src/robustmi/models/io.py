"""Save, load and resolve models: ``save_model``, ``load_model``, ``resolve_model``.

A saved model is a plain ``state_dict`` (``RUN/model.pt``) plus a JSON sidecar holding its spec
``{"name", "kwargs"}``, written with ``robustmi.runs.save_checkpoint`` and read back with
``weights_only=True``.
Specs nest for compositions, so a probe built from a registry encoder and ``create_head`` reloads::

    {"name": "classifier", "kwargs": {"encoder": {"name": "baseline-h-encoder", "kwargs": {...}},
                                      "head": {"name": "head", "kwargs": {"kind": "mlp", "in_dim": 64, ...}}}}

Other composite names: ``"layer-tap"`` (``{"model": spec, "layer", "flatten"}``) and ``"factory"``
(``{"spec": "pkg.module:factory"}``, a user's model rebuilt by calling its factory again).

Loading never runs code a file names: registry names and the compositions above only build robustmi's own
modules; a ``"factory"`` spec is called only when the user trusts it (``robustmi.models.factory``,
``check_trusted``); anything malformed in a spec is a one-line ``CheckpointError``/``ModelError``.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from robustmi.errors import CheckpointError, ModelError
from robustmi.models.factory import check_trusted, is_factory_spec, load_factory
from robustmi.models.heads import Classifier, Head, create_head
from robustmi.models.registry import create_model, list_models
from robustmi.models.taps import LayerTap

MODEL_FILE = "model.pt"
_SAVE_HINT = 'build it with create_model/create_head/Classifier/LayerTap or resolve_model("module:factory")'


def unwrap_model(model: nn.Module) -> nn.Module:
    """The module inside DDP/DataParallel (``.module``) and ``torch.compile`` (``._orig_mod``) wrappers."""
    while True:
        if isinstance(model, (nn.parallel.DistributedDataParallel, nn.DataParallel)):
            model = model.module
        elif isinstance(getattr(model, "_orig_mod", None), nn.Module):
            model = model._orig_mod
        else:
            return model


def get_model_spec(model: nn.Module) -> dict[str, Any]:
    """The JSON spec that rebuilds ``model`` (architecture only, no weights).

    Raises:
        ModelError: the model was built some other way, so there is no recipe to rebuild it.
    """
    spec = getattr(model, "model_spec", None)
    if spec is not None:
        return spec
    if isinstance(model, Classifier):
        return {
            "name": "classifier",
            "kwargs": {"encoder": get_model_spec(model.encoder), "head": get_model_spec(model.head)},
        }
    if isinstance(model, Head):
        return {"name": "head", "kwargs": model.head_spec}
    if isinstance(model, LayerTap):
        return {
            "name": "layer-tap",
            "kwargs": {"model": get_model_spec(model.model), "layer": model.layer, "flatten": model.flatten},
        }
    raise ModelError(f"cannot save a {type(model).__name__}: no recipe to rebuild it; {_SAVE_HINT}")


def build_from_spec(spec: Any, trust: Iterable[str] = (), *, source: str = "model spec") -> nn.Module:
    """Rebuild an (untrained) model from a spec written by :func:`get_model_spec`.

    Args:
        spec: ``{"name", "kwargs"}`` (nested for compositions).
        trust: factory specs the caller trusts (see ``robustmi.models.factory.check_trusted``); a
            ``"factory"`` spec not trusted is refused before anything is imported.
        source: where the spec came from, for messages.

    Raises:
        CheckpointError: the spec is malformed.
        ModelError: it names an unknown model, a factory the user does not trust, or bad model kwargs.
    """
    try:
        return _build(spec, tuple(trust), source)
    except (TypeError, ValueError, KeyError, AttributeError, IndexError, RuntimeError) as error:
        problem = " ".join(str(error).split())[:160]
        raise CheckpointError(f"{source} holds a malformed model spec ({type(error).__name__}: {problem}); "
                              f"re-save the model with save_model") from None


def _build(spec: Any, trust: tuple[str, ...], source: str) -> nn.Module:
    if not (
        isinstance(spec, dict) and isinstance(spec.get("name"), str) and isinstance(spec.get("kwargs"), dict)
    ):
        raise CheckpointError(
            f"{source}: model spec {str(spec)[:120]!r} lacks a name and kwargs; "
            f"re-save the model with save_model"
        )
    name, kwargs = spec["name"], spec["kwargs"]
    if name == "classifier":
        encoder = _build(kwargs.get("encoder"), trust, source)
        return Classifier(encoder, _build(kwargs.get("head"), trust, source))
    if name == "head":
        return create_head(**kwargs)
    if name == "layer-tap":
        inner = _build(kwargs.get("model"), trust, source)
        return LayerTap(inner, kwargs["layer"], kwargs.get("flatten", True))
    if name == "factory":
        check_trusted(kwargs.get("spec"), source, trust)  # refuses before anything is imported
        return load_factory(kwargs["spec"])
    return create_model(name, **kwargs)


def load_state_dict_strict(model: nn.Module, state_dict: dict[str, Any], source: str) -> None:
    """``model.load_state_dict(state_dict)`` ; a one-line ModelError names bad keys."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(own))
    misshaped = sorted(
        k
        for k in set(own) & set(state_dict)
        if tuple(own[k].shape) != tuple(getattr(state_dict[k], "shape", ()))
    )
    if missing or unexpected or misshaped:
        parts = [
            f"{label}: {', '.join(keys[:8])}{' ...' if len(keys) > 8 else ''}"
            for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", misshaped))
            if keys
        ]
        raise ModelError(
            f"weights in {source} do not fit the model ({'; '.join(parts)}); "
            "use weights saved from the same architecture"
        )
    try:
        model.load_state_dict(state_dict)
    except (RuntimeError, TypeError, ValueError) as error:
        problem = " ".join(str(error).split())[:160]
        raise ModelError(f"weights in {source} do not load ({problem}); use weights saved from the same "
                         f"architecture") from None


def _model_path(path: str | Path) -> Path:
    """A run folder -> ``RUN/model.pt``; a file path stays as it is."""
    path = Path(path)
    return path / MODEL_FILE if path.is_dir() or path.suffix not in (".pt", ".pth") else path


def save_model(model: nn.Module, path: str | Path) -> Path:
    """Save ``model``'s state_dict and spec (atomic; JSON sidecar beside the .pt file).

    Args:
        model: a model with a spec (see :func:`get_model_spec`); DDP, DataParallel and ``torch.compile``
            wrappers are unwrapped first, so the saved keys carry no ``module.``/``_orig_mod.`` prefix.
        path: a ``.pt``/``.pth`` file, or a run folder (``RUN/model.pt``; folder created if needed).

    Returns:
        The path of the written .pt file.

    Raises:
        ModelError: the model has no spec.
    """
    from robustmi.runs import save_checkpoint  # lazy: runs may import heavier things than models needs

    model = unwrap_model(model)
    spec = get_model_spec(model)
    target = _model_path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    # detach + cpu: a checkpoint stores values (no autograd graph) and must load on machines without the GPU
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    save_checkpoint(target, {"model": state}, {"name": spec["name"], "kwargs": spec["kwargs"]})
    return target


def load_model(path: str | Path, trust: Iterable[str] = ()) -> nn.Module:
    """Rebuild a model saved by :func:`save_model`, on the CPU and in eval mode.

    Args:
        path: a run folder (reads ``RUN/model.pt``) or a model ``.pt`` file.
        trust: user factory specs (``"my_nets.py:encoder"``) this file may call to rebuild the model; also
            trusted: factories named in this process and those in ``$ROBUSTMI_TRUST_CODE``. No other code
            named in the file is ever imported.

    Returns:
        The model with its weights, in ``eval()`` mode (call ``.train()`` to fine-tune).

    Raises:
        CheckpointError: missing or unreadable file, or one that is not a saved model.
        ModelError: its spec names an unknown model, an untrusted factory, or its weights do not fit.
    """
    from robustmi.runs import load_checkpoint

    target = _model_path(path)
    if not target.is_file():
        where = (
            f"run folder {path} has no {MODEL_FILE}"
            if Path(path).is_dir()
            else f"model file {path} not found"
        )
        raise CheckpointError(f"{where}; give a finished run folder or a .pt file written by save_model")
    tensors, meta = load_checkpoint(target)
    if "model" not in tensors or "name" not in meta:
        raise CheckpointError(f"{target} is not a model saved by save_model (no model weights or spec)")
    if not isinstance(tensors["model"], dict):
        raise CheckpointError(f"{target} is not a model saved by save_model "
                              f"(its model entry is not a state_dict)")
    spec = {"name": meta["name"], "kwargs": meta.get("kwargs", {})}
    model = build_from_spec(spec, trust, source=str(target))
    load_state_dict_strict(model, tensors["model"], str(target))
    return model.eval()


# where training scripts keep the weights inside a checkpoint dict: robustmi/timm ("model", "state_dict"),
# timm's EMA copy ("model_ema", "state_dict_ema"), tried in this order
_WEIGHT_KEYS = ("model", "state_dict", "model_ema", "state_dict_ema")
# prefixes wrappers add to every key: DDP/DataParallel ("module.") and torch.compile ("_orig_mod.")
_WRAPPER_PREFIXES = ("module.", "_orig_mod.")


def _read_weights(weights: str | Path) -> dict[str, Any]:
    """A state_dict from a file: a plain ``torch.save(model.state_dict())``, a ``save_model`` file, or a
    training checkpoint keeping it under ``model``/``state_dict``/``model_ema``; wrapper prefixes stripped."""
    from robustmi.runs import load_checkpoint  # weights_only=True; refuses pickled Python objects

    if not Path(weights).is_file():
        raise ModelError(f"weights file {weights} not found; give a state_dict saved with torch.save")
    obj, _ = load_checkpoint(weights)
    for key in _WEIGHT_KEYS:
        if isinstance(obj.get(key), dict):
            obj = obj[key]
            break
    if not (obj and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items())):
        raise ModelError(f"{weights} holds no state_dict; save one with torch.save(model.state_dict(), path)")
    return strip_wrapper_prefixes(obj)


def strip_wrapper_prefixes(state_dict: dict[str, Any]) -> dict[str, Any]:
    """Drop a ``module.`` (DDP/DataParallel) or ``_orig_mod.`` (torch.compile) prefix shared by every key."""
    changed = True
    while changed:
        changed = False
        for prefix in _WRAPPER_PREFIXES:
            if state_dict and all(k.startswith(prefix) for k in state_dict):
                state_dict = {k[len(prefix):]: v for k, v in state_dict.items()}
                changed = True
    return state_dict


def resolve_model(spec: str, weights: str | None = None) -> nn.Module:
    """Turn a ``--model`` value into a module.

    Args:
        spec: a run folder, a model ``.pt`` file (``save_model``), ``"pkg.module:factory"``,
            ``"path/to/file.py:factory"`` (factory called with no arguments), or a registered model name.
        weights: optional state_dict file loaded into the model (strict, ``weights_only=True``).

    Returns:
        The model. Loaded models come in eval mode; factories' and registry models' mode is left as built.

    Raises:
        ModelError: a spec that names nothing usable, a factory problem, or weights that do not fit.
        CheckpointError: an unreadable model file.

    Example:
        >>> model = resolve_model("runs/probe")                          # doctest: +SKIP
        >>> model = resolve_model("my_nets.py:encoder", weights="enc.pt")  # doctest: +SKIP
    """
    path = Path(spec)
    if path.is_dir() or (path.is_file() and path.suffix in (".pt", ".pth")):
        model = load_model(path)
    elif is_factory_spec(spec):
        model = load_factory(spec)
    elif spec in list_models():
        model = create_model(spec)
    else:
        raise ModelError(
            f"cannot resolve model {spec!r}: not a run folder, a .pt file, pkg.module:factory, "
            f"file.py:factory or a registered model ({', '.join(list_models())})"
        )
    if weights is not None:
        load_state_dict_strict(model, _read_weights(weights), str(weights))
    return model


def check_model_outputs(model: nn.Module, images: torch.Tensor, name: str) -> torch.Tensor:
    """Run ``model`` (eval mode, no grad) on two of ``images`` (B, C, H, W); its mode is restored.

    Returns:
        The output for those images (on the model's device).

    Raises:
        ModelError: the model cannot take these images (wrong channels or size), or its output is NaN/inf
            (broken weights, e.g. a diverged run).
    """
    shape = tuple(images.shape[1:])
    param = next(model.parameters(), None)
    x = images[:2].to(param.device if param is not None else "cpu")
    was_training = model.training
    try:
        with torch.no_grad():
            out = model.eval()(x)
    except (RuntimeError, ValueError, TypeError, IndexError) as error:
        problem = " ".join(str(error).split())[:160]
        raise ModelError(f"model {name} cannot take images of shape {shape} ({problem}); "
                         f"use a model built for this dataset") from None
    finally:
        model.train(was_training)
    if isinstance(out, torch.Tensor) and out.is_floating_point() and not bool(torch.isfinite(out).all()):
        raise ModelError(f"model {name} outputs NaN/inf; its weights are broken (a diverged run?): "
                         f"retrain it or resume its last good checkpoint with a lower lr")
    return out


def check_classifier(model: nn.Module, images: torch.Tensor, num_classes: int, name: str) -> None:
    """Check that ``model`` maps ``images`` (B, C, H, W) to finite (B, num_classes) logits before a long run.

    Raises:
        ModelError: the model cannot take these images, its output is NaN/inf, or it is not ``num_classes``
            logits (e.g. an encoder's representation).
    """
    out = check_model_outputs(model, images, name)
    n = min(len(images), 2)
    if not isinstance(out, torch.Tensor) or out.dim() != 2 or out.shape[1] != num_classes:
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ModelError(f"model {name} outputs {got} for {n} images, not ({n}, {num_classes}) "
                         f"logits; give a classifier (an encoder needs a head: train-probe --encoder)")
