"""Held-out line sets for ``benchmarks/vs_tesseract.py``: realistic text and degradation in
fonts that no recipe trains on, rendered deterministically (same seed, same images).

    python benchmarks/heldout_lines.py [--out /tmp/ocr-bench/heldout] [--count 300]

Sets (``--count`` lines each, ``OUT/SET/images/*.png`` + ``OUT/SET/gt.txt``):

* ``korean``: lines of words with particles, English words, prices, dates, addresses, codes ...
  (``benchmarks/mixes/korean.yaml``: the ``korean`` mix without random syllables) in the Un and
  Baekmuk faces (``fonts-unfonts-core``, ``fonts-baekmuk``), the ``real`` style mix;
* ``latin``:  English lines (``benchmarks/mixes/latin.yaml``) in Liberation Sans / Serif / Mono;
* ``digits``: ``mix:digits`` lines, a quarter each printed (Liberation, scanned), on a screen
  (Liberation, the ``screen`` style), on a dot-matrix panel (Liberation) and seven-segment
  (DSEG7 Modern, ``fonts-dseg``).

A set already in OUT is kept when its ``VERSION`` and line count match.

Before rendering, :func:`check_exclusion` resolves every bundled recipe's font selection
(``ocr/recipes/*.yaml``) on this machine and stops when any held-out face is in it.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import numpy as np

from ocr.data.config import SynthConfig
from ocr.data.synth.augment import STYLE_MIXES, STYLE_PRESETS, LineStyle
from ocr.data.synth.fonts import find_fonts, fonts_covering
from ocr.data.synth.job import select_fonts
from ocr.data.synth.line import render_line
from ocr.data.synth.text import parse_text_source
from ocr.recipe import load_recipe, recipe_names

# held-out faces per set (substrings of face names), and the (style, fonts) parts of each set
HELD_OUT = {"korean": ["UnBatang", "UnDotum", "UnGraphic", "UnGungseo", "UnPilgi", "UnDinaru", "Baekmuk"],
            "latin": ["Liberation"],
            "digits": ["Liberation", "DSEG7 Modern"]}
PARTS = {"korean": [("real", HELD_OUT["korean"])],
         "latin": [("real", ["Liberation"])],
         "digits": [("scan", ["Liberation"]), ("screen", ["Liberation"]), ("dot-matrix", ["Liberation"]),
                    ("none", ["DSEG7 Modern"])]}
MIXES = Path(__file__).resolve().parent / "mixes"
# the recipes' mixes without their random syllables and letters (benchmarks/mixes/)
TEXT = {"korean": f"mix:{MIXES / 'korean.yaml'}", "latin": f"mix:{MIXES / 'latin.yaml'}",
        "digits": "mix:digits"}
SEED = 20261207
# the sets' version: figures are comparable only between runs on the same one. 12-07b: the Un
# faces are in the Korean set (font names are matched ignoring spaces: "UnBatang" had matched no
# "Un Batang" face, so 12-07 was Baekmuk only) and the digits set has a dot-matrix quarter. The
# Latin set is 12-07's, line for line.
VERSION = "12-07b"


def models_for(specs: list[str], name: str) -> list[str]:
    """The checkpoints of ``--model SET=CHECKPOINT`` arguments that are for set ``name``."""
    return [ckpt for set_name, _, ckpt in (s.partition("=") for s in specs) if set_name == name]


def held_out_faces() -> set[str]:
    names = {n for names in HELD_OUT.values() for n in names}
    return {f.name for f in find_fonts() if f.matches(*names)}


def check_exclusion() -> None:
    """Stop when a bundled recipe would train on a held-out face (or none is installed)."""
    held = held_out_faces()
    if not held:
        sys.exit("no held-out font is installed: apt-get install fonts-unfonts-core fonts-baekmuk "
                 "fonts-dseg fonts-liberation2 (benchmarks/vs_tesseract.py --setup does)")
    for name in recipe_names():
        section = load_recipe(name)["synth"]
        trained = {f.name for f in select_fonts(SynthConfig(output="/tmp/unused", **section))}
        leaked = sorted(trained & held)
        if leaked:
            sys.exit(f"recipe {name} trains on held-out faces {leaked}: add them to its font_exclude")
    print(f"held-out faces ({len(held)}) are in no recipe's fonts ({', '.join(recipe_names())}): checked")


def _with_dots(style: LineStyle, p: float) -> LineStyle:
    return dataclasses.replace(style, degradation=dataclasses.replace(style.degradation, dot_matrix_p=p))


def _style(name: str, rng) -> LineStyle:
    """The style of one line: ``dot-matrix`` (the ``screen`` preset, every line a panel of dots),
    else a preset or one drawn from a mix, without dot-matrix panels (the print sets read print;
    dots are the digits set's own part)."""
    if name == "dot-matrix":
        return LineStyle(**STYLE_PRESETS["dot-matrix"])
    styles = STYLE_MIXES.get(name, (name,))
    return _with_dots(LineStyle(**STYLE_PRESETS[styles[int(rng.integers(len(styles)))]]), 0.0)


def render_set(name: str, out: Path, count: int) -> Path:
    """Render one set (kept when its gt.txt already has ``count`` lines)."""
    root = out / name
    gt, stamp = root / "gt.txt", root / "VERSION"
    if (gt.is_file() and len(gt.read_text("utf-8").splitlines()) == count
            and stamp.is_file() and stamp.read_text().strip() == VERSION):
        return gt
    (root / "images").mkdir(parents=True, exist_ok=True)
    source = parse_text_source(TEXT[name])
    rng = np.random.default_rng([SEED, len(name)])
    rows, parts = [], PARTS[name]
    installed = find_fonts()
    part_fonts = [[f for f in installed if f.matches(*wanted)]
                  for _, wanted in parts]
    for i in range(count):
        part = i * len(parts) // count
        style_name, fonts = parts[part][0], part_fonts[part]
        for _ in range(200):
            text = source.sample(rng)
            usable = fonts_covering(fonts, text)
            if usable:
                break
        font = usable[int(rng.integers(len(usable)))]
        img = render_line(text, font, 32, _style(style_name, rng), rng)
        img.save(root / "images" / f"{i:04d}.png")
        rows.append(f"images/{i:04d}.png\t{text}")
    gt.write_text("\n".join(rows) + "\n", encoding="utf-8")
    stamp.write_text(VERSION + "\n")
    return gt


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="/tmp/ocr-bench/heldout", help="folder for the sets")
    parser.add_argument("--count", type=int, default=300, help="lines per set")
    parser.add_argument("--sets", nargs="+", default=list(TEXT), choices=list(TEXT), help="sets to render")
    args = parser.parse_args()
    check_exclusion()
    for name in args.sets:
        print(f"{name}: {render_set(name, Path(args.out), args.count)}")


if __name__ == "__main__":
    main()
