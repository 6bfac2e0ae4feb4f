"""Line styles and the augmentations behind them (TRDG's options, vectorised).

Every random choice is drawn from the numpy ``Generator`` passed in, so the same seed gives
the same image, in any process (noise is cut at random places from fixed-seed fields).
The text is handled as an ink mask (``L``, 255 = ink) until the very end: skew,
distortion and blur act on the mask, then :func:`compose` lays it over a background in
the text colour. Numbers that may be random take either a value or a ``(lo, hi)`` range
(drawn uniformly; integers for pixel counts).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from PIL import Image, ImageFilter

from ocr.data.synth.degrade import Degradation

Range = float | tuple[float, float]

DISTORTIONS = ("none", "sine", "cosine", "random")
ORIENTATIONS = ("vertical", "horizontal", "both")
ALIGNMENTS = ("left", "center", "right")
BACKGROUNDS = ("plain", "noise", "texture", "random")
_LUMA_W = (0.299, 0.587, 0.114)


@dataclass
class LineStyle:
    """How a text line is drawn. Defaults are a mild training mix; :meth:`clean` has none.

    skew_angle + U(-random_skew, random_skew): rotation of the text in degrees (CCW).
    blur + U(0, random_blur): Gaussian blur radius of the ink, in output pixels.
    distortion / distortion_orientation / distortion_strength: "vertical" shifts columns
        up and down, "horizontal" shifts rows sideways, by up to strength x text height.
    character_spacing: extra pixels between characters (output scale; may be negative).
    margins: (top, left, bottom, right) in output pixels; the text height is what is left.
    width / alignment: fixed output width (text aligned in it, squashed when too wide);
        None fits the width to the text.
    background: "plain", "noise", "texture" (procedural) or "random" (one of those).
    text_color / background_color: RGB (or grey level); None draws one at random with a
        luminance difference of at least ``min_contrast`` (0..127) from the other.
    grayscale: "L" output instead of "RGB".
    degradation: scanner, camera and screen effects after composition (:class:`Degradation`;
        a mapping of its fields is accepted).
    """

    skew_angle: float = 0.0
    random_skew: float = 2.0
    blur: float = 0.0
    random_blur: float = 0.6
    distortion: str = "none"
    distortion_orientation: str = "vertical"
    distortion_strength: float = 0.08
    character_spacing: Range = 0
    margins: tuple[Range, Range, Range, Range] = (1, 2, 1, 2)
    width: int | None = None
    alignment: str = "left"
    background: str = "random"
    text_color: tuple[int, ...] | int | None = None
    background_color: tuple[int, ...] | int | None = None
    min_contrast: int = 96
    grayscale: bool = False
    degradation: Degradation = Degradation()

    def __post_init__(self):
        if isinstance(self.degradation, dict):
            try:
                self.degradation = Degradation(**{k: tuple(v) if isinstance(v, list) else v
                                                  for k, v in self.degradation.items()})
            except TypeError as e:
                raise ValueError(f"LineStyle.degradation: {e}; expected keys of "
                                 f"{sorted(Degradation.__dataclass_fields__)}") from None
        for name, allowed in (("distortion", DISTORTIONS), ("background", BACKGROUNDS),
                              ("distortion_orientation", ORIENTATIONS),
                              ("alignment", ALIGNMENTS)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"LineStyle.{name}: expected one of {allowed}, "
                                 f"found {getattr(self, name)!r}")
        if len(self.margins) != 4:
            raise ValueError("LineStyle.margins: expected 4 values (top, left, bottom, right), "
                             f"found {self.margins!r}")
        self.margins = tuple(self.margins)
        if not 0 <= self.min_contrast <= 127:
            raise ValueError(f"LineStyle.min_contrast: expected 0..127, found {self.min_contrast}")
        if self.width is not None and self.width < 1:
            raise ValueError(f"LineStyle.width: expected a positive width or None, found {self.width}")
        if min(self.random_skew, self.random_blur, self.blur, self.distortion_strength) < 0:
            raise ValueError("LineStyle: random_skew, blur, random_blur and distortion_strength "
                             "must be >= 0")

    @classmethod
    def clean(cls, **overrides) -> LineStyle:
        """Black text on white, no skew, blur or distortion (then ``overrides``)."""
        base = {"random_skew": 0.0, "random_blur": 0.0, "background": "plain",
                "text_color": (0, 0, 0), "background_color": (255, 255, 255)}
        return cls(**{**base, **overrides})


# named LineStyle overrides: ``ocr synth --style NAME``
STYLE_PRESETS = {
    # black on white, no skew, blur or distortion
    "none": {"random_skew": 0.0, "random_blur": 0.0, "background": "plain",
             "text_color": 0, "background_color": 255},
    # seed 001's mix: random skew, blur, distortion both ways, backgrounds and colours
    "default": {"random_skew": 2.0, "random_blur": 0.8, "distortion": "random",
                "distortion_orientation": "both", "background": "random", "grayscale": True},
    "color": {"random_skew": 2.0, "random_blur": 0.8, "distortion": "random",
              "distortion_orientation": "both", "background": "random"},
    # a scanned page: grey and faded ink on paper, tight margins, spacing, lighting, JPEG
    "scan": {"random_skew": 1.5, "random_blur": 0.8, "background": "texture", "min_contrast": 60,
             "grayscale": True, "margins": ((0, 3), (0, 6), (0, 3), (0, 6)),
             "character_spacing": (-0.5, 2.0),
             "degradation": Degradation(lighting_p=0.3, perspective_p=0.15, perspective=(0.01, 0.05),
                                        noise_p=0.5, rescale_p=0.4, jpeg_p=0.5)},
    # a phone photo: colour, uneven light, perspective, blur, noise, JPEG
    "photo": {"random_skew": 3.0, "blur": 0.3, "random_blur": 1.0, "background": "random",
              "min_contrast": 50, "margins": ((0, 4), (0, 8), (0, 4), (0, 8)),
              "degradation": Degradation(lighting_p=0.7, perspective_p=0.6, noise_p=0.5,
                                         rescale_p=0.4, jpeg_p=0.7)},
    # a screen or screenshot: flat colours, no skew, pixels scaled up, JPEG; a panel of dots
    "screen": {"random_skew": 0.0, "random_blur": 0.3, "background": "plain", "min_contrast": 70,
               "margins": ((0, 3), (0, 6), (0, 3), (0, 6)),
               "degradation": Degradation(dot_matrix_p=0.2, noise_p=0.2, noise=(1.0, 4.0), rescale_p=0.6,
                                          rescale=(0.5, 0.95), pixelate=0.5, jpeg_p=0.5)},
}
# an LED or LCD panel of dots (meters, signs, receipts' dot printers): the screen, every line dots
STYLE_PRESETS["dot-matrix"] = {**STYLE_PRESETS["screen"], "degradation": dataclasses.replace(
    STYLE_PRESETS["screen"]["degradation"], dot_matrix_p=1.0)}
# presets drawn per line: ``--style real`` is a mix of what people photograph, scan and see;
# ``displays`` adds a share of dot-matrix panels (numbers on meters and signs)
STYLE_MIXES = {"real": ("none", "default", "scan", "photo", "screen"),
               "displays": ("none", "default", "scan", "photo", "screen", "dot-matrix")}


def pick(value: Range, rng: np.random.Generator, integer: bool = False) -> float:
    """``value`` itself, or a uniform draw from a ``(lo, hi)`` range (inclusive for integers)."""
    if isinstance(value, (tuple, list)):
        lo, hi = value
        if integer:
            return int(rng.integers(round(lo), round(hi) + 1))
        return float(rng.uniform(lo, hi))
    return round(value) if integer else float(value)


# --- geometry on the ink mask ---------------------------------------------------------------

def crop_ink(mask: Image.Image, keep_rows: tuple[int, int] | None = None) -> Image.Image:
    """Crop to the ink's bounding box; rows ``keep_rows`` (y0, y1) are kept even when empty."""
    bbox = mask.getbbox()
    if bbox is None:
        raise ValueError("the font drew no ink for this text")
    x0, y0, x1, y1 = bbox
    if keep_rows is not None:
        y0, y1 = max(0, min(y0, keep_rows[0])), min(mask.height, max(y1, keep_rows[1]))
    return mask.crop((x0, y0, x1, y1))


