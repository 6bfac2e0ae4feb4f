"""The main job, run by ``make demo``: the whole platform end to end on a local Ray.

0. read a page with the built-in models, in-process and with no training (``ocr read``);
1. synthesise digit lines and pages (Ray Data);
2. ingest: the lines go out to a deep-text-recognition-benchmark LMDB and come back in
   through ``ocr ingest``, as a team's old data set would;
3. train a recogniser, a ROI detector and an orientation model (Ray Train, 2 workers);
4. run a short learning-rate sweep of the recogniser (Ray Tune, ASHA);
5. deploy the deskew -> ROI -> recognition graph (Ray Serve) on 127.0.0.1:8000;
6. send it a rendered page, rotated;
7. print the lines it read with the timings, and the web page's URL.

Everything goes under one output folder (``--out``, default outputs/demo); the models are
published to OUT/models/{recognizer,detector,orientation}, the paths serve_config.yaml names.
About 16 minutes on 2 CPU cores (``--minutes`` scales the training budgets).
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np

from ocr import storage, tracking
from ocr.config import ConfigError
from ocr.data.config import IngestConfig, SynthConfig
from ocr.data.ingest import ingest, summary_table
from ocr.data.lmdb_export import export_lmdb
from ocr.data.synth.fonts import find_fonts
from ocr.data.synth.job import synth
from ocr.data.synth.page import PageStyle, render_page
from ocr.data.synth.text import parse_text_source
from ocr.paths import resolve
from ocr.runtime import ensure_ray
from ocr.serve.client import post_image
from ocr.serve.config import ServeConfig
from ocr.serve.deploy import check_port, deploy
from ocr.train.config import TrainConfig
from ocr.train.run import train
from ocr.tune.sweep import SweepConfig, sweep

DIGITS_LINES = "digits:1-8"
DIGITS_PAGE = "digits:3-8"   # page lines no longer than the recogniser's


class Steps:
    def __init__(self):
        self.started = time.perf_counter()
        self.n = 0

    def __call__(self, title: str) -> None:
        self.n += 1
        elapsed = time.perf_counter() - self.started
        print(f"\n[{self.n}] {title}   (at {elapsed / 60:.1f} min)", flush=True)


def synthesise(out: str, lines: int, pages: int, step: Steps) -> dict:
    jobs = {
        "lines": SynthConfig(output=storage.join(out, "synth-lines"), text=DIGITS_LINES, count=lines,
                             seed=1, overwrite=True),
        "pages": SynthConfig(output=storage.join(out, "synth-pages"), kind="page", text=DIGITS_PAGE,
                             count=pages, image_format="jpeg", seed=3, overwrite=True),
    }
    for name, cfg in jobs.items():
        step(f"ocr synth: {cfg.count} {cfg.kind}s of {cfg.text} -> {cfg.output}")
        t = time.perf_counter()
        manifest = synth(cfg)
        print(summary_table(manifest))
        print(f"    {manifest['counts']['written'] / (time.perf_counter() - t):.0f} {name}/s")
    return {k: v.output for k, v in jobs.items()}


def ingest_lines(out: str, synth_lines: str, step: Steps) -> str:
    lmdb_dir = os.path.join(out, "lmdb-lines")
    step(f"ocr export-lmdb {synth_lines} -> {lmdb_dir}, then ocr ingest it back")
    n = export_lmdb(synth_lines, lmdb_dir)
    print(f"    {n} samples in the deep-text-recognition-benchmark LMDB layout")
    shards = storage.join(out, "ingested-lines")
    manifest = ingest(IngestConfig(inputs=[lmdb_dir], output=shards, charset="digits", overwrite=True,
                                   splits="train=0.95,val=0.05"))
    print(summary_table(manifest))
    return shards


# Global optimiser steps a second of each model on 2 CPU cores (2 workers), measured on the
# project's VM, only to space the validations: each run's schedule follows its time budget
# (max_minutes), with the warm-up at most a tenth of it (a fixed 100-step warm-up once ate the
# whole of a 2-minute budget: orientation stayed at 87%).
STEPS_PER_SECOND = {"recognizer": 1.6, "detector": 0.3, "orientation": 0.45}


def budget(name: str, minutes: float) -> dict:
    expected = max(20, int(minutes * 60 * STEPS_PER_SECOND[name]))
    return dict(max_minutes=minutes, epochs=1000, val_every=max(10, expected // 6))


def tracking_store(out: str) -> str:
    """The demo's one MLflow store, for its runs and its sweep: OUT/mlflow.db."""
    return tracking.sqlite_uri(out)


