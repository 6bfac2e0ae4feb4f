"""``ocr eval`` for recognisers: a checkpoint on shards, or on a raw set in any ingest layout.

Writes into ``output``: ``predictions.csv`` (image, truth, prediction, confidence, CER per
sample: seed 000's test_log), ``summary.json`` and ``report.html`` (the worst cases, with
their images).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

from ocr import storage
from ocr.charset import nfc
from ocr.config import LAYOUTS, ConfigError, absolute_paths, opt
from ocr.eval.metrics import TextMetrics, cer
from ocr.eval.report import write_html_report, write_summary_json, write_table_csv


@dataclass
class EvalConfig:
    """``ocr eval``: how well a checkpoint reads a labelled set."""

    checkpoint: str = opt("", "recognition checkpoint folder, run folder (its best/) or s3:// URI",
                          path="checkpoint")
    data: str = opt("", "shard folder, or a raw labelled set in any `ocr ingest` layout", path="input")
    split: str = opt("test", "split to evaluate, for shard folders")
    layout: str = opt("auto", "layout of a raw set, as `ocr ingest --layout`", choices=LAYOUTS)
    separator: str | None = opt(None, "raw gt/labels sets: the separator, as `ocr ingest --separator`")
    filename_style: str = opt("prefix", "raw filename sets: prefix (LABEL_x.png) or stem (LABEL.png)",
                              choices=("prefix", "stem"))
    image_root: str | None = opt(None, "raw sets: the folder the images are in", path="input")
    output: str = opt("", "folder for predictions.csv, summary.json and report.html (default: "
                      "outputs/eval-DATA-TIMESTAMP)", path="output")
    batch_size: int = opt(64, "lines per model call")
    worst: int = opt(50, "worst cases shown in report.html")
    limit: int = opt(0, "evaluate the first N samples only (0: all)")

    def __post_init__(self):
        absolute_paths(self)
        if not self.checkpoint or not self.data:
            raise ConfigError("checkpoint and data: expected a checkpoint and a labelled set")
        if self.batch_size <= 0:
            raise ConfigError(f"batch_size: expected a positive number, found {self.batch_size}")


def _shard_samples(cfg: EvalConfig):
    from ocr.data.shards import read_manifest, read_rows

    manifest = read_manifest(cfg.data)
    if cfg.split not in manifest["counts"]["per_split"]:
        raise ConfigError(f"{cfg.data} has no {cfg.split!r} split: found "
                          f"{sorted(manifest['counts']['per_split'])}")
    for table in read_rows(cfg.data, cfg.split, ["key", "image", "label"]):
        for key, image, label in zip(*(table.column(c).to_pylist() for c in ("key", "image", "label"))):
            yield key, image, label


def _raw_samples(cfg: EvalConfig):
    from ocr.config import IngestConfig
    from ocr.data.ingest import make_reader

    icfg = IngestConfig(inputs=[cfg.data], output="-", layout=cfg.layout, separator=cfg.separator,
                        filename_style=cfg.filename_style, image_root=cfg.image_root)
    reader = make_reader(cfg.data, icfg, storage.S3Settings.from_env())
    for entry in reader.entries():
        if entry.error or entry.label is None:
            continue
        try:
            yield entry.key, reader.load(entry), entry.label
        except OSError:
            continue


def samples(cfg: EvalConfig):
    """(key, image bytes, label) of the set, shards or raw."""
    is_shards = storage.exists(storage.join(cfg.data, "manifest.json"), storage.S3Settings.from_env())
    it = _shard_samples(cfg) if is_shards else _raw_samples(cfg)
    for i, sample in enumerate(it):
        if cfg.limit and i >= cfg.limit:
            return
        yield sample


def _chunks(it, size: int):
    chunk = []
    for item in it:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def evaluate(cfg: EvalConfig) -> dict:
    """Run the evaluation; returns the summary (also written to ``output``)."""
    from ocr.data.images import ImageError, decode
    from ocr.infer import LineReader

    reader = LineReader.load(cfg.checkpoint)
    metrics, rows, unreadable = TextMetrics(), [], 0
    started = time.perf_counter()
    for chunk in _chunks(samples(cfg), cfg.batch_size):
        good = []
        for key, image, label in chunk:
            try:  # decoded one by one, so an unreadable image is counted, not fatal
                good.append((key, image, nfc(label), decode(image)))
            except ImageError:
                unreadable += 1
        if not good:
            continue
        preds = reader.read_batch(reader.batch([g[3] for g in good]))
        for (key, image, truth, _), (pred, conf) in zip(good, preds):
            metrics.add(truth, pred)
            rows.append({"key": key, "image": image, "truth": truth, "pred": pred,
                         "confidence": round(conf, 5), "cer": round(cer(truth, pred), 5)})
    if not rows:
        raise ConfigError(f"{cfg.data}: found no labelled, readable samples to evaluate")
    seconds = time.perf_counter() - started
    summary = {**metrics.summary(), "unreadable": unreadable, "checkpoint": cfg.checkpoint,
               "data": cfg.data, "split": cfg.split, "seconds": round(seconds, 2),
               "lines_per_s": round(len(rows) / max(seconds, 1e-9), 1)}
    out = cfg.output or os.path.join(
        "outputs", f"eval-{storage.basename(cfg.data.rstrip('/'))}-{time.strftime('%Y%m%d-%H%M%S')}")
    write_table_csv(os.path.join(out, "predictions.csv"), rows)
    write_summary_json(os.path.join(out, "summary.json"), summary)
    write_html_report(os.path.join(out, "report.html"), rows, summary,
                      title=f"{storage.basename(cfg.checkpoint)} on {storage.basename(cfg.data)}",
                      worst=cfg.worst)
    summary["output"] = out
    return summary
