"""Checkpoint IO: tensors and state_dicts in a ``.pt`` file plus a JSON sidecar, loaded with ``weights_only``.

``save_checkpoint(path, tensors, meta)`` writes ``path`` (``torch.save`` of the tensors, with ``meta``
embedded as a JSON string) and ``path.with_suffix(".json")`` (``meta``, for people and other tools). Both
writes are atomic, so a crash leaves the previous checkpoint intact. Because ``meta`` (epoch, step,
constructor arguments) also lives inside the ``.pt``, tensors and meta never come from two different saves.

``load_checkpoint`` only ever calls ``torch.load(..., weights_only=True)``: a file that smuggles arbitrary
Python objects (which plain unpickling would execute) is refused, never run. A plain
``torch.save(model.state_dict())`` file written elsewhere also loads (meta then comes from a sidecar, if any).
"""

from __future__ import annotations

import json
import math
import re
import warnings
from collections import OrderedDict
from pathlib import Path
from typing import Any

import torch

from robustmi.errors import CheckpointError
from robustmi.runs._atomic import atomic_write, atomic_write_text

_FORMAT_KEY = "robustmi_checkpoint"
_FORMAT_VERSION = 1
# what torch.load(weights_only=True) rebuilds; exact types, because e.g. numpy.float64 subclasses float
_LEAF_TYPES = (str, bytes, int, float, complex, bool, type(None), torch.dtype, torch.device, torch.Size)
_CONTAINER_TYPES = (dict, OrderedDict, list, tuple, set)
_REFUSED_GLOBAL = re.compile(r"GLOBAL (\S+)")  # how torch's weights-only unpickler names a refused object


def sidecar_path(path: str | Path) -> Path:
    """The JSON sidecar of a checkpoint: same folder and stem, suffix ``.json`` (last.pt -> last.json)."""
    return Path(path).with_suffix(".json")


def save_checkpoint(path: str | Path, tensors: dict[str, Any], meta: dict[str, Any]) -> None:
    """Write ``tensors`` to ``path`` and ``meta`` to its JSON sidecar, each atomically.

    Args:
        path: destination ``.pt`` file (any suffix but ``.json``); its folder is created if needed.
        tensors: state_dicts (model, optimizer, scheduler, scaler), tensors, RNG states (see
            ``get_rng_state``) and plain containers of them: dict, list, tuple, set, str, int, float, bool,
            None.
        meta: JSON-serialisable description (epoch, step, constructor kwargs, ...).

    Raises:
        CheckpointError: ``meta`` is not JSON-serialisable, ``tensors`` holds an object that
            ``torch.load(weights_only=True)`` would refuse (checked before anything is written), or the
            folder is not writable.

    Example:
        >>> state = {"model": model.state_dict(), "optimizer": opt.state_dict(), "rng": get_rng_state()}
        >>> save_checkpoint(run.checkpoint_dir / "last.pt", state, {"epoch": 3})  # doctest: +SKIP
    """
    path = Path(path)
    if path.suffix == ".json":
        raise CheckpointError(f"checkpoint path {str(path)!r} ends in .json, which is the sidecar's suffix; "
                              f"use a .pt file name")
    if not isinstance(tensors, dict):
        raise CheckpointError(f"checkpoint tensors must be a dict, got {type(tensors).__name__}")
    _check_storable(tensors, "tensors")
    bad = _non_finite_path(meta, "meta")
    if bad is not None:  # a diverged value, not a serialisation problem: say so
        raise CheckpointError(f"cannot checkpoint {str(path)!r}: {bad} is NaN/inf (training or measuring "
                              f"diverged); lower the learning rate or check the inputs")
    try:
        meta_json = json.dumps(meta, indent=2, allow_nan=False)
    except (TypeError, ValueError) as error:
        raise CheckpointError(f"checkpoint meta for {str(path)!r} is not JSON-serialisable ({error}); "
                              f"store plain numbers, strings, lists and dicts") from None
    payload = {_FORMAT_KEY: _FORMAT_VERSION, "tensors": tensors, "meta_json": meta_json}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, lambda file: torch.save(payload, file))
        atomic_write_text(sidecar_path(path), meta_json + "\n")
    except OSError as error:
        raise CheckpointError(f"cannot write checkpoint {str(path)!r} ({error}); choose a writable --out") \
            from None


