"""Pages scanned or photographed any way round: ``ocr read``'s orientation and page text
against Tesseract's (OSD, ``--psm 0``; text, ``--psm 1``: layout with OSD) on held-out text
pages, in one run.

    python benchmarks/orient_pages.py [--sets korean latin] [--pages 100] \
        [--model korean=recipes/korean/model]

Pages (seeded, ``OUT/orient-SET/page-NNN.png`` + ``.json``): 6-14 lines of a held-out set's
text (``benchmarks/heldout_lines.py``'s mixes) in one of its held-out faces (fonts no recipe
trains on), 16-30 px lines, grey ink on a plain grey ground; 70% of the pages are skewed
within +-45 degrees, 30% are turned by a quarter, half or three-quarter turn (and a scanner's
+-3 degrees). A page's angle = skew (in [-45, 45)) + orientation (0/90/180/270).
Engines: :class:`ocr.infer.PageReader` with the set's built-in recogniser (and ``--model``
checkpoints): the classical skew and axis of the lines, then which way up by reading, then
the page read; the classical estimate alone (skew and axis only); Tesseract 5 OSD, one
process per page (orientation only: it has no skew); Tesseract 5 reading the pages
(``--psm 1``, all pages in one process).
Figures: orientation accuracy over all pages, skew MAE (degrees, over the pages an engine got
the orientation of), page CER (``benchmarks/read_pages.py``'s: lines in reading order),
pages/s. Then blank and near-blank pages (``--blank``: plain, noisy, textured, unevenly lit,
folded or specked paper, ink a few grey levels from the paper; JPEG at quality 60): the share
each engine answers with no text.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from heldout_lines import HELD_OUT, SEED, TEXT, check_exclusion, models_for  # noqa: E402
from read_pages import STYLE, page_cer, page_text, read_all  # noqa: E402
from vs_tesseract import TESSERACT_LANG, run_tesseract  # noqa: E402

from ocr.checkpoint import builtin_names  # noqa: E402
from ocr.data.synth.fonts import find_fonts, fonts_covering  # noqa: E402
from ocr.data.synth.page import render_page  # noqa: E402
from ocr.data.synth.text import parse_text_source  # noqa: E402
from ocr.infer import PageDeskewer  # noqa: E402
from ocr.models.orientation import wrap  # noqa: E402

VERSION = "12-07d"
SETS = ("korean", "latin")
TURNED = 0.3          # the share of pages turned by a quarter, half or three-quarter turn
_TURN = {1: Image.Transpose.ROTATE_90, 2: Image.Transpose.ROTATE_180, 3: Image.Transpose.ROTATE_270}


def render_pages(name: str, out: Path, count: int) -> list[tuple[Path, dict]]:
    """The set's pages and their truth (kept when already rendered at this VERSION and count)."""
    root = out / f"orient-{name}"
    stamp = root / "VERSION"
    if not (stamp.is_file() and stamp.read_text().strip() == f"{VERSION} {count}"):
        root.mkdir(parents=True, exist_ok=True)
        source, rng = parse_text_source(TEXT[name]), np.random.default_rng([SEED, 11, len(name)])
        faces = [f for f in find_fonts() if f.matches(*HELD_OUT[name])]
        for i in range(count):
            font = faces[int(rng.integers(len(faces)))]
            lines = [next(t for t in (source.sample(rng) for _ in range(200)) if fonts_covering([font], t))
                     for _ in range(int(rng.integers(6, 15)))]
            quarters = int(rng.integers(1, 4)) if rng.random() < TURNED else 0
            skew = float(rng.uniform(-3, 3) if quarters else rng.uniform(-45, 45))
            sample = render_page(lines, [font], rng, size=(900, 1200), angle=skew, style=STYLE)
            page = sample.image.convert("L")
            if quarters:
                page = page.transpose(_TURN[quarters])   # PIL's ROTATE_90 turns counter-clockwise
            page.save(root / f"page-{i:03d}.png")
            truth = {"skew": skew, "orientation": 90 * quarters, "font": font.name,
                     "text": page_text(sample.lines)}
            (root / f"page-{i:03d}.json").write_text(json.dumps(truth) + "\n")
        stamp.write_text(f"{VERSION} {count}\n")
    paths = sorted(root.glob("page-*.png"))[:count]
    return [(p, json.loads(p.with_suffix(".json").read_text())) for p in paths]


