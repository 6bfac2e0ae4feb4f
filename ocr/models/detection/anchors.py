"""SSD default boxes (anchors), like torchvision's ``DefaultBoxGenerator``.

Feature map ``k`` of ``K`` gets the scale ``s_k = min_ratio + (max_ratio - min_ratio) * k / (K - 1)``
(``s_K = 1``) and, at each cell, the boxes: ``s_k`` square, ``sqrt(s_k * s_{k+1})`` square, and for
each aspect ratio ``r`` (width / height) in ``aspect_ratios[k]`` the pair ``r`` and ``1 / r``:
``2 + 2 * len(aspect_ratios[k])`` boxes per cell.

Two forms:

* :meth:`DefaultBoxGenerator.cxcywh`: normalised ``(cx, cy, w, h)`` in ``[0, 1]`` of the image
  (width and height each relative to their own side);
* :meth:`DefaultBoxGenerator.forward`: ``(x0, y0, x1, y1)`` in pixels of the image size given.

Order (matches the heads): feature map, then row (y), then column (x), then box at the cell.
With ``clip=True`` the boxes are clipped to the image (in xyxy, so border boxes shrink).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ocr.models.detection.box_ops import cxcywh_to_xyxy, xyxy_to_cxcywh


class DefaultBoxGenerator(nn.Module):
    def __init__(self, aspect_ratios: list[list[float]], min_ratio: float = 0.15,
                 max_ratio: float = 0.9, scales: list[float] | None = None, clip: bool = True):
        super().__init__()
        k = len(aspect_ratios)
        if k == 0:
            raise ValueError("aspect_ratios: expected one list per feature map, found none")
        if scales is None:
            if not 0 < min_ratio <= max_ratio:
                raise ValueError(f"expected 0 < min_ratio <= max_ratio, found {min_ratio}, {max_ratio}")
            step = (max_ratio - min_ratio) / (k - 1) if k > 1 else 0.0
            scales = [min_ratio + step * i for i in range(k)] + [1.0]
        elif len(scales) != k + 1:
            raise ValueError(f"scales: expected {k + 1} values (feature maps + 1), found {len(scales)}")
        if any(r <= 0 for ar in aspect_ratios for r in ar):
            raise ValueError(f"aspect_ratios must be > 0, found {aspect_ratios}")
        self.aspect_ratios = [list(map(float, ar)) for ar in aspect_ratios]
        self.scales = [float(s) for s in scales]
        self.clip = clip
        self._cache: dict[tuple, Tensor] = {}

    def num_anchors_per_location(self) -> list[int]:
        return [2 + 2 * len(ar) for ar in self.aspect_ratios]

    def _cell_shapes(self, k: int) -> Tensor:
        """``[n_k, 2]`` normalised (w, h) of the boxes at one cell of feature map ``k``."""
        s, s_next = self.scales[k], self.scales[k + 1]
        wh = [(s, s), (math.sqrt(s * s_next),) * 2]
        for r in self.aspect_ratios[k]:
            q = math.sqrt(r)
            wh += [(s * q, s / q), (s / q, s * q)]
        return torch.tensor(wh, dtype=torch.float32)

    def cxcywh(self, feature_sizes: list[tuple[int, int]]) -> Tensor:
        """Normalised ``(cx, cy, w, h)`` anchors ``[A, 4]`` for feature maps of sizes ``(h, w)``."""
        if len(feature_sizes) != len(self.aspect_ratios):
            raise ValueError(f"expected {len(self.aspect_ratios)} feature maps (one per aspect-ratio "
                             f"list), found {len(feature_sizes)}")
        out = []
        for k, (fh, fw) in enumerate(feature_sizes):
            ys = (torch.arange(fh, dtype=torch.float32) + 0.5) / fh
            xs = (torch.arange(fw, dtype=torch.float32) + 0.5) / fw
            cy, cx = torch.meshgrid(ys, xs, indexing="ij")
            centres = torch.stack((cx, cy), dim=-1).reshape(-1, 1, 2)      # [HW, 1, 2]
            shapes = self._cell_shapes(k)[None]                            # [1, n, 2]
            out.append(torch.cat(torch.broadcast_tensors(centres, shapes), -1).reshape(-1, 4))
        boxes = torch.cat(out)
        if self.clip:
            boxes = xyxy_to_cxcywh(cxcywh_to_xyxy(boxes).clamp(0, 1))
        return boxes

    def forward(self, feature_sizes: list[tuple[int, int]], image_size: tuple[int, int],
                device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> Tensor:
        """xyxy anchors ``[A, 4]`` in pixels of an image of ``image_size = (height, width)``."""
        key = (tuple(map(tuple, feature_sizes)), tuple(image_size), str(device), dtype)
        if key not in self._cache:
            h, w = image_size
            scale = torch.tensor([w, h, w, h], dtype=torch.float32)
            boxes = cxcywh_to_xyxy(self.cxcywh(feature_sizes)) * scale
            self._cache[key] = boxes.to(device=device, dtype=dtype)
        return self._cache[key]
