"""Saliency methods against closed forms: linear models, IG completeness, SmoothGrad determinism."""

import pytest
import torch
from torch import nn

from robustmi.errors import ConfigError
from robustmi.saliency.methods import (
    METHODS,
    compute_saliency,
    input_gradient,
    integrated_gradients,
    smoothgrad,
)


def _linear(w: torch.Tensor):
    """f(x) = w . x per sample, whose input gradient is exactly w."""
    return lambda x: (x * w).flatten(1).sum(dim=1)


@pytest.fixture
def batch() -> torch.Tensor:
    return torch.rand(3, 1, 6, 6, generator=torch.Generator().manual_seed(0))


@pytest.fixture
def small_net() -> nn.Module:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(36, 16), nn.Tanh(), nn.Linear(16, 1), nn.Softplus())
    return net


@pytest.mark.parametrize("method", METHODS)
def test_maps_have_input_shape_and_dtype(method, batch):
    w = torch.randn(1, 1, 6, 6)
    out = compute_saliency(_linear(w), batch, method, ig_steps=4, samples=3)
    assert out.shape == batch.shape and out.dtype == torch.float32
    assert not out.requires_grad


def test_gradient_of_linear_model_is_its_weight(batch):
    w = torch.randn(1, 1, 6, 6)
    torch.testing.assert_close(compute_saliency(_linear(w), batch, "grad"), w.expand_as(batch))


def test_smoothgrad_of_linear_model_is_its_weight(batch):
    # The gradient of a linear function does not depend on where it is taken, so noise changes nothing.
    w = torch.randn(1, 1, 6, 6)
    out = smoothgrad(_linear(w), batch, samples=5, noise=0.5, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(out, w.expand_as(batch))


def test_ig_of_linear_model_with_black_baseline_is_weight_times_input(batch):
    w = torch.randn(1, 1, 6, 6)
    out = integrated_gradients(_linear(w), batch, steps=3)
    torch.testing.assert_close(out, w * batch)


def test_gradient_of_quadratic_matches_closed_form(batch):
    # f(x) = sum x^2 / 2 -> grad = x
    out = compute_saliency(lambda x: x.pow(2).flatten(1).sum(1) / 2, batch, "grad")
    torch.testing.assert_close(out, batch)


def test_ig_completeness_on_nonlinear_net(small_net, batch):
    f = lambda x: small_net(x).squeeze(1)  # noqa: E731
    attributions = integrated_gradients(f, batch, steps=32)
    with torch.no_grad():
        expected = f(batch) - f(torch.zeros_like(batch))  # (B,)
    got = attributions.flatten(1).sum(dim=1)
    assert torch.allclose(got, expected, rtol=0.01, atol=1e-4), (got, expected)


def test_ig_completeness_for_batch_scalar_target(small_net, batch):
    f = lambda x: small_net(x).sum() * small_net(x).mean()  # couples the samples  # noqa: E731
    attributions = integrated_gradients(f, batch, steps=32, baseline=0.5)
    with torch.no_grad():
        expected = f(batch) - f(torch.full_like(batch, 0.5))
    assert torch.allclose(attributions.sum(), expected, rtol=0.01, atol=1e-4)


def test_smoothgrad_deterministic_for_seed_and_differs_across_seeds(small_net, batch):
    f = lambda x: small_net(x).squeeze(1)  # noqa: E731

    def run(seed):
        generator = torch.Generator().manual_seed(seed)
        return compute_saliency(f, batch, "smoothgrad", samples=4, generator=generator)

    assert torch.equal(run(3), run(3))
    assert not torch.allclose(run(3), run(4))


def test_no_parameter_gradients_and_modes_restored(batch):
    net = nn.Sequential(nn.Flatten(), nn.Linear(36, 8), nn.BatchNorm1d(8), nn.Dropout(0.5), nn.Linear(8, 1))
    net.train()
    net[1].weight.requires_grad_(False)  # a flag that must come back as it was
    seen = {}

    class Target:
        modules = (net,)

        def __call__(self, x):
            seen["training"] = net.training
            seen["requires_grad"] = [p.requires_grad for p in net.parameters()]
            return net(x).squeeze(1)

    x = batch.clone()
    compute_saliency(Target(), x, "grad")
    assert seen["training"] is False and not any(seen["requires_grad"])
    assert net.training and all(m.training for m in net.modules())
    assert [p.requires_grad for p in net.parameters()] == [False, True, True, True, True, True]
    assert all(p.grad is None for p in net.parameters())
    assert x.grad is None and not x.requires_grad


def test_target_independent_of_input_gives_zero_map(batch):
    out = input_gradient(lambda x: torch.ones(x.shape[0]), batch)
    assert torch.equal(out, torch.zeros_like(batch))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"method": "lrp"}, "unknown saliency method"),
        ({"method": "smoothgrad", "samples": 0}, "samples must be >= 1"),
        ({"method": "smoothgrad", "noise": -0.1}, "noise must be >= 0"),
        ({"method": "ig", "ig_steps": 0}, "steps must be >= 1"),
    ],
)
def test_bad_settings_raise_config_error(kwargs, match, batch):
    with pytest.raises(ConfigError, match=match):
        compute_saliency(_linear(torch.ones(1)), batch, **kwargs)


def test_target_with_wrong_output_shape_is_rejected(batch):
    with pytest.raises(ConfigError, match="per-sample scalars"):
        input_gradient(lambda x: x.flatten(1), batch)
