"""Which way up a page is, by reading it: the classical estimate finds the skew and the axis of
the lines, never whether the page is upside down; the recogniser can tell. Its longest lines
are read as found and turned a half turn, and the page is turned when the turned reading is
the likelier one: the sum over lines of log confidence (the probability of each line's best
path) is higher by a margin a line, and most lines read better turned; on a tie the page
stays as found. It takes a recogniser of letters: digits read nearly the same turned (0, 1
and 8 do, 6 and 9 swap), so a digits model leaves the page as the classical estimate found it.

Used by :class:`ocr.infer.PageReader` (``ocr read``) and the service's ``/ocr`` alike.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image

SAMPLE = 8       # lines read both ways: the largest boxes
MARGIN = 1.0     # nats a line the turned reading must win by (Latin and Korean print: 5-20)
MIN_LETTERS = 20


def tells_which_way_up(charset) -> bool:
    """Whether a recogniser's charset (:class:`ocr.charset.Charset`) has the letters it takes."""
    return sum(s.isalpha() for s in charset.symbols) >= MIN_LETTERS


def sample_lines(boxes: np.ndarray, k: int = SAMPLE) -> list[int]:
    """Indices of the ``k`` largest boxes (x0, y0, x1, y1), the lines to read both ways."""
    if not len(boxes):
        return []
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return [int(i) for i in np.argsort(-area, kind="stable")[:k]]


def half_turned(crops: list[Image.Image]) -> list[Image.Image]:
    return [c.transpose(Image.Transpose.ROTATE_180) for c in crops]


def upside_down(as_found: list[float], turned: list[float], margin: float = MARGIN) -> bool:
    """Whether the lines read better turned: confidences of the same lines, as found and turned."""
    def log(p: float) -> float:
        return math.log(max(float(p), 1e-30))
    gains = [log(t) - log(a) for a, t in zip(as_found, turned)]
    return sum(gains) > margin * len(gains) and 2 * sum(g > 0 for g in gains) > len(gains)


def turn_estimate(info: dict) -> dict:
    """A deskew estimate with a further half turn."""
    from ocr.models.orientation import compose

    orientation = (int(info["orientation"]) + 180) % 360
    return {**info, "orientation": orientation, "angle": compose(float(info["skew"]), orientation)}
