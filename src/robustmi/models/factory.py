"""User model factories: ``"pkg.module:factory"`` or ``"path/to/file.py:factory"`` -> ``nn.Module``.

This is how a user's own PyTorch encoder or classifier gets measured: the factory is called with no
arguments and must return an ``nn.Module`` taking images in [0, 1]. The returned module gets
``model_spec = {"name": "factory", "kwargs": {"spec": ...}}`` (file paths made absolute) so that
``save_model`` can store it and ``load_model`` can rebuild it by calling the factory again.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from torch import nn

from robustmi.errors import ModelError


def is_factory_spec(spec: str) -> bool:
    """True for ``"something:name"`` where ``name`` is a Python identifier."""
    target, sep, name = spec.rpartition(":")
    return bool(sep and target and name.isidentifier())


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
        raise ModelError(f"importing {path} failed ({type(exc).__name__}: {exc}); fix that file") from exc
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
            f"cannot import module {target!r} ({exc}); install it, add its folder to PYTHONPATH, "
            "or use path/to/file.py:factory"
        ) from exc


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
        raise ModelError(f"model factory {spec} raised {type(exc).__name__}: {exc}; fix the factory") from exc
    if not isinstance(model, nn.Module):
        raise ModelError(f"model factory {spec} returned {type(model).__name__}, not a torch.nn.Module")
    model.model_spec = {"name": "factory", "kwargs": {"spec": f"{target}:{name}"}}
    return model
