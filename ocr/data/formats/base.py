"""The record every input layout is read into, and the reader interface.

A reader indexes a data set on the driver (:meth:`Reader.entries`, or the lighter
:meth:`Reader.index` that ingest uses: cheap, no image decoding) and loads one entry's
encoded image bytes inside a Ray task (:meth:`Reader.load`). Everything after that
(decode, validation, ids, splits, shards) is shared by all layouts in :mod:`ocr.data.ingest`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import ClassVar

from ocr import storage
from ocr.data.formats.capped import read_capped
from ocr.storage import S3Settings

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")


def describe_json(value) -> str:
    """A JSON value as an error message names it: ``null``, ``the number 5``, ``the string
    'x'``, ``a list [...]``, ``an object {...}`` (long values cut short)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    kind = {int: "the number", float: "the number", str: "the string", list: "a list",
            dict: "an object"}.get(type(value), type(value).__name__)
    text = repr(value)
    return f"{kind} {text if len(text) <= 60 else text[:57] + '...'}"


def is_number(value) -> bool:
    """A JSON number (int or float; not a boolean, which Python counts as an int)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


@dataclass(frozen=True)
class Box:
    """An axis-aligned box in pixels of the original image (x0 <= x1, y0 <= y1), with its
    class and text as found (cleaned by validation). ``needs_text``: the reader knows the box
    is a transcription, so an empty text is an ``empty_label`` reject (LabelMe shapes)."""

    x0: float
    y0: float
    x1: float
    y1: float
    label: str = "text"
    text: str = ""
    needs_text: bool = False

    def to_dict(self) -> dict:
        return {"x0": float(self.x0), "y0": float(self.y0), "x1": float(self.x1),
                "y1": float(self.y1), "label": self.label, "text": self.text}


@dataclass(frozen=True)
class Entry:
    """One sample as indexed by a reader.

    key:   unique within its source (relative path, LMDB index, image id): the id derives from it.
    path:  the image's location for :meth:`Reader.load` (absolute path or URI), or None when
           the reader finds the bytes itself (LMDB).
    label: recognition text as found (validation cleans it: NFC, stripped, controls refused).
    boxes: detection boxes.
    angle: orientation / skew angle in degrees.
    error: a problem found while indexing; the entry is rejected with this reason.
    """

    key: str
    path: str | None = None
    label: str | None = None
    boxes: tuple[Box, ...] | None = None
    angle: float | None = None
    error: str | None = None


@dataclass(frozen=True)
class ReaderOptions:
    separator: str | None = None      # gt / labels files: None means the layout's default
    filename_style: str = "prefix"    # filename layout: "prefix" (LABEL_x.ext) or "stem" (LABEL.ext)
    image_root: str | None = None     # where images live, when not the layout's default place
    labelme_text: str = "auto"        # labelme: the shape field holding the text (auto: text,
                                      # then description, then label)
    extensions: tuple[str, ...] = IMAGE_EXTENSIONS
    max_file_bytes: int = 0           # :meth:`Reader.load` refuses larger images (0: no cap)


@dataclass
class Reader(ABC):
    """Base of all layout readers. Subclasses set ``layout`` and ``task``."""

    uri: str
    options: ReaderOptions = field(default_factory=ReaderOptions)
    s3: S3Settings = field(default_factory=S3Settings)
    name: str | None = None  # the source name; default: the input's base name

    layout: ClassVar[str] = ""
    task: ClassVar[str] = "recognition"

    @abstractmethod
    def entries(self) -> list[Entry]:
        """Index the set (driver side). Bad index lines become entries with ``error`` set."""

    def index(self) -> list:
        """What ingest's driver keeps of each sample, in input order: by default the entries.
        Readers of large index files return lighter items (cheaper to make and to ship to the
        tasks), which :meth:`entries_of` turns into entries inside the tasks."""
        return self.entries()

    def entries_of(self, items: list) -> list[Entry]:
        """The entries of some :meth:`index` items."""
        return list(items)

    def key(self, item) -> str:
        """The key of an :meth:`index` item (what duplicate ids are found by)."""
        return item.key

    def load(self, entry: Entry) -> bytes:
        """The encoded image bytes of ``entry`` (task side). Raises OSError when missing or
        unreadable, :class:`~ocr.data.formats.capped.FileTooLarge` (an OSError) when over
        ``options.max_file_bytes``, found from its size before it is read."""
        return read_capped(entry.path, self.s3, self.options.max_file_bytes)

    def release(self) -> None:
        """Free what :meth:`load` keeps open in this process (the driver calls it after indexing)."""
        return None

    @property
    def source(self) -> str:
        """The name recorded in the ``source`` column and in rejects."""
        return self.name or storage.basename(self.uri)
