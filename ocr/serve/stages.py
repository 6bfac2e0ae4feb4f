"""The three stages of the OCR graph as plain classes: no Ray, no HTTP.

Serve's deployments (``ocr.serve.deployments``) hold one of these each and swap it when
their checkpoint changes; the serving benchmark calls them directly to measure what Serve
adds. Images travel as uint8 numpy arrays (H, W) or (H, W, C): cheap to pickle, zero-copy
through Ray's object store.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from ocr.infer import BoxReader, LineReader, PageDeskewer
from ocr.infer.layout import CLASSICAL
from ocr.infer.page import find_boxes
from ocr.infer.which_way_up import tells_which_way_up


def model_version(meta: dict, path: str) -> dict:
    """What a response says about the model that produced it."""
    return {"task": meta.get("task"), "arch": (meta.get("arch") or {}).get("name"),
            "step": meta.get("step"), "run": (meta.get("config") or {}).get("name"),
            "charset": (meta.get("charset") or {}).get("hash"), "checkpoint": path,
            **({"registered": meta["registered"]["uri"]} if meta.get("registered") else {})}


def as_image(array: np.ndarray) -> Image.Image:
    return Image.fromarray(np.ascontiguousarray(array))


BUCKET = 32
MAX_FORWARD = 64   # lines per model forward at most (memory); a bigger bucket takes several


class RecognizerStage:
    """Reads line images, in batches bucketed by width: crops of one bucket are padded to
    that bucket's width, alone or batched, so a batched answer equals the unbatched one."""

    def __init__(self, path: str, device: str = "cpu"):
        self.reader = LineReader.load(path, device)
        self.version = model_version(self.reader.meta, path)
        self.orients_by_reading = tells_which_way_up(self.reader.charset)

    def bucket(self, image: Image.Image) -> int:
        """The padded width of ``image``: its resized width rounded up to a multiple of 32 (a
        few buckets, so concurrent crops share a model call; the padding is per crop, so the
        answer does not depend on the batch)."""
        spec = self.reader.preprocess
        return spec.bucket_width([spec.resized_width(*image.size)], multiple=BUCKET)

    def read(self, crops: list[np.ndarray]) -> list[dict]:
        """{"text", "confidence"} per crop, in order."""
        images = [self.reader.preprocess.prepare(as_image(c)) for c in crops]
        buckets: dict[int, list[int]] = {}
        for i, im in enumerate(images):
            buckets.setdefault(self.bucket(im), []).append(i)
        out: list[dict] = [{}] * len(images)
        for width, idx in buckets.items():
            for chunk in (idx[k:k + MAX_FORWARD] for k in range(0, len(idx), MAX_FORWARD)):
                x = self.reader.preprocess([images[i] for i in chunk], width, prepared=True)
                for i, (text, conf) in zip(chunk, self.reader.read_batch(x)):
                    out[i] = {"text": text, "confidence": round(float(conf), 5)}
        return out


class DetectorStage:
    """Finds text regions (ROI) on a page: boxes in page pixels, in reading order; ``lines``
    instead of a checkpoint: the classical line finder (print on a plain ground, no model)."""

    def __init__(self, path: str, device: str = "cpu"):
        self.detector = None
        if path == CLASSICAL:
            self.version = {"task": "detection", "arch": "classical lines", "checkpoint": CLASSICAL}
            return
        self.detector = BoxReader.load(path, device)
        if self.detector.kind != "roi":
            raise ValueError(f"{path}: expected a region (ROI) detector, found a "
                             f"{self.detector.target!r} detector")
        self.version = model_version(self.detector.meta, path)

    def detect(self, page: np.ndarray, min_score: float, max_boxes: int) -> list[dict]:
        boxes, scores = find_boxes(self.detector, as_image(page), min_score, max_boxes)
        return [{"box": [round(float(v), 1) for v in box], "score": round(float(score), 4)}
                for box, score in zip(boxes, scores)]


class DeskewerStage:
    """Finds the page's rotation and returns it upright. No checkpoint: the classical method."""

    def __init__(self, path: str | None, device: str = "cpu"):
        self.deskewer = PageDeskewer.load(path or None, device)
        self.version = {**self.deskewer.version, "checkpoint": path or None}

    def correct(self, page: np.ndarray) -> tuple[np.ndarray, dict]:
        upright, info = self.deskewer.correct(as_image(page))
        return np.asarray(upright), info