BLANK_KINDS = ("plain", "noise", "gradient", "vignette", "texture", "specks", "fold", "faint")


def render_blank(out: Path, count: int) -> list[Path]:
    """Blank and near-blank pages, cycling through :data:`BLANK_KINDS` (kept when rendered)."""
    root = out / "blank"
    stamp = root / "VERSION"
    if not (stamp.is_file() and stamp.read_text().strip() == f"{VERSION} {count}"):
        root.mkdir(parents=True, exist_ok=True)
        rng = np.random.default_rng([SEED, 13])
        h, w = 1200, 900
        yy, xx = np.mgrid[0:h, 0:w] / np.array([h, w])[:, None, None]
        for i in range(count):
            kind, a = BLANK_KINDS[i % len(BLANK_KINDS)], np.full((h, w), rng.uniform(170, 250))
            if kind == "noise":
                a += rng.normal(0, rng.uniform(4, 12), (h, w))
            elif kind == "gradient":
                a -= rng.uniform(30, 80) * xx + rng.uniform(0, 40) * yy
            elif kind == "vignette":
                a -= rng.uniform(60, 160) * ((xx - 0.5) ** 2 + (yy - 0.5) ** 2)
            elif kind == "texture":
                coarse = rng.normal(0, 1, (h // 8, w // 8)).astype(np.float32)
                a += rng.uniform(5, 15) * np.asarray(Image.fromarray(coarse).resize((w, h), Image.BICUBIC))
            elif kind == "specks":
                for y, x in zip(rng.integers(0, h - 3, 40), rng.integers(0, w - 3, 40)):
                    a[y:y + 3, x:x + 3] -= 120
            elif kind == "fold":
                a[:, w // 2 - 2:w // 2 + 2] -= rng.uniform(20, 50)
            elif kind == "faint":   # a line of text 2-4 grey levels from the paper
                a = _faint_text(a, float(rng.uniform(2, 4)))
            Image.fromarray(np.clip(a, 0, 255).astype(np.uint8)).save(root / f"blank-{i:03d}.jpg", quality=60)
        stamp.write_text(f"{VERSION} {count}\n")
    return sorted(root.glob("blank-*.jpg"))[:count]


def _faint_text(a: np.ndarray, levels: float) -> np.ndarray:
    from PIL import ImageDraw

    from ocr.data.synth.fonts import find_fonts, load_font

    ink = Image.new("L", (a.shape[1], a.shape[0]), 0)
    font = load_font(next(f for f in find_fonts() if f.matches(*HELD_OUT["latin"])), 28)
    ImageDraw.Draw(ink).text((80, 120), "a faint line of text", fill=255, font=font)
    return a - levels * np.asarray(ink, np.float64) / 255


def run_reader(checkpoint: str, paths: list[Path]) -> tuple[list[dict], list[str], float]:
    found, seconds = read_all(checkpoint, paths)
    return found, [f["text"] for f in found], seconds


def run_classical(paths: list[Path]) -> tuple[list[dict], None, float]:
    deskewer = PageDeskewer.load(None)
    images = [Image.open(p).convert("L") for p in paths]
    started = time.perf_counter()
    found = [deskewer.estimate(im) for im in images]
    return found, None, time.perf_counter() - started


def run_tesseract_text(lang: str, paths: list[Path]) -> tuple[None, list[str], float]:
    texts, seconds = run_tesseract(lang, paths, None, "1")
    return None, texts, seconds


def run_osd(paths: list[Path]) -> tuple[list[dict], None, float]:
    """Tesseract's orientation: ``Rotate: R`` turns the page clockwise by R to upright it, so the
    page was turned counter-clockwise by R (no answer, e.g. too few characters: 0)."""
    found, started = [], time.perf_counter()
    for p in paths:
        out = subprocess.run(["tesseract", str(p), "stdout", "--psm", "0"], capture_output=True, text=True)
        m = re.search(r"^Rotate: (\d+)", out.stdout, re.M)
        found.append({"orientation": int(m.group(1)) % 360 if m else 0, "skew": None})
    return found, None, time.perf_counter() - started


def score(truth: list[dict], found: list[dict]) -> tuple[float, float | None]:
    right = [t["orientation"] == f["orientation"] % 360 for t, f in zip(truth, found)]
    errors = [abs(wrap(f["skew"] - t["skew"], 90.0)) for t, f, ok in zip(truth, found, right)
              if ok and f["skew"] is not None]
    return float(np.mean(right)), (float(np.mean(errors)) if errors else None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pages", type=int, default=100, help="pages per set")
    parser.add_argument("--out", default="/tmp/ocr-bench/pages", help="folder of the page sets")
    parser.add_argument("--sets", nargs="+", default=list(SETS), choices=list(SETS), help="sets to run")
    parser.add_argument("--threads", type=int, default=2, help="torch threads for ocr read")
    parser.add_argument("--model", nargs="+", default=[], metavar="SET=CHECKPOINT",
                        help="also read SET with a recogniser not shipped yet (a recipe's OUT/model)")
    parser.add_argument("--blank", type=int, default=40, help="blank and near-blank pages (0: none)")
    parser.add_argument("--no-tesseract", action="store_true", help="leave Tesseract out")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    check_exclusion()
    shipped = builtin_names()
    print(f"{'set':8} {'engine':28} {'orientation':>11} {'skew MAE':>9} {'page CER':>9} {'pages/s':>8}")
    for name in args.sets:
        pages = render_pages(name, Path(args.out), args.pages)
        paths, truth = [p for p, _ in pages], [t for _, t in pages]
        runs = [(f"ocr read builtin:{name}", run_reader, (f"builtin:{name}", paths))] * (name in shipped)
        runs += [(f"ocr read {Path(ckpt).parent.name}", run_reader, (ckpt, paths))
                 for ckpt in models_for(args.model, name)]
        runs.append(("classical (skew, axis)", run_classical, (paths,)))
        if not args.no_tesseract:
            runs += [("tesseract --psm 0 (OSD)", run_osd, (paths,)),
                     (f"tesseract -l {TESSERACT_LANG[name]} --psm 1", run_tesseract_text,
                      (TESSERACT_LANG[name], paths))]
        for engine, run, run_args in runs:
            found, texts, seconds = run(*run_args)
            accuracy, mae = score(truth, found) if found else (None, None)
            cer = page_cer([t["text"] for t in truth], texts) if texts else None
            print(f"{name:8} {engine:28} {_figure(accuracy, '.1%'):>11} {_figure(mae, '.3f'):>9} "
                  f"{_figure(cer, '.4f'):>9} {len(paths) / seconds:8.2f}", flush=True)
    if args.blank:
        blank_figures(args, [f"builtin:{n}" for n in args.sets if n in shipped]
                      + [m.partition("=")[2] for m in args.model])


def blank_figures(args, models: list[str]) -> None:
    paths = render_blank(Path(args.out), args.blank)
    print(f"\n{len(paths)} blank and near-blank pages: the share answered with no text")
    for checkpoint in models:
        found, _, seconds = run_reader(checkpoint, paths)
        print(f"  ocr read {checkpoint:30} {np.mean([f['no_text'] for f in found]):7.1%}  "
              f"({len(paths) / seconds:.1f} pages/s; angle 0 on all: {all(f['angle'] == 0 for f in found)})")
    if not args.no_tesseract:
        _, texts, _ = run_tesseract_text("eng", paths)
        print(f"  {'tesseract -l eng --psm 1':39} {np.mean([not t.strip() for t in texts]):7.1%}")


def _figure(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


if __name__ == "__main__":
    main()
