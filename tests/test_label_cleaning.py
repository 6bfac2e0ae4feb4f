"""Labels are clean: real ingest and synth runs (on the session's local Ray) over messy exports.

CRLF files, BOMs, leading/trailing spaces, tabs, NBSP and U+3000, zero-width characters, and
control characters inside labels; LabelMe transcriptions in ``label``; boxes empty, outside
or partly outside their image, or without their text. Checked: the exact reject reasons and
messages, the clean labels in the Parquet shards, the derived charset, and the counts
invariant in every unit the manifest declares.
"""

from __future__ import annotations

import io
import json
import unicodedata
from pathlib import Path

import lmdb
import numpy as np
import pytest
from conftest import text_image
from PIL import Image

from ocr.charset import BadCharacter, Charset, clean_label, is_label_symbol
from ocr.cli import main
from ocr.data import shards
from ocr.data.config import IngestConfig
from ocr.data.ingest import ingest
from ocr.data.synth.text import parse_text_source


def _rejects(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "rejects.jsonl").read_text("utf-8").splitlines()]


def _rows(out: Path) -> list[dict]:
    return [r for t in shards.read_rows(str(out)) for r in t.to_pylist()]


def _invariant(counts: dict) -> None:
    """read = written + rejected in total, per split and per reason (in the counts' unit)."""
    assert counts["read"] == counts["written"] + counts["rejected"]
    assert sum(r["total"] for r in counts["per_reason"].values()) == counts["rejected"]
    by_split: dict = {}
    for row in counts["per_reason"].values():
        assert row["total"] == sum(n for k, n in row.items() if k != "total")
        for split, n in row.items():
            if split != "total":
                by_split[split] = by_split.get(split, 0) + n
    for split, row in counts["per_split"].items():
        assert row["read"] == row["written"] + row["rejected"]
        assert by_split.get(split, 0) == row["rejected"]
    for k in ("read", "written", "rejected"):
        assert counts[k] == sum(row[k] for row in counts["per_split"].values())


def _check_manifest(manifest: dict) -> None:
    c = manifest["counts"]
    assert c["unit"] == "image"
    _invariant(c)
    assert sum(s["rows"] for s in manifest["shards"]) == c["written"]
    for k in ("read", "written", "rejected"):
        assert sum(s[k] for s in manifest["sources"]) == c[k]
    for s in manifest["sources"]:
        assert s["read"] == s["written"] + s["rejected"]
    if manifest["task"] == "detection":
        b = c["boxes"]
        assert b["unit"] == "box"
        _invariant(b)
        assert b["clipped"] == sum(row["clipped"] for row in b["per_split"].values())
        for k in ("read", "written", "rejected", "clipped"):
            assert sum(s["boxes"][k] for s in manifest["sources"]) == b[k]
        for s in manifest["sources"]:
            assert s["boxes"]["read"] == s["boxes"]["written"] + s["boxes"]["rejected"]


def _clean_charset(symbols: list[str]) -> None:
    """No whitespace but U+0020, no control or format character, in a charset."""
    for c in symbols:
        assert c == " " or not c.isspace(), repr(c)
        assert unicodedata.category(c) not in ("Cc", "Cf", "Zl", "Zp"), repr(c)


# --------------------------------------------------------------------------- the rules


def test_clean_label_rules():
    assert clean_label("\ufeff \t Seoul 2024 \t\r\n\u200b") == "Seoul 2024"
    assert clean_label("\u3000서울\xa0 \u3000시\xa0") == "서울   시"     # Zs inside -> spaces, one for one
    assert clean_label("A  B") == "A  B"                                 # inner runs kept
    assert clean_label("\u1100\u1161") == "가"                           # NFC
    assert clean_label(" \t\r\n\xa0\u3000\u200b ") == ""
    for text, message in [
        ("x\ty", "U+0009 CHARACTER TABULATION (a control character) at index 1 of label 'x\\ty'"),
        (" ab\x07c ", "U+0007 BELL (a control character) at index 2 of label 'ab\\x07c'"),
        ("\x00z", "U+0000 NULL (a control character) at index 0"),
        ("q\x08", "U+0008 BACKSPACE (a control character) at index 1"),
        ("de\x7fl", "U+007F DELETE (a control character) at index 2"),
        ("z\u200bw", "U+200B ZERO WIDTH SPACE (an invisible format character) at index 1"),
        ("a\u2028b", "U+2028 LINE SEPARATOR (a line separator) at index 1"),
        ("a\r\nb", "U+000D CARRIAGE RETURN (a control character) at index 1"),
    ]:
        with pytest.raises(BadCharacter) as err:
            clean_label(text)
        assert str(err.value).startswith(message), str(err.value)
    assert is_label_symbol(" ") and is_label_symbol("가")
    assert not any(is_label_symbol(c) for c in "\t\n\r\x00\x07\x7f\xa0\u3000\u200b\ufeff")
    # a derived charset keeps the space of "Seoul 2024", never a tab, NBSP or control
    assert Charset.from_labels(["Seoul 2024", "a\tb\x07", "\xa0\u3000"]).symbols == \
        tuple(sorted(set("Seoul 2024ab")))


