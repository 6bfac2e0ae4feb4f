"""Every input layout reader on tiny real fixtures (local files, a real LMDB, a local S3)."""

from __future__ import annotations

import io
import json
import os
import pickle

import lmdb
import pytest
from PIL import Image

from ocr import storage
from ocr.data.formats import (
    READERS,
    AihubReader,
    Box,
    CocoReader,
    Entry,
    FilenameReader,
    GtReader,
    LabelmeReader,
    LabelsReader,
    LmdbReader,
    ReaderOptions,
    detect_layout,
    get_reader,
    lmdb_reader,
    locate,
)
from ocr.storage import S3Settings


def png(path, shade: int = 0) -> bytes:
    """Write a tiny PNG at ``path`` (folders created) and return its bytes."""
    buf = io.BytesIO()
    Image.new("L", (6, 3), shade).save(buf, format="PNG")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(buf.getvalue())
    return buf.getvalue()


def write(path, text: str, encoding: str = "utf-8") -> str:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding=encoding, newline="") as f:
        f.write(text)
    return str(path)


def by_key(entries):
    return {e.key: e for e in entries}


# --------------------------------------------------------------------------- gt / labels


def test_gt_lines_labels_errors_and_load(tmp_path):
    a = png(tmp_path / "test" / "a.png", 10)
    png(tmp_path / "test" / "b.png", 20)
    gt = write(tmp_path / "gt_test.txt",
               "\ufefftest/a.png\t여기에 있는\r\n"          # BOM, CRLF, inner space kept
               "\n   \n"                                   # blank lines skipped
               "test/b.png\tx\ty \r\n"                     # label keeps the tab and trailing space
               "test/00000011.png   여기에\n"               # spaces, not a tab (seed 000)
               "../x.png\tescape\n"
               "/etc/passwd\tabsolute\n"
               "\tno path\n"
               "test/missing.png\tlater\n")
    reader = GtReader(gt)
    entries = reader.entries()
    assert [e.key for e in entries] == ["test/a.png", "test/b.png", "line-5", "../x.png",
                                        "/etc/passwd", "line-8", "test/missing.png"]
    e = by_key(entries)
    assert e["test/a.png"].label == "여기에 있는"
    assert e["test/a.png"].path == os.path.realpath(tmp_path / "test" / "a.png")
    assert e["test/b.png"].label == "x\ty "
    assert e["line-5"].error == "line 5: no separator '\\t' found"
    assert e["../x.png"].error == "path escapes the dataset root: ../x.png"
    assert e["../x.png"].path is None
    assert e["/etc/passwd"].error == "path escapes the dataset root: /etc/passwd"
    assert e["line-8"].error == "line 8: empty image path"
    assert e["test/missing.png"].error is None          # existence is not checked when indexing
    assert reader.load(e["test/a.png"]) == a
    with pytest.raises(OSError):
        reader.load(e["test/missing.png"])
    assert reader.source == "gt_test.txt"


def test_gt_separator_override_and_image_root(tmp_path):
    png(tmp_path / "imgs" / "a.png")
    gt = write(tmp_path / "lists" / "gt.txt", "a.png hello world\tagain\nb.png|x\n")
    entries = GtReader(gt, ReaderOptions(separator=" ", image_root=str(tmp_path / "imgs"))).entries()
    assert entries[0] == Entry(key="a.png", path=os.path.realpath(tmp_path / "imgs" / "a.png"),
                               label="hello world\tagain")
    assert entries[1].error == "line 2: no separator ' ' found"
    pipe = GtReader(gt, ReaderOptions(separator="|")).entries()
    assert pipe[1].label == "x" and pipe[1].path == os.path.realpath(tmp_path / "lists" / "b.png")
    with pytest.raises(ValueError, match="separator"):
        GtReader(gt, ReaderOptions(separator="")).entries()


