"""What scanners, cameras and screens do to a rendered line, applied after composition.

:class:`Degradation` holds the chance and strength of each effect; :func:`degrade` applies
them in the order they happen in the world: a dot-matrix panel shows the text as dots
(LED boards, receipt printers, old displays), the page is lit unevenly and seen at an angle
(perspective), the sensor adds noise, the image is stored small and shown large (downscale
then upscale), and saved as JPEG. Every draw comes from the ``rng`` passed in.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image

Range = tuple[float, float]


@dataclass(frozen=True)
class Degradation:
    """Each effect: the chance it happens to a line, and a (lo, hi) range of its strength.

    lighting: the brightness falls by up to this fraction across the line (a ramp in a
        random direction), as under a desk lamp or in a photo;
    perspective: each corner moves by up to this fraction of the line height;
    noise: Gaussian sensor noise, sigma in grey levels;
    rescale: the line is shrunk to this fraction of its size, then brought back
        (``nearest`` upscaling, as screens and screenshots do, with ``pixelate``'s chance);
    jpeg: JPEG quality;
    dot_matrix: the text becomes round dots on a square grid, this many rows of dots over
        the ink's height (a 5x7 panel's digits and capitals are 7 dots tall; a cell is lit
        where the glyphs cover enough of it; unlit cells show as faint dots, as on LED panels).
    """

    dot_matrix_p: float = 0.0
    dot_matrix: Range = (7.0, 10.0)

    lighting_p: float = 0.0
    lighting: Range = (0.1, 0.45)
    perspective_p: float = 0.0
    perspective: Range = (0.02, 0.12)
    noise_p: float = 0.0
    noise: Range = (2.0, 10.0)
    rescale_p: float = 0.0
    rescale: Range = (0.45, 0.9)
    pixelate: float = 0.0
    jpeg_p: float = 0.0
    jpeg: Range = (25.0, 85.0)

    @property
    def active(self) -> bool:
        return any((self.dot_matrix_p, self.lighting_p, self.perspective_p, self.noise_p,
                    self.rescale_p, self.jpeg_p))


def _fill(img: Image.Image):
    """The colour of the line's border (what a geometric transform shows outside the image)."""
    a = np.asarray(img)
    border = np.concatenate([a[0], a[-1], a[:, 0], a[:, -1]])
    if a.ndim == 3:
        return tuple(int(v) for v in np.median(border, axis=0).reshape(-1))
    return int(np.median(border))


def _lighting(img: Image.Image, amount: float, rng) -> Image.Image:
    a = np.asarray(img, dtype=np.float32)
    h, w = a.shape[:2]
    theta = rng.uniform(0, 2 * np.pi)
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    ramp = (xs / max(w, 1)) * np.cos(theta) + (ys / max(h, 1)) * np.sin(theta) * (h / max(w, 1))
    ramp = (ramp - ramp.min()) / max(float(np.ptp(ramp)), 1e-6)
    gain = 1.0 - amount * ramp
    a = a * (gain[..., None] if a.ndim == 3 else gain)
    return Image.fromarray(np.clip(a + 0.5, 0, 255).astype(np.uint8), img.mode)


