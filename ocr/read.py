"""``ocr read``: pages (or ``--lines``) to text in-process, the way ``tesseract PAGE stdout``
does: no Ray, no Serve (:class:`ocr.infer.PageReader` does the work)."""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from ocr.config import opt


@dataclass
class ReadConfig:
    images: list[str] = opt(factory=list, path="input", metavar="IMAGE",
                            help="page images to read (with --lines: one text line each)")
    lang: str = opt("korean", "which built-in recogniser reads the text (builtin:LANG): korean "
                    "(Hangul, Latin, digits), latin or digits", choices=("korean", "latin", "digits"))
    recognizer: str = opt("", "recognition checkpoint or run folder instead of builtin:LANG",
                          path="checkpoint")
    detector: str = opt("", "ROI detector checkpoint or run folder for the lines (default: the "
                        "classical line finder, for print on a plain ground)", path="checkpoint")
    deskewer: str = opt("", "orientation checkpoint or run folder (default: the classical skew "
                        "estimate, pages taken as upright)", path="checkpoint")
    lines: bool = opt(False, "each image is one text line: no deskew, no line finding")
    json: bool = opt(False, "print one JSON object per image: lines with boxes and confidences, "
                     "the angle, per-stage timings")


def read_files(cfg: ReadConfig) -> int:
    """Print what each image reads (JSON lines with ``json``); 1 when an image could not be
    read (named on stderr, the others still read), else 0."""
    from ocr.data.images import ImageError, as_displayed, decode
    from ocr.infer import PageReader

    reader = PageReader.load(cfg.recognizer or f"builtin:{cfg.lang}", cfg.detector, cfg.deskewer)
    failed = 0
    for i, path in enumerate(cfg.images):
        try:
            image = as_displayed(decode(Path(path).read_bytes()))
        except (OSError, ImageError) as e:
            failed += 1
            print(f"ocr read: {path}: {e}", file=sys.stderr)
            continue
        started = time.perf_counter()
        result = reader.read_lines([image])[0] if cfg.lines else reader.read_page(image)
        if cfg.json:
            seconds = round(time.perf_counter() - started, 4)
            print(json.dumps({"image": path, **result, "seconds": seconds}, ensure_ascii=False))
            continue
        if len(cfg.images) > 1 and not cfg.lines:
            print(f"{'' if i == 0 else chr(10)}==> {path} <==")
        text = result["text"]
        print(f"{path}\t{text}" if cfg.lines else (text if text else "(no text)"))
    return 1 if failed else 0
