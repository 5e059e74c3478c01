"""Contract tests over every registered model: shapes, interface identities, gradients, save/load."""

import pytest
import torch

from robustmi.errors import ModelError
from robustmi.models import create_model, list_models, load_model, save_model

# Narrow CIFAR nets keep the suite fast; full widths are checked by construction in test_cifar_nets.py.
SMALL = {"resnet18": {"width": 0.125}, "resnet50": {"width": 0.125}, "vgg16": {"width": 0.125},
         "densenet121": {"width": 0.125}}  # fmt: skip
SHAPES = [(1, 28), (3, 32)]


def _build(name: str, chans: int, size: int, **extra):
    torch.manual_seed(0)
    return create_model(name, in_chans=chans, input_size=size, **SMALL.get(name, {}), **extra)


@pytest.mark.parametrize("chans, size", SHAPES)
@pytest.mark.parametrize("name", list_models())
def test_forward_shapes_and_identities(name, chans, size):
    try:
        model = _build(name, chans, size, num_classes=7)
    except ModelError:  # encoders take no num_classes
        model = _build(name, chans, size)
    model.eval()  # eval: dropout off, so repeated passes agree
    x = torch.rand(3, chans, size, size)
    z = model.forward_features(x)
    assert z.shape == (3, model.feature_dim)
    out = model(x)
    if hasattr(model, "forward_head"):
        assert out.shape == (3, model.num_classes) == (3, 7)
        torch.testing.assert_close(out, model.forward_head(z))
        torch.testing.assert_close(model.forward_head(model.encoder(x)), out)
    else:
        torch.testing.assert_close(out, z)
    local = model.forward_local(x)
    assert local.dim() == 4 and local.shape[0] == 3


@pytest.mark.parametrize("name", list_models())
def test_gradient_reaches_the_input(name):
    model = _build(name, 1, 28).train()
    x = torch.rand(4, 1, 28, 28, requires_grad=True)
    model(x).square().sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


@pytest.mark.parametrize("name", list_models())
def test_save_load_round_trip(name, tmp_path):
    model = _build(name, 1, 28, mean=[0.13], std=[0.31])
    model.train()(torch.rand(8, 1, 28, 28))  # one train-mode pass moves BN running stats off their init
    model.eval()
    save_model(model, tmp_path / "run")
    loaded = load_model(tmp_path / "run")
    assert type(loaded) is type(model) and not loaded.training
    x = torch.rand(4, 1, 28, 28)
    torch.testing.assert_close(loaded(x), model(x), rtol=0, atol=0)
    loaded_state = loaded.state_dict()
    for key, value in model.state_dict().items():
        assert torch.equal(loaded_state[key], value), key
