"""``ocr eval`` for orientation checkpoints (and the classical method): angle errors and
orientation classes.

Per page, the truth is its total angle (the shard's ``angle`` column, 0 where a shard has
none, plus any rotation applied on the fly); the prediction is an estimate of
:mod:`ocr.models.orientation.infer`. Metrics (:func:`orientation_metrics`):

* ``skew_mae``: mean |error| of the skew, modulo 90 degrees (the fine skew model's job: what
  deskewing leaves once the page is a quarter-turn multiple from upright), with its median,
  95th percentile and maximum; ``within_0_5`` / ``within_1``: the share of pages within 0.5
  and 1 degree;
* ``orientation_accuracy``: the share of pages whose 0/90/180/270 class is right for the page
  as deskewed (the true class is the quarter turn nearest to truth minus the predicted skew,
  so a skew near +-45 degrees read from the other side is not counted twice); ``per_class``:
  precision, recall, F1 and support of each class, and their macro F1;
* ``angle_mae``: mean |error| of the total angle, modulo 360 (orientation mistakes included);
* ``bucket_precision`` / ``bucket_recall`` / ``bucket_f1``: macro means over the 0.5-degree
  skew buckets (seed 004's figures).

:func:`evaluate_orienter` runs a checkpoint (or the classical method) over shards or an image
folder and writes ``predictions.csv`` and ``summary.json`` into ``output``.
"""

from __future__ import annotations

import csv
import os
import time

import numpy as np

from ocr import storage
from ocr.config import ConfigError
from ocr.data.images import ImageError, decode, list_images
from ocr.data.shards import ids_to_ints, read_manifest, read_rows, schema
from ocr.data.validate import sample_id
from ocr.eval.config import OrientationEvalConfig
from ocr.eval.report import write_summary_json
from ocr.infer import PageDeskewer
from ocr.models.orientation.angles import AngleBuckets, circular_error, seeded_turn, wrap

CLASSES = (0, 90, 180, 270)


def _prf(truth: np.ndarray, pred: np.ndarray, label: int) -> dict:
    tp = int(((pred == label) & (truth == label)).sum())
    npred, support = int((pred == label).sum()), int((truth == label).sum())
    p = tp / npred if npred else 0.0
    r = tp / support if support else 0.0
    return {"precision": p, "recall": r, "f1": 2 * p * r / (p + r) if p + r else 0.0, "support": support}


def _bucket_scores(truth: np.ndarray, skew: np.ndarray) -> dict:
    buckets = AngleBuckets(90.0, 0.5)
    t, p = buckets.index(truth).numpy(), buckets.index(skew).numpy()
    scores = [_prf(t, p, int(b)) for b in np.union1d(t, p)]
    return {f"bucket_{k}": float(np.mean([s[k] for s in scores])) for k in ("precision", "recall", "f1")}


def orientation_metrics(truth, angle, skew, orientation) -> dict:
    """Metrics of the module docstring from per-page arrays (degrees): true total angles,
    predicted total angles, predicted skews and predicted orientations (0/90/180/270)."""
    truth, angle, skew = (np.asarray(x, np.float64).reshape(-1) for x in (truth, angle, skew))
    orientation = np.asarray(orientation, np.int64).reshape(-1)
    if not len(truth):
        raise ValueError("orientation metrics: expected at least one page, found none")
    skew_err = circular_error(skew, truth, 90.0)
    true_k = np.round(wrap(truth - skew, 360.0) / 90).astype(np.int64) % 4 * 90
    per_class = {str(c): _prf(true_k, orientation % 360, c) for c in CLASSES}
    return {"pages": int(len(truth)), "skew_mae": float(skew_err.mean()),
            "skew_median": float(np.median(skew_err)), "skew_p95": float(np.percentile(skew_err, 95)),
            "skew_max": float(skew_err.max()), "within_0_5": float((skew_err <= 0.5).mean()),
            "within_1": float((skew_err <= 1.0).mean()),
            "orientation_accuracy": float((true_k == orientation % 360).mean()),
            "angle_mae": float(circular_error(angle, truth, 360.0).mean()),
            "per_class": per_class,
            "orientation_macro_f1": float(np.mean([c["f1"] for c in per_class.values()])),
            **_bucket_scores(truth, skew)}


# --- the evaluation ------------------------------------------------------------------------------
def _shard_pages(cfg: OrientationEvalConfig):
    manifest = read_manifest(cfg.data)
    if cfg.split not in manifest["counts"]["per_split"]:
        found = sorted(manifest["counts"]["per_split"])
        raise ConfigError(f"{cfg.data} has no {cfg.split!r} split: found {found}")
    with_angle = "angle" in schema(manifest["task"]).names
    for table in read_rows(cfg.data, cfg.split, ["id", "key", "image"] + (["angle"] if with_angle else [])):
        angles = table.column("angle").to_pylist() if with_angle else [0.0] * table.num_rows
        for sid, key, image, angle in zip(table.column("id").to_pylist(), table.column("key").to_pylist(),
                                          table.column("image").to_pylist(), angles):
            yield sid, key, image, float(angle or 0.0)