def load_checkpoint(path: str | Path, *, require_meta: bool = False) -> tuple[dict[str, Any], dict[str, Any]]:
    """Read a checkpoint on the CPU with ``torch.load(weights_only=True)``.

    Args:
        path: a ``.pt`` file written by :func:`save_checkpoint`, or a plain ``torch.save`` of a state_dict.
        require_meta: fail when no meta is found (neither embedded nor in a sidecar); else meta is ``{}``.

    Returns:
        ``(tensors, meta)``: the dict given to :func:`save_checkpoint` (tensors on the CPU) and its meta.

    Raises:
        CheckpointError: missing, truncated or corrupt file; a file holding non-tensor Python objects (refused
            unread: unpickling them could run code); a file that does not hold a dict; unreadable meta.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {str(path)!r} not found; check the path (a run folder keeps its "
                              f"training state in checkpoints/last.pt)")
    obj = _torch_load(path)
    if isinstance(obj, dict) and obj.get(_FORMAT_KEY) == _FORMAT_VERSION:
        try:
            return obj["tensors"], json.loads(obj["meta_json"])
        except (KeyError, TypeError, ValueError) as error:
            raise CheckpointError(f"checkpoint {str(path)!r} is malformed ({error}); delete it and re-run") \
                from None
    if not isinstance(obj, dict):
        raise CheckpointError(f"checkpoint {str(path)!r} holds a {type(obj).__name__}, not a dict of "
                              f"state_dicts/tensors; save model.state_dict() instead")
    meta = _read_sidecar(path)
    if meta is None and require_meta:
        raise CheckpointError(f"checkpoint {str(path)!r} has no metadata and no sidecar "
                              f"{sidecar_path(path).name!r}; save it with robustmi's save_checkpoint")
    return obj, meta or {}


def _torch_load(path: Path) -> Any:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. "Detected pickle protocol 4": the error below says enough
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - any failure to parse the file means an unreadable checkpoint
        text = str(error)
        refused = _REFUSED_GLOBAL.search(text)
        if refused is not None:  # the weights-only unpickler met a class/function: refused, never called
            raise CheckpointError(f"refused to load {str(path)!r}: it contains a non-tensor Python object "
                                  f"({refused.group(1)}), which could run code when unpickled; use a "
                                  f"checkpoint that holds only state_dicts/tensors") from None
        if "WeightsUnpickler error:" in text:  # torch's long advice, then the actual reason
            text = text.split("WeightsUnpickler error:", 1)[1].split("Check the documentation", 1)[0]
            text = f"not a weights-only pickle: {text.strip()}"
        detail = next((line.strip() for line in text.splitlines() if line.strip()), "")[:120]
        raise CheckpointError(f"checkpoint {str(path)!r} is truncated or corrupt ({type(error).__name__}: "
                              f"{detail}); delete it and re-run, or restore a good copy") from None


def _read_sidecar(path: Path) -> dict[str, Any] | None:
    side = sidecar_path(path)
    if not side.is_file():
        return None
    try:
        meta = json.loads(side.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise CheckpointError(f"checkpoint sidecar {str(side)!r} is unreadable ({error}); "
                              f"delete or repair it") from None
    if not isinstance(meta, dict):
        raise CheckpointError(f"checkpoint sidecar {str(side)!r} must hold a JSON object; repair it")
    return meta


def _non_finite_path(obj: Any, where: str) -> str | None:
    """Where the first NaN/inf float sits in nested meta (``meta.history[3].mi``), or None."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return where
    if isinstance(obj, dict):
        items = ((f"{where}.{k}", v) for k, v in obj.items())
    elif isinstance(obj, (list, tuple)):
        items = ((f"{where}[{i}]", v) for i, v in enumerate(obj))
    else:
        return None
    return next((found for w, v in items if (found := _non_finite_path(v, w)) is not None), None)


def _check_storable(obj: Any, where: str) -> None:
    """Fail early on anything ``torch.load(weights_only=True)`` would refuse, naming where it sits."""
    if isinstance(obj, torch.Tensor) or type(obj) in _LEAF_TYPES:
        return
    if type(obj) not in _CONTAINER_TYPES:
        kind = f"{type(obj).__module__}.{type(obj).__qualname__}"
        raise CheckpointError(f"cannot store {kind} at {where!r} in a checkpoint: only tensors, "
                              f"state_dicts and plain containers load with "
                              f"weights_only=True; convert it (e.g. numpy array -> torch.from_numpy)")
    if isinstance(obj, dict):
        for key, value in obj.items():
            _check_storable(key, f"{where} key {key!r}")
            _check_storable(value, f"{where}.{key}")
    else:
        for i, value in enumerate(obj):
            _check_storable(value, f"{where}[{i}]")
