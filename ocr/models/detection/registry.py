"""Named detector presets with a keyword-only factory (doctr / timm style).

    model = create_detector("ssdlite_mobilenetv2", num_classes=2, size=320, channels=1)
    json.dumps(model.arch_config())          # everything needed to rebuild it
    same = build_detector(model.arch_config())

Every preset parameter can be overridden by keyword; unknown keywords are refused.
``extra_channels=None`` means "enough stride-2 extra layers to reach 1x1" (scaled by width);
``aspect_ratios`` is one list for all feature maps or one list per map.
"""

from __future__ import annotations

import copy
import math

from ocr.models.detection.anchors import DefaultBoxGenerator
from ocr.models.detection.mobilenetv2 import MobileNetV2SSDBackbone, make_divisible
from ocr.models.detection.ssd import SSD, SSDHead, SSDLiteHead

_BACKBONE = ("width_mult", "feature_strides", "extra_channels", "lite_extras", "last_channels")
_ANCHORS = ("aspect_ratios", "min_ratio", "max_ratio")
_SSD = ("score_thresh", "nms_thresh", "detections_per_img", "topk_candidates", "class_agnostic_nms",
        "iou_threshold", "neg_to_pos_ratio", "variances")
_DEFAULTS: dict = {
    "width_mult": 1.0, "feature_strides": [16, 32], "extra_channels": None, "lite_extras": True,
    "last_channels": 1280, "head": "lite", "aspect_ratios": [2.0, 3.0], "min_ratio": 0.1,
    "max_ratio": 0.9, "size": 320, "score_thresh": 0.01, "nms_thresh": 0.45,
    "detections_per_img": 200, "topk_candidates": 1000, "class_agnostic_nms": False,
    "iou_threshold": 0.5, "neg_to_pos_ratio": 3, "variances": [0.1, 0.2],
}

_PRESETS: dict[str, dict] = {
    # SSDLite (depthwise-separable head and extras) on a full-width trunk: the default
    "ssdlite_mobilenetv2": {"width_mult": 0.75},
    # classic SSD head and extras (3x3 convs): heavier, sometimes more accurate
    "ssd_mobilenetv2": {"head": "ssd", "lite_extras": False},
    # test-sized: a few thousand parameters of trunk, 64x64 input
    "tiny_ssdlite": {"width_mult": 0.25, "last_channels": 0, "size": 64, "aspect_ratios": [2.0],
                     "min_ratio": 0.2},
}


def list_detectors() -> list[str]:
    return sorted(_PRESETS)


def _auto_extras(size: tuple[int, int], max_stride: int, width_mult: float) -> list[int]:
    side = max(size)
    for _ in range(int(math.log2(max_stride))):
        side = math.ceil(side / 2)
    base = [512, 256, 256, 128]
    n = max(0, math.ceil(math.log2(side))) if side > 1 else 0
    return [make_divisible(c * width_mult) for c in (base + [128] * n)[:n]]


def create_detector(name: str, *, num_classes: int, size: int | list[int] | None = None,
                    channels: int = 3, **overrides) -> SSD:
    """Build preset ``name`` for ``num_classes`` classes (background included) on ``size``
    (side or ``[height, width]``; None: the preset's, 320 except tiny_ssdlite's 64) images
    with ``channels`` input channels (1 grayscale, 3 RGB)."""
    if name not in _PRESETS:
        raise ValueError(f"unknown detector {name!r}: expected one of {list_detectors()}")
    unknown = sorted(set(overrides) - set(_DEFAULTS))
    if unknown:
        raise ValueError(f"unknown option(s) {unknown} for {name}: expected some of {sorted(_DEFAULTS)}")
    cfg = copy.deepcopy({**_DEFAULTS, **_PRESETS[name], **overrides})
    if size is not None:
        cfg["size"] = size
    size_hw = (cfg["size"], cfg["size"]) if isinstance(cfg["size"], int) else tuple(cfg["size"])
    if cfg["head"] not in ("lite", "ssd"):
        raise ValueError(f"head: expected 'lite' or 'ssd', found {cfg['head']!r}")
    cfg["feature_strides"] = list(cfg["feature_strides"])
    if cfg["extra_channels"] is None:
        cfg["extra_channels"] = _auto_extras(size_hw, max(cfg["feature_strides"]), cfg["width_mult"])
    n_maps = len(cfg["feature_strides"]) + len(cfg["extra_channels"])
    ar = cfg["aspect_ratios"]
    if not ar or not isinstance(ar[0], (list, tuple)):
        ar = [list(ar)] * n_maps
    if len(ar) != n_maps:
        raise ValueError(f"aspect_ratios: expected one list or {n_maps} lists (one per feature "
                         f"map), found {len(ar)} lists")
    cfg["aspect_ratios"] = [list(map(float, r)) for r in ar]

    backbone = MobileNetV2SSDBackbone(channels, cfg["width_mult"], tuple(cfg["feature_strides"]),
                                      tuple(cfg["extra_channels"]), cfg["lite_extras"],
                                      cfg["last_channels"])
    anchors = DefaultBoxGenerator(cfg["aspect_ratios"], cfg["min_ratio"], cfg["max_ratio"])
    head_cls = SSDLiteHead if cfg["head"] == "lite" else SSDHead
    head = head_cls(backbone.out_channels, anchors.num_anchors_per_location(), num_classes)
    model = SSD(backbone, anchors, size_hw, num_classes, head,
                **{k: cfg[k] for k in _SSD if k != "variances"}, variances=tuple(cfg["variances"]))
    model.arch = {"name": name, "num_classes": num_classes, "channels": channels, **cfg}
    return model


def build_detector(config: dict) -> SSD:
    """Rebuild a model from :meth:`SSD.arch_config` (e.g. read back from ``model.json``)."""
    config = dict(config)
    return create_detector(config.pop("name"), **config)
