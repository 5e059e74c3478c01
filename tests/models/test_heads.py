"""Heads (linear, MLP 200 + dropout 0.1 + BN) and the Classifier composition."""

import pytest
import torch
from torch import nn

from robustmi.errors import ModelError
from robustmi.models import Classifier, create_head, create_model


def test_linear_head_is_one_linear_layer():
    head = create_head("linear", 64, 10)
    assert [type(m) for m in head] == [nn.Linear]
    assert head[0].in_features == 64 and head[0].out_features == 10


def test_mlp_head_layout():
    head = create_head("mlp", 64, 10)
    assert [type(m) for m in head] == [nn.Linear, nn.Dropout, nn.BatchNorm1d, nn.ReLU, nn.Linear]
    assert head[0].out_features == 200 and head[1].p == 0.1 and head[4].out_features == 10
    assert head(torch.randn(5, 64)).shape == (5, 10)


def test_unknown_head_lists_kinds():
    with pytest.raises(ModelError, match="linear, mlp"):
        create_head("transformer", 64, 10)


def test_classifier_is_head_of_encoder():
    encoder = create_model("baseline-h-encoder")
    head = create_head("mlp", encoder.feature_dim, 10)
    model = Classifier(encoder, head).eval()
    x = torch.rand(4, 1, 28, 28)
    torch.testing.assert_close(model(x), head(encoder(x)))
    torch.testing.assert_close(model.forward_features(x), encoder(x))
    torch.testing.assert_close(model.forward_head(encoder(x)), model(x))
    assert model.num_classes == 10 and model.feature_dim == 64
    assert model.forward_local(x).shape == (4, 256, 3, 3)


def test_classifier_accepts_plain_modules():
    encoder = nn.Sequential(nn.Flatten(), nn.Linear(784, 16))
    model = Classifier(encoder, nn.Sequential(nn.ReLU(), nn.Linear(16, 3)))
    assert model.num_classes == 3 and model.feature_dim is None
    assert model(torch.rand(2, 1, 28, 28)).shape == (2, 3)
    with pytest.raises(ModelError, match="forward_local"):
        model.forward_local(torch.rand(2, 1, 28, 28))
