"""`ocr ingest` edge cases, on real files built here (no mocks):

- a byte cap per input file, checked from the file's size before it is read;
- decompression bombs in JPEG, WebP, TIFF, GIF (and BMP) refused from their headers;
- JSON annotations of the wrong type (aihub, coco, labelme) rejected, not fatal;
- NaN and infinite box coordinates rejected, naming the box;
- an LMDB whose ``num-samples`` claims more samples than it holds, reported with the numbers;
- the LMDB download cache private to its user (mode 0700, another user's refused);
- nothing lost: every bad sample is a reject with a reason, and the counts add up.
"""

from __future__ import annotations

import io
import json
import os
import stat
import struct
import time
from pathlib import Path

import lmdb
import pytest
from conftest import text_image, write_gt_set
from PIL import Image

from ocr import storage
from ocr.config import ConfigError
from ocr.data import shards
from ocr.data.config import IngestConfig
from ocr.data.formats import AihubReader, CocoReader, Entry, GtReader, LabelmeReader, LmdbReader
from ocr.data.formats import lmdb_reader as lmdb_module
from ocr.data.formats.base import ReaderOptions
from ocr.data.formats.capped import FileTooLarge
from ocr.data.images import ImageError, decode, validate
from ocr.data.ingest import ingest
from ocr.storage import S3Settings

GIB = 1 << 30


# --------------------------------------------------------------------------- shared checks


def rejects_of(out: Path) -> list[dict]:
    """rejects.jsonl, parsed as strict JSON (a NaN or Infinity token would fail)."""
    def refuse(token):
        raise ValueError(f"not JSON: {token}")
    lines = (out / "rejects.jsonl").read_text().splitlines()
    return [json.loads(line, parse_constant=refuse) for line in lines]


def assert_nothing_lost(manifest: dict, rejects: list[dict]) -> None:
    """read = written + rejected (total, per split, per reason); one reject line per rejected
    sample (and per box rejected on its own); the shards hold the written rows."""
    c = manifest["counts"]
    assert c["read"] == c["written"] + c["rejected"]
    for row in c["per_split"].values():
        assert row["read"] == row["written"] + row["rejected"]
    assert sum(r["total"] for r in c["per_reason"].values()) == c["rejected"]
    assert sum(s["rows"] for s in manifest["shards"]) == c["written"]
    page_rejects = [r for r in rejects if "box" not in r]
    assert len(page_rejects) == c["rejected"]
    assert all(r["reason"] and r["detail"] for r in rejects)
    if "boxes" in c:
        b = c["boxes"]
        assert b["read"] == b["written"] + b["rejected"]
        own = [r for r in rejects if "box" in r]
        assert len(own) <= b["rejected"]


def by_key(rejects: list[dict]) -> dict[str, dict]:
    return {r["key"]: r for r in rejects if "box" not in r}


# --------------------------------------------------------------------------- 1. byte cap