def skew(mask: Image.Image, angle: float) -> Image.Image:
    """Rotate the mask by ``angle`` degrees CCW, keeping the band of its original rows."""
    if abs(angle) < 1e-3:
        return mask
    out = mask.rotate(angle, Image.BILINEAR, expand=True)
    top = (out.height - mask.height) // 2
    return crop_ink(out, (top, top + mask.height))


def _offsets(kind: str, n: int, amp: float, period: float, rng) -> np.ndarray:
    t = np.arange(n, dtype=np.float32)
    if kind == "sine":
        return amp * np.sin(2 * np.pi * t / period + rng.uniform(0, 2 * np.pi))
    if kind == "cosine":
        return amp * np.cos(2 * np.pi * t / period)
    return rng.uniform(0, amp, n).astype(np.float32)  # "random": per-column jitter (TRDG)


def shift_columns(a: np.ndarray, off: np.ndarray) -> np.ndarray:
    """Column ``x`` of ``a`` (H, W) moved down by ``off[x]`` pixels (linear interpolation),
    on a canvas padded so nothing is lost: returns (H + 2P, W), P = ceil(max |off|)."""
    pad = math.ceil(float(np.abs(off).max())) + 1
    h, w = a.shape
    src = np.zeros((h + 2 * pad + 2, w), np.float32)
    src[pad + 1: pad + 1 + h] = a
    y = np.arange(h + 2 * pad, dtype=np.float32)[:, None] + 1 - off[None, :]
    y0 = np.clip(np.floor(y).astype(np.int64), 0, src.shape[0] - 2)
    f = np.clip(y - y0, 0.0, 1.0)
    cols = np.arange(w)[None, :]
    return src[y0, cols] * (1 - f) + src[y0 + 1, cols] * f


