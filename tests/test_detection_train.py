"""Detection training and evaluation: mAP by hand, char-mode samples, prediction JSON read back
by our LabelMe/COCO readers, and an ROI detector trained with 2 Ray Train workers."""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pyarrow as pa
import pytest
import torch
from PIL import Image, ImageDraw

from ocr.charset import Charset
from ocr.config import ConfigError
from ocr.data.formats.base import ReaderOptions
from ocr.data.formats.coco import CocoReader
from ocr.data.formats.labelme import LabelmeReader
from ocr.data.shards import schema, write_table
from ocr.eval.box_metrics import average_precision, evaluate_detections, match_lines
from ocr.eval.predictions import PredictionWriter
from ocr.infer.detection import BACKGROUND
from ocr.train.augment import augment_detection
from ocr.train.config import TrainConfig
from ocr.train.detection import DetectionTask


def _img(boxes, scores=None, labels=None) -> dict:
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    out = {"boxes": boxes, "labels": np.asarray(labels if labels is not None else [1] * len(boxes))}
    if scores is not None:
        out["scores"] = np.asarray(scores, np.float32)
    return out


# --- metrics by hand --------------------------------------------------------------------------

def test_perfect_detections_score_one():
    gts = [_img([[0, 0, 10, 10], [20, 20, 40, 30]]), _img([[5, 5, 15, 25]], labels=[2])]
    preds = [_img(g["boxes"], [0.9] * len(g["boxes"]), g["labels"]) for g in gts]
    r = evaluate_detections(preds, gts)
    assert r["map50"] == 1.0 and r["map"] == 1.0 and r["precision"] == 1.0 and r["recall"] == 1.0
    assert r["per_class"]["1"]["gt"] == 2 and r["gt_boxes"] == 3


def test_a_false_positive_ranked_above_the_true_one_halves_ap():
    # ranks: FP (p 0/1), TP (p 1/2, recall 1): all-point AP = 1 x 1/2
    gts = [_img([[0, 0, 10, 10]])]
    preds = [_img([[50, 50, 60, 60], [0, 0, 10, 10]], [0.9, 0.8])]
    r = evaluate_detections(preds, gts)
    assert r["map50"] == pytest.approx(0.5) and r["precision"] == 0.5 and r["recall"] == 1.0
    assert average_precision([0.9, 0.8], [False, True], 1) == pytest.approx(0.5)
    # TP above FP: the FP comes after full recall and costs nothing
    assert average_precision([0.9, 0.8], [True, False], 1) == 1.0


def test_missed_ground_truth_lowers_recall():
    gts = [_img([[0, 0, 10, 10], [30, 30, 40, 40]]), _img([[0, 0, 5, 5]])]
    preds = [_img([[0, 0, 10, 10]], [0.9]), _img([[0, 0, 5, 5]], [0.4])]  # second under 0.5
    r = evaluate_detections(preds, gts)
    assert r["recall"] == pytest.approx(1 / 3) and r["precision"] == 1.0
    assert r["map50"] == pytest.approx(2 / 3)  # recall 1/3 then 2/3 at precision 1
    assert evaluate_detections([_img([], [])], [_img([[0, 0, 1, 1]])])["map50"] == 0.0


def test_iou_thresholds_and_duplicates():
    gts = [_img([[0, 0, 10, 10]])]
    preds = [_img([[0, 0, 10, 6.2]], [0.9])]  # IoU 0.62: a hit at 0.50-0.60 only
    r = evaluate_detections(preds, gts)
    assert r["map50"] == 1.0 and r["ap"][0.6] == 1.0 and r["ap"][0.65] == 0.0
    assert r["map"] == pytest.approx(0.3)
    assert evaluate_detections(preds, gts, iou_thresholds=[0.75])["map"] == 0.0
    # a second detection of the same box is a false positive; other classes do not match
    dup = [_img([[0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 10, 10]], [0.9, 0.8, 0.95], [1, 1, 2])]
    r = evaluate_detections(dup, gts)
    assert r["per_class"]["1"]["ap50"] == 1.0 and r["per_class"]["2"]["ap50"] is None
    assert r["map50"] == 1.0 and r["precision"] == pytest.approx(1 / 3)
    assert match_lines(np.array([[0, 0, 10, 10], [0, 0, 9, 10]]), [0.5, 0.9],
                       np.array([[0, 0, 10, 10], [50, 0, 60, 10]])) == [1, -1]