def sparse_file(path: Path, size: int) -> Path:
    """A file of ``size`` bytes that takes no disk (and would take ``size`` of memory to read)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        f.truncate(size)
    return path


def test_byte_cap_is_checked_from_the_size_before_reading(tmp_path):
    """A 64 GiB (sparse) file is refused at once: read whole, it would take 64 GiB of memory."""
    gt = write_gt_set(tmp_path / "set", [("ok.png", "1")])
    sparse_file(tmp_path / "set" / "images" / "huge.png", 64 * GIB)
    with gt.open("a") as f:
        f.write("images/huge.png\t2\n")
    reader = GtReader(str(gt), ReaderOptions(max_file_bytes=50 << 20))
    ok, huge = reader.entries()
    assert reader.load(ok) == (tmp_path / "set" / "images" / "ok.png").read_bytes()
    started = time.perf_counter()
    with pytest.raises(FileTooLarge) as e:
        reader.load(huge)
    assert time.perf_counter() - started < 1.0
    assert (e.value.size, e.value.cap) == (64 * GIB, 50 << 20)
    assert "is 68,719,476,736 bytes: expected at most 52,428,800 (max_file_bytes)" in str(e.value)


def test_byte_cap_refuses_special_files_without_blocking(tmp_path):
    """A FIFO among the images would block a plain open(); it is refused as unreadable."""
    gt = write_gt_set(tmp_path / "set", [("ok.png", "1")])
    os.mkfifo(tmp_path / "set" / "images" / "pipe.png")
    with gt.open("a") as f:
        f.write("images/pipe.png\t2\n")
    reader = GtReader(str(gt), ReaderOptions(max_file_bytes=1000))
    _, pipe = reader.entries()
    with pytest.raises(OSError, match="expected a regular file, found a special file"):
        reader.load(pipe)


def test_byte_cap_on_s3_uses_the_object_size(s3_bucket, tmp_path):
    s3 = S3Settings.from_env()
    storage.write_bytes(f"s3://{s3_bucket}/set/images/a.png", text_image("1"), s3)
    storage.write_bytes(f"s3://{s3_bucket}/set/images/big.png", b"\x89PNG" + bytes(5000), s3)
    storage.write_text(f"s3://{s3_bucket}/set/gt.txt", "images/a.png\t1\nimages/big.png\t2\n", s3)
    reader = GtReader(f"s3://{s3_bucket}/set/gt.txt", ReaderOptions(max_file_bytes=4000), s3=s3)
    small, big = reader.entries()
    assert reader.load(small) == text_image("1")
    with pytest.raises(FileTooLarge, match="is 5,004 bytes: expected at most 4,000"):
        reader.load(big)


def test_byte_cap_option_is_typed_with_a_default_and_help(capsys):
    from ocr.cli import main

    assert IngestConfig().max_file_bytes == 50 << 20
    with pytest.raises(ConfigError, match="max_file_bytes: expected >= 0"):
        IngestConfig(max_file_bytes=-1)
    with pytest.raises(SystemExit):
        main(["ingest", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "--max-file-bytes" in help_text and "before it is read" in help_text


# --------------------------------------------------------------------------- 2. bombs


SMALL = (8, 8)  # the real size of a bomb: its header is patched to claim more


def encoded(fmt: str, size=(100, 100), mode="L", **kw) -> bytes:
    buf = io.BytesIO()
    Image.new(mode, size, 90).save(buf, fmt, **kw)
    return buf.getvalue()


def jpeg_claiming(w: int, h: int) -> bytes:
    """A small JPEG whose start-of-frame segment is patched to say w x h."""
    data = bytearray(encoded("JPEG", SMALL))
    pos = 2
    while data[pos + 1] != 0xC0:
        pos += 2 + int.from_bytes(data[pos + 2:pos + 4], "big")
    data[pos + 5:pos + 9] = struct.pack(">HH", h, w)
    return bytes(data)


def gif_claiming(w: int, h: int, frame: tuple[int, int] | None = None) -> bytes:
    """A GIF written byte by byte: a w x h screen, one frame (``frame`` w x h, default the
    screen's) with a one-pixel image stream."""
    fw, fh = frame or (w, h)
    return (b"GIF89a" + struct.pack("<HHBBB", w, h, 0x80, 0, 0) + b"\x00\x00\x00\xff\xff\xff"
            + b"," + struct.pack("<HHHHB", 0, 0, fw, fh, 0) + b"\x02\x02\x44\x01\x00;")


def tiff_claiming(w: int, h: int) -> bytes:
    """A small TIFF whose first directory's ImageWidth / ImageLength are patched (as LONGs)."""
    data = bytearray(encoded("TIFF", SMALL))
    assert data[:2] == b"II"
    ifd = struct.unpack_from("<I", data, 4)[0]
    for n in range(struct.unpack_from("<H", data, ifd)[0]):
        at = ifd + 2 + 12 * n
        tag = struct.unpack_from("<H", data, at)[0]
        if tag in (256, 257):
            struct.pack_into("<HHII", data, at, tag, 4, 1, w if tag == 256 else h)
    return bytes(data)


def webp_claiming(chunk: bytes, w: int, h: int) -> bytes:
    """A small WebP whose first chunk (VP8 lossy, VP8L lossless, VP8X extended) says w x h."""
    if chunk == b"VP8X":
        data = bytearray(encoded("WEBP", SMALL, mode="RGBA", exif=b"Exif\0\0II*\0\x08\0\0\0\0\0"))
    else:
        data = bytearray(encoded("WEBP", SMALL, lossless=chunk == b"VP8L"))
    assert data[12:16] == chunk
    if chunk == b"VP8 ":
        struct.pack_into("<HH", data, 26, w, h)
    elif chunk == b"VP8L":
        bits = struct.unpack_from("<I", data, 21)[0]
        struct.pack_into("<I", data, 21, (w - 1) | (h - 1) << 14 | bits & ~((1 << 28) - 1))
    else:
        data[24:30] = (w - 1).to_bytes(3, "little") + (h - 1).to_bytes(3, "little")
    return bytes(data)


def bmp_claiming(w: int, h: int) -> bytes:
    data = bytearray(encoded("BMP", SMALL))
    struct.pack_into("<ii", data, 18, w, -h)          # top-down rows: a negative height
    return bytes(data)


BOMBS = {
    "JPEG": jpeg_claiming, "GIF": gif_claiming, "TIFF": tiff_claiming, "BMP": bmp_claiming,
    "WEBP": lambda w, h: webp_claiming(b"VP8 ", w, h),
    "WEBP-lossless": lambda w, h: webp_claiming(b"VP8L", w, h),
    "WEBP-extended": lambda w, h: webp_claiming(b"VP8X", w, h),
}


@pytest.mark.parametrize("kind", sorted(BOMBS))
@pytest.mark.parametrize("check", [validate, decode])
def test_bomb_just_over_the_cap_is_refused_from_its_header(kind, check):
    """A header claiming 101 x 100 pixels against a cap of 10,000 is refused, naming both; an
    image of exactly the cap (100 x 100, really encoded) is accepted."""
    fmt = kind.split("-")[0]
    with pytest.raises(ImageError) as e:
        check(BOMBS[kind](101, 100), max_pixels=10_000)
    assert e.value.reason == "too_many_pixels"
    assert f"{fmt} image is 101x100 = 10,100 pixels, over the cap of 10,000" in str(e.value)
    real = {"WEBP-lossless": encoded("WEBP", lossless=True),
            "WEBP-extended": encoded("WEBP", mode="RGBA", exif=b"Exif\0\0II*\0\x08\0\0\0\0\0")}
    image = real.get(kind) or encoded(fmt)
    size = check(image, max_pixels=10_000)
    assert (size if check is validate else size.size) == (100, 100)


@pytest.mark.parametrize("kind,claim", [("JPEG", (60000, 60000)), ("GIF", (65535, 65535)),
                                        ("TIFF", (100000, 100000)), ("WEBP", (16383, 16383)),
                                        ("WEBP-lossless", (16384, 16384)),
                                        ("WEBP-extended", (1 << 24, 1 << 24))])
def test_huge_claims_are_refused_by_the_configured_cap_not_pil(kind, claim):
    """Claims far over PIL's own limit get the configured cap's message (a few hundred bytes
    claiming billions of pixels: decoding is never attempted, nor a canvas allocated)."""
    w, h = claim
    data = BOMBS[kind](w, h)
    assert len(data) < 2000
    with pytest.raises(ImageError) as e:
        validate(data, max_pixels=50_000_000)
    assert e.value.reason == "too_many_pixels"
    assert f"is {w}x{h} = {w * h:,} pixels, over the cap of 50,000,000" in str(e.value)


def test_gif_frame_larger_than_its_screen_counts():
    """PIL grows a GIF's canvas to hold its first frame, so the frame's extent is capped too."""
    with pytest.raises(ImageError, match=r"GIF image is 200x100 = 20,000 pixels"):
        validate(gif_claiming(10, 10, frame=(200, 100)), max_pixels=10_000)


# --------------------------------------------------------------------------- ingest: 1 + 2


def test_ingest_rejects_oversized_files_and_bombs_and_goes_on(ray_local, tmp_path):
    root = tmp_path / "set"
    gt = write_gt_set(root, [(f"ok{i}.png", str(i)) for i in range(6)])
    sparse_file(root / "images" / "huge.png", 8 * GIB)
    (root / "images" / "just_over.png").write_bytes(text_image("7") + bytes(30_000))
    bombs = {"bomb.jpg": jpeg_claiming(9000, 9000), "bomb.webp": webp_claiming(b"VP8X", 9000, 9000),
             "bomb.tif": tiff_claiming(9000, 9000), "bomb.gif": gif_claiming(9000, 9000)}
    for name, data in bombs.items():
        (root / "images" / name).write_bytes(data)
    with gt.open("a") as f:
        f.write("".join(f"images/{n}\t8\n" for n in ["huge.png", "just_over.png", *bombs]))
    out = tmp_path / "out"
    manifest = ingest(IngestConfig(inputs=[str(gt)], output=str(out), charset="digits",
                                   max_file_bytes=30_000, max_pixels=50_000_000, shard_size=4))
    rejects = rejects_of(out)
    found = by_key(rejects)
    assert {k: r["reason"] for k, r in found.items()} == {
        "images/huge.png": "file_too_large", "images/just_over.png": "file_too_large",
        **{f"images/{n}": "too_many_pixels" for n in bombs}}
    assert "is 8,589,934,592 bytes: expected at most 30,000" in found["images/huge.png"]["detail"]
    for name, fmt in (("bomb.jpg", "JPEG"), ("bomb.webp", "WEBP"), ("bomb.tif", "TIFF"), ("bomb.gif", "GIF")):
        assert (f"{fmt} image is 9000x9000 = 81,000,000 pixels, over the cap of 50,000,000"
                in found[f"images/{name}"]["detail"])
    assert manifest["counts"]["written"] == 6 and manifest["counts"]["read"] == 12
    assert manifest["options"]["max_file_bytes"] == 30_000
    assert_nothing_lost(manifest, rejects)


# --------------------------------------------------------------------------- 3 + 4. JSON types


def page_png(w: int = 64, h: int = 48) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (w, h), "white").save(buf, "PNG")
    return buf.getvalue()