def distort(mask: Image.Image, kind: str, orientation: str, strength: float,
            rng: np.random.Generator) -> Image.Image:
    """TRDG-style distortion: sine, cosine or random offsets of columns and/or rows."""
    if kind == "none" or strength <= 0:
        return mask
    a = np.asarray(mask, dtype=np.float32)
    amp = max(1.0, strength * mask.height)
    band = (0, mask.height)
    if orientation in ("vertical", "both"):
        period = rng.uniform(1.5, 4.0) * mask.height
        a = shift_columns(a, _offsets(kind, a.shape[1], amp, period, rng))
        top = (a.shape[0] - mask.height) // 2
        band = (top, top + mask.height)
    if orientation in ("horizontal", "both"):
        period = rng.uniform(0.5, 1.5) * mask.height
        a = shift_columns(a.T, _offsets(kind, a.shape[0], amp, period, rng)).T
    out = Image.fromarray(np.clip(a + 0.5, 0, 255).astype(np.uint8), "L")
    return crop_ink(out, band)


def blur(mask: Image.Image, radius: float) -> Image.Image:
    """Gaussian blur of the ink (a no-op for radius <= 0.05)."""
    return mask.filter(ImageFilter.GaussianBlur(radius)) if radius > 0.05 else mask


# --- colours, backgrounds, composition ------------------------------------------------------
# Colours are tuples of ints: (grey,) or (r, g, b). Kept in plain Python: numpy's per-call
# overhead dominates on 3-element arrays.

def luminance(color) -> float:
    """Rec. 601 luma of an RGB colour (a grey level stays itself)."""
    c = (color,) if isinstance(color, (int, float)) else tuple(color)
    return float(c[0]) if len(c) == 1 else sum(w * v for w, v in zip(_LUMA_W, c[:3]))


def _color_of_luminance(lum: float, rng: np.random.Generator) -> tuple[int, int, int]:
    """A random RGB colour of luminance ``lum``: grey plus a tint of zero luminance."""
    d = rng.uniform(-1, 1, 3).tolist()
    mean = sum(w * v for w, v in zip(_LUMA_W, d))
    d = [v - mean for v in d]  # the weights sum to 1, so the tint has zero luminance
    room = min([(255 - lum) / v if v > 0 else lum / -v for v in d if abs(v) > 1e-9] or [0.0])
    k = float(rng.uniform(0, 0.8)) * room
    return tuple(int(min(255, max(0, round(lum + k * v)))) for v in d)


def _as_color(color, grayscale: bool) -> tuple[int, ...]:
    if grayscale:
        return (round(luminance(color)),)
    c = (color,) if isinstance(color, (int, float)) else tuple(color)
    return tuple(int(v) for v in (c * 3 if len(c) == 1 else c[:3]))


