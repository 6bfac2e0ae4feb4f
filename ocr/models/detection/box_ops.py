"""Box utilities in plain torch: conversions, IoU, the SSD codec, matching and NMS.

Boxes are ``Tensor[N, 4]``; "xyxy" means (x0, y0, x1, y1) with x1 > x0 and y1 > y0,
"cxcywh" means (centre x, centre y, width, height). Any unit works as long as both
arguments of a function share it.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

# exp() of a predicted log-scale above this overflows to absurd boxes (torchvision's clip)
_MAX_LOG_SCALE = math.log(1000.0 / 16)


def _check_boxes(boxes: Tensor, name: str) -> None:
    if boxes.dim() != 2 or boxes.shape[-1] != 4:
        raise ValueError(f"{name}: expected a Tensor[N, 4], found shape {tuple(boxes.shape)}")


def xyxy_to_cxcywh(boxes: Tensor) -> Tensor:
    x0, y0, x1, y1 = boxes.unbind(-1)
    return torch.stack(((x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0), dim=-1)


def cxcywh_to_xyxy(boxes: Tensor) -> Tensor:
    cx, cy, w, h = boxes.unbind(-1)
    return torch.stack((cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2), dim=-1)


def box_area(boxes: Tensor) -> Tensor:
    return (boxes[..., 2] - boxes[..., 0]).clamp(min=0) * (boxes[..., 3] - boxes[..., 1]).clamp(min=0)


def _inter_union(boxes1: Tensor, boxes2: Tensor) -> tuple[Tensor, Tensor]:
    w = torch.min(boxes1[:, None, 2], boxes2[None, :, 2]) - torch.max(boxes1[:, None, 0], boxes2[None, :, 0])
    h = torch.min(boxes1[:, None, 3], boxes2[None, :, 3]) - torch.max(boxes1[:, None, 1], boxes2[None, :, 1])
    inter = w.clamp_(min=0).mul_(h.clamp_(min=0))
    return inter, box_area(boxes1)[:, None] + box_area(boxes2)[None, :] - inter


def box_iou(boxes1: Tensor, boxes2: Tensor) -> Tensor:
    """IoU of every pair: xyxy ``Tensor[N, 4]`` and ``Tensor[M, 4]`` -> ``Tensor[N, M]``."""
    _check_boxes(boxes1, "box_iou boxes1")
    _check_boxes(boxes2, "box_iou boxes2")
    inter, union = _inter_union(boxes1, boxes2)
    return inter / union.clamp(min=torch.finfo(inter.dtype).tiny)


def clip_boxes(boxes: Tensor, height: float, width: float) -> Tensor:
    """Clamp xyxy boxes to the image ``[0, width] x [0, height]``."""
    x = boxes[..., 0::2].clamp(0, width)
    y = boxes[..., 1::2].clamp(0, height)
    return torch.stack((x[..., 0], y[..., 0], x[..., 1], y[..., 1]), dim=-1)


def encode(boxes: Tensor, anchors: Tensor, variances: tuple[float, float] = (0.1, 0.2)) -> Tensor:
    """SSD codec: xyxy ``boxes`` relative to xyxy ``anchors`` (both ``[N, 4]``) -> offsets ``[N, 4]``.

    Offsets are ``((gcx - acx) / aw / v0, (gcy - acy) / ah / v0, log(gw / aw) / v1, log(gh / ah) / v1)``.
    """
    g, a = xyxy_to_cxcywh(boxes), xyxy_to_cxcywh(anchors)
    v0, v1 = variances
    centre = (g[..., :2] - a[..., :2]) / a[..., 2:] / v0
    size = torch.log(g[..., 2:] / a[..., 2:]) / v1
    return torch.cat((centre, size), dim=-1)


def decode(offsets: Tensor, anchors: Tensor, variances: tuple[float, float] = (0.1, 0.2)) -> Tensor:
    """Inverse of :func:`encode`: offsets ``[..., N, 4]`` and xyxy anchors ``[N, 4]`` -> xyxy boxes."""
    a = xyxy_to_cxcywh(anchors)
    v0, v1 = variances
    centre = a[..., :2] + offsets[..., :2] * v0 * a[..., 2:]
    size = a[..., 2:] * torch.exp((offsets[..., 2:] * v1).clamp(max=_MAX_LOG_SCALE))
    return cxcywh_to_xyxy(torch.cat((centre, size), dim=-1))


def match(anchors: Tensor, gt_boxes: Tensor, iou_threshold: float = 0.5) -> Tensor:
    """Assign each anchor a ground-truth index, or -1 for background.

    anchors: xyxy ``Tensor[A, 4]``; gt_boxes: xyxy ``Tensor[G, 4]`` -> ``Int64Tensor[A]``.
    An anchor takes its best-overlapping box when that IoU is >= ``iou_threshold``; in
    addition every box is forced onto its own best anchor, so no box goes unmatched
    (when two boxes share a best anchor, the later box keeps it).
    """
    _check_boxes(anchors, "match anchors")
    _check_boxes(gt_boxes, "match gt_boxes")
    matched = torch.full((anchors.shape[0],), -1, dtype=torch.int64, device=anchors.device)
    if gt_boxes.shape[0] == 0:
        return matched
    iou = box_iou(anchors, gt_boxes)                       # [A, G]
    best_iou, best_gt = iou.max(dim=1)
    matched = torch.where(best_iou >= iou_threshold, best_gt, matched)
    best_anchor = iou.argmax(dim=0)                        # [G]
    matched[best_anchor] = torch.arange(gt_boxes.shape[0], device=anchors.device)
    return matched


def nms(boxes: Tensor, scores: Tensor, iou_threshold: float) -> Tensor:
    """Greedy NMS, exact and vectorised: indices of kept boxes, highest score first.

    A box is dropped when its IoU with a kept, higher-scoring box is > ``iou_threshold``.
    Greedy NMS is the unique fixed point of ``keep[j] = no kept i < j suppresses j`` (in score
    order); iterating that rule from "keep all" reaches it, each pass a matrix operation, in as
    many passes as the longest suppression chain (usually a handful). Memory is O(N^2): cap N
    with a top-k first (the SSD post-processing does).
    """
    _check_boxes(boxes, "nms boxes")
    if scores.shape != boxes.shape[:1]:
        raise ValueError(f"nms: expected scores of shape ({boxes.shape[0]},), found {tuple(scores.shape)}")
    order = torch.sort(scores, descending=True, stable=True).indices
    b = boxes[order]
    inter, union = _inter_union(b, b)
    # suppresses[i, j]: i comes before j and IoU > threshold (division-free)
    suppresses = torch.triu(inter > iou_threshold * union, diagonal=1).to(b.dtype)
    keep = torch.ones(b.shape[0], dtype=b.dtype, device=b.device)
    for _ in range(b.shape[0]):
        new_keep = (keep @ suppresses == 0).to(b.dtype)     # no kept box suppresses it
        if torch.equal(new_keep, keep):
            break
        keep = new_keep
    return order[keep.bool()]


def batched_nms(boxes: Tensor, scores: Tensor, idxs: Tensor, iou_threshold: float) -> Tensor:
    """NMS within each category ``idxs`` (``Int64Tensor[N]``), never across categories.

    Boxes of different categories are shifted apart so they cannot overlap, then one
    :func:`nms` runs on all of them. Returns kept indices, highest score first.
    """
    if boxes.numel() == 0:
        return torch.empty((0,), dtype=torch.int64, device=boxes.device)
    lo, hi = boxes.min(), boxes.max()
    offsets = idxs.to(boxes) * (hi - lo + 1)
    return nms(boxes - lo + offsets[:, None], scores, iou_threshold)


def nms_reference(boxes, scores, idxs, iou_threshold: float) -> list[int]:
    """Brute-force per-category greedy NMS in plain Python, for tests. Returns kept indices."""
    boxes, scores, idxs = [torch.as_tensor(t).tolist() for t in (boxes, scores, idxs)]

    def iou(a, b):
        iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
        ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
        inter = iw * ih
        union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
        return inter / union if union > 0 else 0.0

    kept: list[int] = []
    for i in sorted(range(len(boxes)), key=lambda k: (-scores[k], k)):
        if all(idxs[k] != idxs[i] or iou(boxes[k], boxes[i]) <= iou_threshold for k in kept):
            kept.append(i)
    return kept


# --- line crops: training (char detection) and serving cut lines out of pages the same way ---
CROP_MARGIN = 0.15   # a line crop grows by this x the line's height on every side


def crop_box(line, page_size: tuple[int, int], margins=(CROP_MARGIN,) * 4) -> tuple[int, ...]:
    """Integer crop (x0, y0, x1, y1) of a line box grown by ``margins`` (left, top, right,
    bottom) x its height, clipped to the page (width, height); at least 1x1."""
    x0, y0, x1, y1 = (float(v) for v in line)
    h = y1 - y0
    left, top = max(0, math.floor(x0 - margins[0] * h)), max(0, math.floor(y0 - margins[1] * h))
    right = min(page_size[0], max(left + 1, math.ceil(x1 + margins[2] * h)))
    bottom = min(page_size[1], max(top + 1, math.ceil(y1 + margins[3] * h)))
    return left, top, right, bottom
