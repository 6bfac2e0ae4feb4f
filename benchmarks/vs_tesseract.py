"""The built-in recognisers against Tesseract 5 and RapidOCR, side by side in one run, on the
held-out line sets of ``benchmarks/heldout_lines.py`` (fonts no recipe trains on).

    python benchmarks/vs_tesseract.py [--setup] [--count 300] [--threads 2]

``--setup`` installs the baselines and the held-out fonts first (Debian: tesseract-ocr,
tesseract-ocr-kor, tesseract-ocr-eng, fonts-unfonts-core, fonts-baekmuk, fonts-dseg,
fonts-liberation2; PyPI: rapidocr-onnxruntime). The product never needs them.

Per set and engine: CER (edit distance over reference characters, whitespace runs collapsed),
line accuracy (exact match) and lines/s (the whole set, images decoded beforehand; Tesseract
reads the set in one process, ``--psm 7``: one line per image). Engines:

* ``builtin:NAME`` (``ocr.infer.LineReader``, batches of 64, ``--threads`` torch threads);
* Tesseract 5, ``-l kor`` / ``-l eng`` (digits: ``eng`` limited to the digit set's symbols);
* RapidOCR (PP-OCR's ONNX recogniser, Chinese/English) on the Latin and digit sets;
* ``--char-model SET=CHECKPOINT``: seed 003's second stage, a per-character detector
  (``ocr train detection --target char``) reading each line image as one line box.
"""

from __future__ import annotations

import argparse
import io
import shutil
import subprocess
import sys
import tempfile
import time
import unicodedata
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from rapidfuzz.distance import Levenshtein

sys.path.insert(0, str(Path(__file__).resolve().parent))
from heldout_lines import PARTS, TEXT, check_exclusion, models_for, render_set  # noqa: E402

from ocr.checkpoint import builtin_names  # noqa: E402
from ocr.infer import BoxReader, LineReader  # noqa: E402

APT = ["tesseract-ocr", "tesseract-ocr-kor", "tesseract-ocr-eng", "fonts-unfonts-core", "fonts-baekmuk",
       "fonts-dseg", "fonts-liberation2"]
TESSERACT_LANG = {"korean": "kor", "latin": "eng", "digits": "eng"}
BUILTINS = {"korean": ["korean"], "latin": ["latin", "korean"], "digits": ["digits"]}
RAPID_SETS = ("latin", "digits")
DIGIT_SYMBOLS = "0123456789 +-.,:/%"


def setup() -> None:
    sudo = [] if shutil.which("sudo") is None else ["sudo"]
    subprocess.run(sudo + ["apt-get", "install", "-y", "-q", *APT], check=True)
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "rapidocr-onnxruntime"], check=True)


def normalise(text: str) -> str:
    return " ".join(unicodedata.normalize("NFC", text).split())


def score(truth: list[str], read: list[str], seconds: float) -> dict:
    t, r = [normalise(x) for x in truth], [normalise(x) for x in read]
    edits = sum(Levenshtein.distance(a, b) for a, b in zip(t, r))
    return {"cer": edits / max(1, sum(len(a) for a in t)),
            "line_acc": sum(a == b for a, b in zip(t, r)) / len(t), "lines_s": len(t) / seconds}


