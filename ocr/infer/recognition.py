"""A trained recogniser, ready to read text lines: checkpoint -> model + preprocessing + charset.

    reader = LineReader.load("runs/my-run")          # a run folder (its best/) or a checkpoint
    reader.read([png_bytes, pil_image])               # [("0123", 0.98), ...]

Preprocessing and charset come from ``model.json``, so evaluation, ``ocr recognize`` and
serving feed the model exactly as training did.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from ocr import checkpoint
from ocr.charset import Charset
from ocr.data.images import DEFAULT_MAX_PIXELS, Preprocess, decode


class LineReader:
    """A recognition checkpoint and its model.json: reads line images."""

    def __init__(self, model: torch.nn.Module, meta: dict, device: str | torch.device = "cpu"):
        self.model, self.meta, self.device = model.eval(), meta, torch.device(device)
        self.charset = Charset.from_json(meta["charset"])
        self.preprocess = Preprocess.from_json(meta["preprocess"])

    @classmethod
    def load(cls, path: str, device: str = "cpu") -> "LineReader":
        model, meta = checkpoint.load(path, "recognition", device)
        return cls(model, meta, device)

    def batch(self, images: list[bytes | Image.Image], max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
        """Images (encoded bytes or PIL) to the model's input batch (B, C, H, W)."""
        decoded = [im if isinstance(im, Image.Image) else decode(im, max_pixels) for im in images]
        return self.preprocess(decoded)

    @torch.inference_mode()
    def read_batch(self, x: np.ndarray) -> list[tuple[str, float]]:
        out = self.model(torch.from_numpy(x).to(self.device))
        return [(self.charset.decode(idx), conf) for idx, conf in self.model.decode(out)]

    def read(self, images: list[bytes | Image.Image], batch_size: int = 64) -> list[tuple[str, float]]:
        """(text, confidence) per image, in order."""
        results = []
        for start in range(0, len(images), batch_size):
            results += self.read_batch(self.batch(images[start:start + batch_size]))
        return results
