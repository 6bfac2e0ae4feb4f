"""The detection task: page shards with boxes -> an SSD / SSDLite detector.

What is learnt is ``cfg.target``, a box label of the data:

* ROI (``line``, the default; ``word``; or any other label, e.g. LabelMe's ``text``): one
  foreground class named by the label. A sample is the page, stretched to the model size
  (``Preprocess(keep_ratio=False)``, default 320x320, 3 channels).
* ``char``: one class per symbol of the manifest's charset (class ``i + 1`` = symbol ``i``,
  the charset's own numbering). A sample is a crop of a ground-truth ``line`` box grown by
  :data:`CROP_MARGIN` of its height on each side (jittered in training), fitted to the model
  size (default 64x256) by :func:`~ocr.data.boxes.fit_crop`, with the ``char`` boxes whose centre lies in the
  line mapped into it. This is the second stage of the two-stage reader (the ROI model is
  trained on its own); at inference the crops come from an ROI model's predictions
  (:class:`~ocr.infer.BoxReader`).

Text boxes are small and wide, unlike the objects the SSD presets were made for, so each
mode replaces the preset's anchor settings with its own (:data:`ANCHORS`; ``--model-set``
overrides those in turn), and the model size is the input size (``--height``/``--width``),
not the preset's. ``batch_size`` counts pages in both modes (a char batch holds their lines).

A training batch (collated in the Ray Data iterator of each worker)::

    ids      int64 (B,)            one per page that gave a sample (``ids_to_ints``)
    images   float32 (N, C, H, W)  ROI: the N = B pages; char: the N line crops of the pages
    targets  N dicts               {"boxes": float32 (n, 4) xyxy in model-input pixels,
                                    "labels": int64 (n,) in 1..num_classes-1}

A dict holding a list of dicts is not one of Ray's tensor batch types, so the iterator's
finalize step hands it over untouched (no device move, no concatenation; a dict of *lists
of tensors* would be concatenated along dim 0): :meth:`DetectionTask.loss` moves it.
"""

from __future__ import annotations

from collections import Counter
from typing import NamedTuple

import numpy as np
import torch
from PIL import Image

from ocr.charset import Charset
from ocr.config import ConfigError
from ocr.data.boxes import box_array, line_crop
from ocr.data.images import Preprocess, decode
from ocr.data.loader import numpy_collate
from ocr.data.shards import box_labels, ids_to_ints
from ocr.eval.box_metrics import SCORE_THRESHOLD, evaluate_detections
from ocr.eval.metrics import TextMetrics
from ocr.infer.detection import BACKGROUND, READOUT
from ocr.models.detection import DETECTORS, boxes_to_text
from ocr.models.detection.box_ops import CROP_MARGIN
from ocr.train.augment import MIN_SIDE, augment_detection
from ocr.train.config import TrainConfig
from ocr.train.data import load_manifests, split_rows, val_batches
from ocr.train.task import TaskBase

DEFAULT_MODEL = "ssdlite_mobilenetv2"
SIZES = {"roi": (320, 320), "char": (64, 256)}   # default (height, width)
# Anchors for text: a stride-8 map for small lines, wide aspect ratios (a 320x320 page of
# 14-36 px lines: with iou_threshold 0.4, ~99% of lines get a positive anchor, 37% with the
# preset's); line crops: chars nearly as tall as the crop, one every ~H/2 pixels.
ANCHORS = {
    "roi": {"feature_strides": [8, 16], "min_ratio": 0.06, "max_ratio": 0.5,
            "aspect_ratios": [2.0, 3.0, 5.0, 8.0], "iou_threshold": 0.4},
    "char": {"feature_strides": [8, 16], "min_ratio": 0.25, "aspect_ratios": [2.0, 3.0, 5.0]},
}


