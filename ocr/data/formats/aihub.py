"""Layout "aihub": AI Hub Korean handwriting / printed text JSON::

    {"images": [{"id": "00000002", "file_name": "00000002.png", "width": 3755, "height": 176}],
     "annotations": [{"id": "00000002", "image_id": "00000002", "text": "여기가",
                      "attributes": {"type": "문장"}}]}

Some releases spell the key ``"annoations"``; both are accepted. Images live in
``options.image_root``, else ``<json folder>/images`` when it exists, else beside the JSON.

Entries follow the ``images`` order, one per annotation of each image (key = file_name, so
a second annotation of an image gives a duplicate key, rejected centrally by ingest). An
image without annotation is an error entry ("no annotation"); annotations whose image_id
names no image follow, as error entries keyed ``annotation-<id>``, then items of the lists that
are no JSON object (a string, a number, null), keyed ``images[N]`` / ``annotations[N]``. A
``text`` that is not a string (null, a number, a list) makes its entry an error. Ids are compared as text,
so ``2`` and ``"2"`` match.
"""

from __future__ import annotations

import json
from typing import ClassVar

from ocr import storage
from ocr.data.formats.base import Entry, Reader, describe_json
from ocr.data.formats.gt import image_entry, images_root


def load_json(uri: str, s3) -> dict:
    """The JSON object in ``uri``; ValueError naming the file when it is not one."""
    try:
        data = json.loads(storage.read_text(uri, s3))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{uri}: not valid JSON: {e}") from e
    if not isinstance(data, dict):
        # ValueError, not TypeError: a bad input file, like every other index error.
        raise ValueError(  # noqa: TRY004
            f"{uri}: expected a JSON object, found {type(data).__name__}")
    return data


def not_an_object(field: str, n: int, value) -> Entry:
    """The error entry (keyed ``field[n]``) of a list item that should be a JSON object."""
    return Entry(key=f"{field}[{n}]", error=f"{field}[{n}]: expected an object, "
                                            f"found {describe_json(value)}")


def join_annotations(images: list, annotations: list, make_entry) -> list[Entry]:
    """Entries in ``images`` order: ``make_entry(file_name, annotations_of_it)`` for each image,
    then an error entry for every annotation whose ``image_id`` names no image, and one for
    every item of either list that is not a JSON object (keyed ``images[N]``,
    ``annotations[N]``): a malformed item is a reject, never an aborted ingest."""
    by_image: dict[str, list[dict]] = {}
    malformed = []
    for n, ann in enumerate(annotations):
        if isinstance(ann, dict):
            by_image.setdefault(str(ann.get("image_id")), []).append(ann)
        else:
            malformed.append(not_an_object("annotations", n, ann))
    entries = []
    for n, image in enumerate(images):
        if not isinstance(image, dict):
            entries.append(not_an_object("images", n, image))
            continue
        image_id, name = str(image.get("id")), image.get("file_name")
        anns = by_image.pop(image_id, [])
        if not isinstance(name, str) or not name:
            entries.append(Entry(key=f"image-{image_id}", error=f"images[{n}]: expected a non-empty "
                                 f"string file_name, found {describe_json(name)}"))
            continue
        entries.extend(make_entry(name, anns))
    for image_id, anns in by_image.items():
        for ann in anns:
            entries.append(Entry(key=f"annotation-{ann.get('id')}",
                                 error=f"image_id {image_id!r} names no image"))
    return entries + malformed


class AihubReader(Reader):
    """``AihubReader(uri_of_json, options, s3).entries()``: one entry per (image, annotation)."""

    layout: ClassVar[str] = "aihub"

    def entries(self) -> list[Entry]:
        data = load_json(self.uri, self.s3)
        images = data.get("images")
        annotations = data.get("annotations", data.get("annoations"))
        if not isinstance(images, list) or not isinstance(annotations, list):
            raise ValueError(  # noqa: TRY004
                f"{self.uri}: expected lists 'images' and 'annotations' "
                f"(or 'annoations'), found keys {sorted(data)}")
        join = storage.SafeJoin(images_root(self.uri, self.options, self.s3))

        def make_entry(name: str, anns: list[dict]) -> list[Entry]:
            if not anns:
                return [Entry(key=name, error="no annotation")]
            out = []
            for ann in anns:
                text = ann.get("text")
                if not isinstance(text, str):
                    out.append(Entry(key=name, error=f"annotation {ann.get('id')!r}: "
                                     f"expected a string 'text', found {describe_json(text)}"))
                else:
                    out.append(image_entry(join, name, key=name, label=text))
            return out

        return join_annotations(images, annotations, make_entry)
