"""Character detections -> text: group boxes into lines, read top to bottom, left to right."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch


def boxes_to_text(boxes, labels, scores, class_names: Sequence[str] | Mapping[int, str], *,
                  min_score: float = 0.0, line_overlap: float = 0.5,
                  space_gap: float | None = None) -> str:
    """Read character boxes as text.

    boxes: xyxy ``[N, 4]`` (tensor, array or lists); labels: ``[N]`` class indices (0, the
    background, is skipped); scores: ``[N]`` (boxes below ``min_score`` are skipped);
    class_names: ``class_names[label]`` is the character of a label.

    Boxes sorted by centre y join the current line when their vertical overlap with the line
    (or their centre distance to its centre) is within ``line_overlap`` of the smaller height;
    lines are read top to bottom, boxes left to right, lines joined by ``"\\n"``. With
    ``space_gap``, a horizontal gap wider than ``space_gap`` x the line's median height
    becomes a space.
    """
    boxes = torch.as_tensor(boxes, dtype=torch.float64).reshape(-1, 4)
    labels = torch.as_tensor(labels).reshape(-1).tolist()
    scores = torch.as_tensor(scores, dtype=torch.float64).reshape(-1).tolist()
    if not (len(boxes) == len(labels) == len(scores)):
        raise ValueError(f"expected as many boxes, labels and scores, found {len(boxes)}, "
                         f"{len(labels)}, {len(scores)}")
    items = [(b, lab) for b, lab, s in zip(boxes.tolist(), labels, scores) if lab != 0 and s >= min_score]
    items.sort(key=lambda it: (it[0][1] + it[0][3]) / 2)

    lines: list[list] = []            # each: [top, bottom, members]
    for b, lab in items:
        if lines:
            top, bottom, members = lines[-1]
            h = min(b[3] - b[1], bottom - top)
            overlap = min(b[3], bottom) - max(b[1], top)
            centre_gap = abs((b[1] + b[3]) / 2 - (top + bottom) / 2)
            if overlap >= line_overlap * h or centre_gap <= line_overlap * h:
                lines[-1] = [min(top, b[1]), max(bottom, b[3]), members + [(b, lab)]]
                continue
        lines.append([b[1], b[3], [(b, lab)]])
    return "\n".join(_read_line(m, class_names, space_gap) for _, _, m in lines)


def _read_line(members: list, class_names, space_gap: float | None) -> str:
    members = sorted(members, key=lambda it: (it[0][0] + it[0][2]) / 2)
    heights = sorted(b[3] - b[1] for b, _ in members)
    limit = None if space_gap is None else space_gap * heights[len(heights) // 2]
    out, prev_right = [], None
    for b, lab in members:
        if limit is not None and prev_right is not None and b[0] - prev_right > limit:
            out.append(" ")
        out.append(class_names[lab])
        prev_right = b[2]
    return "".join(out)
