"""Layout "filename": a folder of images whose names carry their label.

``options.filename_style``:

- ``"prefix"`` (TextRecognitionDataGenerator): ``LABEL_INDEX.ext``, e.g. ``0000_1234.png`` ->
  ``"0000"``. The label is the text before the LAST underscore, since TRDG appends
  ``_INDEX`` to the text and the text itself may contain underscores
  (``a_b_7.jpg`` -> ``"a_b"``). A name without an underscore is an error entry.
- ``"stem"``: ``LABEL.ext``, e.g. ``hello.jpg`` -> ``"hello"``, ``3.14.png`` -> ``"3.14"``.

Subfolders are searched too; key = relative POSIX path, entries in sorted key order. Only
files ending in one of ``options.extensions`` (case-insensitive) are read; others are ignored.
"""

from __future__ import annotations

import posixpath
from typing import ClassVar

from ocr import storage
from ocr.data.formats.base import Entry, Reader
from ocr.data.formats.gt import image_entry

STYLES = ("prefix", "stem")


def matching_extension(name: str, extensions) -> str | None:
    """The extension of ``name`` among ``extensions`` (case-insensitive), as found, or None."""
    lower = name.lower()
    for ext in extensions:
        ext = ext.lower() if ext.startswith(".") else "." + ext.lower()
        if lower.endswith(ext) and len(name) > len(ext):
            return name[-len(ext):]
    return None


class FilenameReader(Reader):
    """``FilenameReader(folder_uri, options, s3).entries()``: one entry per image file."""

    layout: ClassVar[str] = "filename"

    def entries(self) -> list[Entry]:
        style = self.options.filename_style
        if style not in STYLES:
            raise ValueError(f"filename_style must be one of {STYLES}, got {style!r}")
        if not storage.is_dir(self.uri, self.s3):
            raise FileNotFoundError(f"{self.uri}: expected a folder of images, found none")
        entries, join = [], storage.SafeJoin(self.uri)
        for rel in storage.list_files(self.uri, self.s3):
            name = posixpath.basename(rel)
            ext = matching_extension(name, self.options.extensions)
            if ext is None:
                continue
            stem = name[: -len(ext)]
            if style == "stem":
                label = stem
            elif "_" in stem:
                label = stem.rsplit("_", 1)[0]
            else:
                entries.append(Entry(key=rel, error=f"file name {name!r} has no '_': "
                                     "expected LABEL_INDEX.ext (filename_style 'prefix')"))
                continue
            entries.append(image_entry(join, rel, key=rel, label=label))
        return entries
