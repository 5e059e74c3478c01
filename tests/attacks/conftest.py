"""Shared fixtures: a small CNN adversarially trained (FGSM-RS) on real MNIST, and gradient-masked variants.

The model is trained once per test run on the first 10 000 MNIST training images (400 steps of batch 64,
FGSM-RS at ε = 0.1, a few seconds on one core); tests evaluate it on the first MNIST test images.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from robustmi.attacks import classifier_objective, fgsm_rs, frozen_eval
from robustmi.data import load_dataset

TRAIN_EPS = 0.1


class TinyCNN(nn.Module):
    """Two strided convs and two linear layers: (B, 1, 28, 28) in [0, 1] -> (B, 10) logits."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, 5, stride=2, padding=2),
            nn.ReLU(),  # (B, 16, 14, 14)
            nn.Conv2d(16, 32, 5, stride=2, padding=2),
            nn.ReLU(),  # (B, 32, 7, 7)
            nn.Flatten(),  # (B, 32, 7, 7) -> (B, 1568)
            nn.Linear(32 * 7 * 7, 64),
            nn.ReLU(),
        )
        self.head = nn.Linear(64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class QuantisedInput(nn.Module):
    """Gradient masking by input quantisation: round() has zero gradient everywhere."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(torch.round(x * 255) / 255)


class SaturatedSoftmax(nn.Module):
    """Gradient masking by saturation: logits = 1e4·softmax, so the loss gradient underflows to exactly 0."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 1e4 * self.model(x).softmax(dim=1)


@pytest.fixture(scope="package", autouse=True)
def _one_thread():
    """One intra-op thread while tests/attacks runs (restored after): the tiny batches here gain nothing from
    more, and on shared cores idle-spinning OpenMP threads made the session fixtures 10-20x slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def masked_models(mnist_model) -> dict[str, nn.Module]:
    """The trained model behind two kinds of gradient masking."""
    return {"quantised": QuantisedInput(mnist_model), "saturated": SaturatedSoftmax(mnist_model)}


@pytest.fixture
def untrained_model() -> TinyCNN:
    """A freshly initialised TinyCNN (chance accuracy)."""
    return TinyCNN().eval()


@pytest.fixture(scope="package")
def mnist_test(_one_thread):
    """First 1000 real MNIST test images (robustmi.data Dataset)."""
    return load_dataset("mnist", "test").subset(1000)


@pytest.fixture(scope="package")
def mnist_model(_one_thread) -> TinyCNN:
    """TinyCNN trained with FGSM-RS (ε = 0.1) on 10 000 real MNIST training images; returned in eval mode."""
    train = load_dataset("mnist", "train").subset(10_000)
    torch.manual_seed(0)
    model = TinyCNN()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    generator = torch.Generator().manual_seed(0)
    for _ in range(400):
        idx = torch.randint(0, len(train), (64,), generator=generator)
        x, y = train.images[idx], train.labels[idx]
        with frozen_eval(model):  # adversarial examples against the current weights, no parameter grads
            x = fgsm_rs(classifier_objective(model, y), x, eps=TRAIN_EPS, generator=generator)
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval()
