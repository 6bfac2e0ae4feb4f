"""Recognition training: time to accuracy, and training samples/s with 1 and 2 workers.

    python benchmarks/recognition_training.py [--presets fast crnn] [--minutes 10]
    python benchmarks/recognition_training.py --throughput-only
    python benchmarks/recognition_training.py --tracking-ab [--steps 300]

Data (rendered once into $OCR_BENCH_CACHE, default /tmp/ocr-bench): synthetic digit lines,
1-8 digits, seed 001's augmentation mix (``--style default``: skew, blur, distortion,
backgrounds). Training fonts: the 14 families of common.TRAIN_FONTS; held-out set: Liberation,
never seen in training (its ``val`` half is validated on during training, its ``test``
half is evaluated at the end).

Time to accuracy: each preset trains with 2 workers on the local Ray (2 CPUs) for at most
``--minutes``; the figure is the training wall time (``seconds`` in metrics.csv, Ray start
excluded) at the first validation with held-out word accuracy >= 99%, then ``ocr eval``
of the best checkpoint on the held-out test half.

Throughput: ``fast`` for ``--steps`` steps with 1 worker and with 2 workers, per-worker
batch 64; samples/s over the steps after the first epoch boundary (median of the
progress lines). ``--tracking-ab``: 2-worker samples/s with MLflow tracking on (the default
local store) and ``--no-tracking``, alternated, and the wall time of each whole run.
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common import CACHE, HELD_OUT_FONTS, TRAIN_FONTS, TRAIN_SET_TAG  # noqa: E402
from ray.data import DataContext  # noqa: E402

from ocr.data.config import SynthConfig  # noqa: E402
from ocr.data.synth.job import synth  # noqa: E402
from ocr.eval.config import EvalConfig  # noqa: E402
from ocr.eval.recognition import evaluate  # noqa: E402
from ocr.runtime import IdleStepPause, ensure_ray  # noqa: E402
from ocr.train import run as train_run  # noqa: E402
from ocr.train.config import TrainConfig  # noqa: E402
from ocr.train.run import train  # noqa: E402


def render(name: str, count: int, include: list[str], splits: str, seed: int) -> Path:
    out = CACHE / name
    if (out / "manifest.json").exists():
        return out
    cfg = SynthConfig(output=str(out), count=count, text="digits:1-8", style="default",
                      font_include=include, splits=splits, seed=seed, charset="digits", overwrite=True)
    started = time.perf_counter()
    synth(cfg, progress=False)
    print(f"rendered {count} lines ({', '.join(include)}) in {time.perf_counter() - started:.0f}s")
    return out


def _rows(run_dir: str) -> list[dict]:
    with open(Path(run_dir) / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f))


def time_to_accuracy(preset: str, train_set: Path, held_out: Path, minutes: float, runs: Path,
                     lr: float, val_every: int, width: int, augment: float, ema: float) -> dict:
    cfg = TrainConfig(data=str(train_set), val_data=str(held_out), model=preset, num_workers=2,
                      width=width, batch_size=64, lr=lr, warmup_steps=100, epochs=1000,
                      max_minutes=minutes, val_every=val_every, log_every=25, augment=augment,
                      ema=ema, storage=str(runs),
                      name=f"{preset}-{time.strftime('%Y%m%d-%H%M%S')}")
    summary = train(cfg)
    rows = [r for r in _rows(summary["run_dir"]) if r["val_word_accuracy"]]
    hit = next((r for r in rows if float(r["val_word_accuracy"]) >= 0.99), None)
    test = evaluate(EvalConfig(checkpoint=summary["best"], data=str(held_out), split="test",
                               output=str(Path(summary["run_dir"]) / "eval-held-out")))
    return {"preset": preset, "to_99_s": float(hit["seconds"]) if hit else None,
            "to_99_step": int(hit["step"]) if hit else None,
            "best_val_word_acc": max(float(r["val_word_accuracy"]) for r in rows),
            "test_word_acc": test["word_accuracy"], "test_cer": test["cer"],
            "trained_s": float(rows[-1]["seconds"]), "steps": int(rows[-1]["step"]),
            "run_dir": summary["run_dir"]}


def throughput(train_set: Path, held_out: Path | None, workers: int, steps: int, runs: Path,
               width: int = 100, tracking: bool = True, val_every: int = 0) -> float:
    cfg = TrainConfig(data=str(train_set), val_data=str(held_out or ""), model="fast",
                      num_workers=workers, width=width, batch_size=64, max_steps=steps,
                      val_every=val_every or steps, log_every=10, warmup_steps=50, storage=str(runs),
                      name=f"throughput-{workers}w-{time.strftime('%H%M%S')}", tracking=tracking)
    summary = train(cfg)
    rates = [float(r["samples_per_s"]) for r in _rows(summary["run_dir"])
             if r["samples_per_s"] and int(r["step"]) > 20]
    return statistics.median(rates)


def _without_idle_pause():
    """``ocr train`` as it was before ``IdleStepPause``: Ray Data's loop spins when idle."""
    original = train_run.configure_data

    def configure(progress=None):
        original(progress)
        DataContext.get_current().custom_execution_callback_classes.remove(IdleStepPause)

    train_run.configure_data = configure
    return lambda: setattr(train_run, "configure_data", original)


