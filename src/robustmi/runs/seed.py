"""Seeding and RNG state capture for reproducible runs and exact resume.

Library functions never reseed global generators (they take a ``seed`` or ``torch.Generator``); only a
run's entry point calls :func:`seed_everything`. :func:`get_rng_state` returns every global RNG state as
tensors and plain Python values, so it can be stored in a checkpoint that loads with
``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import os
import random
from typing import Any

import numpy as np
import torch

from robustmi.errors import CheckpointError, ConfigError

_MAX_SEED = 2**32 - 1  # numpy's legacy seeding accepts 0 .. 2**32 - 1
_RNG_KEYS = ("python", "numpy", "torch")


def seed_everything(seed: int, deterministic: bool = False) -> None:
    """Seed Python's ``random``, NumPy's global generator and torch (CPU and every CUDA device).

    Args:
        seed: integer in [0, 2**32 - 1].
        deterministic: also ask torch for deterministic kernels (``use_deterministic_algorithms`` with
            ``warn_only=True``, so an op without a deterministic version warns instead of failing), turn
            off cuDNN autotuning and set ``CUBLAS_WORKSPACE_CONFIG`` (needed by deterministic cuBLAS)
            unless already set. Slower on GPU; on CPU most kernels are deterministic already. ``False``
            leaves these flags untouched.

    Raises:
        ConfigError: ``seed`` is not an integer in range.

    Example:
        >>> seed_everything(0); first = torch.rand(2)
        >>> seed_everything(0); torch.equal(first, torch.rand(2))
        True
    """
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= _MAX_SEED:
        raise ConfigError(f"seed must be an integer in [0, {_MAX_SEED}], got {seed!r}; pass e.g. seed=0")
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False


def get_rng_state() -> dict[str, Any]:
    """Capture the Python, NumPy, torch CPU and (when available) CUDA global RNG states.

    Returns:
        ``{"python": {...}, "numpy": {...}, "torch": ByteTensor, "cuda": [ByteTensor, ...]}`` holding only
        tensors, ints, floats, strings, lists and ``None`` -- safe for ``torch.load(weights_only=True)``.
        ``"cuda"`` is present only when CUDA is available.
    """
    version, internal, gauss_next = random.getstate()
    name, keys, pos, has_gauss, cached_gaussian = np.random.get_state(legacy=True)
    state: dict[str, Any] = {
        "python": {"version": version, "state": list(internal), "gauss_next": gauss_next},
        "numpy": {
            "name": str(name),
            "keys": torch.from_numpy(keys.astype(np.int64)),  # (624,) uint32 stored as int64: lossless
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached_gaussian),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore the states captured by :func:`get_rng_state` (e.g. from a resumed checkpoint).

    The CUDA states are restored only when CUDA is available and the number of devices matches; otherwise the
    CUDA generators keep their current state (a CPU-saved checkpoint resumed on GPU, or vice versa).

    Raises:
        CheckpointError: ``state`` lacks a key or holds malformed values.
    """
    missing = [key for key in _RNG_KEYS if key not in state]
    if missing:
        raise CheckpointError(f"RNG state lacks {', '.join(missing)}; the checkpoint was not written with "
                              f"get_rng_state(); start the run without --resume")
    try:
        py = state["python"]
        random.setstate((int(py["version"]), tuple(int(v) for v in py["state"]), py["gauss_next"]))
        npy = state["numpy"]
        keys = torch.as_tensor(npy["keys"]).numpy().astype(np.uint32)
        np.random.set_state((npy["name"], keys, int(npy["pos"]), int(npy["has_gauss"]),
                             float(npy["cached_gaussian"])))
        torch.set_rng_state(torch.as_tensor(state["torch"], dtype=torch.uint8))
    except (KeyError, TypeError, ValueError, RuntimeError) as error:
        raise CheckpointError(f"malformed RNG state in checkpoint ({error}); "
                              f"start the run without --resume") from None
    cuda = state.get("cuda")
    if cuda is not None and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)
