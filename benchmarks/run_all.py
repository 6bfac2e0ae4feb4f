"""Every benchmark, one after another, with the commands benchmarks/README.md reports
(``make bench``). Each one's output goes to the console and to ``--logs``/NAME.log.

    python benchmarks/run_all.py                   # all of them: about 2 hours on 2 cores
    python benchmarks/run_all.py serve tune        # those whose name contains a word given

Run it on a quiet machine: the figures are for the whole box.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

# name -> arguments (the commands of benchmarks/README.md's table)
BENCHMARKS: dict[str, list[str]] = {
    "ingest": ["ingest_throughput.py", "--n", "20000", "--pages", "120", "--repeats", "3"],
    "synth": ["synth_throughput.py", "--count", "8000"],
    "recognition-inference": ["recognition_inference.py", "--threads", "2"],
    "recognition-training": ["recognition_training.py", "--presets", "fast"],
    "detection-fps": ["detection_fps.py", "--threads", "2", "--presets", "ssdlite_mobilenetv2"],
    "detection-training": ["detection_training.py", "--minutes", "12", "--char-minutes", "6"],
    "orientation-training": ["orientation_training.py", "--minutes", "12"],
    "tune-sweep": ["tune_sweep.py"],
    "serve-load": ["serve_load.py", "--requests", "400", "--seconds", "15"],
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("only", nargs="*", help="run the benchmarks whose name contains one of these")
    ap.add_argument("--logs", default="benchmarks/logs")
    args = ap.parse_args()
    chosen = {k: v for k, v in BENCHMARKS.items() if not args.only or any(w in k for w in args.only)}
    if not chosen:
        sys.exit(f"no benchmark matches {args.only}: expected words from {sorted(BENCHMARKS)}")
    logs = Path(args.logs)
    logs.mkdir(parents=True, exist_ok=True)
    failed = []
    for name, argv in chosen.items():
        cmd = [sys.executable, str(HERE / argv[0]), *argv[1:]]
        print(f"\n=== {name}: python benchmarks/{' '.join(argv)}", flush=True)
        started = time.perf_counter()
        with open(logs / f"{name}.log", "w") as log:
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            for line in proc.stdout:
                sys.stdout.write(line)
                log.write(line)
            rc = proc.wait()
        print(f"=== {name}: exit {rc} after {(time.perf_counter() - started) / 60:.1f} min "
              f"(log: {logs / f'{name}.log'})", flush=True)
        if rc:
            failed.append(name)
    if failed:
        sys.exit(f"failed: {', '.join(failed)}")


if __name__ == "__main__":
    main()
