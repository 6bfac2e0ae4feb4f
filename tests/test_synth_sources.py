"""Realistic text sources (lexicons, templates, mixes), degradations and glyph banks."""

from __future__ import annotations

import logging
from collections import Counter

import numpy as np
import pytest
from PIL import Image, ImageDraw

from ocr.charset import load_charset
from ocr.data.synth.augment import STYLE_MIXES, STYLE_PRESETS, LineStyle
from ocr.data.synth.degrade import Degradation, degrade
from ocr.data.synth.glyphs import GlyphBank, render_glyph_line
from ocr.data.synth.lexicon import PARTICLES, _has_final
from ocr.data.synth.templates import KINDS
from ocr.data.synth.text import parse_text_source


def _samples(spec: str, n: int, seed: int = 0) -> list[str]:
    source, rng = parse_text_source(spec), np.random.default_rng(seed)
    return [source.sample(rng) for _ in range(n)]


# --- lexicons ----------------------------------------------------------------------------------

def test_bundled_lexicons_are_frequency_weighted_and_reproducible():
    ko = _samples("lexicon:korean", 4000)
    assert ko == _samples("lexicon:korean", 4000)
    assert all(w and " " not in w for w in ko)
    counts = Counter(ko)
    assert counts["이"] > 10 * max(1, counts.get("희곡", 0))    # frequent words come often
    assert len(counts) > 1500                                   # ... and the tail shows up
    en = _samples("lexicon:english:2-3", 500)
    assert all(2 <= len(line.split()) <= 3 for line in en)
    assert any(w[0].isupper() for line in en for w in line.split())   # Capitalised now and then


def test_korean_particles_follow_the_final_consonant():
    known = set(parse_text_source("lexicon:korean").words)
    checked = 0
    for word in _samples("lexicon:korean", 6000):
        if word in known:
            continue
        for pair in PARTICLES:
            for particle, after_final in zip(pair, (True, False)):
                stem = word[: -len(particle)]
                if pair[0] != pair[1] and word.endswith(particle) and stem in known and len(stem) >= 2:
                    assert _has_final(stem[-1]) == after_final, word
                    checked += 1
    assert checked > 50


def test_lexicon_file_with_counts_and_mess(tmp_path, caplog):
    path = tmp_path / "words.tsv"
    path.write_bytes("\ufeffalpha\t1000\r\nbeta \t1\r\n\r\ngam\x07ma\t5\r\n  delta\r\n".encode())
    with caplog.at_level(logging.WARNING):
        words = _samples(f"lexicon:{path}:1-1", 3000)
    assert set(words) == {"alpha", "beta", "delta"}
    assert "U+0007 BELL" in caplog.text
    assert Counter(words)["alpha"] > Counter(words)["beta"]
    path.write_text("alpha\tmany\n")
    with pytest.raises(ValueError, match=r"line 1 .*expected WORD or WORD<TAB>COUNT"):
        parse_text_source(f"lexicon:{path}")
    with pytest.raises(ValueError, match="bundled lists korean, english or a word file"):
        parse_text_source("lexicon:klingon")


# --- templates ---------------------------------------------------------------------------------

@pytest.mark.parametrize("lang", ["ko", "en"])
def test_templates_give_every_kind_and_their_symbols_are_complete(lang):
    for kind in KINDS:
        texts = _samples(f"template:{kind}:{lang}", 200, seed=3)
        assert all(t.strip() == t and t for t in texts)
        assert any(c.isdigit() for t in texts for c in t), kind
    source = parse_text_source(f"template:any:{lang}")
    symbols = set(source.symbols())
    assert set("".join(_samples(f"template:any:{lang}", 3000, seed=11))) <= symbols
    hangul = {c for c in symbols if "가" <= c <= "힣"}
    assert bool(hangul) == (lang == "ko")


def test_template_examples_look_like_the_world():
    prices = _samples("template:price:ko", 300)
    assert any(p.endswith("원") and "," in p for p in prices)
    dates = _samples("template:date:en", 300)
    assert any(d[:3] in ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov",
                         "Dec") for d in dates)
    assert any(p.startswith("010-") for p in _samples("template:phone:ko", 100))
    with pytest.raises(ValueError, match="unknown template 'weather'"):
        parse_text_source("template:weather")
    with pytest.raises(ValueError, match="unknown language 'fr'"):
        parse_text_source("template:date:fr")


