"""``ocr eval`` for detectors: mAP and friends, and the end-to-end two-stage reader.

Metrics: :mod:`ocr.eval.box_metrics`; the prediction writers: :mod:`ocr.eval.predictions`.

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

import math
import os
import time

import numpy as np
import torch

from ocr import storage
from ocr.config import ConfigError
from ocr.data.boxes import box_array
from ocr.data.config import IngestConfig
from ocr.data.images import ImageError, decode
from ocr.data.ingest import make_reader
from ocr.data.shards import read_manifest, read_rows
from ocr.eval.box_metrics import evaluate_detections, match_lines
from ocr.eval.config import DetectionEvalConfig
from ocr.eval.metrics import TextMetrics
from ocr.eval.predictions import PredictionWriter, draw_boxes, safe_rel
from ocr.eval.report import write_summary_json
from ocr.infer import BoxReader


def _shard_pages(cfg: DetectionEvalConfig):
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
    keep = [b for b in boxes if b["label"] == label and (not by_text or b["text"] in class_of)]
    labels = [class_of[b["text"]] if by_text else 1 for b in keep]
    return {"boxes": box_array(keep), "labels": np.array(labels, np.int64)}


class _Run:
    """The state of one evaluation: accumulated results and the writers."""

    def __init__(self, cfg: DetectionEvalConfig, det: BoxReader, roi: BoxReader | None, layout: str,
                 out: str):
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
            path = os.path.join(self.out, "images", safe_rel(key).replace("/", "__") + ".png")
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
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return name


def evaluate_detector(cfg: DetectionEvalConfig) -> dict:
    """Run the evaluation; returns the summary (also ``OUTPUT/summary.json``)."""
    device = _device(cfg.device)
    det = BoxReader.load(cfg.checkpoint, device)
    roi = BoxReader.load(cfg.roi_checkpoint, device) if cfg.roi_checkpoint else None
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


def summary_text(s: dict) -> str:
    """What ``ocr eval`` prints for a detection summary."""
    line = (f"{s['images']} images: mAP@0.5 {s['map50']:.4f}  mAP@[.5:.95] {s['map']:.4f}  "
            f"precision {s['precision']:.4f}  recall {s['recall']:.4f} (score >= {s['score_threshold']})")
    if "text" in s:
        line += (f"\n{s['text']['samples']} lines read: text accuracy {s['text_accuracy'] or 0:.4f}  "
                 f"CER {s['text']['cer'] or 0:.4f}")
    if "roi" in s:
        line += f"\nlines found: mAP@0.5 {s['roi']['map50']:.4f}  recall {s['roi']['recall']:.4f}"
    wrote = f"{s['output']}/summary.json" + (f", {s['predictions']}" if "predictions" in s else "")
    return f"{line}\nwrote {wrote}"
