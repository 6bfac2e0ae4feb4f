"""``ocr eval`` for detectors: mAP and friends, and the end-to-end two-stage reader.

Metrics (:func:`evaluate_detections`), per class, over a set of images:

* detections of the class, best score first over all images, are matched greedily (COCO
  style): each takes the unmatched ground-truth box of its image with the highest IoU, a
  true positive when that IoU >= the threshold, else a false positive;
* ``AP``: all-point interpolated average precision (VOC 2010+ and COCO's definition, exact
  area under the precision envelope rather than COCO's 101 recall samples);
* ``map50``: the mean AP at IoU 0.5 over classes with ground truth; ``map``: COCO's
  mAP@[.5:.95], the mean over the thresholds 0.50, 0.55, ..., 0.95 (classes without ground
  truth are left out of means; no ground truth at all gives 0);
* ``precision`` / ``recall``: over all classes, of the detections scoring at least
  ``score_threshold`` (default :data:`SCORE_THRESHOLD`, 0.5), at IoU 0.5 (0 when undefined).

:func:`evaluate_detector` runs a checkpoint on shards (a split) or a raw LabelMe/COCO set
and writes ``summary.json`` into ``output``; with ``save_images``, ``images/KEY.png`` (ground
truth green, predictions red, lines read end to end blue); with ``save_json``, the
predictions in the input's layout (``labelme/``: a LabelMe folder, images beside their
JSON; ``coco/predictions.json`` with ``coco/images/``), which ``ocr ingest`` and our readers
read back: boxes labelled as the shards label them (a ROI class name; "char" with the
symbol as text; "line" with the text read), each with its ``score``.

A char-level checkpoint reads the ground-truth line boxes (crops as in training) or, with
``roi_checkpoint``, the lines an ROI model finds: ROI detections -> line crops -> char
detections -> :func:`~ocr.models.detection.boxes_to_text`; each ground-truth line takes the
text of the predicted line that matches it (IoU >= 0.5, best score first; "" when none)
and is scored against its text (exact-match ``text_accuracy``, CER).
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass

import numpy as np

from ocr import storage
from ocr.config import ConfigError, absolute_paths, opt
from ocr.eval.report import write_summary_json

SCORE_THRESHOLD = 0.5
COCO_THRESHOLDS = tuple(round(0.5 + 0.05 * i, 2) for i in range(10))


# --- metrics -------------------------------------------------------------------------------
def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of xyxy boxes ``a`` (n, 4) and ``b`` (m, 4) -> (n, m)."""
    a, b = np.asarray(a, np.float64).reshape(-1, 4), np.asarray(b, np.float64).reshape(-1, 4)
    w = np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0])
    h = np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1])
    inter = w.clip(0) * h.clip(0)
    area = lambda x: (x[:, 2] - x[:, 0]).clip(0) * (x[:, 3] - x[:, 1]).clip(0)  # noqa: E731
    union = area(a)[:, None] + area(b)[None, :] - inter
    return inter / np.maximum(union, 1e-12)


def average_precision(scores, tp, num_gt: int) -> float:
    """All-point interpolated AP of detections (``scores`` (n,), true-positive flags ``tp``
    (n,)) against ``num_gt`` ground-truth boxes; NaN when ``num_gt`` is 0."""
    if num_gt <= 0:
        return float("nan")
    scores, tp = np.asarray(scores, np.float64).reshape(-1), np.asarray(tp, bool).reshape(-1)
    order = np.argsort(-scores, kind="stable")
    hits = np.cumsum(tp[order])
    recall = np.concatenate([[0.0], hits / num_gt, [1.0]])
    precision = np.concatenate([[0.0], hits / np.arange(1, len(order) + 1), [0.0]])
    precision = np.maximum.accumulate(precision[::-1])[::-1]       # the envelope
    steps = np.nonzero(recall[1:] != recall[:-1])[0]
    return float(np.sum((recall[steps + 1] - recall[steps]) * precision[steps + 1]))