def by_part(name: str, truth: list[str], read: list[str]) -> str:
    """Line accuracy per part of a set of several (the parts are consecutive runs of lines)."""
    parts = PARTS[name]
    if len(parts) < 2:
        return ""
    hits: dict[str, list[bool]] = {}
    for i, (a, b) in enumerate(zip(truth, read)):
        style, fonts = parts[i * len(parts) // len(truth)]
        hits.setdefault(f"{style} ({fonts[0]})", []).append(normalise(a) == normalise(b))
    return "  lines exact by part: " + ", ".join(f"{k} {sum(v)}/{len(v)}" for k, v in hits.items())


def load_set(gt: Path) -> tuple[list[Path], list[str]]:
    paths, labels = [], []
    for line in gt.read_text("utf-8").splitlines():
        name, _, label = line.partition("\t")
        paths.append(gt.parent / name)
        labels.append(label)
    return paths, labels


def run_builtin(checkpoint: str, paths: list[Path]) -> tuple[list[str], float]:
    reader = LineReader.load(checkpoint)
    data = [p.read_bytes() for p in paths]
    reader.read(data[:8])  # warm-up
    started = time.perf_counter()
    texts = [text for text, _ in reader.read(data)]
    return texts, time.perf_counter() - started


def run_tesseract(lang: str, paths: list[Path], whitelist: str | None,
                  psm: str = "7") -> tuple[list[str], float]:
    with tempfile.TemporaryDirectory() as tmp:
        listing = Path(tmp) / "list.txt"
        listing.write_text("\n".join(str(p) for p in paths) + "\n")
        cmd = ["tesseract", str(listing), "stdout", "--psm", psm, "-l", lang]
        if whitelist:
            cmd += ["-c", f"tessedit_char_whitelist={whitelist}"]
        started = time.perf_counter()
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
        seconds = time.perf_counter() - started
    pages = out.split("\f")[: len(paths)]
    return pages + [""] * (len(paths) - len(pages)), seconds


def run_rapidocr(paths: list[Path]) -> tuple[list[str], float]:
    from rapidocr_onnxruntime import RapidOCR

    engine = RapidOCR()
    images = [np.asarray(Image.open(io.BytesIO(p.read_bytes())).convert("RGB")) for p in paths]
    engine(images[0], use_det=False, use_cls=False, use_rec=True)
    started = time.perf_counter()
    texts = []
    for img in images:
        result, _ = engine(img, use_det=False, use_cls=False, use_rec=True)
        texts.append(result[0][0] if result else "")
    return texts, time.perf_counter() - started


def run_char_detector(checkpoint: str, paths: list[Path]) -> tuple[list[str], float]:
    reader = BoxReader.load(checkpoint)
    if reader.kind != "char":
        raise SystemExit(f"{checkpoint}: expected a char detector, found a {reader.target!r} one")
    pages = [Image.open(io.BytesIO(p.read_bytes())).convert("RGB") for p in paths]
    started = time.perf_counter()
    texts = [reader.lines(page, np.array([[0, 0, page.width, page.height]], np.float32))[0][1]
             for page in pages]
    return texts, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--setup", action="store_true",
                        help="install Tesseract, RapidOCR and the fonts first")
    parser.add_argument("--count", type=int, default=300, help="lines per held-out set")
    parser.add_argument("--out", default="/tmp/ocr-bench/heldout", help="folder of the held-out sets")
    parser.add_argument("--sets", nargs="+", default=list(TEXT), choices=list(TEXT), help="sets to run")
    parser.add_argument("--threads", type=int, default=2, help="torch threads for the built-ins")
    parser.add_argument("--model", nargs="+", default=[], metavar="SET=CHECKPOINT",
                        help="also read SET with a checkpoint not shipped yet (a recipe's OUT/model)")
    parser.add_argument("--char-model", nargs="+", default=[], metavar="SET=CHECKPOINT",
                        help="also read SET with a char detector, each line image one line box")
    args = parser.parse_args()
    if args.setup:
        setup()
    torch.set_num_threads(args.threads)
    check_exclusion()
    shipped = builtin_names()
    print(f"{'set':8} {'engine':18} {'CER':>8} {'line acc':>9} {'lines/s':>9}")
    for name in args.sets:
        paths, truth = load_set(render_set(name, Path(args.out), args.count))
        runs = [(f"builtin:{b}", run_builtin, (f"builtin:{b}", paths))
                for b in BUILTINS[name] if b in shipped]
        runs += [(Path(ckpt).parent.name or ckpt, run_builtin, (ckpt, paths))
                 for ckpt in models_for(args.model, name)]
        runs += [(f"chars {Path(ckpt).name}", run_char_detector, (ckpt, paths))
                 for ckpt in models_for(args.char_model, name)]
        whitelist = DIGIT_SYMBOLS if name == "digits" else None
        runs.append((f"tesseract -l {TESSERACT_LANG[name]}", run_tesseract,
                     (TESSERACT_LANG[name], paths, whitelist)))
        if name in RAPID_SETS:
            runs.append(("rapidocr", run_rapidocr, (paths,)))
        for engine, run, run_args in runs:
            read, seconds = run(*run_args)
            s = score(truth, read, seconds)
            print(f"{name:8} {engine:18} {s['cer']:8.4f} {s['line_acc']:9.3f} {s['lines_s']:9.1f}",
                  flush=True)
            if parts := by_part(name, truth, read):
                print(parts, flush=True)


if __name__ == "__main__":
    main()