def aihub_with_wrong_types(root: Path) -> Path:
    (root / "images").mkdir(parents=True)
    for name, label in (("a.png", "12"), ("b.png", "34"), ("c.png", "5"), ("d.png", "6"),
                        ("e.png", "7")):
        (root / "images" / name).write_bytes(text_image(label))
    doc = {
        "images": [{"id": "a", "file_name": "a.png"}, {"id": "b", "file_name": "b.png"},
                   {"id": "c", "file_name": "c.png"}, {"id": "d", "file_name": "d.png"},
                   {"id": "e", "file_name": "e.png"}, "f.png", {"id": "g", "file_name": 7}],
        "annotations": [{"id": 1, "image_id": "a", "text": "12"},
                        {"id": 2, "image_id": "b", "text": "34"},
                        {"id": 3, "image_id": "c", "text": None},       # a null label
                        {"id": 4, "image_id": "d", "text": 6},          # a number
                        {"id": 5, "image_id": "e", "text": ["7"]},      # a list
                        "an annotation that is a string", 42, None],
    }
    path = root / "labels.json"
    path.write_text(json.dumps(doc))
    return path


AIHUB_REJECTS = {
    "c.png": "annotation 3: expected a string 'text', found null",
    "d.png": "annotation 4: expected a string 'text', found the number 6",
    "e.png": "annotation 5: expected a string 'text', found a list ['7']",
    "images[5]": "images[5]: expected an object, found the string 'f.png'",
    "image-g": "images[6]: expected a non-empty string file_name, found the number 7",
    "annotations[5]": "annotations[5]: expected an object, found the string 'an annotation that is a string'",
    "annotations[6]": "annotations[6]: expected an object, found the number 42",
    "annotations[7]": "annotations[7]: expected an object, found null",
}


