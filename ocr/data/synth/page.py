"""Render a page of text lines with line, word and character boxes (detection / deskew data).

Rotation (``angle`` != 0) keeps the page size (PIL ``expand=False``): the lines are laid out
inside the centred rectangle that still fits in the page once rotated, so no text is cut;
only the ink is rotated (about the page centre, counter-clockwise positive, PIL's
convention) and the background is drawn afterwards, so no fill-coloured corners give the
angle away. Boxes become the axis-aligned bounds of their rotated corners.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw

from ocr.charset import nfc
from ocr.data.formats.base import Box
from ocr.data.synth import augment
from ocr.data.synth.augment import Range, pick
from ocr.data.synth.fonts import FontInfo, fonts_covering, load_font, missing_chars


@dataclass
class PageStyle:
    """Page layout and look. Ranges are drawn uniformly per page or per line.

    font_size: pixels per line; line_gap: advance as a multiple of the line height
    (ascent + descent); margin: page margins as a fraction of the layout width/height;
    indent: extra left offset per line as a fraction of the width. Colours and
    backgrounds as in :class:`~ocr.data.synth.augment.LineStyle`.
    """

    font_size: Range = (14, 36)
    line_gap: Range = (1.0, 1.8)
    margin: Range = (0.02, 0.1)
    indent: Range = (0.0, 0.1)
    background: str = "random"
    text_color: tuple[int, ...] | int | None = None
    background_color: tuple[int, ...] | int | None = None
    min_contrast: int = 96
    blur: Range = 0.0
    grayscale: bool = False


@dataclass
class PageSample:
    """A rendered page: ``boxes`` hold "line", "word" and "char" boxes with their text, in
    pixels of ``image``; ``lines`` are the texts drawn (truncated to fit, when needed)."""

    image: Image.Image
    boxes: list[Box]
    angle: float
    lines: list[str] = field(default_factory=list)


def _rotation(angle: float) -> tuple[float, float]:
    r = math.radians(angle)
    return math.cos(r), math.sin(r)


def expanded_size(size: tuple[int, int], angle: float) -> tuple[int, int]:
    """The size of ``Image.rotate(angle, expand=True)`` on an image of ``size`` (PIL's own
    arithmetic: its inverse matrix applied to the corners, then ceil/floor)."""
    w, h = size
    c, s = round(math.cos(-math.radians(angle)), 15), round(math.sin(-math.radians(angle)), 15)
    tx, ty = -c * w / 2 - s * h / 2 + w / 2, s * w / 2 - c * h / 2 + h / 2
    xs = [c * x + s * y + tx for x, y in ((0, 0), (w, 0), (w, h), (0, h))]
    ys = [-s * x + c * y + ty for x, y in ((0, 0), (w, 0), (w, h), (0, h))]
    return math.ceil(max(xs)) - math.floor(min(xs)), math.ceil(max(ys)) - math.floor(min(ys))


def rotate_boxes(boxes: list[Box], angle: float, size: tuple[int, int],
                 new_size: tuple[int, int] | None = None) -> list[Box]:
    """Boxes of an image of ``size`` after ``Image.rotate(angle)`` (degrees, counter-clockwise
    positive, about the centre) into an image of ``new_size`` (= ``size`` for expand=False,
    :func:`expanded_size` for expand=True): the axis-aligned bounds of each box's rotated
    corners, clipped to the new image. Same length and order as ``boxes``."""
    if not boxes:
        return []
    new_w, new_h = new_size or size
    c, s = _rotation(angle)
    xy = np.array([(b.x0, b.y0, b.x1, b.y1) for b in boxes], np.float64)
    cx = xy[:, [0, 2, 0, 2]] - size[0] / 2  # the 4 corners, relative to the old centre
    cy = xy[:, [1, 1, 3, 3]] - size[1] / 2
    rx = c * cx + s * cy + new_w / 2
    ry = -s * cx + c * cy + new_h / 2
    out = np.stack([np.clip(rx.min(1), 0, new_w), np.clip(ry.min(1), 0, new_h),
                    np.clip(rx.max(1), 0, new_w), np.clip(ry.max(1), 0, new_h)], 1)
    return [Box(*map(float, o), label=b.label, text=b.text) for o, b in zip(out, boxes)]


def _union(boxes: list[Box], label: str, text: str) -> Box:
    return Box(min(b.x0 for b in boxes), min(b.y0 for b in boxes),
               max(b.x1 for b in boxes), max(b.y1 for b in boxes), label, text)


def _line_boxes(text: str, font, x: float, baseline: float) -> list[Box]:
    """Line, word and char boxes of ``text`` drawn at pen ``x`` on ``baseline``. A char box
    spans its advance (and any ink overhang) horizontally and its glyph's ink vertically."""
    chars: list[Box | None] = []
    for i, ch in enumerate(text):
        left, t, r, b = font.getbbox(ch, anchor="ls")
        if ch.isspace() or b <= t:
            chars.append(None)
            continue
        advance = font.getlength(ch)
        pen = x + font.getlength(text[: i + 1]) - advance  # includes kerning before ch
        chars.append(Box(pen + min(0, left), baseline + t, pen + max(advance, r), baseline + b,
                         "char", ch))
    words, run = [], []
    for box in chars + [None]:
        if box is not None:
            run.append(box)
        elif run:
            words.append(_union(run, "word", "".join(b.text for b in run)))
            run = []
    if not words:
        return []
    return [_union(words, "line", text), *words, *(b for b in chars if b is not None)]