def test_dropping_symbols_leaves_no_space_at_the_ends():
    from ocr.charset import load_charset
    from ocr.data.validate import Reject, Validator

    v = Validator(task="recognition", charset=load_charset("latin"), out_of_charset="drop", ctc_width=0)
    dropped: list[str] = []
    assert v.label("\u00a9 2024 \u00ae", (100, 32), dropped) == ("2024", 4)
    assert dropped == ["\u00a9", "\u00ae"]
    with pytest.raises(Reject) as err:
        v.label("a\x7fb", (100, 32), [])
    assert err.value.reason == "bad_character"


# --------------------------------------------------------------------------- recognition


def _lmdb(path: Path, labels: list[bytes]) -> None:
    env = lmdb.open(str(path), map_size=1 << 24)
    with env.begin(write=True) as txn:
        for i, label in enumerate(labels, start=1):
            txn.put(b"image-%09d" % i, text_image("x"))
            txn.put(b"label-%09d" % i, label)
        txn.put(b"num-samples", str(len(labels)).encode())
    env.close()


@pytest.fixture(scope="module")
def recognition_run(ray_local, tmp_path_factory):
    """One ingest of messy gt, labels, aihub, filename and LMDB sets together (charset derived)."""
    root = tmp_path_factory.mktemp("messy")
    gt_dir = root / "gt"
    (gt_dir / "images").mkdir(parents=True)
    gt_lines = {  # image -> raw label, written as a CRLF file with a BOM (twice: concatenated)
        "a.png": "  Seoul 2024 \t", "b.png": "\xa0서울\u3000", "c.png": "A  B", "d.png": "\u200bzw\ufeff",
        "e.png": "x\ty", "f.png": "ab\x07c", "g.png": "\x00z", "h.png": "q\x08", "i.png": "de\x7fl",
        "j.png": "z\u200bw", "k.png": " \t \xa0", "l.png": "in\xa0side",
    }
    for name in [*gt_lines, "m.png"]:
        (gt_dir / "images" / name).write_bytes(text_image(name))
    body = "".join(f"images/{n}\t{label}\r\n" for n, label in gt_lines.items())
    (gt_dir / "gt.txt").write_bytes(("\ufeff" + body + "\ufeffimages/m.png\tm \r\n").encode("utf-8"))

    labels_dir = root / "made"
    (labels_dir / "images").mkdir(parents=True)
    for name in ("0.jpg", "1.jpg", "2.jpg"):
        (labels_dir / "images" / name).write_bytes(text_image(name))
    (labels_dir / "labels.txt").write_bytes(
        "\ufeff0.jpg  spaced  label \r\n1.jpg 여기\x1b가\r\n2.jpg \u3000\r\n".encode("utf-8"))

    hub = root / "hub"
    (hub / "images").mkdir(parents=True)
    for name in ("p.png", "q.png"):
        (hub / "images" / name).write_bytes(text_image(name))
    (hub / "ai.json").write_text(json.dumps({
        "images": [{"id": 1, "file_name": "p.png"}, {"id": 2, "file_name": "q.png"}],
        "annotations": [{"id": 1, "image_id": 1, "text": " 여기가\n"},
                        {"id": 2, "image_id": 2, "text": "tab\tinside"}]}), "utf-8")

    trdg = root / "trdg"
    trdg.mkdir()
    for name in ("Seoul 2024 _1.png", "ok_2.png", "a\tb_3.png"):
        (trdg / name).write_bytes(text_image("f"))

    _lmdb(root / "lm", [b"  lmdb\xc2\xa0label\r", b"x\x00y", b"\xef\xbb\xbfbom"])

    out = root / "out"
    inputs = [gt_dir / "gt.txt", labels_dir / "labels.txt", hub / "ai.json", trdg, root / "lm"]
    manifest = ingest(IngestConfig(inputs=[str(p) for p in inputs], output=str(out)), progress=False)
    return manifest, out