# --- char mode: classes and crops (hand-made shards, no Ray) ---------------------------------------

def _png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def _page(text: str, x: int = 20, y: int = 30, step: int = 12, h: int = 16) -> tuple[bytes, list[dict]]:
    img = Image.new("L", (200, 80), 255)
    draw = ImageDraw.Draw(img)
    chars = []
    for i, ch in enumerate(text):
        box = {"x0": x + i * step, "y0": y, "x1": x + (i + 1) * step, "y1": y + h, "label": "char",
               "text": ch}
        draw.rectangle([box["x0"] + 2, y + 2, box["x1"] - 2, y + h - 2], fill=0)
        chars.append(box)
    line = {"x0": x, "y0": y, "x1": x + len(text) * step, "y1": y + h, "label": "line", "text": text}
    return _png(img), [line, *chars]


def _write_shards(root, pages: dict[str, list], charset: Charset) -> str:
    shards, per_split = [], {}
    for k, (split, rows) in enumerate(pages.items()):
        table = pa.Table.from_pylist([
            {"id": f"{k * 1000 + i:016x}", "key": f"{split}-{i}.png", "source": "hand", "split": split,
             "image": image, "width": 200, "height": 80, "boxes": boxes, "angle": 0.0}
            for i, (image, boxes) in enumerate(rows)], schema=schema("detection"))
        path = f"{split}/part-00000-00.parquet"
        write_table(table, str(root / path))
        shards.append({"path": path, "split": split, "rows": len(rows)})
        per_split[split] = {"read": len(rows), "written": len(rows), "rejected": 0}
    manifest = {"schema_version": 1, "task": "detection", "charset": charset.to_json(),
                "counts": {"per_split": per_split}, "shards": shards}
    (root / "manifest.json").write_text(json.dumps(manifest))
    return str(root)


def test_char_task_classes_and_crop_coordinates(tmp_path):
    charset = Charset.from_string("abc")
    data = _write_shards(tmp_path, {"train": [_page("abca")], "val": [_page("cb")]}, charset)
    task = DetectionTask(TrainConfig(task="detection", data=data, target="char", batch_size=4))
    assert task.classes == [BACKGROUND, "a", "b", "c"]
    meta = task.model_meta()
    assert meta["charset"]["hash"] == charset.hash and meta["classes"] == task.classes
    assert meta["arch"]["num_classes"] == 4 and meta["preprocess"]["height"] == 64
    assert "val_text_accuracy" in task.val_columns

    from ocr.train.detection import DetectionCollate

    image, boxes = _page("abca")
    collate = DetectionCollate(task.preprocess, "char", task.classes)
    ids, samples = collate.samples({"id": np.array(["00000000000000ab"], object),
                                    "image": np.array([image], object), "boxes": [boxes]})
    assert ids.tolist() == [0xAB] and len(samples) == 1
    s = samples[0]
    assert s.image.shape == (64, 256, 3)
    assert s.labels.tolist() == [1, 2, 3, 1] and s.text == "abca"
    # the crop: the line (20..68, 30..46) grown by 0.15 x 16 = 2.4 px a side -> (17, 27, 71, 49);
    # 54x22 is narrower than 256/64, so one scale, 64 / 22 (x: the rounded width over 54)
    sy, sx = 64 / 22, round(54 * 64 / 22) / 54
    expect = [[(20 + 12 * i - 17) * sx, (30 - 27) * sy, (32 + 12 * i - 17) * sx, (46 - 27) * sy]
              for i in range(4)]
    np.testing.assert_allclose(s.boxes, expect, rtol=1e-5)

    out = collate({"id": np.array(["00000000000000ab"], object), "image": np.array([image], object),
                   "boxes": [boxes]})
    assert out["images"].shape == (1, 3, 64, 256) and out["targets"][0]["labels"].dtype == torch.int64
    skipped = DetectionCollate(task.preprocess, "char", task.classes, skip=frozenset([0xAB]))
    assert skipped({"id": np.array(["00000000000000ab"], object), "image": np.array([image], object),
                    "boxes": [boxes]})["ids"].numel() == 0