def test_labels_txt_images_folder_and_fallback(tmp_path):
    data = png(tmp_path / "made1" / "images" / "0.jpg")
    labels = write(tmp_path / "made1" / "labels.txt", "0.jpg 여기가\n1.jpg 라벨이 있는 곳\nnolabel\n")
    reader = LabelsReader(labels)
    entries = reader.entries()
    assert [(e.key, e.label) for e in entries[:2]] == [("0.jpg", "여기가"), ("1.jpg", "라벨이 있는 곳")]
    assert entries[0].path == os.path.realpath(tmp_path / "made1" / "images" / "0.jpg")
    assert entries[2].error == "line 3: no separator ' ' found"
    assert reader.load(entries[0]) == data
    flat = write(tmp_path / "flat" / "labels.txt", "0.jpg zero\n")
    assert LabelsReader(flat).entries()[0].path == os.path.realpath(tmp_path / "flat" / "0.jpg")
    other = LabelsReader(flat, ReaderOptions(image_root=str(tmp_path / "made1" / "images")))
    assert other.entries()[0].path == entries[0].path
    assert LabelsReader(labels, ReaderOptions(separator="\t")).entries()[0].error is not None


# --------------------------------------------------------------------------- aihub


def test_aihub_json_misspelt_key_missing_and_duplicates(tmp_path):
    data = png(tmp_path / "htr" / "images" / "00000002.png")
    doc = {
        "info": {}, "licenses": [],
        "images": [
            {"id": "00000002", "width": 6, "height": 3, "file_name": "00000002.png"},
            {"id": "00000003", "width": 6, "height": 3, "file_name": "00000003.png"},
            {"id": 4, "width": 6, "height": 3, "file_name": "../../secret.png"},
            {"id": "00000005", "width": 6, "height": 3, "file_name": "00000005.png"},
        ],
        "annoations": [
            {"id": "a2", "image_id": "00000002", "text": "여기가 라벨",
             "attributes": {"type": "문장"}},
            {"id": "a4", "image_id": "4", "text": "escape"},
            {"id": "a9", "image_id": "00000009", "text": "orphan"},
            {"id": "a2b", "image_id": "00000002", "text": "second"},
            {"id": "a5", "image_id": "00000005"},
        ],
    }
    uri = write(tmp_path / "htr" / "handwriting_data_info1.json", json.dumps(doc, ensure_ascii=False))
    reader = AihubReader(uri)
    entries = reader.entries()
    assert [(e.key, e.label, e.error) for e in entries] == [
        ("00000002.png", "여기가 라벨", None),
        ("00000002.png", "second", None),          # duplicate key: ingest rejects it centrally
        ("00000003.png", None, "no annotation"),
        ("../../secret.png", None, "path escapes the dataset root: ../../secret.png"),
        ("00000005.png", None, "annotation 'a5': expected a string 'text', found null"),
        ("annotation-a9", None, "image_id '00000009' names no image"),
    ]
    assert entries[0].path == os.path.realpath(tmp_path / "htr" / "images" / "00000002.png")
    assert reader.load(entries[0]) == data
    bad = write(tmp_path / "bad.json", '{"images": [], "labels": []}')
    with pytest.raises(ValueError, match="annoations"):
        AihubReader(bad).entries()


# --------------------------------------------------------------------------- filename


def test_filename_prefix_and_stem(tmp_path):
    root = tmp_path / "outputs"
    data = png(root / "0000_1234.png")
    png(root / "a_b_7.JPG")
    png(root / "sub" / "42_0.jpeg")
    png(root / "noindex.png")
    write(root / "notes.txt", "ignored")
    write(root / "sub" / "readme.md", "ignored")
    reader = FilenameReader(str(root))
    entries = reader.entries()
    assert [(e.key, e.label, e.error) for e in entries] == [
        ("0000_1234.png", "0000", None),
        ("a_b_7.JPG", "a_b", None),
        ("noindex.png", None, ("file name 'noindex.png' has no '_': "
                               "expected LABEL_INDEX.ext (filename_style 'prefix')")),
        ("sub/42_0.jpeg", "42", None),
    ]
    assert entries[0].path == os.path.realpath(root / "0000_1234.png")
    assert reader.load(entries[0]) == data
    stem = FilenameReader(str(root), ReaderOptions(filename_style="stem")).entries()
    assert [(e.key, e.label) for e in stem] == [
        ("0000_1234.png", "0000_1234"), ("a_b_7.JPG", "a_b_7"), ("noindex.png", "noindex"),
        ("sub/42_0.jpeg", "42_0")]
    only_png = FilenameReader(str(root), ReaderOptions(extensions=("PNG",))).entries()
    assert [e.key for e in only_png] == ["0000_1234.png", "noindex.png"]
    with pytest.raises(ValueError, match="filename_style"):
        FilenameReader(str(root), ReaderOptions(filename_style="suffix")).entries()
    with pytest.raises(FileNotFoundError):
        FilenameReader(str(tmp_path / "nope")).entries()


