"""Per-sample validation shared by every layout: ids, splits, decode checks, label checks.

A sample either becomes a shard row or a reject with a short ``reason`` code and a
``detail`` sentence that says what was expected and what was found.

Every label and box text of every layout (and of synth) passes through
:meth:`Validator.clean`, the one place labels are cleaned (:func:`ocr.charset.clean_label`:
NFC, whitespace and invisible format characters stripped at both ends, inner space
separators made U+0020); a control or format character left inside is a ``bad_character``
reject naming it (``U+0007 BELL``) and its index. Detection boxes are checked one by one
(:meth:`Validator.boxes`): a bad box is a reject of its own, the page keeps its good boxes.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

from ocr.charset import BadCharacter, Charset, clean_label, ctc_min_steps
from ocr.data.formats.base import Box, Entry
from ocr.data.formats.capped import FileTooLarge
from ocr.data.images import ImageError, validate

REASONS = (
    "bad_index", "path_escapes_root", "duplicate_id", "missing_file", "unreadable_file",
    "file_too_large", "zero_byte", "not_an_image", "too_many_pixels", "corrupt_image", "empty_label",
    "out_of_charset", "label_too_long", "ctc_infeasible", "bad_box", "bad_character",
)

# Box labels whose text is their point: a ``char`` box's text is its class (the ``char``
# detection target). A reader marks other boxes that must have a text (``Box.needs_text``).
TEXT_LABELS = frozenset({"char"})


COORDINATES = ("x0", "y0", "x1", "y1")


def finite_or_none(value: float) -> float | None:
    """A coordinate as a reject line stores it: None (JSON null) for NaN or an infinity, which
    JSON cannot hold (the detail sentence still names them)."""
    return float(value) if math.isfinite(value) else None


class Reject(Exception):
    def __init__(self, reason: str, detail: str):
        assert reason in REASONS, reason
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def sample_id(source: str, key: str) -> str:
    """Stable id: the same source and key give the same id on every run and machine."""
    return hashlib.sha1(f"{source}\x00{key}".encode("utf-8")).hexdigest()[:16]


def split_of(sample: str, ratios: dict[str, float]) -> str:
    """Deterministic split from the id's hash, following the ratios' order."""
    u = int(sample[:8], 16) / 0x1_0000_0000
    acc = 0.0
    for name, ratio in ratios.items():
        acc += ratio
        if u < acc:
            return name
    return next(reversed(ratios))


def index_reason(message: str) -> str:
    """A reader's index error message to its reason code."""
    return "path_escapes_root" if "escapes" in message else "bad_index"


def load_reject(error: OSError) -> Reject:
    """The reject of an image its reader could not load: over the byte cap, missing, unreadable."""
    if isinstance(error, FileTooLarge):
        return Reject("file_too_large", str(error))
    if isinstance(error, FileNotFoundError):
        return Reject("missing_file", f"missing file: {error}")
    return Reject("unreadable_file", f"unreadable file: {error}")


