"""Threat models: projections land in the ball and are nearest points; steps and random starts behave."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from robustmi.attacks import get_threat, list_norms
from robustmi.attacks.threat import L2Threat, LinfThreat
from robustmi.errors import AttackError

TOL = 1e-5


def _pair(seed: int, scale: float) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(3, 2, 4, 4, generator=g)
    return x, x + scale * torch.randn(3, 2, 4, 4, generator=g)


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    eps=st.floats(0.0, 2.0),
    scale=st.floats(0.0, 5.0),
    norm=st.sampled_from(["linf", "l2"]),
)
def test_project_lands_in_ball_and_keeps_inner_points(seed: int, eps: float, scale: float, norm: str) -> None:
    x, x_adv = _pair(seed, scale)
    threat = get_threat(norm, eps)
    projected = threat.project(x_adv, x)
    assert (threat.distance(projected, x) <= eps + TOL).all()
    inside = threat.distance(x_adv, x) <= eps  # points already in the ball do not move
    assert torch.allclose(projected[inside], x_adv[inside], atol=1e-6)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), eps=st.floats(0.01, 1.0))
def test_l2_projection_is_the_nearest_point(seed: int, eps: float) -> None:
    """Reference: the nearest point of a ball to an outer point lies on the ray from the centre."""
    x, x_adv = _pair(seed, 3.0)
    projected = L2Threat(eps).project(x_adv, x)
    delta = (x_adv - x).flatten(1)
    expected = x + (delta * eps / delta.norm(dim=1, keepdim=True)).view_as(x)
    outside = delta.norm(dim=1) > eps
    assert torch.allclose(projected[outside], expected[outside], atol=1e-5)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), eps=st.floats(0.0, 1.0), norm=st.sampled_from(["linf", "l2"]))
def test_random_start_is_inside_ball(seed: int, eps: float, norm: str) -> None:
    x, _ = _pair(seed, 0.0)
    threat = get_threat(norm, eps)
    start = threat.init(x, torch.Generator().manual_seed(seed))
    assert (threat.distance(start, x) <= eps + TOL).all()


def test_random_start_uses_the_generator_only() -> None:
    x = torch.rand(4, 1, 5, 5)
    for threat in (LinfThreat(0.3), L2Threat(1.0)):
        a = threat.init(x, torch.Generator().manual_seed(7))
        b = threat.init(x, torch.Generator().manual_seed(7))
        assert torch.equal(a, b) and not torch.equal(a, x)


def test_steps_follow_the_gradient() -> None:
    x = torch.zeros(2, 1, 2, 2)
    grad = torch.tensor([[3.0, -1.0, 0.0, 2.0], [0.0, 0.0, 0.0, 0.0]]).view(2, 1, 2, 2)
    linf = LinfThreat(0.5).step(x, grad, 0.1)
    assert torch.allclose(linf.flatten(1)[0], torch.tensor([0.1, -0.1, 0.0, 0.1]))
    l2 = L2Threat(0.5).step(x, grad, 0.1)
    assert torch.allclose(l2.flatten(1)[0].norm(), torch.tensor(0.1))  # step length α along ∇/‖∇‖
    assert torch.equal(linf[1], x[1]) and torch.equal(l2[1], x[1])  # a zero gradient does not move


def test_get_threat_errors() -> None:
    assert list_norms() == ["l2", "linf"]
    with pytest.raises(AttackError, match="unknown norm 'l1'"):
        get_threat("l1", 0.3)
    with pytest.raises(AttackError, match="eps must be >= 0"):
        get_threat("linf", -0.1)
