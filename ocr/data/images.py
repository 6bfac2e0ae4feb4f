"""Safe image decoding and the ONE preprocessing used by training and serving.

``decode`` checks magic bytes and the pixel count from the header before any pixel is
decoded or any decoder made (decompression bombs: PNG, JPEG, GIF, WebP, TIFF and BMP headers
are read by :mod:`ocr.data.image_size`), then decodes fully, which is what catches truncated files.
``Preprocess`` (stored in every checkpoint's ``model.json``) turns decoded images into the
float arrays a model sees.
"""

from __future__ import annotations

import io
import os
import struct
import warnings
import zlib
from dataclasses import asdict, dataclass

import numpy as np
from PIL import Image

from ocr.config import ConfigError
from ocr.data.image_size import header_size

DEFAULT_MAX_PIXELS = 50_000_000

# Magic bytes of the formats we accept, checked before PIL sees the data.
_MAGIC = (
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"\xff\xd8\xff", "JPEG"),
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"BM", "BMP"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
)
ALLOWED_FORMATS = ("PNG", "JPEG", "GIF", "BMP", "TIFF", "WEBP")


class ImageError(ValueError):
    """An image that cannot be used. ``reason`` is a short stable code, the message a sentence."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


def sniff_format(data: bytes) -> str | None:
    """The format named by the leading magic bytes, or None."""
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    for magic, fmt in _MAGIC:
        if data.startswith(magic):
            return fmt
    return None


def check_pixel_cap(fmt: str, size: tuple[int, int], max_pixels: int) -> None:
    """``too_many_pixels`` when ``size`` (width, height) is over ``max_pixels``."""
    w, h = size
    if w * h > max_pixels:
        raise ImageError("too_many_pixels", f"{fmt} image is {w}x{h} = {w * h:,} pixels, over the "
                         f"cap of {max_pixels:,}")


def open_checked(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Open ``data`` lazily after the magic-byte check and the pixel cap on the size its header
    declares (:func:`~ocr.data.image_size.header_size`): no pixel decoded, no decoder made."""
    if not data:
        raise ImageError("zero_byte", "zero-byte file: expected an encoded image")
    fmt = sniff_format(data)
    if fmt is None:
        raise ImageError("not_an_image", f"not an image: expected one of {', '.join(ALLOWED_FORMATS)} "
                         f"by magic bytes, found {data[:8]!r}")
    declared = header_size(data, fmt)
    if declared:
        check_pixel_cap(fmt, declared, max_pixels)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise ImageError("too_many_pixels", f"image over the pixel cap: {e}") from None
    except Exception as e:  # PIL raises many types for broken headers
        why = "cannot parse it" if "cannot identify" in str(e) else str(e)
        raise ImageError("corrupt_image", f"unreadable {fmt} header: {why}") from None
    w, h = img.size
    if w <= 0 or h <= 0:
        raise ImageError("corrupt_image", f"image has an empty size {w}x{h}")
    check_pixel_cap(fmt, (w, h), max_pixels)
    return img