def _dot_matrix(img: Image.Image, rows: float, rng) -> Image.Image:
    """The line as dots: cells ``rows`` to the ink's height, lit where the ink covers a third
    of them (fewer rows than ~7 leave digits no one can tell apart)."""
    a = np.asarray(img, dtype=np.float32)
    grey = a.mean(axis=2) if a.ndim == 3 else a
    ground = float(np.median(np.concatenate([grey[0], grey[-1], grey[:, 0], grey[:, -1]])))
    contrast = np.abs(grey - ground)
    if contrast.max() < 8:                      # nothing drawn: nothing to light
        return img
    ink = contrast > 0.5 * contrast.max()
    h, w = ink.shape
    inked = np.flatnonzero(ink.any(axis=1))
    step = max(2, int(round((inked[-1] + 1 - inked[0]) / rows)))
    rows, cols = -(-h // step), -(-w // step)
    padded = np.zeros((rows * step, cols * step), bool)
    padded[:h, :w] = ink
    lit = padded.reshape(rows, step, cols, step).mean(axis=(1, 3)) > rng.uniform(0.25, 0.4)
    ys, xs = np.mgrid[0:step, 0:step].astype(np.float32) + 0.5 - step / 2
    dot = np.hypot(ys, xs) <= step * rng.uniform(0.32, 0.45)            # one round dot
    shown = np.kron(lit, dot)[:h, :w]
    unlit = np.kron(~lit, dot)[:h, :w]
    ink_colour = np.array(a[ink].mean(axis=0), dtype=np.float32)
    ground_colour = (np.median(a[~ink], axis=0).astype(np.float32) if (~ink).any()
                     else np.zeros_like(ink_colour))
    glow = float(rng.uniform(0.0, 0.15))
    out = np.broadcast_to(ground_colour, a.shape).copy()
    out[unlit] = ground_colour + glow * (ink_colour - ground_colour)
    out[shown] = ink_colour
    return Image.fromarray(np.clip(out + 0.5, 0, 255).astype(np.uint8), img.mode)


def _perspective_coeffs(src: list, dst: list) -> list:
    """Coefficients for ``Image.transform(PERSPECTIVE)`` mapping output corners ``dst`` to input ``src``."""
    rows = []
    for (x, y), (u, v) in zip(dst, src):
        rows.append([x, y, 1, 0, 0, 0, -u * x, -u * y])
        rows.append([0, 0, 0, x, y, 1, -v * x, -v * y])
    b = np.array(src, dtype=np.float64).reshape(8)
    return np.linalg.solve(np.array(rows, dtype=np.float64), b).tolist()


def _perspective(img: Image.Image, amount: float, rng) -> Image.Image:
    w, h = img.size
    d = amount * h
    corners = [(0, 0), (w, 0), (w, h), (0, h)]
    moved = [(x + rng.uniform(-d, d), y + rng.uniform(-d, d)) for x, y in corners]
    return img.transform(img.size, Image.PERSPECTIVE, _perspective_coeffs(moved, corners),
                         Image.BILINEAR, fillcolor=_fill(img))


def _noise(img: Image.Image, sigma: float, rng) -> Image.Image:
    a = np.asarray(img, dtype=np.float32)
    a = a + rng.standard_normal(a.shape, dtype=np.float32) * np.float32(sigma)
    return Image.fromarray(np.clip(a + 0.5, 0, 255).astype(np.uint8), img.mode)


def _rescale(img: Image.Image, factor: float, nearest: bool) -> Image.Image:
    w, h = img.size
    small = img.resize((max(1, round(w * factor)), max(4, round(h * factor))), Image.BOX)
    return small.resize((w, h), Image.NEAREST if nearest else Image.BILINEAR)


def _jpeg(img: Image.Image, quality: float) -> Image.Image:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=int(quality))
    buf.seek(0)
    return Image.open(buf).convert(img.mode)


def degrade(img: Image.Image, d: Degradation, rng: np.random.Generator) -> Image.Image:
    """``img`` (``L`` or ``RGB``, size kept) with each effect of ``d`` at its chance."""
    if not d.active:
        return img
    if d.dot_matrix_p and rng.random() < d.dot_matrix_p:   # no draw when off: older styles render as before
        img = _dot_matrix(img, rng.uniform(*d.dot_matrix), rng)
    if rng.random() < d.lighting_p:
        img = _lighting(img, rng.uniform(*d.lighting), rng)
    if rng.random() < d.perspective_p:
        img = _perspective(img, rng.uniform(*d.perspective), rng)
    if rng.random() < d.noise_p:
        img = _noise(img, rng.uniform(*d.noise), rng)
    if rng.random() < d.rescale_p:
        img = _rescale(img, rng.uniform(*d.rescale), rng.random() < d.pixelate)
    if rng.random() < d.jpeg_p:
        img = _jpeg(img, rng.uniform(*d.jpeg))
    return img
