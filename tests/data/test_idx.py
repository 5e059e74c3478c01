"""IDX reading: known-answer parsing, checksums, and every malformed input giving a one-line DataError."""

import gzip
import re
from pathlib import Path

import numpy as np
import pytest

from robustmi.data import load_dataset
from robustmi.data.idx import idx_stem, parse_idx_images, parse_idx_labels, read_idx_bytes
from robustmi.errors import DataError

from .files import FASHION_DIR, MNIST_DIR, idx_bytes, link_real_idx, write_idx_pair


def _small(n: int = 5, hw: int = 28) -> tuple[np.ndarray, np.ndarray]:
    images = (np.arange(n * hw * hw) % 256).astype(np.uint8).reshape(n, hw, hw)
    return images, (np.arange(n) % 10).astype(np.uint8)


def _load_error(data_dir: Path, name: str = "mnist") -> str:
    with pytest.raises(DataError) as info:
        load_dataset(name, "test", data_dir=data_dir)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_parse_known_answer(tmp_path):
    images, labels = _small()
    image_path, label_path = write_idx_pair(tmp_path, images, labels)
    parsed_images = parse_idx_images(image_path, read_idx_bytes(image_path), (28, 28))
    parsed_labels = parse_idx_labels(label_path, read_idx_bytes(label_path), 10)
    np.testing.assert_array_equal(parsed_images, images)
    np.testing.assert_array_equal(parsed_labels, labels)


def test_gzip_is_detected_by_content_not_name(tmp_path):
    content = idx_bytes(2049, (3,), bytes([1, 2, 3]))
    raw = tmp_path / "labels-raw"
    raw.write_bytes(content)
    gz_without_suffix = tmp_path / "labels-gz"
    gz_without_suffix.write_bytes(gzip.compress(content))
    assert read_idx_bytes(raw) == read_idx_bytes(gz_without_suffix) == content


def test_idx_stem_normalises_mirror_spellings():
    assert idx_stem(Path("train-images.idx3-ubyte.gz")) == "train-images-idx3-ubyte"
    assert idx_stem(Path("t10k-labels-idx1-ubyte")) == "t10k-labels-idx1-ubyte"


def test_raw_and_mirror_named_real_files_load_like_the_package(tmp_path):
    folder = tmp_path / "mnist"
    folder.mkdir()
    # Uncompressed images under LeCun's name, gzipped labels under the dotted mirror name.
    (folder / "t10k-images-idx3-ubyte").write_bytes(
        gzip.decompress((MNIST_DIR / "t10k-images-idx3-ubyte.gz").read_bytes())
    )
    (folder / "t10k-labels.idx1-ubyte.gz").symlink_to(MNIST_DIR / "t10k-labels-idx1-ubyte.gz")
    mine = load_dataset("mnist", "test", data_dir=tmp_path)
    package = load_dataset("mnist", "test")
    assert mine.source == str(folder)
    assert mine.images.equal(package.images) and mine.labels.equal(package.labels)


@pytest.mark.parametrize(
    ("corrupt", "expected"),
    [
        ("truncated", r"truncated, the header promises 3936 bytes .* has 3000"),
        ("trailing", r"7 unexpected trailing bytes"),
        ("wrong_magic", r"magic number is 2049, expected 2051 for images"),
        ("empty", r"empty file \(0 bytes\)"),
        ("bad_gzip", r"corrupt gzip data"),
        ("cut_gzip", r"corrupt gzip data"),
        ("not_gzip", r"named \.gz but is not gzip data"),
        ("short_header", r"truncated IDX header"),
        ("wrong_dims", r"images are 32x32, expected 28x28"),
    ],
)
def test_malformed_images_file(tmp_path, corrupt, expected):
    images, labels = _small()
    image_path, _ = write_idx_pair(tmp_path / "mnist", images, labels)
    content = idx_bytes(2051, images.shape, images.tobytes())
    broken = {
        "truncated": gzip.compress(content[:3000]),
        "trailing": gzip.compress(content + bytes(7)),
        "wrong_magic": gzip.compress(idx_bytes(2049, images.shape, images.tobytes())),
        "empty": b"",
        "bad_gzip": b"\x1f\x8b" + bytes(range(40)),
        "cut_gzip": gzip.compress(content)[:-20],
        "not_gzip": content,
        "short_header": gzip.compress(content[:9]),
        "wrong_dims": gzip.compress(idx_bytes(2051, (5, 32, 32), bytes(5 * 32 * 32))),
    }[corrupt]
    image_path.write_bytes(broken)
    message = _load_error(tmp_path)
    assert str(image_path) in message
    assert re.search(expected, message), message


def test_labels_file_with_images_magic(tmp_path):
    images, labels = _small()
    _, label_path = write_idx_pair(tmp_path / "mnist", images, labels)
    label_path.write_bytes(gzip.compress(idx_bytes(2051, (5,), labels.tobytes())))
    assert "magic number is 2051, expected 2049 for labels" in _load_error(tmp_path)


def test_label_out_of_range(tmp_path):
    images, labels = _small()
    labels[3] = 10
    write_idx_pair(tmp_path / "mnist", images, labels)
    assert "label 10 at index 3 is outside [0, 10)" in _load_error(tmp_path)


def test_image_label_count_mismatch(tmp_path):
    images, labels = _small()
    write_idx_pair(tmp_path / "mnist", images, labels[:4])
    message = _load_error(tmp_path)
    assert "has 5 images but" in message and "has 4 labels" in message


def test_well_formed_but_not_canonical_mnist(tmp_path):
    write_idx_pair(tmp_path / "mnist", *_small())
    message = _load_error(tmp_path)
    assert "not the canonical mnist file t10k-images-idx3-ubyte" in message
    assert "sha256" in message


def test_non_canonical_fashion_mnist_is_refused_too(tmp_path):
    write_idx_pair(tmp_path / "fashion-mnist", *_small())
    assert "not the canonical fashion-mnist file" in _load_error(tmp_path, "fashion-mnist")


@pytest.mark.skipif(not FASHION_DIR.is_dir(), reason="Debian dataset-fashion-mnist not installed")
def test_fashion_files_passed_off_as_mnist_are_named(tmp_path):
    link_real_idx(FASHION_DIR, tmp_path / "mnist")
    assert "it is fashion-mnist's t10k-images-idx3-ubyte" in _load_error(tmp_path)