# --- mixes -------------------------------------------------------------------------------------

@pytest.mark.parametrize("name,charset,longest", [("korean", "korean+symbols", 40),
                                                 ("latin", "latin+symbols", 40),
                                                 ("digits", "numeric", 16)])
def test_bundled_mixes_stay_in_charset_and_length(name, charset, longest):
    allowed = set(load_charset(charset).symbols)
    lines = _samples(f"mix:{name}", 400, seed=5)
    assert all(1 <= len(line) <= longest and set(line) <= allowed for line in lines)
    assert set(parse_text_source(f"mix:{name}").symbols()) <= allowed
    assert np.mean([len(line) for line in lines]) > longest / 4     # realistic lengths, not words
    if name == "korean":
        assert any("가" <= c <= "힣" for line in lines for c in line)
        assert any(c.isdigit() for line in lines for c in line)
        assert any(c.isascii() and c.isalpha() for line in lines for c in line)


def test_mix_file_weights_and_errors(tmp_path):
    mix = tmp_path / "mine.yaml"
    mix.write_text("length: 3-12\nsources:\n  digits:3: 1\n  template:date:en: 0\n")
    lines = _samples(f"mix:{mix}", 200)
    assert all(line.replace(" ", "").isdigit() and 3 <= len(line) <= 12 for line in lines)
    for body, found in [("sources: {digits:3: -1}\n", "must be a number >= 0"),
                        ("sources: {mix:korean: 1}\n", "cannot hold another mix"),
                        ("sources: {digits:3: 1}\ncolour: red\n", "unknown keys ['colour']"),
                        ("- digits:3\n", "expected a YAML mapping with 'sources'"),
                        ("sources: {digits:3: 1}\ncharset: nope\n", "unknown charset 'nope'")]:
        mix.write_text(body)
        with pytest.raises(ValueError, match=found.replace("[", r"\[").replace("]", r"\]")):
            parse_text_source(f"mix:{mix}")
    with pytest.raises(ValueError, match="bundled mixes korean, latin, digits or a YAML file"):
        parse_text_source("mix:nowhere")


# --- degradations ------------------------------------------------------------------------------

def _line(mode: str = "L") -> Image.Image:
    img = Image.new(mode, (160, 32), "white" if mode == "RGB" else 235)
    ImageDraw.Draw(img).text((6, 8), "Receipt 12,500", fill="black" if mode == "RGB" else 20)
    return img


@pytest.mark.parametrize("effect", ["dot_matrix", "lighting", "perspective", "noise", "rescale", "jpeg"])
@pytest.mark.parametrize("mode", ["L", "RGB"])
def test_each_degradation_changes_pixels_and_keeps_size_and_mode(effect, mode):
    img = _line(mode)
    out = degrade(img, Degradation(**{f"{effect}_p": 1.0}), np.random.default_rng(0))
    assert out.size == img.size and out.mode == img.mode
    assert np.abs(np.asarray(out, np.float32) - np.asarray(img, np.float32)).mean() > 0.2
    assert degrade(img, Degradation(), np.random.default_rng(0)) is img


def test_dot_matrix_lights_dots_where_the_ink_is_and_only_there():
    img = Image.new("L", (96, 32), 20)                       # a dark panel
    ImageDraw.Draw(img).rectangle((10, 6, 40, 26), fill=230)  # one bright block of "ink"
    out = np.asarray(degrade(img, Degradation(dot_matrix_p=1.0, dot_matrix=(5.0, 5.0)),
                             np.random.default_rng(0)))
    assert out[:, 50:].max() < 60                              # no ink: dark, faint dots at most
    block = out[6:27, 10:41]
    assert block.max() > 200 and (block < 60).mean() > 0.2     # lit dots with gaps between them
    blank = Image.new("L", (96, 32), 200)
    assert np.array_equal(np.asarray(degrade(blank, Degradation(dot_matrix_p=1.0),
                                             np.random.default_rng(0))), np.asarray(blank))


