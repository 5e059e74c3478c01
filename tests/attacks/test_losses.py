"""Classifier losses against plain reference formulas, and their registry and errors."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from robustmi.attacks import ce_loss, classifier_objective, cw_loss, dlr_loss, get_loss, list_losses
from robustmi.errors import AttackError

LOGITS = torch.tensor([[2.0, 1.0, 0.5, -1.0], [0.0, 3.0, 1.0, 2.5]])
Y = torch.tensor([0, 2])


def test_ce_matches_log_softmax_by_hand() -> None:
    expected = [
        math.log(sum(math.exp(v) for v in row)) - row[y]
        for row, y in zip(LOGITS.tolist(), Y.tolist(), strict=True)
    ]
    assert torch.allclose(ce_loss(LOGITS, Y), torch.tensor(expected))


def test_cw_margin_by_hand() -> None:
    # sample 0: best other 1.0 - true 2.0 = -1 (correct); sample 1: best other 3.0 - true 1.0 = 2 (wrong)
    assert torch.allclose(cw_loss(LOGITS, Y), torch.tensor([-1.0, 2.0]))


def test_dlr_by_hand_and_invariances() -> None:
    # sorted: [2, 1, 0.5, -1] -> z1 - z3 = 1.5; [3, 2.5, 1, 0] -> 2.0
    assert torch.allclose(dlr_loss(LOGITS, Y), torch.tensor([-1.0 / 1.5, 2.0 / 2.0]))
    assert torch.allclose(dlr_loss(5 * LOGITS + 7, Y), dlr_loss(LOGITS, Y), atol=1e-6)  # shift and scale


def test_registry_and_errors() -> None:
    assert list_losses() == ["ce", "cw", "dlr"]
    assert get_loss("cw") is cw_loss
    with pytest.raises(AttackError, match="unknown attack loss 'hinge'"):
        get_loss("hinge")
    with pytest.raises(AttackError, match=r"logits \(B, K\) and labels \(B,\)"):
        ce_loss(LOGITS, torch.tensor([0]))
    with pytest.raises(AttackError, match="at least 3 classes"):
        dlr_loss(LOGITS[:, :2], Y.clamp(max=1))
    with pytest.raises(AttackError, match="integer tensor"):
        classifier_objective(nn.Identity(), torch.zeros(2))


def test_classifier_objective_is_per_sample() -> None:
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 4))
    x = torch.rand(2, 1, 2, 2)
    for name in list_losses():
        value = classifier_objective(model, Y, name)(x)
        assert value.shape == (2,)
        assert torch.allclose(value, get_loss(name)(model(x), Y))