def test_filename_symlink_escaping_root_is_an_error(tmp_path):
    png(tmp_path / "outside" / "9_1.png")
    os.makedirs(tmp_path / "root")
    os.symlink(tmp_path / "outside" / "9_1.png", tmp_path / "root" / "9_1.png")
    [entry] = FilenameReader(str(tmp_path / "root")).entries()
    assert entry.error == "path escapes the dataset root: 9_1.png" and entry.path is None


def test_gt_symlinks_are_followed_inside_the_root_and_refused_outside(tmp_path):
    """The gt reader scans each image folder once for links (instead of one lstat a file)."""
    png(tmp_path / "outside" / "far.png")
    png(tmp_path / "root" / "images" / "real.png")
    os.symlink(tmp_path / "outside" / "far.png", tmp_path / "root" / "images" / "escape.png")
    os.symlink(tmp_path / "root" / "images" / "real.png", tmp_path / "root" / "images" / "alias.png")
    (tmp_path / "root" / "gt.txt").write_text("images/real.png\t1\nimages/escape.png\t2\n"
                                             "images/alias.png\t3\nimages/missing.png\t4\n")
    real, escape, alias, missing = GtReader(str(tmp_path / "root" / "gt.txt")).entries()
    assert real.error is None and real.path == str((tmp_path / "root" / "images" / "real.png").resolve())
    assert escape.error == "path escapes the dataset root: images/escape.png"
    assert alias.error is None and alias.path == real.path  # a link inside the root: its target
    assert missing.error is None and missing.path.endswith("/images/missing.png")  # fails on load


# --------------------------------------------------------------------------- lmdb


def create_lmdb_dataset(output_path, samples, drop=()):
    """deep-text-recognition-benchmark's create_lmdb_dataset.py (writeCache at the end, keys
    as written there), minus its image check; ``drop`` leaves keys out to make a broken set."""
    os.makedirs(output_path, exist_ok=True)
    env = lmdb.open(str(output_path), map_size=1 << 24)
    cache, cnt = {}, 1
    for image_bin, label in samples:
        image_key, label_key = b"image-%09d" % cnt, b"label-%09d" % cnt
        cache[image_key], cache[label_key] = image_bin, label.encode()
        cnt += 1
    cache[b"num-samples"] = str(cnt - 1).encode()
    with env.begin(write=True) as txn:
        for k, v in cache.items():
            if k not in drop:
                txn.put(k, v)
    env.close()


def test_lmdb_entries_load_and_missing_keys(tmp_path):
    images = [png(tmp_path / "src" / f"{i}.png", 40 * i) for i in range(3)]
    out = tmp_path / "lmdb" / "train"
    create_lmdb_dataset(out, zip(images, ["여기가", "a b", "x"]),
                        drop={b"label-000000002", b"image-000000003"})
    reader = LmdbReader(str(out))
    entries = reader.entries()
    assert entries == [Entry(key="000000001", label="여기가"),
                       Entry(key="000000002", error="no key label-000000002"),
                       Entry(key="000000003", label="x")]
    clone = pickle.loads(pickle.dumps(reader))       # as a Ray task receives it
    assert clone.load(entries[0]) == images[0]
    with pytest.raises(FileNotFoundError, match="image-000000003"):
        clone.load(entries[2])
    assert LmdbReader(str(out / "data.mdb")).entries()[0].label == "여기가"
    with pytest.raises(FileNotFoundError, match="data.mdb"):
        LmdbReader(str(tmp_path / "src")).entries()
    empty = tmp_path / "empty"
    lmdb.open(str(empty), map_size=1 << 20).close()
    with pytest.raises(ValueError, match="num-samples"):
        LmdbReader(str(empty)).entries()


# --------------------------------------------------------------------------- labelme


def labelme(image_path, shapes):
    return json.dumps({"version": "5.2.1", "flags": {}, "shapes": shapes,
                       "imagePath": image_path, "imageData": None,
                       "imageHeight": 3, "imageWidth": 6})


