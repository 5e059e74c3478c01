"""random_crop and horizontal_flip: shapes, determinism, padding content, inputs untouched."""

import pytest
import torch
import torch.nn.functional as F

from robustmi.data import horizontal_flip, random_crop


def _images(n: int = 64, c: int = 3, size: int = 8) -> torch.Tensor:
    # Distinct positive values, so every crop offset gives a distinguishable result and zeros mark padding.
    return torch.arange(1, n * c * size * size + 1, dtype=torch.float32).reshape(n, c, size, size)


def _offset_of(original: torch.Tensor, crop: torch.Tensor, padding: int) -> tuple[int, int]:
    """Reference: the (dy, dx) whose window of the zero-padded original equals ``crop`` (C, H, W)."""
    padded = F.pad(original, (padding,) * 4)
    h, w = original.shape[-2:]
    matches = [
        (dy, dx)
        for dy in range(2 * padding + 1)
        for dx in range(2 * padding + 1)
        if padded[:, dy : dy + h, dx : dx + w].equal(crop)
    ]
    assert len(matches) == 1, matches
    return matches[0]


def test_random_crop_is_a_window_of_the_zero_padded_image():
    images = _images()
    before = images.clone()
    out = random_crop(images, padding=2, generator=torch.Generator().manual_seed(0))
    assert out.shape == images.shape and out.dtype == images.dtype
    assert images.equal(before)  # input untouched
    offsets = {_offset_of(images[i], out[i], 2) for i in range(len(images))}
    assert len(offsets) > 10  # per-sample offsets, not one shared shift
    assert {dy for dy, _ in offsets} == set(range(5)) and {dx for _, dx in offsets} == set(range(5))


def test_random_crop_zero_border_matches_offset():
    ones = torch.ones(1, 1, 6, 6)
    out = random_crop(ones, padding=3, generator=torch.Generator().manual_seed(1))
    dy, dx = _offset_of(ones[0], out[0], 3)
    # The crop keeps 6 - |dy - 3| rows and 6 - |dx - 3| columns of the original; the rest is zero padding.
    assert out.sum().item() == (6 - abs(dy - 3)) * (6 - abs(dx - 3))


def test_random_crop_deterministic_per_generator():
    images = _images()
    a = random_crop(images, 4, generator=torch.Generator().manual_seed(7))
    b = random_crop(images, 4, generator=torch.Generator().manual_seed(7))
    c = random_crop(images, 4, generator=torch.Generator().manual_seed(8))
    assert a.equal(b) and not a.equal(c)


def test_random_crop_zero_padding_and_bad_arguments():
    images = _images(4)
    out = random_crop(images, 0)
    assert out.equal(images) and out.data_ptr() != images.data_ptr()
    with pytest.raises(ValueError, match="non-negative integer"):
        random_crop(images, -1)
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        random_crop(images[0], 2)


def test_horizontal_flip_per_sample_and_deterministic():
    images = _images(400, 1, 4)
    before = images.clone()
    out = horizontal_flip(images, generator=torch.Generator().manual_seed(0))
    assert images.equal(before)
    flipped = torch.tensor([out[i].equal(images[i].flip(-1)) for i in range(len(images))])
    kept = torch.tensor([out[i].equal(images[i]) for i in range(len(images))])
    assert (flipped ^ kept).all()  # each sample is either mirrored or untouched
    assert 0.4 < flipped.float().mean().item() < 0.6  # p = 0.5; 400 draws: sd 0.025
    again = horizontal_flip(images, generator=torch.Generator().manual_seed(0))
    assert out.equal(again)


def test_horizontal_flip_probability_bounds():
    images = _images(16)
    assert horizontal_flip(images, p=0.0).equal(images)
    assert horizontal_flip(images, p=1.0).equal(images.flip(-1))
    with pytest.raises(ValueError, match=r"lie in \[0, 1\]"):
        horizontal_flip(images, p=1.5)