def match_detections(boxes, scores, gt_boxes, thresholds) -> np.ndarray:
    """Greedy matching in one image and class: bool (T, n) true-positive flags of the
    detections (in their given order) at each IoU threshold."""
    n, thresholds = len(scores), np.asarray(thresholds, np.float64)
    tp = np.zeros((len(thresholds), n), bool)
    if n == 0 or len(gt_boxes) == 0:
        return tp
    iou = iou_matrix(boxes, gt_boxes)
    taken = np.zeros((len(thresholds), len(gt_boxes)), bool)
    rows = np.arange(len(thresholds))
    for d in np.argsort(-np.asarray(scores), kind="stable"):
        if iou[d].max() < thresholds.min():
            continue
        free = np.where(taken, -1.0, iou[d][None, :])               # (T, m)
        best = free.argmax(1)
        hit = free[rows, best] >= thresholds
        tp[hit, d] = True
        taken[rows[hit], best[hit]] = True
    return tp


def _class_results(preds: list[dict], gts: list[dict], c: int, thresholds) -> tuple:
    """(scores, tp (T, n), num_gt) of class ``c`` over all images."""
    scores, flags, num_gt = [], [], 0
    for p, g in zip(preds, gts):
        pm, gm = np.asarray(p["labels"]) == c, np.asarray(g["labels"]) == c
        gt_boxes = np.asarray(g["boxes"]).reshape(-1, 4)[gm]
        s = np.asarray(p["scores"], np.float64)[pm]
        num_gt += len(gt_boxes)
        scores.append(s)
        flags.append(match_detections(np.asarray(p["boxes"]).reshape(-1, 4)[pm], s, gt_boxes, thresholds))
    return np.concatenate(scores), np.concatenate(flags, 1), num_gt


def evaluate_detections(preds: list[dict], gts: list[dict], iou_thresholds=COCO_THRESHOLDS,
                        score_threshold: float = SCORE_THRESHOLD, class_names=None) -> dict:
    """Metrics of the module docstring.

    preds: per image ``{"boxes": (n, 4) xyxy, "scores": (n,), "labels": (n,) int}``;
    gts: per image ``{"boxes": (m, 4) xyxy, "labels": (m,) int}``, same pixels as preds.
    Returns ``map50`` (None unless 0.5 is a threshold), ``map`` (mean over ``iou_thresholds``),
    ``ap`` {threshold: mAP}, ``per_class`` {name: {ap50, ap, gt, detections}}, ``precision``,
    ``recall``, ``f1`` (IoU 0.5, score >= ``score_threshold``), ``images``, ``gt_boxes``,
    ``detections``.
    """
    if len(preds) != len(gts):
        raise ValueError(f"expected one prediction per ground-truth image, found {len(preds)} "
                         f"predictions for {len(gts)} images")
    thresholds = sorted({*(round(float(t), 4) for t in iou_thresholds), 0.5})
    at50 = thresholds.index(0.5)
    classes = sorted({int(c) for x in (*preds, *gts) for c in np.asarray(x["labels"]).reshape(-1)})
    names = {c: str(class_names[c]) if class_names is not None else str(c) for c in classes}
    per_class, aps, tp_total, det_total, gt_total = {}, {}, 0, 0, 0
    for c in classes:
        scores, tp, num_gt = _class_results(preds, gts, c, thresholds)
        confident = scores >= score_threshold
        tp_total += int(tp[at50][confident].sum())
        det_total, gt_total = det_total + int(confident.sum()), gt_total + num_gt
        aps[c] = [average_precision(scores, tp[t], num_gt) for t in range(len(thresholds))]
        wanted = [aps[c][thresholds.index(round(float(t), 4))] for t in iou_thresholds]
        per_class[names[c]] = {"ap50": aps[c][at50] if num_gt else None,
                               "ap": float(np.mean(wanted)) if num_gt else None,
                               "gt": num_gt, "detections": len(scores)}
    with_gt = [c for c in classes if per_class[names[c]]["gt"] > 0]

    def mean_ap(t: float) -> float:
        i = thresholds.index(round(float(t), 4))
        return float(np.mean([aps[c][i] for c in with_gt])) if with_gt else 0.0

    by_threshold = {round(float(t), 4): mean_ap(t) for t in iou_thresholds}
    precision = tp_total / det_total if det_total else 0.0
    recall = tp_total / gt_total if gt_total else 0.0
    return {"map50": by_threshold.get(0.5), "map": float(np.mean(list(by_threshold.values()))),
            "ap": by_threshold, "per_class": per_class, "precision": precision, "recall": recall,
            "f1": 2 * precision * recall / (precision + recall) if precision + recall else 0.0,
            "score_threshold": score_threshold, "images": len(gts), "gt_boxes": gt_total,
            "detections": sum(len(np.asarray(p["scores"]).reshape(-1)) for p in preds)}


