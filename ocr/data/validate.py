"""Per-sample validation shared by every layout: ids, splits, decode checks, label checks.

A sample either becomes a shard row or a reject with a short ``reason`` code and a
``detail`` sentence that says what was expected and what was found.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from ocr.charset import Charset, ctc_min_steps, nfc
from ocr.data.formats.base import Box, Entry
from ocr.data.images import ImageError, validate

REASONS = (
    "bad_index", "path_escapes_root", "duplicate_id", "missing_file", "unreadable_file",
    "zero_byte", "not_an_image", "too_many_pixels", "corrupt_image", "empty_label",
    "out_of_charset", "label_too_long", "ctc_infeasible", "bad_box",
)


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

    def text(self, raw: str, dropped: list[str]) -> str:
        """NFC, charset policy; returns the text to store. Appends dropped symbols."""
        text = nfc(raw)
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
        return self.charset.filter(text)

    def label(self, raw: str | None, size: tuple[int, int], dropped: list[str]) -> tuple[str, int]:
        """(the label to store, the CTC frames it needs: :func:`ctc_min_steps`)."""
        if raw is None or not nfc(raw).strip():
            raise Reject("empty_label", "empty label: expected at least one symbol")
        text = self.text(raw, dropped)
        if not text.strip():
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

    def boxes(self, boxes: tuple[Box, ...] | None, size: tuple[int, int],
              dropped: list[str]) -> list[dict]:
        w, h = size
        out = []
        for i, b in enumerate(boxes or ()):
            x0, y0 = max(0.0, min(b.x0, b.x1)), max(0.0, min(b.y0, b.y1))
            x1, y1 = min(float(w), max(b.x0, b.x1)), min(float(h), max(b.y0, b.y1))
            if x1 - x0 < 1 or y1 - y0 < 1:
                raise Reject("bad_box", f"box {i} ({b.x0}, {b.y0}, {b.x1}, {b.y1}) is empty or "
                                        f"outside the {w}x{h} image")
            text = self.text(b.text, dropped) if b.text else ""
            out.append({"x0": x0, "y0": y0, "x1": x1, "y1": y1, "label": b.label, "text": text})
        return out

    def row(self, entry: Entry, data: bytes) -> tuple[dict, list[str]]:
        """The task-specific columns of a valid sample (recognition adds ``ctc_steps``, for the
        statistics), and the symbols dropped from it."""
        size = self.image(data)
        dropped: list[str] = []
        cols: dict = {"width": size[0], "height": size[1]}
        if self.task == "recognition":
            cols["label"], cols["ctc_steps"] = self.label(entry.label, size, dropped)
        elif self.task == "detection":
            cols["boxes"] = self.boxes(entry.boxes, size, dropped)
            cols["angle"] = entry.angle
        else:
            cols["angle"] = entry.angle
        return cols, dropped
