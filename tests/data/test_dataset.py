"""Registry (list_datasets / get_dataset_info) and the Dataset container."""

import pytest
import torch

from robustmi.data import Dataset, DatasetInfo, get_dataset_info, list_datasets, load_dataset
from robustmi.errors import DataError


def test_registry_names_and_facts():
    assert list_datasets() == [
        "mnist",
        "fashion-mnist",
        "cifar10",
        "svhn",
        "synthetic-mnist",
        "synthetic-cifar",
    ]
    assert get_dataset_info("mnist") == DatasetInfo("mnist", (1, 28, 28), 10, (0.1307,), (0.3081,))
    assert get_dataset_info("cifar10").std == (0.2470, 0.2435, 0.2616)
    assert get_dataset_info("svhn").mean == (0.4377, 0.4438, 0.4728)


@pytest.mark.parametrize("name", list_datasets())
def test_every_registered_dataset_has_consistent_facts(name):
    info = get_dataset_info(name)
    channels = info.image_shape[0]
    assert info.name == name and info.num_classes == 10
    assert len(info.mean) == len(info.std) == channels
    assert all(0 < m < 1 for m in info.mean) and all(0 < s < 1 for s in info.std)


def test_unknown_name_lists_valid_ones_in_one_line():
    with pytest.raises(DataError) as info:
        get_dataset_info("cifar100")
    assert str(info.value) == (
        "unknown dataset 'cifar100'; choose one of: mnist, fashion-mnist, cifar10, svhn, synthetic-mnist, "
        "synthetic-cifar"
    )


def _toy(n: int = 6) -> Dataset:
    images = torch.arange(n, dtype=torch.float32).reshape(n, 1, 1, 1).expand(n, 1, 2, 2).contiguous()
    return Dataset("toy", "train", images, torch.arange(n), num_classes=10)


def test_subset_first_n_indices_and_mask():
    data = _toy()
    assert data.subset(2).labels.tolist() == [0, 1]
    assert data.subset([5, 0, 5]).labels.tolist() == [5, 0, 5]
    assert data.subset(torch.tensor([3, 1])).images[:, 0, 0, 0].tolist() == [3.0, 1.0]
    mask = data.labels % 2 == 0
    picked = data.subset(mask)
    assert picked.labels.tolist() == [0, 2, 4] and picked.name == "toy" and picked.num_classes == 10
    assert data.subset(0).image_shape == (1, 2, 2) and len(data.subset(0)) == 0


def test_subset_copies_and_validates():
    data = _toy()
    part = data.subset(3)
    part.images.zero_()
    assert data.images[1, 0, 0, 0].item() == 1.0
    with pytest.raises(ValueError, match="outside"):
        data.subset(7)
    with pytest.raises(ValueError, match="out of range"):
        data.subset([6])


def test_dataset_rejects_wrong_tensors():
    with pytest.raises(ValueError, match="float32"):
        Dataset(
            "x", "train", torch.zeros(2, 1, 2, 2, dtype=torch.uint8), torch.zeros(2, dtype=torch.int64), 10
        )
    with pytest.raises(ValueError, match="int64"):
        Dataset("x", "train", torch.zeros(2, 1, 2, 2), torch.zeros(2, dtype=torch.int32), 10)
    with pytest.raises(ValueError, match="2 images but 3 labels"):
        Dataset("x", "train", torch.zeros(2, 1, 2, 2), torch.zeros(3, dtype=torch.int64), 10)


def test_loaded_dataset_matches_its_info():
    data = load_dataset("synthetic-cifar", "test")
    assert data.image_shape == get_dataset_info("synthetic-cifar").image_shape
