"""Estimates from pages: the model's two stages, and the classical method.

An estimate is a dict: ``angle`` (the page's total rotation, degrees CCW as PIL turns, in
[-180, 180)), ``skew`` (in [-45, 45)), ``orientation`` (0/90/180/270), ``confidence`` (0..1)
and ``method`` ("model" or "classical").

The model's stages: the skew head reads the view of the page as it is; the orientation head
reads crops of the page turned back by that skew (their mean log-probability). ``turns``
(degrees, one per page) first turn each page by that much, as if it had been scanned so
(validation and evaluation rotate pages on the fly this way; views are turned, the page is
not resampled twice).
"""

from __future__ import annotations

import numpy as np
import torch

from ocr.models.orientation.angles import compose
from ocr.models.orientation.classical import classical_skew, lines_across
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
    conf, k = orientation_probs(model, prep, inks, turns - skews, device).max(1)
    return [{"angle": compose(s, 90 * int(q)), "skew": float(s), "orientation": 90 * int(q),
             "confidence": float(c) * float(sc), "method": "model"}
            for s, q, c, sc in zip(skews, k, conf, skew_conf.cpu())]


def orientation_probs(model: OrientationNet, prep: PagePreprocess, inks: list[PageInk], angles,
                      device: str | torch.device = "cpu", chunk: int = 64) -> torch.Tensor:
    """(B, 4) probabilities of 0/90/180/270 of pages turned by ``angles`` (upright but for
    their quarter turns): the mean log-probability of each page's orientation crops."""
    crops, owner = prep.orientation_views(inks, angles)
    crops = torch.from_numpy(crops)
    logits = [model.orientation_logits(crops[i:i + chunk].to(device)).float().cpu()
              for i in range(0, len(crops), chunk)]
    logp = torch.log_softmax(torch.cat(logits), 1)
    owner = torch.from_numpy(owner)
    total = torch.zeros(len(inks), 4).index_add_(0, owner, logp)
    return torch.softmax(total / torch.bincount(owner, minlength=len(inks))[:, None], 1)


def classical_estimate(ink: PageInk, turn: float = 0.0) -> dict:
    """The projection-profile estimate of one page: its skew, and which way its lines run
    (orientation 0 across the page, 90 down it: the method cannot tell 180 from 0 or 270 from
    90)."""
    if turn:
        h, w = ink.ink.shape
        centre = np.array([w / 2, h / 2], np.float32)
        ink = ink._replace(points=((ink.points - centre) @ rotation(turn).T.astype(np.float32) + centre))
    skew, conf = classical_skew(ink)
    quarter = 0 if conf == 0 or lines_across(ink.ink, turn - skew) else 90
    return {"angle": compose(skew, quarter), "skew": skew, "orientation": quarter, "confidence": conf,
            "method": "classical"}
