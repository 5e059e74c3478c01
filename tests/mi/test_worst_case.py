"""Algorithm 1 (robustmi.mi.worst_case): the ε-ball, the critic-branch knob, a reference loop."""

import pytest
import torch
from torch import nn

from robustmi.attacks import AttackSettings, frozen_eval
from robustmi.mi import DIMObjective
from robustmi.mi.worst_case import worst_case_inputs

ATTACK = AttackSettings(eps=0.3, steps=4, step_size=0.1)


def _setup(seed: int = 0):
    torch.manual_seed(seed)
    encoder = nn.Sequential(nn.Flatten(), nn.Linear(784, 16), nn.Tanh(), nn.Linear(16, 8))
    dim = DIMObjective(1, 8, critic_width=16)
    x = torch.rand(12, 1, 28, 28, generator=torch.Generator().manual_seed(seed))
    return encoder, dim, x


@pytest.mark.parametrize("through_critic", [False, True])
def test_stays_in_ball_and_box_and_never_raises_the_estimate(through_critic):
    encoder, dim, x = _setup()
    with frozen_eval(encoder, dim):
        found = worst_case_inputs(dim.mi, encoder, x, ATTACK, through_critic=through_critic)
        clean, worst = float(dim.mi(x, encoder(x))), float(dim.mi(found.x, encoder(found.x)))
    assert (found.x - x).abs().max() <= ATTACK.eps + 1e-6
    assert found.x.min() >= 0 and found.x.max() <= 1
    assert found.mi_trace.shape == (ATTACK.steps + 1,)
    assert found.mi_trace[0] == pytest.approx(clean, abs=1e-5)
    assert worst <= clean + 1e-6  # the best iterate of the batch is kept, the clean batch is the first one
    assert worst < clean - 1e-3  # and the search actually lowers a random critic's estimate


def test_detached_critic_branch_moves_inputs_only_through_the_representation():
    """A representation that ignores x: detached, nothing can move; through the critic, x moves."""
    _, dim, x = _setup()
    z = torch.randn(x.shape[0], 8)

    def constant(xa):  # formally a function of x (PGD requires that), with a zero gradient
        return z + 0 * xa.sum()

    with frozen_eval(dim):
        still = worst_case_inputs(dim.mi, constant, x, ATTACK, through_critic=False)
        moved = worst_case_inputs(dim.mi, constant, x, ATTACK, through_critic=True)
    assert torch.equal(still.x, x) and still.zero_grad_fraction == 1.0
    assert (moved.x - x).abs().max() > 0


def test_matches_a_plain_sign_gradient_loop():
    """Reference: Madry-style L∞ PGD on -MI, critic's image input detached, best batch iterate kept."""
    encoder, dim, x = _setup(1)
    with frozen_eval(encoder, dim):
        found = worst_case_inputs(dim.mi, encoder, x, ATTACK)
        xa, best, best_mi = x.clone(), x.clone(), float(dim.mi(x, encoder(x)))
        for _ in range(ATTACK.steps):
            xa.requires_grad_(True)
            (grad,) = torch.autograd.grad(-dim.mi(xa.detach(), encoder(xa)), xa)
            step = xa.detach() + ATTACK.step_size * grad.sign()
            xa = (x + (step - x).clamp(-ATTACK.eps, ATTACK.eps)).clamp(0, 1)
            value = float(dim.mi(xa, encoder(xa)))
            if value < best_mi:
                best, best_mi = xa.clone(), value
    torch.testing.assert_close(found.x, best)


def test_zero_eps_returns_the_clean_batch():
    encoder, dim, x = _setup()
    with frozen_eval(encoder, dim):
        found = worst_case_inputs(dim.mi, encoder, x, AttackSettings(eps=0.0, steps=3, step_size=0.1))
    assert torch.equal(found.x, x) and found.mi_trace.shape == (1,)


def test_bf16_search_stays_in_the_ball_and_lowers_the_fp32_estimate():
    """search_bf16: forward passes under bf16 autocast, perturbation and trace fp32, the same guarantees."""
    encoder, dim, x = _setup()

    def bf16():
        return torch.autocast(device_type="cpu", dtype=torch.bfloat16)

    with frozen_eval(encoder, dim):
        found = worst_case_inputs(dim.mi, encoder, x, ATTACK, autocast=bf16)
        clean, worst = float(dim.mi(x, encoder(x))), float(dim.mi(found.x, encoder(found.x)))
    assert found.x.dtype == torch.float32 and found.mi_trace.dtype == torch.float32
    assert (found.x - x).abs().max() <= ATTACK.eps + 1e-6 and found.x.min() >= 0 and found.x.max() <= 1
    assert found.mi_trace[0] == pytest.approx(clean, abs=0.05)  # the trace is bf16 arithmetic
    assert worst < clean - 1e-3  # measured in fp32, the bf16 search still lowered the estimate