def pick_colors(text_color, background_color, min_contrast: float, grayscale: bool,
                rng: np.random.Generator) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(text, background) colours, (grey,) or (r, g, b); a colour not given is drawn so that
    the two luminances differ by at least ``min_contrast``."""

    def other(lum: float) -> float:
        below, above = max(lum - min_contrast, 0.0), max(255 - lum - min_contrast, 0.0)
        u = float(rng.uniform(0, below + above))
        return u if u < below else lum + min_contrast + (u - below)

    def make(lum: float) -> tuple[int, ...]:
        return (round(lum),) if grayscale else _color_of_luminance(lum, rng)

    if background_color is not None:
        bg = _as_color(background_color, grayscale)
    elif text_color is not None:
        bg = make(other(luminance(text_color)))
    else:
        bg = make(float(rng.uniform(0, 255)))
    fg = make(other(luminance(bg))) if text_color is None else _as_color(text_color, grayscale)
    return fg, bg


_BANK = (256, 2048)  # (H, W) of the per-process noise fields lines are cut from


@lru_cache(maxsize=8)
def _bank(cell: int) -> np.ndarray:
    """A fixed (seeded) float32 field of _BANK size: unit Gaussian grain for ``cell`` 1,
    else smooth blotches in [-1, 1] of about ``cell`` pixels. Cropping a random window of
    it is as random as drawing a new field, at a fraction of the cost."""
    return _field(_BANK, cell, np.random.default_rng(7919 + cell))


def _field(shape: tuple[int, int], cell: int, rng: np.random.Generator) -> np.ndarray:
    h, w = shape
    if cell == 1:
        return rng.standard_normal((h, w), dtype=np.float32)
    low = rng.uniform(-1, 1, (h // cell + 2, w // cell + 2)).astype(np.float32)
    return np.asarray(Image.fromarray(low, "F").resize((w, h), Image.BICUBIC))


def _noise(shape: tuple[int, int], cell: int, rng: np.random.Generator) -> np.ndarray:
    h, w = shape
    if h > _BANK[0] or w > _BANK[1]:
        return _field(shape, cell, rng)
    y, x = int(rng.integers(0, _BANK[0] - h + 1)), int(rng.integers(0, _BANK[1] - w + 1))
    return _bank(cell)[y: y + h, x: x + w]


def make_background(size: tuple[int, int], color: tuple[int, ...], kind: str,
                    rng: np.random.Generator) -> Image.Image:
    """A background image of ``size`` (W, H) around ``color`` (``L`` for one channel).

    plain: flat; noise: Gaussian grain; texture: smooth blotches, a linear shading gradient
    and fine grain, like paper; random: one of the three.
    """
    w, h = size
    mode = "L" if len(color) == 1 else "RGB"
    if kind == "random":
        kind = ("plain", "noise", "texture")[int(rng.integers(0, 3))]
    if kind == "plain":
        return Image.new(mode, size, color if len(color) > 1 else color[0])
    if kind == "noise":
        tex = _noise((h, w), 1, rng) * np.float32(rng.uniform(3, 12))
        tint = np.ones(len(color), np.float32)
    elif kind == "texture":
        blotch = _noise((h, w), int(rng.choice((4, 8, 16))), rng) * np.float32(rng.uniform(6, 20))
        grain = _noise((h, w), 1, rng) * np.float32(rng.uniform(0, 3))
        theta, amp = rng.uniform(0, 2 * np.pi), np.float32(rng.uniform(0, 24))
        ramp_x = (np.arange(w, dtype=np.float32) / max(w, 1) - 0.5) * np.float32(np.cos(theta))
        ramp_y = (np.arange(h, dtype=np.float32) / max(h, 1) - 0.5) * np.float32(np.sin(theta))
        tex = blotch + grain + (ramp_y[:, None] + ramp_x[None, :]) * amp
        tint = (1 + rng.uniform(-0.15, 0.15, len(color))).astype(np.float32)
    else:
        raise ValueError(f"background: expected one of {BACKGROUNDS}, found {kind!r}")
    # One channel of integer offsets, looked up in a 256-entry table of colour + tinted
    # offset (as a palette for RGB): the per-pixel work stays on one channel, in C.
    index = Image.fromarray(np.clip(tex + np.float32(128.5), 0, 255).astype(np.uint8), "L")
    offsets = np.arange(-128, 128, dtype=np.float32)[:, None] * tint
    lut = np.clip(offsets + np.asarray(color, np.float32) + 0.5, 0, 255).astype(np.uint8)
    if mode == "L":
        return index.point(lut[:, 0].tolist())
    index.putpalette(lut.tobytes(), "RGB")
    return index.convert("RGB")


def compose(alpha: Image.Image, background: Image.Image, color: tuple[int, ...]) -> Image.Image:
    """Ink ``alpha`` (``L``, 255 = ink) in ``color`` laid over ``background``."""
    ink = Image.new(background.mode, background.size, color if len(color) > 1 else color[0])
    return Image.composite(ink, background, alpha)