def test_labelme_shapes_images_and_errors(tmp_path):
    root = tmp_path / "datasets"
    data = png(root / "achieved" / "a.jpg")
    png(root / "achieved" / "renamed.jpg")
    png(root / "images" / "c.png")
    png(root / "lonely.png")                                  # no sidecar: ignored
    rect = {"label": "text", "shape_type": "rectangle", "points": [[90, 30], [10, 5]],
            "description": "LOT 42", "group_id": None, "flags": {}}
    poly = {"label": "digit", "shape_type": "polygon", "text": "7",
            "points": [[5, 40], [60, 38], [62.5, 55], [4, 57]]}
    point = {"label": "dot", "shape_type": "point", "points": [[1, 1]]}
    write(root / "achieved" / "a.json", labelme("a.jpg", [rect, poly, point]))
    write(root / "achieved" / "renamed.json", labelme("old_name.jpg", [rect]))
    write(root / "ann" / "c.json", labelme("..\\images\\c.png", [poly]))
    write(root / "achieved" / "evil.json", labelme("../../outside.png", [rect]))
    write(root / "achieved" / "broken.json", "{not json")
    write(root / "achieved" / "bad_points.json",
          labelme("a.jpg", [{"label": "t", "shape_type": "rectangle", "points": [[1, 2]]}]))
    reader = LabelmeReader(str(root))
    assert reader.task == "detection"
    entries = reader.entries()
    assert [e.key for e in entries] == ["achieved/a.json", "achieved/bad_points.json",
                                        "achieved/broken.json", "achieved/evil.json",
                                        "achieved/renamed.json", "ann/c.json"]
    e = by_key(entries)
    box_rect = Box(10, 5, 90, 30, label="text", text="LOT 42", needs_text=True)
    box_poly = Box(4, 38, 62.5, 57, label="digit", text="7", needs_text=True)
    assert e["achieved/a.json"].boxes == (box_rect, box_poly)
    assert e["achieved/a.json"].path == os.path.realpath(root / "achieved" / "a.jpg")
    assert reader.load(e["achieved/a.json"]) == data
    assert e["achieved/renamed.json"].path == os.path.realpath(root / "achieved" / "renamed.jpg")
    assert e["ann/c.json"].path == os.path.realpath(root / "images" / "c.png")
    assert e["ann/c.json"].boxes == (box_poly,)
    assert e["achieved/evil.json"].error == "path escapes the dataset root: ../../outside.png"
    assert e["achieved/broken.json"].error.startswith("bad LabelMe JSON: ")
    assert "expected at least 2 [x, y] points" in e["achieved/bad_points.json"].error


def test_labelme_text_field_choice(tmp_path):
    """LabelMe's convention (the transcription typed as the shape's label, an empty
    description) reads as the box text in auto mode, the box then labelled "text"; a chosen
    field is read as is, missing fields giving an empty text."""
    png(tmp_path / "a.png")
    shapes = [{"label": "Seoul 2024", "shape_type": "rectangle", "points": [[0, 0], [4, 2]],
               "description": ""},
              {"label": "line", "shape_type": "rectangle", "points": [[0, 0], [4, 2]],
               "description": "LOT 42", "ocr": 7},
              {"label": "line", "points": [[0, 0], [4, 2], [1, 1]], "text": "x"}]
    write(tmp_path / "a.json", labelme("a.png", shapes))

    def boxes(field):
        entry, = LabelmeReader(str(tmp_path), ReaderOptions(labelme_text=field)).entries()
        return [(b.label, b.text, b.needs_text) for b in entry.boxes]

    assert boxes("auto") == [("text", "Seoul 2024", True), ("line", "LOT 42", True),
                             ("line", "x", True)]
    assert boxes("label") == [("text", "Seoul 2024", True), ("text", "line", True),
                              ("text", "line", True)]
    assert boxes("description") == [("Seoul 2024", "", True), ("line", "LOT 42", True),
                                    ("line", "", True)]
    assert boxes("ocr") == [("Seoul 2024", "", True), ("line", "7", True), ("line", "", True)]
    with pytest.raises(ValueError, match="labelme_text"):
        LabelmeReader(str(tmp_path), ReaderOptions(labelme_text="")).entries()


# --------------------------------------------------------------------------- coco


