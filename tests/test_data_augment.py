"""Tests for deepbasics.data.augment: exact shifts, rotations against rot90, noise, composition, datasets."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st
from torch.utils.data import TensorDataset

from deepbasics import data


def _images(n: int = 4, c: int = 1, h: int = 8, w: int = 8, dtype=torch.float32) -> torch.Tensor:
    return torch.rand(n, c, h, w, generator=torch.Generator().manual_seed(0), dtype=dtype)


def _shift_reference(x: torch.Tensor, dy: int, dx: int, fill: float) -> torch.Tensor:
    """Pad by a margin, then crop the window displaced by (dy, dx): out[i, j] = x[i - dy, j - dx]."""
    h, w = x.shape[-2:]
    m = max(h, w, abs(dy), abs(dx))
    padded = F.pad(x, (m, m, m, m), value=fill)
    return padded[..., m - dy : m - dy + h, m - dx : m - dx + w]


@given(st.integers(-9, 9), st.integers(-9, 9), st.sampled_from([0.0, -0.5]))
def test_shift_moves_pixels_exactly(dy, dx, fill):
    x = _images(2, 2, 6, 7)
    assert torch.equal(data.shift(x, dy, dx, fill), _shift_reference(x, dy, dx, fill))


def test_shift_per_image_offsets_and_unbatched():
    x = _images(3)
    dy, dx = torch.tensor([1, 0, -2]), torch.tensor([0, -1, 3])
    out = data.shift(x, dy, dx)
    for i in range(3):
        assert torch.equal(out[i], _shift_reference(x[i], int(dy[i]), int(dx[i]), 0.0))
    assert torch.equal(data.shift(x[0], 1, 1), _shift_reference(x[0], 1, 1, 0.0))
    one = torch.zeros(1, 1, 3, 3)
    one[0, 0, 1, 1] = 1.0
    assert data.shift(one, 1, -1)[0, 0, 2, 0] == 1.0  # down one row, left one column


def test_rotation_by_zero_is_identity_and_by_90_is_rot90(float64):
    x = _images(3, 2, 8, 8, dtype=torch.float64)
    torch.testing.assert_close(data.rotate(x, 0.0), x, rtol=0, atol=1e-12)
    for k in (1, 2, 3, -1):
        torch.testing.assert_close(data.rotate(x, 90.0 * k), torch.rot90(x, k, dims=(-2, -1)), rtol=0, atol=1e-12)
    rect = _images(2, 1, 4, 6, dtype=torch.float64)
    torch.testing.assert_close(data.rotate(rect, 180.0), torch.rot90(rect, 2, dims=(-2, -1)), rtol=0, atol=1e-12)


def test_rotation_fill_and_per_image_angles():
    blank = torch.zeros(1, 1, 8, 8)
    out = data.rotate(blank, 45.0, fill=1.0)
    assert out[0, 0, 0, 0] > 0.5 and out[0, 0, 4, 4] == 0.0  # corners leave the frame, the centre stays
    x = _images(2)
    out = data.rotate(x, torch.tensor([0.0, 90.0]))
    torch.testing.assert_close(out[0], x[0], rtol=0, atol=1e-6)
    torch.testing.assert_close(out[1], torch.rot90(x[1], 1, dims=(-2, -1)), rtol=0, atol=1e-6)


def test_random_transforms_keep_shape_and_are_seeded():
    x = _images(16)
    for make in (
        lambda g: data.RandomShift(2, generator=g),
        lambda g: data.RandomRotation(15.0, generator=g),
        lambda g: data.GaussianNoise(0.1, generator=g),
        lambda g: data.Compose([data.RandomShift(1, generator=g), data.RandomRotation(10.0, generator=g)]),
    ):
        a = make(torch.Generator().manual_seed(0))(x)
        b = make(torch.Generator().manual_seed(0))(x)
        c = make(torch.Generator().manual_seed(1))(x)
        assert a.shape == x.shape and a.dtype == x.dtype and torch.equal(a, b) and not torch.equal(a, c)
        assert make(torch.Generator().manual_seed(0))(x[0]).shape == x[0].shape


def test_random_shift_draws_per_image_offsets_within_range():
    x = torch.zeros(200, 1, 7, 7)
    x[:, 0, 3, 3] = 1.0
    out = data.RandomShift(2, generator=torch.Generator().manual_seed(0))(x)
    pos = out.reshape(200, -1).argmax(1)
    dy, dx = pos // 7 - 3, pos % 7 - 3
    assert set(dy.tolist()) == set(range(-2, 3)) and set(dx.tolist()) == set(range(-2, 3))
    assert torch.equal(data.RandomShift(0)(x), x)


def test_gaussian_noise_statistics(float64):
    x = torch.zeros(100, 1, 8, 8)
    noise = data.GaussianNoise(0.5, generator=torch.Generator().manual_seed(0))(x)
    assert abs(noise.std().item() - 0.5) < 0.02 and abs(noise.mean().item()) < 0.02
    assert torch.equal(data.GaussianNoise(0.0)(x), x)


def test_compose_applies_in_order():
    f = data.Compose([lambda t: t + 1.0, lambda t: t * 2.0])
    assert f(torch.zeros(1)).item() == 2.0
    assert "RandomShift" in repr(data.Compose([data.RandomShift(1)]))


def test_augmented_dataset_per_item_and_per_batch():
    x, y = _images(6), torch.arange(6)
    ds = data.AugmentedDataset(TensorDataset(x, y), lambda t: t + 1.0)
    xi, yi = ds[2]
    assert torch.equal(xi, x[2] + 1.0) and yi == 2 and len(ds) == 6
    xb, yb = ds[[0, 5]]
    assert torch.equal(xb, x[[0, 5]] + 1.0) and yb.tolist() == [0, 5]


def test_bad_inputs():
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        data.shift(torch.zeros(8, 8), 1, 1)
    with pytest.raises(TypeError, match="floating"):
        data.rotate(torch.zeros(1, 1, 8, 8, dtype=torch.long), 10.0)
    with pytest.raises(ValueError, match="per-image"):
        data.shift(torch.zeros(2, 1, 4, 4), torch.tensor([1, 2, 3]), 0)
    with pytest.raises(ValueError, match="max_pixels"):
        data.RandomShift(-1)
    with pytest.raises(ValueError, match="max_degrees"):
        data.RandomRotation(200.0)
    with pytest.raises(ValueError, match="std"):
        data.GaussianNoise(-1.0)
    with pytest.raises(TypeError, match="callable"):
        data.Compose([1])
    with pytest.raises(TypeError, match="dataset"):
        data.AugmentedDataset(3, lambda t: t)
    with pytest.raises(TypeError, match="generator"):
        data.RandomShift(1, generator=0)
