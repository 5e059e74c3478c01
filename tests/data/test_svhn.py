"""SVHN cropped-digit .mat files: axis order, label 10 -> 0, and malformed files."""

import sys

import numpy as np
import pytest
import torch

from robustmi.data import load_dataset
from robustmi.errors import DataError

from .files import svhn_arrays, write_svhn

pytest.importorskip("scipy")


def _error(tmp_path, split: str = "train") -> str:
    with pytest.raises(DataError) as info:
        load_dataset("svhn", split, data_dir=tmp_path)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_loads_with_channels_first_and_zero_label(tmp_path):
    x, y = svhn_arrays(12)
    write_svhn(tmp_path / "svhn", "train", x, y)
    data = load_dataset("svhn", "train", data_dir=tmp_path)
    assert data.images.shape == (12, 3, 32, 32) and data.images.dtype == torch.float32
    assert data.labels.tolist() == [1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1, 2]  # y = 1..10, 10 is the digit 0
    for i, c, row, col in [(0, 0, 0, 0), (3, 1, 4, 9), (11, 2, 31, 0)]:
        assert data.images[i, c, row, col].item() == pytest.approx(x[row, col, c, i] / 255.0)


def test_extra_split_and_flat_label_vector(tmp_path):
    x, y = svhn_arrays(3)
    write_svhn(tmp_path, "extra", x, y.reshape(-1).astype(np.float64))  # files directly in DIR
    assert load_dataset("svhn", "extra", data_dir=tmp_path).labels.tolist() == [1, 2, 3]


@pytest.mark.parametrize(
    ("arrays", "expected"),
    [
        (
            {"images": np.zeros((32, 32, 3, 2), np.uint8), "labels": np.ones((2, 1))},
            "expected variables 'X' and 'y'",
        ),
        ({"X": np.zeros((28, 28, 1, 2), np.uint8), "y": np.ones((2, 1))}, "'X' must be uint8 (32, 32, 3, N)"),
        ({"X": np.zeros((32, 32, 3, 2), np.float32), "y": np.ones((2, 1))}, "got float32"),
        ({"X": np.zeros((32, 32, 3, 2), np.uint8), "y": np.ones((3, 1))}, "2 images but 3 labels"),
        (
            {"X": np.zeros((32, 32, 3, 2), np.uint8), "y": np.array([[1], [11]])},
            "labels span [1, 11], expected 1..10",
        ),
        (
            {"X": np.zeros((32, 32, 3, 2), np.uint8), "y": np.ones((2, 2))},
            "'y' must be a numeric (N, 1) array",
        ),
    ],
)
def test_malformed_contents(tmp_path, arrays, expected):
    import scipy.io

    (tmp_path / "svhn").mkdir()
    path = tmp_path / "svhn" / "train_32x32.mat"
    scipy.io.savemat(path, arrays)
    message = _error(tmp_path)
    assert expected in message and str(path) in message


def test_unreadable_files_and_missing_scipy(tmp_path, monkeypatch):
    folder = tmp_path / "svhn"
    folder.mkdir()
    path = folder / "test_32x32.mat"
    path.write_bytes(b"")
    assert "empty file (0 bytes)" in _error(tmp_path, "test")
    path.write_bytes(b"MATLAB 5.0 MAT-file" + bytes(200))
    assert "not a readable .mat file" in _error(tmp_path, "test")
    x, y = svhn_arrays(2)
    write_svhn(folder, "test", x, y)
    monkeypatch.setitem(sys.modules, "scipy.io", None)  # import scipy.io now raises ImportError
    assert "needs scipy; install it with `pip install scipy`" in _error(tmp_path, "test")
