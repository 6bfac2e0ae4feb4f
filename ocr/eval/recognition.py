"""``ocr eval`` for recognisers: a checkpoint on shards, or on a raw set in any ingest layout.

Writes into ``output``: ``predictions.csv`` (image, truth, prediction, confidence, CER per
sample: seed 000's test_log), ``summary.json`` and ``report.html`` (the worst cases, with
their images).
"""

from __future__ import annotations

import os
import time

from ocr import storage
from ocr.charset import nfc
from ocr.config import ConfigError
from ocr.data.config import IngestConfig
from ocr.data.images import ImageError, decode
from ocr.data.ingest import make_reader
from ocr.data.shards import read_manifest, read_rows
from ocr.eval.config import EvalConfig
from ocr.eval.metrics import TextMetrics, cer
from ocr.eval.report import write_html_report, write_summary_json, write_table_csv
from ocr.infer import LineReader


def _shard_samples(cfg: EvalConfig):
    manifest = read_manifest(cfg.data)
    if cfg.split not in manifest["counts"]["per_split"]:
        raise ConfigError(f"{cfg.data} has no {cfg.split!r} split: found "
                          f"{sorted(manifest['counts']['per_split'])}")
    for table in read_rows(cfg.data, cfg.split, ["key", "image", "label"]):
        for key, image, label in zip(*(table.column(c).to_pylist() for c in ("key", "image", "label"))):
            yield key, image, label


def _raw_samples(cfg: EvalConfig):
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


def summary_text(s: dict) -> str:
    """What ``ocr eval`` prints for a recognition summary."""
    return (f"{s['samples']} lines: CER {s['cer']:.4f}  NED {s['ned']:.4f}  char accuracy "
            f"{s['char_accuracy']:.4f}  word accuracy {s['word_accuracy']:.4f}  "
            f"({s['unreadable']} unreadable, {s['lines_per_s']} lines/s)\nwrote {s['output']}/"
            "predictions.csv, summary.json, report.html")