def test_bad_detection_configs_are_refused(tmp_path):
    data = _write_shards(tmp_path, {"train": [_page("ab")], "val": [_page("b")]}, Charset.from_string("ab"))
    with pytest.raises(ConfigError, match=r"labels \{.*'line'"):
        DetectionTask(TrainConfig(task="detection", data=data, target="word"))
    with pytest.raises(ConfigError, match="unknown detector"):
        DetectionTask(TrainConfig(task="detection", data=data, model="nope"))
    roi = DetectionTask(TrainConfig(task="detection", data=data))
    assert roi.classes == [BACKGROUND, "line"] and roi.model_meta()["charset"] is None
    assert roi.preprocess.height == 320 and not roi.preprocess.keep_ratio


def test_augmentation_moves_boxes_with_pixels():
    images = torch.zeros(1, 1, 64, 64)
    images[:, :, 20:30, 10:40] = 1.0
    targets = [{"boxes": torch.tensor([[10.0, 20.0, 40.0, 30.0]]), "labels": torch.tensor([1])}]
    g = torch.Generator().manual_seed(0)
    out, moved = augment_detection(images, targets, 1.0, g)
    b = moved[0]["boxes"][0]
    ink = (out[0, 0] - out[0, 0].median()).abs() > 0.25  # the rectangle after zoom (+ noise/blur)
    ys, xs = ink.nonzero(as_tuple=True)
    assert abs(xs.min() - b[0]) <= 2 and abs(xs.max() + 1 - b[2]) <= 2
    assert abs(ys.min() - b[1]) <= 2 and abs(ys.max() + 1 - b[3]) <= 2


# --- predictions JSON, read back by our readers ---------------------------------------------------

def _boxes():
    return [{"x0": 1.5, "y0": 2.0, "x1": 30.25, "y1": 12.0, "label": "line", "text": "ab 1", "score": 0.9},
            {"x0": 3.0, "y0": 4.0, "x1": 9.0, "y1": 11.0, "label": "char", "text": "a", "score": 0.75}]


@pytest.mark.parametrize("layout", ["labelme", "coco"])
def test_prediction_json_round_trip(tmp_path, layout):
    image = _png(Image.new("RGB", (40, 20), "white"))
    writer = PredictionWriter(str(tmp_path / layout), layout)
    writer.add("sub/page-1.json", image, (40, 20), _boxes())
    writer.add("../page-2", image, (40, 20), [])
    uri = writer.close()
    reader = (LabelmeReader if layout == "labelme" else CocoReader)(uri, ReaderOptions())
    entries = sorted(reader.entries(), key=lambda e: e.key)
    assert [e.error for e in entries] == [None, None]
    got = {e.key: e for e in entries}
    first = got["sub/page-1.json" if layout == "labelme" else "sub/page-1.png"]
    assert reader.load(first) == image
    expect = [(b["x0"], b["y0"], b["x1"], b["y1"], b["label"], b["text"]) for b in _boxes()]
    assert [(b.x0, b.y0, b.x1, b.y1, b.label, b.text) for b in first.boxes] == expect
    second = [e for e in entries if e is not first][0]
    assert second.boxes == () and "page-2" in second.key and ".." not in second.key


# --- an ROI detector trained by Ray Train (2 workers) ------------------------------------------------

@pytest.fixture(scope="module")
def pages(ray_local, tmp_path_factory):
    from ocr.data.config import SynthConfig
    from ocr.data.synth.job import synth

    out = tmp_path_factory.mktemp("data") / "pages"
    synth(SynthConfig(output=str(out), kind="page", count=200, page_width=128, page_height=96,
                      text="digits:1-6", lines_per_page="2-4", splits="train=0.8,val=0.1,test=0.1",
                      seed=5), progress=False)
    return out


