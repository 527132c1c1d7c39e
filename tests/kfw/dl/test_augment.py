"""kfw.dl.augment: batch transforms of images, seeded by a torch.Generator."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from kfw.dl.augment import Augment, cutout, random_affine, shift

IDENTITY_ATOL = 1e-5  # grid_sample at exact pixel centres, up to float32 rounding
torch.set_num_threads(1)


def _batch(seed: int = 0, shape=(6, 1, 12, 12)) -> torch.Tensor:
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed))


def test_zero_magnitudes_are_the_identity():
    x = _batch()
    gen = torch.Generator().manual_seed(0)
    assert Augment(0, 0, 0, 0)(x, gen) is x  # short-circuit: not even a copy
    # the grid path itself, with zero magnitudes, reproduces the input
    torch.testing.assert_close(random_affine(x, gen, 0, 0, 0), x, atol=IDENTITY_ATOL, rtol=0)


def test_shapes_dtype_and_range_are_kept():
    x = _batch(shape=(5, 3, 10, 14))
    out = Augment(shift=0.2, rotate=30, zoom=0.2, cutout=4)(x, torch.Generator().manual_seed(1))
    assert out.shape == x.shape and out.dtype == x.dtype
    # bilinear sampling with zero padding is a convex combination of pixels and zeros
    assert out.min() >= 0 and out.max() <= 1
    assert not torch.equal(out, x)


def test_the_same_seed_gives_the_same_batch_another_seed_another():
    x = _batch()
    aug = Augment(shift=0.1, rotate=15, zoom=0.1, cutout=3)
    a = aug(x, torch.Generator().manual_seed(7))
    b = aug(x, torch.Generator().manual_seed(7))
    c = aug(x, torch.Generator().manual_seed(8))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_a_pure_rotation_by_90_degrees_matches_rot90():
    # with rotate = 90 the draw is U(-90, 90); build theta directly for an exact check
    x = _batch(shape=(2, 1, 8, 8))
    angle = torch.full((2,), math.pi / 2)
    theta = torch.stack(
        [
            torch.stack([angle.cos(), -angle.sin(), torch.zeros(2)], 1),
            torch.stack([angle.sin(), angle.cos(), torch.zeros(2)], 1),
        ],
        1,
    )
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    turned = F.grid_sample(x, grid, align_corners=False)
    # the same convention random_affine uses: output(i, j) samples input at theta @ (j, i)
    torch.testing.assert_close(turned, torch.rot90(x, 1, dims=(2, 3)), atol=1e-5, rtol=0)


def test_shift_moves_pixels_and_fills_zeros():
    x = torch.arange(16.0).view(1, 1, 4, 4)
    right = shift(x, 0, 1)
    torch.testing.assert_close(right[..., 1:], x[..., :-1])
    assert right[..., 0].abs().sum() == 0
    up = shift(x, -1, 0)
    torch.testing.assert_close(up[..., :-1, :], x[..., 1:, :])
    assert up[..., -1, :].abs().sum() == 0
    assert shift(x, 0, 0) is x


def test_cutout_blanks_one_square_per_image():
    x = torch.ones(8, 2, 10, 10)
    out = cutout(x, torch.Generator().manual_seed(3), 4)
    blanked = (out == 0).all(dim=1).sum(dim=(1, 2))  # pixels blanked in every channel, (B,)
    # a 4 x 4 square, clipped where it crosses the border
    assert ((blanked >= 4) & (blanked <= 16)).all()
    assert ((out == 0) | (out == 1)).all()


@pytest.mark.parametrize("zoom", [0.0, 0.3])
def test_a_shift_only_transform_keeps_the_image_mass_away_from_borders(zoom):
    # a blob in the middle of a large canvas: shifting/zooming mildly keeps most of its mass
    x = torch.zeros(4, 1, 32, 32)
    x[..., 14:18, 14:18] = 1.0
    out = random_affine(x, torch.Generator().manual_seed(0), 0.1, 0.0, zoom)
    mass = out.sum(dim=(1, 2, 3)) / x.sum(dim=(1, 2, 3))  # (B,): area scales by zoom^2
    lo, hi = (1 - zoom) ** 2 * 0.9, (1 + zoom) ** 2 * 1.1
    assert ((mass > lo) & (mass < hi)).all(), mass
