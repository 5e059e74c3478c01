"""The in-memory dataset type and the registry of dataset facts (shape, classes, normalisation).

Every loader returns a :class:`Dataset`: float32 images in [0, 1] of shape ``(N, C, H, W)`` and int64
labels of shape ``(N,)``. :func:`get_dataset_info` gives the static facts models need (input shape, number
of classes and the per-channel mean/std for their ``Normalize`` layer) without touching any file.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import torch
from torch import Tensor

from robustmi.errors import DataError


@dataclass(frozen=True)
class DatasetInfo:
    """Static facts about a registered dataset.

    Attributes:
        name: Registry key, exactly as users type it (``"fashion-mnist"``).
        image_shape: ``(C, H, W)`` of one image.
        num_classes: Number of label values; labels lie in ``[0, num_classes)``.
        mean: Per-channel mean of the training images in [0, 1] units, length ``C``.
        std: Per-channel standard deviation of the training images, length ``C``.
    """

    name: str
    image_shape: tuple[int, int, int]
    num_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]


_INFOS: dict[str, DatasetInfo] = {
    info.name: info
    for info in (
        DatasetInfo("mnist", (1, 28, 28), 10, (0.1307,), (0.3081,)),
        DatasetInfo("fashion-mnist", (1, 28, 28), 10, (0.2860,), (0.3530,)),
        DatasetInfo("cifar10", (3, 32, 32), 10, (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
        DatasetInfo("svhn", (3, 32, 32), 10, (0.4377, 0.4438, 0.4728), (0.1980, 0.2010, 0.1970)),
        DatasetInfo("synthetic-mnist", (1, 28, 28), 10, (0.5,), (0.25,)),
        DatasetInfo("synthetic-cifar", (3, 32, 32), 10, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)),
    )
}


def list_datasets() -> list[str]:
    """Return the registry keys of every dataset, file-backed ones first, then the synthetic ones."""
    return list(_INFOS)


def get_dataset_info(name: str) -> DatasetInfo:
    """Return the static facts of dataset ``name``.

    Args:
        name: A key from :func:`list_datasets`.

    Returns:
        The dataset's :class:`DatasetInfo`.

    Raises:
        DataError: ``name`` is not registered; the message lists the valid names.

    Example:
        >>> get_dataset_info("mnist").image_shape
        (1, 28, 28)
    """
    try:
        return _INFOS[name]
    except (KeyError, TypeError):
        valid = ", ".join(list_datasets())
        raise DataError(f"unknown dataset {name!r}; choose one of: {valid}") from None


@dataclass
class Dataset:
    """An in-memory labelled image set.

    The tensors belong to this object: loaders hand out fresh tensors on every call, so mutating one dataset
    never affects another load of the same files.

    Attributes:
        name: Registry key of the dataset.
        split: ``"train"`` or ``"test"`` (``"extra"`` for SVHN).
        images: ``(N, C, H, W)`` float32 in [0, 1].
        labels: ``(N,)`` int64 in ``[0, num_classes)``.
        num_classes: Number of classes.
        source: Folder the files were read from, or ``None`` for synthetic sets.
    """

    name: str
    split: str
    images: Tensor
    labels: Tensor
    num_classes: int
    source: str | None = None

    def __post_init__(self) -> None:
        if self.images.dim() != 4 or self.images.dtype != torch.float32:
            raise ValueError(
                f"Dataset images must be a float32 (N, C, H, W) tensor, got {self.images.dtype} "
                f"of shape {tuple(self.images.shape)}"
            )
        if self.labels.dim() != 1 or self.labels.dtype != torch.int64:
            raise ValueError(
                f"Dataset labels must be an int64 (N,) tensor, got {self.labels.dtype} "
                f"of shape {tuple(self.labels.shape)}"
            )
        if self.labels.shape[0] != self.images.shape[0]:
            raise ValueError(f"Dataset has {self.images.shape[0]} images but {self.labels.shape[0]} labels")

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """``(C, H, W)`` of one image."""
        c, h, w = self.images.shape[1:]
        return (int(c), int(h), int(w))

    def subset(self, n_or_indices: int | Sequence[int] | Tensor) -> Dataset:
        """Return a new dataset with the first ``n`` samples or the samples at the given indices.

        Args:
            n_or_indices: An ``int`` n (the first n samples; ``0 <= n <= len(self)``), or a list / 1-D integer
                tensor of indices, or a boolean mask of length ``len(self)``.

        Returns:
            A :class:`Dataset` with copied tensors (never views of this one) and the same name, split and
            num_classes.

        Raises:
            ValueError: ``n`` is negative or larger than the dataset, or an index is out of range.
        """
        if isinstance(n_or_indices, int) and not isinstance(n_or_indices, bool):
            n = n_or_indices
            if not 0 <= n <= len(self):
                raise ValueError(f"subset size {n} is outside [0, {len(self)}] for {self.name}/{self.split}")
            images, labels = self.images[:n].clone(), self.labels[:n].clone()
        else:
            index = torch.as_tensor(n_or_indices)
            if index.dtype != torch.bool:
                index = index.to(torch.int64).reshape(-1)
                if index.numel() and (index.min() < -len(self) or index.max() >= len(self)):
                    raise ValueError(f"subset index out of range for {len(self)} samples")
            index = index.to(self.labels.device)
            images, labels = self.images[index], self.labels[index]  # advanced indexing copies
        return replace(self, images=images, labels=labels)
