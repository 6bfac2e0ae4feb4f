"""``ocr read``: pages and lines read in-process (no Ray, no Serve) with the built-in models."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image, ImageDraw

from ocr.data.synth.fonts import find_fonts, load_font
from ocr.data.synth.page import render_page
from ocr.infer.layout import find_lines, text_by_rows

LINES = ["12 345 678", "2026-12-07 14:30", "12,500", "98.6%", "+82 10-1234-5678"]


@pytest.fixture(scope="module")
def dejavu():
    fonts = [f for f in find_fonts() if f.matches("DejaVu Sans") and not f.matches("Mono", "Light",
                                                                                   "Oblique", "Condensed")]
    assert fonts, "DejaVu Sans is installed by scripts/setup.sh"
    return fonts


@pytest.fixture(scope="module")
def digit_page(tmp_path_factory, dejavu):
    """A page of digit lines in DejaVu Sans, turned by 3 degrees, as a scanner leaves it."""
    sample = render_page(LINES, dejavu[:1], np.random.default_rng(5), size=(640, 480), angle=3.0)
    assert sample.lines == LINES
    path = tmp_path_factory.mktemp("pages") / "page.png"
    sample.image.save(path)
    return path


def ocr(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ocr.cli", *args], capture_output=True, text=True,
                          timeout=120)


def text_page(lines: list[tuple[int, int, str]], size=(600, 300), ink=20, paper=235) -> Image.Image:
    """Lines of DejaVu Sans at (x, y) on a plain page."""
    page = Image.new("L", size, paper)
    draw = ImageDraw.Draw(page)
    font = load_font(next(f for f in find_fonts() if f.name == "DejaVu Sans"), 22)
    for x, y, text in lines:
        draw.text((x, y), text, fill=ink, font=font)
    return page


def test_read_prints_a_page_in_reading_order_without_ray(digit_page):
    out = ocr("read", "--lang", "digits", str(digit_page))
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.splitlines() == LINES
    code = ("import sys; from ocr.cli import main; main(['read', '--lang', 'digits', sys.argv[1]]); "
            "print('imported:', sorted(m for m in sys.modules if m in ('ray', 'ocr.serve', 'ocr.train')))")
    out = subprocess.run([sys.executable, "-c", code, str(digit_page)], capture_output=True, text=True)
    assert out.stdout.splitlines()[-1] == "imported: []", out.stderr[-2000:]


def test_read_json_has_lines_boxes_angle_and_timings(digit_page):
    out = ocr("read", "--lang", "digits", "--json", str(digit_page))
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout)
    assert result["image"] == str(digit_page) and result["text"].splitlines() == LINES
    assert [ln["text"] for ln in result["lines"]] == LINES and not result["no_text"]
    tops = [ln["box"][1] for ln in result["lines"]]
    assert tops == sorted(tops)
    assert all(0 < ln["confidence"] <= 1 and len(ln["box"]) == 4 for ln in result["lines"])
    assert abs(result["angle"] - 3.0) < 0.5 and result["orientation"] == 0
    assert set(result["timings_ms"]) == {"deskew", "lines", "recognize"}
    assert result["size"] == [640, 480] and result["seconds"] > 0


def test_read_lines_blank_pages_and_bad_files(tmp_path, dejavu):
    line = text_page([(4, 4, "2026-12-07")], size=(160, 34))
    line.save(tmp_path / "line.png")
    Image.new("L", (400, 300), 230).save(tmp_path / "blank.png")
    Image.new("L", (400, 300), 200).save(tmp_path / "faint.png")
    faint = np.full((300, 400), 200, np.uint8)
    faint[100:110, 50:300] = 190             # a smudge 10 grey levels off the paper
    Image.fromarray(faint).save(tmp_path / "faint.png")
    (tmp_path / "junk.png").write_text("not an image")
    out = ocr("read", "--lang", "digits", "--lines", str(tmp_path / "line.png"))
    assert out.returncode == 0 and out.stdout == f"{tmp_path / 'line.png'}\t2026-12-07\n", out.stderr
    out = ocr("read", "--lang", "digits", "--json", str(tmp_path / "blank.png"), str(tmp_path / "faint.png"))
    blank, faint = (json.loads(line) for line in out.stdout.splitlines())
    for result in (blank, faint):
        assert result["no_text"] and result["lines"] == [] and result["text"] == ""
        assert result["angle"] == 0.0 and result["orientation_confidence"] == 0.0
    out = ocr("read", "--lang", "digits", str(tmp_path / "blank.png"), str(tmp_path / "junk.png"))
    assert out.returncode == 1 and "(no text)" in out.stdout
    assert "junk.png: not an image: expected one of PNG" in out.stderr and "Traceback" not in out.stderr


def test_read_refuses_what_it_cannot_load(tmp_path, digit_page):
    out = ocr("read", "--lang", "korean", "--recognizer", "builtin:nosuch", str(digit_page))
    assert out.returncode == 2 and "expected one of the built-in models" in out.stderr
    out = ocr("read", "--lang", "digits", "--detector", "builtin:digits", str(digit_page))
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr[-2000:]
    assert "detection" in out.stderr and "recognition" in out.stderr


def test_find_lines_columns_order_and_polarity():
    page = text_page([(20, 20, "Total"), (420, 20, "12,500"), (20, 70, "second line here"),
                      (20, 120, "third"), (300, 121, "right")])
    boxes = find_lines(page)
    assert len(boxes) == 5
    lefts = boxes[:, 0].round().astype(int).tolist()
    assert lefts[:2] == sorted(lefts[:2]) and lefts[1] > 400          # a row: left, then right
    assert boxes[2, 1] > boxes[1, 3] - 5 and boxes[4, 0] > boxes[3, 2]
    assert all(box[3] - box[1] < 30 for box in boxes)                 # one line per box
    dark = Image.eval(page, lambda v: 255 - v)                        # light text on a dark screen
    assert np.allclose(find_lines(dark), boxes, atol=1)
    tight = text_page([(20, 20, "line one"), (20, 40, "line two"), (20, 60, "line three")])
    assert len(find_lines(tight)) == 3                                # bands that touch are cut
    assert len(find_lines(Image.new("L", (300, 200), 128))) == 0


def test_read_help_names_every_flag():
    out = ocr("read", "--help")
    for flag in ("--lang", "--recognizer", "--detector", "--deskewer", "--lines", "--json"):
        assert flag in out.stdout


def test_a_row_of_boxes_is_one_line_of_text():
    """A receipt's item and its price are two boxes (a wide gap) but one line of the text."""
    lines = [{"box": [10, 10, 90, 30], "text": "Milk 2L"}, {"box": [300, 11, 350, 31], "text": "3.49"},
             {"box": [10, 50, 80, 70], "text": "Bread"}, {"box": [300, 52, 350, 71], "text": ""},
             {"box": [12, 90, 200, 110], "text": "Thank you!"}]
    assert text_by_rows(lines) == "Milk 2L 3.49\nBread\nThank you!"
    assert [ln["row"] for ln in lines] == [0, 0, 1, 1, 2]
    assert text_by_rows([]) == ""


