"""Saliency targets against closed forms: linear classifiers (logit, CE), a 1x1-conv neuron, the DIM loss."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from robustmi.errors import ModelError
from robustmi.models import create_model
from robustmi.saliency import (
    classifier_target,
    compute_saliency,
    is_classifier,
    mi_target,
    neuron_target,
)


class LinearClassifier(nn.Module):
    """logits = W x + b on flattened (B, 1, 4, 4) inputs, with the classifier interface."""

    def __init__(self, num_classes: int = 3) -> None:
        super().__init__()
        self.fc = nn.Linear(16, num_classes)
        self.num_classes = num_classes
        self.feature_dim = 16

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1)  # (B, 1, 4, 4) -> (B, 16)

    def forward_head(self, z: torch.Tensor) -> torch.Tensor:
        return self.fc(z)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


@pytest.fixture
def linear() -> LinearClassifier:
    torch.manual_seed(0)
    return LinearClassifier()


@pytest.fixture
def x() -> torch.Tensor:
    return torch.rand(5, 1, 4, 4, generator=torch.Generator().manual_seed(1))


@pytest.fixture
def y() -> torch.Tensor:
    return torch.tensor([0, 1, 2, 1, 0])


def test_logit_gradient_is_the_weight_row(linear, x, y):
    maps = compute_saliency(classifier_target(linear, y, "logit"), x, "grad")
    expected = linear.fc.weight[y].detach().view(5, 1, 4, 4)  # (B, 16) -> (B, 1, 4, 4)
    torch.testing.assert_close(maps, expected)


def test_ce_gradient_matches_closed_form(linear, x, y):
    maps = compute_saliency(classifier_target(linear, y, "ce"), x, "grad")
    with torch.no_grad():
        p = F.softmax(linear(x), dim=1)
        expected = ((p - F.one_hot(y, 3)) @ linear.fc.weight).view(5, 1, 4, 4)  # (B, K) @ (K, 16) -> (B, 16)
    torch.testing.assert_close(maps, expected)


def test_ig_of_logit_with_black_baseline_is_weight_times_input(linear, x, y):
    maps = compute_saliency(classifier_target(linear, y, "logit"), x, "ig", ig_steps=2)
    torch.testing.assert_close(maps, linear.fc.weight[y].detach().view(5, 1, 4, 4) * x)


def test_neuron_of_one_by_one_conv_is_its_weight_over_pixels(x):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 3, kernel_size=1), nn.ReLU())
    target = neuron_target(net, "0", channel=2)
    maps = compute_saliency(target, x, "grad")
    expected = net[0].weight[2, 0, 0, 0].detach() / 16 * torch.ones_like(x)  # mean over 4x4 pixels
    torch.testing.assert_close(maps, expected)
    assert target(x).shape == (5,)


def test_neuron_of_flat_layer_is_its_unit(linear, x):
    maps = compute_saliency(neuron_target(linear, "fc", channel=1), x, "grad")
    torch.testing.assert_close(maps, linear.fc.weight[1].detach().view(1, 1, 4, 4).expand_as(x))


def test_neuron_on_baseline_h_layer_has_input_shape():
    model = create_model("baseline-h", dataset="mnist")
    images = torch.rand(2, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    maps = compute_saliency(neuron_target(model, "encoder.convs.1", channel=5), images, "grad")
    assert maps.shape == images.shape and maps.abs().sum() > 0


def test_neuron_errors(linear, x):
    with pytest.raises(ModelError, match="out of range"):
        compute_saliency(neuron_target(linear, "fc", channel=7), x, "grad")
    with pytest.raises(ModelError, match="has no layer"):
        compute_saliency(neuron_target(linear, "nope", channel=0), x, "grad")
    with pytest.raises(ModelError, match="channel must be >= 0"):
        neuron_target(linear, "fc", channel=-1)


def test_classifier_target_errors(linear, y):
    encoder = create_model("baseline-h-encoder", dataset="mnist")
    assert not is_classifier(encoder) and is_classifier(linear)
    with pytest.raises(ModelError, match="needs a classifier"):
        classifier_target(encoder, y, "ce")
    with pytest.raises(ModelError, match="outside the model's 3 classes"):
        classifier_target(linear, torch.tensor([0, 5]), "ce")


class ToyDIM(nn.Module):
    """A batch-coupled MI-like score: mean positive score minus log-mean-exp of all pair scores."""

    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Linear(16, 16)

    def mi(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        scores = self.proj(x.flatten(1)) @ z.T  # (B, 16) @ (16, B) -> (B, B)
        return scores.diag().mean() - scores.logsumexp(dim=1).mean()


def test_mi_target_is_batch_scalar_and_couples_samples(x):
    torch.manual_seed(0)
    encoder, dim = nn.Sequential(nn.Flatten(), nn.Linear(16, 16)), ToyDIM()
    target = mi_target(encoder, dim)
    assert target(x).shape == () and not target.per_sample and target.name == "mi"
    maps = compute_saliency(target, x, "grad")
    changed = x.clone()
    changed[1] = torch.rand(1, 4, 4, generator=torch.Generator().manual_seed(9))
    maps_changed = compute_saliency(target, changed, "grad")
    # sample 0 is unchanged, yet its map moves: its batch mate is one of its negatives
    assert not torch.allclose(maps[0], maps_changed[0])
    assert all(p.grad is None for p in [*encoder.parameters(), *dim.parameters()])


def test_plain_module_classifier_is_accepted_and_its_output_checked(linear, x, y):
    plain = nn.Sequential(nn.Flatten(), nn.Linear(16, 3))  # no forward_head / num_classes, as evaluate takes
    plain[1].load_state_dict(linear.fc.state_dict())
    assert is_classifier(plain)
    maps = compute_saliency(classifier_target(plain, y, "logit"), x, "grad")
    torch.testing.assert_close(maps, linear.fc.weight[y].detach().view(5, 1, 4, 4))
    with pytest.raises(ModelError, match=r"needs \(B, num_classes\) logits covering label 2.*shape \(5, 2\)"):
        compute_saliency(classifier_target(nn.Sequential(nn.Flatten(), nn.Linear(16, 2)), y, "ce"), x, "grad")
    with pytest.raises(ModelError, match=r"shape \(5,\)"):
        compute_saliency(classifier_target(nn.Sequential(nn.Flatten(), nn.Linear(16, 1), nn.Flatten(0)), y),
                         x, "grad")
