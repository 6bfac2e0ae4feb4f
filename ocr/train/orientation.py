"""The orientation task: any image shards -> one model with a fine skew head and a 4-way
orientation head (:mod:`ocr.models.orientation`).

Data: page shards (detection or orientation, whose ``angle`` column says how the page was
turned) and any other image shards (recognition lines too: angle 0). Every page is turned on
the fly, and its labels follow from the stored angle plus the turn applied:

* skew view: the page turned by a uniform random angle in [-180, 180); label the total angle
  modulo 90 (a circular Gaussian over the 0.5-degree buckets, sigma one bucket);
* orientation view: a crop (``orientation_zoom`` of the view, centred on a random ink pixel)
  of the page turned upright, plus a residual skew drawn from N(0, :data:`RESIDUAL`) degrees
  (what the skew head leaves), stretched and slanted along its lines (wider, narrower and
  italic faces), then turned by its own quarter turns again; label those quarter turns.

Both views' crops are jittered (zoom, shift: :class:`~ocr.models.orientation.preprocess.Jitter`)
with ``augment`` as the strength; the tensors then get stroke, blur, contrast and noise changes.

The orientation head is equivariant to quarter turns, so upright pages teach all four classes.

A training batch (collated in the Ray Data iterator of each worker)::

    ids                int64   (B,)
    skew_views         float32 (B, 1, S, S)
    skew_angles        float32 (B,)       degrees, in [-45, 45)
    orientation_views  float32 (B, 1, S, S)
    orientations       int64   (B,)       0..3 (quarter turns)

Validation runs the full inference of :func:`~ocr.models.orientation.infer.model_estimates` on
the validation split, each page turned by a fixed angle drawn from its id, and reports the
metrics of :func:`~ocr.eval.orientation.orientation_metrics`; the best checkpoint has the
lowest ``val_angle_mae`` (total angle error, orientation mistakes included).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ocr.config import ConfigError
from ocr.data.images import decode
from ocr.data.loader import numpy_collate
from ocr.data.shards import ids_to_ints
from ocr.eval.orientation import orientation_metrics
from ocr.models.orientation import ORIENTERS
from ocr.models.orientation.angles import decompose, seeded_turn, wrap
from ocr.models.orientation.infer import model_estimates
from ocr.models.orientation.preprocess import Jitter, PagePreprocess
from ocr.train.augment import random_blur, random_photometric, random_stroke
from ocr.train.config import TrainConfig
from ocr.train.data import load_manifests, split_rows, val_batches
from ocr.train.task import TaskBase

DEFAULT_MODEL = "deskew_fft"
RESIDUAL = 0.5           # degrees: std of the skew left in orientation views (clipped at 3 std)
WITH_ANGLE = ("detection", "orientation")   # shard tasks with an ``angle`` column


class OrientationCollate:
    """numpy batch (id, image, optional angle) -> the batch of the module docstring, minus the
    pages in ``skip`` (already trained this epoch)."""

    def __init__(self, preprocess: PagePreprocess, skip: frozenset[int] = frozenset(), seed: int = 0,
                 residual: float = RESIDUAL, jitter: float = 0.0):
        self.preprocess, self.skip, self.seed, self.residual = preprocess, skip, seed, residual
        self.jitter = jitter

    def __call__(self, batch: dict) -> dict:
        ids = ids_to_ints(batch["id"])
        stored = batch.get("angle")
        rng = np.random.default_rng([self.seed, *ids[:1].view(np.uint64).tolist()])
        kept, views, skews, upright, quarters = [], [], [], [], []
        for i, sid in enumerate(ids.tolist()):
            if sid in self.skip:
                continue
            ink = self.preprocess.page(decode(bytes(batch["image"][i])))
            angle = float(stored[i]) if stored is not None else 0.0
            turn = rng.uniform(-180.0, 180.0)
            views.append(self.preprocess.view(ink, turn, Jitter.draw(rng, self.jitter, warp=False)))
            skews.append(wrap(angle + turn, 90.0))
            # upright (stretched and slanted along its lines), then the page's own quarter turns
            quarter = decompose(angle)[1] // 90
            residual = float(np.clip(rng.normal(0.0, self.residual), -3 * self.residual, 3 * self.residual))
            view = self.preprocess.orientation_view(ink, residual - angle, rng, Jitter.draw(rng, self.jitter))
            upright.append(np.ascontiguousarray(np.rot90(view, quarter)))
            quarters.append(quarter)
            kept.append(sid)
        if not kept:
            return {"ids": torch.zeros(0, dtype=torch.int64)}
        return {"ids": torch.tensor(kept, dtype=torch.int64),
                "skew_views": torch.from_numpy(np.stack(views)[:, None]),
                "skew_angles": torch.tensor(skews, dtype=torch.float32),
                "orientation_views": torch.from_numpy(np.stack(upright)[:, None]),
                "orientations": torch.tensor(quarters, dtype=torch.int64)}


def augment_views(x: torch.Tensor, strength: float, g: torch.Generator) -> torch.Tensor:
    """Stroke width, blur, contrast, brightness and noise on ink views; identity at 0."""
    if strength <= 0:
        return x
    return random_photometric(random_blur(random_stroke(x, strength, g), strength, g), strength, g)


class OrientationTask(TaskBase):
    name = "orientation"
    large_samples = True
    metric, mode = "val_angle_mae", "min"
    extra_names: list[str] = []
    val_columns = ["val_angle_mae", "val_skew_mae", "val_within_0_5", "val_within_1",
                   "val_orientation_accuracy", "val_pages"]

    def __init__(self, cfg: TrainConfig):
        self.cfg = cfg
        manifest, val_manifest = load_manifests(cfg, None)   # any image shards
        self.train_rows = split_rows(manifest, cfg.train_split)
        self.columns = self._columns(manifest)
        self.val_cols = self._columns(val_manifest)
        self._check_config()
        if cfg.init_from:
            self.arch, self.preprocess = self._from_checkpoint()
        else:
            self.arch, self.preprocess = self._arch(cfg.model or DEFAULT_MODEL, cfg.model_overrides())

    @staticmethod
    def _columns(manifest: dict) -> list[str]:
        return ["id", "image"] + (["angle"] if manifest["task"] in WITH_ANGLE else [])

    def _check_config(self) -> None:
        cfg = self.cfg
        if cfg.channels not in (0, 1):
            raise ConfigError(f"channels: orientation models see 1 channel (the page's ink), "
                              f"found {cfg.channels}")
        if cfg.height and cfg.width and cfg.height != cfg.width:
            raise ConfigError(f"height and width: orientation views are square, "
                              f"found {cfg.height}x{cfg.width}")
        if cfg.target:
            raise ConfigError(f"target: orientation training learns angles, not boxes; found {cfg.target!r}")

    def _arch(self, name: str, overrides: dict) -> tuple[dict, PagePreprocess]:
        try:
            side = self.cfg.height or self.cfg.width or overrides.pop("side", None) \
                or ORIENTERS.defaults(name)["side"]
            crops = {k: overrides.pop(k) for k in ("orientation_zoom", "orientation_crops") if k in overrides}
            model = ORIENTERS.create(name, side=side, **overrides)
            preprocess = PagePreprocess(side=side, work=max(448, 2 * side), **crops)
        except (TypeError, ValueError) as e:
            raise ConfigError(f"model: {e}") from None
        return model.arch_config(), preprocess

    def _from_checkpoint(self) -> tuple[dict, PagePreprocess]:
        meta = self.init_meta()
        return meta["arch"], PagePreprocess.from_json(meta["preprocess"])

    # --- on the driver ----------------------------------------------------------------
    def model_meta(self) -> dict:
        return {"task": "orientation", "arch": self.arch, "charset": None,
                "preprocess": self.preprocess.to_json()}

    # --- in the workers ---------------------------------------------------------------
    def collate(self, seed: int, skip_ids: frozenset[int]):
        return numpy_collate(OrientationCollate, self.preprocess, skip_ids, seed, jitter=self.cfg.augment)

    def loss(self, model, batch: dict, device, gen: torch.Generator) -> tuple[torch.Tensor, list[float]]:
        """Skew cross-entropy (soft bucket targets) + orientation cross-entropy of a CPU batch,
        moved to ``device`` and augmented with ``gen``; no extra sums."""
        views = augment_views(batch["skew_views"].to(device), self.cfg.augment, gen)
        upright = augment_views(batch["orientation_views"].to(device), self.cfg.augment, gen)
        out = model(views, upright)
        targets = model.buckets.targets(batch["skew_angles"]).to(device)
        skew = -(targets * F.log_softmax(out["skew"].float(), 1)).sum(1).mean()
        return skew + F.cross_entropy(out["orientation"].float(), batch["orientations"].to(device)), []

    @torch.no_grad()
    def validate(self, model, device) -> list[tuple]:
        """(truth, angle, skew, orientation) of this worker's validation pages."""
        rows = []
        for batch in val_batches(self.cfg, self.val_cols):
            ids = ids_to_ints(batch["id"]).tolist()
            inks = [self.preprocess.page(decode(bytes(b))) for b in batch["image"]]
            stored = batch.get("angle")
            turns = np.array([seeded_turn(i) for i in ids])
            truth = turns + (np.asarray(stored, np.float64) if stored is not None else 0.0)
            for t, e in zip(truth, model_estimates(model, self.preprocess, inks, turns, device)):
                rows.append((float(t), e["angle"], e["skew"], e["orientation"]))
        return rows

    def val_metrics(self, parts: list[list[tuple]]) -> dict:
        rows = [r for part in parts for r in part]
        m = orientation_metrics(*zip(*rows))
        return {"val_angle_mae": m["angle_mae"], "val_skew_mae": m["skew_mae"],
                "val_within_0_5": m["within_0_5"], "val_within_1": m["within_1"],
                "val_orientation_accuracy": m["orientation_accuracy"], "val_pages": m["pages"]}
