"""Normalize: per-channel (x - mean) / std as buffers, input layout checks."""

import pytest
import torch

from robustmi.errors import ModelError
from robustmi.models import Normalize


def test_normalize_matches_closed_form():
    norm = Normalize(mean=[0.1, 0.2, 0.3], std=[0.5, 0.25, 2.0], in_chans=3)
    x = torch.rand(2, 3, 4, 4)
    expected = torch.stack([(x[:, 0] - 0.1) / 0.5, (x[:, 1] - 0.2) / 0.25, (x[:, 2] - 0.3) / 2.0], dim=1)
    torch.testing.assert_close(norm(x), expected)


def test_normalize_uses_buffers_not_parameters():
    norm = Normalize(mean=[0.1307], std=[0.3081], in_chans=1)
    assert list(norm.parameters()) == []
    assert set(norm.state_dict()) == {"mean", "std"}


def test_normalize_defaults_to_identity_and_broadcasts_scalars():
    x = torch.rand(2, 3, 5, 5)
    torch.testing.assert_close(Normalize(in_chans=3)(x), x)
    torch.testing.assert_close(Normalize(0.5, 0.5, in_chans=3)(x), (x - 0.5) / 0.5)


@pytest.mark.parametrize("kwargs", [{"mean": [0.1, 0.2], "in_chans": 3}, {"std": [0.0], "in_chans": 1}])
def test_normalize_rejects_bad_statistics(kwargs):
    with pytest.raises(ModelError):
        Normalize(**kwargs)


def test_normalize_rejects_wrong_channel_count_in_one_line():
    with pytest.raises(ModelError, match="in_chans") as info:
        Normalize(in_chans=1)(torch.rand(2, 3, 28, 28))
    assert "\n" not in str(info.value)
