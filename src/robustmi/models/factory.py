"""User model factories: ``"pkg.module:factory"`` or ``"path/to/file.py:factory"`` -> ``nn.Module``.

This is how a user's own PyTorch encoder or classifier gets measured: the factory is called with no
arguments and must return an ``nn.Module`` taking images in [0, 1]. The returned module gets
``model_spec = {"name": "factory", "kwargs": {"spec": ...}}`` (file paths made absolute) so that
``save_model`` can store it and ``load_model`` can rebuild it by calling the factory again.

Security: a spec read from a file (a checkpoint's meta, a ``model.json`` sidecar, a downloaded run folder) is
data, never permission to run code. ``load_model`` calls a factory named in a file only if the user trusts
that exact factory: named it in this process (``resolve_model("pkg.mod:factory")`` / ``--model``), passed it
in ``trust=``, or listed it in ``$ROBUSTMI_TRUST_CODE`` (comma-separated specs). See :func:`check_trusted`.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import sys
from collections.abc import Iterable
from pathlib import Path
from types import ModuleType

from torch import nn

from robustmi.errors import ModelError

TRUST_ENV = "ROBUSTMI_TRUST_CODE"
# factory specs (normalised) the user has named in this process; only these are ever called from a file
_NAMED_BY_USER: set[str] = set()


def is_factory_spec(spec: str) -> bool:
    """True for ``"something:name"`` where ``name`` is a Python identifier."""
    target, sep, name = spec.rpartition(":")
    return bool(sep and target and name.isidentifier())


def normalize_factory_spec(spec: str) -> str:
    """``"file.py:f"`` with the file made absolute (as ``load_factory`` records it); other specs unchanged."""
    target, _, name = spec.strip().rpartition(":")
    if target.endswith(".py"):
        target = str(Path(target).expanduser().resolve())
    return f"{target}:{name}"


def trusted_factories(trust: Iterable[str] = ()) -> set[str]:
    """Factory specs that may be called: named in this process, in ``trust`` or in ``$ROBUSTMI_TRUST_CODE``.
    """
    listed = [s for s in os.environ.get(TRUST_ENV, "").split(",") if s.strip()]
    return _NAMED_BY_USER | {normalize_factory_spec(s) for s in [*trust, *listed] if is_factory_spec(s)}


def check_trusted(spec: str, source: str, trust: Iterable[str] = ()) -> None:
    """Refuse to call factory ``spec`` read from file ``source`` unless the user trusts it.

    Raises:
        ModelError: ``spec`` is not trusted (names the opt-in; nothing was imported).
    """
    if not isinstance(spec, str) or not is_factory_spec(spec):
        raise ModelError(f"{source} names a malformed model factory {spec!r}; "
                         f"re-save the model with save_model")
    if normalize_factory_spec(spec) not in trusted_factories(trust):
        raise ModelError(
            f"{source} was built by the code {spec!r}, which robustmi never imports on a file's say-so; "
            f"if you trust that code, name it: set {TRUST_ENV}={spec} (or load_model(..., trust=[spec]))"
        )


def _import_file(path: Path) -> ModuleType:
    """Import a .py file as a module with a name unique to its absolute path (re-imports reuse it)."""
    digest = hashlib.sha1(str(path).encode()).hexdigest()[:10]
    mod_name = f"robustmi_user_{path.stem}_{digest}"
    if mod_name in sys.modules:
        return sys.modules[mod_name]
    spec = importlib.util.spec_from_file_location(mod_name, path)
    if spec is None or spec.loader is None:
        raise ModelError(f"cannot import {path} as a Python file; give a .py file defining the factory")
    module = importlib.util.module_from_spec(spec)
    sys.modules[mod_name] = module  # before exec, so dataclasses/pickling inside the file find their module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[mod_name]
        raise ModelError(f"importing {path} failed ({type(exc).__name__}: {_one_line(exc)}); fix that file") \
            from exc
    return module


def _import_target(target: str) -> tuple[ModuleType, str]:
    """Import ``target`` (a .py path or a dotted module name); returns the module, normalised target."""
    if target.endswith(".py"):
        path = Path(target).expanduser().resolve()
        if not path.is_file():
            raise ModelError(f"model file {target} does not exist; give an existing path/to/file.py:factory")
        return _import_file(path), str(path)
    try:
        return importlib.import_module(target), target
    except ImportError as exc:
        raise ModelError(
            f"cannot import module {target!r} ({_one_line(exc)}); install it, add its folder to PYTHONPATH, "
            "or use path/to/file.py:factory"
        ) from exc
    except Exception as exc:  # noqa: BLE001 - the user's module failed at import (SyntaxError, ValueError...)
        raise ModelError(
            f"importing module {target!r} failed ({type(exc).__name__}: {_one_line(exc)}); fix that module"
        ) from exc


def _one_line(exc: BaseException) -> str:
    """An exception's message on one line (SyntaxError's and torch's messages hold newlines)."""
    return " ".join(str(exc).split())[:200]


def load_factory(spec: str) -> nn.Module:
    """Import and call a model factory.

    Args:
        spec: ``"pkg.module:factory"`` or ``"path/to/file.py:factory"``.

    Returns:
        The module the factory returns, with ``model_spec`` recorded (absolute file path).

    Raises:
        ModelError: malformed spec, import failure, missing factory, factory error, or a non-Module result.
    """
    if not is_factory_spec(spec):
        raise ModelError(
            f"model factory {spec!r} is not of the form pkg.module:factory or path/to/file.py:factory"
        )
    target, _, name = spec.rpartition(":")
    module, target = _import_target(target)
    factory = getattr(module, name, None)
    if not callable(factory):
        raise ModelError(f"{target} defines no callable {name!r}; name a function returning an nn.Module")
    try:
        model = factory()
    except Exception as exc:
        raise ModelError(f"model factory {spec} raised {type(exc).__name__}: {_one_line(exc)}; "
                         f"fix the factory") from exc
    if not isinstance(model, nn.Module):
        raise ModelError(f"model factory {spec} returned {type(model).__name__}, not a torch.nn.Module")
    model.model_spec = {"name": "factory", "kwargs": {"spec": f"{target}:{name}"}}
    _NAMED_BY_USER.add(f"{target}:{name}")  # the user named it: a run folder saved from it may rebuild it
    return model