def test_coco_categories_text_and_empty_images(tmp_path):
    data = png(tmp_path / "coco" / "images" / "a.jpg")
    doc = {
        "images": [{"id": 1, "file_name": "a.jpg", "width": 6, "height": 3},
                   {"id": 2, "file_name": "b.jpg", "width": 6, "height": 3},
                   {"id": 3, "file_name": "c.jpg", "width": 6, "height": 3},
                   {"id": 4, "file_name": "d.jpg", "width": 6, "height": 3}],
        "annotations": [
            {"id": 10, "image_id": 1, "bbox": [10, 5, 80, 25], "category_id": 1, "text": "LOT"},
            {"id": 11, "image_id": 1, "bbox": [0, 0, 2.5, 1], "category_id": 2,
             "utf8_string": "42"},
            {"id": 12, "image_id": 1, "bbox": [1, 1, 1, 1], "category_id": 1,
             "attributes": {"text": "attr"}},
            {"id": 13, "image_id": 1, "bbox": [2, 2, 1, 1], "category_id": 1},
            {"id": 14, "image_id": 3, "bbox": [0, 0, 1, 1], "category_id": 99},
            {"id": 15, "image_id": 4, "bbox": [0, 0, 1], "category_id": 1},
            {"id": 16, "image_id": 7, "bbox": [0, 0, 1, 1], "category_id": 1},
        ],
        "categories": [{"id": 1, "name": "text"}, {"id": 2, "name": "digits"}],
    }
    uri = write(tmp_path / "coco" / "instances.json", json.dumps(doc))
    reader = CocoReader(uri)
    entries = reader.entries()
    assert [e.key for e in entries] == ["a.jpg", "b.jpg", "c.jpg", "d.jpg", "annotation-16"]
    a, b, c, d, orphan = entries
    assert a.boxes == (Box(10, 5, 90, 30, "text", "LOT"), Box(0, 0, 2.5, 1, "digits", "42"),
                       Box(1, 1, 2, 2, "text", "attr"), Box(2, 2, 3, 3, "text", ""))
    assert a.path == os.path.realpath(tmp_path / "coco" / "images" / "a.jpg")
    assert reader.load(a) == data
    assert b.boxes == () and b.error is None
    assert c.error == "annotation 14: category_id 99 not in categories"
    assert d.error == "annotation 15: expected bbox [x, y, w, h] of 4 numbers, found a list [0, 0, 1]"
    assert orphan.error == "image_id '7' names no image"


# --------------------------------------------------------------------------- registry


def test_registry_and_detect_layout(tmp_path):
    assert set(READERS) == {"gt", "labels", "aihub", "filename", "lmdb", "labelme", "coco"}
    assert get_reader("coco") is CocoReader
    with pytest.raises(ValueError, match="expected one of: gt, labels, aihub"):
        get_reader("yolo")
    create_lmdb_dataset(tmp_path / "lmdb", [(b"x", "y")])
    png(tmp_path / "trdg" / "1_0.png")
    png(tmp_path / "lm" / "a.png")
    write(tmp_path / "lm" / "a.json", labelme("a.png", []))
    write(tmp_path / "gt_train.txt", "a.png\tb\n")
    write(tmp_path / "made1" / "labels.txt", "a.png b\n")
    write(tmp_path / "coco.json", json.dumps({"images": [], "annotations": [], "categories": []}))
    write(tmp_path / "aihub.json", json.dumps({"images": [], "annoations": []}))
    write(tmp_path / "other.json", json.dumps({"foo": 1}))
    cases = {"lmdb": "lmdb", "lmdb/data.mdb": "lmdb", "trdg": "filename", "lm": "labelme",
             "gt_train.txt": "gt", "made1/labels.txt": "labels", "coco.json": "coco",
             "aihub.json": "aihub"}
    assert {k: detect_layout(str(tmp_path / k)) for k in cases} == cases
    with pytest.raises(ValueError, match="LabelMe sidecar"):
        detect_layout(str(tmp_path / "lm" / "a.json"))
    with pytest.raises(ValueError, match="cannot detect"):
        detect_layout(str(tmp_path / "other.json"))
    with pytest.raises(FileNotFoundError):
        detect_layout(str(tmp_path / "missing.txt"))


