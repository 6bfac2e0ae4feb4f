"""Synthetic rendering: fonts and glyph coverage, text sources, line styles, pages and boxes."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from ocr.charset import load_charset
from ocr.data.formats.base import Box
from ocr.data.synth.augment import LineStyle
from ocr.data.synth.fonts import FontInfo, coverage, find_fonts, fonts_covering, load_font
from ocr.data.synth.line import render_line
from ocr.data.synth.page import PageStyle, expanded_size, render_page, rotate_boxes
from ocr.data.synth.text import parse_text_source

DEJAVU = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")
NANUM = Path("/usr/share/fonts/truetype/nanum/NanumGothic.ttf")
NOTO_TTC = Path("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc")


def _font(path: Path) -> FontInfo:
    if not path.is_file():
        pytest.skip(f"system font {path} is not installed (scripts/setup.sh installs it)")
    return FontInfo(str(path), 0, path.stem)


@pytest.fixture(scope="module")
def dejavu() -> FontInfo:
    return _font(DEJAVU)


@pytest.fixture(scope="module")
def nanum() -> FontInfo:
    return _font(NANUM)


def _gray(im: Image.Image) -> np.ndarray:
    return np.asarray(im.convert("L"), dtype=np.float32)


# --- fonts -----------------------------------------------------------------------------------

def test_find_fonts_sorted_every_ttc_face_and_unparsable_skipped(tmp_path, dejavu):
    shutil.copy(DEJAVU, tmp_path / "b.ttf")
    (tmp_path / "a.ttf").write_bytes(b"not a font at all")
    (tmp_path / "notes.txt").write_text("ignored")
    found = find_fonts([str(tmp_path)])
    assert [(Path(f.path).name, f.index) for f in found] == [("b.ttf", 0)]
    assert "DejaVu" in found[0].name
    assert coverage(FontInfo(str(tmp_path / "a.ttf"))) == frozenset()
    from fontTools.ttLib import TTFont

    keycaps = TTFont(str(DEJAVU))  # a face that draws characters on keycaps is no text font
    keycaps["name"].setName("Linux Biolinum Keyboard O", 4, 3, 1, 0x409)
    keycaps.save(str(tmp_path / "c.ttf"))
    assert [Path(f.path).name for f in find_fonts([str(tmp_path)])] == ["b.ttf"]

    system = find_fonts([str(DEJAVU.parent)])
    assert system == sorted(system, key=lambda f: (f.path, f.index)) and len(system) > 3
    if NOTO_TTC.is_file():
        faces = find_fonts([str(NOTO_TTC)])
        assert [f.index for f in faces] == list(range(len(faces))) and len(faces) > 1
        assert len({f.name for f in faces}) == len(faces)


def test_coverage_is_cmap_based_and_cached(dejavu, nanum):
    assert coverage(dejavu) is coverage(dejavu)  # parsed once per process
    assert ord("A") in coverage(dejavu) and ord("한") not in coverage(dejavu)
    assert {ord(c) for c in "한국어"} <= coverage(nanum)
    assert fonts_covering([dejavu, nanum], "한국어 123") == [nanum]
    assert fonts_covering([dejavu, nanum], "123 45") == [dejavu, nanum]
    assert fonts_covering([dejavu, nanum], "   ") == [dejavu, nanum]
    assert load_font(dejavu, 20) is load_font(dejavu, 20)


# --- text sources ----------------------------------------------------------------------------

def test_text_sources_parse_and_sample(tmp_path):
    rng = np.random.default_rng(0)
    digits = parse_text_source("digits:2-4")
    samples = [digits.sample(rng) for _ in range(200)]
    assert all(s.isdigit() and 2 <= len(s) <= 4 for s in samples)
    assert {len(s) for s in samples} == {2, 3, 4} and digits.symbols() == "0123456789"

    latin = parse_text_source("random:latin:3-10")
    allowed = set(load_charset("latin").symbols)
    for s in (latin.sample(rng) for _ in range(300)):
        assert 3 <= len(s) <= 10 and set(s) <= allowed and s == s.strip()
    assert " " in latin.symbols()

    hangul = parse_text_source("random:hangul:2-6")
    syllables = set(load_charset("hangul").symbols)
    assert all(set(hangul.sample(rng)) <= syllables for _ in range(50))
    assert parse_text_source("digits:5").sample(rng).isdigit()

    words = tmp_path / "words.txt"
    words.write_text("안녕하세요\n\n 한국어  문장 \nOCR\n", encoding="utf-8")
    lines = parse_text_source(f"file:{words}")
    assert {lines.sample(rng) for _ in range(100)} == {"안녕하세요", "한국어 문장", "OCR"}
    phrase = parse_text_source(f"words:{words}:2-3")
    tokens = {"안녕하세요", "한국어", "문장", "OCR"}
    for s in (phrase.sample(rng) for _ in range(50)):
        assert 2 <= len(s.split(" ")) <= 3 and set(s.split(" ")) <= tokens
    assert set(phrase.symbols()) == set("안녕하세요한국어문장OCR ")

    a, b = np.random.default_rng(5), np.random.default_rng(5)
    assert [latin.sample(a) for _ in range(5)] == [latin.sample(b) for _ in range(5)]


@pytest.mark.parametrize("spec, found", [
    ("digits", "expected"), ("digits:a-b", "'a-b'"), ("digits:5-2", "5-2"),
    ("digits:0-3", "0-3"), ("random:latin", "CHARSET:MIN-MAX"), ("random:klingon:1-3", "klingon"),
    ("file:/no/such/words.txt", "cannot read"), ("file:", "no path"),
    ("words:/tmp/x.txt", "PATH:MIN-MAX"), ("poem:1-3", "unknown kind 'poem'"), ("", "expected"),
])
def test_bad_text_source_specs(spec, found):
    with pytest.raises(ValueError, match="expected|cannot|unknown") as err:
        parse_text_source(spec)
    assert found in str(err.value)


def test_empty_word_file_is_an_error(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("\n  \n", encoding="utf-8")
    with pytest.raises(ValueError, match="non-empty line"):
        parse_text_source(f"file:{empty}")


# --- lines -----------------------------------------------------------------------------------

def test_render_line_size_mode_and_missing_glyph(dejavu, nanum):
    rng = np.random.default_rng(0)
    for height in (32, 48):
        im = render_line("12345678", dejavu, height, LineStyle(), rng)
        assert im.height == height and im.mode == "RGB" and 2 * height < im.width < 12 * height
    assert render_line("한국어", nanum, 32, LineStyle(grayscale=True), rng).mode == "L"
    assert render_line("42", dejavu, 32, LineStyle(width=200), rng).size == (200, 32)
    assert render_line("0123456789" * 5, dejavu, 32, LineStyle(width=100), rng).size == (100, 32)
    with pytest.raises(ValueError, match="no glyph for '한'"):
        render_line("12한", dejavu, 32, LineStyle(), rng)
    with pytest.raises(ValueError, match="blank"):
        render_line("   ", dejavu, 32, LineStyle(), rng)
    with pytest.raises(ValueError, match="margins"):
        render_line("12", dejavu, 32, LineStyle(margins=(15, 0, 15, 0)), rng)


def test_render_line_is_deterministic(dejavu, nanum):
    for font, text in ((dejavu, "0123-45.6"), (nanum, "한국어 문장")):
        style = LineStyle(distortion="random", distortion_orientation="both",
                          background="random", character_spacing=(-1, 3))
        a = render_line(text, font, 32, style, np.random.default_rng(7))
        b = render_line(text, font, 32, style, np.random.default_rng(7))
        c = render_line(text, font, 32, style, np.random.default_rng(8))
        assert a.tobytes() == b.tobytes() and a.size == b.size
        assert a.size != c.size or a.tobytes() != c.tobytes()


OPTIONS = [
    {"skew_angle": 5.0}, {"random_skew": 8.0}, {"blur": 1.5}, {"random_blur": 2.0},
    *({"distortion": d, "distortion_orientation": o}
      for d in ("sine", "cosine", "random") for o in ("vertical", "horizontal", "both")),
    {"character_spacing": 4}, {"character_spacing": -2}, {"character_spacing": (2, 6)},
    {"margins": (4, 8, 4, 8)}, {"margins": ((0, 6), (0, 10), (0, 6), (0, 10))},
    {"width": 300}, {"width": 300, "alignment": "center"}, {"width": 300, "alignment": "right"},
    {"background": "noise"}, {"background": "texture"},
    {"text_color": (200, 0, 0)}, {"background_color": (0, 0, 90)},
    {"text_color": None, "background_color": None}, {"grayscale": True},
]


@pytest.mark.parametrize("option", OPTIONS, ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()))
def test_every_line_option_runs_and_changes_pixels(dejavu, option):
    base = render_line("2024-06", dejavu, 32, LineStyle.clean(), np.random.default_rng(3))
    styled = render_line("2024-06", dejavu, 32, LineStyle.clean(**option), np.random.default_rng(3))
    assert styled.height == 32
    assert styled.size != base.size or styled.tobytes() != base.tobytes()


def test_alignments_differ_and_bad_style_values_are_refused(dejavu):
    ims = [render_line("7", dejavu, 32, LineStyle.clean(width=120, alignment=a),
                       np.random.default_rng(0)) for a in ("left", "center", "right")]
    cols = [int(np.argmin(_gray(im).min(axis=0))) for im in ims]  # first inked column
    assert cols[0] < cols[1] < cols[2]
    for bad in ({"distortion": "wave"}, {"background": "photo"}, {"alignment": "justify"},
                {"margins": (1, 2)}, {"min_contrast": 200}):
        with pytest.raises(ValueError, match="expected"):
            LineStyle(**bad)


def test_random_colours_keep_the_text_legible(dejavu):
    style = LineStyle(random_skew=0, random_blur=0, background="plain")
    for seed in range(25):
        g = _gray(render_line("88", dejavu, 32, style, np.random.default_rng(seed)))
        assert g.max() - g.min() >= 0.9 * style.min_contrast


# --- pages -----------------------------------------------------------------------------------

PAGE_LINES = ["Invoice 2024-06-01", "한국어 문장입니다", "Total: 12,345 KRW", "끝"]
BLACK_ON_WHITE = PageStyle(background="plain", text_color=(0, 0, 0),
                           background_color=(255, 255, 255), font_size=(16, 24))


def _check_inside(boxes: list[Box], size) -> None:
    for b in boxes:
        assert 0 <= b.x0 < b.x1 <= size[0] and 0 <= b.y0 < b.y1 <= size[1], b


def test_page_boxes_inside_image_and_on_ink(dejavu, nanum):
    page = render_page(PAGE_LINES, [dejavu, nanum], np.random.default_rng(1), size=(360, 240),
                       style=BLACK_ON_WHITE)
    g = _gray(page.image)
    assert page.image.size == (360, 240) and page.angle == 0.0 and page.lines == PAGE_LINES
    _check_inside(page.boxes, page.image.size)
    by = {k: [b for b in page.boxes if b.label == k] for k in ("line", "word", "char")}
    assert [b.text for b in by["line"]] == PAGE_LINES
    assert [b.text for b in by["word"]] == " ".join(PAGE_LINES).split()
    assert "".join(b.text for b in by["char"]) == "".join(" ".join(PAGE_LINES).split())
    for b in page.boxes:
        region = g[int(b.y0): int(np.ceil(b.y1)), int(b.x0): int(np.ceil(b.x1))]
        assert region.min() < 100 and region.mean() < 250, b  # darker than the white page
    ink = g < 128
    covered = np.zeros_like(ink)
    for b in by["line"]:
        covered[int(b.y0): int(np.ceil(b.y1)), int(b.x0): int(np.ceil(b.x1))] = True
    assert not (ink & ~covered).any()


def test_page_lines_need_a_covering_font(dejavu):
    with pytest.raises(ValueError, match="한"):
        render_page(["abc", "한글"], [dejavu], np.random.default_rng(0), size=(200, 100))


def test_rotate_boxes_by_90_degrees():
    boxes = [Box(10, 5, 30, 15, "word", "hi")]
    (r,) = rotate_boxes(boxes, 90, (100, 50), (50, 100))
    assert (r.x0, r.y0, r.x1, r.y1) == pytest.approx((5, 70, 15, 90)) and r.text == "hi"
    im = Image.new("L", (100, 50))
    ImageDraw.Draw(im).rectangle((10, 5, 29, 14), fill=255)  # pixels [10, 30) x [5, 15)
    assert im.rotate(90, expand=True).getbbox() == (5, 70, 15, 90)
    assert expanded_size((100, 50), 90) == (50, 100)
    (same,) = rotate_boxes(boxes, 0, (100, 50))
    assert (same.x0, same.y0, same.x1, same.y1) == (10, 5, 30, 15)
    (flip,) = rotate_boxes(boxes, 180, (100, 50))
    assert (flip.x0, flip.y0, flip.x1, flip.y1) == pytest.approx((70, 35, 90, 45))
    (cut,) = rotate_boxes([Box(-20, -20, 20, 20)], 0, (100, 50))
    assert (cut.x0, cut.y0, cut.x1, cut.y1) == (0, 0, 20, 20)


@pytest.mark.parametrize("angle", [17.0, -33.0, 135.0])
def test_rotate_boxes_matches_pil(angle):
    im = Image.new("L", (120, 80))
    ImageDraw.Draw(im).rectangle((40, 30, 69, 49), fill=255)
    for expand in (False, True):
        out = im.rotate(angle, Image.BILINEAR, expand=expand)
        if expand:
            assert out.size == expanded_size(im.size, angle)
        (r,) = rotate_boxes([Box(40, 30, 70, 50)], angle, im.size, out.size)
        ink = np.argwhere(np.asarray(out) > 127)
        (y0, x0), (y1, x1) = ink.min(0), ink.max(0) + 1
        assert abs(x0 - r.x0) <= 1.5 and abs(y0 - r.y0) <= 1.5
        assert abs(x1 - r.x1) <= 1.5 and abs(y1 - r.y1) <= 1.5


def test_rotated_page_boxes_still_contain_the_ink(dejavu, nanum):
    page = render_page(PAGE_LINES, [dejavu, nanum], np.random.default_rng(2), size=(360, 300),
                       angle=30.0, style=BLACK_ON_WHITE)
    assert page.angle == 30.0 and page.image.size == (360, 300) and page.lines == PAGE_LINES
    _check_inside(page.boxes, page.image.size)
    g = _gray(page.image)
    ink = g < 128
    covered = np.zeros_like(ink)
    for b in page.boxes:
        region = ink[int(b.y0): int(np.ceil(b.y1)), int(b.x0): int(np.ceil(b.x1))]
        assert region.any(), b
        if b.label == "line":
            covered[int(b.y0): int(np.ceil(b.y1)) + 1, int(b.x0): int(np.ceil(b.x1)) + 1] = True
    assert ink.sum() > 200 and not (ink & ~covered).any()


def test_page_backgrounds_and_colours_run(dejavu):
    for kind in ("plain", "noise", "texture", "random"):
        page = render_page(["12 34", "56"], [dejavu], np.random.default_rng(4), size=(160, 120),
                           angle=-5.0, style=PageStyle(background=kind, grayscale=kind == "noise"))
        assert page.image.size == (160, 120) and page.boxes
        assert page.image.mode == ("L" if kind == "noise" else "RGB")
