"""Detector presets: one keyword-only factory, ``ssd``, in ``DETECTORS`` (see ``ocr.models.registry``).

    model = DETECTORS.create("ssdlite_mobilenetv2", num_classes=2, size=320, channels=1)
    json.dumps(model.arch_config())          # everything needed to rebuild it
    same = DETECTORS.create(**model.arch_config())

Every parameter of ``ssd`` can be overridden by keyword; unknown keywords are refused.
``extra_channels=None`` means "enough stride-2 extra layers to reach 1x1" (scaled by width);
``aspect_ratios`` is one list for all feature maps or one list per map.
"""

from __future__ import annotations

import math

from ocr.models.detection.anchors import DefaultBoxGenerator
from ocr.models.detection.mobilenetv2 import MobileNetV2SSDBackbone, make_divisible
from ocr.models.detection.ssd import SSD, SSDHead, SSDLiteHead
from ocr.models.registry import Registry

DETECTORS = Registry("detector")


def _auto_extras(size: tuple[int, int], max_stride: int, width_mult: float) -> list[int]:
    side = max(size)
    for _ in range(int(math.log2(max_stride))):
        side = math.ceil(side / 2)
    base = [512, 256, 256, 128]
    n = max(0, math.ceil(math.log2(side))) if side > 1 else 0
    return [make_divisible(c * width_mult) for c in (base + [128] * n)[:n]]


def ssd(*, num_classes, size=320, channels=3, width_mult=1.0, feature_strides=(16, 32),
        extra_channels=None, lite_extras=True, last_channels=1280, head="lite", aspect_ratios=(2.0, 3.0),
        min_ratio=0.1, max_ratio=0.9, score_thresh=0.01, nms_thresh=0.45, detections_per_img=200,
        topk_candidates=1000, class_agnostic_nms=False, iou_threshold=0.5, neg_to_pos_ratio=3,
        variances=(0.1, 0.2)) -> SSD:
    """SSD on a MobileNetV2 trunk for ``num_classes`` classes (background included) on ``size``
    (side or ``[height, width]``) images with ``channels`` input channels (1 grey, 3 RGB).
    ``head``: "lite" (SSDLite, depthwise-separable) or "ssd" (3x3 convs)."""
    size_hw = (size, size) if isinstance(size, int) else tuple(size)
    if head not in ("lite", "ssd"):
        raise ValueError(f"head: expected 'lite' or 'ssd', found {head!r}")
    if extra_channels is None:
        extra_channels = _auto_extras(size_hw, max(feature_strides), width_mult)
    n_maps = len(feature_strides) + len(extra_channels)
    ar = aspect_ratios
    if not ar or not isinstance(ar[0], (list, tuple)):
        ar = [list(ar)] * n_maps
    if len(ar) != n_maps:
        raise ValueError(f"aspect_ratios: expected one list or {n_maps} lists (one per feature "
                         f"map), found {len(ar)} lists")
    backbone = MobileNetV2SSDBackbone(channels, width_mult, tuple(feature_strides), tuple(extra_channels),
                                      lite_extras, last_channels)
    anchors = DefaultBoxGenerator([list(map(float, r)) for r in ar], min_ratio, max_ratio)
    head_cls = SSDLiteHead if head == "lite" else SSDHead
    return SSD(backbone, anchors, size_hw, num_classes,
               head_cls(backbone.out_channels, anchors.num_anchors_per_location(), num_classes),
               score_thresh=score_thresh, nms_thresh=nms_thresh, detections_per_img=detections_per_img,
               topk_candidates=topk_candidates, class_agnostic_nms=class_agnostic_nms,
               iou_threshold=iou_threshold, neg_to_pos_ratio=neg_to_pos_ratio, variances=tuple(variances))


# SSDLite (depthwise-separable head and extras) on a 0.75-width trunk: the default
DETECTORS.register("ssdlite_mobilenetv2", ssd, width_mult=0.75)
# classic SSD head and extras (3x3 convs): heavier, sometimes more accurate
DETECTORS.register("ssd_mobilenetv2", ssd, head="ssd", lite_extras=False)
# test-sized: a few thousand parameters of trunk, 64x64 input
DETECTORS.register("tiny_ssdlite", ssd, width_mult=0.25, last_channels=0, size=64, aspect_ratios=(2.0,),
                   min_ratio=0.2)
