"""Synthetic text lines rendered into shards per second, on a local Ray.

    python benchmarks/synth_throughput.py [--count 8000] [--cpus 2]

Renders 32-pixel-high lines with the default augmentations (skew, blur, distortion,
backgrounds, grayscale) straight into Parquet shards as a Ray Data job, for digits (1-8)
and for Hangul (2-8 syllables). The first run of each text includes start-up (workers, imports, fonts);
the second is warm. Target: >= 500 lines/s on 2 cores.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1]))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--count", type=int, default=8000)
    ap.add_argument("--cpus", type=int, default=2)
    args = ap.parse_args()


    from ocr.data.config import SynthConfig
    from ocr.data.synth.job import synth
    from ocr.runtime import ensure_ray, stop_ray

    ensure_ray(args.cpus)
    out = tempfile.mkdtemp(prefix="bench-synth-")
    print(f"machine: {os.cpu_count()} cores, Ray with {args.cpus} CPUs; {args.count} lines a run")
    print(f"{'text':<22}{'run':<8}{'lines/s':>10}{'seconds':>10}")
    for text in ("digits:1-8", "random:hangul:2-8"):
        for run in ("first", "again"):
            cfg = SynthConfig(output=out, text=text, count=args.count, height=32, seed=1,
                              overwrite=True)
            start = time.perf_counter()
            manifest = synth(cfg, progress=False)
            seconds = time.perf_counter() - start
            written = manifest["counts"]["written"]
            assert written == args.count, manifest["counts"]
            print(f"{text:<22}{run:<8}{written / seconds:>10.0f}{seconds:>10.2f}")
    shutil.rmtree(out)
    stop_ray()


if __name__ == "__main__":
    main()
