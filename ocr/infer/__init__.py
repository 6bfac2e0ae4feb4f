"""Trained models, ready to use: one reader class per family, built from a checkpoint's
model.json (preprocessing, charset, classes), used by evaluation, the CLI and serving.

    LineReader     recognition: line images -> (text, confidence)
    BoxReader      detection: pages -> ROI boxes; line boxes -> char boxes and text
    PageDeskewer   orientation: a page -> its skew and quarter turns, and the page upright
    PageReader     all three on a page, in-process: the page's lines in reading order
"""

from ocr.infer.detection import BoxReader
from ocr.infer.orientation import PageDeskewer, upright
from ocr.infer.page import PageReader
from ocr.infer.recognition import LineReader

__all__ = ["BoxReader", "LineReader", "PageDeskewer", "PageReader", "upright"]
