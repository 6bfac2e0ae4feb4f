"""The one preprocessing of the orientation family (stored in ``model.json`` as ``preprocess``).

A page becomes an *ink map* once (:meth:`PagePreprocess.page`): reduced so that its short side
is at most ``work`` pixels, grey, and the distance of every pixel from the page's median
(background) level, scaled by the ink's own level and clipped to [0, 1]. Dark text on light
paper and light text on dark paper give the same map, and the fill that rotation brings in is
0 (background), so no rotated corner gives the angle away.

A *view* (:meth:`PagePreprocess.view`) is what a model sees: the ink map turned by ``angle``
degrees (about the page centre, PIL's convention), cropped to the square that holds its ink
(1%..99% quantiles of the ink pixels in each axis, grown by ``margin`` of that extent on every
side, at least ``min_fraction`` of the page's short side) and resampled to ``side`` x ``side``.
Rotation, crop and resize are one bilinear sampling (after an average-pool when the square is
at least twice ``side``, against aliasing). Training turns pages by random angles with the
same call; inference calls it with 0 (the skew view).

The orientation head reads *crops* (:meth:`PagePreprocess.orientation_views`): squares of
``orientation_zoom`` times the view's side, centred on ink pixels, of the page turned back by
the skew found. They show glyphs at ``1 / orientation_zoom`` times the view's scale, where
"p" and "d" differ by more than a few pixels; inference averages the log-probabilities of
``orientation_crops`` of them spread over the ink, training draws one at a random ink
pixel. A zoom of 1 is the whole view (checkpoints written before the crops).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

MAX_POINTS = 20000   # ink pixels kept per page (evenly strided) for crops and the classical method


class Jitter(NamedTuple):
    """Training's changes to a view: ``zoom`` scales the square's side, ``shift_x/y`` move its
    centre by that fraction of the side, ``stretch`` widens the view's content along x (a
    wider or narrower font) and ``shear`` slants it (x moves by ``shear`` x y: an italic)."""

    zoom: float = 1.0
    shift_x: float = 0.0
    shift_y: float = 0.0
    stretch: float = 1.0
    shear: float = 0.0

    @classmethod
    def draw(cls, rng: np.random.Generator, strength: float, warp: bool = True) -> "Jitter":
        """Zoom by up to 20% x ``strength`` either way, shift by up to 7% x ``strength``;
        with ``warp``, stretch by up to 20% and shear by up to 0.3 (x ``strength``)."""
        u = rng.uniform(-1, 1, 5) * strength
        return cls(math.exp(0.2 * u[0]), 0.07 * u[1], 0.07 * u[2],
                   math.exp(0.2 * u[3]) if warp else 1.0, 0.3 * u[4] if warp else 0.0)


class PageInk(NamedTuple):
    """``ink`` float32 (H, W) in [0, 1]; ``points`` float32 (N, 2) x, y of ink pixel centres;
    ``scale`` = ink map size / page size."""

    ink: np.ndarray
    points: np.ndarray
    scale: float


def rotation(angle: float) -> np.ndarray:
    """2x2 matrix taking (x, y) offsets from the centre (image axes, y down) to where
    ``Image.rotate(angle)`` puts them."""
    c, s = math.cos(math.radians(angle)), math.sin(math.radians(angle))
    return np.array([[c, s], [-s, c]])


@dataclass(frozen=True)
class PagePreprocess:
    """How a page becomes model input (see the module docstring)."""

    side: int = 224              # the square the model sees, in pixels
    work: int = 448              # pages are reduced until their short side is at most this
    margin: float = 0.08         # the square grows by this fraction of the ink's extent a side
    min_fraction: float = 0.3    # the square is at least this fraction of the page's short side
    channels: int = 1            # grey ink maps only
    orientation_zoom: float = 0.5   # orientation crops: this fraction of the view's square
    orientation_crops: int = 8      # crops averaged at inference

    def __post_init__(self):
        if self.side < 16 or self.work < self.side:
            raise ValueError(f"PagePreprocess: expected 16 <= side <= work, found side {self.side}, "
                             f"work {self.work}")
        if self.channels != 1:
            raise ValueError(f"PagePreprocess: orientation models see 1 channel (ink), found {self.channels}")
        if not (0.1 <= self.orientation_zoom <= 1.0 and self.orientation_crops >= 1):
            raise ValueError(f"PagePreprocess: expected orientation_zoom in [0.1, 1] and orientation_crops "
                             f">= 1, found {self.orientation_zoom}, {self.orientation_crops}")

    def to_json(self) -> dict:
        """Fields plus height/width (= side), read by tools that size a generic input."""
        return {**asdict(self), "height": self.side, "width": self.side}

    @classmethod
    def from_json(cls, data: dict) -> "PagePreprocess":
        """Checkpoints written before orientation crops read the whole view (zoom 1)."""
        return cls(**{"orientation_zoom": 1.0, "orientation_crops": 1,
                      **{k: v for k, v in data.items() if k not in ("height", "width")}})

    # --- the page's ink map ---------------------------------------------------------------------
    def page(self, image: Image.Image) -> PageInk:
        """The ink map and ink pixels of a decoded page (any mode)."""
        grey = image.convert("L")
        scale = min(1.0, self.work / max(1, min(grey.size)))
        if scale < 1.0:
            size = (max(1, round(grey.width * scale)), max(1, round(grey.height * scale)))
            grey = grey.resize(size, Image.BILINEAR, reducing_gap=2.0)
        a = np.asarray(grey, np.float32) * (1 / 255)
        ink = np.abs(a - np.median(a[::3, ::3]))
        level = max(0.15, float(np.percentile(ink[::2, ::2], 99.5)))
        ink = np.minimum(ink * (1 / level), 1.0)
        ys, xs = np.nonzero(ink >= 0.5)
        stride = max(1, math.ceil(len(xs) / MAX_POINTS))
        points = np.stack([xs[::stride], ys[::stride]], 1).astype(np.float32) + 0.5
        return PageInk(ink, points, grey.width / image.width)

    # --- views --------------------------------------------------------------------------------
    def square(self, ink: PageInk, angle: float) -> tuple[np.ndarray, float]:
        """(centre x, y; side) of the view's square, in the turned ink map's pixels."""
        h, w = ink.ink.shape
        centre = np.array([w / 2, h / 2])
        short = min(w, h)
        if len(ink.points) < 8:
            return centre, float(short)
        turned = (ink.points - centre) @ rotation(angle).T + centre
        lo, hi = np.quantile(turned, [0.01, 0.99], axis=0)
        extent = float((hi - lo).max())
        side = max(extent * (1 + 2 * self.margin), self.min_fraction * short, 8.0)
        return (lo + hi) / 2, side

    def view(self, ink: PageInk, angle: float = 0.0, jitter: Jitter | None = None,
             at: np.ndarray | None = None) -> np.ndarray:
        """float32 (side, side): the ink map turned by ``angle``, cropped to its ink, resampled;
        ``jitter`` (training) changes the crop and warps the view; ``at`` (x, y in the ink map)
        makes it an orientation crop centred there."""
        square = self.square(ink, angle)
        return self._sample(ink.ink, angle, *self._crop(ink, angle, square, at), jitter or Jitter())

    def _crop(self, ink: PageInk, angle: float, square: tuple[np.ndarray, float],
              at: np.ndarray | None) -> tuple[np.ndarray, float]:
        """The view's ``square`` (centre, side), or with ``at`` the orientation crop's: centred
        on that ink-map point as turned by ``angle``, ``orientation_zoom`` of the side."""
        if at is None:
            return square
        h, w = ink.ink.shape
        middle = np.array([w / 2, h / 2])
        return middle + rotation(angle) @ (at - middle), square[1] * self.orientation_zoom

    def _sample(self, src: np.ndarray, angle: float, q: np.ndarray, length: float, j: Jitter) -> np.ndarray:
        """The square of side ``length`` centred at ``q`` (turned frame) of ``src`` turned by
        ``angle``, warped by ``j``, as one bilinear sampling."""
        length *= j.zoom
        q = q + np.array([j.shift_x, j.shift_y]) * length
        h, w = src.shape
        k = int(length // self.side)
        if k >= 2:  # average-pool first: bilinear sampling alone would alias
            src = src[: h // k * k, : w // k * k].reshape(h // k, k, w // k, k).mean((1, 3))
        ph, pw = src.shape[0] * max(k, 1), src.shape[1] * max(k, 1)  # pooled map, in ink pixels
        centre = np.array([w / 2, h / 2])
        # view (normalised) -> turned frame: stretch along x and shear x by y, then -> ink map
        back = rotation(angle).T                          # turned frame -> ink map
        origin = centre + back @ (q - centre)            # the square's centre in the ink map
        inv = back @ np.array([[1 / j.stretch, j.shear], [0.0, 1.0]])
        theta = np.array([[inv[0, 0] * length / pw, inv[0, 1] * length / pw, 2 * origin[0] / pw - 1],
                          [inv[1, 0] * length / ph, inv[1, 1] * length / ph, 2 * origin[1] / ph - 1]])
        x = torch.from_numpy(np.ascontiguousarray(src))[None, None]
        grid = F.affine_grid(torch.from_numpy(theta).float()[None], [1, 1, self.side, self.side],
                             align_corners=False)
        out = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        return out[0, 0].numpy()

    def views(self, inks: list[PageInk], angles) -> np.ndarray:
        """float32 (B, 1, side, side) views of pages turned by ``angles`` (one per page)."""
        return np.stack([self.view(ink, float(a)) for ink, a in zip(inks, angles)])[:, None]

    # --- orientation crops ----------------------------------------------------------------------
    def crop_centres(self, ink: PageInk, count: int, rng: np.random.Generator) -> list[np.ndarray | None]:
        """Where orientation crops sit: ``count`` ink pixels spread over the page (the first
        drawn by ``rng``, each next the farthest from those chosen, among at most 2,000 of
        them); one ``None`` (the whole view) at zoom 1 or on a page with almost no ink."""
        if self.orientation_zoom >= 1.0 or len(ink.points) < 8:
            return [None]
        points = ink.points[:: max(1, len(ink.points) // 2000)]
        chosen = [points[rng.integers(len(points))]]
        nearest = np.full(len(points), np.inf)
        for _ in range(count - 1):
            nearest = np.minimum(nearest, ((points - chosen[-1]) ** 2).sum(1))
            chosen.append(points[int(nearest.argmax())])
        return chosen

    def orientation_view(self, ink: PageInk, angle: float, rng: np.random.Generator,
                         jitter: Jitter | None = None) -> np.ndarray:
        """One training crop of the page turned by ``angle``, at an ink pixel drawn by ``rng``."""
        return self.view(ink, angle, jitter, self.crop_centres(ink, 1, rng)[0])

    def orientation_views(self, inks: list[PageInk], angles) -> tuple[np.ndarray, np.ndarray]:
        """Inference's crops of pages turned by ``angles``: float32 (N, 1, side, side) and (N,)
        the page each crop belongs to (``orientation_crops`` a page, the same for the same page)."""
        crops, owner = [], []
        for i, (ink, a) in enumerate(zip(inks, angles)):
            a = float(a)
            square = self.square(ink, a)   # once a page, not once a crop
            for at in self.crop_centres(ink, self.orientation_crops, np.random.default_rng(0)):
                crops.append(self._sample(ink.ink, a, *self._crop(ink, a, square, at), Jitter()))
                owner.append(i)
        return np.stack(crops)[:, None], np.array(owner)