def match_lines(pred_boxes, pred_scores, gt_boxes, threshold: float = 0.5) -> list[int]:
    """For each ground-truth box, the index of the prediction matched to it (greedy, best score
    first, IoU >= ``threshold``), or -1."""
    tp_of = [-1] * len(gt_boxes)
    if len(pred_boxes) == 0 or len(gt_boxes) == 0:
        return tp_of
    iou = iou_matrix(pred_boxes, gt_boxes)
    for d in np.argsort(-np.asarray(pred_scores), kind="stable"):
        free = np.where(np.array(tp_of) >= 0, -1.0, iou[d])
        g = int(free.argmax())
        if free[g] >= threshold:
            tp_of[g] = int(d)
    return tp_of


# --- running a checkpoint ---------------------------------------------------------------------
class Detector:
    """A detection checkpoint and its model.json: runs on pages (ROI) or line boxes (char)."""

    def __init__(self, path: str, device: str = "cpu"):
        import torch

        from ocr.data.images import Preprocess
        from ocr.train import checkpoint
        from ocr.train.detection import BACKGROUND, READOUT

        meta = checkpoint.read_meta(path)
        if meta["task"] != "detection":
            raise ConfigError(f"{path} is a {meta['task']} checkpoint: expected detection")
        self.model, self.meta = checkpoint.load(path, device)
        self.device, self.torch = device, torch
        self.preprocess = Preprocess.from_json(meta["preprocess"])
        n = meta["arch"]["num_classes"]
        self.classes = meta.get("classes") or [BACKGROUND, *(f"class{i}" for i in range(1, n))]
        self.target = meta.get("target") or self.classes[1]
        self.kind = "char" if self.target == "char" else "roi"
        self.readout = meta.get("readout") or READOUT

    def run(self, images: list[np.ndarray], batch_size: int = 16) -> list[dict]:
        """uint8 (H, W, C) model-size images -> per image {boxes (n, 4), scores, labels} (numpy,
        model-input pixels)."""
        out = []
        with self.torch.inference_mode():
            for start in range(0, len(images), batch_size):
                x = self.preprocess.normalise(np.stack(images[start:start + batch_size]))
                for d in self.model(self.torch.from_numpy(x).to(self.device)):
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
        from ocr.models.detection import boxes_to_text
        from ocr.train.detection import line_crop

        crops = [line_crop(page, box, self.preprocess) for box in line_boxes]
        out = []
        for det, (_, (x0, y0, _, _), (sx, sy)) in zip(self.run([c[0] for c in crops], batch_size), crops):
            text = boxes_to_text(det["boxes"], det["labels"], det["scores"], self.classes, **self.readout)
            det["boxes"] = det["boxes"] / np.array([sx, sy, sx, sy], np.float32) + \
                np.array([x0, y0, x0, y0], np.float32)
            out.append((det, text))
        return out


