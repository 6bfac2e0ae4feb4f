"""SSD / SSDLite detector (Liu et al. 2016; Sandler et al. 2018), torchvision-style API.

``SSD(backbone, anchor_generator, size, num_classes, head=None)``:

* ``backbone(x)`` returns a list of feature maps and has ``out_channels`` (one per map);
* ``anchor_generator`` is a :class:`DefaultBoxGenerator` with one aspect-ratio list per map;
* ``size`` is the side (or ``(height, width)``) images are resized to inside the model;
* ``num_classes`` counts the background, class 0.

Images are float tensors already normalised by the project's preprocessing; the model only
resizes them to ``size`` (and maps boxes back to each image's own size).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ocr.models.detection.anchors import DefaultBoxGenerator
from ocr.models.detection.box_ops import batched_nms, clip_boxes, decode
from ocr.models.detection.loss import check_targets, multibox_loss
from ocr.models.detection.mobilenetv2 import fuse_conv_bn
from ocr.models.registry import arch_of


def _flatten(outputs: list[Tensor], k: int) -> Tensor:
    """Per-map ``[B, A*k, H, W]`` -> ``[B, sum(H*W*A), k]`` in (map, y, x, anchor) order."""
    return torch.cat([o.permute(0, 2, 3, 1).reshape(o.shape[0], -1, k) for o in outputs], dim=1)


class SSDHead(nn.Module):
    """A 3x3 conv per feature map for class logits and one for box offsets.

    Input: list of ``[B, in_channels[k], H_k, W_k]``. Output: ``(cls_logits [B, A, num_classes],
    bbox_regression [B, A, 4])`` with ``A`` the total number of anchors.
    """

    def __init__(self, in_channels: list[int], num_anchors: list[int], num_classes: int):
        super().__init__()
        self.num_classes = num_classes
        self.cls = nn.ModuleList(self._branch(c, a * num_classes) for c, a in zip(in_channels, num_anchors))
        self.reg = nn.ModuleList(self._branch(c, a * 4) for c, a in zip(in_channels, num_anchors))
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)

    @staticmethod
    def _branch(cin: int, cout: int) -> nn.Module:
        return nn.Conv2d(cin, cout, 3, padding=1)

    def forward(self, features: list[Tensor]) -> tuple[Tensor, Tensor]:
        if len(features) != len(self.cls):
            raise ValueError(f"head: expected {len(self.cls)} feature maps, found {len(features)}")
        cls = _flatten([m(f) for m, f in zip(self.cls, features)], self.num_classes)
        reg = _flatten([m(f) for m, f in zip(self.reg, features)], 4)
        return cls, reg


class SSDLiteHead(SSDHead):
    """Depthwise-separable head: 3x3 depthwise + ReLU6, then 1x1 conv (no batch norm: 1x1 maps)."""

    @staticmethod
    def _branch(cin: int, cout: int) -> nn.Module:
        return nn.Sequential(nn.Conv2d(cin, cin, 3, padding=1, groups=cin), nn.ReLU6(inplace=True),
                             nn.Conv2d(cin, cout, 1))


class SSD(nn.Module):
    """Single-shot detector.

    ``channels_last``: trains faster in channels-last memory (MobileNetV2: 1.5x a step on the
    CPU), a hint the training loop follows.

    forward(images, targets=None):
      images: ``Tensor[B, C, H, W]`` or a list of ``Tensor[C, H_i, W_i]``.
      targets (training): list of B dicts ``{"boxes": FloatTensor[N_i, 4] xyxy pixels of that
      image, "labels": Int64Tensor[N_i] in 1..num_classes-1}``.
    Training returns ``{"bbox_regression": Tensor, "classification": Tensor}`` (scalars).
    Eval returns B dicts ``{"boxes": FloatTensor[N, 4] xyxy pixels of the input image,
    "scores": FloatTensor[N], "labels": Int64Tensor[N]}``, best first.
    """

    channels_last = True

    def __init__(self, backbone: nn.Module, anchor_generator: DefaultBoxGenerator,
                 size: int | tuple[int, int], num_classes: int, head: nn.Module | None = None, *,
                 score_thresh: float = 0.01, nms_thresh: float = 0.45, detections_per_img: int = 200,
                 topk_candidates: int = 1000, class_agnostic_nms: bool = False,
                 iou_threshold: float = 0.5, neg_to_pos_ratio: int = 3,
                 variances: tuple[float, float] = (0.1, 0.2)):
        super().__init__()
        if num_classes < 2:
            raise ValueError(f"num_classes counts the background: expected >= 2, found {num_classes}")
        num_anchors = anchor_generator.num_anchors_per_location()
        out_channels = list(backbone.out_channels)
        if len(out_channels) != len(num_anchors):
            raise ValueError(f"backbone gives {len(out_channels)} feature maps but the anchor "
                             f"generator has aspect ratios for {len(num_anchors)}")
        self.backbone = backbone
        self.anchor_generator = anchor_generator
        self.head = head if head is not None else SSDHead(out_channels, num_anchors, num_classes)
        self.size = (size, size) if isinstance(size, int) else tuple(size)
        self.num_classes = num_classes
        self.score_thresh, self.nms_thresh = score_thresh, nms_thresh
        self.detections_per_img, self.topk_candidates = detections_per_img, topk_candidates
        self.class_agnostic_nms = class_agnostic_nms
        self.iou_threshold, self.neg_to_pos_ratio = iou_threshold, neg_to_pos_ratio
        self.variances = tuple(variances)
        self.arch: dict | None = None   # set by the registry: how to rebuild this model
        self.in_channels: int | None = getattr(backbone, "in_channels", None)
        self.fused = False

    def arch_config(self) -> dict:
        """JSON-able dict that rebuilds this model with ``DETECTORS.create(**cfg)``."""
        return arch_of(self)

    def fuse_for_inference(self, channels_last: bool = True) -> SSD:
        """Eval-only speed-up: fold batch norms into convs and (optionally) use channels-last
        memory. In place; the state dict loses its BN entries, so save weights before fusing."""
        self.eval()
        fuse_conv_bn(self)
        self.fused = True
        return self.to(memory_format=torch.channels_last) if channels_last else self

    def _batch(self, images: Tensor | list[Tensor]) -> tuple[Tensor, list[tuple[int, int]]]:
        """Stack (and resize to ``self.size``) the images; return the batch and original sizes."""
        if isinstance(images, Tensor):
            if images.dim() != 4:
                raise ValueError(f"images: expected Tensor[B, C, H, W], found shape {tuple(images.shape)}")
            if self.in_channels and images.shape[1] != self.in_channels:
                raise ValueError(f"images: expected {self.in_channels} channels, found {images.shape[1]}")
            sizes = [tuple(images.shape[-2:])] * images.shape[0]
            if tuple(images.shape[-2:]) != self.size:
                images = F.interpolate(images, size=self.size, mode="bilinear", align_corners=False)
            return images, sizes
        for i, im in enumerate(images):
            if im.dim() != 3 or (self.in_channels and im.shape[0] != self.in_channels):
                raise ValueError(f"images[{i}]: expected Tensor[{self.in_channels or 'C'}, H, W], "
                                 f"found shape {tuple(im.shape)}")
        sizes = [tuple(im.shape[-2:]) for im in images]
        batch = [im[None] if tuple(im.shape[-2:]) == self.size else
                 F.interpolate(im[None], size=self.size, mode="bilinear", align_corners=False)
                 for im in images]
        return torch.cat(batch), sizes

    def _scale(self, sizes: list[tuple[int, int]], device, dtype) -> Tensor:
        """``[B, 4]`` factors from original pixels to model-input pixels (x, y, x, y)."""
        s = torch.tensor([[self.size[1] / w, self.size[0] / h] * 2 for h, w in sizes], dtype=dtype)
        return s.to(device)

    def forward(self, images: Tensor | list[Tensor], targets: list[dict] | None = None):
        if self.training and self.fused:
            raise RuntimeError("this model was fused for inference (batch norms folded): "
                               "rebuild it and load the saved weights to train")
        x, sizes = self._batch(images)
        features = self.backbone(x)
        cls_logits, bbox_regression = self.head(features)
        anchors = self.anchor_generator([tuple(f.shape[-2:]) for f in features], self.size,
                                        device=x.device, dtype=bbox_regression.dtype)
        if cls_logits.shape[1] != anchors.shape[0]:
            raise RuntimeError(f"head gives {cls_logits.shape[1]} anchors per image but the "
                               f"anchor generator gives {anchors.shape[0]}")
        if self.training:
            if targets is None:
                raise ValueError("training mode: expected targets (list of {'boxes', 'labels'})")
            check_targets(targets, len(sizes), self.num_classes)
            scale = self._scale(sizes, x.device, bbox_regression.dtype)
            targets = [{"boxes": t["boxes"].to(scale) * scale[i], "labels": t["labels"]}
                       for i, t in enumerate(targets)]
            return multibox_loss(cls_logits, bbox_regression, anchors, targets,
                                 iou_threshold=self.iou_threshold,
                                 neg_to_pos_ratio=self.neg_to_pos_ratio, variances=self.variances)
        return self.postprocess(cls_logits, bbox_regression, anchors, sizes)

    def postprocess(self, cls_logits: Tensor, bbox_regression: Tensor, anchors: Tensor,
                    sizes: list[tuple[int, int]]) -> list[dict[str, Tensor]]:
        """Decode, keep scores > ``score_thresh`` (at most ``topk_candidates`` (anchor, class)
        pairs per image, best first), batched NMS, then the best ``detections_per_img``."""
        scores = F.softmax(cls_logits, dim=-1)[..., 1:]                    # [B, A, C-1]
        boxes = clip_boxes(decode(bbox_regression, anchors, self.variances), *self.size)
        scale = self._scale(sizes, boxes.device, boxes.dtype)
        results = []
        for i in range(boxes.shape[0]):
            flat = scores[i].flatten()
            cand = torch.nonzero(flat > self.score_thresh).squeeze(1)
            if cand.numel() > self.topk_candidates:
                cand = cand[flat[cand].topk(self.topk_candidates).indices]
            anchor_idx = cand // scores.shape[-1]
            labels = cand % scores.shape[-1] + 1
            b, s = boxes[i, anchor_idx], flat[cand]
            groups = torch.zeros_like(labels) if self.class_agnostic_nms else labels
            keep = batched_nms(b, s, groups, self.nms_thresh)[: self.detections_per_img]
            results.append({"boxes": b[keep] / scale[i], "scores": s[keep], "labels": labels[keep]})
        return results
