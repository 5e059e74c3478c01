"""``load_dataset`` and ``check_datasets``: find, read, validate and cache datasets.

Decoded files are cached in-process as uint8 tensors, keyed by path, size and modification time, because one
run often loads MNIST several times; every call still returns fresh float32 tensors, so callers may modify
them.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from robustmi.data.cifar import read_cifar_split
from robustmi.data.dataset import Dataset, get_dataset_info, list_datasets
from robustmi.data.idx import idx_stem, parse_idx_images, parse_idx_labels, read_idx_bytes, verify_checksum
from robustmi.data.sources import LAYOUTS, locate, user_roots
from robustmi.data.svhn import read_svhn
from robustmi.data.synthetic import SYNTHETIC_SIZES, make_synthetic
from robustmi.errors import DataError

Arrays = tuple[np.ndarray, np.ndarray]  # uint8 images (N, C, H, W), integer labels (N,)
Tensors = tuple[Tensor, Tensor]


def _read_idx_pair(name: str, paths: list[Path]) -> Arrays:
    """Read an IDX images/labels pair, validate it and, where known, check the canonical checksums."""
    image_path, label_path = paths
    info = get_dataset_info(name)
    image_bytes = read_idx_bytes(image_path)
    images = parse_idx_images(image_path, image_bytes, info.image_shape[1:])
    label_bytes = read_idx_bytes(label_path)
    labels = parse_idx_labels(label_path, label_bytes, info.num_classes)
    if images.shape[0] != labels.shape[0]:
        raise DataError(
            f"{image_path} has {images.shape[0]} images but {label_path} has {labels.shape[0]} labels; "
            "use an images file and a labels file from the same release"
        )
    verify_checksum(image_path, image_bytes, name, idx_stem(image_path))
    verify_checksum(label_path, label_bytes, name, idx_stem(label_path))
    return images[:, None], labels  # (N, H, W) -> (N, 1, H, W)


_READERS: dict[str, Callable[[str, list[Path]], Arrays]] = {
    "mnist": _read_idx_pair,
    "fashion-mnist": _read_idx_pair,
    "cifar10": lambda name, paths: read_cifar_split(paths, get_dataset_info(name).num_classes),
    "svhn": lambda name, paths: read_svhn(paths[0], get_dataset_info(name).num_classes),
}


@lru_cache(maxsize=8)
def _read_cached(name: str, files: tuple[str, ...], stamps: tuple[tuple[int, int], ...]) -> Tensors:
    # ``stamps`` (mtime, size) is part of the cache key only: an edited or replaced file is read again.
    del stamps
    images, labels = _READERS[name](name, [Path(f) for f in files])
    # IDX arrays are read-only views of the file bytes: np.require copies those into owned, writable memory.
    images = np.require(images, dtype=np.uint8, requirements=["C", "W"])
    return torch.from_numpy(images), torch.from_numpy(labels.astype(np.int64))


def _read_files(name: str, files: list[Path]) -> tuple[Tensor, Tensor]:
    """Cached uint8 ``(N, C, H, W)`` images and int64 ``(N,)`` labels; callers must not modify them."""
    # Keyed by the real file behind any symlink, so a folder of links to the packaged files shares the cache.
    real = [path.resolve() for path in files]
    stamps = tuple((stat.st_mtime_ns, stat.st_size) for stat in (path.stat() for path in real))
    return _read_cached(name, tuple(str(path) for path in real), stamps)


@lru_cache(maxsize=4)
def _synthetic_cached(name: str, split: str) -> tuple[Tensor, Tensor]:
    return make_synthetic(name, split)


def dataset_splits(name: str) -> tuple[str, ...]:
    """Splits that ``name`` offers (``"train"``, ``"test"``, plus ``"extra"`` for SVHN)."""
    get_dataset_info(name)
    if name in LAYOUTS:
        return tuple(LAYOUTS[name].files)
    return tuple(SYNTHETIC_SIZES)


def load_dataset(name: str, split: str = "train", data_dir: str | Path | None = None) -> Dataset:
    """Load a dataset split from offline files (or generate a synthetic one).

    Args:
        name: A key of :func:`list_datasets`: ``"mnist"``, ``"fashion-mnist"``, ``"cifar10"``, ``"svhn"``,
            ``"synthetic-mnist"``, ``"synthetic-cifar"``.
        split: ``"train"`` or ``"test"`` (SVHN also ``"extra"``).
        data_dir: Folder searched before ``$ROBUSTMI_DATA`` and the built-in offline sources.

    Returns:
        A :class:`Dataset` with fresh tensors: images float32 ``(N, C, H, W)`` in [0, 1], labels int64
        ``(N,)``.

    Raises:
        DataError: unknown name or split, files missing (the message says what to install or where to put
            them), or files that fail validation (format, counts, label range, checksum).

    Example:
        >>> test = load_dataset("mnist", "test")
        >>> test.images.shape, test.labels.dtype
        (torch.Size([10000, 1, 28, 28]), torch.int64)
    """
    info = get_dataset_info(name)
    splits = dataset_splits(name)
    if split not in splits:
        raise DataError(f"unknown split {split!r} for {name}; choose one of: {', '.join(splits)}")
    if name not in LAYOUTS:
        images, labels = _synthetic_cached(name, split)
        return Dataset(name, split, images.clone(), labels.clone(), info.num_classes)
    folder, files = locate(name, split, data_dir)
    raw_images, labels = _read_files(name, files)
    images = raw_images.to(torch.float32).div_(255.0)  # uint8 -> new float32 tensor in [0, 1]
    return Dataset(name, split, images, labels.clone(), info.num_classes, source=str(folder))


def _check_one(name: str, data_dir: str | Path | None) -> dict:
    entry: dict = {"name": name, "available": False, "path": None, "train": None, "test": None, "hint": None}
    if name not in LAYOUTS:
        entry.update(available=True, train=SYNTHETIC_SIZES["train"], test=SYNTHETIC_SIZES["test"])
        return entry
    problems = []
    for split in ("train", "test"):
        try:
            folder, files = locate(name, split, data_dir)
            entry["path"] = entry["path"] or str(folder)
            entry[split] = int(_read_files(name, files)[1].shape[0])
        except DataError as error:
            problems.append(str(error))
    entry["available"] = not problems
    entry["hint"] = problems[0] if problems else None
    return entry


def check_datasets(data_dir: str | Path | None = None) -> list[dict]:
    """Report which datasets load offline, from where, with how many samples, and how to get missing ones.

    Every file-backed dataset is read and validated in full (results are cached for later loads).

    Args:
        data_dir: Folder searched first, as in :func:`load_dataset`.

    Returns:
        One dict per dataset of :func:`list_datasets`, with keys ``name``, ``available`` (both splits load),
        ``path`` (folder found, or ``None``), ``train`` / ``test`` (sample counts or ``None``) and ``hint``
        (``None`` when available, else the error: what is wrong and how to fix it).

    Raises:
        DataError: ``data_dir`` or ``$ROBUSTMI_DATA`` names a folder that does not exist.
    """
    user_roots(data_dir)  # a mistyped folder is one error, not a "missing" line per dataset
    return [_check_one(name, data_dir) for name in list_datasets()]