def train_models(out: str, data: dict, minutes: float, step: Steps) -> dict:
    runs = storage.join(out, "runs")
    common = dict(storage=runs, num_workers=2, log_every=25, tracking_uri=tracking_store(out))
    plans = {
        "recognizer": TrainConfig(task="recognition", data=data["lines"], name="recognizer", model="fast",
                                  lr=2e-3, augment=0.3, **budget("recognizer", 3 * minutes), **common),
        # 320 px (at 192 a 640 px page's lines are ~8 px high: mAP@0.5 0.38 after 210 steps),
        # 8 pages a worker: mAP@0.5 0.78 after 75 steps in 5 minutes
        "detector": TrainConfig(task="detection", data=data["pages"], name="detector", target="line",
                                lr=2e-3, batch_size=8, **budget("detector", 7 * minutes), **common),
        "orientation": TrainConfig(task="orientation", data=data["pages"], name="orientation", lr=3e-3,
                                   batch_size=16, **budget("orientation", 3 * minutes), **common),
    }
    best = {}
    for name, cfg in plans.items():
        step(f"ocr train {cfg.task} ({cfg.num_workers} Ray Train workers, {cfg.max_minutes:.1f} min)")
        summary = train(cfg)
        metrics = ", ".join(f"{k[4:]} {v:.4f}" for k, v in (summary.get("metrics") or {}).items()
                            if k.startswith("val_") and isinstance(v, float))
        print(f"    best at step {summary.get('best_step')}: {metrics}")
        best[name] = summary["best"]
    return best


