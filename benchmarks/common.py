"""Helpers shared by the benchmark scripts: data sets made on the fly, timing, memory."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

CACHE = Path(os.environ.get("OCR_BENCH_CACHE", "/tmp/ocr-bench"))
# Fonts of the training sets (scripts/setup.sh installs them) and of the held-out sets, which
# training never sees. Names are matched as substrings of the face names ("Go " is the Go family).
TRAIN_FONTS = ["DejaVu", "Nanum", "Noto", "Lato", "Open Sans", "Roboto", "Hack", "JetBrains", "Libertine",
               "Biolinum", "Go ", "Comic", "Cantarell", "Caladea"]
HELD_OUT_FONTS = ["Liberation"]
TRAIN_SET_TAG = f"{len(TRAIN_FONTS)}-families"   # in training sets' cache names: a new list renders anew


def make_line_set(root: Path, n: int, seed: int = 0) -> Path:
    """``n`` small grayscale PNG lines (about 100x32) and a gt file; reused when present."""
    gt = root / "gt.txt"
    if gt.exists() and sum(1 for _ in gt.open()) == n:
        return gt
    (root / "images").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    font = ImageFont.load_default(size=22)
    lines = []
    for i in range(n):
        text = "".join(rng.choice(list("0123456789"), size=int(rng.integers(1, 9))))
        img = Image.new("L", (16 + 13 * len(text), 32), int(rng.integers(200, 256)))
        ImageDraw.Draw(img).text((6, 3), text, fill=int(rng.integers(0, 80)), font=font)
        name = f"images/{i:06d}.png"
        img.save(root / name, "PNG")
        lines.append(f"{name}\t{text}")
    gt.write_text("\n".join(lines) + "\n")
    return gt


def make_page_set(root: Path, n: int, size=(3000, 2000), seed: int = 0) -> Path:
    """``n`` large JPEG pages with a few text lines; reused when present."""
    gt = root / "gt.txt"
    if gt.exists() and sum(1 for _ in gt.open()) == n:
        return gt
    (root / "images").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    font = ImageFont.load_default(size=60)
    lines = []
    for i in range(n):
        noise = rng.integers(215, 256, (size[1] // 8, size[0] // 8), dtype=np.uint8)
        img = Image.fromarray(noise).resize(size, Image.BILINEAR).convert("RGB")
        draw = ImageDraw.Draw(img)
        text = "".join(rng.choice(list("0123456789"), size=6))
        for k in range(12):
            draw.text((100, 100 + 150 * k), f"{text} line {k}", fill=(20, 20, 20), font=font)
        name = f"images/{i:05d}.jpg"
        img.save(root / name, "JPEG", quality=90)
        lines.append(f"{name}\t{text}")
    gt.write_text("\n".join(lines) + "\n")
    return gt


class PeakRSS:
    """Samples the summed RSS of this process tree (driver + Ray workers) in a thread."""

    def __init__(self, interval: float = 0.25):
        import psutil

        self.proc = psutil.Process()
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()

    def _sample(self) -> int:
        import psutil

        total = 0
        for p in [self.proc, *self.proc.children(recursive=True)]:
            try:
                total += p.memory_info().rss
            except psutil.Error:
                pass
        return total

    def __enter__(self):
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self._sample())
            time.sleep(self.interval)

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def run_json(args: list[str], timeout: float = 900, cores: str | None = None) -> dict:
    """Run a Python child that prints one JSON line last; returns it. ``cores`` pins the
    child and everything it starts to those CPUs (``taskset -c``)."""
    prefix = ["taskset", "-c", cores] if cores else []
    out = subprocess.run([*prefix, sys.executable, *args], capture_output=True, text=True,
                         timeout=timeout)
    if out.returncode != 0:
        raise RuntimeError(f"{args} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def png_bytes(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()