CLEAN = {  # (source, key) -> label in the shards
    ("gt.txt", "images/a.png"): "Seoul 2024", ("gt.txt", "images/b.png"): "서울",
    ("gt.txt", "images/c.png"): "A  B", ("gt.txt", "images/d.png"): "zw",
    ("gt.txt", "images/l.png"): "in side", ("gt.txt", "images/m.png"): "m",
    ("labels.txt", "0.jpg"): "spaced  label", ("ai.json", "p.png"): "여기가",
    ("trdg", "Seoul 2024 _1.png"): "Seoul 2024", ("trdg", "ok_2.png"): "ok",
    ("lm", "000000001"): "lmdb label", ("lm", "000000003"): "bom",
}

CC = "(a control character) at index"
REJECTED = {  # (source, key) -> (reason, start of the detail)
    ("gt.txt", "images/e.png"): ("bad_character", f"U+0009 CHARACTER TABULATION {CC} 1 of label 'x\\ty'"),
    ("gt.txt", "images/f.png"): ("bad_character", f"U+0007 BELL {CC} 2 of label 'ab\\x07c'"),
    ("gt.txt", "images/g.png"): ("bad_character", f"U+0000 NULL {CC} 0 of label '\\x00z'"),
    ("gt.txt", "images/h.png"): ("bad_character", f"U+0008 BACKSPACE {CC} 1 of label 'q\\x08'"),
    ("gt.txt", "images/i.png"): ("bad_character", f"U+007F DELETE {CC} 2 of label 'de\\x7fl'"),
    ("gt.txt", "images/j.png"): ("bad_character",
                                 "U+200B ZERO WIDTH SPACE (an invisible format character) at index 1"),
    ("gt.txt", "images/k.png"): ("empty_label",
                                 "empty label: expected at least one symbol, found only ' \\t \\xa0'"),
    ("labels.txt", "1.jpg"): ("bad_character", f"U+001B ESCAPE {CC} 2 of label '여기\\x1b가'"),
    ("labels.txt", "2.jpg"): ("empty_label",
                              "empty label: expected at least one symbol, found only '\\u3000'"),
    ("ai.json", "q.png"): ("bad_character", f"U+0009 CHARACTER TABULATION {CC} 3"),
    ("trdg", "a\tb_3.png"): ("bad_character", f"U+0009 CHARACTER TABULATION {CC} 1 of label 'a\\tb'"),
    ("lm", "000000002"): ("bad_character", f"U+0000 NULL {CC} 1 of label 'x\\x00y'"),
}


def test_every_recognition_layout_writes_clean_labels(recognition_run):
    manifest, out = recognition_run
    assert {s["name"]: s["layout"] for s in manifest["sources"]} == {
        "gt.txt": "gt", "labels.txt": "labels", "ai.json": "aihub", "trdg": "filename", "lm": "lmdb"}
    rows = _rows(out)
    assert {(r["source"], r["key"]): r["label"] for r in rows} == CLEAN  # the BOM'd first keys too
    assert all(r["label"] == r["label"].strip() for r in rows)


def test_control_characters_are_rejected_by_name_and_index(recognition_run):
    manifest, out = recognition_run
    rejects = {(r["source"], r["key"]): r for r in _rejects(out)}
    assert {k: r["reason"] for k, r in rejects.items()} == {k: v[0] for k, v in REJECTED.items()}
    for k, (_, detail) in REJECTED.items():
        assert rejects[k]["detail"].startswith(detail), (k, rejects[k]["detail"])
    assert manifest["counts"]["per_reason"]["bad_character"]["total"] == 10
    assert manifest["counts"]["per_reason"]["empty_label"]["total"] == 2