def _folder_pages(cfg: OrientationEvalConfig):
    for path, name in list_images([cfg.data]):
        with open(path, "rb") as f:
            yield sample_id("eval", name), name, f.read(), 0.0


def pages(cfg: OrientationEvalConfig):
    """(id, key, image bytes, stored angle) of the set, up to ``cfg.limit`` pages."""
    is_shards = storage.exists(storage.join(cfg.data, "manifest.json"), storage.S3Settings.from_env())
    for i, page in enumerate(_shard_pages(cfg) if is_shards else _folder_pages(cfg)):
        if cfg.limit and i >= cfg.limit:
            return
        yield page


def _write_csv(path: str, rows: list[dict]) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=PREDICTION_COLUMNS)
        writer.writeheader()
        writer.writerows({k: round(v, 4) if isinstance(v, float) else v for k, v in r.items()} for r in rows)


PREDICTION_COLUMNS = ("key", "truth", "angle", "skew", "orientation", "confidence", "skew_error",
                      "angle_error")


def _row(key: str, truth: float, e: dict) -> dict:
    return {"key": key, "truth": float(wrap(truth, 360.0)), "angle": e["angle"], "skew": e["skew"],
            "orientation": e["orientation"], "confidence": e["confidence"],
            "skew_error": float(circular_error(e["skew"], truth, 90.0)),
            "angle_error": float(circular_error(e["angle"], truth, 360.0))}


def evaluate_orienter(cfg: OrientationEvalConfig) -> dict:
    """Run the evaluation; returns the summary (also ``OUTPUT/summary.json``, with
    ``predictions.csv`` beside it)."""
    classical = cfg.checkpoint == "classical"
    deskewer = PageDeskewer.load(None if classical else cfg.checkpoint, cfg.device)
    out = cfg.output or os.path.join(
        "outputs", f"eval-{storage.basename(cfg.data.rstrip('/'))}-{time.strftime('%Y%m%d-%H%M%S')}")
    rows, unreadable, chunk, seconds = [], 0, [], 0.0

    def flush():
        nonlocal seconds
        started = time.perf_counter()
        turns = [seeded_turn(int(ids_to_ints([c[0]])[0]), cfg.turn) for c in chunk]
        estimates = deskewer.estimate_many([c[2] for c in chunk], turns)
        seconds += time.perf_counter() - started
        rows.extend(_row(c[1], c[3] + t, e) for c, t, e in zip(chunk, turns, estimates))
        chunk.clear()

    for sid, key, image, angle in pages(cfg):
        try:
            chunk.append((sid, key, decode(image), angle))
        except ImageError:
            unreadable += 1
        if len(chunk) == cfg.batch_size:
            flush()
    if chunk:
        flush()
    if not rows:
        raise ConfigError(f"{cfg.data}: found no readable images to evaluate")
    m = orientation_metrics(*([r[k] for r in rows] for k in ("truth", "angle", "skew", "orientation")))
    summary = {**m, "method": "classical" if classical else "model", "model": deskewer.version,
               "checkpoint": None if classical else cfg.checkpoint, "data": cfg.data, "split": cfg.split,
               "turn": cfg.turn, "unreadable": unreadable, "seconds": round(seconds, 2),
               "ms_per_page": round(1000 * seconds / len(rows), 2)}
    _write_csv(os.path.join(out, "predictions.csv"), rows)
    write_summary_json(os.path.join(out, "summary.json"), summary)
    summary["output"] = out
    return summary


def summary_text(s: dict) -> str:
    """What ``ocr eval`` prints for an orientation summary."""
    classes = "  ".join(f"{c}: P {v['precision']:.3f} R {v['recall']:.3f} F1 {v['f1']:.3f}"
                        for c, v in s["per_class"].items())
    return (f"{s['pages']} pages ({s['method']}): skew MAE {s['skew_mae']:.3f} deg (median "
            f"{s['skew_median']:.3f}, max {s['skew_max']:.2f}), within 0.5 deg {s['within_0_5']:.4f}, "
            f"within 1 deg {s['within_1']:.4f}\norientation accuracy {s['orientation_accuracy']:.4f}  "
            f"{classes}\nangle MAE (total, orientation included) {s['angle_mae']:.3f} deg; "
            f"{s['ms_per_page']} ms/page\nwrote {s['output']}/predictions.csv, summary.json")
