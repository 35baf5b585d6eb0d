"""Random affine augmentation of a batch on its own device, one ``affine_grid`` + ``grid_sample``.
The ranges mean what Keras's ``RandomRotation``, ``RandomZoom`` and ``RandomTranslation`` mean
(docs/parity.md #13): ±``rotation`` degrees, a zoom factor in 1 ± ``zoom`` (above 1 zooms in)
and ± ``shift`` of the image size, uniform per image; uncovered area is black."""

import math

import torch
import torch.nn.functional as F


def affine_params(
    n: int, rotation: float, zoom: float, shift: float, device=None, generator=None
) -> dict[str, torch.Tensor]:
    """Per-image angle (radians), zoom factor and shifts (fractions of the size), uniform."""

    def uniform(bound: float) -> torch.Tensor:
        return (2 * torch.rand(n, device=device, generator=generator) - 1) * bound

    return {
        "angle": uniform(math.radians(rotation)),
        "zoom": 1 + uniform(zoom),
        "shift_x": uniform(shift),
        "shift_y": uniform(shift),
    }


def random_affine(
    x: torch.Tensor, rotation: float = 0.0, zoom: float = 0.0, shift: float = 0.0, generator=None
) -> torch.Tensor:
    """``x`` (N, C, H, W) with each image rotated, zoomed and shifted at random, drawn from
    ``generator`` or else torch's global one (which the training system seeds per epoch)."""
    if rotation == zoom == shift == 0:
        return x
    return apply_affine(x, affine_params(len(x), rotation, zoom, shift, x.device, generator))


def apply_affine(x: torch.Tensor, p: dict[str, torch.Tensor]) -> torch.Tensor:
    """Each image of ``x`` rotated, zoomed and shifted about its centre by ``p`` (as from
    ``affine_params``), in one bilinear resampling with 0 outside."""
    # theta maps output coordinates to input ones (normalised to [-1, 1]): the inverse of
    # "rotate by angle, scale by zoom, then move by shift".
    cos, sin, s = torch.cos(p["angle"]), torch.sin(p["angle"]), p["zoom"]
    dx, dy = p["shift_x"], p["shift_y"]
    row_x = torch.stack([cos / s, sin / s, -2 * (cos * dx + sin * dy) / s], 1)
    row_y = torch.stack([-sin / s, cos / s, -2 * (-sin * dx + cos * dy) / s], 1)
    theta = torch.stack([row_x, row_y], 1).to(x.dtype)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