def test_derived_charset_and_counts(recognition_run):
    manifest, _ = recognition_run
    symbols = manifest["charset"]["symbols"]
    _clean_charset(symbols)
    assert set(symbols) == set("".join(CLEAN.values()))  # nothing from the rejected labels
    assert " " in symbols and "\x07" not in symbols and "\t" not in symbols
    _check_manifest(manifest)
    c = manifest["counts"]
    assert (c["read"], c["written"], c["rejected"]) == (len(CLEAN) + len(REJECTED), len(CLEAN), len(REJECTED))
    assert "boxes" not in c
    by_source = {s["name"]: (s["read"], s["written"], s["rejected"]) for s in manifest["sources"]}
    assert by_source == {"gt.txt": (13, 6, 7), "labels.txt": (3, 1, 2), "ai.json": (2, 1, 1),
                         "trdg": (3, 2, 1), "lm": (3, 2, 1)}


def test_a_preset_charset_with_space_keeps_inner_spaces(ray_local, tmp_path):
    root = tmp_path / "s"
    (root / "images").mkdir(parents=True)
    for name in ("a.png", "b.png"):
        (root / "images" / name).write_bytes(text_image(name))
    (root / "gt.txt").write_bytes("images/a.png\tSeoul  2024\xa0\r\nimages/b.png\tTab\there\r\n".encode())
    out = tmp_path / "out"
    manifest = ingest(IngestConfig(inputs=[str(root / "gt.txt")], output=str(out), charset="latin"),
                      progress=False)
    assert [r["label"] for r in _rows(out)] == ["Seoul  2024"]
    assert [(r["key"], r["reason"]) for r in _rejects(out)] == [("images/b.png", "bad_character")]
    _check_manifest(manifest)


# --------------------------------------------------------------------------- detection


def _png(w: int, h: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (w, h), "white").save(buf, "PNG")
    return buf.getvalue()


def _rect(label, p0, p1, **extra):
    return {"label": label, "shape_type": "rectangle", "points": [p0, p1], "description": "",
            **extra}


def _labelme(folder: Path, stem: str, shapes: list, image: bool = True) -> None:
    if image:
        (folder / f"{stem}.png").write_bytes(_png(64, 48))
    (folder / f"{stem}.json").write_text(json.dumps(
        {"version": "5.2.1", "shapes": shapes, "imagePath": f"{stem}.png", "imageHeight": 48,
         "imageWidth": 64}), "utf-8")


@pytest.fixture(scope="module")
def detection_sets(tmp_path_factory):
    root = tmp_path_factory.mktemp("det")
    lm = root / "lm"
    lm.mkdir()
    _labelme(lm, "a", [
        _rect(" Seoul 2024 ", [2, 3], [40, 20]),                      # 0 text in label: kept
        _rect("far", [100, 100], [120, 110]),                         # 1 wholly outside
        _rect("thin", [5, 5], [5, 20]),                               # 2 empty (zero width)
        _rect("part", [50, 30], [80, 60]),                            # 3 partly outside: clipped
        _rect("  ", [1, 1], [10, 10]),                                # 4 no text anywhere
        _rect("ab\x07c", [1, 1], [10, 10]),                           # 5 a BELL inside
        {"label": "LOT\xa042\t", "points": [[1, 30], [30, 28], [31, 40], [2, 41]]},  # 6 polygon
    ])
    _labelme(lm, "b", [_rect("line", [0, 0], [30, 10], description="LOT\r\n")])
    _labelme(lm, "c", [_rect("x", [0, 0], [9, 9]), _rect("y", [9, 9], [19, 19])], image=False)
    coco = root / "coco"
    (coco / "images").mkdir(parents=True)
    (coco / "images" / "p.png").write_bytes(_png(64, 48))
    (coco / "ann.json").write_text(json.dumps({
        "images": [{"id": 1, "file_name": "p.png", "width": 64, "height": 48}],
        "categories": [{"id": 1, "name": "line"}, {"id": 2, "name": "char"}],
        "annotations": [
            {"id": 1, "image_id": 1, "bbox": [2, 3, 20, 10], "category_id": 1, "text": "12 "},
            {"id": 2, "image_id": 1, "bbox": [2, 3, 5, 10], "category_id": 2, "text": " "},
            {"id": 3, "image_id": 1, "bbox": [30, 3, 20, 10], "category_id": 1},  # ROI: no text needed
            {"id": 4, "image_id": 1, "bbox": [40, 3, -5, 10], "category_id": 1, "text": "neg"},
            {"id": 5, "image_id": 1, "bbox": [-10, -4, 20, 10], "category_id": 2, "text": "1"}]}),
        "utf-8")
    return lm, coco / "ann.json"


