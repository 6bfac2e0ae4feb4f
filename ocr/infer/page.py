"""A page to text in-process (``ocr read``): upright it, find its lines, read them in order.

    reader = PageReader.load("builtin:digits")                    # classical deskew and lines
    reader = PageReader.load(rec, detector="runs/roi", deskewer="runs/orientation")
    result = reader.read_page(pil_page)   # {"text", "lines", "angle", ..., "timings_ms"}
    reader.read_lines([pil_line, ...])    # each image one line: [{"text", "confidence"}]

No Ray and no Serve: the same readers (:mod:`ocr.infer`) the service's stages hold.
"""

from __future__ import annotations

import time

import numpy as np
from PIL import Image

from ocr.infer import which_way_up as way_up
from ocr.infer.detection import BoxReader
from ocr.infer.layout import CLASSICAL, crop, find_lines, select_boxes, text_by_rows
from ocr.infer.orientation import PageDeskewer
from ocr.infer.recognition import LineReader

MIN_SCORE = 0.3     # detector boxes kept (a trained detector's score)
MAX_BOXES = 300


def find_boxes(detector: BoxReader | None, page: Image.Image, min_score: float,
               max_boxes: int) -> tuple[np.ndarray, np.ndarray]:
    """A page's text boxes and scores in reading order: an ROI ``detector``'s (its boxes of
    ``min_score`` or more, the best ``max_boxes``), or with None the classical line finder's."""
    if detector is None:
        boxes = find_lines(page)[:max_boxes]
        return boxes, np.ones(len(boxes), np.float32)
    det = detector.pages([page])[0]
    return select_boxes(det["boxes"], det["scores"], page.size, min_score, max_boxes)


class PageReader:
    """A recogniser, an optional ROI detector (else :func:`find_lines`) and a deskewer (a model,
    else the classical skew with orientation 0)."""

    def __init__(self, recognizer: LineReader, detector: BoxReader | None, deskewer: PageDeskewer):
        self.recognizer, self.detector, self.deskewer = recognizer, detector, deskewer
        self.orients_by_reading = way_up.tells_which_way_up(recognizer.charset)

    @classmethod
    def load(cls, recognizer: str, detector: str = "", deskewer: str = "",
             device: str = "cpu") -> "PageReader":
        box_reader = BoxReader.load(detector, device) if detector not in ("", CLASSICAL) else None
        if box_reader is not None and box_reader.kind != "roi":
            raise ValueError(f"{detector}: expected a region (ROI) detector, found a "
                             f"{box_reader.target!r} detector")
        return cls(LineReader.load(recognizer, device), box_reader,
                   PageDeskewer.load(deskewer or None, device))

    def read_lines(self, images: list[Image.Image]) -> list[dict]:
        """Each image one text line: {"text", "confidence"} per image."""
        return [{"text": t, "confidence": round(float(c), 5)} for t, c in self.recognizer.read(images)]

    def _boxes(self, page: Image.Image) -> tuple[np.ndarray, np.ndarray]:
        return find_boxes(self.detector, page, MIN_SCORE, MAX_BOXES)

    def read_page(self, page: Image.Image) -> dict:
        """The page's lines in reading order and how it was turned, with per-stage timings."""
        times = {}
        start = time.perf_counter()
        upright, info = self.deskewer.correct(page)
        times["deskew"] = time.perf_counter() - start
        start = time.perf_counter()
        boxes, scores = self._boxes(upright)
        times["lines"] = time.perf_counter() - start
        if info["method"] == "classical" and len(boxes) and self.orients_by_reading:   # a model's is its own
            start = time.perf_counter()
            if self._reads_upside_down(upright, boxes):
                upright, info = upright.transpose(Image.Transpose.ROTATE_180), way_up.turn_estimate(info)
                boxes, scores = self._boxes(upright)
            times["which_way_up"] = time.perf_counter() - start
        start = time.perf_counter()
        crops = _crops(upright, boxes)
        read = self.read_lines(crops) if crops else []
        times["recognize"] = time.perf_counter() - start
        lines = [{"text": r["text"], "confidence": r["confidence"], "box": [round(float(v), 1) for v in b],
                  "box_score": round(float(s), 4)} for r, b, s in zip(read, boxes, scores)]
        lines = [ln for ln in lines if ln["text"].strip()]
        text = text_by_rows(lines)
        if not lines:   # no text: no angle to speak of, whatever the estimate made of the blank
            info = {**info, "angle": 0.0, "skew": 0.0, "orientation": 0, "confidence": 0.0}
        return {"text": text, "lines": lines, "no_text": not lines,
                "angle": round(float(info["angle"]), 3), "skew": round(float(info["skew"]), 3),
                "orientation": int(info["orientation"]),
                "orientation_confidence": round(float(info["confidence"]), 4),
                "deskew_method": info["method"], "size": [page.width, page.height],
                "timings_ms": {k: round(v * 1000, 2) for k, v in times.items()}}

    def _reads_upside_down(self, page: Image.Image, boxes: np.ndarray) -> bool:
        sample = _crops(page, boxes[way_up.sample_lines(boxes)])
        as_found = [c for _, c in self.recognizer.read(sample)]
        turned = [c for _, c in self.recognizer.read(way_up.half_turned(sample))]
        return way_up.upside_down(as_found, turned)


def _crops(page: Image.Image, boxes: np.ndarray) -> list[Image.Image]:
    pixels = np.asarray(page.convert("L"))
    return [Image.fromarray(np.ascontiguousarray(crop(pixels, b))) for b in boxes]
