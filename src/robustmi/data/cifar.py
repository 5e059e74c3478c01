"""Reader for the CIFAR-10 "python version" batches, with a restricted (safe) unpickler.

Format (Krizhevsky, https://www.cs.toronto.edu/~kriz/cifar.html): ``cifar-10-batches-py/data_batch_1`` ...
``data_batch_5`` (train) and ``test_batch``, each a pickled dict written by Python 2 with keys ``b"data"``
(``(N, 3072)`` uint8: the red, green then blue 32x32 planes, row-major) and ``b"labels"`` (list of N ints in
[0, 10)). Pickle can run arbitrary code, so batches are read with an unpickler that resolves only numpy's
array-reconstruction globals and refuses everything else.
"""

from __future__ import annotations

import importlib
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from robustmi.errors import DataError

TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_FILES = ("test_batch",)
_ROW = 3 * 32 * 32


def _numpy_private(module: str, name: str) -> Any:
    """numpy's pickle helper ``numpy._core.<module>.<name>`` (``numpy.core`` before numpy 2)."""
    try:
        return getattr(importlib.import_module(f"numpy._core.{module}"), name)
    except ImportError:  # pragma: no cover - numpy 1.x
        return getattr(importlib.import_module(f"numpy.core.{module}"), name)


# (module, name) -> object, for exactly the globals a pickled plain ndarray needs, whether written by numpy 1
# or 2: _reconstruct (protocols 0-4) or _frombuffer (protocol 5), plus the ndarray and dtype types.
_ALLOWED: dict[tuple[str, str], Any] = {
    (f"{package}.{module}", name): _numpy_private(module, name)
    for package in ("numpy.core", "numpy._core")
    for module, name in (("multiarray", "_reconstruct"), ("numeric", "_frombuffer"))
}
_ALLOWED.update({("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype})


# What a malformed or truncated pickle stream raises while being decoded.
_UNPICKLE_ERRORS = (
    pickle.UnpicklingError,
    EOFError,
    ValueError,
    TypeError,
    AttributeError,
    IndexError,
    KeyError,
)


class _ArrayOnlyUnpickler(pickle.Unpickler):
    """Unpickler that builds only plain containers, strings, numbers and numpy arrays."""

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"refused global {module}.{name}") from None


def _unpickle(path: Path) -> dict:
    try:
        with path.open("rb") as handle:
            if not handle.read(1):
                raise DataError(f"{path}: empty file (0 bytes); replace it with the original CIFAR-10 batch")
            handle.seek(0)
            # encoding="bytes": Python 2 str objects (keys, raw array data) arrive as bytes, as numpy expects.
            obj = _ArrayOnlyUnpickler(handle, encoding="bytes").load()
    except FileNotFoundError:
        raise DataError(f"{path}: file not found; put the CIFAR-10 batches there or fix --data-dir") from None
    except _UNPICKLE_ERRORS as error:
        raise DataError(
            f"{path}: not a valid CIFAR-10 pickle batch ({error}); replace it with the original file"
        ) from None
    if not isinstance(obj, dict):
        raise DataError(f"{path}: pickle holds a {type(obj).__name__}, expected a dict with data and labels")
    # Python 2 pickles give bytes keys, Python 3 ones may give str keys: accept both.
    return {key.decode("latin1") if isinstance(key, bytes) else key: value for key, value in obj.items()}


def read_cifar_batch(path: Path, num_classes: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """Read and validate one CIFAR-10 batch.

    Args:
        path: A ``data_batch_*`` or ``test_batch`` pickle file.
        num_classes: Labels must lie in ``[0, num_classes)``.

    Returns:
        ``(images, labels)``: uint8 ``(N, 3, 32, 32)`` and int64 ``(N,)``.

    Raises:
        DataError: missing/empty/corrupt file, a refused pickle global, missing keys, wrong array type or
            shape, count mismatch or a label out of range.
    """
    batch = _unpickle(path)
    missing = [key for key in ("data", "labels") if key not in batch]
    if missing:
        found = sorted(map(str, batch))
        raise DataError(f"{path}: batch lacks key(s) {missing}; found {found}, replace the file")
    data = batch["data"]
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != _ROW:
        shape = getattr(data, "shape", None)
        kind = getattr(data, "dtype", type(data).__name__)
        raise DataError(f"{path}: 'data' must be uint8 (N, {_ROW}), got {kind} {shape}; replace the file")
    labels = _integer_labels(path, batch["labels"])
    if labels.shape[0] != data.shape[0]:
        raise DataError(f"{path}: {data.shape[0]} images but {labels.shape[0]} labels; replace the file")
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise DataError(
            f"{path}: labels span [{labels.min()}, {labels.max()}], expected [0, {num_classes}); "
            "replace the file"
        )
    images = data.reshape(-1, 3, 32, 32)  # (N, 3072) -> (N, 3, 32, 32): R, G, B planes, each row-major
    return images, labels


def _integer_labels(path: Path, raw: Any) -> np.ndarray:
    """``labels`` as int64 ``(N,)``; DataError unless a list or array of integers (no floats, no bools)."""
    if isinstance(raw, np.ndarray) and np.issubdtype(raw.dtype, np.integer):
        values = [int(v) for v in raw.reshape(-1)]
    elif isinstance(raw, (list, tuple)) and all(type(v) is int for v in raw):
        values = list(raw)
    else:
        raise DataError(f"{path}: 'labels' is not a list of integers; replace the file")
    if values and (min(values) < -(2**62) or max(values) > 2**62):  # would not fit int64: surely not a class
        raise DataError(f"{path}: labels span [{min(values)}, {max(values)}], far outside [0, 10); "
                        "replace the file")
    return np.asarray(values, dtype=np.int64)


def read_cifar_split(paths: list[Path], num_classes: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """Read and concatenate one split's batches: uint8 ``(N, 3, 32, 32)`` images, int64 ``(N,)`` labels."""
    parts = [read_cifar_batch(path, num_classes) for path in paths]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
