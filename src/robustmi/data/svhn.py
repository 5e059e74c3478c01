"""Reader for SVHN cropped digits (format 2) ``.mat`` files.

Format (Netzer et al. 2011, http://ufldl.stanford.edu/housenumbers/): ``train_32x32.mat``,
``test_32x32.mat`` (and ``extra_32x32.mat``), MATLAB v5 files with ``X``: uint8 ``(32, 32, 3, N)`` and
``y``: ``(N, 1)`` labels 1..10, where 10 stands for the digit 0. scipy is imported only when an SVHN file is
read.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from robustmi.errors import DataError

SPLIT_FILES = {"train": "train_32x32.mat", "test": "test_32x32.mat", "extra": "extra_32x32.mat"}
_FIX = "replace it with the original SVHN cropped-digits file"


def _loadmat(path: Path) -> dict:
    try:
        import scipy.io
        from scipy.io.matlab import MatReadError
    except ImportError:
        raise DataError("reading SVHN .mat files needs scipy; install it with `pip install scipy`") from None
    if not path.is_file():
        raise DataError(f"{path}: file not found; put the SVHN .mat files there or fix --data-dir")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: empty file (0 bytes); {_FIX}")
    try:
        return scipy.io.loadmat(str(path))
    except NotImplementedError:  # MATLAB v7.3 files are HDF5, which loadmat cannot read
        raise DataError(f"{path}: MATLAB v7.3 (HDF5) file; re-save it as a v5 .mat file or {_FIX}") from None
    except (MatReadError, ValueError, OSError, TypeError, EOFError) as error:
        raise DataError(f"{path}: not a readable .mat file ({error}); {_FIX}") from None


def read_svhn(path: Path, num_classes: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """Read and validate one SVHN cropped-digits file.

    Args:
        path: ``train_32x32.mat``, ``test_32x32.mat`` or ``extra_32x32.mat``.
        num_classes: 10; label value 10 is mapped to 0 (the digit zero).

    Returns:
        ``(images, labels)``: uint8 ``(N, 3, 32, 32)`` and int64 ``(N,)`` in ``[0, 10)``.

    Raises:
        DataError: missing scipy, missing/empty/unreadable file, missing ``X``/``y`` keys, wrong shape or
            dtype, count mismatch or labels outside 0..10.
    """
    mat = _loadmat(path)
    if "X" not in mat or "y" not in mat:
        keys = sorted(k for k in mat if not k.startswith("__"))
        raise DataError(f"{path}: expected variables 'X' and 'y', found {keys}; {_FIX}")
    x, y = mat["X"], mat["y"]
    if x.dtype != np.uint8 or x.ndim != 4 or x.shape[:3] != (32, 32, 3):
        raise DataError(f"{path}: 'X' must be uint8 (32, 32, 3, N), got {x.dtype} {x.shape}; {_FIX}")
    numeric = np.issubdtype(y.dtype, np.integer) or np.issubdtype(y.dtype, np.floating)
    if y.ndim > 2 or (y.ndim == 2 and 1 not in y.shape) or not numeric:
        raise DataError(f"{path}: 'y' must be a numeric (N, 1) array, got {y.dtype} {y.shape}; {_FIX}")
    flat = y.reshape(-1)
    if np.issubdtype(flat.dtype, np.floating):
        whole = np.isfinite(flat) & (flat == np.round(flat)) if flat.size else np.ones(0, bool)
        if not whole.all():
            bad = int(np.argmin(whole))
            raise DataError(f"{path}: label {float(flat[bad])} at index {bad} is not a whole number 1..10; "
                            f"{_FIX}")
    if flat.size and (flat.min() < 0 or flat.max() > num_classes):
        raise DataError(f"{path}: labels span [{flat.min()}, {flat.max()}], expected 1..10; {_FIX}")
    labels = flat.astype(np.int64)
    if labels.shape[0] != x.shape[3]:
        raise DataError(f"{path}: {x.shape[3]} images but {labels.shape[0]} labels; {_FIX}")
    labels[labels == num_classes] = 0  # SVHN writes the digit 0 as label 10
    images = np.ascontiguousarray(x.transpose(3, 2, 0, 1))  # (H, W, C, N) -> (N, C, H, W)
    return images, labels
