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
import math
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
    _check_kwargs(name, kwargs)
    try:
        model = fn(**kwargs)
    except (ValueError, TypeError, RuntimeError, ZeroDivisionError) as error:
        problem = " ".join(str(error).split())[:160]
        raise ModelError(f"model {name!r} cannot be built with {_to_json(kwargs)} ({problem}); "
                         f"fix those kwargs") from None
    model.model_spec = {"name": name, "kwargs": _to_json(kwargs)}
    return model


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _check_kwargs(name: str, kwargs: dict[str, Any]) -> None:
    """Validate the common size/normalisation kwargs before building, naming the bad value.

    Raises:
        ModelError: a size that is not a positive integer, a width that is not a positive number, an
            ``input_size`` that is neither ``N`` nor ``[H, W]``, or a mean/std that is not a list of finite
            numbers (std > 0).
    """
    def bad(key: str, want: str) -> ModelError:
        return ModelError(f"model {name!r}: {key}={kwargs[key]!r} must be {want}; fix {key}")

    for key in ("in_chans", "num_classes", "feature_dim"):
        if key in kwargs and not (_is_int(kwargs[key]) and kwargs[key] > 0):
            raise bad(key, "a positive integer")
    if "width" in kwargs and not (_is_number(kwargs["width"]) and kwargs["width"] > 0):
        raise bad("width", "a positive number")
    if "input_size" in kwargs:
        size = kwargs["input_size"]
        sizes = list(size) if isinstance(size, (list, tuple)) else [size]
        if len(sizes) not in (1, 2) or not all(_is_int(v) and v > 0 for v in sizes):
            raise bad("input_size", "a positive integer or [height, width]")
    for key in ("mean", "std"):
        values = kwargs.get(key)
        if values is None:
            continue
        values = list(values) if isinstance(values, (list, tuple)) else [values]
        if not values or not all(_is_number(v) for v in values) or (key == "std" and min(values) <= 0):
            want = "a list of finite numbers (one per channel)" + (", all > 0" if key == "std" else "")
            raise bad(key, want)