@dataclass
class DetectionEvalConfig:
    """``ocr eval`` (``ocr eval-detection``) for detection checkpoints."""

    checkpoint: str = opt("", "detection checkpoint folder, run folder (its best/) or s3:// URI",
                          path="checkpoint")
    data: str = opt("", "shard folder, or a raw LabelMe folder / COCO JSON", path="input")
    split: str = opt("test", "split to evaluate, for shard folders")
    layout: str = opt("auto", "layout of a raw set", choices=("auto", "labelme", "coco"))
    image_root: str | None = opt(None, "raw COCO sets: the folder the images are in", path="input")
    roi_checkpoint: str = opt("", "with a char checkpoint: the ROI model that finds the lines (reads "
                              "them end to end)", path="checkpoint")
    gt_label: str = opt("", "box label of the data to score ROI boxes against (default: the "
                        "checkpoint's target; LabelMe sets often say text)")
    score_threshold: float = opt(SCORE_THRESHOLD, "boxes below this score are left out of precision, "
                                 "recall, drawings, JSON and line reading")
    max_lines: int = opt(100, "end to end: lines read per page at most (best scores first)")
    output: str = opt("", "folder for summary.json and the rest (default: outputs/eval-DATA-TIMESTAMP)",
                      path="output")
    save_images: bool = opt(False, "draw the boxes into OUTPUT/images/")
    save_json: bool = opt(False, "write the predictions in the input's layout (see --json-layout)")
    json_layout: str = opt("auto", "layout of --save-json: auto (the input's; coco for shards), "
                           "labelme or coco", choices=("auto", "labelme", "coco"))
    batch_size: int = opt(16, "pages per model call")
    limit: int = opt(0, "evaluate the first N images only (0: all)")
    device: str = opt("auto", "auto (cuda when available), cpu or cuda", choices=("auto", "cpu", "cuda"))

    def __post_init__(self):
        absolute_paths(self)
        if not self.checkpoint or not self.data:
            raise ConfigError("checkpoint and data: expected a detection checkpoint and a labelled set")
        if self.json_layout not in ("auto", "labelme", "coco"):
            raise ConfigError(f"json_layout: expected auto, labelme or coco, found {self.json_layout!r}")
        if self.batch_size <= 0 or self.max_lines <= 0 or not 0 <= self.score_threshold <= 1:
            raise ConfigError(f"batch_size > 0, max_lines > 0 and score_threshold in [0, 1] expected, "
                              f"found {self.batch_size}, {self.max_lines} and {self.score_threshold}")


def _shard_pages(cfg: DetectionEvalConfig):
    from ocr.data.shards import read_manifest, read_rows

    manifest = read_manifest(cfg.data)
    if manifest["task"] != "detection":
        raise ConfigError(f"{cfg.data} holds {manifest['task']} shards: expected detection")
    if cfg.split not in manifest["counts"]["per_split"]:
        raise ConfigError(f"{cfg.data} has no {cfg.split!r} split: found "
                          f"{sorted(manifest['counts']['per_split'])}")
    for table in read_rows(cfg.data, cfg.split, ["key", "image", "boxes"]):
        yield from zip(*(table.column(c).to_pylist() for c in ("key", "image", "boxes")))


def _raw_pages(cfg: DetectionEvalConfig, reader):
    for entry in reader.entries():
        if entry.error or entry.boxes is None:
            continue
        try:
            yield entry.key, reader.load(entry), [b.to_dict() for b in entry.boxes]
        except OSError:
            continue


def open_pages(cfg: DetectionEvalConfig) -> tuple[str, object]:
    """(layout: "shards" or the raw layout, iterator of (key, image bytes, boxes as dicts))."""
    s3 = storage.S3Settings.from_env()
    if storage.exists(storage.join(cfg.data, "manifest.json"), s3):
        layout, it = "shards", _shard_pages(cfg)
    else:
        from ocr.config import IngestConfig
        from ocr.data.ingest import make_reader

        icfg = IngestConfig(inputs=[cfg.data], output="-", layout=cfg.layout, image_root=cfg.image_root)
        reader = make_reader(cfg.data, icfg, s3)
        if reader.task != "detection":
            raise ConfigError(f"{cfg.data}: a {reader.layout} set holds {reader.task} labels: "
                              "expected a detection layout (labelme, coco) or detection shards")
        layout, it = reader.layout, _raw_pages(cfg, reader)

    def limited():
        for i, page in enumerate(it):
            if cfg.limit and i >= cfg.limit:
                return
            yield page
    return layout, limited()


