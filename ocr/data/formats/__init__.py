"""Input layouts: one :class:`~ocr.data.formats.base.Reader` per layout, by name.

    reader = get_reader(detect_layout(uri))(uri, ReaderOptions(), S3Settings.from_env())
    entries = reader.entries()
"""

from __future__ import annotations

import json

from ocr import storage
from ocr.data.formats.aihub import AihubReader
from ocr.data.formats.base import Box, Entry, Reader, ReaderOptions
from ocr.data.formats.coco import CocoReader
from ocr.data.formats.filename import FilenameReader
from ocr.data.formats.gt import GtReader
from ocr.data.formats.labelme import LabelmeReader
from ocr.data.formats.labels import LabelsReader
from ocr.data.formats.lmdb_reader import LmdbReader
from ocr.storage import S3Settings

READERS: dict[str, type[Reader]] = {
    r.layout: r for r in (GtReader, LabelsReader, AihubReader, FilenameReader, LmdbReader,
                          LabelmeReader, CocoReader)
}

__all__ = ["READERS", "AihubReader", "Box", "CocoReader", "Entry", "FilenameReader", "GtReader",
           "LabelmeReader", "LabelsReader", "LmdbReader", "Reader", "ReaderOptions",
           "detect_layout", "get_reader"]


def get_reader(layout: str) -> type[Reader]:
    """The reader class of ``layout``; ValueError naming the accepted layouts otherwise."""
    try:
        return READERS[layout]
    except KeyError:
        raise ValueError(f"unknown layout {layout!r}; expected one of: "
                         f"{', '.join(READERS)}") from None


def _json_layout(uri: str, s3: S3Settings | None) -> str:
    try:
        data = json.loads(storage.read_text(uri, s3))
    except ValueError as e:
        raise ValueError(f"{uri}: cannot detect the layout, not valid JSON: {e}") from e
    keys = set(data) if isinstance(data, dict) else set()
    if {"annotations", "categories"} <= keys:
        return "coco"
    if "images" in keys and keys & {"annotations", "annoations"}:
        return "aihub"
    if "shapes" in keys:
        raise ValueError(f"{uri}: a LabelMe sidecar; pass the folder holding the images "
                         "and their JSON files (layout 'labelme')")
    raise ValueError(f"{uri}: cannot detect the layout: expected COCO (images, annotations, "
                     f"categories) or AI Hub (images, annotations) keys, found {sorted(keys)}")


def detect_layout(uri: str, s3: S3Settings | None = None) -> str:
    """A best guess at the layout of ``uri``; pass the layout explicitly when it guesses wrong.

    folder with data.mdb -> lmdb; folder with .json files -> labelme; other folder ->
    filename; .json with annotations + categories -> coco; .json with images + annotations
    (or "annoations") -> aihub; labels.txt -> labels; other .txt/.tsv -> gt.
    """
    if storage.is_dir(uri, s3):
        if storage.exists(storage.join(uri, "data.mdb"), s3):
            return "lmdb"
        files = storage.list_files(uri, s3)
        return "labelme" if any(f.lower().endswith(".json") for f in files) else "filename"
    if not storage.exists(uri, s3):
        raise FileNotFoundError(f"{uri}: no such file or folder")
    name = storage.basename(uri).lower()
    if name == "data.mdb":
        return "lmdb"
    if name.endswith(".json"):
        return _json_layout(uri, s3)
    if name == "labels.txt":
        return "labels"
    if name.endswith((".txt", ".tsv")):
        return "gt"
    raise ValueError(f"{uri}: cannot detect the layout from the name; expected a folder, "
                     f"a .json, labels.txt or a gt .txt file; pass one of: {', '.join(READERS)}")
