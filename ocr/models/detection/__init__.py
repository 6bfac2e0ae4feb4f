"""Character / region detection: MobileNetV2 backbone, SSD and SSDLite heads, anchors, box ops.

Plain torch (no torchvision). Models follow torchvision's detection conventions::

    model = DETECTORS.create("ssdlite_mobilenetv2", num_classes=37)
    model.train(); losses = model(images, targets)    # {"bbox_regression", "classification"}
    model.eval();  detections = model(images)         # [{"boxes", "scores", "labels"}, ...]

Class 0 is the background everywhere.
"""

from ocr.models.detection.anchors import DefaultBoxGenerator
from ocr.models.detection.box_ops import (
    batched_nms,
    box_iou,
    decode,
    encode,
    match,
    nms,
    nms_reference,
)
from ocr.models.detection.loss import multibox_loss
from ocr.models.detection.mobilenetv2 import MobileNetV2, MobileNetV2SSDBackbone
from ocr.models.detection.readout import boxes_to_text
from ocr.models.detection.registry import DETECTORS
from ocr.models.detection.ssd import SSD, SSDHead, SSDLiteHead

__all__ = [
    "DETECTORS",
    "SSD",
    "DefaultBoxGenerator",
    "MobileNetV2",
    "MobileNetV2SSDBackbone",
    "SSDHead",
    "SSDLiteHead",
    "batched_nms",
    "box_iou",
    "boxes_to_text",
    "decode",
    "encode",
    "match",
    "multibox_loss",
    "nms",
    "nms_reference",
]
