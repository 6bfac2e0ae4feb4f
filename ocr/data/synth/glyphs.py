"""Glyph banks: lines composed from real crops of each symbol (seed 001's "make a font from
the real digit images"), for styles no font has: a team's handwriting, an LED panel, a stamp.

A bank is a folder with one sub-folder per symbol, each holding a few crops (PNG, JPEG, ...)::

    glyphs/0/a.png  glyphs/0/b.png  glyphs/1/...  glyphs/U+002F/...   (U+XXXX: "/" and friends)

Each crop is one character cell cut at the line's height (from the text's top to its
bottom, as it sits in a line), so a "." stays small and low; it is trimmed sideways to its ink.
Dark ink on a light ground and light ink on a dark ground (LED, screens) both work: the ground
is the crop's border. A line is the crops of its symbols, one drawn at random per character,
set side by side with the line style's spacing, then it goes through the same pipeline as a
line drawn with a font (:func:`ocr.data.synth.line.finish_line`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from ocr.charset import is_label_symbol, nfc
from ocr.data.images import IMAGE_EXTENSIONS
from ocr.data.synth.augment import LineStyle, pick
from ocr.data.synth.line import finish_line, line_margins

SPACE_WIDTH = (0.25, 0.45)  # a space, in line heights
GAP = (0.02, 0.12)          # between two crops, in line heights (before the style's spacing)


def _symbol_of(folder: Path) -> str:
    name = folder.name
    if name.upper().startswith("U+"):
        try:
            return chr(int(name[2:], 16))
        except ValueError:
            pass
    return nfc(name)


def ink_mask(img: Image.Image) -> np.ndarray:
    """uint8 ink (255 = ink) of a crop: its distance from the ground colour (the border's
    median), stretched to the full range, trimmed sideways to the ink."""
    a = np.asarray(img.convert("L"), dtype=np.float32)
    border = np.concatenate([a[0], a[-1], a[:, 0], a[:, -1]])
    ground = float(np.median(border))
    ink = np.abs(a - ground)
    top = float(ink.max())
    if top < 16:
        raise ValueError("no ink: the crop is one flat colour")
    ink = np.clip((ink - 0.15 * top) / (0.85 * top) * 255, 0, 255).astype(np.uint8)
    cols = np.flatnonzero(ink.max(axis=0) > 32)
    return ink[:, cols[0]: cols[-1] + 1]


class GlyphBank:
    """Crops per symbol as ink masks; picklable (plain arrays), so it travels to Ray tasks."""

    def __init__(self, glyphs: dict[str, list[np.ndarray]], folder: str = ""):
        self.glyphs, self.folder = glyphs, folder

    @classmethod
    def load(cls, folder: str) -> GlyphBank:
        root = Path(folder)
        if not root.is_dir():
            raise ValueError(f"glyphs: expected a folder of symbol folders (DIR/<symbol>/*.png), "
                             f"found no folder {folder}")
        glyphs, bad = {}, []
        for sub in sorted(p for p in root.iterdir() if p.is_dir()):
            symbol = _symbol_of(sub)
            if len(symbol) != 1 or not is_label_symbol(symbol) or symbol == " ":
                bad.append(f"{sub.name} (expected one character or U+XXXX)")
                continue
            for path in sorted(sub.iterdir()):
                if path.suffix.lower() not in IMAGE_EXTENSIONS:
                    continue
                try:
                    with Image.open(path) as img:
                        glyphs.setdefault(symbol, []).append(ink_mask(img))
                except (OSError, ValueError) as e:
                    bad.append(f"{path.relative_to(root)} ({e})")
        if bad:
            raise ValueError(f"glyphs {folder}: {len(bad)} unusable entries, e.g. {'; '.join(bad[:3])}")
        if not glyphs:
            raise ValueError(f"glyphs {folder}: expected symbol folders holding images "
                             f"(DIR/<symbol>/*.png), found none")
        return cls(glyphs, folder)

    def symbols(self) -> str:
        return "".join(sorted(self.glyphs))

    def missing(self, text: str) -> list[str]:
        return list(dict.fromkeys(c for c in text if c != " " and c not in self.glyphs))

    def compose(self, text: str, text_height: int, spacing: float, rng: np.random.Generator) -> Image.Image:
        """The ink mask of ``text``: a random crop per symbol, scaled to ``text_height``."""
        parts, x = [], 0.0
        for c in text:
            if c == " ":
                x += pick(SPACE_WIDTH, rng) * text_height
                continue
            crops = self.glyphs[c]
            crop = crops[int(rng.integers(len(crops)))]
            w = max(1, round(crop.shape[1] * text_height / crop.shape[0] * rng.uniform(0.92, 1.08)))
            parts.append((round(x), Image.fromarray(crop).resize((w, text_height), Image.BILINEAR)))
            x += w + pick(GAP, rng) * text_height + spacing
        width = max(1, max(px + im.width for px, im in parts))
        mask = Image.new("L", (width, text_height))
        for px, im in parts:
            mask.paste(im, (px, 0), im)  # overlapping crops (negative spacing) keep both inks
        return mask


def render_glyph_line(text: str, bank: GlyphBank, height: int, style: LineStyle | None = None,
                      rng: np.random.Generator | None = None) -> Image.Image:
    """``text`` composed from ``bank``'s crops with ``style``: exactly ``height`` pixels tall."""
    style = style or LineStyle()
    rng = rng if rng is not None else np.random.default_rng()
    text = nfc(text)
    if not text.strip():
        raise ValueError(f"cannot render a blank text line: {text!r}")
    missing = bank.missing(text)
    if missing:
        raise ValueError(f"glyph bank {bank.folder} has no crop of {''.join(missing)!r} in {text!r}")
    margins, text_height = line_margins(height, style, rng)
    spacing = pick(style.character_spacing, rng)
    return finish_line(bank.compose(text.strip(), text_height, spacing, rng), height, margins, style, rng)
