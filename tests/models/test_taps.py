"""Layer taps: names, hooked activations with gradients, errors, LayerTap as an encoder."""

import pytest
import torch
from torch import nn

from robustmi.errors import ModelError
from robustmi.models import LayerTap, create_model, extract_layer, list_layers


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return create_model("baseline-h").eval()


def test_list_layers_has_specials_and_named_modules(model):
    names = list_layers(model)
    assert names[:2] == ["features", "logits"]
    assert "encoder.convs.1" in names and "head.0" in names
    assert "logits" not in list_layers(create_model("baseline-h-encoder"))


def test_extract_conv_layer_shape_and_value(model):
    x = torch.rand(3, 1, 28, 28)
    out = extract_layer(model, x, "encoder.convs.1")
    assert out.shape == (3, 128, 7, 7)
    expected = model.encoder.convs[1](model.encoder.convs[0](model.encoder.normalize(x)))
    torch.testing.assert_close(out, expected)


def test_special_names(model):
    x = torch.rand(2, 1, 28, 28)
    torch.testing.assert_close(extract_layer(model, x, "features"), model.forward_features(x))
    torch.testing.assert_close(extract_layer(model, x, "logits"), model(x))


def test_gradient_flows_through_a_tap(model):
    x = torch.rand(2, 1, 28, 28, requires_grad=True)
    extract_layer(model, x, "encoder.convs.0.2").sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_bn_tap_is_not_overwritten_by_a_following_relu(model):
    out = extract_layer(model, torch.rand(2, 1, 28, 28), "encoder.convs.0.1")  # BN output, before ReLU
    assert (out < 0).any()


def test_unknown_layer_lists_available(model):
    with pytest.raises(ModelError, match="available: features, logits, encoder, ") as info:
        extract_layer(model, torch.rand(2, 1, 28, 28), "encoder.conv9")
    assert "head.4" in str(info.value) and "\n" not in str(info.value)


def test_long_layer_lists_are_abbreviated():
    deep = nn.Sequential(*[nn.Identity() for _ in range(50)])
    with pytest.raises(ModelError, match=r"available: 0, 1, .*, 29, \.\.\. \(20 more; see list_layers"):
        extract_layer(deep, torch.rand(1, 1, 2, 2), "50")


def test_layer_run_twice_is_an_error():
    act = nn.ReLU()
    twice = nn.Sequential(nn.Flatten(), act, act)
    with pytest.raises(ModelError, match="ran 2 times"):
        extract_layer(twice, torch.rand(2, 1, 4, 4), "1")


def test_layer_tap_is_an_encoder_with_gradients(model):
    tap = LayerTap(model, "encoder.convs.2")
    assert tap.feature_dim == 256 * 3 * 3 and not any(m.training for m in model.modules())
    x = torch.rand(2, 1, 28, 28, requires_grad=True)
    z = tap(x)
    assert z.shape == (2, 2304)
    torch.testing.assert_close(tap.forward_features(x), z)
    z.pow(2).sum().backward()
    assert x.grad.abs().sum() > 0
    assert LayerTap(model, "encoder.convs.2", flatten=False)(x).shape == (2, 256, 3, 3)


def test_layer_tap_shape_probe_keeps_modes_and_running_stats():
    model = create_model("baseline-h").train()
    model.encoder.eval()
    before = model.encoder.convs[0][1].running_mean.clone()
    head_before = model.head[2].running_mean.clone()
    LayerTap(model, "head.2")
    assert model.training and model.head.training and not model.encoder.training
    torch.testing.assert_close(model.encoder.convs[0][1].running_mean, before)
    torch.testing.assert_close(model.head[2].running_mean, head_before)


def test_layer_tap_rejects_unknown_layer(model):
    with pytest.raises(ModelError, match="no layer 'nope'"):
        LayerTap(model, "nope")
