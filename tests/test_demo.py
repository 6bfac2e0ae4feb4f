"""`make demo` in miniature: ``python -m ocr.demo`` as a subprocess, every step run, from an
empty folder with the demo's DEFAULT relative ``--out`` (outputs/demo), as a new user runs it.

Ray's workers do not run in the folder the demo was started from, so this checks that every
path the demo hands them was made absolute on the driver (a relative ``--out`` once made every
Ray Train worker miss the data). Tiny budgets keep it to a few minutes on 2 cores; the models
it trains read nothing useful, so only the plumbing and the printed report are checked.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# The demo's flags, shrunk: training budgets x0.03 (recogniser 5 s, detector 13 s, orientation
# 5 s; a run takes at least one step), 400 lines and 64 pages (2 of them in val: one per Ray
# Train worker), a 2-trial sweep of a few steps, no serving after the answer.
MINIATURE = ["--minutes", "0.03", "--lines", "400", "--pages", "64", "--sweep-steps", "6",
             "--serve-seconds", "0", "--num-cpus", "2"]
STEPS = [  # what each step header [N] says (the demo's numbering)
    "ocr read --lang digits", "starting a local Ray", "ocr synth", "ocr synth", "ocr export-lmdb",
    "ocr train recognition", "ocr train detection", "ocr train orientation", "ocr tune", "Ray Serve", "POST "]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_demo_runs_every_step_from_an_empty_folder(tmp_path):
    # The demo starts its own local Ray, as `make demo` does: not a cluster named by the
    # environment, and with its session files under a temp root of its own (short: Ray's
    # socket paths must stay under ~107 characters), not in the machine's shared /tmp/ray.
    ray_tmp = tempfile.mkdtemp(prefix="rd", dir="/tmp")
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAY_API_SERVER_ADDRESS")}
    env.update(RAY_TMPDIR=ray_tmp, RAY_USAGE_STATS_ENABLED="0", PYTHONUNBUFFERED="1")
    cmd = [sys.executable, "-m", "ocr.demo", *MINIATURE, "--port", str(_free_port())]  # no --out
    started = time.perf_counter()
    try:
        proc = subprocess.run(cmd, cwd=tmp_path, env=env, stdin=subprocess.DEVNULL, capture_output=True,
                              text=True, timeout=1100)
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)
    took = time.perf_counter() - started
    out = proc.stdout
    print(f"demo took {took:.0f}s\n{out}")
    assert proc.returncode == 0, (f"exit {proc.returncode}\n{out[-6000:]}\n--- stderr ---\n"
                                  f"{proc.stderr[-8000:]}")

    headers = re.findall(r"^\[(\d+)\] (.*)$", out, re.M)
    assert [int(n) for n, _ in headers] == list(range(1, len(STEPS) + 1)), headers
    for (n, title), expected in zip(headers, STEPS):
        assert expected in title, f"step [{n}] says {title!r}: expected {expected!r} in it"
    assert re.search(r"angle found [+-]\d+\.\d+ .*, \d+ lines:", out), out[-3000:]
    first = re.search(r"^\[1\] .*\n    angle found \+(\d+\.\d+) \(classical\), (\d) lines: (.*)\n"
                      r"    drawn: +(.*)$", out, re.M)
    assert first and abs(float(first[1]) - 5.0) < 0.5 and first[2] == "6", out[:3000]
    read, drawn = first[3].split(" | "), first[4].split(" | ")
    assert sum(a == b for a, b in zip(read, drawn)) >= 4, (read, drawn)   # the built-in reads it
    assert re.search(r"^done in \d+\.\d+ min; everything is under ", out, re.M), out[-3000:]

    demo = tmp_path / "outputs" / "demo"   # the default --out, taken from the working folder
    assert f"everything is under {demo}" in out or "everything is under outputs/demo" in out, out[-2000:]
    for name in ("recognizer", "detector", "orientation"):
        assert (demo / "models" / name / "model.json").is_file(), sorted(p.name for p in demo.iterdir())
