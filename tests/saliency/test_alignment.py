"""Alignment scores: Sobel reference, rank ties against scipy, edge map ~1, noise ~0, foreground mass."""

import math

import pytest
import torch
from scipy import ndimage, stats

from robustmi.saliency.alignment import (
    alignment_scores,
    average_ranks,
    edge_correlation,
    foreground_fraction,
    foreground_mass,
    sobel_edges,
)


@pytest.fixture
def digits() -> torch.Tensor:
    """Four blob-and-bar images (B, 1, 16, 16) on a black background, like MNIST strokes."""
    images = torch.zeros(4, 1, 16, 16)
    images[0, 0, 4:12, 7:9] = 1.0
    images[1, 0, 3:6, 3:13] = 0.8
    images[2, 0, 5:11, 5:11] = 0.6
    images[3, 0, 2:14, 2:4] = 1.0
    images[3, 0, 12:14, 2:12] = 1.0
    return images


def test_sobel_matches_scipy(digits):
    img = digits[2, 0].double().numpy()
    gx = ndimage.sobel(img, axis=1, mode="nearest")
    gy = ndimage.sobel(img, axis=0, mode="nearest")
    expected = torch.from_numpy((gx**2 + gy**2) ** 0.5).float()
    torch.testing.assert_close(sobel_edges(digits)[2], expected)


def test_sobel_of_constant_image_is_zero_even_at_borders():
    torch.testing.assert_close(sobel_edges(torch.full((1, 3, 8, 8), 0.7)), torch.zeros(1, 8, 8))


def test_average_ranks_match_scipy_with_ties():
    values = torch.tensor([3.0, 1.0, 3.0, 0.0, 0.0, 0.0, 2.0, 3.0])
    expected = stats.rankdata(values.numpy()) - 1
    assert average_ranks(values).tolist() == expected.tolist()


def test_map_equal_to_edge_map_scores_one(digits):
    maps = sobel_edges(digits).unsqueeze(1)  # (B, H, W) -> (B, 1, H, W)
    scores = alignment_scores(-maps, digits)  # the sign is discarded
    assert scores["edge_spearman"] == pytest.approx(1.0)
    assert scores["edge_pearson"] == pytest.approx(1.0)
    assert scores["constant_maps"] == 0


def test_noise_map_scores_about_zero(digits):
    noise = torch.randn(64, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    images = digits.repeat(16, 1, 1, 1)
    scores = alignment_scores(noise, images)
    assert abs(scores["edge_spearman"]) < 0.05
    assert abs(scores["edge_pearson"]) < 0.05
    # noise spreads its mass evenly: foreground mass near the foreground fraction (chance level)
    assert scores["foreground_mass"] == pytest.approx(foreground_fraction(images), abs=0.03)


def test_spearman_matches_scipy_per_sample(digits):
    maps = torch.rand(4, 1, 16, 16, generator=torch.Generator().manual_seed(1)) * digits
    got = edge_correlation(maps, digits, "spearman")
    edges = sobel_edges(digits)
    for i in range(4):
        expected = stats.spearmanr(maps[i].abs().sum(0).flatten().numpy(), edges[i].flatten().numpy())[0]
        assert got[i].item() == pytest.approx(expected, abs=1e-5)


def test_foreground_mass_of_map_on_digit_is_one_and_off_digit_is_zero(digits):
    assert foreground_mass(digits * 3.0, digits).tolist() == [1.0] * 4
    assert foreground_mass((digits == 0).float(), digits).tolist() == [0.0] * 4


def test_constant_map_is_undefined_and_skipped(digits):
    maps = torch.rand(4, 1, 16, 16, generator=torch.Generator().manual_seed(2))
    maps[1] = 0.0
    scores = alignment_scores(maps, digits)
    assert scores["constant_maps"] == 1
    assert scores["per_sample"]["edge_spearman"][1] is None
    assert scores["per_sample"]["foreground_mass"][1] is None
    assert not math.isnan(scores["edge_spearman"])


def test_channels_are_summed():
    images = torch.zeros(2, 3, 8, 8)
    images[:, :, 2:6, 2:6] = 1.0
    maps = torch.zeros(2, 3, 8, 8)
    maps[:, 0] = sobel_edges(images)
    maps[:, 2] = -sobel_edges(images)
    assert alignment_scores(maps, images)["edge_pearson"] == pytest.approx(1.0)
