"""Boxes of a page and the line crops a char-level detector sees: one preprocessing for
training (:mod:`ocr.train.detection`) and inference (:class:`ocr.infer.BoxReader`)."""

from __future__ import annotations

import math

import numpy as np
from PIL import Image

from ocr.data.images import Preprocess
from ocr.models.detection.box_ops import CROP_MARGIN, crop_box


def box_array(boxes, label: str | None = None) -> np.ndarray:
    """float32 (n, 4) xyxy of the shard boxes (dicts x0, y0, x1, y1, label, text) with ``label``."""
    rows = [(b["x0"], b["y0"], b["x1"], b["y1"]) for b in boxes if label is None or b["label"] == label]
    return np.asarray(rows, np.float32).reshape(-1, 4)


def fit_crop(crop: Image.Image, preprocess: Preprocess) -> tuple[np.ndarray, float, float]:
    """A line crop as uint8 (H, W, C) of ``preprocess``'s size, scaled uniformly: a crop wider
    than W/H is first padded at the bottom (last row repeated) to that aspect, then
    ``preprocess`` (keep_ratio) resizes it to height H and pads it on the right to W.
    Returns (image, x scale, y scale) from crop pixels to image pixels."""
    mode = "L" if preprocess.channels == 1 else "RGB"
    crop = crop.convert(mode)
    w, h = crop.size
    need = max(h, math.ceil(w * preprocess.height / preprocess.width))
    if need > h:
        arr = np.asarray(crop)
        pad = ((0, need - h), (0, 0)) + (((0, 0),) if arr.ndim == 3 else ())
        crop = Image.fromarray(np.pad(arr, pad, mode="edge"))
    arr = preprocess.resize(crop)
    return preprocess.pad_to(arr, preprocess.width), arr.shape[1] / w, preprocess.height / need


def line_crop(page: Image.Image, line: np.ndarray, preprocess: Preprocess, margins=(CROP_MARGIN,) * 4):
    """(uint8 image (H, W, C), crop (x0, y0, x1, y1) in page pixels, (x scale, y scale)) of a line."""
    box = crop_box(line, page.size, margins)
    image, sx, sy = fit_crop(page.crop(box), preprocess)
    return image, box, (sx, sy)