def test_aihub_wrong_types_are_error_entries(tmp_path):
    entries = AihubReader(str(aihub_with_wrong_types(tmp_path / "ai"))).entries()
    assert [e.key for e in entries if not e.error] == ["a.png", "b.png"]
    assert {e.key: e.error for e in entries if e.error} == AIHUB_REJECTS


def coco_with_wrong_types(root: Path) -> Path:
    names = ["ok", "nan", "inf", "str_ann", "num_bbox", "dict_bbox", "null_cat", "list_text"]
    (root / "images").mkdir(parents=True)
    for name in names:
        (root / "images" / f"{name}.png").write_bytes(page_png())
    ids = {name: i for i, name in enumerate(names, start=1)}
    good = [2, 3, 20, 10]

    def ann(name, **kw):
        return {"image_id": ids[name], "bbox": good, "category_id": 1, "text": "12", **kw}

    doc = {
        "images": [{"id": i, "file_name": f"{n}.png"} for n, i in ids.items()] + [7],
        "categories": [{"id": 1, "name": "line"}, {"id": 2, "name": None}, "not a category"],
        "annotations": [
            ann("ok", id=1),
            ann("nan", id=2), ann("nan", id=3, bbox=[float("nan"), 3, 20, 10]),
            ann("inf", id=4), ann("inf", id=5, bbox=[2, 3, float("inf"), 10]),
            ann("num_bbox", id=6, bbox=5),                      # a number where a list was
            ann("dict_bbox", id=7, bbox={"x": 2, "y": 3, "w": 20, "h": 10}),
            ann("null_cat", id=8, category_id=2),               # its category's name is null
            ann("list_text", id=9, text=["12"]),
            "an annotation that is a string"],
    }
    path = root / "coco.json"
    path.write_text(json.dumps(doc))    # NaN and Infinity as Python's json writes them
    assert "NaN" in path.read_text() and "Infinity" in path.read_text()
    return path


