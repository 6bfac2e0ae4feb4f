"""Predictions written in the layouts our readers take back, and drawn for people.

``PredictionWriter`` writes a LabelMe folder (images beside their JSON) or a COCO set
(``predictions.json`` with ``images/``), which ``ocr ingest`` and the raw readers of
:mod:`ocr.eval` read back: boxes labelled as the shards label them (a ROI class name; "char"
with the symbol as text; "line" with the text read), each with its ``score``.
``draw_boxes`` draws ground truth (green), predictions (red) and lines read (blue).
"""

from __future__ import annotations

import io
import json
import os

from PIL import ImageDraw

from ocr.data.images import sniff_format


def safe_rel(key: str) -> str:
    """A relative path from a sample key, without its extension, that cannot leave a folder."""
    parts = [p for p in str(key).replace("\\", "/").split("/") if p not in ("", ".", "..")]
    rel = "/".join(parts) or "image"
    stem, ext = os.path.splitext(rel)
    return stem if ext.lower() in (".json", ".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff",
                                   ".webp") else rel


def image_ext(data: bytes) -> str:
    return {"JPEG": ".jpg", "GIF": ".gif", "BMP": ".bmp", "TIFF": ".tif", "WEBP": ".webp"}.get(
        sniff_format(data) or "", ".png")


def labelme_json(image_name: str, width: int, height: int, boxes: list[dict]) -> dict:
    """A LabelMe document: one rectangle per box (label, text as ``description``, score)."""
    shapes = [{"label": b["label"], "points": [[b["x0"], b["y0"]], [b["x1"], b["y1"]]],
               "shape_type": "rectangle", "description": b.get("text", ""), "group_id": None,
               "flags": {}, **({"score": round(float(b["score"]), 5)} if "score" in b else {})}
              for b in boxes]
    return {"version": "5.2.1", "flags": {}, "shapes": shapes, "imagePath": image_name,
            "imageData": None, "imageHeight": int(height), "imageWidth": int(width)}


class PredictionWriter:
    """Predictions in a LabelMe folder (``FOLDER/KEY.json`` beside ``FOLDER/KEY.ext``) or a
    COCO set (``FOLDER/predictions.json`` and ``FOLDER/images/``), readable by our readers."""

    def __init__(self, folder: str, layout: str):
        self.folder, self.layout = folder, layout
        self.coco = {"images": [], "annotations": [], "categories": []}
        self._categories: dict[str, int] = {}
        self._used: set[str] = set()

    def _write(self, rel: str, data: bytes | str) -> None:
        path = os.path.join(self.folder, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data.encode("utf-8") if isinstance(data, str) else data)

    def add(self, key: str, image: bytes, size: tuple[int, int], boxes: list[dict]) -> None:
        """One image (its encoded bytes, (width, height)) and its predicted boxes (dicts x0, y0,
        x1, y1, label, text, score in its pixels)."""
        stem, ext = safe_rel(key), image_ext(image)
        rel, n = stem + ext, 1
        while rel.lower() in self._used:  # keys "a.png" and "a.jpg" both give "a"
            rel, n = f"{stem}-{n}{ext}", n + 1
        self._used.add(rel.lower())
        if self.layout == "labelme":
            self._write(rel, image)
            doc = labelme_json(os.path.basename(rel), *size, boxes)
            self._write(os.path.splitext(rel)[0] + ".json", json.dumps(doc, ensure_ascii=False, indent=1))
            return
        self._write(os.path.join("images", rel), image)
        image_id = len(self.coco["images"]) + 1
        self.coco["images"].append({"id": image_id, "file_name": rel, "width": int(size[0]),
                                    "height": int(size[1])})
        for b in boxes:
            cat = self._categories.setdefault(b["label"], len(self._categories) + 1)
            w, h = b["x1"] - b["x0"], b["y1"] - b["y0"]
            self.coco["annotations"].append({
                "id": len(self.coco["annotations"]) + 1, "image_id": image_id, "category_id": cat,
                "bbox": [b["x0"], b["y0"], w, h], "area": w * h, "iscrowd": 0,
                "text": b.get("text", ""), "score": round(float(b.get("score", 1.0)), 5)})

    def close(self) -> str:
        """Finish (COCO: write the JSON); returns what a reader opens (folder or JSON file)."""
        if self.layout == "labelme":
            return self.folder
        self.coco["categories"] = [{"id": i, "name": n} for n, i in self._categories.items()]
        self._write("predictions.json", json.dumps(self.coco, ensure_ascii=False))
        return os.path.join(self.folder, "predictions.json")


def draw_boxes(page, gt: list[dict], pred: list[dict], lines: list[dict] = ()) -> bytes:
    """PNG of the page with ground truth (green), predictions (red) and read lines (blue)."""
    img = page.convert("RGB")
    draw = ImageDraw.Draw(img)
    for boxes, colour in ((gt, (0, 170, 0)), (pred, (220, 0, 0)), (lines, (0, 80, 255))):
        for b in boxes:
            draw.rectangle([b["x0"], b["y0"], b["x1"], b["y1"]], outline=colour)
            if colour == (0, 80, 255) and b.get("text"):
                draw.text((b["x0"], max(0, b["y0"] - 11)), b["text"], fill=colour)
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()