def test_locate_reads_a_folder_through_its_annotation_file(tmp_path):
    """An export's folder (gt.txt or labels.txt beside images/) is read through that file, as
    users pass it; an explicit file layout on a folder without one is refused, naming what is
    there, instead of failing on reading a folder."""
    png(tmp_path / "dtrb" / "images" / "0001.png")
    write(tmp_path / "dtrb" / "gt.txt", "images/0001.png\t12 34\n")
    write(tmp_path / "made1" / "labels.txt", "a.png b\n")
    png(tmp_path / "made1" / "a.png")
    write(tmp_path / "named" / "train_gt.tsv", "a.png\tb\n")
    write(tmp_path / "both" / "gt.txt", "")
    write(tmp_path / "both" / "labels.txt", "")
    png(tmp_path / "trdg" / "1_0.png")
    dtrb = str(tmp_path / "dtrb")
    assert locate(dtrb) == (str(tmp_path / "dtrb" / "gt.txt"), "gt")
    assert locate(dtrb, "gt") == (str(tmp_path / "dtrb" / "gt.txt"), "gt")
    assert locate(str(tmp_path / "made1")) == (str(tmp_path / "made1" / "labels.txt"), "labels")
    assert locate(str(tmp_path / "named"), "gt") == (str(tmp_path / "named" / "train_gt.tsv"), "gt")
    assert locate(str(tmp_path / "named")) == (str(tmp_path / "named"), "filename")
    assert locate(str(tmp_path / "trdg")) == (str(tmp_path / "trdg"), "filename")
    assert locate(str(tmp_path / "trdg"), "filename") == (str(tmp_path / "trdg"), "filename")
    with pytest.raises(ValueError, match="2 annotation files .*gt.txt, labels.txt.*pass the one"):
        locate(str(tmp_path / "both"))
    with pytest.raises(ValueError, match=r"layout 'labels' reads a file \(labels.txt\).*found gt.txt"):
        locate(dtrb, "labels")
    with pytest.raises(ValueError, match=r"found 1_0.png\): pass the annotation file"):
        locate(str(tmp_path / "trdg"), "gt")
    reader = GtReader(*locate(dtrb)[:1])
    assert [(e.key, e.label) for e in reader.entries()] == [("images/0001.png", "12 34")]


# --------------------------------------------------------------------------- s3


@pytest.fixture(scope="module")
def s3():
    """A real S3 server (moto) on 127.0.0.1 with an empty bucket ``data``."""
    server_mod = pytest.importorskip("moto.server")
    boto3 = pytest.importorskip("boto3")
    server = server_mod.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    settings = S3Settings(endpoint=f"http://{host}:{port}", region="us-east-1",
                          access_key="testing", secret_key="testing")
    client = boto3.client("s3", endpoint_url=settings.endpoint, region_name="us-east-1",
                          aws_access_key_id="testing", aws_secret_access_key="testing")
    client.create_bucket(Bucket="data")
    yield settings
    server.stop()


def test_readers_on_s3(s3, tmp_path, monkeypatch):
    image = png(tmp_path / "a.png")
    storage.write_bytes("s3://data/set/imgs/a.png", image, s3)
    storage.write_bytes("s3://data/set/imgs/4_2.png", image, s3)
    storage.write_text("s3://data/set/gt.txt", "imgs/a.png\t가 나\n../../x.png\tescape\n", s3)
    gt = GtReader("s3://data/set/gt.txt", s3=s3)
    entries = gt.entries()
    assert entries[0] == Entry(key="imgs/a.png", path="s3://data/set/imgs/a.png", label="가 나")
    assert entries[1].error == "path escapes the dataset root: ../../x.png"
    assert gt.load(entries[0]) == image
    assert detect_layout("s3://data/set/gt.txt", s3) == "gt"
    assert locate("s3://data/set", "auto", s3) == ("s3://data/set/gt.txt", "gt")
    assert detect_layout("s3://data/set/imgs", s3) == "filename"
    names = FilenameReader("s3://data/set/imgs", s3=s3).entries()
    assert [(e.key, e.label, e.path) for e in names] == [
        ("4_2.png", "4", "s3://data/set/imgs/4_2.png"), ("a.png", None, None)]

    create_lmdb_dataset(tmp_path / "lmdb", [(image, "라벨")])
    with open(tmp_path / "lmdb" / "data.mdb", "rb") as f:
        storage.write_bytes("s3://data/lmdb/train/data.mdb", f.read(), s3)
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path / "tmp"))
    os.makedirs(tmp_path / "tmp")
    reader = LmdbReader("s3://data/lmdb/train/", s3=s3)
    assert detect_layout("s3://data/lmdb/train", s3) == "lmdb"
    assert reader.entries() == [Entry(key="000000001", label="라벨")]
    assert reader.load(Entry(key="000000001")) == image
    cached = lmdb_reader.cache_dir("s3://data/lmdb/train")
    assert cached.startswith(str(tmp_path / "tmp")) and os.listdir(cached) == ["data.mdb"]
    assert lmdb_reader.download("s3://data/lmdb/train", s3) == cached    # reused, not fetched
