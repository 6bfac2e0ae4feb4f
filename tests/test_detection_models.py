"""Detection model parts: anchors, box ops and NMS, SSD forward and loss, registry, readout."""

from __future__ import annotations

import json
import random

import pytest
import torch

from ocr.models.detection import (
    DETECTORS,
    DefaultBoxGenerator,
    batched_nms,
    box_iou,
    boxes_to_text,
    decode,
    encode,
    match,
    multibox_loss,
    nms_reference,
)
from ocr.models.detection.box_ops import cxcywh_to_xyxy


@pytest.fixture(autouse=True)
def _seed_and_one_thread():
    """Seeded, and one torch thread: tiny models gain nothing from two, and on a shared 2-core
    machine spinning OpenMP threads make them 10-20x slower."""
    torch.manual_seed(0)
    random.seed(0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def random_boxes(n: int, size: float = 100.0) -> torch.Tensor:
    xy = torch.rand(n, 2) * size
    wh = torch.rand(n, 2) * size / 4 + 1
    return torch.cat((xy, xy + wh), dim=1)


# ---------------------------------------------------------------- anchors

def test_anchor_count_and_ranges():
    gen = DefaultBoxGenerator([[2.0], [2.0, 3.0]], min_ratio=0.2, max_ratio=0.9)
    assert gen.num_anchors_per_location() == [4, 6]
    sizes = [(4, 5), (2, 2)]
    norm = gen.cxcywh(sizes)
    assert norm.shape == (4 * 5 * 4 + 2 * 2 * 6, 4)
    xyxy = cxcywh_to_xyxy(norm)
    assert xyxy.min() >= 0 and xyxy.max() <= 1            # clipped
    pix = gen(sizes, (64, 80))
    assert pix.shape == norm.shape
    assert pix[:, 0::2].max() <= 80 and pix[:, 1::2].max() <= 64 and pix.min() >= 0
    # first cell of the first map: centre (0.5/5, 0.5/4), first box square of scale 0.2
    unclipped = DefaultBoxGenerator([[2.0], [2.0, 3.0]], 0.2, 0.9, clip=False).cxcywh(sizes)
    assert torch.allclose(unclipped[0], torch.tensor([0.1, 0.125, 0.2, 0.2]))
    assert torch.allclose(unclipped[1, 2:], torch.tensor([0.9 ** 0.5 * 0.2 ** 0.5] * 2))
    assert torch.allclose(unclipped[2, 2] / unclipped[2, 3], torch.tensor(2.0))   # w/h = 2
    with pytest.raises(ValueError, match="expected 2 feature maps"):
        gen.cxcywh([(4, 4)])


# ---------------------------------------------------------------- box ops

def test_box_iou_hand_values():
    a = torch.tensor([[0.0, 0, 2, 2], [0, 0, 1, 1]])
    b = torch.tensor([[1.0, 1, 3, 3], [0, 0, 2, 2], [5, 5, 6, 6]])
    expected = torch.tensor([[1 / 7, 1.0, 0.0], [0.0, 0.25, 0.0]])
    assert torch.allclose(box_iou(a, b), expected)
    with pytest.raises(ValueError, match=r"expected a Tensor\[N, 4\], found shape \(3,\)"):
        box_iou(torch.zeros(3), b)


def test_encode_decode_round_trip():
    anchors, boxes = random_boxes(50), random_boxes(50)
    offsets = encode(boxes, anchors, (0.1, 0.2))
    assert torch.allclose(decode(offsets, anchors, (0.1, 0.2)), boxes, atol=1e-4)
    assert torch.allclose(encode(anchors, anchors), torch.zeros(50, 4), atol=1e-6)


def test_match_forces_best_anchor_and_thresholds():
    anchors = torch.tensor([[0.0, 0, 10, 10], [0, 0, 9, 10], [50, 50, 60, 60], [80, 80, 90, 90]])
    gt = torch.tensor([[0.0, 0, 10, 10],        # anchors 0 (IoU 1) and 1 (IoU 0.9)
                       [52, 52, 70, 70]])       # best anchor 2 with IoU 64/424 < 0.5: forced
    assert match(anchors, gt, 0.5).tolist() == [0, 0, 1, -1]
    assert match(anchors, gt, 0.95).tolist() == [0, -1, 1, -1]   # 0.9 below the threshold
    assert match(anchors, torch.zeros(0, 4)).tolist() == [-1] * 4


@pytest.mark.parametrize("threshold", [0.3, 0.5, 0.7])
def test_batched_nms_matches_reference(threshold):
    for n in (0, 1, 30, 300):
        boxes = random_boxes(n, size=60.0).double()
        scores = torch.rand(n, dtype=torch.float64)
        idxs = torch.randint(0, 4, (n,))
        kept = batched_nms(boxes, scores, idxs, threshold)
        assert kept.tolist() == nms_reference(boxes, scores, idxs, threshold)


# ---------------------------------------------------------------- model

def synthetic_sample(size: int = 64):
    """A dark image with two bright boxes, as a character detector would see two glyphs."""
    image = torch.full((3, size, size), 0.1)
    boxes = torch.tensor([[8.0, 10, 26, 40], [34, 14, 56, 44]])
    for x0, y0, x1, y1 in boxes.int().tolist():
        image[:, y0:y1, x0:x1] = 0.9
    image[1:, 14:44, 34:56] = 0.2                 # second glyph another colour: class 2
    return image, {"boxes": boxes, "labels": torch.tensor([1, 2])}


def test_forward_train_and_eval_tiny():
    model = DETECTORS.create("tiny_ssdlite", num_classes=3)
    image, target = synthetic_sample()
    model.train()
    losses = model(torch.stack([image, image]), [target, {"boxes": torch.zeros(0, 4),
                                                          "labels": torch.zeros(0, dtype=torch.int64)}])
    assert set(losses) == {"bbox_regression", "classification"}
    assert all(v.dim() == 0 and torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()

    model.eval()
    with torch.inference_mode():
        out = model([image, torch.rand(3, 90, 120)])    # list of sizes: resized inside
    assert len(out) == 2
    for det, (h, w) in zip(out, [(64, 64), (90, 120)]):
        n = det["boxes"].shape[0]
        assert det["boxes"].shape == (n, 4) and det["scores"].shape == (n,) and det["labels"].shape == (n,)
        assert det["labels"].dtype == torch.int64 and (det["labels"] >= 1).all()
        assert (det["boxes"][:, 0::2] <= w + 1e-4).all() and (det["boxes"][:, 1::2] <= h + 1e-4).all()
        assert (det["scores"][:-1] >= det["scores"][1:]).all()


def test_target_errors_name_expected_and_found():
    model = DETECTORS.create("tiny_ssdlite", num_classes=3).train()
    image, _ = synthetic_sample()
    with pytest.raises(ValueError, match=r"expected a FloatTensor\[N, 4\], found .* shape \(2, 5\)"):
        model(image[None], [{"boxes": torch.zeros(2, 5), "labels": torch.ones(2, dtype=torch.int64)}])
    with pytest.raises(ValueError, match=r"expected values in 1..2 .* found 1..3"):
        model(image[None], [{"boxes": torch.tensor([[0.0, 0, 5, 5], [1, 1, 4, 4]]),
                             "labels": torch.tensor([1, 3])}])
    with pytest.raises(ValueError, match="expected a list of 1 dicts"):
        model(image[None], [])
    with pytest.raises(ValueError, match=r"expected Tensor\[B, C, H, W\], found shape \(3, 64, 64\)"):
        model(image, [])


def test_fuse_for_inference_keeps_outputs():
    model = DETECTORS.create("tiny_ssdlite", num_classes=3, channels=1).eval()
    for m in model.modules():                      # non-trivial batch-norm statistics
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 2.0)
    x = torch.rand(2, 1, 64, 64)
    with torch.inference_mode():
        before = model.head(model.backbone(x))
    model.fuse_for_inference()
    with torch.inference_mode():
        after = model.head(model.backbone(x))
    assert all(torch.allclose(a, b, atol=1e-4) for a, b in zip(before, after))
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    with pytest.raises(ValueError, match="expected 1 channels, found 3"):
        model(torch.rand(1, 3, 64, 64))
    with pytest.raises(RuntimeError, match="fused for inference"):
        model.train()(x, [])


def test_loss_falls_when_overfitting_one_image():
    model = DETECTORS.create("tiny_ssdlite", num_classes=3).train()
    image, target = synthetic_sample()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    history = []
    for _ in range(30):
        losses = model(image[None], [target])
        loss = losses["bbox_regression"] + losses["classification"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        history.append(loss.item())
    assert history[-1] < 0.25 * history[0], history


def test_multibox_loss_shape_errors():
    with pytest.raises(ValueError, match=r"bbox_regression: expected shape \(1, 10, 4\), found \(1, 9, 4\)"):
        multibox_loss(torch.zeros(1, 10, 3), torch.zeros(1, 9, 4), torch.zeros(10, 4), [])


def test_registry_presets_and_arch_round_trip():
    assert {"ssdlite_mobilenetv2", "ssd_mobilenetv2", "tiny_ssdlite"} <= set(DETECTORS.names())
    model = DETECTORS.create("tiny_ssdlite", num_classes=5, channels=1, nms_thresh=0.3)
    config = json.loads(json.dumps(model.arch_config()))
    assert config["channels"] == 1 and config["nms_thresh"] == 0.3
    again = DETECTORS.create(**config)
    assert {k: v.shape for k, v in again.state_dict().items()} == \
        {k: v.shape for k, v in model.state_dict().items()}
    again.load_state_dict(model.state_dict())
    with torch.inference_mode():
        assert len(again.eval()(torch.rand(1, 1, 64, 64))) == 1
    with pytest.raises(ValueError, match="unknown option"):
        DETECTORS.create("tiny_ssdlite", num_classes=3, widht_mult=2)
    with pytest.raises(ValueError, match="unknown detector"):
        DETECTORS.create("yolo", num_classes=3)


def test_registry_rebuilds_old_arch_dicts():
    # as the pre-Registry create_detector recorded them: extra_channels and per-map aspect ratios resolved
    old = {"name": "tiny_ssdlite", "num_classes": 3, "channels": 1, "width_mult": 0.25,
           "feature_strides": [16, 32], "extra_channels": [128, 64], "lite_extras": True,
           "last_channels": 0, "head": "lite", "aspect_ratios": [[2.0], [2.0], [2.0], [2.0]],
           "min_ratio": 0.2, "max_ratio": 0.9, "size": [64, 96], "score_thresh": 0.01,
           "nms_thresh": 0.45, "detections_per_img": 200, "topk_candidates": 1000,
           "class_agnostic_nms": False, "iou_threshold": 0.5, "neg_to_pos_ratio": 3,
           "variances": [0.1, 0.2]}
    model = DETECTORS.create(**old)
    fresh = DETECTORS.create("tiny_ssdlite", num_classes=3, channels=1, size=[64, 96])
    assert {k: v.shape for k, v in model.state_dict().items()} == \
        {k: v.shape for k, v in fresh.state_dict().items()}
    assert model.size == fresh.size == (64, 96)

# ---------------------------------------------------------------- readout

def test_readout_two_lines_in_any_order():
    names = ["<bg>", "A", "B", "C", "1", "2"]
    items = [  # (box, label): line 1 "ABC" (slightly wavy), line 2 "12 C"
        ([10, 10, 20, 30], 1), ([22, 12, 32, 31], 2), ([34, 9, 44, 29], 3),
        ([10, 40, 20, 60], 4), ([22, 41, 32, 61], 5), ([50, 40, 60, 60], 3),
    ]
    order = list(range(len(items)))
    random.shuffle(order)
    boxes = [items[i][0] for i in order]
    labels = [items[i][1] for i in order]
    scores = [0.9] * len(items)
    assert boxes_to_text(torch.tensor(boxes, dtype=torch.float32), labels, scores, names) == "ABC\n12C"
    assert boxes_to_text(boxes, labels, scores, names, space_gap=0.5) == "ABC\n12 C"
    assert boxes_to_text(boxes + [[0, 0, 5, 5]], labels + [0], scores + [1.0], names) == "ABC\n12C"
    assert boxes_to_text([], [], [], names) == ""