class Sample(NamedTuple):
    """One model input: uint8 ``image`` (H, W, C), float32 ``boxes`` (n, 4) xyxy in its pixels,
    int64 ``labels`` (n,), and the line's ``text`` (char mode; "" for pages)."""

    image: np.ndarray
    boxes: np.ndarray
    labels: np.ndarray
    text: str = ""


def map_boxes(boxes: np.ndarray, origin: tuple[float, float], scale: tuple[float, float],
              size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """``(boxes - origin) * scale`` clipped to ``size`` (width, height); returns (boxes, keep):
    ``keep`` marks boxes still at least :data:`MIN_SIDE` on both sides."""
    out = (boxes - np.array(origin * 2, np.float32)) * np.array(scale * 2, np.float32)
    out[:, 0::2] = out[:, 0::2].clip(0, size[0])
    out[:, 1::2] = out[:, 1::2].clip(0, size[1])
    keep = ((out[:, 2] - out[:, 0]) >= MIN_SIDE) & ((out[:, 3] - out[:, 1]) >= MIN_SIDE)
    return out[keep], keep


def page_sample(page: Image.Image, boxes, preprocess: Preprocess, target: str) -> Sample:
    """The page stretched to the model size, with its ``target`` boxes (class 1)."""
    arr = preprocess.resize(page)
    h, w = arr.shape[:2]
    mapped, _ = map_boxes(box_array(boxes, target), (0.0, 0.0), (w / page.width, h / page.height), (w, h))
    return Sample(arr, mapped, np.ones(len(mapped), np.int64))


def line_samples(page: Image.Image, boxes, preprocess: Preprocess, class_of: dict[str, int],
                 jitter: float = 0.0, rng: np.random.Generator | None = None) -> list[Sample]:
    """One sample per ``line`` box of the page: its crop and the ``char`` boxes whose centre lies
    in the line, mapped into the crop and labelled by ``class_of[char text]`` (chars not in it
    are left out). ``jitter`` in [0, 1] scales a random change of each margin (needs ``rng``)."""
    lines = [b for b in boxes if b["label"] == "line"]
    chars = [b for b in boxes if b["label"] == "char" and b["text"] in class_of]
    char_xy = box_array(chars)
    centres = (char_xy[:, :2] + char_xy[:, 2:]) / 2
    out = []
    for line in lines:
        xy = box_array([line])[0]
        margins = CROP_MARGIN * (1 + jitter * rng.uniform(-1, 1, 4)) if jitter and rng is not None \
            else (CROP_MARGIN,) * 4
        image, (cx0, cy0, cx1, cy1), scale = line_crop(page, xy, preprocess, tuple(margins))
        inside = ((centres >= xy[:2]) & (centres <= xy[2:])).all(1)
        size = (min(preprocess.width, round((cx1 - cx0) * scale[0])), preprocess.height)
        mapped, keep = map_boxes(char_xy[inside], (cx0, cy0), scale, size)
        labels = np.array([class_of[c["text"]] for c, k in zip(chars, inside) if k], np.int64)[keep]
        out.append(Sample(image, mapped, labels, " ".join(str(line["text"]).split())))
    return out


class DetectionCollate:
    """numpy batch (columns id, image, boxes) to the batch of the module docstring, minus the
    pages in ``skip`` (already trained this epoch)."""

    def __init__(self, preprocess: Preprocess, target: str, classes: list[str],
                 skip: frozenset[int] = frozenset(), jitter: float = 0.0, seed: int = 0):
        self.preprocess, self.target, self.skip = preprocess, target, skip
        self.class_of = {name: i for i, name in enumerate(classes) if i}
        self.jitter, self.seed = jitter, seed

    def samples(self, batch: dict) -> tuple[np.ndarray, list[Sample]]:
        """(int64 ids of the pages that gave samples, their samples in page order)."""
        ids = ids_to_ints(batch["id"])
        rng = np.random.default_rng([self.seed, *ids[:1].view(np.uint64).tolist()])
        kept, out = [], []
        for i, sid in enumerate(ids.tolist()):
            if sid in self.skip:
                continue
            page, boxes = decode(bytes(batch["image"][i])), list(batch["boxes"][i])
            if self.target == "char":
                got = line_samples(page, boxes, self.preprocess, self.class_of, self.jitter, rng)
            else:
                got = [page_sample(page, boxes, self.preprocess, self.target)]
            if got:
                kept.append(sid)
                out += got
        return np.array(kept, np.int64), out

    def __call__(self, batch: dict) -> dict:
        ids, samples = self.samples(batch)
        if not samples:
            return {"ids": torch.from_numpy(np.zeros(0, np.int64))}
        images = self.preprocess.normalise(np.stack([s.image for s in samples]))
        targets = [{"boxes": torch.from_numpy(s.boxes), "labels": torch.from_numpy(s.labels)}
                   for s in samples]
        return {"ids": torch.from_numpy(ids), "images": torch.from_numpy(images), "targets": targets}


# --- the task -------------------------------------------------------------------------------
class DetectionTask(TaskBase):
    name = "detection"
    large_samples = True
    columns = ["id", "image", "width", "height", "boxes"]
    metric, mode = "val_map50", "max"
    extra_names: list[str] = []

    def __init__(self, cfg: TrainConfig):
        self.cfg = cfg
        manifest, val_manifest = load_manifests(cfg, "detection")
        self.train_rows = split_rows(manifest, cfg.train_split)
        self.target = cfg.target or "line"
        self.kind = "char" if self.target == "char" else "roi"
        self._check_labels(box_labels(cfg.data, cfg.train_split))
        self.charset = self._charset(manifest, val_manifest) if self.kind == "char" else None
        self.classes = [BACKGROUND, *(self.charset.symbols if self.charset else [self.target])]
        height, width = SIZES[self.kind]
        self.preprocess = Preprocess(height=cfg.height or height, width=cfg.width or width,
                                     keep_ratio=self.kind == "char", channels=cfg.channels or 3)
        if cfg.init_from:
            self.arch = self._from_checkpoint()
        else:
            overrides = {**ANCHORS[self.kind], **cfg.model_overrides()}
            self.arch = self._arch(cfg.model or DEFAULT_MODEL, overrides)
        self.val_columns = ["val_map50", "val_map", "val_precision", "val_recall", "val_images",
                            "val_boxes"] + (["val_text_accuracy", "val_cer"] if self.kind == "char" else [])

    def _check_labels(self, found: Counter) -> None:
        need = ["line", "char"] if self.kind == "char" else [self.target]
        missing = [lab for lab in need if not found.get(lab)]
        if missing:
            raise ConfigError(f"target {self.target!r} needs boxes labelled {need}; the first "
                              f"{self.cfg.train_split!r} shard of {self.cfg.data} has labels "
                              f"{dict(found.most_common(10))}: pass --target with one of them")

    def _charset(self, manifest: dict, val_manifest: dict) -> Charset:
        if not manifest.get("charset"):
            raise ConfigError(f"data {self.cfg.data}: target 'char' needs the manifest's charset "
                              "(one class per symbol), found none")
        charset = Charset.from_json(manifest["charset"])
        if self.cfg.val_data and val_manifest.get("charset"):
            extra = [s for s in Charset.from_json(val_manifest["charset"]).symbols if s not in charset]
            if extra:
                raise ConfigError(f"val_data {self.cfg.val_data} has symbols the model cannot "
                                  f"detect: {''.join(extra[:40])!r}")
        return charset

    def _arch(self, name: str, overrides: dict) -> dict:
        p = self.preprocess
        try:
            model = DETECTORS.create(name, num_classes=len(self.classes), size=[p.height, p.width],
                                    channels=p.channels, **overrides)
        except (TypeError, ValueError) as e:
            raise ConfigError(f"model: {e}") from None
        return model.arch_config()

    def _from_checkpoint(self) -> dict:
        meta = self.init_meta()
        if meta.get("classes") != self.classes:
            old, new = meta.get("classes") or [], self.classes
            raise ConfigError(f"init_from {self.cfg.init_from}: its {len(old)} classes differ from "
                              f"the data's {len(new)} (first: {old[1:6]} vs {new[1:6]})")
        self.preprocess = Preprocess.from_json(meta["preprocess"])
        return meta["arch"]

    # --- on the driver ----------------------------------------------------------------
    def model_meta(self) -> dict:
        return {"task": "detection", "arch": self.arch,
                "charset": self.charset.to_json() if self.charset else None,
                "preprocess": self.preprocess.to_json(), "classes": list(self.classes),
                "target": self.target, "readout": dict(READOUT) if self.kind == "char" else None}

    # --- in the workers ---------------------------------------------------------------
    def collate(self, seed: int, skip_ids: frozenset[int]):
        return numpy_collate(DetectionCollate, self.preprocess, self.target, self.classes, skip_ids,
                             jitter=min(1.0, 2 * self.cfg.augment), seed=seed)

    def loss(self, model, batch: dict, device, gen: torch.Generator) -> tuple[torch.Tensor, list[float]]:
        """Summed SSD loss (box regression + classification, each per positive anchor) of a
        CPU batch, moved to ``device`` and augmented with ``gen``; no extra sums."""
        images = batch["images"].to(device, non_blocking=True)
        targets = [{"boxes": t["boxes"].to(device), "labels": t["labels"].to(device)}
                   for t in batch["targets"]]
        images, targets = augment_detection(images, targets, self.cfg.augment, gen)
        losses = model(images, targets)
        return losses["bbox_regression"] + losses["classification"], []

    def _val_samples(self):
        """Lists of this worker's validation samples (pages rank::world of the split, read
        once from the shards), at most ``batch_size`` pages' worth each."""
        collate = DetectionCollate(self.preprocess, self.target, self.classes)
        for batch in val_batches(self.cfg, self.columns):
            _, samples = collate.samples({k: batch[k] for k in ("id", "image", "boxes")})
            if samples:
                yield samples

    @torch.no_grad()
    def validate(self, model, device) -> dict:
        """This worker's predictions and ground truth (numpy, model-input pixels) and, for
        char models, (line text, text read from the predicted boxes) pairs."""
        preds, gts, texts = [], [], []
        for samples in self._val_samples():
            x = torch.from_numpy(self.preprocess.normalise(np.stack([s.image for s in samples])))
            for s, out in zip(samples, model(x.to(device))):
                pred = {k: v.float().cpu().numpy() for k, v in out.items() if k != "labels"}
                pred["labels"] = out["labels"].cpu().numpy()
                preds.append(pred)
                gts.append({"boxes": s.boxes, "labels": s.labels})
                if self.kind == "char":
                    texts.append((s.text, boxes_to_text(pred["boxes"], pred["labels"], pred["scores"],
                                                        self.classes, **READOUT)))
        return {"preds": preds, "gts": gts, "texts": texts}

    def val_metrics(self, parts: list[dict]) -> dict:
        """mAP@0.5, COCO mAP@[.5:.95], precision and recall (score >= 0.5, IoU 0.5) over every
        worker's validation parts; char models add line text accuracy and CER."""
        preds = [p for part in parts for p in part["preds"]]
        gts = [g for part in parts for g in part["gts"]]
        r = evaluate_detections(preds, gts, score_threshold=SCORE_THRESHOLD)
        out = {"val_map50": r["map50"], "val_map": r["map"], "val_precision": r["precision"],
               "val_recall": r["recall"], "val_images": r["images"], "val_boxes": r["gt_boxes"]}
        if self.kind == "char":
            text = TextMetrics()
            for truth, pred in (t for part in parts for t in part["texts"]):
                text.add(truth, pred)
            s = text.summary()
            out.update(val_text_accuracy=s["word_accuracy"] or 0.0, val_cer=s["cer"] or 0.0)
        return out