COCO_REJECTS = {
    "num_bbox.png": "annotation 6: expected bbox [x, y, w, h] of 4 numbers, found the number 5",
    "dict_bbox.png": "annotation 7: expected bbox [x, y, w, h] of 4 numbers, found an object "
                     "{'x': 2, 'y': 3, 'w': 20, 'h': 10}",
    "null_cat.png": "annotation 8: category 2 expected a non-empty string name, found null",
    "list_text.png": "annotation 9: expected a string text, found a list ['12']",
    "images[8]": "images[8]: expected an object, found the number 7",
    "annotations[9]": "annotations[9]: expected an object, found the string 'an annotation that is a string'",
}


def test_coco_wrong_types_are_error_entries(tmp_path):
    entries = CocoReader(str(coco_with_wrong_types(tmp_path / "coco"))).entries()
    assert {e.key: e.error for e in entries if e.error} == COCO_REJECTS
    assert [e.key for e in entries if not e.error] == ["ok.png", "nan.png", "inf.png", "str_ann.png"]


def labelme_with_wrong_types(root: Path) -> Path:
    root.mkdir(parents=True)

    def rect(points=((2, 3), (30, 20)), **kw):
        return {"label": "12", "shape_type": "rectangle", "points": [list(p) for p in points], **kw}

    sidecars = {
        "ok": {"shapes": [rect()], "imagePath": "ok.png"},
        "nan": {"shapes": [rect(), {"label": "34", "points": [[float("nan"), 5], [4, 30], [40, 25]]}],
                "imagePath": "nan.png"},
        "inf": {"shapes": [rect(points=((2, 3), (float("-inf"), 20)))], "imagePath": "inf.png"},
        "null_label": {"shapes": [rect(), rect(label=None)], "imagePath": "null_label.png"},
        "is_list": [rect()],
        "shapes_dict": {"shapes": {"0": rect()}, "imagePath": "shapes_dict.png"},
        "shape_str": {"shapes": ["a shape that is a string"], "imagePath": "shape_str.png"},
        "points_num": {"shapes": [{"label": "1", "points": 5}], "imagePath": "points_num.png"},
        "points_str": {"shapes": [{"label": "1", "points": [["1", "2"], ["30", "20"]]}],
                       "imagePath": "points_str.png"},
        "text_dict": {"shapes": [rect(text={"value": "12"})], "imagePath": "text_dict.png"},
        "path_num": {"shapes": [rect()], "imagePath": 5},
    }
    for name, doc in sidecars.items():
        (root / f"{name}.png").write_bytes(page_png())
        (root / f"{name}.json").write_text(json.dumps(doc))
    return root


