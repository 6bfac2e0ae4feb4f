"""Reading one input file under a byte cap (``ocr ingest --max-file-bytes``).

The size is checked before the file is read: from ``fstat`` of the opened file (local), the
object's size (S3) or the value's length (LMDB, by its reader). The read itself stops one byte
past the cap, so a file that grows after the check is refused too, never read whole.
"""

from __future__ import annotations

import os
import stat

from ocr import storage
from ocr.storage import S3Settings

_BLOCK = 1 << 20


class FileTooLarge(OSError):
    """An input file over the byte cap; ``size`` and ``cap`` in bytes."""

    def __init__(self, what: str, size: int, cap: int):
        super().__init__(f"{what} is {size:,} bytes: expected at most {cap:,} (max_file_bytes)")
        self.size, self.cap = size, cap


def check_file_size(what: str, size: int, cap: int) -> None:
    """:class:`FileTooLarge` when ``size`` is over ``cap`` (0: no cap)."""
    if cap and size > cap:
        raise FileTooLarge(what, size, cap)


def _read_at_most(fd: int, limit: int | None) -> bytes:
    """Up to ``limit`` bytes of ``fd`` (None: all of it), read at the OS level."""
    parts, total = [], 0
    while limit is None or total < limit:
        part = os.read(fd, _BLOCK if limit is None else min(_BLOCK, limit - total))
        if not part:
            break
        parts.append(part)
        total += len(part)
    return b"".join(parts)


def _read_local(path: str, cap: int) -> bytes:
    # O_NONBLOCK: a FIFO planted among the images opens at once (and is refused below)
    # instead of blocking the task; it changes nothing for a regular file.
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            kind = "a folder" if stat.S_ISDIR(info.st_mode) else "a special file"
            raise OSError(f"{path}: expected a regular file, found {kind}")
        check_file_size(path, info.st_size, cap)
        data = _read_at_most(fd, cap + 1 if cap else None)
    finally:
        os.close(fd)
    check_file_size(path, len(data), cap)  # it grew after the check
    return data


def _read_s3(uri: str, s3: S3Settings | None, cap: int) -> bytes:
    fs, path = storage.filesystem(uri, s3)
    with fs.open_input_file(path) as f:  # its size comes with the open (a HEAD request)
        check_file_size(uri, f.size(), cap)
        data = f.read(cap + 1) if cap else f.read()
    check_file_size(uri, len(data), cap)
    return data


def read_capped(uri: str, s3: S3Settings | None, cap: int) -> bytes:
    """The bytes of file ``uri`` (local or ``s3://``); :class:`FileTooLarge` when it holds more
    than ``cap`` bytes (0: no cap), found before reading it; other ``OSError`` s when it is
    missing, unreadable or not a regular file."""
    return _read_s3(uri, s3, cap) if storage.is_s3(uri) else _read_local(uri, cap)
