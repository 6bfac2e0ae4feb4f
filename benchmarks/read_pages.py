"""``ocr read`` against ``tesseract PAGE stdout`` on held-out pages, in one run: CER over each
page's text (its lines in reading order) and pages/s.

    python benchmarks/read_pages.py [--sets latin digits] [--pages 30] [--model latin=recipes/latin/model]

Pages (seeded, ``OUT/SET/page-NNN.png`` + ``.txt``): 6-14 lines of a held-out set's text
(``benchmarks/heldout_lines.py``'s mixes) in one of its held-out faces (fonts no recipe
trains on), 16-30 px lines, grey ink on a plain grey ground, turned by up to 6 degrees
either way (a scanner's skew).
Engines: the built-in recogniser of the set (and ``--model`` checkpoints) through
:class:`ocr.infer.PageReader` (classical skew and line finder), and Tesseract 5 (``--psm 3``,
automatic layout; digits limited to the digit set's symbols), all pages in one process.
Page CER: edit distance between the page texts (lines joined by newlines, whitespace runs
collapsed, blank lines dropped) over the reference's characters, summed over the pages.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from rapidfuzz.distance import Levenshtein

sys.path.insert(0, str(Path(__file__).resolve().parent))
from heldout_lines import HELD_OUT, SEED, TEXT, check_exclusion, models_for  # noqa: E402
from vs_tesseract import DIGIT_SYMBOLS, TESSERACT_LANG, normalise, run_tesseract  # noqa: E402

from ocr.checkpoint import builtin_names  # noqa: E402
from ocr.data.synth.fonts import find_fonts, fonts_covering  # noqa: E402
from ocr.data.synth.page import PageStyle, render_page  # noqa: E402
from ocr.data.synth.text import parse_text_source  # noqa: E402
from ocr.infer import PageReader  # noqa: E402

VERSION = "12-07b"
STYLE = PageStyle(font_size=(16, 30), line_gap=(1.2, 1.8), background="plain", grayscale=True)


def page_text(lines: list[str]) -> str:
    return "\n".join(t for t in (normalise(x) for x in lines) if t)


def render_pages(name: str, out: Path, count: int) -> list[tuple[Path, str]]:
    """The set's pages (kept when already rendered at this VERSION and count)."""
    root = out / name
    stamp = root / "VERSION"
    if not (stamp.is_file() and stamp.read_text().strip() == f"{VERSION} {count}"):
        root.mkdir(parents=True, exist_ok=True)
        source, rng = parse_text_source(TEXT[name]), np.random.default_rng([SEED, 7, len(name)])
        faces = [f for f in find_fonts() if f.matches(*HELD_OUT[name])]
        for i in range(count):
            font = faces[int(rng.integers(len(faces)))]
            lines = []
            for _ in range(int(rng.integers(6, 15))):
                line = next(t for t in (source.sample(rng) for _ in range(200)) if fonts_covering([font], t))
                lines.append(line)
            page = render_page(lines, [font], rng, size=(900, 1200), angle=float(rng.uniform(-6, 6)),
                               style=STYLE)
            page.image.convert("L").save(root / f"page-{i:03d}.png")
            (root / f"page-{i:03d}.txt").write_text(page_text(page.lines) + "\n", encoding="utf-8")
        stamp.write_text(f"{VERSION} {count}\n")
    return [(p, p.with_suffix(".txt").read_text("utf-8").rstrip("\n"))
            for p in sorted(root.glob("page-*.png"))[:count]]


def read_all(checkpoint: str, pages: list[Path]) -> tuple[list[dict], float]:
    """``PageReader.read_page`` of each page (decoded beforehand, after a warm-up), and seconds."""
    reader = PageReader.load(checkpoint)
    images = [Image.open(p).convert("L") for p in pages]
    reader.read_page(images[0])
    started = time.perf_counter()
    found = [reader.read_page(im) for im in images]
    return found, time.perf_counter() - started


def run_reader(checkpoint: str, pages: list[Path]) -> tuple[list[str], float]:
    found, seconds = read_all(checkpoint, pages)
    return [f["text"] for f in found], seconds


def page_cer(truth: list[str], read: list[str]) -> float:
    edits = sum(Levenshtein.distance(t, page_text(r.splitlines())) for t, r in zip(truth, read))
    return edits / max(1, sum(len(t) for t in truth))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pages", type=int, default=30, help="pages per set")
    parser.add_argument("--out", default="/tmp/ocr-bench/pages", help="folder of the page sets")
    parser.add_argument("--sets", nargs="+", default=list(TEXT), choices=list(TEXT), help="sets to run")
    parser.add_argument("--threads", type=int, default=2, help="torch threads for ocr read")
    parser.add_argument("--model", nargs="+", default=[], metavar="SET=CHECKPOINT",
                        help="also read SET with a recogniser not shipped yet (a recipe's OUT/model)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    check_exclusion()
    shipped = builtin_names()
    print(f"{'set':8} {'engine':22} {'page CER':>9} {'pages/s':>8}")
    for name in args.sets:
        pages = render_pages(name, Path(args.out), args.pages)
        paths, truth = [p for p, _ in pages], [t for _, t in pages]
        runs = ([(f"ocr read builtin:{name}", run_reader, (f"builtin:{name}", paths))]
                if name in shipped else [])
        runs += [(f"ocr read {Path(ckpt).parent.name}", run_reader, (ckpt, paths))
                 for ckpt in models_for(args.model, name)]
        runs.append((f"tesseract -l {TESSERACT_LANG[name]}", run_tesseract,
                     (TESSERACT_LANG[name], paths, DIGIT_SYMBOLS if name == "digits" else None, "3")))
        for engine, run, run_args in runs:
            read, seconds = run(*run_args)
            print(f"{name:8} {engine:22} {page_cer(truth, read):9.4f} {len(paths) / seconds:8.2f}",
                  flush=True)


if __name__ == "__main__":
    main()
