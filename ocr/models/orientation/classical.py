"""The classical skew estimate: projection profiles of the ink, no model, no training.

For a candidate angle, every ink pixel (:attr:`PageInk.points`) is projected on the normal of
text lines turned by that angle and binned one pixel wide; text lines make that profile peaky,
and the sum of its squared bins is largest at the angle of the lines. The search runs over a
half turn in 1-degree steps on at most :data:`COARSE_POINTS` pixels (lines and the columns
across them both give peaks, a quarter turn apart: either one names the same skew), then in
0.1-degree steps around the best with every pixel, and a parabola through the best three
scores refines it. The skew is the line angle modulo 90,
in [-45, 45).

Which way the lines run (across the page or down it, a quarter turn) comes from the ink
straightened by the skew: runs of inked rows are as tall as a line, runs of inked columns as
long as the lines (words of the lines above and below overlap), and a quarter turn swaps
them. Which way up the page is, this method cannot tell (180 from 0, 270 from 90): reading
the lines can (:mod:`ocr.infer.which_way_up`).
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from ocr.models.orientation.angles import wrap
from ocr.models.orientation.preprocess import PageInk

COARSE_POINTS = 5000   # ink pixels (evenly strided) the coarse search projects; the fine one all


def profile_scores(points: np.ndarray, angles: np.ndarray) -> np.ndarray:
    """Sum of squared 1-pixel bins of the ink projected across lines at each angle (degrees)."""
    r = np.radians(angles)
    normals = np.stack([np.sin(r), np.cos(r)], 1)                  # (A, 2): y points down
    rho = normals @ points.T.astype(np.float64)                     # (A, N)
    bins = np.floor(rho - rho.min(1, keepdims=True)).astype(np.int64)
    width = int(bins.max()) + 1
    counts = np.bincount((bins + np.arange(len(angles))[:, None] * width).ravel(),
                         minlength=len(angles) * width).reshape(len(angles), width)
    return (counts.astype(np.float64) ** 2).sum(1)


def _parabola(y0: float, y1: float, y2: float) -> float:
    """Offset (in steps, within +-0.5) of the vertex of the parabola through three points."""
    d = y0 - 2 * y1 + y2
    return 0.0 if d >= 0 else float(np.clip(0.5 * (y0 - y2) / d, -0.5, 0.5))


def classical_skew(ink: PageInk, coarse: float = 1.0, fine: float = 0.1) -> tuple[float, float]:
    """(skew in [-45, 45), confidence in [0, 1]) of a page's ink; (0, 0) without ink."""
    if len(ink.points) < 16:
        return 0.0, 0.0
    pts = ink.points - ink.points.mean(0)
    grid = np.arange(-90.0, 90.0, coarse)
    scores = profile_scores(pts[:: max(1, len(pts) // COARSE_POINTS)], grid)
    best = float(grid[int(scores.argmax())])
    local = best + np.arange(-coarse * 1.5, coarse * 1.5 + fine / 2, fine)
    near = profile_scores(pts, local)
    i = int(np.clip(near.argmax(), 1, len(local) - 2))
    angle = local[i] + fine * _parabola(near[i - 1], near[i], near[i + 1])
    confidence = 1.0 - float(np.median(scores)) / max(float(near.max()), 1e-12)
    return float(wrap(angle, 90.0)), max(0.0, confidence)


def _run_length(inked: np.ndarray) -> float:
    """Mean length of the runs of True in a 1-D mask, each run weighted by its length (specks
    of noise count little); 0 with none."""
    edges = np.diff(np.concatenate([[0], inked.astype(np.int8), [0]]))
    runs = (np.flatnonzero(edges == -1) - np.flatnonzero(edges == 1)).astype(np.float64)
    return float((runs ** 2).sum() / runs.sum()) if len(runs) else 0.0


def lines_across(ink: np.ndarray, angle: float) -> bool:
    """Whether the text lines of an ink map (float (H, W) in [0, 1]) turned by ``angle`` degrees
    (counter-clockwise, as PIL turns) run across it rather than down it; True without ink."""
    turned = Image.fromarray((np.clip(ink, 0, 1) * 255).astype(np.uint8)).rotate(angle, Image.BILINEAR,
                                                                                 expand=True)
    inked = np.asarray(turned) >= 128
    return _run_length(inked.any(0)) >= _run_length(inked.any(1))