LABELME_REJECTS = {
    "is_list.json": "bad LabelMe JSON: expected a JSON object, found a list",
    "shapes_dict.json": "bad LabelMe JSON: expected a list 'shapes', found an object",
    "shape_str.json": "bad LabelMe JSON: shapes[0]: expected an object, found the string",
    "points_num.json": "bad LabelMe JSON: polygon shape '1': expected at least 2 [x, y] points, "
                       "found the number 5",
    "points_str.json": "bad LabelMe JSON: polygon shape '1': expected at least 2 [x, y] points, "
                       "found a list [['1', '2'], ['30', '20']]",
    "text_dict.json": "bad LabelMe JSON: shape field 'text': expected a string, found an object",
    "path_num.json": "bad LabelMe JSON: expected a string imagePath, found the number 5",
}


def test_labelme_wrong_types_are_error_entries(tmp_path):
    entries = LabelmeReader(str(labelme_with_wrong_types(tmp_path / "lm"))).entries()
    errors = {e.key: e.error for e in entries if e.error}
    assert errors.keys() == LABELME_REJECTS.keys()
    for key, start in LABELME_REJECTS.items():
        assert errors[key].startswith(start), (key, errors[key])
    nan_page = next(e for e in entries if e.key == "nan.json")
    hidden = nan_page.boxes[1]       # min() and max() would have dropped the NaN x
    assert hidden.x0 != hidden.x0 and hidden.x1 != hidden.x1 and (hidden.y0, hidden.y1) == (5, 30)


def test_ingest_json_layouts_reject_wrong_types(ray_local, tmp_path):
    """aihub (recognition), then coco and labelme (detection): every wrong type is a reject
    with its sentence, the good samples are written, the counts add up."""
    out = tmp_path / "ai_out"
    manifest = ingest(IngestConfig(inputs=[str(aihub_with_wrong_types(tmp_path / "ai"))],
                                   output=str(out), charset="digits"))
    rejects = rejects_of(out)
    assert {k: (r["reason"], r["detail"]) for k, r in by_key(rejects).items()} == \
        {k: ("bad_index", v) for k, v in AIHUB_REJECTS.items()}
    assert manifest["counts"]["written"] == 2
    assert_nothing_lost(manifest, rejects)

    out = tmp_path / "det_out"
    manifest = ingest(IngestConfig(inputs=[str(coco_with_wrong_types(tmp_path / "coco")),
                                           str(labelme_with_wrong_types(tmp_path / "lm"))],
                                   output=str(out)))
    rejects = rejects_of(out)
    pages = {(r["source"], r["key"]): r for r in rejects if "box" not in r}
    assert {k: r["detail"] for (src, k), r in pages.items() if src == "coco.json"} == COCO_REJECTS
    for key, start in LABELME_REJECTS.items():
        assert pages[("lm", key)]["detail"].startswith(start)
    assert pages[("lm", "inf.json")]["reason"] == "bad_box"      # its only box: the page goes
    assert "box 0 (-inf, 3, 2, 20): expected finite coordinates, found x0 = -inf" in \
        pages[("lm", "inf.json")]["detail"]
    boxes = {(r["source"], r["key"]): r for r in rejects if "box" in r}
    assert set(boxes) == {("coco.json", "nan.png"), ("coco.json", "inf.png"), ("lm", "nan.json"),
                          ("lm", "null_label.json")}
    nan_box = boxes[("coco.json", "nan.png")]
    assert nan_box["reason"] == "bad_box" and nan_box["box"] == \
        {"index": 1, "x0": None, "y0": 3.0, "x1": None, "y1": 13.0}
    assert nan_box["detail"] == \
        "box 1 (nan, 3, nan, 13): expected finite coordinates, found x0 = nan, x1 = nan"
    assert boxes[("coco.json", "inf.png")]["detail"] == \
        "box 1 (2, 3, inf, 13): expected finite coordinates, found x1 = inf"
    assert boxes[("lm", "nan.json")]["detail"].startswith("box 1 (nan, 5, nan, 30): expected finite")
    assert boxes[("lm", "null_label.json")]["reason"] == "empty_label"
    written = {r["key"] for t in shards.read_rows(str(out)) for r in t.to_pylist()}
    assert written == {"ok.png", "nan.png", "inf.png", "str_ann.png", "ok.json", "nan.json",
                       "null_label.json"}
    assert_nothing_lost(manifest, rejects)


# --------------------------------------------------------------------------- 5. LMDB num-samples