# --- writing predictions ------------------------------------------------------------------------
def _safe_rel(key: str) -> str:
    """A relative path from a sample key, without its extension, that cannot leave a folder."""
    parts = [p for p in str(key).replace("\\", "/").split("/") if p not in ("", ".", "..")]
    rel = "/".join(parts) or "image"
    stem, ext = os.path.splitext(rel)
    return stem if ext.lower() in (".json", ".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff",
                                   ".webp") else rel


def _image_ext(data: bytes) -> str:
    from ocr.data.images import sniff_format

    return {"JPEG": ".jpg", "GIF": ".gif", "BMP": ".bmp", "TIFF": ".tif", "WEBP": ".webp"}.get(
        sniff_format(data) or "", ".png")


def labelme_json(image_name: str, width: int, height: int, boxes: list[dict]) -> dict:
    """A LabelMe document: one rectangle per box (label, text as ``description``, score)."""
    shapes = [{"label": b["label"], "points": [[b["x0"], b["y0"]], [b["x1"], b["y1"]]],
               "shape_type": "rectangle", "description": b.get("text", ""), "group_id": None,
               "flags": {}, **({"score": round(float(b["score"]), 5)} if "score" in b else {})}
              for b in boxes]
    return {"version": "5.2.1", "flags": {}, "shapes": shapes, "imagePath": image_name,
            "imageData": None, "imageHeight": int(height), "imageWidth": int(width)}


class PredictionWriter:
    """Predictions in a LabelMe folder (``FOLDER/KEY.json`` beside ``FOLDER/KEY.ext``) or a
    COCO set (``FOLDER/predictions.json`` and ``FOLDER/images/``), readable by our readers."""

    def __init__(self, folder: str, layout: str):
        self.folder, self.layout = folder, layout
        self.coco = {"images": [], "annotations": [], "categories": []}
        self._categories: dict[str, int] = {}
        self._used: set[str] = set()

    def _write(self, rel: str, data: bytes | str) -> None:
        path = os.path.join(self.folder, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data.encode("utf-8") if isinstance(data, str) else data)

    def add(self, key: str, image: bytes, size: tuple[int, int], boxes: list[dict]) -> None:
        """One image (its encoded bytes, (width, height)) and its predicted boxes (dicts x0, y0,
        x1, y1, label, text, score in its pixels)."""
        stem, ext = _safe_rel(key), _image_ext(image)
        rel, n = stem + ext, 1
        while rel.lower() in self._used:  # keys "a.png" and "a.jpg" both give "a"
            rel, n = f"{stem}-{n}{ext}", n + 1
        self._used.add(rel.lower())
        if self.layout == "labelme":
            self._write(rel, image)
            doc = labelme_json(os.path.basename(rel), *size, boxes)
            self._write(os.path.splitext(rel)[0] + ".json", json.dumps(doc, ensure_ascii=False, indent=1))
            return
        self._write(os.path.join("images", rel), image)
        image_id = len(self.coco["images"]) + 1
        self.coco["images"].append({"id": image_id, "file_name": rel, "width": int(size[0]),
                                    "height": int(size[1])})
        for b in boxes:
            cat = self._categories.setdefault(b["label"], len(self._categories) + 1)
            w, h = b["x1"] - b["x0"], b["y1"] - b["y0"]
            self.coco["annotations"].append({
                "id": len(self.coco["annotations"]) + 1, "image_id": image_id, "category_id": cat,
                "bbox": [b["x0"], b["y0"], w, h], "area": w * h, "iscrowd": 0,
                "text": b.get("text", ""), "score": round(float(b.get("score", 1.0)), 5)})

    def close(self) -> str:
        """Finish (COCO: write the JSON); returns what a reader opens (folder or JSON file)."""
        if self.layout == "labelme":
            return self.folder
        self.coco["categories"] = [{"id": i, "name": n} for n, i in self._categories.items()]
        self._write("predictions.json", json.dumps(self.coco, ensure_ascii=False))
        return os.path.join(self.folder, "predictions.json")


