"""Synthetic OCR data: fonts with glyph coverage, text sources, line styles, lines and pages.

Pure functions (no Ray): ``ocr synth`` wraps them in a Ray Data job.
"""

from ocr.data.synth.augment import LineStyle
from ocr.data.synth.fonts import FontInfo, coverage, find_fonts, fonts_covering, load_font
from ocr.data.synth.line import render_line
from ocr.data.synth.page import PageSample, PageStyle, expanded_size, render_page, rotate_boxes
from ocr.data.synth.text import TextSource, parse_text_source

__all__ = [
    "FontInfo", "LineStyle", "PageSample", "PageStyle", "TextSource", "coverage",
    "expanded_size", "find_fonts", "fonts_covering", "load_font", "parse_text_source",
    "render_line", "render_page", "rotate_boxes",
]
