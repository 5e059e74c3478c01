"""Synthetic sets: shapes, determinism, balance, and learnability by a small model."""

import pytest
import torch

from robustmi.data import get_dataset_info, load_dataset


@pytest.mark.parametrize("name", ["synthetic-mnist", "synthetic-cifar"])
def test_shapes_range_balance_and_determinism(name):
    info = get_dataset_info(name)
    train, test = load_dataset(name, "train"), load_dataset(name, "test")
    assert train.images.shape == (5000, *info.image_shape) and test.images.shape == (1000, *info.image_shape)
    assert train.source is None and train.num_classes == 10
    for data in (train, test):
        assert 0.0 <= data.images.min() and data.images.max() <= 1.0
        assert torch.bincount(data.labels).tolist() == [len(data) // 10] * 10
    again = load_dataset(name, "train")
    assert again.images.equal(train.images) and again.labels.equal(train.labels)
    assert again.images.data_ptr() != train.images.data_ptr()  # fresh tensors per call
    assert not test.images[:100].equal(train.images[:100])


def test_classes_are_learnable_by_a_linear_model():
    # Plain gradient descent on softmax regression (torch.optim would import torch._dynamo: ~4 s).
    train, test = (
        load_dataset("synthetic-mnist", "train").subset(1000),
        load_dataset("synthetic-mnist", "test"),
    )
    x_train = train.images.flatten(1)  # (N, 1, 28, 28) -> (N, 784)
    weight = torch.zeros(28 * 28, 10, requires_grad=True)
    bias = torch.zeros(10, requires_grad=True)
    for _ in range(30):
        loss = torch.nn.functional.cross_entropy(x_train @ weight + bias, train.labels)
        grad_weight, grad_bias = torch.autograd.grad(loss, (weight, bias))
        with torch.no_grad():
            weight -= grad_weight
            bias -= grad_bias
    with torch.no_grad():
        predictions = (test.images.flatten(1) @ weight + bias).argmax(1)
    assert (predictions == test.labels).float().mean().item() > 0.9
