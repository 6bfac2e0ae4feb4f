"""Layout "coco" (detection): a COCO-style JSON::

    {"images": [{"id": 1, "file_name": "a.jpg", "width": 100, "height": 40}],
     "annotations": [{"id": 7, "image_id": 1, "bbox": [10, 5, 80, 25], "category_id": 1,
                      "text": "LOT 42"}],
     "categories": [{"id": 1, "name": "text"}]}

One entry per image in ``images`` order (key = file_name), with a box per annotation:
``bbox`` ``[x, y, w, h]`` becomes ``Box(x, y, x + w, y + h)``, labelled with its category's
name ("text" when the annotation has no category_id); its text is the first of
``text``, ``utf8_string`` (COCO-Text) or ``attributes.text`` that is set, else "". Images
without annotations are kept with ``boxes=()``. An unknown category_id, a category without a
string name, a bbox that is not 4 numbers, or a text field holding no string makes the
image's entry an error; annotations of unknown images become error entries keyed
``annotation-<id>``, and list items that are no JSON object ``images[N]`` / ``annotations[N]``.
Non-finite coordinates (``NaN``, ``Infinity``) are kept: validation rejects that box. Images
live in ``options.image_root``, else ``<json folder>/images`` when it exists, else beside the
JSON.
"""

from __future__ import annotations

from typing import ClassVar

from ocr import storage
from ocr.data.formats.aihub import join_annotations, load_json
from ocr.data.formats.base import Box, Entry, Reader, describe_json, is_number
from ocr.data.formats.gt import image_entry, images_root


def annotation_text(ann: dict) -> str:
    """The first non-empty of ``text``, ``utf8_string`` and ``attributes.text``, else "";
    ValueError when one of them is set to something else than a string (or null)."""
    attributes = ann.get("attributes") if isinstance(ann.get("attributes"), dict) else {}
    for name, text in (("text", ann.get("text")), ("utf8_string", ann.get("utf8_string")),
                       ("attributes.text", attributes.get("text"))):
        if text is not None and not isinstance(text, str):
            raise ValueError(f"annotation {ann.get('id')!r}: expected a string {name}, "
                             f"found {describe_json(text)}")
        if text:
            return text
    return ""


def annotation_box(ann: dict, categories: dict[str, object]) -> Box:
    """The box of a COCO annotation; ValueError naming the annotation when it is bad."""
    cat = ann.get("category_id")
    if cat is not None and str(cat) not in categories:
        raise ValueError(f"annotation {ann.get('id')!r}: category_id {cat!r} not in categories")
    label = categories[str(cat)] if cat is not None else "text"
    if not isinstance(label, str) or not label:
        raise ValueError(f"annotation {ann.get('id')!r}: category {cat!r} expected a non-empty "
                         f"string name, found {describe_json(label)}")
    bbox = ann.get("bbox")
    if not isinstance(bbox, list) or len(bbox) != 4 or not all(is_number(v) for v in bbox):
        raise ValueError(f"annotation {ann.get('id')!r}: expected bbox [x, y, w, h] of 4 numbers, "
                         f"found {describe_json(bbox)}")
    x, y, w, h = (float(v) for v in bbox)
    return Box(x, y, x + w, y + h, label=label, text=annotation_text(ann))


def category_names(uri: str, categories) -> dict[str, object]:
    """{str(id): name as found} of the ``categories`` list (items that are no object are
    skipped: an annotation naming one is refused as naming no category)."""
    if categories is None:
        return {}
    if not isinstance(categories, list):
        raise ValueError(  # noqa: TRY004
            f"{uri}: expected a list 'categories', found {describe_json(categories)}")
    return {str(c.get("id")): c.get("name") for c in categories if isinstance(c, dict)}


class CocoReader(Reader):
    """``CocoReader(uri_of_json, options, s3).entries()``: one entry per image, with its boxes."""

    layout: ClassVar[str] = "coco"
    task: ClassVar[str] = "detection"

    def entries(self) -> list[Entry]:
        data = load_json(self.uri, self.s3)
        images, annotations = data.get("images"), data.get("annotations", [])
        if not isinstance(images, list) or not isinstance(annotations, list):
            raise ValueError(  # noqa: TRY004
                f"{self.uri}: expected COCO lists 'images' and 'annotations', "
                f"found keys {sorted(data)}")
        categories = category_names(self.uri, data.get("categories"))
        join = storage.SafeJoin(images_root(self.uri, self.options, self.s3))

        def make_entry(name: str, anns: list[dict]) -> list[Entry]:
            try:
                boxes = tuple(annotation_box(a, categories) for a in anns)
            except ValueError as e:
                return [Entry(key=name, error=str(e))]
            return [image_entry(join, name, key=name, boxes=boxes)]

        return join_annotations(images, annotations, make_entry)
