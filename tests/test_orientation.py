"""Deskew and orientation: angle buckets, boxes turned with their image, the classical method
on rendered pages, the model trained by Ray Train (2 workers), `ocr deskew` and `ocr eval`."""

from __future__ import annotations

import csv
import io
import json
import os

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from ocr.config import ConfigError
from ocr.data.formats.base import Box
from ocr.data.synth.page import expanded_size, render_page, rotate_boxes
from ocr.eval.orientation import orientation_metrics
from ocr.infer import PageDeskewer, upright
from ocr.models.orientation import (
    ORIENTERS,
    AngleBuckets,
    PagePreprocess,
    compose,
    decompose,
    wrap,
)
from ocr.models.orientation.angles import circular_error
from ocr.models.orientation.preprocess import Jitter
from ocr.train.config import TrainConfig

FONTS = None  # the system's DejaVu faces, resolved once


def _fonts():
    global FONTS
    if FONTS is None:
        from ocr.data.config import SynthConfig
        from ocr.data.synth.job import select_fonts

        FONTS = select_fonts(SynthConfig(font_include=["DejaVu Sans"], font_exclude=["Mono", "Light"]))
    return FONTS


def _page(angle: float, seed: int = 0, size=(640, 480)) -> Image.Image:
    rng = np.random.default_rng(seed)
    lines = ["the quick brown fox jumps over", "the lazy dog 0123456789", "Pack my box with five",
             "dozen liquor jugs, again", "sphinx of black quartz", "judge my vow"]
    return render_page(lines, _fonts(), rng, size=size, angle=angle).image


# --- angles and buckets -------------------------------------------------------------------------

def test_buckets_wrap_around_at_plus_minus_90():
    b = AngleBuckets(180.0, 0.5)
    assert b.count == 360
    assert b.index([-90.0, 90.0, 89.8, -90.2, 89.7, 0.0, 0.26]).tolist() == [0, 0, 0, 0, 359, 180, 181]
    for angle in (-90.0, -89.9, 89.9, 89.75, 45.3, 0.1):
        got, conf = b.decode(torch.log(b.targets([angle]) + 1e-12))
        assert float(circular_error(float(got[0]), angle, 180.0)) < 0.02 and float(conf[0]) > 0.9
        assert -90.0 <= float(got[0]) < 90.0
    # half the mass on the last bucket (89.5), half on the first (-90 = +90): between them, wrapped
    probs = torch.full((1, 360), 1e-9)
    probs[0, [359, 0]] = 0.5
    got, _ = b.decode(torch.log(probs))
    assert float(circular_error(float(got[0]), 89.75, 180.0)) < 1e-6


def test_skew_buckets_and_quarter_turns_at_the_edges():
    b = AngleBuckets(90.0, 0.5)
    assert b.count == 180 and b.index([45.0, -45.0, 44.76, 44.74]).tolist() == [0, 0, 0, 179]
    got, _ = b.decode(torch.log(b.targets([44.9, -44.9, 12.34])))
    assert np.allclose(got.numpy(), [44.9, -44.9, 12.34], atol=0.02)
    assert decompose(-135.0) == (-45.0, 270) and compose(-45.0, 270) == -135.0
    assert decompose(45.0) == (-45.0, 90) and decompose(179.9)[1] == 180
    assert decompose(-0.2) == pytest.approx((-0.2, 0)) and decompose(271.0) == pytest.approx((1.0, 270))
    assert wrap(180.0) == -180.0 and float(circular_error(179.0, -179.0)) == pytest.approx(2.0)
    with pytest.raises(ValueError, match="whole number"):
        AngleBuckets(90.0, 0.7)


def test_metrics_by_hand():
    # a right page, a 180-degree flip, a skew read from the other side of 45 degrees (right)
    m = orientation_metrics(truth=[10.0, 100.0, 44.8], angle=[10.2, -80.0, 44.9 - 90 + 90],
                            skew=[10.2, 10.0, -45.1], orientation=[0, 270, 90])
    assert m["pages"] == 3 and m["skew_mae"] == pytest.approx((0.2 + 0.0 + 0.1) / 3)
    assert m["within_0_5"] == 1.0 and m["orientation_accuracy"] == pytest.approx(2 / 3)
    assert m["per_class"]["90"] == {"precision": 1.0, "recall": 0.5, "f1": pytest.approx(2 / 3), "support": 2}
    assert m["per_class"]["270"]["precision"] == 0.0
    assert m["angle_mae"] == pytest.approx((0.2 + 180 + 0.1) / 3)


