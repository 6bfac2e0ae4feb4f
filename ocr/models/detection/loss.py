"""SSD multibox loss: smooth L1 on matched anchors + cross entropy with hard negative mining."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ocr.models.detection.box_ops import encode, match


def check_targets(targets, batch_size: int, num_classes: int | None = None) -> None:
    """Refuse targets that are not ``batch_size`` dicts ``{"boxes": FloatTensor[N, 4] xyxy,
    "labels": Int64Tensor[N]}`` with ``x1 > x0``, ``y1 > y0`` and labels in ``1..num_classes-1``."""
    if not isinstance(targets, (list, tuple)) or len(targets) != batch_size:
        found = f"{type(targets).__name__} of length {len(targets)}" if hasattr(targets, "__len__") \
            else type(targets).__name__
        raise ValueError(f"targets: expected a list of {batch_size} dicts (one per image), found {found}")
    for i, t in enumerate(targets):
        if not isinstance(t, dict) or "boxes" not in t or "labels" not in t:
            raise ValueError(f"targets[{i}]: expected a dict with 'boxes' and 'labels', found {t!r:.80}")
        boxes, labels = t["boxes"], t["labels"]
        if not isinstance(boxes, Tensor) or boxes.dim() != 2 or boxes.shape[-1] != 4 \
                or not boxes.is_floating_point():
            raise ValueError(f"targets[{i}]['boxes']: expected a FloatTensor[N, 4], found "
                             f"{getattr(boxes, 'dtype', type(boxes).__name__)} of shape "
                             f"{tuple(getattr(boxes, 'shape', ()))}")
        if not isinstance(labels, Tensor) or labels.dtype != torch.int64 or labels.shape != boxes.shape[:1]:
            raise ValueError(f"targets[{i}]['labels']: expected an Int64Tensor[{boxes.shape[0]}], found "
                             f"{getattr(labels, 'dtype', type(labels).__name__)} of shape "
                             f"{tuple(getattr(labels, 'shape', ()))}")
        bad = (boxes[:, 2:] <= boxes[:, :2]).any(dim=1)
        if bad.any():
            j = int(bad.nonzero()[0])
            raise ValueError(f"targets[{i}]['boxes'][{j}]: expected x1 > x0 and y1 > y0, found "
                             f"{boxes[j].tolist()}")
        if num_classes is not None and labels.numel() and (labels.min() < 1 or labels.max() >= num_classes):
            raise ValueError(f"targets[{i}]['labels']: expected values in 1..{num_classes - 1} "
                             f"(0 is the background), found {labels.min().item()}..{labels.max().item()}")


def multibox_loss(cls_logits: Tensor, bbox_regression: Tensor, anchors: Tensor, targets: list[dict],
                  *, iou_threshold: float = 0.5, neg_to_pos_ratio: int = 3,
                  variances: tuple[float, float] = (0.1, 0.2)) -> dict[str, Tensor]:
    """SSD loss of one batch.

    cls_logits: ``[B, A, num_classes]``; bbox_regression: ``[B, A, 4]`` (SSD offsets);
    anchors: xyxy ``[A, 4]`` in the same pixels as the target boxes;
    targets: B dicts ``{"boxes": FloatTensor[N, 4] xyxy, "labels": Int64Tensor[N]}``.

    Returns ``{"bbox_regression", "classification"}``, each summed over the batch and divided
    by the number of positive anchors (at least 1). Negatives: for each image the
    ``neg_to_pos_ratio * positives`` background anchors with the highest loss.
    """
    b, a, c = cls_logits.shape
    if bbox_regression.shape != (b, a, 4):
        raise ValueError(f"bbox_regression: expected shape {(b, a, 4)}, found {tuple(bbox_regression.shape)}")
    if anchors.shape != (a, 4):
        raise ValueError(f"anchors: expected shape {(a, 4)}, found {tuple(anchors.shape)}")
    check_targets(targets, b, c)

    cls_targets, box_targets = [], []
    for t in targets:
        boxes, labels = t["boxes"].to(anchors), t["labels"].to(anchors.device)
        if boxes.shape[0] == 0:
            cls_targets.append(torch.zeros(a, dtype=torch.int64, device=anchors.device))
            box_targets.append(torch.zeros_like(anchors))
            continue
        idx = match(anchors, boxes, iou_threshold)
        safe = idx.clamp(min=0)
        cls_targets.append(torch.where(idx >= 0, labels[safe], 0))
        box_targets.append(encode(boxes[safe], anchors, variances))
    cls_targets, box_targets = torch.stack(cls_targets), torch.stack(box_targets)

    positive = cls_targets > 0                                            # [B, A]
    num_pos = positive.sum(dim=1, keepdim=True)
    normaliser = num_pos.sum().clamp(min=1)
    reg_loss = F.smooth_l1_loss(bbox_regression[positive], box_targets[positive], reduction="sum")

    ce = F.cross_entropy(cls_logits.reshape(-1, c), cls_targets.reshape(-1), reduction="none").view(b, a)
    neg_loss = ce.detach().masked_fill(positive, -float("inf"))
    rank = neg_loss.argsort(dim=1, descending=True).argsort(dim=1)       # rank of each anchor
    hard_negative = rank < neg_to_pos_ratio * num_pos
    cls_loss = ce[positive | hard_negative].sum()
    return {"bbox_regression": reg_loss / normaliser, "classification": cls_loss / normaliser}
