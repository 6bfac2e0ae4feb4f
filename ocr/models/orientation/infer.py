"""Estimates from pages: the model's two stages, and the classical method.

An estimate is a dict: ``angle`` (the page's total rotation, degrees CCW as PIL turns, in
[-180, 180)), ``skew`` (in [-45, 45)), ``orientation`` (0/90/180/270), ``confidence`` (0..1)
and ``method`` ("model" or "classical").

The model's stages: the skew head reads the view of the page as it is; the orientation head
reads the view turned back by that skew. ``turns`` (degrees, one per page) first turn each
page by that much, as if it had been scanned so (validation and evaluation rotate pages on
the fly this way; views are turned, the page is not resampled twice).
"""

from __future__ import annotations

import numpy as np
import torch

from ocr.models.orientation.angles import compose
from ocr.models.orientation.classical import classical_skew
from ocr.models.orientation.model import OrientationNet
from ocr.models.orientation.preprocess import PageInk, PagePreprocess, rotation


@torch.inference_mode()
def model_estimates(model: OrientationNet, prep: PagePreprocess, inks: list[PageInk],
                    turns=None, device: str | torch.device = "cpu") -> list[dict]:
    """One estimate per page ink map (a batch: callers chunk large sets)."""
    if not inks:
        return []
    turns = np.zeros(len(inks)) if turns is None else np.asarray(turns, np.float64)
    views = torch.from_numpy(prep.views(inks, turns)).to(device)
    skews, skew_conf = model.buckets.decode(model.skew_logits(views).float())
    skews = skews.cpu().numpy().astype(np.float64)
    upright = torch.from_numpy(prep.views(inks, turns - skews)).to(device)
    probs = torch.softmax(model.orientation_logits(upright).float(), 1).cpu()
    conf, k = probs.max(1)
    return [{"angle": compose(s, 90 * int(q)), "skew": float(s), "orientation": 90 * int(q),
             "confidence": float(c) * float(sc), "method": "model"}
            for s, q, c, sc in zip(skews, k, conf, skew_conf.cpu())]


def classical_estimate(ink: PageInk, turn: float = 0.0) -> dict:
    """The projection-profile estimate of one page (orientation always 0)."""
    if turn:
        h, w = ink.ink.shape
        centre = np.array([w / 2, h / 2], np.float32)
        ink = ink._replace(points=((ink.points - centre) @ rotation(turn).T.astype(np.float32) + centre))
    skew, conf = classical_skew(ink)
    return {"angle": compose(skew, 0), "skew": skew, "orientation": 0, "confidence": conf,
            "method": "classical"}
