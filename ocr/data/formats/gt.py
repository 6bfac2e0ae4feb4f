"""Layout "gt": a deep-text-recognition-benchmark ground-truth file.

One sample per line, ``relative/image/path<SEP>label``, SEP a tab unless
``ReaderOptions.separator`` says otherwise::

    test/00000021.png\t있는
    test/00000039.png\t라벨은 탭으로

Images are relative to ``options.image_root``, else to the gt file's folder. A line is split
at its first separator only; the label is kept as found (later separators included), and
validation cleans it (strips it, refuses a TAB or other control character inside). The line
ending (LF or CRLF) is removed, and a UTF-8 BOM at the start of the file (or of a line, as
concatenated exports have) is no part of the first key. Blank lines are skipped; a line
without a separator is an error entry keyed ``line-N``.

The helpers :func:`parent` and :func:`images_root` are shared with the other index-file
readers (labels, aihub, coco).
"""

from __future__ import annotations

import os
import posixpath
from dataclasses import dataclass, field
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


def image_entry(join: storage.SafeJoin, rel: str, key: str, **fields) -> Entry:
    """An entry for image ``rel`` under ``join``'s root (one :class:`~ocr.storage.SafeJoin` per
    indexing pass); an error entry when ``rel`` leaves the root."""
    if not rel:
        return Entry(key=key, error="empty image path")
    path = join(rel)
    if path is None:
        return Entry(key=key, error=f"path escapes the dataset root: {rel}")
    return Entry(key=key, path=path, **fields)


def parse_lines(text: str, separator: str) -> list[tuple[str, str | None, str | None]]:
    """``(key, relative path, label)`` of each line of a ``path<SEP>label`` file, in file
    order; a bad line gives ``("line-N", None, why)``."""
    if not separator:
        raise ValueError("separator must be a non-empty string, got ''")
    items = []
    for n, line in enumerate(text.split("\n"), start=1):
        line = line.removesuffix("\r").removeprefix("\ufeff")
        if not line.strip():
            continue
        rel, found, label = line.partition(separator)
        if not found:
            items.append((f"line-{n}", None, f"line {n}: no separator {separator!r} found"))
        elif not rel:
            items.append((f"line-{n}", None, f"line {n}: empty image path"))
        else:
            items.append((rel, rel, label))
    return items


@dataclass
class GtReader(Reader):
    """``GtReader(uri_of_gt_file, options, s3).entries()``: one entry per non-blank line."""

    layout: ClassVar[str] = "gt"
    default_separator: ClassVar[str] = "\t"
    join: storage.SafeJoin | None = field(default=None, init=False, repr=False, compare=False)

    def image_root(self) -> str:
        return self.options.image_root or parent(self.uri)

    def entries(self) -> list[Entry]:
        return self.entries_of(self.index())

    def index(self) -> list[tuple[str, str | None, str | None]]:
        """The lines as :func:`parse_lines` items, with their folders looked up (cheap: one
        directory scan per folder); :meth:`entries_of` joins the paths, in ingest's tasks."""
        sep = self.options.separator if self.options.separator is not None else self.default_separator
        items = parse_lines(storage.read_text(self.uri, self.s3), sep)
        self.joiner().scan(rel for _, rel, _ in items if rel)
        return items

    def entries_of(self, items: list[tuple[str, str | None, str | None]]) -> list[Entry]:
        join = self.joiner()
        return [Entry(key=key, error=label) if rel is None else
                image_entry(join, rel, key=key, label=label) for key, rel, label in items]

    def key(self, item: tuple[str, str | None, str | None]) -> str:
        return item[0]

    def joiner(self) -> storage.SafeJoin:
        """The one :class:`~ocr.storage.SafeJoin` of this reader (it travels with it)."""
        if self.join is None:
            self.join = storage.SafeJoin(self.image_root())
        return self.join
