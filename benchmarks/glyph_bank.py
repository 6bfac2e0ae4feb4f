"""Glyph banks against fonts on a handwriting no font has: 40 crops per digit of a
procedural marker hand make a training set (``ocr synth --glyphs``); a model trained on it and
one trained on fonts alone, with the same budget, read lines of the same hand composed from
*other* crops of it.

    python benchmarks/glyph_bank.py [--steps 600] [--crops 40] [--count 6000] [--num-cpus 2]

The hand: each digit is a fixed stroke path; every crop redraws it with its own slant, size,
wobble, stroke width and ink, on a paper-grey cell (the kind of crops a team cuts from 50 of
its own forms). Both models train the same number of steps (a step budget, not minutes: the
comparison holds on a busy machine). Prints CER and line accuracy on 300 held-out lines.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from rapidfuzz.distance import Levenshtein

from ocr.data.config import SynthConfig
from ocr.data.synth.augment import STYLE_PRESETS, LineStyle
from ocr.data.synth.glyphs import GlyphBank, render_glyph_line
from ocr.data.synth.job import synth
from ocr.infer import LineReader
from ocr.train.config import TrainConfig
from ocr.train.run import train

# stroke paths of a marker hand, in a unit cell (x right, y down); one list per stroke
STROKES = {
    "0": [[(.5, .08), (.2, .25), (.15, .6), (.35, .92), (.7, .88), (.85, .5), (.75, .15), (.5, .08)]],
    "1": [[(.3, .3), (.6, .08), (.55, .92)]],
    "2": [[(.2, .25), (.45, .08), (.8, .22), (.7, .5), (.2, .92), (.85, .9)]],
    "3": [[(.2, .12), (.75, .15), (.45, .45), (.8, .65), (.6, .9), (.2, .85)]],
    "4": [[(.65, .92), (.62, .08), (.15, .65), (.88, .62)]],
    "5": [[(.8, .1), (.3, .1), (.25, .45), (.7, .45), (.8, .72), (.55, .92), (.2, .85)]],
    "6": [[(.75, .1), (.35, .35), (.2, .75), (.45, .92), (.75, .75), (.65, .52), (.25, .6)]],
    "7": [[(.15, .1), (.85, .1), (.4, .92)], [(.3, .5), (.7, .5)]],
    "8": [[(.5, .5), (.2, .28), (.5, .08), (.8, .28), (.5, .5), (.18, .72), (.5, .92), (.82, .72), (.5, .5)]],
    "9": [[(.75, .4), (.45, .5), (.2, .3), (.45, .08), (.75, .3), (.7, .92)]],
}


def draw_crop(digit: str, rng: np.random.Generator) -> Image.Image:
    w, h = int(rng.integers(18, 26)), 32
    img = Image.new("L", (w, h), int(rng.integers(205, 245)))
    slant, sx, sy = rng.uniform(-0.25, 0.25), rng.uniform(0.8, 1.05), rng.uniform(0.8, 1.0)
    ink, width = int(rng.integers(10, 80)), int(rng.integers(2, 4))
    for stroke in STROKES[digit]:
        pts = []
        for x, y in stroke:
            x, y = (x - 0.5) * sx + 0.5 + slant * (0.5 - y), (y - 0.5) * sy + 0.5
            pts.append((x * w + rng.normal(0, 0.7), y * h + rng.normal(0, 0.7)))
        ImageDraw.Draw(img).line(pts, fill=ink, width=width, joint="curve")
    return img


def make_bank(root: Path, crops: int, seed: int) -> Path:
    shutil.rmtree(root, ignore_errors=True)
    rng = np.random.default_rng(seed)
    for digit in STROKES:
        (root / digit).mkdir(parents=True)
        for i in range(crops):
            draw_crop(digit, rng).save(root / digit / f"{i:03d}.png")
    return root


def test_lines(bank_dir: Path, n: int, seed: int) -> tuple[list[bytes], list[str]]:
    import io

    bank, rng = GlyphBank.load(str(bank_dir)), np.random.default_rng(seed)
    style = LineStyle(**STYLE_PRESETS["scan"])
    images, labels = [], []
    for _ in range(n):
        text = "".join(str(d) for d in rng.integers(0, 10, int(rng.integers(3, 9))))
        buf = io.BytesIO()
        render_glyph_line(text, bank, 32, style, rng).save(buf, "PNG")
        images.append(buf.getvalue())
        labels.append(text)
    return images, labels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="/tmp/ocr-bench/glyph-bank", help="working folder")
    parser.add_argument("--crops", type=int, default=40, help="crops per digit in the bank (<= 50)")
    parser.add_argument("--count", type=int, default=6000, help="training lines per model")
    parser.add_argument("--steps", type=int, default=600, help="training steps per model (batches of 64)")
    parser.add_argument("--num-cpus", type=int, default=2, help="CPUs of the local Ray")
    args = parser.parse_args()
    out = Path(args.out)
    bank = make_bank(out / "bank", args.crops, seed=1)
    unseen = make_bank(out / "unseen", args.crops, seed=2)      # the same hand, other crops
    images, labels = test_lines(unseen, 300, seed=3)
    common = {"text": "digits:1-8", "count": args.count, "style": "real", "overwrite": True,
              "num_cpus": args.num_cpus, "charset": "digits"}
    sets = {"fonts only": SynthConfig(output=str(out / "fonts"), **common),
            "glyph bank": SynthConfig(output=str(out / "glyphs"), glyphs=str(bank), glyph_share=0.7,
                                      **common)}
    results = {}
    for name, cfg in sets.items():
        synth(cfg, progress=False)
        summary = train(TrainConfig(task="recognition", data=cfg.output, storage=str(out / "runs"),
                                    name=name.replace(" ", "-"), model="fast", width=160, num_workers=1,
                                    max_steps=args.steps, epochs=50, lr=2e-3, val_every=300,
                                    num_cpus=args.num_cpus))
        read = [t for t, _ in LineReader.load(summary["best"]).read(images)]
        edits = sum(Levenshtein.distance(a, b) for a, b in zip(labels, read))
        results[name] = (edits / sum(map(len, labels)), np.mean([a == b for a, b in zip(labels, read)]))
    print(f"\n{'model':12} {'CER':>7} {'line acc':>9}   (300 lines of the hand, crops unseen in training; "
          f"{args.crops} crops per digit, {args.steps} steps each)")
    for name, (cer, acc) in results.items():
        print(f"{name:12} {cer:7.4f} {acc:9.3f}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