# --- geometry: boxes, views, quarter turns --------------------------------------------------------

@pytest.mark.parametrize("expand", [False, True])
def test_boxes_turn_with_their_image(expand):
    size = (200, 120)
    boxes = [Box(20, 20, 90, 40, "line", "a"), Box(110, 60, 180, 100, "line", "b"),
             Box(40, 70, 60, 110, "char", "c")]
    img = Image.new("L", size, 0)
    draw = ImageDraw.Draw(img)
    for i, b in enumerate(boxes):
        draw.rectangle([b.x0, b.y0, b.x1 - 1, b.y1 - 1], fill=80 + 60 * i)
    angle = 23.0
    turned = img.rotate(angle, Image.NEAREST, expand=expand)
    moved = rotate_boxes(boxes, angle, size, expanded_size(size, angle) if expand else None)
    assert turned.size == (expanded_size(size, angle) if expand else size)
    arr = np.asarray(turned)
    for i, (b, m) in enumerate(zip(boxes, moved)):
        ys, xs = np.nonzero(arr == 80 + 60 * i)
        ink = (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
        inter = max(0, min(ink[2], m.x1) - max(ink[0], m.x0)) * max(0, min(ink[3], m.y1) - max(ink[1], m.y0))
        union = (ink[2] - ink[0]) * (ink[3] - ink[1]) + (m.x1 - m.x0) * (m.y1 - m.y0) - inter
        assert inter / union > 0.9 and (m.label, m.text) == (b.label, b.text)


def test_a_view_turned_matches_the_page_turned():
    prep = PagePreprocess(side=128, work=448)
    page = _page(-17.0).convert("L")  # laid out to stay inside the page when turned back
    turned = page.rotate(17.0, Image.BILINEAR, fillcolor=int(np.median(np.asarray(page))))
    ink = prep.page(page)
    a = prep.view(ink, 17.0)
    b = prep.view(prep.page(turned), 0.0)
    assert a.shape == (128, 128) and np.corrcoef(a.ravel(), b.ravel())[0, 1] > 0.9
    # training's jitter: none is the identity; a quarter of zoom-out shows the ink smaller
    assert np.array_equal(prep.view(ink, 17.0, Jitter()), a)
    wide = prep.view(ink, 17.0, Jitter(zoom=1.25, stretch=1.2, shear=0.2))
    assert wide.shape == a.shape and (wide > 0.5).sum() < (a > 0.5).sum()


def test_orientation_crops_magnify_the_ink_around_ink_pixels():
    page = Image.new("L", (400, 300), 230)
    draw = ImageDraw.Draw(page)
    draw.rectangle([60, 60, 79, 79], fill=20)      # two 20-px blobs far apart: a wide square
    draw.rectangle([300, 200, 319, 219], fill=20)
    prep = PagePreprocess(side=64, work=448, orientation_zoom=0.5, orientation_crops=4)
    ink = prep.page(page)
    whole = prep.view(ink, 30.0)
    crops, owner = prep.orientation_views([ink, ink], [30.0, 30.0])
    assert crops.shape == (8, 1, 64, 64) and owner.tolist() == [0] * 4 + [1] * 4
    assert np.array_equal(crops[:4], crops[4:])    # the same crops for the same page
    for crop in crops[:4, 0]:
        assert crop[30:34, 30:34].max() > 0.5      # centred on an ink pixel, turned with the page
        # half the square's side: each blob shows at twice the scale, four times the area
        assert 3.0 < (crop > 0.5).sum() / ((whole > 0.5).sum() / 2) < 5.0
    # checkpoints from before the crops read the whole view, one a page
    old = PagePreprocess.from_json({"side": 64, "work": 448, "margin": 0.08, "min_fraction": 0.3,
                                    "channels": 1})
    views, owner = old.orientation_views([ink], [30.0])
    assert owner.tolist() == [0] and np.array_equal(views[0, 0], whole)
    with pytest.raises(ValueError, match=r"orientation_zoom in \[0.1, 1\]"):
        PagePreprocess(orientation_zoom=2.0)


def test_registry_rebuilds_old_arch_dicts():
    # as the pre-Registry create_orienter recorded them: name and every parameter
    old = {"name": "tiny_deskew", "side": 64, "skew_channels": [4, 8], "radii": 16,
           "orientation_channels": [4, 8, 16], "orientation_strides": [2, 2, 2], "layout": 0}
    model, fresh = ORIENTERS.create(**old), ORIENTERS.create("tiny_deskew")
    assert {k: v.shape for k, v in model.state_dict().items()} == \
        {k: v.shape for k, v in fresh.state_dict().items()}
    assert ORIENTERS.defaults("tiny_deskew")["side"] == model.side == 64


def test_orientation_logits_follow_quarter_turns(one_torch_thread):
    model = ORIENTERS.create("tiny_deskew").eval()
    x = torch.rand(2, 1, 64, 64)
    with torch.no_grad():
        logits = model.orientation_logits(x)
        turned = model.orientation_logits(torch.rot90(x, 1, (2, 3)))  # a quarter turn CCW
        skew = model.skew_logits(x)
    assert torch.allclose(turned, torch.roll(logits, 1, 1), atol=1e-5) and skew.shape == (2, 180)
    with pytest.raises(ValueError, match=r"expected views of shape \(B, 1, 64, 64\)"):
        model.skew_logits(torch.rand(1, 1, 32, 64))


# --- the classical method -------------------------------------------------------------------------

@pytest.mark.parametrize("angle", [7.3, -31.4, 97.0])
def test_classical_recovers_a_known_angle(angle):
    deskewer = PageDeskewer.load(None)
    info = deskewer.estimate(_page(angle, seed=1))
    skew, quarter = decompose(angle)
    # the axis of the lines (a page turned 97 degrees has them down the page), never which way up
    assert info["method"] == "classical" and info["orientation"] == quarter % 180
    assert abs(info["skew"] - skew) < 0.3 and info["angle"] == pytest.approx(info["skew"] + quarter % 180)
    assert deskewer.version == {"name": "classical"}
    fixed, again = deskewer.correct(_page(angle, seed=1))
    assert fixed.size == ((640, 480) if quarter % 180 == 0 else (480, 640))
    assert abs(deskewer.estimate(fixed)["skew"]) < 0.3
    assert again == info


def test_upright_undoes_quarter_turns_exactly():
    page = Image.fromarray(np.arange(12, dtype=np.uint8).reshape(3, 4) * 20)
    for k in range(4):
        turned = page.rotate(90 * k, expand=True)
        assert np.array_equal(np.asarray(upright(turned, 0.0, 90 * k)), np.asarray(page))
    rgba = Image.new("RGBA", (40, 30), (250, 250, 250, 255))
    out = upright(rgba, 5.0, 90)
    assert out.mode == "RGB" and out.size == (30, 40) and out.getpixel((0, 0)) == (250, 250, 250)


# --- training on Ray Train ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def pages(ray_local, tmp_path_factory):
    from ocr.data.config import SynthConfig
    from ocr.data.synth.job import synth

    out = tmp_path_factory.mktemp("data") / "pages"
    synth(SynthConfig(output=str(out), kind="page", count=160, page_width=128, page_height=96,
                      text="random:latin:4-12", lines_per_page="2-4", max_angle=180.0,
                      splits="train=0.7,val=0.15,test=0.15", seed=7), progress=False)
    return out


@pytest.fixture(scope="module")
def trained(pages, tmp_path_factory):
    from ocr.train.run import train

    runs = tmp_path_factory.mktemp("runs")
    # ~56 training pages per worker: the 12 steps of 4 stay in one epoch (each new epoch restarts
    # Ray Data's pipeline, seconds on a busy machine)
    cfg = TrainConfig(task="orientation", data=str(pages), model="tiny_deskew", batch_size=4,
                      max_steps=12, val_every=6, log_every=2, warmup_steps=2, lr=1e-2, storage=str(runs),
                      name="orient", num_workers=2, augment=0.3)
    return cfg, train(cfg)


def test_loss_falls_with_two_workers(trained):
    _, summary = trained
    with open(f"{summary['run_dir']}/metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    losses = [float(r["loss"]) for r in rows if r["loss"]]
    assert len(losses) == 7 and np.mean(losses[-3:]) < 0.85 * np.mean(losses[:2])  # steps 1, 2, 4, ..., 12
    vals = [r for r in rows if r["val_angle_mae"]]
    assert [int(r["step"]) for r in vals] == [6, 12] and float(vals[-1]["val_pages"]) > 0
    meta = json.loads(open(f"{summary['best']}/model.json").read())
    assert meta["task"] == "orientation" and meta["arch"]["name"] == "tiny_deskew"
    assert meta["preprocess"]["side"] == meta["preprocess"]["height"] == 64 and meta["charset"] is None


def test_deskewer_from_a_run_folder(trained):
    _, summary = trained
    deskewer = PageDeskewer.load(summary["run_dir"])
    assert deskewer.version["name"] == "tiny_deskew" and deskewer.version["run"] == "orient"
    page = _page(100.0, size=(160, 120))
    info = deskewer.estimate(page)
    assert set(info) == {"angle", "skew", "orientation", "confidence", "method"} and info["method"] == "model"
    assert info["orientation"] in (0, 90, 180, 270) and -45 <= info["skew"] < 45
    assert 0 <= info["confidence"] <= 1
    assert info["angle"] == pytest.approx(compose(info["skew"], info["orientation"]))
    fixed, _ = deskewer.correct(page)
    assert fixed.size == ((120, 160) if info["orientation"] in (90, 270) else (160, 120))
    with pytest.raises(ValueError, match="expected orientation"):
        PageDeskewer.load(_detection_checkpoint(summary))


def _detection_checkpoint(summary) -> str:
    """A copy of the orientation checkpoint whose model.json claims another task."""
    import shutil

    folder = os.path.join(summary["run_dir"], "not-orientation")
    shutil.copytree(summary["best"], folder, dirs_exist_ok=True)
    meta = json.loads(open(os.path.join(folder, "model.json")).read())
    meta["task"] = "detection"
    open(os.path.join(folder, "model.json"), "w").write(json.dumps(meta))
    return folder


def test_eval_on_a_tiny_checkpoint(trained, pages, tmp_path, capsys):
    from ocr.cli import main

    _, summary = trained
    args = ["eval", summary["best"], str(pages), "--split", "test", "--output", str(tmp_path / "m")]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "skew MAE" in out and "orientation accuracy" in out and "within 0.5 deg" in out
    s = json.loads((tmp_path / "m/summary.json").read_text())
    n = json.loads((pages / "manifest.json").read_text())["counts"]["per_split"]["test"]["written"]
    assert s["pages"] == n and s["method"] == "model" and set(s["per_class"]) == {"0", "90", "180", "270"}
    with open(tmp_path / "m/predictions.csv", newline="") as f:
        assert len(list(csv.DictReader(f))) == n
    # the classical method on the same pages, each turned a further fixed angle
    assert main(["eval-orientation", "classical", str(pages), "--split", "test", "--turn", "30",
                 "--output", str(tmp_path / "c")]) == 0
    c = json.loads((tmp_path / "c/summary.json").read_text())
    assert c["method"] == "classical" and c["turn"] == 30.0   # the axis only: never 180 or 270
    assert c["per_class"]["180"]["precision"] == c["per_class"]["270"]["precision"] == 0.0


def test_any_image_shards_train_with_angle_zero(digit_shards):
    from ocr.train.orientation import OrientationCollate, OrientationTask

    task = OrientationTask(TrainConfig(task="orientation", data=str(digit_shards), model="tiny_deskew"))
    assert task.columns == ["id", "image"] and task.preprocess.side == 64
    from ocr.data.shards import read_rows

    table = next(read_rows(str(digit_shards), "train", ["id", "image"])).slice(0, 3)
    batch = OrientationCollate(task.preprocess, seed=1)({c: table.column(c).to_numpy(zero_copy_only=False)
                                                         for c in ("id", "image")})
    assert batch["skew_views"].shape == (3, 1, 64, 64) and batch["orientations"].tolist() == [0, 0, 0]
    assert batch["skew_angles"].abs().max() <= 45


def test_collate_labels_follow_the_stored_angle():
    from ocr.models.orientation.classical import classical_skew
    from ocr.train.orientation import OrientationCollate

    prep = PagePreprocess(side=224)
    buf = io.BytesIO()
    _page(100.0, seed=2).save(buf, "PNG")
    collate = OrientationCollate(prep, seed=3, residual=0.0)
    ids, images = np.array(["00000000000000aa"], object), np.array([buf.getvalue()], object)
    batch = collate({"id": ids, "image": images, "angle": np.array([100.0], np.float32)})
    assert batch["orientations"].tolist() == [1]  # 100 = 10 + 90: a quarter turn

    def skew_of(view):
        return classical_skew(prep.page(Image.fromarray((view[0] * 255).astype(np.uint8))))[0]

    assert abs(skew_of(batch["orientation_views"][0].numpy())) < 0.5  # turned back to a quarter turn
    label = float(batch["skew_angles"][0])
    assert float(circular_error(skew_of(batch["skew_views"][0].numpy()), label, 90.0)) < 0.5
    skipping = OrientationCollate(prep, skip=frozenset([0xAA]))
    assert skipping({"id": ids, "image": images})["ids"].numel() == 0


def test_bad_configs_are_refused_before_any_worker(pages, tmp_path):
    from ocr.train.run import train

    def refused(match, **kw):
        base = {"task": "orientation", "data": str(pages), "storage": str(tmp_path / "runs")}
        with pytest.raises(ConfigError, match=match):
            train(TrainConfig(**{**base, **kw}))

    refused("1 channel", channels=3)
    refused("views are square", height=64, width=96)
    refused("unknown orientation model", model="nope")
    refused("unknown option", model="tiny_deskew", model_set=["depth=3"])
    refused(r"orientation_zoom in \[0.1, 1\]", model="tiny_deskew", model_set=["orientation_zoom=3"])
    refused("learns angles, not boxes", target="line")
    refused("no 'dev' samples", val_split="dev")
    refused("manifest.json", data=str(tmp_path / "missing"))
    assert not (tmp_path / "runs").exists()  # nothing started, nothing written


# --- ocr deskew ------------------------------------------------------------------------------------

def test_deskew_cli_writes_upright_pages(tmp_path, capsys, trained):
    from ocr.cli import main

    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    angles = {"a.png": 12.0, "sub/b.jpg": -20.0}
    for name, angle in angles.items():
        _page(angle, seed=4).convert("RGB").save(src / name)
    (src / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    assert main(["deskew", str(src), "--output", str(tmp_path / "out")]) == 1  # one unreadable image
    captured = capsys.readouterr()
    assert "broken.png: error" in captured.err
    found = {line.split("\t")[0]: float(line.split("\t")[1].split()[1]) for line in captured.out.splitlines()}
    for name, angle in angles.items():
        assert abs(found[str(src / name)] - angle) < 0.5
        fixed = Image.open(tmp_path / "out" / name)
        assert fixed.size == (640, 480) and fixed.format == ("JPEG" if name.endswith(".jpg") else "PNG")
    # with a checkpoint, JSON lines; the input folder itself is refused as the output
    _, summary = trained
    assert main(["deskew", str(src / "a.png"), "--output", str(tmp_path / "o2"), "--checkpoint",
                 summary["best"], "--json"]) == 0
    info = json.loads(capsys.readouterr().out.strip())
    assert info["method"] == "model" and info["output"].endswith("a.png")
    assert main(["deskew", str(src / "a.png"), "--output", str(src)]) == 2
    assert "overwrite the input" in capsys.readouterr().err
