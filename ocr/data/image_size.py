"""An encoded image's width and height, read from its header bytes alone (no pixel decoded,
no decoder created), so that the pixel cap refuses a decompression bomb before PIL sees it.

:func:`header_size` knows PNG, JPEG, GIF, WebP, TIFF and BMP; it returns None for a header
it cannot read (PIL then reports the file as corrupt). PIL's WebP plugin, for one, allocates
the whole canvas when it opens a file, which is why the cap must come first.
"""

from __future__ import annotations

import struct

# JPEG start-of-frame markers (baseline, progressive, lossless, ...): they carry the size.
_JPEG_SOF = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD,
                       0xCE, 0xCF})
_JPEG_NO_LENGTH = frozenset({0x01, *range(0xD0, 0xD9)})  # TEM, RSTn, SOI: no length field
_TIFF_WIDTH, _TIFF_HEIGHT = 256, 257                     # ImageWidth, ImageLength tags


def _png(data: bytes) -> tuple[int, int] | None:
    if len(data) < 24 or data[12:16] != b"IHDR":
        return None
    return struct.unpack(">II", data[16:24])


def _jpeg(data: bytes) -> tuple[int, int] | None:
    """The size in the first start-of-frame segment (markers walked, entropy data never)."""
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker == 0xFF:               # fill byte
            pos += 1
            continue
        if marker in _JPEG_NO_LENGTH:
            pos += 2
            continue
        if marker in _JPEG_SOF:
            if pos + 9 > len(data):
                return None
            height, width = struct.unpack(">HH", data[pos + 5:pos + 9])
            return width, height
        if marker in (0xD9, 0xDA):       # end of image, start of scan: no frame header before
            return None
        pos += 2 + struct.unpack(">H", data[pos + 2:pos + 4])[0]
    return None


def _gif_first_frame(data: bytes) -> tuple[int, int] | None:
    """The far corner (x + w, y + h) of the first frame: PIL grows the canvas to hold it."""
    pos = 13 + (3 << ((data[10] & 7) + 1) if data[10] & 0x80 else 0)
    while pos < len(data):
        kind = data[pos]
        if kind == 0x2C and pos + 9 <= len(data):                   # image descriptor
            x, y, w, h = struct.unpack("<HHHH", data[pos + 1:pos + 9])
            return x + w, y + h
        if kind != 0x21 or pos + 2 > len(data):                     # extension, else give up
            return None
        pos += 2
        while pos < len(data) and data[pos]:                        # its data sub-blocks
            pos += 1 + data[pos]
        pos += 1
    return None


def _gif(data: bytes) -> tuple[int, int] | None:
    if len(data) < 13:
        return None
    width, height = struct.unpack("<HH", data[6:10])
    frame = _gif_first_frame(data)
    return (max(width, frame[0]), max(height, frame[1])) if frame else (width, height)


def _webp(data: bytes) -> tuple[int, int] | None:
    """From the first chunk: VP8X (extended: the canvas), VP8L (lossless) or VP8 (lossy)."""
    kind, body = data[12:16], data[20:30]
    if kind == b"VP8X" and len(body) >= 10:
        return (int.from_bytes(body[4:7], "little") + 1, int.from_bytes(body[7:10], "little") + 1)
    if kind == b"VP8L" and len(body) >= 5 and body[0] == 0x2F:
        bits = int.from_bytes(body[1:5], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if kind == b"VP8 " and len(body) >= 10 and body[3:6] == b"\x9d\x01\x2a":
        width, height = struct.unpack("<HH", body[6:10])
        return width & 0x3FFF, height & 0x3FFF
    return None


def _tiff(data: bytes) -> tuple[int, int] | None:
    """ImageWidth and ImageLength of the first image file directory."""
    order = "<" if data[:2] == b"II" else ">"
    if len(data) < 8:
        return None
    ifd = struct.unpack(order + "I", data[4:8])[0]
    if ifd + 2 > len(data):
        return None
    size = {}
    for n in range(struct.unpack(order + "H", data[ifd:ifd + 2])[0]):
        entry = data[ifd + 2 + 12 * n:ifd + 14 + 12 * n]
        if len(entry) < 12:
            return None
        tag, kind = struct.unpack(order + "HH", entry[:4])
        if tag in (_TIFF_WIDTH, _TIFF_HEIGHT) and kind in (3, 4):  # SHORT or LONG
            size[tag] = struct.unpack_from(order + ("H" if kind == 3 else "I"), entry, 8)[0]
    if len(size) < 2:
        return None
    return size[_TIFF_WIDTH], size[_TIFF_HEIGHT]


def _bmp(data: bytes) -> tuple[int, int] | None:
    if len(data) < 26:
        return None
    if struct.unpack("<I", data[14:18])[0] == 12:                   # OS/2 core header
        return struct.unpack("<HH", data[18:22])
    width, height = struct.unpack("<ii", data[18:26])
    return abs(width), abs(height)                                  # negative: top-down rows


_READERS = {"PNG": _png, "JPEG": _jpeg, "GIF": _gif, "WEBP": _webp, "TIFF": _tiff, "BMP": _bmp}


def header_size(data: bytes, fmt: str) -> tuple[int, int] | None:
    """(width, height) that the header of ``data``, a ``fmt`` image (PNG, JPEG, GIF, WEBP,
    TIFF or BMP, as :func:`~ocr.data.images.sniff_format` names it), declares; None when the
    header cannot be read."""
    reader = _READERS.get(fmt)
    try:
        return reader(data) if reader else None
    except (struct.error, IndexError):
        return None
