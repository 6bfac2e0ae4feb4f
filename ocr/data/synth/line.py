"""Render one text line: the recognition sample of ``ocr synth``.

The text is drawn as an ink mask at the size that makes its vertical extent match the
output text height, cropped tightly (horizontally to the ink; vertically to the ink plus
the cap-height-to-baseline band, so "-" or "." keep their place and size), then skewed,
distorted, resized to exactly the text height, placed within the margins (or the fixed
width), blurred and composed over a background, then degraded as a scanner, camera or
screen would (:mod:`ocr.data.synth.degrade`).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw

from ocr.charset import nfc
from ocr.data.synth import augment
from ocr.data.synth.augment import LineStyle, pick
from ocr.data.synth.degrade import degrade
from ocr.data.synth.fonts import FontInfo, coverage, load_font, missing_chars

_REF_SIZE = 100


@lru_cache(maxsize=4096)
def _metrics(font: FontInfo, size: int) -> tuple[int, int, int]:
    """(ascent, descent, cap-top) in pixels at ``size``; cap-top is measured from the top
    of the ascent (where an "la" anchor puts text), from "H" or else 30% of the ascent."""
    f = load_font(font, size)
    ascent, descent = f.getmetrics()
    cap = f.getbbox("H", anchor="la")[1] if ord("H") in coverage(font) else int(0.3 * ascent)
    return ascent, descent, cap


@lru_cache(maxsize=1 << 16)
def _char_rows(font: FontInfo, char: str) -> tuple[int, int]:
    """(top, bottom) of ``char``'s ink at the reference size, from the ascent line."""
    _, top, _, bottom = load_font(font, _REF_SIZE).getbbox(char, anchor="la")
    return (top, bottom) if bottom > top else (1 << 30, -(1 << 30))


def _font_size(font: FontInfo, text: str, text_height: int) -> int:
    """The size at which ``text``'s ink, joined with the cap-to-baseline band, is
    ``text_height`` pixels tall (from per-character extents at a reference size)."""
    ascent, _, cap = _metrics(font, _REF_SIZE)
    rows = [_char_rows(font, c) for c in set(text) if not c.isspace()]
    extent = max(ascent, *(b for _, b in rows)) - min(cap, *(t for t, _ in rows))
    return max(4, round(_REF_SIZE * text_height / max(extent, 1)))


def draw_mask(text: str, font: FontInfo, size: int, spacing: float = 0.0) -> Image.Image:
    """The ink of ``text`` (``L``, 255 = ink), cropped to the ink plus the cap-to-baseline
    band. With ``spacing`` != 0 the text is drawn character by character, each advance
    widened by ``spacing`` pixels."""
    f = load_font(font, size)
    ascent, descent, cap = _metrics(font, size)
    pad = size // 2 + 2
    advance = f.getlength(text) if not spacing else (
        sum(f.getlength(c) for c in text) + spacing * (len(text) - 1))
    width = int(advance + 2 * pad + max(0.0, -spacing) * len(text)) + 1
    mask = Image.new("L", (max(width, 1), ascent + descent + 2 * pad))
    draw = ImageDraw.Draw(mask)
    if not spacing:
        draw.text((pad, pad), text, fill=255, font=f, anchor="la")
    else:
        x = float(pad)
        for c in text:
            draw.text((x, pad), c, fill=255, font=f, anchor="la")
            x += f.getlength(c) + spacing
    return augment.crop_ink(mask, (pad + cap, pad + ascent))


def _place(ink: Image.Image, height: int, text_height: int, margins, style: LineStyle):
    """The full-size ``L`` alpha with the ink placed per margins / fixed width."""
    top, left, _, right = margins
    w = max(1, round(ink.width * text_height / ink.height))
    if style.width is None:
        width, x = left + w + right, left
    else:
        width, inner = style.width, style.width - left - right
        if inner < 1:
            raise ValueError(f"fixed width {style.width} leaves no room inside margins "
                             f"left={left} right={right}")
        w = min(w, inner)  # too wide: squash to the inner width
        x = left + {"left": 0, "center": (inner - w) // 2, "right": inner - w}[style.alignment]
    alpha = Image.new("L", (width, height))
    alpha.paste(ink.resize((w, text_height), Image.BILINEAR), (x, top))
    return alpha


def render_line(text: str, font: FontInfo, height: int, style: LineStyle | None = None,
                rng: np.random.Generator | None = None) -> Image.Image:
    """``text`` drawn in ``font`` with ``style``: an image exactly ``height`` pixels tall
    (``L`` when ``style.grayscale`` else ``RGB``), as wide as the text (or ``style.width``).

    Raises ValueError when ``font`` has no glyph for a character (per its cmap), when the
    text is blank, or when the margins leave no room for the text.
    """
    style = style or LineStyle()
    rng = rng if rng is not None else np.random.default_rng()
    text = nfc(text)
    if not text.strip():
        raise ValueError(f"cannot render a blank text line: {text!r}")
    missing = missing_chars(font, text)
    if missing:
        raise ValueError(f"font {font.name or font.path} (face {font.index}) has no glyph for "
                         f"{''.join(missing)!r} in {text!r}")
    margins, text_height = line_margins(height, style, rng)
    size = _font_size(font, text, text_height)
    spacing = pick(style.character_spacing, rng) * size / text_height
    return finish_line(draw_mask(text, font, size, spacing), height, margins, style, rng)


def line_margins(height: int, style: LineStyle, rng: np.random.Generator) -> tuple[list[int], int]:
    """The drawn (top, left, bottom, right) margins and the text height they leave."""
    margins = [max(0, pick(m, rng, integer=True)) for m in style.margins]
    text_height = height - margins[0] - margins[2]
    if text_height < 4:
        raise ValueError(f"line height {height} minus margins top={margins[0]} "
                         f"bottom={margins[2]} leaves {text_height} px for text: expected >= 4")
    return margins, text_height


def finish_line(ink: Image.Image, height: int, margins: list[int], style: LineStyle,
                rng: np.random.Generator) -> Image.Image:
    """The ink mask of a line (from a font or a glyph bank) skewed, distorted, placed,
    blurred, coloured over a background and degraded: the one pipeline of every line."""
    text_height = height - margins[0] - margins[2]
    ink = augment.skew(ink, style.skew_angle + rng.uniform(-1, 1) * style.random_skew)
    ink = augment.distort(ink, style.distortion, style.distortion_orientation,
                          style.distortion_strength, rng)
    alpha = _place(ink, height, text_height, margins, style)
    alpha = augment.blur(alpha, style.blur + rng.uniform(0, style.random_blur))
    fg, bg = augment.pick_colors(style.text_color, style.background_color,
                                 style.min_contrast, style.grayscale, rng)
    background = augment.make_background(alpha.size, bg, style.background, rng)
    return degrade(augment.compose(alpha, background, fg), style.degradation, rng)
