"""A sweep over learning rate and preset on synthetic digits, on the local Ray (2 CPUs).

    python benchmarks/tune_sweep.py [--samples 4] [--steps 120]
    python benchmarks/tune_sweep.py --resume bench-YYYYMMDD-HHMMSS   # continue an interrupted one

Reuses the digit lines of ``recognition_training.py`` ($OCR_BENCH_CACHE; rendered when
missing): 8 trials = presets {fast, crnn} x 4 log-uniform learning rates in [3e-4, 1e-2],
ASHA on validation CER (a validation every ``steps / 6`` steps). Prints the results table,
the best validation CER, the wall time, and the compute ASHA saved: the fraction of
training steps not run compared with running every trial to the end.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common import CACHE, HELD_OUT_FONTS, TRAIN_FONTS, TRAIN_SET_TAG  # noqa: E402
from recognition_training import render  # noqa: E402

from ocr.runtime import ensure_ray  # noqa: E402
from ocr.train.config import TrainConfig  # noqa: E402
from ocr.tune.config import SweepConfig  # noqa: E402
from ocr.tune.sweep import sweep  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=4, help="learning rates per preset")
    ap.add_argument("--steps", type=int, default=120, help="steps of a trial run to the end")
    ap.add_argument("--resume", default="", help="continue this interrupted sweep (its name)")
    args = ap.parse_args()
    ensure_ray(num_cpus=2, dashboard=True)
    train_set = render(f"digits-train-{TRAIN_SET_TAG}-40000", 40_000, TRAIN_FONTS, "train=1", seed=1)
    held_out = render("digits-held-out-fonts", 2000, HELD_OUT_FONTS, "val=0.5,test=0.5", seed=2)
    space = Path(tempfile.mkdtemp()) / "space.yaml"
    space.write_text("lr: {loguniform: [3.0e-4, 1.0e-2]}\nmodel: {grid: [fast, crnn]}\n")
    train_cfg = TrainConfig(data=str(train_set), val_data=str(held_out), batch_size=32,
                            max_steps=args.steps, val_every=max(1, args.steps // 6), log_every=20,
                            warmup_steps=20, augment=0.3)
    started = time.perf_counter()
    summary = sweep(SweepConfig(space=str(space), num_samples=args.samples, storage=str(CACHE / "sweeps"),
                                name=args.resume or f"bench-{time.strftime('%Y%m%d-%H%M%S')}",
                                resume=bool(args.resume)), train_cfg)
    wall = time.perf_counter() - started
    print(f"\n{len(summary['rows'])} trials on 2 CPUs: best val CER {summary['best_metric']:.4f}; "
          f"wall {wall / 60:.1f} min; ASHA ran {summary['steps_run']} of {summary['steps_full']} "
          f"steps ({100 * summary['saved_fraction']:.0f}% saved)")


if __name__ == "__main__":
    main()
