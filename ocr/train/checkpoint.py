"""Deprecated alias of :mod:`ocr.checkpoint` (kept for one release): import ``ocr.checkpoint``."""

from ocr.checkpoint import *  # noqa: F401,F403
from ocr.train.ranking import best_of, ranks_before  # noqa: F401