@dataclass(frozen=True)
class Validator:
    task: str
    charset: Charset | None
    out_of_charset: str = "reject"
    max_label_length: int = 0
    height: int = 32
    ctc_width: int = 100
    ctc_stride: int = 4
    max_pixels: int = 50_000_000

    def image(self, data: bytes) -> tuple[int, int]:
        try:
            return validate(data, self.max_pixels)
        except ImageError as e:
            raise Reject(e.reason, str(e)) from None

    @staticmethod
    def clean(raw: str | None) -> str:
        """The clean label (:func:`~ocr.charset.clean_label`); ``bad_character`` when it
        holds a control or format character."""
        try:
            return clean_label(raw or "")
        except BadCharacter as e:
            raise Reject("bad_character", str(e)) from None

    def in_charset(self, text: str, dropped: list[str]) -> str:
        """The charset policy on a clean text; returns the text to store. Appends dropped
        symbols (the text is stripped again of the spaces a drop may leave at its ends)."""
        if self.charset is None:
            return text
        missing = self.charset.missing(text)
        if not missing:
            return text
        if self.out_of_charset == "reject":
            raise Reject("out_of_charset",
                         f"symbols outside the charset {self.charset.spec or self.charset.hash}: "
                         f"{missing} in {text!r}")
        dropped.extend(c for c in text if c in set(missing))
        return self.charset.filter(text).strip(" ")

    def text(self, raw: str | None, dropped: list[str]) -> str:
        """Clean, then the charset policy: the text to store (possibly empty)."""
        return self.in_charset(self.clean(raw), dropped)

    def label(self, raw: str | None, size: tuple[int, int], dropped: list[str]) -> tuple[str, int]:
        """(the label to store, the CTC frames it needs: :func:`ctc_min_steps`)."""
        clean = self.clean(raw)
        if not clean:
            found = f", found only {raw!r}" if raw else ""
            raise Reject("empty_label", f"empty label: expected at least one symbol{found}")
        text = self.in_charset(clean, dropped)
        if not text:
            raise Reject("empty_label", f"label {raw!r} is empty once out-of-charset symbols are dropped")
        if self.max_label_length and len(text) > self.max_label_length:
            raise Reject("label_too_long",
                         f"label has {len(text)} symbols, over the maximum of {self.max_label_length}")
        need = ctc_min_steps(text)
        if self.ctc_width:
            w, h = size
            resized = max(1, min(self.ctc_width, round(w * self.height / max(1, h))))
            steps = resized // self.ctc_stride
            if need > steps:
                raise Reject("ctc_infeasible",
                             f"label needs {need} CTC steps ({len(text)} symbols + "
                             f"{need - len(text)} adjacent repeats) but a {w}x{h} image at height "
                             f"{self.height} (width cap {self.ctc_width}, stride {self.ctc_stride}) "
                             f"gives {steps}")
        return text, need

    @staticmethod
    def box_geometry(b: Box, size: tuple[int, int]) -> tuple[tuple[float, float, float, float], bool]:
        """The box clipped to the image, and whether clipping changed it; ``bad_box`` when it
        is empty (zero or negative width or height, or not finite) or has less than a pixel
        inside the image (wholly outside)."""
        w, h = size
        bad = [f"{name} = {getattr(b, name)}" for name in COORDINATES if not math.isfinite(getattr(b, name))]
        if bad:
            raise Reject("bad_box", f"expected finite coordinates, found {', '.join(bad)}")
        if b.x1 - b.x0 <= 0 or b.y1 - b.y0 <= 0:
            raise Reject("bad_box", f"empty box: width {b.x1 - b.x0:g} and height "
                                    f"{b.y1 - b.y0:g}, expected both > 0")
        x0, y0 = max(0.0, float(b.x0)), max(0.0, float(b.y0))
        x1, y1 = min(float(w), float(b.x1)), min(float(h), float(b.y1))
        if x1 <= 0 or y1 <= 0 or x0 >= w or y0 >= h:
            raise Reject("bad_box", f"box lies wholly outside the {w}x{h} image")
        if x1 - x0 < 1 or y1 - y0 < 1:
            raise Reject("bad_box", f"box has less than a pixel inside the {w}x{h} image "
                                    f"({max(0.0, x1 - x0):g} x {max(0.0, y1 - y0):g})")
        return (x0, y0, x1, y1), (x0, y0, x1, y1) != (b.x0, b.y0, b.x1, b.y1)

    def boxes(self, boxes: tuple[Box, ...] | None, size: tuple[int, int],
              dropped: list[str]) -> tuple[list[dict], list[dict], int]:
        """(the good boxes, clipped to the image, as shard dicts; a reject for each bad box:
        ``{index, reason, detail, x0, y0, x1, y1}``; how many good boxes were clipped).

        A box is ``bad_box`` (see :meth:`box_geometry`), ``bad_character``, ``out_of_charset``,
        or ``empty_label`` when its text is empty but needed: a ``char`` box (its text is its
        class) or one its reader marked ``needs_text`` (LabelMe: the shape's transcription).
        """
        out, rejects, clipped = [], [], 0
        for i, b in enumerate(boxes or ()):
            box_dropped: list[str] = []
            try:
                (x0, y0, x1, y1), was_clipped = self.box_geometry(b, size)
                text = self.text(b.text, box_dropped)
                if not text and (b.needs_text or b.label in TEXT_LABELS):
                    raise Reject("empty_label", f"empty text of a {b.label!r} box "
                                 f"(found {b.text!r}): expected at least one symbol")
            except Reject as r:
                rejects.append({"index": i, "reason": r.reason,
                                "detail": f"box {i} ({b.x0:g}, {b.y0:g}, {b.x1:g}, {b.y1:g}): {r.detail}",
                                **{name: finite_or_none(getattr(b, name)) for name in COORDINATES}})
                continue
            clipped += was_clipped
            dropped.extend(box_dropped)
            out.append({"x0": x0, "y0": y0, "x1": x1, "y1": y1, "label": b.label, "text": text})
        return out, rejects, clipped

    def row(self, entry: Entry, data: bytes) -> tuple[dict, list[str]]:
        """The task-specific columns of a valid sample (recognition adds ``ctc_steps``, for the
        statistics; detection ``box_read``, ``box_clipped`` and ``box_rejects``), and the
        symbols dropped from it."""
        size = self.image(data)
        dropped: list[str] = []
        cols: dict = {"width": size[0], "height": size[1]}
        if self.task == "recognition":
            cols["label"], cols["ctc_steps"] = self.label(entry.label, size, dropped)
        elif self.task == "detection":
            cols["boxes"], cols["box_rejects"], cols["box_clipped"] = \
                self.boxes(entry.boxes, size, dropped)
            if entry.boxes and not cols["boxes"]:   # written, it would say "no text here"
                first = cols["box_rejects"][0]
                raise Reject(first["reason"], f"none of the page's {len(entry.boxes)} boxes is usable: "
                             + "; ".join(r["detail"] for r in cols["box_rejects"][:3]))
            cols["box_read"] = len(entry.boxes or ())
            cols["angle"] = entry.angle
        else:
            cols["angle"] = entry.angle
        return cols, dropped
