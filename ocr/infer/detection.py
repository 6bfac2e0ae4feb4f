"""A trained detector, ready to find boxes: checkpoint -> model + preprocessing + classes.

    reader = BoxReader.load("runs/roi-run")             # a run folder (its best/) or a checkpoint
    reader.pages([pil_page])                            # ROI: [{"boxes", "scores", "labels"}]
    char = BoxReader.load("runs/char-run")
    char.lines(pil_page, line_boxes)                    # char: [(detections, text read), ...]

An ROI model sees the page stretched to its input size; a char model sees each line box
cropped as in training (:func:`~ocr.data.boxes.line_crop`) and reads its char boxes as text
(:func:`~ocr.models.detection.boxes_to_text`, with the ``readout`` settings of model.json).
Boxes come back in page pixels.
"""

from __future__ import annotations

import numpy as np
import torch

from ocr import checkpoint
from ocr.data.boxes import line_crop
from ocr.data.images import Preprocess
from ocr.models.detection import boxes_to_text

BACKGROUND = "__background__"                    # classes[0]
READOUT = {"min_score": 0.5, "space_gap": 0.25}   # boxes_to_text settings for char models


class BoxReader:
    """A detection checkpoint and its model.json: runs on pages (ROI) or line boxes (char)."""

    def __init__(self, model: torch.nn.Module, meta: dict, device: str | torch.device = "cpu"):
        self.model, self.meta, self.device = model.eval(), meta, torch.device(device)
        self.preprocess = Preprocess.from_json(meta["preprocess"])
        n = meta["arch"]["num_classes"]
        self.classes = meta.get("classes") or [BACKGROUND, *(f"class{i}" for i in range(1, n))]
        self.target = meta.get("target") or self.classes[1]
        self.kind = "char" if self.target == "char" else "roi"
        self.readout = meta.get("readout") or READOUT

    @classmethod
    def load(cls, path: str, device: str = "cpu") -> "BoxReader":
        model, meta = checkpoint.load(path, "detection", device)
        return cls(model, meta, device)

    @torch.inference_mode()
    def run(self, images: list[np.ndarray], batch_size: int = 16) -> list[dict]:
        """uint8 (H, W, C) model-size images -> per image {boxes (n, 4), scores, labels} (numpy,
        model-input pixels)."""
        out = []
        for start in range(0, len(images), batch_size):
            x = self.preprocess.normalise(np.stack(images[start:start + batch_size]))
            for d in self.model(torch.from_numpy(x).to(self.device)):
                out.append({"boxes": d["boxes"].float().cpu().numpy(),
                            "scores": d["scores"].float().cpu().numpy(),
                            "labels": d["labels"].cpu().numpy()})
        return out

    def pages(self, pages: list, batch_size: int = 16) -> list[dict]:
        """ROI detections of PIL pages, boxes in each page's pixels."""
        arrays = [self.preprocess.resize(p) for p in pages]
        out = self.run(arrays, batch_size)
        for d, page, a in zip(out, pages, arrays):
            d["boxes"] = d["boxes"] / np.array([a.shape[1] / page.width, a.shape[0] / page.height] * 2,
                                               np.float32)
        return out

    def lines(self, page, line_boxes: np.ndarray, batch_size: int = 64) -> list[tuple[dict, str]]:
        """Char detections (page pixels) and the text read, for each line box of a PIL page."""
        crops = [line_crop(page, box, self.preprocess) for box in line_boxes]
        out = []
        for det, (_, (x0, y0, _, _), (sx, sy)) in zip(self.run([c[0] for c in crops], batch_size), crops):
            text = boxes_to_text(det["boxes"], det["labels"], det["scores"], self.classes, **self.readout)
            det["boxes"] = det["boxes"] / np.array([sx, sy, sx, sy], np.float32) + \
                np.array([x0, y0, x0, y0], np.float32)
            out.append((det, text))
        return out