def write_lmdb(path: Path, samples: list[tuple[bytes, str]], num_samples: int,
               extra: dict[bytes, bytes] | None = None) -> Path:
    """An LMDB as create_lmdb_dataset.py writes it, with ``num-samples`` set to any number."""
    env = lmdb.open(str(path), map_size=1 << 26)
    with env.begin(write=True) as txn:
        for i, (image, label) in enumerate(samples, start=1):
            txn.put(b"image-%09d" % i, image)
            txn.put(b"label-%09d" % i, label.encode())
        for key, value in (extra or {}).items():
            txn.put(key, value)
        txn.put(b"num-samples", str(num_samples).encode())
    env.close()
    return path


def test_lmdb_num_samples_larger_than_its_keys_is_reported_not_trusted(tmp_path, caplog):
    samples = [(text_image(str(i)), str(i)) for i in range(1, 4)]
    reader = LmdbReader(str(write_lmdb(tmp_path / "db", samples, num_samples=1000)))
    entries = reader.entries()
    assert [e.label for e in entries[:3]] == ["1", "2", "3"]
    assert entries[3] == Entry(key="num-samples", error=(
        "num-samples is 1,000 but the LMDB holds label or image keys for only 3 of samples 1 to "
        "1,000: 997 are absent (the first 000000004)"))
    assert "997 are absent" in caplog.text
    started = time.perf_counter()            # a count of 10^15 is not looped over
    huge = LmdbReader(str(write_lmdb(tmp_path / "huge", samples, num_samples=10**15))).entries()
    assert time.perf_counter() - started < 2.0 and len(huge) == 4
    assert "999,999,999,999,997 are absent" in huge[3].error


def test_lmdb_keys_beyond_num_samples_and_gaps_are_error_entries(tmp_path):
    samples = [(text_image(str(i)), str(i)) for i in range(1, 6)]
    extra = {b"image-000000009": text_image("9"), b"label-000000009": b"9", b"image-abc": b"x"}
    path = write_lmdb(tmp_path / "db", samples, num_samples=7, extra=extra)
    env = lmdb.open(str(path), map_size=1 << 26)
    with env.begin(write=True) as txn:        # a gap: sample 2 has neither key
        txn.delete(b"image-000000002")
        txn.delete(b"label-000000002")
    env.close()
    entries = {e.key: e for e in LmdbReader(str(path)).entries()}
    assert sorted(entries) == ["000000001", "000000003", "000000004", "000000005", "000000009",
                               "num-samples"]
    assert entries["000000009"].error == ("sample 000000009 is beyond num-samples: expected keys "
                                          "000000001 to 000000007, found 000000009")
    assert entries["num-samples"].error.startswith(
        "num-samples is 7 but the LMDB holds label or image keys for only 4 of samples 1 to 7: "
        "3 are absent (the first 000000002)")


def test_ingest_lmdb_with_a_wrong_count_and_an_oversized_value(ray_local, tmp_path):
    samples = [(text_image(str(i)), str(i)) for i in range(1, 6)]
    samples.append((text_image("6") + bytes(40_000), "6"))    # a value over the byte cap
    src = write_lmdb(tmp_path / "src", samples, num_samples=50)
    out = tmp_path / "out"
    manifest = ingest(IngestConfig(inputs=[str(src)], output=str(out), charset="digits",
                                   max_file_bytes=20_000))
    rejects = rejects_of(out)
    found = by_key(rejects)
    assert {k: r["reason"] for k, r in found.items()} == {"000000006": "file_too_large",
                                                          "num-samples": "bad_index"}
    assert "image-000000006 is 40," in found["000000006"]["detail"]
    assert "expected at most 20,000 (max_file_bytes)" in found["000000006"]["detail"]
    assert found["num-samples"]["detail"].startswith(
        "num-samples is 50 but the LMDB holds label or image keys for only 6 of samples 1 to 50: "
        "44 are absent")
    c = manifest["counts"]
    assert (c["read"], c["written"], c["rejected"]) == (7, 5, 2)
    assert_nothing_lost(manifest, rejects)


# --------------------------------------------------------------------------- 6. LMDB cache


