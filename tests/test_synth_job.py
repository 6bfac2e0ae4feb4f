"""`ocr synth` as a Ray Data job: reproducible shards of lines and pages."""

from types import SimpleNamespace

import numpy as np
import pyarrow.parquet as pq
import pytest

from ocr.charset import load_charset
from ocr.cli import main
from ocr.config import ConfigError
from ocr.data import shards
from ocr.data.config import SynthConfig
from ocr.data.synth.fonts import FontInfo, coverage, find_fonts
from ocr.data.synth.job import Renderer, font_weights, synth


def _files(root):
    return {p.relative_to(root): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_lines_are_reproducible(ray_local, tmp_path):
    cfgs = [SynthConfig(output=str(tmp_path / d), text="digits:1-6", count=60, seed=7,
                        shard_size=25) for d in ("a", "b")]
    manifests = [synth(c) for c in cfgs]
    assert manifests[0]["counts"]["written"] == 60
    assert _files(tmp_path / "a") == _files(tmp_path / "b")
    other = synth(SynthConfig(output=str(tmp_path / "c"), text="digits:1-6", count=60, seed=8,
                              shard_size=25))
    assert other["counts"]["written"] == 60
    assert _files(tmp_path / "c") != _files(tmp_path / "a")
    rows = [r for t in shards.read_rows(str(tmp_path / "a")) for r in t.to_pylist()]
    assert all(r["height"] == 32 and r["label"].isdigit() and 1 <= len(r["label"]) <= 6
               for r in rows)
    assert manifests[0]["charset"]["symbols"] == list("0123456789")


def test_hangul_lines_use_covering_fonts_only(ray_local, tmp_path):
    fonts = find_fonts()
    hangul_fonts = [f for f in fonts if ord("가") in coverage(f)]
    assert hangul_fonts and len(hangul_fonts) < len(fonts)
    m = synth(SynthConfig(output=str(tmp_path / "ko"), text="random:hangul:2-4", count=20))
    assert m["counts"]["written"] == 20 and len(m["charset"]["symbols"]) == 2350
    with pytest.raises(ConfigError, match="no selected font covers"):
        synth(SynthConfig(output=str(tmp_path / "bad"), text="random:hangul:2-4", count=4,
                          font_include=["DejaVu"]))


def test_pages_have_boxes_and_angles(ray_local, tmp_path):
    rc = main(["synth", "--output", str(tmp_path / "p"), "--kind", "page", "--count", "6",
               "--max-angle", "20", "--image-format", "jpeg", "--page-width", "320",
               "--page-height", "240"])
    assert rc == 0
    manifest = shards.read_manifest(str(tmp_path / "p"))
    assert manifest["task"] == "detection"
    table = pq.read_table(tmp_path / "p" / manifest["shards"][0]["path"])
    assert table.schema.equals(shards.schema("detection"))
    for row in table.to_pylist():
        assert -20 <= row["angle"] <= 20
        labels = {b["label"] for b in row["boxes"]}
        assert labels == {"line", "word", "char"}
        assert all(0 <= b["x0"] < b["x1"] <= 320 and 0 <= b["y0"] < b["y1"] <= 240
                   for b in row["boxes"])


def test_bad_synth_config_is_refused(capsys, tmp_path):
    with pytest.raises(SystemExit) as refused:   # argparse knows the choices
        main(["synth", "--output", str(tmp_path / "x"), "--kind", "poster"])
    assert refused.value.code == 2 and "invalid choice: 'poster'" in capsys.readouterr().err
    (tmp_path / "synth.yaml").write_text("kind: poster\n")
    assert main(["synth", "--output", str(tmp_path / "x"), "--config", str(tmp_path / "synth.yaml")]) == 2
    assert "kind: expected one of line, page, found 'poster'" in capsys.readouterr().err
    assert main(["synth", "--output", str(tmp_path / "x"), "--style-set", "wobble=3"]) == 2
    assert "unknown LineStyle keys ['wobble']" in capsys.readouterr().err
    for bad in ("DSEG", "=3", "DSEG=0", "DSEG=lots"):
        assert main(["synth", "--output", str(tmp_path / "x"), "--font-weight", bad]) == 2
        assert f"font_weight {bad!r}: expected TEXT=W" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_font_weight_draws_the_named_fonts_more_often(tmp_path):
    fonts = [FontInfo("a.ttf", name="DSEG7 Classic"), FontInfo("b.ttf", name="DejaVu Sans"),
             FontInfo("c.ttf", name="Go Mono")]
    counts = {}
    for weights in ([], ["dseg=8"]):
        cfg = SynthConfig(output=str(tmp_path / "o"), font_weight=weights)
        renderer = SimpleNamespace(weights=font_weights(cfg, fonts))
        rng = np.random.default_rng(0)
        picks = [Renderer._font(renderer, fonts, rng).name for _ in range(1000)]
        counts[bool(weights)] = picks.count("DSEG7 Classic")
    assert 250 < counts[False] < 420          # a third
    assert 720 < counts[True] < 880           # 8 / 10


def test_font_names_match_ignoring_case_spaces_and_hyphens():
    """Fonts are named as their files ("UnBatang") or as their name tables ("Un Batang"): both
    spellings select, exclude and weight the same faces (a held-out list once matched none)."""
    un, dseg = FontInfo("u.ttf", name="Un Batang Bold"), FontInfo("d.ttf", name="DSEG7 Classic-Italic")
    assert un.matches("UnBatang") and un.matches("un-batang") and un.matches("UN_BATANG BOLD")
    assert dseg.matches("DSEG7Classic") and dseg.matches("Classic Italic")
    assert not un.matches("UnDotum", "Baekmuk") and not dseg.matches("DSEG14")
    cfg = SynthConfig(output="/tmp/unused", font_weight=["dseg7 classic=3", "Italic=2"])
    assert font_weights(cfg, [un, dseg]) == {un: 1.0, dseg: 6.0}


def test_glyph_bank_lines_and_realistic_mixes_as_shards(ray_local, tmp_path, capsys):
    from test_synth_sources import make_bank

    bank = make_bank(tmp_path / "bank", "0123456789")
    assert main(["synth", "--output", str(tmp_path / "g"), "--glyphs", str(bank), "--text", "digits:2-6",
                 "--count", "30", "--style", "real", "--shard-size", "15"]) == 0
    rows = [r for t in shards.read_rows(str(tmp_path / "g")) for r in t.to_pylist()]
    assert len(rows) == 30 and all(r["label"].isdigit() and r["height"] == 32 for r in rows)
    m = synth(SynthConfig(output=str(tmp_path / "mix"), text="mix:korean", charset="korean+symbols",
                          style="real", count=24, shard_size=12))
    assert m["counts"]["written"] == 24
    assert len(m["charset"]["symbols"]) == len(load_charset("korean+symbols"))
    # a bank with no crop for any symbol of the text is refused before any Ray work
    assert main(["synth", "--output", str(tmp_path / "bad"), "--glyphs", str(bank), "--text",
                 "random:hangul:2"]) == 2
    assert "expected crops for the symbols of --text random:hangul:2" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()
