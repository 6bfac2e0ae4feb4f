"""Layout "labelme" (detection): a folder of images, each with a LabelMe JSON sidecar::

    scans/a.jpg
    scans/a.json   {"imagePath": "a.jpg",
                    "shapes": [{"label": "text", "shape_type": "rectangle",
                                "points": [[10, 5], [90, 30]], "description": "LOT 42"},
                               {"label": "text", "shape_type": "polygon",
                                "points": [[5, 40], [60, 38], [62, 55], [4, 57]]}]}

Every ``.json`` under the folder (subfolders included) is one entry, key = its relative
POSIX path, in sorted order. Boxes: a "rectangle" (two corners) or "polygon"/"rotation"
(n points; a missing ``shape_type`` means polygon, as in old LabelMe) becomes the
axis-aligned bounding box of its points; other shape types (point, line, circle, ...) are
ignored. A JSON that does not parse, or holds a value of the wrong type (the document or a
shape no object, ``shapes`` no list, a shape with fewer than two [x, y] pairs of numbers, a
text or label field holding a list, an object or a boolean, ``imagePath`` no string), makes
the whole entry an error naming what was expected and found. A point with a NaN or infinite
coordinate gives a box with one, which validation rejects (that box only).

The box text comes from ``options.labelme_text`` (``ocr ingest --labelme-text``):

* ``auto`` (default): the first non-blank of ``text``, ``description`` (LabelMe writes an
  empty one by default) and ``label`` (LabelMe's own convention: the transcription typed as
  the shape's label);
* ``label``: always the shape's ``label``;
* ``description``, ``text`` or any other FIELD: ``shape[FIELD]`` ("" when absent).

Box label (the class detection trains on) = the shape's ``label``, except when the text
was read from it: then it is a transcription, not a class, and the box is labelled
``"text"`` (train such sets with ``--target text``). Every LabelMe box is a transcription
(``needs_text``): an empty text is an ``empty_label`` reject of that box.

The image: ``imagePath`` (relative to the JSON's folder, and it must stay inside the
dataset root) when it names a file of the folder's listing; otherwise the image with the
JSON's stem (LabelMe's ``imagePath`` goes stale when files are renamed); otherwise
``imagePath`` as written, which ingest then rejects as a missing file. Images without a
sidecar are ignored. The listing is already in hand, so none of this costs extra requests;
the sidecars themselves are read by a small thread pool (order kept).
"""

from __future__ import annotations

import json
import math
import posixpath
from concurrent.futures import ThreadPoolExecutor
from typing import ClassVar

from ocr import storage
from ocr.data.formats.base import Box, Entry, Reader, describe_json, is_number
from ocr.data.formats.filename import matching_extension
from ocr.data.formats.gt import image_entry

BOX_SHAPES = ("rectangle", "polygon", "rotation")
AUTO_FIELDS = ("text", "description", "label")
TEXT_CLASS = "text"  # the box label of a shape whose label is its transcription


def _value(shape: dict, name: str) -> str:
    """``shape[name]`` as text: a string as is, a number written out, missing or null "";
    ValueError for anything else (a list, an object, a boolean)."""
    value = shape.get(name)
    if value is None:
        return ""
    if isinstance(value, str) or is_number(value):
        return str(value)
    raise ValueError(f"shape field {name!r}: expected a string, found {describe_json(value)}")


def shape_text(shape: dict, field: str = "auto") -> tuple[str, str]:
    """(the shape's text, the field it came from): see the module docstring."""
    if field == "auto":
        for name in AUTO_FIELDS:
            text = _value(shape, name)
            if text.strip():
                return text, name
        return "", "label"
    return _value(shape, field), field


