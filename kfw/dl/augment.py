"""Batch augmentation of images with torch operations, on whatever device the batch lives.

Each image of a (B, C, H, W) batch gets its own random affine map: a rotation by an angle in
``[-rotate, rotate]`` degrees, a zoom by a factor in ``[1 - zoom, 1 + zoom]`` and a shift by
up to ``shift`` of the image size along each axis. The maps go through
``F.affine_grid`` + ``F.grid_sample`` (bilinear, zeros outside the image), so the output is a
convex combination of input pixels and zeros: pixels in [0, 1] stay in [0, 1]. ``cutout``
then blanks one random ``cutout`` x ``cutout`` square per image (DeVries & Taylor, 2017).

``affine_grid`` maps output coordinates to input coordinates (both in [-1, 1]), so the matrix
is the inverse of the motion one sees: zooming in by ``s`` samples a region ``1 / s`` as large.
All the randomness comes from the ``torch.Generator`` passed in, which must live on the
batch's device: the same seed gives the same batch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class Augment:
    """Magnitudes of the random transforms; all zero is the identity.

    Parameters
    ----------
    shift : float
        Largest shift, as a fraction of the image's height / width.
    rotate : float
        Largest rotation, in degrees.
    zoom : float
        Largest relative change of scale.
    cutout : int
        Side of the square blanked in each image, in pixels (0: none).
    """

    shift: float = 0.1
    rotate: float = 10.0
    zoom: float = 0.1
    cutout: int = 0

    @property
    def identity(self) -> bool:
        return self.shift == 0 and self.rotate == 0 and self.zoom == 0 and self.cutout == 0

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """A randomly transformed copy of the batch ``x`` (B, C, H, W)."""
        if self.identity:
            return x
        if self.shift or self.rotate or self.zoom:
            x = random_affine(x, generator, self.shift, self.rotate, self.zoom)
        if self.cutout:
            x = cutout(x, generator, self.cutout)
        return x


def _uniform(
    n: int, bound: float, generator: torch.Generator, device: torch.device
) -> torch.Tensor:
    # U(-bound, bound), shape (n,)
    return (torch.rand(n, generator=generator, device=device) * 2 - 1) * bound


def random_affine(
    x: torch.Tensor, generator: torch.Generator, shift: float, rotate: float, zoom: float
) -> torch.Tensor:
    """Rotate, zoom and shift every image of ``x`` (B, C, H, W) by its own random amounts."""
    B, dev = x.shape[0], x.device
    angle = _uniform(B, math.radians(rotate), generator, dev)  # (B,)
    scale = 1.0 + _uniform(B, zoom, generator, dev)  # (B,)
    # affine_grid's coordinates span [-1, 1]: a shift of a fraction f of the image is 2 f
    tx = _uniform(B, 2 * shift, generator, dev)
    ty = _uniform(B, 2 * shift, generator, dev)
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack(
        [torch.stack([cos, -sin, tx], dim=1), torch.stack([sin, cos, ty], dim=1)], dim=1
    )  # (B, 2, 3)
    grid = F.affine_grid(theta.to(x.dtype), list(x.shape), align_corners=False)  # (B, H, W, 2)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def cutout(x: torch.Tensor, generator: torch.Generator, size: int) -> torch.Tensor:
    """Blank one ``size`` x ``size`` square (clipped at the border) at a random place per image."""
    B, _, H, W = x.shape
    dev = x.device
    cy = torch.randint(0, H, (B, 1, 1), generator=generator, device=dev)
    cx = torch.randint(0, W, (B, 1, 1), generator=generator, device=dev)
    ys = torch.arange(H, device=dev).view(1, H, 1)
    xs = torch.arange(W, device=dev).view(1, 1, W)
    top, left = cy - size // 2, cx - size // 2
    inside = (ys >= top) & (ys < top + size) & (xs >= left) & (xs < left + size)  # (B, H, W)
    return x * (~inside).unsqueeze(1).to(x.dtype)


def shift(x: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """``x`` (B, C, H, W) moved ``dy`` pixels down and ``dx`` right, zeros filling in."""
    if dy == 0 and dx == 0:
        return x
    H, W = x.shape[-2:]
    padded = F.pad(x, (max(dx, 0), max(-dx, 0), max(dy, 0), max(-dy, 0)))
    top, left = max(-dy, 0), max(-dx, 0)
    return padded[..., top : top + H, left : left + W]


# the shifted copies test-time augmentation averages over, in order of use
TTA_SHIFTS = ((0, 1), (0, -1), (1, 0), (-1, 0), (1, 1), (-1, -1), (1, -1), (-1, 1))