def test_scan_photo_screen_and_real_presets_render(tmp_path):
    assert all(set(mix) <= set(STYLE_PRESETS) for mix in STYLE_MIXES.values())
    assert set(STYLE_MIXES["displays"]) == {*STYLE_MIXES["real"], "dot-matrix"}
    for name in ("scan", "photo", "screen", "dot-matrix"):
        style = LineStyle(**STYLE_PRESETS[name])
        assert style.degradation.active
    assert LineStyle(**STYLE_PRESETS["dot-matrix"]).degradation.dot_matrix_p == 1.0
    assert LineStyle(**STYLE_PRESETS["screen"]).degradation.dot_matrix_p == 0.2
    with pytest.raises(ValueError, match="LineStyle.degradation"):
        LineStyle(degradation={"jpeg_chance": 1})
    assert LineStyle(degradation={"jpeg_p": 0.5, "jpeg": [40, 60]}).degradation.jpeg == (40, 60)


# --- glyph banks -------------------------------------------------------------------------------

def make_bank(root, symbols="0123", per_symbol=3, light_on_dark=False):
    """Crops of hand-drawn strokes, one folder per symbol ('/' as U+002F)."""
    rng = np.random.default_rng(1)
    ground, ink = (20, 230) if light_on_dark else (230, 20)
    for k, symbol in enumerate(symbols):
        folder = root / (f"U+{ord(symbol):04X}" if symbol == "/" else symbol)
        folder.mkdir(parents=True)
        for i in range(per_symbol):
            img = Image.new("L", (22, 32), ground)
            pts = [(4 + rng.normal(0, 1), 4 + 3 * k), (18, 16 + rng.normal(0, 1)), (5 + k, 28)]
            ImageDraw.Draw(img).line(pts, fill=ink, width=3)
            img.save(folder / f"{i}.png")
    return root


@pytest.mark.parametrize("light_on_dark", [False, True])
def test_glyph_bank_composes_lines_of_its_crops(tmp_path, light_on_dark):
    bank = GlyphBank.load(str(make_bank(tmp_path / "bank", "0123/", light_on_dark=light_on_dark)))
    assert bank.symbols() == "/0123" and all(len(v) == 3 for v in bank.glyphs.values())
    assert all(m.max() == 255 for v in bank.glyphs.values() for m in v)   # ink found either way
    style = LineStyle.clean()
    img = render_glyph_line("12 30/1", bank, 32, style, np.random.default_rng(0))
    assert img.height == 32 and img.width > 5 * 16
    same = render_glyph_line("12 30/1", bank, 32, style, np.random.default_rng(0))
    assert np.array_equal(np.asarray(img), np.asarray(same))
    with pytest.raises(ValueError, match="has no crop of '9'"):
        render_glyph_line("19", bank, 32, style)


def test_bad_glyph_banks_are_refused(tmp_path):
    with pytest.raises(ValueError, match="found no folder"):
        GlyphBank.load(str(tmp_path / "none"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="found none"):
        GlyphBank.load(str(tmp_path / "empty"))
    bank = make_bank(tmp_path / "b", "01")
    Image.new("L", (10, 10), 128).save(bank / "0" / "flat.png")
    (bank / "ab").mkdir()
    with pytest.raises(ValueError, match=r"2 unusable entries.*flat.png \(no ink"):
        GlyphBank.load(str(bank))


def test_mix_and_lexicon_paths_are_resolved_for_ray_tasks(tmp_path, monkeypatch):
    """Ray tasks parse the text source again, in another folder: every path in it is absolute."""
    from ocr.data.config import SynthConfig

    (tmp_path / "lists").mkdir()
    (tmp_path / "lists" / "mine.tsv").write_text("gear\t10\nbolt\t5\n")
    (tmp_path / "lists" / "shop.yaml").write_text("length: 3-20\nsources:\n  lexicon:mine.tsv:1-2: 1\n")
    monkeypatch.chdir(tmp_path)
    cfg = SynthConfig(output="out", text="mix:lists/shop.yaml")
    assert cfg.text == f"mix:{tmp_path / 'lists' / 'shop.yaml'}"
    assert SynthConfig(output="out", text="lexicon:lists/mine.tsv:1-3").text == \
        f"lexicon:{tmp_path / 'lists' / 'mine.tsv'}:1-3"
    assert SynthConfig(output="out", text="mix:korean").text == "mix:korean"          # bundled names
    assert SynthConfig(output="out", text="lexicon:english:2").text == "lexicon:english:2"
    monkeypatch.chdir("/")                            # where a Ray worker may run
    lines = _samples(cfg.text, 50)                    # the mix's lexicon: from the mix's folder
    assert {w for line in lines for w in line.split()} <= {"gear", "bolt"}
