"""`ocr ingest` on a real local Ray: every reject reason, counts, determinism, LMDB, S3."""

from __future__ import annotations

import io
import json
import struct
import zlib
from pathlib import Path

import lmdb
import pyarrow.parquet as pq
import pytest
from conftest import noise_png, text_image, write_gt_set

from ocr.cli import main
from ocr.data import shards
from ocr.data.config import IngestConfig
from ocr.data.ingest import ingest


def _huge_png_header(w: int, h: int) -> bytes:
    """A valid-looking PNG that claims w x h pixels but is only a few bytes (a bomb)."""
    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + \
        chunk(b"IEND", b"")


def _rejects(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "rejects.jsonl").read_text().splitlines()]


def _check_counts(manifest: dict) -> None:
    c = manifest["counts"]
    assert c["read"] == c["written"] + c["rejected"]
    for row in c["per_split"].values():
        assert row["read"] == row["written"] + row["rejected"]
    assert sum(r["total"] for r in c["per_reason"].values()) == c["rejected"]
    per_split_reason = {}
    for row in c["per_reason"].values():
        for split, n in row.items():
            if split != "total":
                per_split_reason[split] = per_split_reason.get(split, 0) + n
    for split, row in c["per_split"].items():
        assert per_split_reason.get(split, 0) == row["rejected"]
    assert sum(s["rows"] for s in manifest["shards"]) == c["written"]


@pytest.fixture
def messy_set(tmp_path) -> Path:
    """A gt set with one sample for every reject reason, and good ones around them."""
    root = tmp_path / "messy"
    gt = write_gt_set(root, [(f"ok{i}.png", str(i)) for i in range(20)])
    img = root / "images"
    (img / "trunc.png").write_bytes(text_image("123")[:-30])
    (img / "zero.png").write_bytes(b"")
    (img / "text.png").write_bytes(b"hello, not an image")
    (img / "bomb.png").write_bytes(_huge_png_header(30000, 30000))
    (img / "narrow.png").write_bytes(noise_png(12, 32))
    (img / "long.png").write_bytes(noise_png(400, 32))
    (img / "folder.png").mkdir()  # a directory where an image should be: unreadable
    (img / "empty.png").write_bytes(text_image("1"))
    (img / "abc.png").write_bytes(text_image("12a"))
    (img / "bell.png").write_bytes(text_image("12"))
    (tmp_path / "outside.png").write_bytes(text_image("9"))
    extra = [
        "images/trunc.png\t123", "images/zero.png\t1", "images/text.png\t2", "images/bomb.png\t3",
        "images/narrow.png\t12345", "images/long.png\t1234567", "images/folder.png\t5",
        "images/empty.png\t", "images/abc.png\t12a", "images/bell.png\t1\a2",
        "images/missing.png\t4", "../outside.png\t9", "a line without a tab", "images/ok1.png\t1",
    ]
    with gt.open("a") as f:
        f.write("\n".join(extra) + "\n")
    return gt


EXPECTED = {
    "images/trunc.png": "corrupt_image", "images/zero.png": "zero_byte",
    "images/text.png": "not_an_image", "images/bomb.png": "too_many_pixels",
    "images/narrow.png": "ctc_infeasible", "images/long.png": "label_too_long",
    "images/folder.png": "unreadable_file", "images/empty.png": "empty_label",
    "images/abc.png": "out_of_charset", "images/missing.png": "missing_file",
    "../outside.png": "path_escapes_root", "line-33": "bad_index", "images/ok1.png": "duplicate_id",
    "images/bell.png": "bad_character",
}


def test_every_reject_reason(ray_local, messy_set, tmp_path, capsys):
    out = tmp_path / "out"
    rc = main(["ingest", str(messy_set), "--output", str(out), "--charset", "digits",
               "--max-pixels", "1000000", "--max-label-length", "6", "--shard-size", "8"])
    assert rc == 0
    rejects = {r["key"]: r for r in _rejects(out)}
    assert {k: r["reason"] for k, r in rejects.items()} == EXPECTED
    assert all(r["source"] == "gt.txt" and r["detail"] and r["split"] for r in rejects.values())
    assert "30000x30000" in rejects["images/bomb.png"]["detail"]
    assert "needs 5 CTC steps" in rejects["images/narrow.png"]["detail"]
    assert "7 symbols, over the maximum of 6" in rejects["images/long.png"]["detail"]
    assert rejects["images/bell.png"]["detail"].startswith("U+0007 BELL (a control character) at index 1")
    manifest = shards.read_manifest(str(out))
    _check_counts(manifest)
    assert manifest["counts"]["read"] == 34 and manifest["counts"]["unit"] == "image"
    assert manifest["counts"]["written"] == 20
    assert manifest["charset"]["spec"] == "digits"
    printed = capsys.readouterr().out
    assert "rejected by reason" in printed and "too_many_pixels" in printed


