"""Deskew and orientation: a model trained on Ray Train against the classical baseline.

    python benchmarks/orientation_training.py [--minutes 12]
    python benchmarks/orientation_training.py --smoke        # tiny sizes: a check in ~2 minutes
    python benchmarks/orientation_training.py --checkpoint RUN   # evaluate a run again, no training

Data (``ocr synth --kind page``, rendered once into $OCR_BENCH_CACHE, default /tmp/ocr-bench):
640x480 pages of 3-8 lines of ``random:latin:8-30`` text, font sizes 14-36 px, the default
page style (plain, noise or texture backgrounds, random colours), each page turned uniformly
in [-180, 180) (``--max-angle 180``: the same as a uniform skew in [-45, 45) and a uniform
0/90/180/270 orientation). Training pages use the fonts of common.TRAIN_FONTS; held-out
pages the Liberation fonts, never seen in training (their ``val`` quarter is validated on
during training, their ``test`` rest evaluated at the end).

The task's default model trains with 2 workers on the local Ray (2 CPUs) for at most
``--minutes``; the best checkpoint (lowest total angle error on val) and the classical
projection-profile method are then evaluated on the same held-out test pages with
``ocr eval``'s function: skew MAE (modulo 90), share within 0.5 and 1 degree, orientation
accuracy (targets: MAE <= 0.5 degree, orientation >= 99.5%). Latency: one page at a time
(``PageDeskewer.estimate``, decode excluded), torch on 2 threads.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common import CACHE, HELD_OUT_FONTS, TRAIN_FONTS, TRAIN_SET_TAG  # noqa: E402

from ocr.data.config import SynthConfig
from ocr.data.synth.job import synth  # noqa: E402
from ocr.eval.config import OrientationEvalConfig  # noqa: E402
from ocr.eval.orientation import evaluate_orienter  # noqa: E402
from ocr.runtime import ensure_ray  # noqa: E402
from ocr.train.config import TrainConfig  # noqa: E402
from ocr.train.run import train  # noqa: E402

TEXT = "random:latin:8-30"
TARGET_MAE, TARGET_ORIENTATION = 0.5, 0.995
STEPS_PER_S = 0.5   # global steps/s, 2 workers x 16 pages on 2 cores (measured; spaces validations)


def render(name: str, count: int, fonts: list[str], splits: str, seed: int, size: tuple[int, int]) -> Path:
    out = CACHE / name
    if (out / "manifest.json").exists():
        return out
    started = time.perf_counter()
    synth(SynthConfig(output=str(out), kind="page", count=count, text=TEXT, lines_per_page="3-8",
                      max_angle=180.0, page_width=size[0], page_height=size[1], font_include=fonts,
                      splits=splits, seed=seed, overwrite=True), progress=False)
    print(f"rendered {count} pages ({', '.join(fonts)}) in {time.perf_counter() - started:.0f}s", flush=True)
    return out


def _rows(run_dir: str) -> list[dict]:
    with open(Path(run_dir) / "metrics.csv", newline="") as f:
        return [r for r in csv.DictReader(f) if r.get("val_angle_mae")]


def latency(checkpoint: str | None, data: Path, pages: int) -> float:
    """Mean ms per page of ``PageDeskewer.estimate`` on held-out test pages, one at a time."""
    import torch

    from ocr.data.images import decode
    from ocr.data.shards import read_rows
    from ocr.infer import PageDeskewer

    torch.set_num_threads(2)
    deskewer = PageDeskewer.load(checkpoint)
    images = [decode(b) for t in read_rows(str(data), "test", ["image"])
              for b in t.column("image").to_pylist()][:pages]
    deskewer.estimate(images[0])  # warm-up
    started = time.perf_counter()
    for page in images:
        deskewer.estimate(page)
    return 1000 * (time.perf_counter() - started) / len(images)


def figures(name: str, s: dict, ms: float) -> str:
    return (f"{name:9s} skew MAE {s['skew_mae']:.3f} deg (median {s['skew_median']:.3f}, p95 "
            f"{s['skew_p95']:.3f}, max {s['skew_max']:.2f}); within 0.5 deg {s['within_0_5']:.4f}, "
            f"within 1 deg {s['within_1']:.4f}; orientation accuracy {s['orientation_accuracy']:.4f} "
            f"(macro F1 {s['orientation_macro_f1']:.4f}); total angle MAE {s['angle_mae']:.2f} deg; "
            f"{ms:.1f} ms/page")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=12.0, help="training budget")
    ap.add_argument("--train-count", type=int, default=3000, help="training pages")
    ap.add_argument("--held-out-count", type=int, default=800, help="held-out pages (val + test)")
    ap.add_argument("--batch-size", type=int, default=16, help="pages per worker")
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--ema", type=float, default=TrainConfig.ema, help="weight-average decay (0: off)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--model", default="", help="preset (default: the task's)")
    ap.add_argument("--checkpoint", default="", help="evaluate this run or checkpoint, no training")
    ap.add_argument("--smoke", action="store_true", help="tiny data, tiny model, a few steps")
    args = ap.parse_args()
    tag, size = ("smoke-", (256, 192)) if args.smoke else ("", (640, 480))
    if args.smoke:
        args.minutes, args.train_count, args.held_out_count, args.batch_size = 0.5, 64, 48, 4
    ensure_ray(num_cpus=2, dashboard=not args.smoke)
    train_set = render(f"{tag}orient-train-{TRAIN_SET_TAG}", args.train_count, TRAIN_FONTS, "train=1", 31,
                       size)
    held_out = render(f"{tag}orient-held-out", args.held_out_count, HELD_OUT_FONTS, "val=0.25,test=0.75", 32,
                      size)
    if args.checkpoint:
        run_dir = Path(args.checkpoint)
        has_log = (run_dir / "metrics.csv").exists()
        summary, rows = {"best": args.checkpoint, "best_step": None}, _rows(str(run_dir)) if has_log else []
    else:
        summary, rows, run_dir = train_run(args, tag, train_set, held_out)
    results = {}
    for name, ckpt in (("model", summary["best"]), ("classical", "classical")):
        s = evaluate_orienter(OrientationEvalConfig(checkpoint=ckpt, data=str(held_out), split="test",
                                                    output=str(run_dir / f"eval-{name}")))
        ms = latency(None if ckpt == "classical" else ckpt, held_out, 16 if args.smoke else 100)
        results[name] = (s, ms)
    report(args, results, rows, summary, run_dir)


def train_run(args, tag: str, train_set: Path, held_out: Path) -> tuple[dict, list[dict], Path]:
    expected = max(50, int(args.minutes * 60 * STEPS_PER_S))
    steps = {"max_steps": 8} if args.smoke else {"epochs": 1000}   # the budget ends the run
    cfg = TrainConfig(task="orientation", data=str(train_set), val_data=str(held_out),
                      num_workers=args.workers, batch_size=args.batch_size, lr=args.lr,
                      warmup_steps=30, max_minutes=args.minutes, ema=args.ema, **steps,
                      val_every=max(4, expected // 6), log_every=max(2, expected // 40), augment=0.5,
                      storage=str(CACHE / "runs"), name=f"{tag}orientation-{time.strftime('%Y%m%d-%H%M%S')}",
                      **({"model": "tiny_deskew"} if args.smoke else {"model": args.model}))
    summary = train(cfg)
    return summary, _rows(summary["run_dir"]), Path(summary["run_dir"])


def report(args, results: dict, rows: list[dict], summary: dict, run_dir: Path) -> None:
    print(f"\n2 CPUs, local Ray, {args.workers} workers; training fonts {TRAIN_FONTS}, held-out fonts "
          f"{HELD_OUT_FONTS}; {results['model'][0]['pages']} held-out test pages turned uniformly in "
          f"[-180, 180)" + (" (SMOKE sizes)" if args.smoke else ""))
    if rows:
        print(f"trained {rows[-1]['step']} steps in {float(rows[-1]['seconds']) / 60:.1f} min "
              f"({args.batch_size} pages per worker per step); best val at step {summary.get('best_step')}")
    for name, (s, ms) in results.items():
        print(figures(name, s, ms))
    s = results["model"][0]
    mae_ok = "met" if s["skew_mae"] <= TARGET_MAE else "NOT met"
    ori_ok = "met" if s["orientation_accuracy"] >= TARGET_ORIENTATION else "NOT met"
    print(f"targets: skew MAE <= {TARGET_MAE} deg {mae_ok}; "
          f"orientation accuracy >= {TARGET_ORIENTATION} {ori_ok}")
    keep = ("skew_mae", "skew_median", "skew_p95", "skew_max", "within_0_5", "within_1",
            "orientation_accuracy", "orientation_macro_f1", "angle_mae", "bucket_f1", "pages")
    out = {name: {**{k: s[k] for k in keep}, "ms_per_page": round(ms, 2)}
           for name, (s, ms) in results.items()}
    out["run"] = str(run_dir)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