def test_detection_boxes_rejected_one_by_one(ray_local, detection_sets, tmp_path):
    lm, coco = detection_sets
    out = tmp_path / "out"
    manifest = ingest(IngestConfig(inputs=[str(lm), str(coco)], output=str(out)), progress=False)
    boxes = {r["key"]: r["boxes"] for r in _rows(out)}
    assert boxes == {
        "a.json": [
            {"x0": 2.0, "y0": 3.0, "x1": 40.0, "y1": 20.0, "label": "text", "text": "Seoul 2024"},
            {"x0": 50.0, "y0": 30.0, "x1": 64.0, "y1": 48.0, "label": "text", "text": "part"},
            {"x0": 1.0, "y0": 28.0, "x1": 31.0, "y1": 41.0, "label": "text", "text": "LOT 42"}],
        "b.json": [{"x0": 0.0, "y0": 0.0, "x1": 30.0, "y1": 10.0, "label": "line", "text": "LOT"}],
        "p.png": [
            {"x0": 2.0, "y0": 3.0, "x1": 22.0, "y1": 13.0, "label": "line", "text": "12"},
            {"x0": 30.0, "y0": 3.0, "x1": 50.0, "y1": 13.0, "label": "line", "text": ""},
            {"x0": 0.0, "y0": 0.0, "x1": 10.0, "y1": 6.0, "label": "char", "text": "1"}],
    }
    got = {(r["source"], r["key"], r.get("box", {}).get("index")): (r["reason"], r["detail"])
           for r in _rejects(out)}
    assert got.pop(("lm", "c.json", None))[0] == "missing_file"        # the page, not a box
    assert got == {
        ("lm", "a.json", 1): ("bad_box", "box 1 (100, 100, 120, 110): box lies wholly outside the "
                                         "64x48 image"),
        ("lm", "a.json", 2): ("bad_box", "box 2 (5, 5, 5, 20): empty box: width 0 and height 15, "
                                         "expected both > 0"),
        ("lm", "a.json", 4): ("empty_label", "box 4 (1, 1, 10, 10): empty text of a 'text' box "
                                             "(found ''): expected at least one symbol"),
        ("lm", "a.json", 5): ("bad_character", "box 5 (1, 1, 10, 10): U+0007 BELL (a control "
                                               "character) at index 2 of label 'ab\\x07c': "
                                               "expected printable symbols only"),
        ("ann.json", "p.png", 1): ("empty_label", "box 1 (2, 3, 7, 13): empty text of a 'char' box "
                                                  "(found ' '): expected at least one symbol"),
        ("ann.json", "p.png", 3): ("bad_box", "box 3 (40, 3, 35, 13): empty box: width -5 and "
                                              "height 10, expected both > 0"),
    }
    box = next(r["box"] for r in _rejects(out) if r.get("box", {}).get("index") == 1 and r["key"] == "a.json")
    assert box == {"index": 1, "x0": 100.0, "y0": 100.0, "x1": 120.0, "y1": 110.0}

    _check_manifest(manifest)
    c = manifest["counts"]
    assert (c["read"], c["written"], c["rejected"]) == (4, 3, 1)            # images
    assert list(c["per_reason"]) == ["missing_file"]
    b = c["boxes"]
    assert (b["read"], b["written"], b["rejected"], b["clipped"]) == (15, 7, 8, 2)
    assert {r: row["total"] for r, row in b["per_reason"].items()} == {
        "bad_box": 3, "empty_label": 2, "bad_character": 1, "missing_file": 2}
    assert {s["name"]: s["boxes"] for s in manifest["sources"]} == {
        "lm": {"read": 10, "written": 4, "rejected": 6, "clipped": 1},
        "ann.json": {"read": 5, "written": 3, "rejected": 2, "clipped": 1}}
    symbols = manifest["charset"]["symbols"]
    _clean_charset(symbols)
    # every clean text indexed (those of boxes rejected for their geometry or page too), and
    # nothing of the texts with a control character or of the blank ones
    assert set(symbols) == set("Seoul 2024" "far" "thin" "part" "LOT 42" "LOT" "x" "y" "12" "neg" "1")