def test_links_out_of_the_root_are_rejected_in_the_tasks(ray_local, tmp_path):
    """The gt index reaches the tasks as its lines (their folders looked up once on the
    driver), and the paths are joined there: a link out of the root is rejected, a link
    inside is read through to its target."""
    gt = write_gt_set(tmp_path / "set", [("a.png", "1"), ("b.png", "2")])
    (tmp_path / "far.png").write_bytes(text_image("3"))
    images = tmp_path / "set" / "images"
    (images / "out.png").symlink_to(tmp_path / "far.png")
    (images / "in.png").symlink_to(images / "a.png")
    with gt.open("a") as f:
        f.write("images/out.png\t3\nimages/in.png\t1\n")
    out = tmp_path / "out"
    manifest = ingest(IngestConfig(inputs=[str(gt)], output=str(out), charset="digits"))
    assert {r["key"]: r["reason"] for r in _rejects(out)} == {"images/out.png": "path_escapes_root"}
    rows = [r for s in manifest["shards"] for r in pq.read_table(out / s["path"]).to_pylist()]
    linked = next(r for r in rows if r["key"] == "images/in.png")
    assert linked["image"] == (images / "a.png").read_bytes() and manifest["counts"]["written"] == 3


def test_rows_follow_the_schema(ray_local, messy_set, tmp_path):
    out = tmp_path / "out"
    manifest = ingest(IngestConfig(inputs=[str(messy_set)], output=str(out), charset="digits",
                                   max_label_length=6))
    rows = []
    for s in manifest["shards"]:
        table = pq.read_table(out / s["path"])
        assert table.schema.equals(shards.schema("recognition"))
        assert set(table["split"].to_pylist()) == {s["split"]}
        rows += table.to_pylist()
    assert sorted(r["label"] for r in rows) == sorted(str(i) for i in range(20))
    ok3 = next(r for r in rows if r["key"] == "images/ok3.png")
    assert ok3["image"] == (messy_set.parent / "images" / "ok3.png").read_bytes()
    assert (ok3["width"], ok3["height"]) == (100, 32)


def test_rerun_is_identical(ray_local, messy_set, tmp_path):
    outs = [tmp_path / "a", tmp_path / "b"]
    for out in outs:
        ingest(IngestConfig(inputs=[str(messy_set)], output=str(out), charset="digits",
                            shard_size=8))
    files = sorted(p.relative_to(outs[0]) for p in outs[0].rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(outs[1]) for p in outs[1].rglob("*") if p.is_file())
    for f in files:
        assert (outs[0] / f).read_bytes() == (outs[1] / f).read_bytes(), f


def test_drop_out_of_charset_symbols(ray_local, tmp_path):
    gt = write_gt_set(tmp_path / "d", [("a.png", "1-2"), ("b.png", "34"), ("c.png", "--")])
    out = tmp_path / "out"
    manifest = ingest(IngestConfig(inputs=[str(gt)], output=str(out), charset="digits",
                                   out_of_charset="drop"))
    labels = {r["key"]: r["label"] for t in shards.read_rows(str(out)) for r in t.to_pylist()}
    assert labels == {"images/a.png": "12", "images/b.png": "34"}
    assert manifest["dropped_symbols"] == {"-": 1}  # "--" is rejected, not counted
    assert [r["reason"] for r in _rejects(out)] == ["empty_label"]


def test_given_splits_and_nfc(ray_local, tmp_path):
    decomposed = "\u1100\u1161"  # 가 as jamo
    train = write_gt_set(tmp_path / "s", [("a.png", decomposed), ("b.png", "나")], "gt_train.txt")
    val = write_gt_set(tmp_path / "s", [("c.png", "다")], "gt_val.txt")
    out = tmp_path / "out"
    manifest = ingest(IngestConfig(inputs=[f"train={train}", f"val={val}"], output=str(out)))
    assert set(manifest["counts"]["per_split"]) == {"train", "val"}
    assert manifest["charset"]["symbols"] == ["가", "나", "다"]
    rows = [r for t in shards.read_rows(str(out), split="train") for r in t.to_pylist()]
    assert sorted(r["label"] for r in rows) == ["가", "나"]


def test_bad_config_refused_before_work(tmp_path, capsys):
    gt = write_gt_set(tmp_path / "c", [("a.png", "1")])
    assert main(["ingest", str(gt), "--output", str(tmp_path / "o"), "--splits", "train=0.5,dev=0.5"]) == 2
    assert "unknown split 'dev'" in capsys.readouterr().err
    assert main(["ingest", str(gt), "--output", str(tmp_path / "o"), "--charset", "klingon"]) == 2
    assert "unknown charset" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_nothing_written_exits_nonzero(ray_local, tmp_path):
    gt = write_gt_set(tmp_path / "n", [("a.png", "abc")])
    assert main(["ingest", str(gt), "--output", str(tmp_path / "o"), "--charset", "digits"]) == 1
    assert _rejects(tmp_path / "o")[0]["reason"] == "out_of_charset"


def _write_lmdb(path: Path, samples: list[tuple[bytes, str]]) -> None:
    env = lmdb.open(str(path), map_size=1 << 26)
    with env.begin(write=True) as txn:
        for i, (image, label) in enumerate(samples, start=1):
            txn.put(b"image-%09d" % i, image)
            txn.put(b"label-%09d" % i, label.encode())
        txn.put(b"num-samples", str(len(samples)).encode())
    env.close()


