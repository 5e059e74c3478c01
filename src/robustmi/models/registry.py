"""Model registry (timm-style): ``register_model``, ``create_model``, ``list_models``.

A registered entry is a small function that fills its defaults and calls a private builder. Its key is the
function name with ``_`` replaced by ``-`` (``baseline_h_linear`` -> ``"baseline-h-linear"``), exactly what
users type. ``create_model`` drops ``None`` kwargs (so unset CLI options keep the defaults), fills the
dataset-dependent kwargs from ``robustmi.data.get_dataset_info`` when ``dataset=`` is given, and records
``model.model_spec`` (``{"name", "kwargs"}``, JSON-serialisable) so that ``save_model``/``load_model`` can
rebuild the model.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from torch import nn

from robustmi.errors import ModelError

ModelFn = Callable[..., nn.Module]

_MODELS: dict[str, ModelFn] = {}

# Spec names used by compositions (see robustmi.models.io); no registered model may take them.
RESERVED_NAMES = frozenset({"classifier", "head", "factory", "layer-tap"})


def register_model(fn: ModelFn) -> ModelFn:
    """Register a model-building function under its name with ``_`` replaced by ``-``.

    Args:
        fn: a function taking keyword arguments and returning an ``nn.Module``.

    Returns:
        ``fn`` unchanged, so this works as a decorator.

    Raises:
        ValueError: the name is reserved or already registered (a bug in robustmi, not a user error).
    """
    name = fn.__name__.replace("_", "-")
    if name in RESERVED_NAMES or name in _MODELS:
        raise ValueError(f"model name {name!r} is reserved or already registered")
    _MODELS[name] = fn
    return fn


def list_models() -> list[str]:
    """Names of all registered models, sorted."""
    return sorted(_MODELS)


def _dataset_kwargs(dataset: str) -> dict[str, Any]:
    """Kwargs a dataset determines: ``in_chans``, ``input_size``, ``num_classes``, ``mean``, ``std``."""
    from robustmi.data import get_dataset_info  # lazy: models sit beside data, not above it

    info = get_dataset_info(dataset)
    chans, height, width = info.image_shape
    return {
        "in_chans": int(chans),
        "input_size": int(height) if height == width else [int(height), int(width)],
        "num_classes": int(info.num_classes),
        "mean": [float(m) for m in info.mean],
        "std": [float(s) for s in info.std],
    }


def _to_json(value: Any) -> Any:
    """Tuples -> lists (recursively) so a spec survives a JSON round trip unchanged."""
    if isinstance(value, (tuple, list)):
        return [_to_json(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _to_json(v) for k, v in value.items()}
    return value


def create_model(name: str, **kwargs: Any) -> nn.Module:
    """Build a registered model.

    Args:
        name: a key from :func:`list_models` (e.g. ``"baseline-h"``).
        **kwargs: model kwargs (``in_chans``, ``input_size``, ``num_classes``, ``mean``, ``std``,
            ``feature_dim``, ``width``, ... as the entry accepts). ``None`` values are dropped.
            ``dataset="mnist"`` fills ``in_chans``, ``input_size``, ``num_classes``, ``mean`` and ``std``
            (those the entry accepts) from ``robustmi.data.get_dataset_info``; explicit kwargs win.

    Returns:
        The model, with ``model.model_spec = {"name": name, "kwargs": {...}}`` (dataset values resolved).

    Raises:
        ModelError: unknown name (lists the valid ones) or a kwarg the entry does not take.

    Example:
        >>> model = create_model("baseline-h", dataset="mnist")
    """
    if name not in _MODELS:
        raise ModelError(f"unknown model {name!r}; choose one of: {', '.join(list_models())}")
    fn = _MODELS[name]
    kwargs = {k: v for k, v in kwargs.items() if v is not None}
    accepted = set(inspect.signature(fn).parameters)
    dataset = kwargs.pop("dataset", None)
    if dataset is not None:
        filled = {k: v for k, v in _dataset_kwargs(dataset).items() if k in accepted}
        kwargs = {**filled, **kwargs}
    unknown = sorted(set(kwargs) - accepted)
    if unknown:
        raise ModelError(
            f"model {name!r} does not take {', '.join(unknown)}; it takes: {', '.join(sorted(accepted))}"
        )
    model = fn(**kwargs)
    model.model_spec = {"name": name, "kwargs": _to_json(kwargs)}
    return model