PROSE = ["Opening hours: Monday to Friday", "Please keep your receipt", "Total due 42.50 USD",
         "Thank you for shopping with us", "Returns within 30 days"]


@pytest.mark.parametrize("quarters", [0, 1, 2, 3])
def test_a_page_turned_any_way_reads_upright(dejavu, quarters):
    """The classical estimate finds the skew and the axis of the lines; reading the longest
    lines both ways tells which way up (a quarter turn from 90 to 270 and a half turn alike)."""
    from ocr.infer import PageReader

    sample = render_page(PROSE, dejavu[:1], np.random.default_rng(9), size=(640, 480), angle=-4.0)
    page = sample.image.rotate(90 * quarters, expand=True)
    result = PageReader.load("builtin:latin").read_page(page)
    assert result["orientation"] == 90 * quarters and abs(result["skew"] + 4.0) < 0.5, result
    read = result["text"].splitlines()
    # upright: every line reads close to its text (a line read upside down is junk, CER ~1);
    # how close is the shipped model's business, not this test's
    from rapidfuzz.distance import Levenshtein

    assert len(read) == len(PROSE), read
    assert all(Levenshtein.normalized_distance(a, b) < 0.2 for a, b in zip(read, PROSE)), read
    assert "which_way_up" in result["timings_ms"]


def test_which_way_up_takes_a_margin_most_lines_and_letters():
    from ocr.charset import Charset
    from ocr.infer.which_way_up import tells_which_way_up, upside_down

    assert upside_down([0.01] * 4, [0.5] * 4)                      # 3.9 nats a line, every line
    assert not upside_down([0.5] * 4, [0.9] * 4)                   # 0.6 nats a line: a tie
    assert not upside_down([0.5, 0.5, 0.5], [1.0, 1e-3, 1e-3]) and not upside_down([0.5, 0.5, 0.5],
                                                                                   [1e-9, 0.9, 0.9])
    assert not upside_down([], [])
    assert not tells_which_way_up(Charset.from_string("0123456789 +-.,:/%"))   # 6 and 9 swap
    assert tells_which_way_up(Charset.from_string("abcdefghijklmnopqrstuvwxyz0123456789"))