def _lmdb_items(path: Path) -> dict:
    env = lmdb.open(str(path), readonly=True, lock=False)
    with env.begin() as txn:
        items = dict(txn.cursor())
    env.close()
    return items


def test_lmdb_round_trip_is_exact(ray_local, tmp_path):
    samples = [(text_image(f"{i}x{i}"), f"{i} {i}") for i in range(1, 40)]
    _write_lmdb(tmp_path / "src", samples)
    out = tmp_path / "shards"
    manifest = ingest(IngestConfig(inputs=[str(tmp_path / "src")], output=str(out), shard_size=16))
    assert manifest["sources"][0]["layout"] == "lmdb"
    assert manifest["counts"]["written"] == 39 and len(manifest["counts"]["per_split"]) > 1
    assert main(["export-lmdb", str(out), str(tmp_path / "back")]) == 0
    assert _lmdb_items(tmp_path / "back") == _lmdb_items(tmp_path / "src")


def test_s3_in_and_out(ray_local, s3_bucket, tmp_path):
    import boto3

    gt = write_gt_set(tmp_path / "s3src", [(f"{i}.png", str(i)) for i in range(12)])
    client = boto3.client("s3")
    for f in sorted((tmp_path / "s3src").rglob("*")):
        if f.is_file():
            client.upload_file(str(f), s3_bucket, f"raw/{f.relative_to(tmp_path / 's3src')}")
    with gt.open("a") as fh:
        fh.write("images/none.png\t5\n")
    client.upload_file(str(gt), s3_bucket, "raw/gt.txt")
    out = f"s3://{s3_bucket}/shards"
    manifest = ingest(IngestConfig(inputs=[f"s3://{s3_bucket}/raw/gt.txt"], output=out,
                                   charset="digits", shard_size=5))
    assert manifest["counts"]["written"] == 12 and manifest["counts"]["rejected"] == 1
    listed = {o["Key"] for o in client.list_objects_v2(Bucket=s3_bucket, Prefix="shards/")["Contents"]}
    assert {"shards/manifest.json", "shards/rejects.jsonl"} <= listed
    assert {f"shards/{s['path']}" for s in manifest["shards"]} <= listed
    rows = [r for t in shards.read_rows(out) for r in t.to_pylist()]
    assert sorted(int(r["label"]) for r in rows) == list(range(12))
    body = client.get_object(Bucket=s3_bucket, Key="shards/rejects.jsonl")["Body"].read()
    assert json.loads(body)["reason"] == "missing_file"
    # and back to local: the same rows
    local = tmp_path / "local"
    ingest(IngestConfig(inputs=[str(gt)], output=str(local), charset="digits", shard_size=5))
    local_rows = [r for t in shards.read_rows(str(local)) for r in t.to_pylist()]
    assert sorted((r["id"], r["image"]) for r in local_rows) == sorted((r["id"], r["image"]) for r in rows)


def test_detection_layouts(ray_local, tmp_path):
    from PIL import Image

    root = tmp_path / "coco"
    (root / "images").mkdir(parents=True)
    buf = io.BytesIO()
    Image.new("RGB", (64, 48), "white").save(buf, "PNG")
    (root / "images" / "p.png").write_bytes(buf.getvalue())
    (root / "images" / "q.png").write_bytes(buf.getvalue())
    coco = {"images": [{"id": 1, "file_name": "p.png", "width": 64, "height": 48},
                       {"id": 2, "file_name": "q.png", "width": 64, "height": 48}],
            "categories": [{"id": 1, "name": "line"}],
            "annotations": [{"image_id": 1, "bbox": [2, 3, 20, 10], "category_id": 1, "text": "12"},
                            {"image_id": 2, "bbox": [1, 1, 10, 10], "category_id": 1},
                            {"image_id": 2, "bbox": [200, 3, 20, 10], "category_id": 1}]}
    (root / "ann.json").write_text(json.dumps(coco))
    out = tmp_path / "out"
    manifest = ingest(IngestConfig(inputs=[str(root / "ann.json")], output=str(out)))
    assert manifest["task"] == "detection"
    rows = [r for t in shards.read_rows(str(out)) for r in t.to_pylist()]
    boxes = {r["key"]: r["boxes"] for r in rows}
    assert boxes == {"p.png": [{"x0": 2.0, "y0": 3.0, "x1": 22.0, "y1": 13.0, "label": "line",
                                "text": "12"}],
                     "q.png": [{"x0": 1.0, "y0": 1.0, "x1": 11.0, "y1": 11.0, "label": "line",
                                "text": ""}]}  # its bad box is rejected, not the page
    reject, = _rejects(out)
    assert (reject["key"], reject["reason"], reject["box"]["index"]) == ("q.png", "bad_box", 1)
    c = manifest["counts"]
    assert (c["unit"], c["read"], c["written"], c["rejected"]) == ("image", 2, 2, 0)
    assert {k: c["boxes"][k] for k in ("unit", "read", "written", "rejected", "clipped")} == \
        {"unit": "box", "read": 3, "written": 2, "rejected": 1, "clipped": 0}
