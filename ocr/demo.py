"""The main job, run by ``make demo``: the data plane end to end on a local Ray.

1. render synthetic digit lines, Hangul/Latin lines and rotated pages into shards;
2. export the digits to a deep-text-recognition-benchmark LMDB (what old tools read);
3. ingest that LMDB back with ``ocr ingest``;
4. print every manifest summary and where everything was written.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from ocr import storage


def _step(n: int, title: str) -> float:
    print(f"\n[{n}] {title}", flush=True)
    return time.perf_counter()


def run(out: str, lines: int = 2000, pages: int = 40, num_cpus: int | None = None) -> None:
    from ocr.config import IngestConfig
    from ocr.data.ingest import ingest, summary_table
    from ocr.data.lmdb_export import export_lmdb
    from ocr.data.synth.job import SynthConfig, synth
    from ocr.runtime import ensure_ray

    started = time.perf_counter()
    t = _step(0, f"starting a local Ray ({num_cpus or os.cpu_count()} CPUs)")
    ensure_ray(num_cpus)
    print(f"    ready in {time.perf_counter() - t:.1f}s")

    jobs = [
        ("digits", SynthConfig(output=storage.join(out, "synth-digits"), text="digits:1-8",
                               count=lines, seed=1, overwrite=True)),
        ("korean", SynthConfig(output=storage.join(out, "synth-korean"), text="random:korean:2-8",
                               count=lines // 2, seed=2, overwrite=True)),
        ("pages", SynthConfig(output=storage.join(out, "synth-pages"), kind="page", text="digits:3-10",
                              count=pages, max_angle=10.0, image_format="jpeg", seed=3,
                              overwrite=True)),
    ]
    for i, (name, cfg) in enumerate(jobs, start=1):
        t = _step(i, f"ocr synth {name}: {cfg.count} {cfg.kind}s ({cfg.text}) -> {cfg.output}")
        manifest = synth(cfg)
        print(summary_table(manifest))
        print(f"    {manifest['counts']['written'] / (time.perf_counter() - t):.0f} samples/s")

    lmdb_dir = os.path.join(out, "lmdb-digits")
    t = _step(4, f"ocr export-lmdb -> {lmdb_dir} (deep-text-recognition-benchmark layout)")
    n = export_lmdb(storage.join(out, "synth-digits"), lmdb_dir)
    print(f"    {n} samples in {time.perf_counter() - t:.1f}s")

    t = _step(5, f"ocr ingest {lmdb_dir} -> {out}/ingested-digits")
    manifest = ingest(IngestConfig(inputs=[lmdb_dir], output=storage.join(out, "ingested-digits"),
                                   charset="digits", overwrite=True))
    print(summary_table(manifest))
    print(f"    {manifest['counts']['written'] / (time.perf_counter() - t):.0f} images/s")
    print(f"\ndone in {time.perf_counter() - started:.0f}s; everything is under {out}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--out", default="outputs/demo", help="output folder (local or s3://)")
    ap.add_argument("--lines", type=int, default=2000)
    ap.add_argument("--pages", type=int, default=40)
    ap.add_argument("--num-cpus", type=int, default=None)
    args = ap.parse_args(argv)
    run(args.out, args.lines, args.pages, args.num_cpus)
    return 0


if __name__ == "__main__":
    sys.exit(main())
