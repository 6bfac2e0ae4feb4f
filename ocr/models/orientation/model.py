"""The orientation model: a fine skew classifier and a 4-way orientation classifier in one module.

Both heads see :class:`~ocr.models.orientation.preprocess.PagePreprocess` views (B, 1, S, S).

Skew (``skew_logits``): the view, tapered by a radial Hann window (so the square's edges and
corners add nothing), goes through a 2-D FFT; the log magnitude is sampled on a polar grid
(``radii`` radii x 360 directions, one every 0.5 degree over the half turn the magnitude of a
real image repeats over) and standardised per radius. Text lines put a ridge of energy at the
direction normal to them (line pitch and its harmonics) and another along them (character
pitch): a font-independent pattern. Turning the page shifts this map along its direction axis,
so a small CNN with circular padding along that axis, pooled over radius, scores every
direction and is equivariant by construction: what it learns at one angle holds at all. Scores
of directions a quarter turn apart are merged (log-sum-exp) into the ``AngleBuckets(90, 0.5)``
logits (180 buckets of 0.5 degree); decoding takes the expected value around the best bucket.

Orientation (``orientation_logits``): a plain CNN scores how upright a view looks (from its
features averaged over the view: glyph shapes; optionally also over a coarse grid: where lines
start and end); the logit of orientation ``k * 90`` is the score of the view turned back by ``k``
quarter turns. Turning the input a quarter turn permutes the logits exactly, so upright pages
alone teach all four classes, and ingested pages of unknown rotation need no labels beyond
their angle.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ocr.models.orientation.angles import AngleBuckets
from ocr.models.registry import arch_of

DIRECTIONS = 360          # polar samples over a half turn: one per 0.5 degree


def _conv_bn(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout),
                         nn.ReLU(inplace=True))


class PolarSpectrum(nn.Module):
    """(B, 1, S, S) views -> (B, 1, radii, 360) standardised log-magnitude spectra; direction
    ``j`` is ``-45 + j / 2`` degrees, so a page turned by ``a`` degrees puts its line normal at
    direction ``a + 90`` (and its line direction at ``a``)."""

    def __init__(self, side: int, radii: int = 48, r_min: float = 2.0, r_max: float = 0.9):
        super().__init__()
        yy, xx = torch.meshgrid(torch.arange(side) + 0.5 - side / 2, torch.arange(side) + 0.5 - side / 2,
                                indexing="ij")
        r = torch.sqrt(xx**2 + yy**2) / (side / 2)
        self.register_buffer("window", (0.5 + 0.5 * torch.cos(math.pi * r.clamp(max=1.0))), persistent=False)
        theta = torch.deg2rad(-45 + 0.5 * torch.arange(DIRECTIONS, dtype=torch.float64))
        rho = torch.linspace(r_min, r_max * side / 2, radii, dtype=torch.float64)
        # frequency (fx, fy) of a pattern turned by phi sits at angle phi + 90 with y pointing down:
        # x = r cos(t), y = -r sin(t); +1/S: fftshift puts frequency 0 at pixel S/2, not the centre
        gx = rho[:, None] * torch.cos(theta)[None, :] / (side / 2) + 1 / side
        gy = -rho[:, None] * torch.sin(theta)[None, :] / (side / 2) + 1 / side
        self.register_buffer("grid", torch.stack([gx, gy], -1).float()[None], persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        x = x.float()
        x = (x - x.mean((2, 3), keepdim=True)) * self.window
        mag = torch.fft.fftshift(torch.fft.fft2(x).abs(), dim=(-2, -1))
        logmag = torch.log(mag + 1e-3)
        polar = F.grid_sample(logmag, self.grid.expand(len(x), -1, -1, -1), mode="bilinear",
                              align_corners=False)
        mean, std = polar.mean(3, keepdim=True), polar.std(3, keepdim=True)
        return (polar - mean) / (std + 1e-5)


class SkewHead(nn.Module):
    """Polar spectrum -> per-direction scores: 2-D convs circular along direction, pooled over
    radius (mean and max), then 1-D circular convs -> (B, 360) -> (B, 180) bucket logits."""

    def __init__(self, side: int, channels: tuple[int, ...] = (8, 16, 16), radii: int = 48):
        super().__init__()
        self.spectrum = PolarSpectrum(side, radii)
        layers, cin = [], 1
        for i, c in enumerate(channels):
            layers += [nn.Conv2d(cin, c, (5 if i == 0 else 3, 5 if i == 0 else 3),
                                 stride=(1 if i == 0 else 2, 1), padding=0, bias=False),
                       nn.BatchNorm2d(c), nn.ReLU(inplace=True)]
            cin = c
        self.convs = nn.Sequential(*layers)
        self.line = nn.Sequential(nn.Conv1d(2 * cin, cin, 9, padding=4, padding_mode="circular"),
                                  nn.ReLU(inplace=True),
                                  nn.Conv1d(cin, 1, 5, padding=2, padding_mode="circular"))

    def forward(self, x: Tensor) -> Tensor:
        y = self.spectrum(x)
        for layer in self.convs:
            if isinstance(layer, nn.Conv2d):  # circular along direction, zeros along radius
                kh, kw = layer.kernel_size
                y = F.pad(F.pad(y, (kw // 2, kw // 2, 0, 0), mode="circular"), (0, 0, kh // 2, kh // 2))
            y = layer(y)
        y = torch.cat([y.mean(2), y.amax(2)], 1)                   # (B, 2C, 360)
        scores = self.line(y)[:, 0]                                 # (B, 360)
        half = DIRECTIONS // 2
        return torch.logsumexp(torch.stack([scores[:, :half], scores[:, half:]]), 0)  # (B, 180)


class UprightScore(nn.Module):
    """A plain CNN: (B, 1, S, S) -> (B,) how upright each view looks: a linear score of the
    features averaged over the view, plus (``layout`` > 0) one of the features averaged over a
    ``layout`` x ``layout`` grid, which sees where the text sits (lines flush left, ragged right)."""

    def __init__(self, channels: tuple[int, ...] = (8, 16, 32, 32, 64, 64, 128),
                 strides: tuple[int, ...] = (2, 2, 2, 1, 2, 1, 2), layout: int = 0):
        super().__init__()
        if len(channels) != len(strides):
            raise ValueError(f"orientation channels and strides: expected lists of one length, "
                             f"found {len(channels)} and {len(strides)}")
        layers, cin = [], 1
        for c, s in zip(channels, strides):
            layers.append(_conv_bn(cin, c, s))
            cin = c
        self.features = nn.Sequential(*layers)
        self.score = nn.Linear(cin, 1)
        self.layout = layout
        self.layout_score = nn.Linear(cin * layout * layout, 1) if layout else None

    def forward(self, x: Tensor) -> Tensor:
        f = self.features(x)
        score = self.score(f.mean((2, 3)))[:, 0]
        if self.layout_score is not None:
            score = score + self.layout_score(F.adaptive_avg_pool2d(f, self.layout).flatten(1))[:, 0]
        return score


class OrientationNet(nn.Module):
    """``forward(skew_views, orientation_views=None)`` -> {"skew": (B, 180) bucket logits,
    "orientation": (B, 4) logits of 0/90/180/270}; the orientation views default to the skew ones.
    ``channels_last``: trains faster in channels-last memory (1.3x a step on the CPU), a hint
    the training loop follows."""

    channels_last = True

    def __init__(self, side: int, skew_channels: tuple[int, ...], radii: int,
                 orientation_channels: tuple[int, ...], orientation_strides: tuple[int, ...],
                 layout: int = 0):
        super().__init__()
        self.buckets = AngleBuckets(90.0, 0.5)
        self.skew = SkewHead(side, skew_channels, radii)
        self.upright = UprightScore(orientation_channels, orientation_strides, layout)
        self.side = side
        self.arch: dict | None = None   # set by the registry: how to rebuild this model

    def _check(self, x: Tensor) -> None:
        if x.dim() != 4 or x.shape[1] != 1 or x.shape[2:] != (self.side, self.side):
            raise ValueError(f"expected views of shape (B, 1, {self.side}, {self.side}), found "
                             f"{tuple(x.shape)}")

    def skew_logits(self, x: Tensor) -> Tensor:
        self._check(x)
        return self.skew(x)

    def orientation_logits(self, x: Tensor) -> Tensor:
        """Logit ``k``: the upright score of the view turned back (clockwise) by ``k`` quarter turns."""
        self._check(x)
        turned = torch.cat([torch.rot90(x, -k, (2, 3)) for k in range(4)])
        return self.upright(turned).view(4, len(x)).t()

    def forward(self, x: Tensor, orientation_views: Tensor | None = None) -> dict[str, Tensor]:
        return {"skew": self.skew_logits(x),
                "orientation": self.orientation_logits(x if orientation_views is None else orientation_views)}

    def arch_config(self) -> dict:
        """JSON-able dict that rebuilds this model with ``ORIENTERS.create(**cfg)``."""
        return arch_of(self)
