"""System fonts and their glyph coverage.

The coverage contract: a text is drawn only with a font whose cmap maps every non-space
character of it (:func:`fonts_covering`), so no font ever draws a missing-glyph box.
Coverage is read once per font face and process (``lru_cache``); a Noto CJK collection
is parsed at most once per face per process.

Fonts are loaded with Pillow's BASIC layout engine: rendering is then the same with or
without libraqm (deterministic across machines) and faster; precomposed Hangul, Latin and
CJK need no complex shaping.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from functools import cache, lru_cache
from pathlib import Path

import numpy as np
from fontTools.ttLib import TTCollection, TTFont
from PIL import ImageFont

FONT_EXTENSIONS = (".ttf", ".otf", ".ttc", ".otc")
SYSTEM_FONT_DIRS = ("/usr/share/fonts", "/usr/local/share/fonts",
                    "~/.local/share/fonts", "~/.fonts")


@dataclass(frozen=True)
class FontInfo:
    """One font face: ``path`` of the file, ``index`` of the face in a collection (0 otherwise)."""

    path: str
    index: int = 0
    name: str = ""

    def matches(self, *parts: str) -> bool:
        """Whether the name holds one of ``parts``, ignoring case, spaces, hyphens and
        underscores: "UnBatang", "Un Batang" and "un-batang" all match 'Un Batang Bold'."""
        name = squash(self.name)
        return any(squash(part) in name for part in parts)


def squash(name: str) -> str:
    """``name`` lower-cased without spaces, hyphens and underscores (how font names are matched)."""
    return re.sub(r"[\s_-]+", "", name.lower())


def _face_names(path: str) -> list[str]:
    """Full names of every face in ``path`` (one for .ttf/.otf). Raises if unparsable."""
    if path.lower().endswith((".ttc", ".otc")):
        faces = TTCollection(path, lazy=True).fonts
    else:
        faces = [TTFont(path, lazy=True)]
    names = []
    for face in faces:
        name_table = face["name"]
        names.append(name_table.getDebugName(4) or name_table.getDebugName(1) or Path(path).stem)
    return names


@lru_cache(maxsize=16)
def _scan(dirs: tuple[str, ...]) -> tuple[FontInfo, ...]:
    paths = set()
    for d in dirs:
        root = Path(os.path.expanduser(d))
        if root.is_file() and root.suffix.lower() in FONT_EXTENSIONS:
            paths.add(str(root))
        elif root.is_dir():
            paths.update(str(p) for p in root.rglob("*")
                         if p.suffix.lower() in FONT_EXTENSIONS and p.is_file())
    found = []
    for path in sorted(paths):
        try:
            names = _face_names(path)
        except Exception:  # noqa: BLE001, S112 - a font fontTools cannot parse is skipped
            continue
        found.extend(FontInfo(path, i, n) for i, n in enumerate(names))
    return tuple(found)


# Faces that draw characters inside frames or as ornaments (keycaps, drop capitals), not as text
DECORATIVE = ("Keyboard", "Initials")


def find_fonts(dirs: list[str] | None = None) -> list[FontInfo]:
    """Every face of every .ttf/.otf/.ttc/.otc under ``dirs`` (default: the system font
    folders), sorted by path then face index. Files fontTools cannot parse and
    :data:`DECORATIVE` faces are skipped."""
    found = _scan(tuple(dirs) if dirs is not None else SYSTEM_FONT_DIRS)
    return [f for f in found if not any(word in f.name for word in DECORATIVE)]


CACHE_DIR = Path(os.environ.get("OCR_CACHE", "~/.cache/ocr-on-ray")).expanduser() / "cmaps"


def _cache_file(font: FontInfo) -> Path:
    st = os.stat(font.path)
    key = f"{os.path.abspath(font.path)}:{font.index}:{st.st_size}:{st.st_mtime_ns}"
    return CACHE_DIR / (hashlib.sha1(key.encode()).hexdigest() + ".npy")


@cache
def coverage(font: FontInfo) -> frozenset[int]:
    """Code points the face's cmap maps to a glyph (empty when the font cannot be parsed).

    Parsing a CJK face takes about 0.1 s, so the result is also kept on disk (keyed by the
    file's path, face, size and mtime) and shared by every worker process of the machine.
    """
    try:
        cached = _cache_file(font)
        return frozenset(np.load(cached).tolist())
    except (OSError, ValueError):
        pass

    try:
        with TTFont(font.path, fontNumber=font.index, lazy=True) as tt:
            cmap = tt.getBestCmap() or {}
    except Exception:  # noqa: BLE001 - unparsable: covers nothing, so it is never chosen
        return frozenset()
    try:
        CACHE_DIR.mkdir(parents=True, exist_ok=True)
        tmp = cached.with_suffix(f".{os.getpid()}.tmp.npy")
        np.save(tmp, np.array(sorted(cmap), dtype=np.int32))
        os.replace(tmp, cached)
    except OSError:
        pass  # a read-only home: no disk cache, still correct
    return frozenset(cmap)


def needed_code_points(text: str) -> set[int]:
    """The code points a font must map to draw ``text`` (whitespace needs no glyph)."""
    return {ord(c) for c in text if not c.isspace()}


def missing_chars(font: FontInfo, text: str) -> list[str]:
    """Characters of ``text`` that ``font`` has no glyph for, in order of first use."""
    cov = coverage(font)
    return list(dict.fromkeys(c for c in text if not c.isspace() and ord(c) not in cov))


def fonts_covering(fonts: list[FontInfo], text: str) -> list[FontInfo]:
    """The fonts of ``fonts`` that have a glyph for every non-space character of ``text``."""
    need = needed_code_points(text)
    return [f for f in fonts if need <= coverage(f)]


def uncovered(fonts: list[FontInfo], symbols: str) -> list[str]:
    """The symbols of ``symbols`` that no font of ``fonts`` has a glyph for (whitespace needs
    none), in their order; reads coverages only until every symbol is found."""
    need = {ord(c) for c in symbols if not c.isspace()}
    for font in fonts:
        if not need:
            break
        need -= coverage(font)
    return [c for c in dict.fromkeys(symbols) if ord(c) in need]


def font_files(dirs: list[str]) -> list[str]:
    """The font files (by extension, parsable or not) under ``dirs``."""
    out = []
    for d in dirs:
        root = Path(os.path.expanduser(d))
        if root.is_file():
            out += [str(root)] if root.suffix.lower() in FONT_EXTENSIONS else []
        elif root.is_dir():
            out += [str(p) for p in root.rglob("*") if p.suffix.lower() in FONT_EXTENSIONS and p.is_file()]
    return out


def describe_symbols(chars: list[str], limit: int = 8) -> str:
    """``'가' U+AC00, '각' U+AC01, ...`` for the first ``limit`` symbols."""
    shown = ", ".join(f"{c!r} U+{ord(c):04X}" for c in chars[:limit])
    return shown + (", ..." if len(chars) > limit else "")


def install_hint(chars: list[str]) -> str:
    """Debian font packages with glyphs for ``chars`` (what scripts/setup.sh installs)."""

    def block(c: str) -> str:
        o = ord(c)
        if 0xAC00 <= o <= 0xD7A3 or 0x1100 <= o <= 0x11FF or 0x3130 <= o <= 0x318F:
            return "fonts-nanum fonts-noto-cjk"
        if 0x2E80 <= o <= 0x9FFF or 0xF900 <= o <= 0xFAFF or 0xFF00 <= o <= 0xFFEF:
            return "fonts-noto-cjk"
        return "fonts-dejavu-core fonts-noto-core"
    packages = " ".join(dict.fromkeys(" ".join(dict.fromkeys(map(block, chars))).split()))
    return f"`sudo apt-get install {packages}`"


@lru_cache(maxsize=2048)
def load_font(font: FontInfo, size: int) -> ImageFont.FreeTypeFont:
    """The face at ``size`` pixels (cached per process), with the BASIC layout engine."""
    return ImageFont.truetype(font.path, int(size), index=font.index,
                              layout_engine=ImageFont.Layout.BASIC)