def draw_boxes(page, gt: list[dict], pred: list[dict], lines: list[dict] = ()) -> bytes:
    """PNG of the page with ground truth (green), predictions (red) and read lines (blue)."""
    import io

    from PIL import ImageDraw

    img = page.convert("RGB")
    draw = ImageDraw.Draw(img)
    for boxes, colour in ((gt, (0, 170, 0)), (pred, (220, 0, 0)), (lines, (0, 80, 255))):
        for b in boxes:
            draw.rectangle([b["x0"], b["y0"], b["x1"], b["y1"]], outline=colour)
            if colour == (0, 80, 255) and b.get("text"):
                draw.text((b["x0"], max(0, b["y0"] - 11)), b["text"], fill=colour)
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


# --- the evaluation -----------------------------------------------------------------------------
def _as_dicts(det: dict, names, label: str | None = None, min_score: float = 0.0) -> list[dict]:
    """Detections as shard-style box dicts with a score: label ``label`` and the class name as
    text (char models), or the class name as label (ROI)."""
    out = []
    for (x0, y0, x1, y1), s, c in zip(det["boxes"].tolist(), det["scores"].tolist(), det["labels"].tolist()):
        if s >= min_score:
            out.append({"x0": x0, "y0": y0, "x1": x1, "y1": y1, "label": label or names[c],
                        "text": names[c] if label else "", "score": s})
    return out


def _gt(boxes: list[dict], class_of: dict[str, int], by_text: bool, label: str) -> dict:
    from ocr.train.detection import box_array

    keep = [b for b in boxes if b["label"] == label and (not by_text or b["text"] in class_of)]
    labels = [class_of[b["text"]] if by_text else 1 for b in keep]
    return {"boxes": box_array(keep), "labels": np.array(labels, np.int64)}


class _Run:
    """The state of one evaluation: accumulated results and the writers."""

    def __init__(self, cfg: DetectionEvalConfig, det: Detector, roi: Detector | None, layout: str, out: str):
        from ocr.eval.metrics import TextMetrics

        self.cfg, self.det, self.roi, self.out = cfg, det, roi, out
        self.gt_label = cfg.gt_label or det.target
        self.class_of = {n: i for i, n in enumerate(det.classes) if i}
        self.preds, self.gts, self.roi_preds, self.roi_gts = [], [], [], []
        self.text, self.unreadable, self.extra_lines = TextMetrics(), 0, 0
        json_layout = cfg.json_layout if cfg.json_layout != "auto" else \
            (layout if layout in ("labelme", "coco") else "coco")
        self.writer = PredictionWriter(os.path.join(out, json_layout), json_layout) if cfg.save_json else None

    def chunk(self, pages: list[tuple]) -> None:
        """Evaluate (key, bytes, PIL page, boxes) pages."""
        if self.det.kind == "roi":
            for page, det in zip(pages, self.det.pages([p[2] for p in pages], self.cfg.batch_size)):
                gt = _gt(page[3], self.class_of, False, self.gt_label)
                self.preds.append(det)
                self.gts.append(gt)
                self._emit(page, _as_dicts(det, self.det.classes, min_score=self.cfg.score_threshold))
            return
        line_dets = self.roi.pages([p[2] for p in pages], self.cfg.batch_size) if self.roi else None
        for i, page in enumerate(pages):
            self._char_page(page, line_dets[i] if line_dets else None)

    def _char_page(self, page: tuple, line_det: dict | None) -> None:
        from ocr.train.detection import box_array

        key, image, pil, boxes = page
        line_label = self.roi.target if self.roi else "line"
        gt_lines = [b for b in boxes if b["label"] == line_label]
        if line_det is not None:
            sure = np.nonzero(line_det["scores"] >= self.cfg.score_threshold)[0][: self.cfg.max_lines]
            line_boxes, line_scores = line_det["boxes"][sure], line_det["scores"][sure]
            self.roi_preds.append(line_det)
            self.roi_gts.append(_gt(boxes, {}, False, line_label))
        else:
            line_boxes, line_scores = box_array(gt_lines), np.ones(len(gt_lines), np.float32)
        read = self.det.lines(pil, line_boxes, self.cfg.batch_size * 4)
        chars = [r[0] for r in read]
        empty = {"boxes": np.zeros((0, 4), np.float32), "scores": np.zeros(0, np.float32),
                 "labels": np.zeros(0, np.int64)}
        merged = {k: np.concatenate([c[k] for c in chars]) if chars else v for k, v in empty.items()}
        self.preds.append(merged)
        self.gts.append(_gt(boxes, self.class_of, True, "char"))
        matched = match_lines(line_boxes, line_scores, box_array(gt_lines))
        for b, m in zip(gt_lines, matched):
            self.text.add(" ".join(str(b["text"]).split()), read[m][1] if m >= 0 else "")
        self.extra_lines += len(line_boxes) - sum(m >= 0 for m in matched)
        lines = [{"x0": x0, "y0": y0, "x1": x1, "y1": y1, "label": line_label, "text": t, "score": s}
                 for (x0, y0, x1, y1), s, (_, t) in zip(line_boxes.tolist(), line_scores.tolist(), read)]
        self._emit(page, _as_dicts(merged, self.det.classes, "char", self.cfg.score_threshold), lines)

    def _emit(self, page: tuple, pred: list[dict], lines: list[dict] = ()) -> None:
        key, image, pil, boxes = page
        if self.cfg.save_images:
            png = draw_boxes(pil, [b for b in boxes if b["label"] in (self.gt_label, "char")], pred, lines)
            path = os.path.join(self.out, "images", _safe_rel(key).replace("/", "__") + ".png")
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as f:
                f.write(png)
        if self.writer:
            self.writer.add(key, image, pil.size, [*lines, *pred])

    def summary(self) -> dict:
        names = self.det.classes
        s = {k: v for k, v in evaluate_detections(self.preds, self.gts, class_names=names).items()}
        if self.det.kind == "char":
            s["text"] = {**self.text.summary(), "extra_lines": self.extra_lines}
            s["text_accuracy"] = s["text"]["word_accuracy"]
        if self.roi_preds:
            r = evaluate_detections(self.roi_preds, self.roi_gts, class_names=self.roi.classes)
            s["roi"] = {k: r[k] for k in ("map50", "map", "precision", "recall", "gt_boxes")}
        return s


