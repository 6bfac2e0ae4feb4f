"""Deskew and orient pages: the reader that ``ocr deskew``, ``ocr eval`` and serving call.

    deskewer = PageDeskewer.load("runs/orientation-run")   # a run folder (its best/) or checkpoint
    deskewer = PageDeskewer.load(None)                     # the classical method (orientation 0)
    info = deskewer.estimate(page)          # {"angle", "skew", "orientation", "confidence", "method"}
    upright, info = deskewer.correct(page)

``angle`` is the page's total rotation in degrees, counter-clockwise positive as PIL turns
images (``page.rotate(-angle)`` undoes it), = ``skew`` (in [-45, 45)) + ``orientation``
(0/90/180/270) modulo 360. One checkpoint holds both stages (one model with a skew head and
an orientation head, see :mod:`ocr.models.orientation.model`); its ``model.json`` holds the
preprocessing. Without a checkpoint the classical projection-profile method finds the skew
and leaves the orientation at 0.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from ocr import checkpoint as ckpt
from ocr.models.orientation.infer import classical_estimate, model_estimates
from ocr.models.orientation.preprocess import PagePreprocess

_UNDO_QUARTERS = {1: Image.Transpose.ROTATE_270, 2: Image.Transpose.ROTATE_180, 3: Image.Transpose.ROTATE_90}
_GREY_MODES = ("1", "L", "LA", "I", "I;16", "F")


def upright(page: Image.Image, skew: float, orientation: int) -> Image.Image:
    """``page`` turned back by ``skew`` (same size, the page's per-channel median colour filling
    the corners) then by ``orientation`` (exact quarter turns: width and height swap for 90
    and 270). L and RGB pages keep their mode; others become L (grey) or RGB."""
    if page.mode not in ("L", "RGB"):
        page = page.convert("L" if page.mode in _GREY_MODES else "RGB")
    if abs(skew) >= 0.01:
        small = np.asarray(page.reduce(max(1, max(page.size) // 256)))
        fill = tuple(int(v) for v in np.median(small.reshape(-1, len(page.getbands())), 0))
        page = page.rotate(-skew, Image.BICUBIC, expand=False, fillcolor=fill if len(fill) > 1 else fill[0])
    quarters = int(orientation) // 90 % 4
    return page.transpose(_UNDO_QUARTERS[quarters]) if quarters else page


class PageDeskewer:
    """Finds a page's rotation and turns it upright, with a model or the classical method."""

    def __init__(self, model: torch.nn.Module | None, meta: dict | None, device: str = "cpu"):
        self.model, self.meta, self.device = model, meta, device
        self.preprocess = PagePreprocess.from_json(meta["preprocess"]) if meta else PagePreprocess()

    @classmethod
    def load(cls, checkpoint: str | None, device: str = "cpu") -> "PageDeskewer":
        """A checkpoint folder, a run folder (its best/) or s3:// URI; None: the classical method."""
        if not checkpoint:
            return cls(None, None, device)
        model, meta = ckpt.load(checkpoint, "orientation", device)
        return cls(ckpt.preferred_layout(model), meta, device)   # as trained: 1.05-1.1x a page

    @property
    def version(self) -> dict:
        if not self.meta:
            return {"name": "classical"}
        return {"name": self.meta["arch"]["name"], "step": self.meta.get("step"),
                "run": (self.meta.get("config") or {}).get("name")}

    def estimate_many(self, pages: list[Image.Image], turns=None) -> list[dict]:
        """One estimate per page (see the module docstring); ``turns`` first turn each page by
        that many degrees (evaluation's on-the-fly rotation)."""
        inks = [self.preprocess.page(p) for p in pages]
        if self.model is None:
            return [classical_estimate(ink, float(t)) for ink, t in zip(inks, turns if turns is not None
                                                                       else [0.0] * len(inks))]
        return model_estimates(self.model, self.preprocess, inks, turns, self.device)

    def estimate(self, page: Image.Image) -> dict:
        return self.estimate_many([page])[0]

    def correct(self, page: Image.Image) -> tuple[Image.Image, dict]:
        """(the upright page, its estimate)."""
        info = self.estimate(page)
        return upright(page, info["skew"], info["orientation"]), info
