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
           "detect_layout", "get_reader", "locate"]

# annotation files a folder may hold at its top, read in place of the folder (deep-text-
# recognition-benchmark's and ICDAR's gt.txt, the Korean exports' labels.txt)
ANNOTATION_FILES = {"gt.txt": "gt", "gt.tsv": "gt", "labels.txt": "labels"}


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


def _annotation_file(uri: str, layout: str, s3: S3Settings | None) -> str | None:
    """The one annotation file of ``layout`` ("auto": any) at the top of folder ``uri``."""
    top = storage.list_files(uri, s3, recursive=False)
    named = [f for f in top if ANNOTATION_FILES.get(f.lower()) in ((layout,) if layout != "auto"
                                                                    else ("gt", "labels"))]
    if not named and layout == "gt":  # any one .txt/.tsv: the gt layout has no fixed name
        named = [f for f in top if f.lower().endswith((".txt", ".tsv"))]
    if len(named) > 1:
        raise ValueError(f"{uri}: a folder with {len(named)} annotation files ({', '.join(named)}): "
                         "pass the one to read instead of the folder")
    return storage.join(uri, named[0]) if named else None


def locate(uri: str, layout: str = "auto", s3: S3Settings | None = None) -> tuple[str, str]:
    """(what to read, its layout) for input ``uri`` and ``layout`` ("auto": detected).

    A folder holding an annotation file at its top (``gt.txt``, ``gt.tsv``, ``labels.txt``;
    with layout "gt", any one ``.txt``/``.tsv``) is read through that file, so passing the
    folder of an export works as passing its annotation file. Raises ValueError when a folder
    has no file of an explicit file layout, naming what it found.
    """
    if layout in ("auto", "gt", "labels") and storage.is_dir(uri, s3):
        found = _annotation_file(uri, layout, s3)
        if found:
            return found, ANNOTATION_FILES.get(storage.basename(found).lower(), "gt")
        if layout != "auto":
            top = storage.list_files(uri, s3, recursive=False)
            raise ValueError(f"{uri}: layout {layout!r} reads a file "
                             f"({'a .txt or .tsv' if layout == 'gt' else 'labels.txt'}), but this is "
                             f"a folder without one at its top (found {', '.join(top[:5]) or 'no file'}"
                             f"{' ...' if len(top) > 5 else ''}): pass the annotation file")
    return uri, detect_layout(uri, s3) if layout == "auto" else layout


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