def test_labelme_text_option_on_the_command_line(ray_local, detection_sets, tmp_path, capsys):
    lm, _ = detection_sets
    out = tmp_path / "out"
    assert main(["ingest", str(lm), "--output", str(out), "--labelme-text", "description",
                 "--charset", "latin"]) == 0
    assert "box empty_label" in capsys.readouterr().out
    boxes = {r["key"]: r["boxes"] for r in _rows(out)}
    assert boxes["b.json"] == [{"x0": 0.0, "y0": 0.0, "x1": 30.0, "y1": 10.0, "label": "line",
                                "text": "LOT"}]
    # descriptions are empty in a.json: none of its boxes is usable, so the page is rejected
    # (written without boxes it would teach "no text here"), naming its first bad boxes
    assert "a.json" not in boxes
    (page,) = [r for r in _rejects(out) if r["key"] == "a.json"]
    assert page["reason"] == "empty_label" and "box" not in page
    assert "none of the page's 7 boxes is usable: box 0 (" in page["detail"]
    manifest = shards.read_manifest(str(out))
    _check_manifest(manifest)
    assert manifest["options"]["labelme_text"] == "description"


# --------------------------------------------------------------------------- synth


MESSY_TEXT = ("\ufeff  Seoul 2024 \t\r\n"     # BOM, spaces, CRLF
              "\xa0서울\u3000시청\xa0\r\n"      # NBSP / U+3000 around and inside
              "bell\x07inside\r\n"             # left out
              "\u200bzero\u200b\r\n"           # zero-width ends stripped
              "nul\x00\r\n"                    # left out
              "tab\tsep\r\n"                   # whitespace inside a line: one space
              " \t \r\n")


def test_synth_text_sources_are_clean(tmp_path, caplog):
    path = tmp_path / "messy.txt"
    path.write_bytes(MESSY_TEXT.encode("utf-8"))
    rng = np.random.default_rng(0)
    lines = parse_text_source(f"file:{path}")
    assert sorted(lines.lines) == sorted(["Seoul 2024", "서울 시청", "zero", "tab sep"])
    assert [n for n, _ in lines.skipped] == [3, 5]
    assert lines.skipped[0][1].startswith("U+0007 BELL (a control character) at index 4")
    assert "left out 2 lines" in caplog.text
    assert {lines.sample(rng) for _ in range(200)} == set(lines.lines)
    words = parse_text_source(f"words:{path}:1-3")
    assert sorted(words.lines) == sorted(["Seoul", "2024", "서울", "시청", "zero", "tab", "sep"])
    assert len(words.skipped) == 2
    for s in (words.sample(rng) for _ in range(100)):
        assert s == clean_label(s) and "  " not in s
    _clean_charset(Charset.from_labels([lines.symbols(), words.symbols()]).symbols)
    only_bad = tmp_path / "bad.txt"
    only_bad.write_bytes(b"a\x07b\r\n\x00\r\n")
    with pytest.raises(ValueError, match="non-empty line .*2 left out: U\\+0007 BELL"):
        parse_text_source(f"file:{only_bad}")


def test_synth_job_from_a_messy_file(ray_local, tmp_path):
    from ocr.data.config import SynthConfig
    from ocr.data.synth.job import synth

    path = tmp_path / "messy.txt"
    path.write_bytes(MESSY_TEXT.replace("서울\u3000시청", "Seoul\u3000City").encode("utf-8"))
    out = tmp_path / "synth"
    manifest = synth(SynthConfig(output=str(out), text=f"file:{path}", count=12, style="none",
                                 shard_size=6, seed=1), progress=False)
    labels = [r["label"] for r in _rows(out)]
    assert len(labels) == 12 and set(labels) <= {"Seoul 2024", "Seoul City", "zero", "tab sep"}
    symbols = manifest["charset"]["symbols"]
    _clean_charset(symbols)
    assert " " in symbols and "\x07" not in symbols and "\x00" not in symbols
    _check_manifest(manifest)
