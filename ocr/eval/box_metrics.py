"""Detection metrics: mAP (VOC / COCO style), precision, recall, and line matching.

Metrics (:func:`evaluate_detections`), per class, over a set of images:

* detections of the class, best score first over all images, are matched greedily (COCO
  style): each takes the unmatched ground-truth box of its image with the highest IoU, a
  true positive when that IoU >= the threshold, else a false positive;
* ``AP``: all-point interpolated average precision (VOC 2010+ and COCO's definition, exact
  area under the precision envelope rather than COCO's 101 recall samples);
* ``map50``: the mean AP at IoU 0.5 over classes with ground truth; ``map``: COCO's
  mAP@[.5:.95], the mean over the thresholds 0.50, 0.55, ..., 0.95 (classes without ground
  truth are left out of means; no ground truth at all gives 0);
* ``precision`` / ``recall``: over all classes, of the detections scoring at least
  ``score_threshold`` (default :data:`SCORE_THRESHOLD`, 0.5), at IoU 0.5 (0 when undefined).
"""

from __future__ import annotations

import numpy as np

SCORE_THRESHOLD = 0.5
COCO_THRESHOLDS = tuple(round(0.5 + 0.05 * i, 2) for i in range(10))


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of xyxy boxes ``a`` (n, 4) and ``b`` (m, 4) -> (n, m)."""
    a, b = np.asarray(a, np.float64).reshape(-1, 4), np.asarray(b, np.float64).reshape(-1, 4)
    w = np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0])
    h = np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1])
    inter = w.clip(0) * h.clip(0)
    area = lambda x: (x[:, 2] - x[:, 0]).clip(0) * (x[:, 3] - x[:, 1]).clip(0)  # noqa: E731
    union = area(a)[:, None] + area(b)[None, :] - inter
    return inter / np.maximum(union, 1e-12)


def average_precision(scores, tp, num_gt: int) -> float:
    """All-point interpolated AP of detections (``scores`` (n,), true-positive flags ``tp``
    (n,)) against ``num_gt`` ground-truth boxes; NaN when ``num_gt`` is 0."""
    if num_gt <= 0:
        return float("nan")
    scores, tp = np.asarray(scores, np.float64).reshape(-1), np.asarray(tp, bool).reshape(-1)
    order = np.argsort(-scores, kind="stable")
    hits = np.cumsum(tp[order])
    recall = np.concatenate([[0.0], hits / num_gt, [1.0]])
    precision = np.concatenate([[0.0], hits / np.arange(1, len(order) + 1), [0.0]])
    precision = np.maximum.accumulate(precision[::-1])[::-1]       # the envelope
    steps = np.nonzero(recall[1:] != recall[:-1])[0]
    return float(np.sum((recall[steps + 1] - recall[steps]) * precision[steps + 1]))


def match_detections(boxes, scores, gt_boxes, thresholds) -> np.ndarray:
    """Greedy matching in one image and class: bool (T, n) true-positive flags of the
    detections (in their given order) at each IoU threshold."""
    n, thresholds = len(scores), np.asarray(thresholds, np.float64)
    tp = np.zeros((len(thresholds), n), bool)
    if n == 0 or len(gt_boxes) == 0:
        return tp
    iou = iou_matrix(boxes, gt_boxes)
    taken = np.zeros((len(thresholds), len(gt_boxes)), bool)
    rows = np.arange(len(thresholds))
    for d in np.argsort(-np.asarray(scores), kind="stable"):
        if iou[d].max() < thresholds.min():
            continue
        free = np.where(taken, -1.0, iou[d][None, :])               # (T, m)
        best = free.argmax(1)
        hit = free[rows, best] >= thresholds
        tp[hit, d] = True
        taken[rows[hit], best[hit]] = True
    return tp


def _class_results(preds: list[dict], gts: list[dict], c: int, thresholds) -> tuple:
    """(scores, tp (T, n), num_gt) of class ``c`` over all images."""
    scores, flags, num_gt = [], [], 0
    for p, g in zip(preds, gts):
        pm, gm = np.asarray(p["labels"]) == c, np.asarray(g["labels"]) == c
        gt_boxes = np.asarray(g["boxes"]).reshape(-1, 4)[gm]
        s = np.asarray(p["scores"], np.float64)[pm]
        num_gt += len(gt_boxes)
        scores.append(s)
        flags.append(match_detections(np.asarray(p["boxes"]).reshape(-1, 4)[pm], s, gt_boxes, thresholds))
    return np.concatenate(scores), np.concatenate(flags, 1), num_gt


def evaluate_detections(preds: list[dict], gts: list[dict], iou_thresholds=COCO_THRESHOLDS,
                        score_threshold: float = SCORE_THRESHOLD, class_names=None) -> dict:
    """Metrics of the module docstring.

    preds: per image ``{"boxes": (n, 4) xyxy, "scores": (n,), "labels": (n,) int}``;
    gts: per image ``{"boxes": (m, 4) xyxy, "labels": (m,) int}``, same pixels as preds.
    Returns ``map50`` (None unless 0.5 is a threshold), ``map`` (mean over ``iou_thresholds``),
    ``ap`` {threshold: mAP}, ``per_class`` {name: {ap50, ap, gt, detections}}, ``precision``,
    ``recall``, ``f1`` (IoU 0.5, score >= ``score_threshold``), ``images``, ``gt_boxes``,
    ``detections``.
    """
    if len(preds) != len(gts):
        raise ValueError(f"expected one prediction per ground-truth image, found {len(preds)} "
                         f"predictions for {len(gts)} images")
    thresholds = sorted({*(round(float(t), 4) for t in iou_thresholds), 0.5})
    at50 = thresholds.index(0.5)
    classes = sorted({int(c) for x in (*preds, *gts) for c in np.asarray(x["labels"]).reshape(-1)})
    names = {c: str(class_names[c]) if class_names is not None else str(c) for c in classes}
    per_class, aps, tp_total, det_total, gt_total = {}, {}, 0, 0, 0
    for c in classes:
        scores, tp, num_gt = _class_results(preds, gts, c, thresholds)
        confident = scores >= score_threshold
        tp_total += int(tp[at50][confident].sum())
        det_total, gt_total = det_total + int(confident.sum()), gt_total + num_gt
        aps[c] = [average_precision(scores, tp[t], num_gt) for t in range(len(thresholds))]
        wanted = [aps[c][thresholds.index(round(float(t), 4))] for t in iou_thresholds]
        per_class[names[c]] = {"ap50": aps[c][at50] if num_gt else None,
                               "ap": float(np.mean(wanted)) if num_gt else None,
                               "gt": num_gt, "detections": len(scores)}
    with_gt = [c for c in classes if per_class[names[c]]["gt"] > 0]

    def mean_ap(t: float) -> float:
        i = thresholds.index(round(float(t), 4))
        return float(np.mean([aps[c][i] for c in with_gt])) if with_gt else 0.0

    by_threshold = {round(float(t), 4): mean_ap(t) for t in iou_thresholds}
    precision = tp_total / det_total if det_total else 0.0
    recall = tp_total / gt_total if gt_total else 0.0
    return {"map50": by_threshold.get(0.5), "map": float(np.mean(list(by_threshold.values()))),
            "ap": by_threshold, "per_class": per_class, "precision": precision, "recall": recall,
            "f1": 2 * precision * recall / (precision + recall) if precision + recall else 0.0,
            "score_threshold": score_threshold, "images": len(gts), "gt_boxes": gt_total,
            "detections": sum(len(np.asarray(p["scores"]).reshape(-1)) for p in preds)}


def match_lines(pred_boxes, pred_scores, gt_boxes, threshold: float = 0.5) -> list[int]:
    """For each ground-truth box, the index of the prediction matched to it (greedy, best score
    first, IoU >= ``threshold``), or -1."""
    tp_of = [-1] * len(gt_boxes)
    if len(pred_boxes) == 0 or len(gt_boxes) == 0:
        return tp_of
    iou = iou_matrix(pred_boxes, gt_boxes)
    for d in np.argsort(-np.asarray(pred_scores), kind="stable"):
        free = np.where(np.array(tp_of) >= 0, -1.0, iou[d])
        g = int(free.argmax())
        if free[g] >= threshold:
            tp_of[g] = int(d)
    return tp_of
