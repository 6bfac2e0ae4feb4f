"""``ocr deskew``: upright copies of page images, and the angle found for each
(:class:`~ocr.infer.PageDeskewer` does the work)."""

from __future__ import annotations

import os
from dataclasses import dataclass

from PIL import Image

from ocr.config import ConfigError, absolute_paths, opt
from ocr.data.images import ImageError, decode, list_images
from ocr.infer import PageDeskewer


@dataclass
class DeskewConfig:
    """``ocr deskew``: upright copies of page images, and the angle found for each."""

    inputs: list[str] = opt(factory=list, path="input", metavar="PATH",
                            help="page images, or folders of them (searched recursively)")
    output: str = opt("", "folder for the upright copies (same names and formats)", path="output")
    checkpoint: str = opt("", "orientation checkpoint or run folder; empty: the classical method "
                          "(skew only)", path="checkpoint")
    device: str = opt("cpu", "torch device: cpu or cuda")
    json: bool = opt(False, "print one JSON object per image instead of a table row")

    def __post_init__(self):
        absolute_paths(self)
        if not self.inputs:
            raise ConfigError("inputs: expected image files or folders, found none")
        if not self.output:
            raise ConfigError("output: expected a folder for the corrected images")


def _save(image: Image.Image, path: str) -> None:
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    if path.lower().endswith((".jpg", ".jpeg")):
        image.save(path, "JPEG", quality=95)
    else:
        image.save(path)


def deskew_files(cfg: DeskewConfig):
    """Yield (input path, output path or None, estimate or the error) per image, writing the
    upright images under ``cfg.output``."""
    images = list_images(cfg.inputs)
    out_root = os.path.abspath(cfg.output)
    if any(os.path.abspath(p) == os.path.join(out_root, n) for p, n in images):
        raise ConfigError(f"output {cfg.output}: would overwrite the input images; choose another folder")
    deskewer = PageDeskewer.load(cfg.checkpoint or None, cfg.device)
    for path, name in images:
        try:
            with open(path, "rb") as f:
                page = decode(f.read())
        except (ImageError, OSError) as e:
            yield path, None, str(e)
            continue
        fixed, info = deskewer.correct(page)
        target = os.path.join(out_root, name)
        _save(fixed, target)
        yield path, target, info