def _device(name: str) -> str:
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return name


def evaluate_detector(cfg: DetectionEvalConfig) -> dict:
    """Run the evaluation; returns the summary (also ``OUTPUT/summary.json``)."""
    from ocr.data.images import ImageError, decode

    device = _device(cfg.device)
    det = Detector(cfg.checkpoint, device)
    roi = Detector(cfg.roi_checkpoint, device) if cfg.roi_checkpoint else None
    if roi is not None and (det.kind != "char" or roi.kind != "roi"):
        raise ConfigError(f"roi_checkpoint: expected a char-level checkpoint plus an ROI one, found "
                          f"targets {det.target!r} and {roi.target!r}")
    layout, pages = open_pages(cfg)
    out = cfg.output or os.path.join(
        "outputs", f"eval-{storage.basename(cfg.data.rstrip('/'))}-{time.strftime('%Y%m%d-%H%M%S')}")
    run = _Run(cfg, det, roi, layout, out)
    started, chunk = time.perf_counter(), []
    for key, image, boxes in pages:
        try:
            chunk.append((key, image, decode(image), boxes))
        except ImageError:
            run.unreadable += 1
        if len(chunk) == cfg.batch_size:
            run.chunk(chunk)
            chunk = []
    if chunk:
        run.chunk(chunk)
    if not run.gts:
        raise ConfigError(f"{cfg.data}: found no readable images to evaluate")
    seconds = time.perf_counter() - started
    summary = {**run.summary(), "target": det.target, "checkpoint": cfg.checkpoint,
               "roi_checkpoint": cfg.roi_checkpoint or None, "data": cfg.data, "layout": layout,
               "split": cfg.split if layout == "shards" else None, "unreadable": run.unreadable,
               "seconds": round(seconds, 2), "images_per_s": round(len(run.gts) / max(seconds, 1e-9), 2)}
    if run.writer:
        summary["predictions"] = run.writer.close()
    write_summary_json(os.path.join(out, "summary.json"), _finite(summary))
    summary["output"] = out
    return summary


def _finite(value):
    """JSON-safe: NaN/inf floats become None, tuples lists, dict keys strings."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value
