"""Baseline-H (paper S Table 2): layer shapes, parameter count by hand, local map, input checks."""

import pytest
import torch

from robustmi.errors import ModelError
from robustmi.models import BaselineHEncoder, Classifier, create_model


def _conv(cin: int, cout: int) -> int:
    """A 4x4 conv without bias, then BatchNorm (weight + bias)."""
    return cin * cout * 16 + 2 * cout


def _baseline_h_params(in_chans: int, flat: int, num_classes: int, head: str) -> int:
    encoder = _conv(in_chans, 64) + _conv(64, 128) + _conv(128, 256)
    encoder += flat * 1024 + 1024 + 2 * 1024 + 1024 * 64 + 64  # FC(1024) + BN1d + FC(64)
    if head == "mlp":
        return encoder + 64 * 200 + 200 + 2 * 200 + 200 * num_classes + num_classes  # FC(200) BN1d FC(K)
    return encoder + 64 * num_classes + num_classes


@pytest.mark.parametrize(
    "name, in_chans, size, flat, head",
    [("baseline-h", 1, 28, 256 * 3 * 3, "mlp"), ("baseline-h-linear", 3, 32, 256 * 4 * 4, "linear")],
)
def test_parameter_count_matches_hand_computation(name, in_chans, size, flat, head):
    model = create_model(name, in_chans=in_chans, input_size=size)
    count = sum(p.numel() for p in model.parameters())
    assert count == _baseline_h_params(in_chans, flat, 10, head)


def test_mnist_parameter_count_literal():
    # 1024+128 + 131072+256 + 524288+512 + 2360320+2048 + 65600 + 13000+400+2010
    assert sum(p.numel() for p in create_model("baseline-h").parameters()) == 3_100_658


@pytest.mark.parametrize("in_chans, size, spatial", [(1, 28, 3), (3, 32, 4)])
def test_local_map_and_features(in_chans, size, spatial):
    encoder = BaselineHEncoder(in_chans=in_chans, input_size=size)
    x = torch.rand(3, in_chans, size, size)
    assert encoder.forward_local(x).shape == (3, 256, spatial, spatial)
    assert encoder.local_shape == (256, spatial, spatial)
    assert encoder(x).shape == (3, 64) and encoder.feature_dim == 64


def test_layers_follow_table_2():
    encoder = BaselineHEncoder()
    convs = [m for m in encoder.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [(c.in_channels, c.out_channels) for c in convs] == [(1, 64), (64, 128), (128, 256)]
    assert all(c.kernel_size == (4, 4) and c.stride == (2, 2) and c.bias is None for c in convs)
    linears = [m for m in encoder.modules() if isinstance(m, torch.nn.Linear)]
    assert [(fc.in_features, fc.out_features) for fc in linears] == [(2304, 1024), (1024, 64)]


def test_registered_classifiers_compose_encoder_and_head():
    model = create_model("baseline-h", num_classes=7, feature_dim=32)
    assert isinstance(model, Classifier) and isinstance(model.encoder, BaselineHEncoder)
    assert model.num_classes == 7 and model.feature_dim == 32
    assert model.head.kind == "mlp" and create_model("baseline-h-linear").head.kind == "linear"


def test_wrong_input_size_is_a_model_error():
    with pytest.raises(ModelError, match="input_size=32"):
        create_model("baseline-h-encoder")(torch.rand(2, 1, 32, 32))