def decode(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Fully decoded image; raises :class:`ImageError` for anything unusable."""
    img = open_checked(data, max_pixels)
    try:
        img.load()
    except Exception as e:
        raise ImageError("corrupt_image", f"truncated or corrupt {img.format}: {e}") from None
    return img


def as_displayed(img: Image.Image) -> Image.Image:
    """``img`` turned as its EXIF orientation says a viewer shows it (a phone photo taken
    sideways is stored sideways with orientation 6 or 8); unchanged without one. For reading
    uploads and files; training shards keep their stored pixels, which their boxes refer to."""
    from PIL import ImageOps

    try:
        if img.getexif().get(0x0112, 1) in range(2, 9):
            return ImageOps.exif_transpose(img)
    except Exception:  # noqa: BLE001 - unreadable EXIF: the pixels as stored
        pass
    return img


_PNG_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}
_ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2),
          (0, 1, 1, 2))


def _png_stream_size(w: int, h: int, bits: int, interlaced: bool) -> int:
    """Bytes of the inflated PNG stream: each row of each pass is a filter byte + packed pixels."""
    passes = _ADAM7 if interlaced else ((0, 0, 1, 1),)
    total = 0
    for x0, y0, dx, dy in passes:
        pw, ph = (w - x0 + dx - 1) // dx, (h - y0 + dy - 1) // dy
        if pw > 0 and ph > 0:
            total += ph * (1 + (pw * bits + 7) // 8)
    return total


def _check_png(data: bytes, max_pixels: int) -> tuple[int, int]:
    """Verify a PNG without unfiltering it: every chunk's CRC, IEND, and that the image
    stream inflates completely to exactly the size its header promises (which catches
    truncated and corrupt files as a full decode does, several times faster)."""

    def bad(why: str):
        return ImageError("corrupt_image", f"truncated or corrupt PNG: {why}")

    if len(data) < 33 or data[12:16] != b"IHDR":
        raise bad("no IHDR chunk")
    w, h, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", data[16:29])
    if w == 0 or h == 0 or colour not in _PNG_CHANNELS:
        raise bad(f"bad header (size {w}x{h}, colour type {colour})")
    check_pixel_cap("PNG", (w, h), max_pixels)
    inflater, produced, pos, end, view = zlib.decompressobj(), 0, 8, len(data), memoryview(data)
    expected = _png_stream_size(w, h, depth * _PNG_CHANNELS[colour], interlace == 1)
    while True:
        if pos + 12 > end:
            raise bad("ends before IEND")
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body_end = pos + 8 + length
        if body_end + 4 > end:
            raise bad(f"chunk {kind!r} runs past the end of the file")
        crc = struct.unpack(">I", data[body_end:body_end + 4])[0]
        if zlib.crc32(view[pos + 4:body_end]) != crc:
            raise bad(f"CRC mismatch in chunk {kind!r}")
        if kind == b"IDAT":
            try:
                produced += len(inflater.decompress(view[pos + 8:body_end], expected + 1 - produced))
            except zlib.error as e:
                raise bad(f"image stream does not inflate ({e})") from None
        elif kind == b"IEND":
            break
        pos = body_end + 4
    if not inflater.eof or produced != expected:
        raise bad(f"image stream holds {produced} bytes, header promises {expected}")
    return w, h


def validate(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[int, int]:
    """(width, height) of a usable image, with the checks of a full decode.

    PNG: :func:`_check_png`. JPEG: entropy-decoded at reduced DCT scale (every byte of
    the scan is read, so truncation is caught) instead of a full-size decode. Other
    formats: a full decode.
    """
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return _check_png(data, max_pixels)
    img = open_checked(data, max_pixels)
    size = img.size
    if img.format == "JPEG":
        img.draft(img.mode, (max(1, size[0] // 8), max(1, size[1] // 8)))
    try:
        img.load()
    except Exception as e:
        raise ImageError("corrupt_image", f"truncated or corrupt {img.format}: {e}") from None
    return size


MIN_INK_CONTRAST = 24     # grey levels between ink and background, below which nothing is ink


def ink_mask(grey: np.ndarray) -> np.ndarray | None:
    """Boolean ink of a uint8 (H, W) image: the side of an Otsu threshold away from the image's
    median (its background: dark on light and light on dark alike); None when nothing differs
    from the background by ``MIN_INK_CONTRAST`` grey levels on average (blank or too faint)."""
    hist = np.bincount(grey.ravel(), minlength=256).astype(np.float64)
    weight, mean = np.cumsum(hist), np.cumsum(hist * np.arange(256))
    with np.errstate(divide="ignore", invalid="ignore"):
        between = (mean[-1] * weight - mean * weight[-1]) ** 2 / (weight * (weight[-1] - weight))
    threshold = int(np.argmax(np.nan_to_num(between[:-1], nan=-1.0, posinf=-1.0)))
    background = int(np.searchsorted(weight, weight[-1] / 2))          # the median level
    dark = background > threshold
    count = weight[threshold] if dark else weight[-1] - weight[threshold]
    if count == 0:
        return None
    level = (mean[threshold] if dark else mean[-1] - mean[threshold]) / count
    if abs(level - background) < MIN_INK_CONTRAST:
        return None
    return grey <= threshold if dark else grey > threshold


def trim_to_ink(img: Image.Image, margin: float) -> Image.Image:
    """``img`` cut to its ink's bounding box grown by ``margin`` x the ink's height on every side,
    padded with the background's colour where that reaches past the image (ink touching the
    edge gets its margin too); unchanged when it has no ink (:func:`ink_mask`)."""
    grey = np.asarray(img if img.mode == "L" else img.convert("L"))
    ink = ink_mask(grey)
    if ink is None:
        return img
    rows, cols = np.flatnonzero(ink.any(1)), np.flatnonzero(ink.any(0))
    grow = int(round(margin * (rows[-1] + 1 - rows[0])))
    x0, y0, x1, y1 = cols[0] - grow, rows[0] - grow, cols[-1] + 1 + grow, rows[-1] + 1 + grow
    if (x0, y0, x1, y1) == (0, 0, img.width, img.height):
        return img
    inside = (max(0, x0), max(0, y0), min(img.width, x1), min(img.height, y1))
    if inside == (x0, y0, x1, y1):
        return img.crop(inside)
    pixels = np.asarray(img)[~ink][::7]                 # the ground's colour: a sample is plenty
    fill = np.median(pixels.reshape(len(pixels), -1), axis=0).round().astype(int) if len(pixels) else [0]
    canvas = Image.new(img.mode, (x1 - x0, y1 - y0), tuple(fill) if img.mode != "L" else int(fill[0]))
    canvas.paste(img.crop(inside), (inside[0] - x0, inside[1] - y0))
    return canvas


@dataclass(frozen=True)
class Preprocess:
    """How an image becomes a model input (C, H, W) float32. Saved in ``model.json``.

    height:      every input is resized to this height.
    width:       the padded width (and the maximum width when ``keep_ratio``).
    keep_ratio:  resize keeping the aspect ratio, then pad on the right to ``width``;
                 otherwise stretch to ``width``.
    pad:         "replicate" (the last column, as deep-text-recognition-benchmark) or "zero".
    channels:    1 (grayscale) or 3 (RGB).
    mean, std:   normalisation after scaling pixels to [0, 1].
    trim:        > 0: first cut the background around the ink (:func:`trim_to_ink`), leaving
                 this fraction of the ink's height as margin, so a loose crop (a hand-cut line,
                 a detector's box, an export's padding) shows its text at the size training
                 did. 0 (checkpoints from before it): off.
    """

    height: int = 32
    width: int = 100
    keep_ratio: bool = True
    pad: str = "replicate"
    channels: int = 1
    mean: float = 0.5
    std: float = 0.5
    trim: float = 0.0

    def __post_init__(self):
        if self.channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3, found {self.channels}")
        if self.pad not in ("replicate", "zero"):
            raise ValueError(f"pad must be 'replicate' or 'zero', found {self.pad!r}")
        if self.height < 1 or self.width < 1:
            raise ValueError(f"height and width must be positive, found {self.height}x{self.width}")
        if not 0 <= self.trim <= 1:
            raise ValueError(f"trim must be in [0, 1] (a fraction of the ink's height), found {self.trim}")

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> "Preprocess":
        return cls(**data)

    def resized_width(self, width: int, height: int) -> int:
        """Width of an image of ``width`` x ``height`` after resizing (before padding)."""
        if not self.keep_ratio:
            return self.width
        return max(1, min(self.width, round(width * self.height / max(1, height))))

    def prepare(self, img: Image.Image) -> Image.Image:
        """A decoded image in the model's colour mode, trimmed to its ink when ``trim``: what
        :meth:`resize` scales (idempotent, so sizes for bucketing can be taken from it)."""
        img = img.convert("L" if self.channels == 1 else "RGB")
        return trim_to_ink(img, self.trim) if self.trim else img

    def resize(self, img: Image.Image, prepared: bool = False) -> np.ndarray:
        """Decoded image to uint8 (H, w, C), with w = :meth:`resized_width` of the prepared image."""
        img = img if prepared else self.prepare(img)
        w = self.resized_width(*img.size)
        if img.size != (w, self.height):
            img = img.resize((w, self.height), Image.BICUBIC, reducing_gap=3.0)
        arr = np.asarray(img, dtype=np.uint8)
        return arr[:, :, None] if arr.ndim == 2 else arr

    def pad_to(self, arr: np.ndarray, width: int) -> np.ndarray:
        """uint8 (H, w, C) padded (or cut) on the right to ``width``."""
        w = arr.shape[1]
        if w >= width:
            return arr[:, :width]
        mode = "edge" if self.pad == "replicate" else "constant"
        return np.pad(arr, ((0, 0), (0, width - w), (0, 0)), mode=mode)

    def normalise(self, batch: np.ndarray) -> np.ndarray:
        """uint8 (B, H, W, C) to float32 (B, C, H, W)."""
        x = batch.astype(np.float32).transpose(0, 3, 1, 2)
        scale = 1.0 / (255.0 * self.std)
        return x * scale - (self.mean / self.std)

    def __call__(self, images: list[Image.Image], width: int | None = None,
                 prepared: bool = False) -> np.ndarray:
        """Decoded images to a float32 batch (B, C, H, W).

        ``width`` pads to another width than ``self.width`` (bucketing by width);
        ``None`` pads to ``self.width``.
        """
        resized = [self.resize(im, prepared) for im in images]
        target = width or self.width
        return self.normalise(np.stack([self.pad_to(a, target) for a in resized]))

    def bucket_width(self, widths: list[int], multiple: int = 16) -> int:
        """Smallest width that holds the widest resized image, rounded up to ``multiple``."""
        widest = max(widths) if widths else self.width
        return min(self.width, -(-widest // multiple) * multiple)


def preprocess_bytes(blobs: list[bytes], spec: Preprocess, bucket: bool = False,
                     max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Encoded images to a model batch: decode, resize, pad, normalise."""
    images = [spec.prepare(decode(b, max_pixels)) for b in blobs]
    width = None
    if bucket:
        width = spec.bucket_width([spec.resized_width(*im.size) for im in images])
    return spec(images, width, prepared=True)


IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".gif", ".webp")


def list_images(inputs: list[str]) -> list[tuple[str, str]]:
    """(path, name under the output folder) of every image: a file keeps its base name, a
    folder's images their path inside it. Missing inputs and name clashes are refused."""
    found: dict[str, str] = {}
    for item in inputs:
        if os.path.isdir(item):
            pairs = [(os.path.join(root, f), os.path.relpath(os.path.join(root, f), item))
                     for root, _, files in os.walk(item) for f in sorted(files)
                     if f.lower().endswith(IMAGE_EXTENSIONS)]
        elif os.path.isfile(item):
            pairs = [(item, os.path.basename(item))]
        else:
            raise FileNotFoundError(f"{item}: expected an image file or a folder, found nothing there")
        for path, name in sorted(pairs):
            if name in found and found[name] != path:
                raise ConfigError(f"{path} and {found[name]} would both be written as {name}: "
                                  "deskew them into separate output folders")
            found[name] = path
    return sorted(((p, n) for n, p in found.items()), key=lambda pn: pn[1])