def test_ray_hands_the_collated_dict_through_unchanged(pages):
    from ocr.data.loader import numpy_collate, read_split
    from ocr.train.detection import DetectionCollate, DetectionTask

    task = DetectionTask(TrainConfig(task="detection", data=str(pages), height=64, width=64))
    collate = numpy_collate(DetectionCollate, task.preprocess, task.target, task.classes)
    ds = read_split(str(pages), "train", task.columns)
    batch = next(iter(ds.iter_torch_batches(batch_size=4, collate_fn=collate)))
    assert set(batch) == {"ids", "images", "targets"} and batch["images"].shape == (4, 3, 64, 64)
    assert isinstance(batch["targets"], list) and len(batch["targets"]) == 4
    assert all(set(t) == {"boxes", "labels"} and t["boxes"].shape[1:] == (4,) for t in batch["targets"])


@pytest.fixture(scope="module")
def trained(pages, tmp_path_factory):
    from ocr.train.run import train

    runs = tmp_path_factory.mktemp("runs")
    # ~80 pages per worker: the 12 steps stay in one epoch (each new epoch restarts Ray Data's
    # pipeline, seconds on a busy machine)
    cfg = TrainConfig(task="detection", data=str(pages), model="tiny_ssdlite", height=64, width=64,
                      batch_size=6, max_steps=12, val_every=6, log_every=2, warmup_steps=2, lr=2e-2,
                      storage=str(runs), name="roi", num_workers=2, augment=0.3)
    return cfg, train(cfg)


def test_roi_loss_falls_with_two_workers(trained):
    _, summary = trained
    with open(f"{summary['run_dir']}/metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    losses = [float(r["loss"]) for r in rows if r["loss"]]
    assert len(losses) == 7 and np.mean(losses[-3:]) < 0.8 * np.mean(losses[:2])  # steps 1, 2, 4, ..., 12
    vals = [r for r in rows if r["val_map50"]]
    assert [int(r["step"]) for r in vals] == [6, 12] and float(vals[-1]["val_boxes"]) > 0
    meta = json.loads(open(f"{summary['best']}/model.json").read())
    assert meta["task"] == "detection" and meta["classes"] == [BACKGROUND, "line"]
    assert meta["arch"]["name"] == "tiny_ssdlite" and meta["arch"]["size"] == [64, 64]
    assert meta["preprocess"]["keep_ratio"] is False and meta["config"]["target"] == ""


def test_eval_writes_summary_images_and_readable_json(trained, pages, tmp_path, capsys):
    from ocr.cli import main
    from ocr.eval.config import DetectionEvalConfig
    from ocr.eval.detection import evaluate_detector

    _, summary = trained
    s = evaluate_detector(DetectionEvalConfig(checkpoint=summary["best"], data=str(pages), split="test",
                                              output=str(tmp_path / "e"), save_images=True, save_json=True,
                                              score_threshold=0.05))
    manifest = json.loads((pages / "manifest.json").read_text())
    n = manifest["counts"]["per_split"]["test"]["written"]
    assert s["images"] == n and 0 <= s["map50"] <= 1 and s["predictions"].endswith("predictions.json")
    assert len(list((tmp_path / "e/images").glob("*.png"))) == n
    entries = CocoReader(s["predictions"], ReaderOptions()).entries()
    assert len(entries) == n and all(e.error is None for e in entries)
    # `ocr eval` dispatches on the checkpoint's task; a LabelMe folder is a raw input too
    args = ["eval", summary["best"], str(pages), "--split", "test", "--output", str(tmp_path / "c")]
    assert main(args) == 0
    assert "mAP@0.5" in capsys.readouterr().out
    lm = evaluate_detector(DetectionEvalConfig(checkpoint=summary["best"], data=str(pages), split="test",
                                               output=str(tmp_path / "l"), save_json=True,
                                               json_layout="labelme", score_threshold=0.05))
    again = evaluate_detector(DetectionEvalConfig(checkpoint=summary["best"], data=lm["predictions"],
                                                  output=str(tmp_path / "l2"), score_threshold=0.05))
    assert again["images"] == n and again["layout"] == "labelme"
    # its own predictions (score >= 0.05) as ground truth: each one matches itself
    assert again["gt_boxes"] == 0 or again["map50"] == 1.0