def idle_pause_ab(data: Path, val: Path | None, steps: int, width: int, runs: Path,
                  rounds: int = 2) -> dict:
    """2-worker samples/s with and without the scheduling-loop pause, alternated (ABAB)."""
    rates: dict[str, list[float]] = {"with pause": [], "without": []}
    for _ in range(rounds):
        rates["with pause"].append(throughput(data, val, 2, steps, runs, width))
        restore = _without_idle_pause()
        try:
            rates["without"].append(throughput(data, val, 2, steps, runs, width))
        finally:
            restore()
    return rates


def tracking_ab(data: Path, val: Path, steps: int, runs: Path, rounds: int = 2) -> dict:
    """2-worker samples/s (and the run's wall time) with MLflow tracking on and off, alternated."""
    out: dict[str, list[tuple[float, float]]] = {"tracked": [], "--no-tracking": []}
    for _ in range(rounds):
        for name, on in (("tracked", True), ("--no-tracking", False)):
            started = time.perf_counter()
            rate = throughput(data, val, 2, steps, runs, tracking=on, val_every=max(1, steps // 4))
            out[name].append((rate, time.perf_counter() - started))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--presets", nargs="+", default=["fast", "crnn"])
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--train-count", type=int, default=40_000)
    ap.add_argument("--steps", type=int, default=120, help="steps of each throughput run")
    ap.add_argument("--throughput-only", action="store_true")
    ap.add_argument("--idle-pause-ab", action="store_true",
                    help="only 2-worker samples/s with and without Ray Data's idle pause, alternated")
    ap.add_argument("--data", default="", help="with --idle-pause-ab: a shard folder to train on "
                    "(default: the digit set), e.g. a recipe's OUT/data with --width 512")
    ap.add_argument("--skip-throughput", action="store_true")
    ap.add_argument("--tracking-ab", action="store_true",
                    help="only 2-worker samples/s with MLflow tracking on and off, alternated")
    ap.add_argument("--width", type=int, default=100, help="input width (8 digits are ~160 px at 32)")
    ap.add_argument("--augment", type=float, default=0.3)
    ap.add_argument("--ema", type=float, default=TrainConfig.ema, help="weight-average decay (0: off)")
    args = ap.parse_args()
    ensure_ray(num_cpus=2, dashboard=True)
    if args.idle_pause_ab:
        data, val = Path(args.data) if args.data else None, None
        if data is None:
            data = render(f"digits-train-{TRAIN_SET_TAG}-{args.train_count}", args.train_count,
                          TRAIN_FONTS, "train=1", seed=1)
            val = render("digits-held-out-fonts", 2000, HELD_OUT_FONTS, "val=0.5,test=0.5", seed=2)
        rates = idle_pause_ab(data, val, args.steps, args.width, CACHE / "runs")
        for name, values in rates.items():
            print(f"2 workers, width {args.width}, {name}: samples/s "
                  f"{', '.join(f'{v:.0f}' for v in values)} (median {statistics.median(values):.0f})")
        return
    train_set = render(f"digits-train-{TRAIN_SET_TAG}-{args.train_count}", args.train_count, TRAIN_FONTS,
                       "train=1", seed=1)
    held_out = render("digits-held-out-fonts", 2000, HELD_OUT_FONTS, "val=0.5,test=0.5", seed=2)
    runs = CACHE / "runs"
    if args.tracking_ab:
        ab = tracking_ab(train_set, held_out, args.steps, runs / f"tracking-{time.strftime('%H%M%S')}")
        for name, values in ab.items():
            print(f"2 workers, {args.steps} steps, {name}: samples/s "
                  f"{', '.join(f'{r:.0f}' for r, _ in values)}; run wall "
                  f"{', '.join(f'{w:.1f}' for _, w in values)} s")
        tracked, plain = (statistics.median(r for r, _ in ab[k]) for k in ab)
        print(f"tracked / untracked samples/s: {tracked / plain:.3f}")
        return
    rate = {} if args.skip_throughput else {
        w: throughput(train_set, held_out, w, args.steps, runs) for w in (1, 2)}
    results = []
    if not args.throughput_only:
        lrs = {"fast": 2e-3, "crnn": 1e-3}
        # global steps/s, 2 workers (measured), only to space the validations: the schedule
        # follows --minutes itself (max_minutes)
        per_s = {"fast": 200 / args.width, "crnn": 25 / args.width}
        for preset in args.presets:
            expected = int(args.minutes * 60 * per_s.get(preset, 0.5))
            results.append(time_to_accuracy(preset, train_set, held_out, args.minutes, runs,
                                            lrs.get(preset, 1e-3), max(25, expected // 12),
                                            args.width, args.augment, args.ema))
    print(f"\n2 CPUs, local Ray; training fonts {TRAIN_FONTS}, held-out fonts {HELD_OUT_FONTS}")
    if rate:
        print(f"training samples/s, fast, batch 64 per worker: 1 worker {rate[1]:.0f}, "
              f"2 workers {rate[2]:.0f} ({rate[2] / rate[1]:.2f}x)")
    for r in results:
        hit = f"{r['to_99_s'] / 60:.1f} min (step {r['to_99_step']})" if r["to_99_s"] else "not reached"
        print(f"{r['preset']:6} 99% held-out word accuracy: {hit}; best val word acc "
              f"{r['best_val_word_acc']:.4f}; test word acc {r['test_word_acc']:.4f}, CER "
              f"{r['test_cer']:.4f} after {r['trained_s'] / 60:.1f} min / {r['steps']} steps")
    print(json.dumps({"throughput": rate, "time_to_accuracy": results}, indent=1))


if __name__ == "__main__":
    main()