@pytest.fixture
def own_tempdir(tmp_path, monkeypatch):
    """A temp folder for this test alone, as TMPDIR would give (tempfile reads it once)."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setattr("tempfile.tempdir", str(folder))
    return folder


def another_users_folder(path: Path) -> Path:
    """A folder owned by someone else: made and given away when running as root; otherwise
    the root folder "/", which belongs to root."""
    if os.getuid() != 0:
        return Path("/")
    path.mkdir(mode=0o700)
    os.chown(path, 65534, 65534)      # nobody
    return path


def test_cache_folder_is_private_to_its_user(own_tempdir):
    old_umask = os.umask(0)           # the most permissive umask: the mode must still be 0700
    try:
        folder = lmdb_module.cache_dir("s3://bucket/lmdb")
    finally:
        os.umask(old_umask)
    root = Path(folder).parent
    assert root == own_tempdir / f"ocr-lmdb-cache-{os.getuid()}"
    info = os.lstat(root)
    assert stat.S_IMODE(info.st_mode) == 0o700 and info.st_uid == os.getuid()
    assert lmdb_module.cache_dir("s3://bucket/lmdb") == folder      # reused


def test_cache_folder_of_another_user_or_open_or_a_link_is_refused(own_tempdir, tmp_path):
    planted = another_users_folder(tmp_path / "planted")
    with pytest.raises(PermissionError, match=r"expected a folder owned by uid \d+ with mode 0700, "
                                              r"found a folder owned by uid (0|65534)"):
        lmdb_module.private_dir(str(planted))
    open_folder = tmp_path / "open"
    open_folder.mkdir()
    open_folder.chmod(0o777)
    with pytest.raises(PermissionError, match="with mode 0777"):
        lmdb_module.private_dir(str(open_folder))
    mine = tmp_path / "mine"
    mine.mkdir(mode=0o700)
    link = own_tempdir / f"ocr-lmdb-cache-{os.getuid()}"
    link.symlink_to(mine)             # a link planted where the cache goes
    with pytest.raises(PermissionError, match="found a link or file"):
        lmdb_module.cache_dir("s3://bucket/lmdb")


def test_s3_lmdb_is_cached_privately_and_a_planted_cache_is_refused(s3_bucket, own_tempdir, tmp_path):
    s3 = S3Settings.from_env()
    src = write_lmdb(tmp_path / "src", [(text_image("1"), "1")], num_samples=1)
    uri = f"s3://{s3_bucket}/lmdb/train"
    storage.write_bytes(f"{uri}/data.mdb", (src / "data.mdb").read_bytes(), s3)
    reader = LmdbReader(uri, s3=s3)
    assert reader.entries() == [Entry(key="000000001", label="1")]
    folder = Path(lmdb_module.cache_dir(uri))
    for path in (folder.parent, folder):
        assert stat.S_IMODE(os.lstat(path).st_mode) == 0o700
    reader.release()
    # someone else's folder where the cache goes, holding a data.mdb of their choosing
    cache_root = folder.parent
    for f in folder.iterdir():
        f.unlink()
    folder.rmdir()
    cache_root.rmdir()
    if os.getuid() == 0:
        planted = another_users_folder(cache_root)
        (planted / folder.name).mkdir()
        write_lmdb(planted / folder.name, [(text_image("6"), "planted")], num_samples=1)
    else:
        cache_root.symlink_to("/")
    with pytest.raises(PermissionError, match="LMDB cache .*ocr-lmdb-cache"):
        LmdbReader(uri, s3=s3).entries()


def test_pyarrow_floor_is_past_cve_2023_47248():
    """PyExtensionType deserialisation (CVE-2023-47248) is fixed in pyarrow 14.0.1: the package
    requires at least that, and what is installed is at least that."""
    import re
    from importlib.metadata import version
    from pathlib import Path

    from packaging.requirements import Requirement
    from packaging.version import Version

    pyproject = (Path(__file__).parents[1] / "pyproject.toml").read_text()
    (line,) = re.findall(r'^\s*"(pyarrow[^"]*)"', pyproject, re.M)
    req = Requirement(line)
    assert not req.specifier.contains("14.0.0") and req.specifier.contains("14.0.1"), req
    assert Version(version("pyarrow")) >= Version("14.0.1")