def _fit(text: str, font: FontInfo, size: int, room: float) -> tuple[str, int]:
    """Shrink the size (to 60% at most), then drop words, then characters, to fit ``room``."""
    length = load_font(font, size).getlength(text)
    if length > room:
        size = max(int(size * 0.6), int(size * room / length), 6)
    f = load_font(font, size)
    while f.getlength(text) > room and " " in text:
        text = text.rsplit(" ", 1)[0].rstrip()
    while f.getlength(text) > room and len(text) > 1:
        text = text[:-1].rstrip()
    return (text if f.getlength(text) <= room else ""), size


def render_page(lines: list[str], fonts: list[FontInfo], rng: np.random.Generator,
                size: tuple[int, int] = (512, 512), angle: float = 0.0,
                style: PageStyle | None = None) -> PageSample:
    """Lay ``lines`` out top to bottom (random margins, indents, sizes, gaps; each line in a
    random font of ``fonts`` that covers it), rotate by ``angle`` (see module docstring).

    Lines that do not fit the width are shrunk, then cut at a word; lines below the page's
    end are left out (``PageSample.lines`` lists what was drawn). Raises ValueError when no
    font covers a line.
    """
    style = style or PageStyle()
    w, h = size
    c, s = abs(_rotation(angle)[0]), abs(_rotation(angle)[1])
    scale = min(1.0, w / (w * c + h * s), h / (w * s + h * c))
    rw, rh = w * scale, h * scale
    ox, oy = (w - rw) / 2, (h - rh) / 2
    top, left, bottom, right = (pick(style.margin, rng) * d for d in (rh, rw, rh, rw))
    mask = Image.new("L", size)
    draw = ImageDraw.Draw(mask)
    boxes, drawn, y = [], [], oy + top
    for raw in lines:
        text = " ".join(nfc(raw).split())
        if not text:
            continue
        candidates = fonts_covering(fonts, text)
        if not candidates:
            sets = [set(missing_chars(f, text)) for f in fonts]
            nowhere = "".join(sorted(set.intersection(*sets))) if sets else ""
            raise ValueError(f"no font of {len(fonts)} has every glyph of line {text!r}"
                             + (f"; none has {nowhere!r}" if nowhere else ""))
        font = candidates[int(rng.integers(0, len(candidates)))]
        x = ox + left + pick(style.indent, rng) * rw
        text, px = _fit(text, font, pick(style.font_size, rng, integer=True), ox + rw - right - x)
        f = load_font(font, px)
        ascent, descent = f.getmetrics()
        if not text or y + ascent + descent > oy + rh - bottom:
            break
        draw.text((x, y + ascent), text, fill=255, font=f, anchor="ls")
        boxes += _line_boxes(text, f, x, y + ascent)
        drawn.append(text)
        y += (ascent + descent) * pick(style.line_gap, rng)
    if angle:
        mask = mask.rotate(angle, Image.BILINEAR, expand=False)
        boxes = [b for b in rotate_boxes(boxes, angle, size, size) if b.x1 > b.x0 and b.y1 > b.y0]
    mask = augment.blur(mask, pick(style.blur, rng))
    fg, bg = augment.pick_colors(style.text_color, style.background_color, style.min_contrast,
                                 style.grayscale, rng)
    background = augment.make_background(size, bg, style.background, rng)
    return PageSample(augment.compose(mask, background, fg), boxes, angle, drawn)
