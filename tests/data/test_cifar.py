"""CIFAR-10 pickle batches: layout, pixel order, safe unpickling and malformed batches."""

import os
import pickle
import re
from collections import OrderedDict

import numpy as np
import pytest
import torch

from robustmi.data import load_dataset
from robustmi.errors import DataError

from .files import cifar_batch, py2_pickle, write_cifar


def _error(tmp_path, split: str = "train") -> str:
    with pytest.raises(DataError) as info:
        load_dataset("cifar10", split, data_dir=tmp_path)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_python2_batches_load_in_order_with_plane_layout(tmp_path):
    content = write_cifar(tmp_path, per_batch=4, test=3)
    train = load_dataset("cifar10", "train", data_dir=tmp_path)
    assert train.images.shape == (20, 3, 32, 32) and train.images.dtype == torch.float32
    assert train.num_classes == 10 and train.source == str(tmp_path / "cifar-10-batches-py")
    expected_labels = sum((content[f"data_batch_{i}"][1] for i in range(1, 6)), [])
    assert train.labels.tolist() == expected_labels
    # Reference: row r of a batch holds 1024 red, then 1024 green, then 1024 blue values, each row-major.
    data = content["data_batch_2"][0]
    sample = 4 + 1  # second image of data_batch_2
    for channel, y, x in [(0, 0, 0), (1, 5, 7), (2, 31, 30), (2, 31, 31)]:
        expected = data[1, channel * 1024 + y * 32 + x] / 255.0
        assert train.images[sample, channel, y, x].item() == pytest.approx(expected)
    test = load_dataset("cifar10", "test", data_dir=tmp_path)
    assert len(test) == 3 and test.labels.tolist() == content["test_batch"][1]


def test_python3_batches_with_bytes_or_str_keys_load(tmp_path):
    folder = tmp_path / "cifar10"  # DIR/cifar10/ is an accepted layout too
    folder.mkdir()
    data, labels = cifar_batch(6, seed=0)
    for i in range(1, 6):
        (folder / f"data_batch_{i}").write_bytes(pickle.dumps({b"data": data, b"labels": labels}, protocol=4))
    (folder / "test_batch").write_bytes(pickle.dumps({"data": data, "labels": labels}, protocol=5))
    test = load_dataset("cifar10", "test", data_dir=tmp_path)
    np.testing.assert_array_equal((test.images * 255).round().to(torch.uint8).reshape(6, -1).numpy(), data)
    assert len(load_dataset("cifar10", "train", data_dir=tmp_path)) == 30


class _RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (str(self.marker),))


@pytest.mark.parametrize(
    ("batch", "expected"),
    [
        ({b"data": OrderedDict(), b"labels": []}, "refused global collections.OrderedDict"),
        ({b"labels": [1]}, "lacks key(s) ['data']"),
        (
            {b"data": np.zeros((2, 3072), np.float32), b"labels": [0, 1]},
            "'data' must be uint8 (N, 3072), got float32",
        ),
        ({b"data": np.zeros((2, 1024), np.uint8), b"labels": [0, 1]}, "got uint8 (2, 1024)"),
        ({b"data": [[0] * 3072], b"labels": [0]}, "got list None"),
        ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0]}, "2 images but 1 labels"),
        (
            {b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 10]},
            "labels span [0, 10], expected [0, 10)",
        ),
        ({b"data": np.zeros((1, 3072), np.uint8), b"labels": ["cat"]}, "'labels' is not a list of integers"),
        ([1, 2], "pickle holds a list, expected a dict"),
    ],
)
def test_malformed_batch(tmp_path, batch, expected):
    write_cifar(tmp_path)
    path = tmp_path / "cifar-10-batches-py" / "test_batch"
    path.write_bytes(pickle.dumps(batch, protocol=4))
    message = _error(tmp_path, "test")
    assert expected in message and str(path) in message


def test_pickle_that_would_run_code_is_refused_without_running_it(tmp_path):
    write_cifar(tmp_path)
    marker = tmp_path / "pwned"
    (tmp_path / "cifar-10-batches-py" / "test_batch").write_bytes(pickle.dumps({b"data": _RunsCode(marker)}))
    assert re.search(r"refused global (posix|os)\.mkdir", _error(tmp_path, "test"))
    assert not marker.exists()


def test_truncated_empty_and_missing_batches(tmp_path):
    write_cifar(tmp_path)
    folder = tmp_path / "cifar-10-batches-py"
    whole = py2_pickle({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 1]})
    (folder / "test_batch").write_bytes(whole[: len(whole) // 2])
    assert "not a valid CIFAR-10 pickle batch" in _error(tmp_path, "test")
    (folder / "test_batch").write_bytes(b"")
    assert "empty file (0 bytes)" in _error(tmp_path, "test")
    (folder / "data_batch_3").unlink()
    message = _error(tmp_path, "train")
    assert "data_batch_3 missing" in message and str(folder) in message
