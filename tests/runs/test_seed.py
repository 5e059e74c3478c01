"""Seeding and RNG state capture/restore (python, numpy, torch)."""

import random

import numpy as np
import pytest
import torch

from robustmi.errors import CheckpointError, ConfigError
from robustmi.runs import get_rng_state, seed_everything, set_rng_state


def draws() -> tuple:
    """One draw from each global generator, including numpy's cached Gaussian and python's gauss()."""
    return (random.random(), random.gauss(0, 1), np.random.rand(3).tolist(), np.random.randn(),
            torch.rand(4).tolist(), torch.randint(0, 1000, (3,)).tolist())


def test_seed_everything_repeats_draws() -> None:
    seed_everything(123)
    first = draws()
    seed_everything(123)
    assert draws() == first
    seed_everything(124)
    assert draws() != first


def test_rng_state_round_trip_mid_stream() -> None:
    seed_everything(7)
    draws()  # leave numpy with a cached Gaussian and python with gauss_next set: the hard case
    state = get_rng_state()
    expected = draws()
    draws()  # advance further, then restore
    set_rng_state(state)
    assert draws() == expected


def test_rng_state_is_weights_only_loadable(tmp_path) -> None:
    seed_everything(3)
    state = get_rng_state()
    torch.save(state, tmp_path / "rng.pt")
    loaded = torch.load(tmp_path / "rng.pt", weights_only=True)
    expected = draws()
    set_rng_state(loaded)
    assert draws() == expected


@pytest.mark.parametrize("seed", [-1, 2**32, 1.5, True, "0"])
def test_bad_seed(seed) -> None:
    with pytest.raises(ConfigError, match="seed must be an integer"):
        seed_everything(seed)


def test_malformed_state() -> None:
    with pytest.raises(CheckpointError, match="RNG state lacks numpy, torch"):
        set_rng_state({"python": {}})
    state = get_rng_state()
    state["numpy"] = {"name": "MT19937"}
    with pytest.raises(CheckpointError, match="malformed RNG state"):
        set_rng_state(state)


def test_deterministic_switch() -> None:
    before = (torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.deterministic,
              torch.backends.cudnn.benchmark)
    try:
        seed_everything(0, deterministic=True)
        assert torch.are_deterministic_algorithms_enabled()
        assert torch.is_deterministic_algorithms_warn_only_enabled()
        assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark
    finally:  # global torch flags: restore them for the other tests in this process
        torch.use_deterministic_algorithms(before[0])
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = before[1], before[2]