def _points(shape: dict, kind: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """(xs, ys) of the shape's points: a list of at least two [x, y] pairs of numbers."""
    points = shape.get("points")
    if (isinstance(points, list) and len(points) >= 2
            and all(isinstance(p, list) and len(p) == 2 and all(map(is_number, p)) for p in points)):
        return tuple(float(p[0]) for p in points), tuple(float(p[1]) for p in points)
    raise ValueError(f"{kind} shape {shape.get('label')!r}: expected at least 2 [x, y] "
                     f"points, found {describe_json(points)}")


def _span(values: tuple[float, ...]) -> tuple[float, float]:
    """(min, max) of the values; NaN for both when one is NaN (min and max would skip it,
    hiding a bad point from validation, which rejects the box)."""
    if any(math.isnan(v) for v in values):
        return math.nan, math.nan
    return min(values), max(values)


def shape_box(shape: dict, text_field: str = "auto") -> Box | None:
    """The bounding box of a LabelMe shape, None for ignored shape types; ValueError if bad."""
    kind = shape.get("shape_type") or "polygon"
    if not isinstance(kind, str):
        raise ValueError(f"shape {shape.get('label')!r}: expected a string shape_type, "
                         f"found {describe_json(kind)}")
    if kind not in BOX_SHAPES:
        return None
    xs, ys = _points(shape, kind)
    text, source = shape_text(shape, text_field)
    label = TEXT_CLASS if source == "label" else (_value(shape, "label").strip() or TEXT_CLASS)
    (x0, x1), (y0, y1) = _span(xs), _span(ys)
    return Box(x0, y0, x1, y1, label=label, text=text, needs_text=True)


def sidecar_boxes(data, text_field: str = "auto") -> tuple[Box, ...]:
    """The boxes of a parsed sidecar; ValueError naming what is not of the expected type."""
    if not isinstance(data, dict):
        raise ValueError(f"expected a JSON object, found {describe_json(data)}")
    shapes = data.get("shapes", [])
    if not isinstance(shapes, list):
        raise ValueError(f"expected a list 'shapes', found {describe_json(shapes)}")
    for n, shape in enumerate(shapes):
        if not isinstance(shape, dict):
            raise ValueError(f"shapes[{n}]: expected an object, found {describe_json(shape)}")
    return tuple(b for b in (shape_box(s, text_field) for s in shapes) if b is not None)


def sidecar_image_path(data: dict) -> str:
    """``imagePath`` with forward slashes ("" when missing or null); ValueError if no string."""
    path = data.get("imagePath")
    if path is not None and not isinstance(path, str):
        raise ValueError(f"expected a string imagePath, found {describe_json(path)}")
    return (path or "").replace("\\", "/")


class LabelmeReader(Reader):
    """``LabelmeReader(folder_uri, options, s3).entries()``: one entry per JSON sidecar."""

    layout: ClassVar[str] = "labelme"
    task: ClassVar[str] = "detection"

    def entries(self) -> list[Entry]:
        if not self.options.labelme_text:
            raise ValueError("labelme_text: expected auto, label, description or a field name, found ''")
        if not storage.is_dir(self.uri, self.s3):
            raise FileNotFoundError(f"{self.uri}: expected a folder of images and LabelMe JSON")
        files = storage.list_files(self.uri, self.s3)
        images: dict[str, str] = {}  # relative path without extension -> relative image path
        for rel in files:
            ext = matching_extension(rel, self.options.extensions)
            if ext is not None:
                images.setdefault(rel[: -len(ext)], rel)
        listed = set(files)
        sidecars = [rel for rel in files if rel.lower().endswith(".json")]
        join = storage.SafeJoin(self.uri)
        with ThreadPoolExecutor(max_workers=16) as pool:  # many small GETs on S3
            return list(pool.map(lambda rel: self._entry(rel, images, listed, join), sidecars))

    def _entry(self, rel: str, images: dict[str, str], listed: set[str],
               join: storage.SafeJoin) -> Entry:
        try:
            data = json.loads(storage.read_text(storage.join(self.uri, rel), self.s3))
            boxes = sidecar_boxes(data, self.options.labelme_text)
            image_path = sidecar_image_path(data)
        except ValueError as e:  # JSON syntax, UTF-8, or a value of the wrong type
            return Entry(key=rel, error=f"bad LabelMe JSON: {e}")
        same_stem = images.get(rel[: -len(".json")])
        if image_path:
            wanted = posixpath.normpath(posixpath.join(posixpath.dirname(rel), image_path))
            if image_path[1:2] == ":" or join(wanted) is None:
                return Entry(key=rel, error=f"path escapes the dataset root: {image_path}")
            image = wanted if wanted in listed or same_stem is None else same_stem
        elif same_stem is not None:
            image = same_stem
        else:
            return Entry(key=rel, error="no imagePath and no image with the same name")
        return image_entry(join, image, key=rel, boxes=boxes)