def short_sweep(out: str, data: dict, step: Steps, steps: int = 60) -> str:
    step("ocr tune: a 2-trial learning-rate sweep of the recogniser (ASHA on validation CER)")
    space = Path(out) / "space.yaml"
    space.write_text("lr: {grid: [3.0e-4, 3.0e-3]}\n")
    cfg = TrainConfig(task="recognition", data=data["lines"], model="tiny_fast", max_steps=steps,
                      val_every=max(1, steps // 3), log_every=max(1, steps // 3), batch_size=32,
                      warmup_steps=min(10, steps // 6), tracking_uri=tracking_store(out))
    summary = sweep(SweepConfig(space=str(space), num_samples=1, storage=storage.join(out, "sweeps"),
                                name="demo-sweep", verbose=0), cfg)
    print(f"    best validation CER {summary['best_metric']}; results {summary['sweep_dir']}/results.csv")
    return summary["best"]


def publish(out: str, best: dict) -> dict:
    """Copy each best checkpoint to OUT/models/NAME (what serve_config.yaml points at)."""
    models = {}
    for name, path in best.items():
        dest = Path(out) / "models" / name
        shutil.rmtree(dest, ignore_errors=True)
        shutil.copytree(path, dest)
        models[name] = str(dest)
    return models


def rotated_page(angle: float, seed: int = 7):
    """A fresh page of digit lines (fonts the models saw), rotated by ``angle`` degrees."""
    rng = np.random.default_rng(seed)
    source = parse_text_source(DIGITS_PAGE)
    fonts = [f for f in find_fonts() if "DejaVuSans." in os.path.basename(f.path)] or find_fonts()[:1]
    page = render_page([source.sample(rng) for _ in range(6)], fonts[:1], rng, size=(640, 480), angle=angle,
                       style=PageStyle(font_size=(26, 30), background="plain"))
    return page


def read_with_builtins(out: str, angle: float, step: Steps) -> None:
    """What a user tries first: ``ocr read`` on a page, the built-ins, no Ray, no training."""
    from ocr.infer import PageReader

    page = rotated_page(angle, seed=11)
    path = Path(out) / "first-page.png"
    page.image.save(path)
    step(f"ocr read --lang digits {path}: a page (rotated {angle:+.1f} degrees) read in-process by "
         "the built-in models, before any training")
    result = PageReader.load("builtin:digits").read_page(page.image)
    print(f"    angle found {result['angle']:+.2f} ({result['deskew_method']}), "
          f"{len(result['lines'])} lines: " + " | ".join(ln["text"] for ln in result["lines"]))
    print("    drawn:                       " + " | ".join(page.lines))
    print("    timings (ms): " + ", ".join(f"{k} {v:.0f}" for k, v in result["timings_ms"].items()))


def serve_and_ask(models: dict, out: str, angle: float, port: int, step: Steps) -> str:
    step(f"Ray Serve: deskew -> ROI -> recognition on 127.0.0.1:{port}")
    url = deploy(ServeConfig(recognizer=models["recognizer"], detector=models["detector"],
                             deskewer=models["orientation"], port=port), quiet=True)
    page = rotated_page(angle)
    path = Path(out) / "demo-page.png"
    page.image.save(path)
    buf = io.BytesIO()
    page.image.save(buf, "PNG")
    step(f"POST {url}/ocr with {path} (rotated {angle:+.1f} degrees)")
    result = post_image(url, buf.getvalue(), "ocr")
    print(f"    angle found {result['angle']:+.2f} ({result['deskew_method']}, orientation "
          f"{result['orientation']}), {len(result['lines'])} lines:")
    for ln in result["lines"][:12]:
        print(f"      {ln['text']:<14} conf {ln['confidence']:.2f}   box {ln['box']}")
    if len(result["lines"]) > 12:
        print(f"      ... and {len(result['lines']) - 12} more")
    print("    drawn: " + " | ".join(page.lines))
    print("    timings (ms): " + ", ".join(f"{k} {v:.0f}" for k, v in result["timings_ms"].items()))
    return url


def run(out: str, lines: int = 8000, pages: int = 400, minutes: float = 1.0, port: int = 8000,
        num_cpus: int | None = None, serve_seconds: float | None = None, sweep_steps: int = 60) -> None:

    out = resolve(out, "output")   # Ray's workers do not run in this folder
    step = Steps()
    os.makedirs(out, exist_ok=True)
    read_with_builtins(out, angle=5.0, step=step)
    step(f"starting a local Ray ({num_cpus or os.cpu_count()} CPUs, dashboard on 127.0.0.1:8265)")
    ensure_ray(num_cpus, dashboard=True)

    check_port("127.0.0.1", port)   # step 5 serves there: a taken port is said now, not after training
    synth_out = synthesise(out, lines, pages, step)
    data = {"lines": ingest_lines(out, synth_out["lines"], step), "pages": synth_out["pages"]}
    best = train_models(out, data, minutes, step)
    short_sweep(out, data, step, sweep_steps)
    models = publish(out, best)
    url = serve_and_ask(models, out, angle=-7.0, port=port, step=step)
    took = (time.perf_counter() - step.started) / 60
    print(f"\ndone in {took:.1f} min; everything is under {out} (models in {out}/models)\n"
          f"web page: {url}/   API docs: {url}/docs\n"
          f"serve these models again: serve run serve_config.yaml  (or: ocr serve --recognizer "
          f"{models['recognizer']} --detector {models['detector']} --deskewer {models['orientation']})\n"
          f"the runs and the sweep in MLflow: mlflow ui --backend-store-uri {tracking_store(out)}\n"
          f"their TensorBoard scalars: tensorboard --logdir {out}")
    if serve_seconds is None:
        serve_seconds = float("inf") if sys.stdin.isatty() else 0
    if serve_seconds > 0:
        print("serving until Ctrl-C" if serve_seconds == float("inf") else f"serving {serve_seconds:.0f}s",
              flush=True)
        try:
            time.sleep(serve_seconds if serve_seconds != float("inf") else 10**9)
        except KeyboardInterrupt:
            pass


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--out", default="outputs/demo", help="output folder (relative: from the working "
                    "folder); everything the demo makes goes under it")
    ap.add_argument("--lines", type=int, default=8000, help="synthetic digit lines to render and train on")
    ap.add_argument("--pages", type=int, default=400, help="synthetic pages for the detector and "
                    "orientation model")
    ap.add_argument("--minutes", type=float, default=1.0, help="scales every training budget (1: 3, 7 "
                    "and 3 minutes)")
    ap.add_argument("--port", type=int, default=8000, help="HTTP port of the service on 127.0.0.1")
    ap.add_argument("--num-cpus", type=int, default=None, help="CPUs of the local Ray (default: all)")
    ap.add_argument("--sweep-steps", type=int, default=60, help="optimiser steps of each of the 2 "
                    "sweep trials")
    ap.add_argument("--serve-seconds", type=float, default=None,
                    help="keep serving this long at the end (default: until Ctrl-C on a terminal, "
                         "else not at all)")
    args = ap.parse_args(argv)

    try:
        run(args.out, args.lines, args.pages, args.minutes, args.port, args.num_cpus, args.serve_seconds,
            args.sweep_steps)
    except ConfigError as e:   # a taken --port, a Ray that does not answer: said without a traceback
        print(f"ocr demo: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
