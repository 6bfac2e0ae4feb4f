"""Online augmentation of preprocessed text-line batches, on the training device.

Works on the normalised (B, C, H, W) batch that ``Preprocess`` makes, so it adds no decode
or resize work and never changes what serving sees. ``strength`` in [0, 1] scales every
effect; at 1 a line is rotated by up to 3 degrees, sheared by up to 0.3, scaled by up to
10% (and its width alone by up to 25%, like a condensed or wide font), shifted by up to 2
pixels, its strokes thickened or thinned (a grey-level erosion or dilation, as between a
light and a bold face), blurred, darkened or lightened, and given noise.

Detection batches (:func:`augment_detection`) are zoomed and shifted with their boxes, then
get the same blur, contrast, brightness and noise.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

MIN_SIDE = 1.0   # detection: boxes under one model-input pixel on a side are dropped


def uniform(n: int, limit: float, g: torch.Generator, device) -> Tensor:
    return (torch.rand(n, generator=g, device=device) * 2 - 1) * limit


def random_affine(x: Tensor, strength: float, g: torch.Generator) -> Tensor:
    """Small rotation, shear, scale and shift per sample (border pixels fill the gaps)."""
    b, _, h, w = x.shape
    dev = x.device
    angle = uniform(b, math.radians(3) * strength, g, dev)
    shear = uniform(b, 0.3 * strength, g, dev)
    scale = 1 + uniform(b, 0.1 * strength, g, dev)
    stretch = 1 + uniform(b, 0.25 * strength, g, dev)  # > 1: a wider font
    shift_x = uniform(b, 2 * strength, g, dev) * 2 / w
    shift_y = uniform(b, 2 * strength, g, dev) * 2 / h
    aspect = h / w  # grid coordinates are normalised per axis: rotate in pixel space
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack([
        torch.stack([cos / stretch, (-sin + shear) * aspect / stretch, shift_x], 1),
        torch.stack([sin / aspect, cos, shift_y], 1),
    ], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def random_blur(x: Tensor, strength: float, g: torch.Generator) -> Tensor:
    """A 3x3 Gaussian blur on about half of the samples."""
    sigma = 0.3 + 0.7 * strength
    k = torch.exp(-torch.tensor([1.0, 0.0, 1.0], device=x.device) / (2 * sigma**2))
    kernel = (k[:, None] * k[None, :]) / (k.sum() ** 2)
    c = x.shape[1]
    blurred = F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), kernel.expand(c, 1, 3, 3), groups=c)
    pick = (torch.rand(x.shape[0], 1, 1, 1, generator=g, device=x.device) < 0.5).to(x.dtype)
    return pick * blurred + (1 - pick) * x


def random_stroke(x: Tensor, strength: float, g: torch.Generator) -> Tensor:
    """Thicker or thinner strokes: blend towards a 3x3 grey-level dilation or erosion."""
    b = x.shape[0]
    dilated = F.max_pool2d(x, 3, stride=1, padding=1)
    eroded = -F.max_pool2d(-x, 3, stride=1, padding=1)
    amount = uniform(b, 0.6 * strength, g, x.device).view(b, 1, 1, 1)  # <0 erode, >0 dilate
    target = torch.where(amount > 0, dilated, eroded)
    return x + amount.abs() * (target - x)


def random_photometric(x: Tensor, strength: float, g: torch.Generator) -> Tensor:
    """Contrast and brightness per sample, then Gaussian noise."""
    b, dev = x.shape[0], x.device
    contrast = 1 + uniform(b, 0.4 * strength, g, dev).view(b, 1, 1, 1)
    brightness = uniform(b, 0.3 * strength, g, dev).view(b, 1, 1, 1)
    noise = torch.randn(x.shape, generator=g, device=dev) * (0.06 * strength)
    return x * contrast + brightness + noise


def augment_batch(x: Tensor, strength: float, g: torch.Generator) -> Tensor:
    """Every effect above at ``strength``; identity at 0."""
    if strength <= 0:
        return x
    x = random_affine(x, strength, g)
    x = random_stroke(x, strength, g)
    x = random_blur(x, strength, g)
    return random_photometric(x, strength, g)


# --- detection: box-aware --------------------------------------------------------------
def random_zoom(images: torch.Tensor, targets: list[dict], strength: float, g: torch.Generator):
    """Per sample, scale each axis by up to 20% x ``strength`` and shift by up to 5% x
    ``strength`` of the side (edge pixels fill what comes in); boxes move with the pixels, are
    clipped, and dropped when under half their area or :data:`MIN_SIDE` remains."""
    b, _, h, w = images.shape
    dev = images.device
    sx, sy = 1 + uniform(b, 0.2 * strength, g, dev), 1 + uniform(b, 0.2 * strength, g, dev)
    tx, ty = uniform(b, 0.1 * strength, g, dev), uniform(b, 0.1 * strength, g, dev)
    zero = torch.zeros_like(sx)
    theta = torch.stack([torch.stack([1 / sx, zero, tx], 1), torch.stack([zero, 1 / sy, ty], 1)], 1)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    images = F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)
    out = []
    for i, t in enumerate(targets):
        boxes = t["boxes"]
        # output x (normalised to [-1, 1]) = s * (input x - t): the inverse of the sampling grid
        nx = (boxes[:, 0::2] * (2 / w) - 1 - tx[i]) * sx[i]
        ny = (boxes[:, 1::2] * (2 / h) - 1 - ty[i]) * sy[i]
        moved = torch.stack([(nx[:, 0] + 1) * w / 2, (ny[:, 0] + 1) * h / 2,
                             (nx[:, 1] + 1) * w / 2, (ny[:, 1] + 1) * h / 2], 1)
        clipped = torch.stack([moved[:, 0].clamp(0, w), moved[:, 1].clamp(0, h),
                               moved[:, 2].clamp(0, w), moved[:, 3].clamp(0, h)], 1)
        bw, bh = clipped[:, 2] - clipped[:, 0], clipped[:, 3] - clipped[:, 1]
        area = (moved[:, 2] - moved[:, 0]) * (moved[:, 3] - moved[:, 1])
        keep = (bw >= MIN_SIDE) & (bh >= MIN_SIDE) & (bw * bh >= 0.5 * area)
        out.append({"boxes": clipped[keep], "labels": t["labels"][keep]})
    return images, out


def augment_detection(images: torch.Tensor, targets: list[dict], strength: float, g: torch.Generator):
    """Zoom/shift (boxes follow), blur, contrast, brightness and noise; identity at 0."""
    if strength <= 0:
        return images, targets
    images, targets = random_zoom(images, targets, strength, g)
    return random_photometric(random_blur(images, strength, g), strength, g), targets
