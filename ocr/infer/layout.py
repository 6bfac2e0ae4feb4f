"""Where the lines of an upright page are, without a model, and the order to read them in.

    boxes = find_lines(page)          # (n, 4) float32 x0, y0, x1, y1 in page pixels, reading order
    crop(np.asarray(page), boxes[0])  # the line image, grown by the margin detection training uses

The classical finder is what ``ocr read`` and the service use without a detector checkpoint:
ink is what differs from the page's background level by more than an Otsu threshold (dark on
light or light on dark), rows of ink make bands, a band twice as tall as the page's typical
line is cut at its emptiest row, and a gap wider than ``column_gap`` line heights splits a band
into separate boxes (columns, a receipt's label and price). It suits print on a plain ground;
photos of cluttered scenes want a trained detector (``--detector``).
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from ocr.data.images import ink_mask
from ocr.models.detection.box_ops import CROP_MARGIN, crop_box

CLASSICAL = "lines"       # the detector name that means this module's finder (``--detector lines``)
MIN_LINE_HEIGHT = 5       # pixels: shorter bands are specks or rules
COLUMN_GAP = 2.0          # line heights of empty columns that split a band into boxes


def reading_rows(boxes: np.ndarray) -> list[list[int]]:
    """Indices of (n, 4) boxes in rows, top to bottom, each row left to right (a row: boxes
    whose vertical centres lie within half a median box height of its first box's)."""
    if len(boxes) == 0:
        return []
    heights = boxes[:, 3] - boxes[:, 1]
    tol = max(1.0, float(np.median(heights)) / 2)
    centre = (boxes[:, 1] + boxes[:, 3]) / 2
    rows: list[list[int]] = []
    for i in np.argsort(centre, kind="stable"):
        if rows and abs(centre[i] - centre[rows[-1][0]]) <= tol:
            rows[-1].append(int(i))
        else:
            rows.append([int(i)])
    return [sorted(row, key=lambda j: boxes[j, 0]) for row in rows]


def reading_order(boxes: np.ndarray) -> list[int]:
    """Indices of (n, 4) boxes top to bottom, then left to right within a row."""
    return [i for row in reading_rows(boxes) for i in row]


def text_by_rows(lines: list[dict]) -> str:
    """The page's text from its read lines ({"box", "text"}, in reading order): one text line
    per row, the boxes of a row joined by a space (a receipt's item and its price, a form's
    label and its value). Sets each line's "row"."""
    rows = reading_rows(np.asarray([ln["box"] for ln in lines], np.float32).reshape(-1, 4))
    for r, row in enumerate(rows):
        for i in row:
            lines[i]["row"] = r
    return "\n".join(" ".join(t for t in (lines[i]["text"] for i in row) if t) for row in rows)


def select_boxes(boxes: np.ndarray, scores: np.ndarray, size: tuple[int, int], min_score: float,
                 max_boxes: int) -> tuple[np.ndarray, np.ndarray]:
    """A detector's boxes scoring ``min_score`` or more, the best ``max_boxes``, clipped to the
    page (``size`` = width, height), in reading order."""
    keep = np.flatnonzero(scores >= min_score)
    keep = keep[np.argsort(-scores[keep], kind="stable")][:max_boxes]
    boxes = np.clip(boxes[keep], 0, [size[0], size[1]] * 2)
    order = reading_order(boxes)
    return boxes[order].reshape(-1, 4), scores[keep][order]


def crop(page: np.ndarray, box, margin: float | None = None) -> np.ndarray:
    """The line at ``box`` grown by ``margin`` x its height (default: as detection training
    crops lines), clipped to the page."""
    margin = CROP_MARGIN if margin is None else margin
    x0, y0, x1, y1 = crop_box(np.asarray(box, np.float32), (page.shape[1], page.shape[0]), (margin,) * 4)
    return page[y0:y1, x0:x1]


def _runs(flags: np.ndarray) -> list[tuple[int, int]]:
    """[start, end) of the runs of True in a 1-D boolean array."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], flags.astype(np.int8), [0]])))
    return list(zip(edges[::2].tolist(), edges[1::2].tolist()))


def _bands(ink: np.ndarray) -> list[tuple[int, int]]:
    """Row ranges of text lines: rows holding ink, tall bands cut at their emptiest row."""
    rows = ink.sum(1)
    bands = [b for b in _runs(rows > max(1, 0.002 * ink.shape[1])) if b[1] - b[0] >= MIN_LINE_HEIGHT]
    if not bands:
        return []
    typical = float(np.median([b - a for a, b in bands]))
    out = []
    while bands:
        a, b = bands.pop(0)
        if b - a > 1.8 * typical and b - a >= 2 * MIN_LINE_HEIGHT:
            inner = rows[a + MIN_LINE_HEIGHT:b - MIN_LINE_HEIGHT]
            cut = a + MIN_LINE_HEIGHT + int(np.argmin(inner))
            bands[:0] = [(a, cut), (cut, b)]
        else:
            out.append((a, b))
    return out


def find_lines(page: Image.Image, column_gap: float = COLUMN_GAP) -> np.ndarray:
    """Boxes (n, 4) float32 of the text lines of an upright ``page``, in reading order; empty
    when the page has no ink (blank, or too faint to tell from its background)."""
    grey = np.asarray(page.convert("L"))
    ink = ink_mask(grey)
    if ink is None:
        return np.zeros((0, 4), np.float32)
    boxes = []
    for top, bottom in _bands(ink):
        band = ink[top:bottom]
        height = bottom - top
        cols = band.any(0)
        spans = [list(s) for s in _runs(cols)]
        merged = [spans[0]] if spans else []
        for start, end in spans[1:]:
            if start - merged[-1][1] <= column_gap * height:
                merged[-1][1] = end
            else:
                merged.append([start, end])
        for x0, x1 in merged:
            rows = np.flatnonzero(band[:, x0:x1].any(1))
            if x1 - x0 >= 2 and len(rows) and rows[-1] + 1 - rows[0] >= MIN_LINE_HEIGHT:   # not a speck
                boxes.append((x0, top + rows[0], x1, top + rows[-1] + 1))
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    return boxes[reading_order(boxes)]
