"""Layout "gt": a deep-text-recognition-benchmark ground-truth file.

One sample per line, ``relative/image/path<SEP>label``, SEP a tab unless
``ReaderOptions.separator`` says otherwise::

    test/00000021.png\t있는
    test/00000039.png\t라벨은 탭으로

Images are relative to ``options.image_root``, else to the gt file's folder. A line is split
at its first separator only, so the label keeps any later separators (spaces, tabs) exactly;
only the line ending is removed. Blank lines are skipped; a line without a separator is an
error entry keyed ``line-N``.

The helpers :func:`parent` and :func:`images_root` are shared with the other index-file
readers (labels, aihub, coco).
"""

from __future__ import annotations

import os
import posixpath
from typing import ClassVar

from ocr import storage
from ocr.data.formats.base import Entry, Reader, ReaderOptions
from ocr.storage import S3Settings


def parent(uri: str) -> str:
    """The folder holding ``uri`` (local path or ``s3://`` URI)."""
    if storage.is_s3(uri):
        return posixpath.dirname(str(uri).rstrip("/"))
    return os.path.dirname(os.path.abspath(os.path.expanduser(uri)))


def images_root(index_uri: str, options: ReaderOptions, s3: S3Settings) -> str:
    """``options.image_root``, else ``<index folder>/images`` if it exists, else the index folder."""
    if options.image_root:
        return options.image_root
    folder = parent(index_uri)
    images = storage.join(folder, "images")
    return images if storage.is_dir(images, s3) else folder


def image_entry(root: str, rel: str, key: str, links: dict | None = None, **fields) -> Entry:
    """An entry for image ``rel`` under ``root``; an error entry when ``rel`` leaves ``root``.
    ``links``: :func:`ocr.storage.safe_join`'s per-pass cache of symbolic links."""
    if not rel:
        return Entry(key=key, error="empty image path")
    path = storage.safe_join(root, rel, links)
    if path is None:
        return Entry(key=key, error=f"path escapes the dataset root: {rel}")
    return Entry(key=key, path=path, **fields)


def parse_lines(text: str, separator: str, root: str) -> list[Entry]:
    """Entries of a ``path<SEP>label`` file, in file order."""
    if not separator:
        raise ValueError("separator must be a non-empty string, got ''")
    entries, links = [], {}
    for n, line in enumerate(text.split("\n"), start=1):
        line = line.removesuffix("\r")
        if not line.strip():
            continue
        if separator not in line:
            entries.append(Entry(key=f"line-{n}", error=f"line {n}: no separator {separator!r} found"))
            continue
        rel, label = line.split(separator, 1)
        if not rel:
            entries.append(Entry(key=f"line-{n}", error=f"line {n}: empty image path"))
            continue
        entries.append(image_entry(root, rel, key=rel, links=links, label=label))
    return entries


class GtReader(Reader):
    """``GtReader(uri_of_gt_file, options, s3).entries()``: one entry per non-blank line."""

    layout: ClassVar[str] = "gt"
    default_separator: ClassVar[str] = "\t"

    def image_root(self) -> str:
        return self.options.image_root or parent(self.uri)

    def entries(self) -> list[Entry]:
        sep = self.options.separator if self.options.separator is not None else self.default_separator
        return parse_lines(storage.read_text(self.uri, self.s3), sep, self.image_root())
