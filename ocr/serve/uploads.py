"""Upload safety: every bad upload becomes a :class:`RequestError` (a 4xx JSON answer), never a 500.

Checks, in the order a request meets them:

    Content-Length over the byte cap                     413 too_large (nothing read)
    content type not an image, octet-stream or multipart 415 unsupported_media_type
    body over the byte cap while streaming               413 too_large (reading stops at the cap)
    multipart without a file part, or malformed          400 bad_multipart / missing_file
    zero bytes                                           400 zero_byte
    magic bytes not in the allowlist                     415 not_an_image / unsupported_format
    width x height over the pixel cap (header only)      413 too_many_pixels
    truncated or corrupt data (full decode)              400 corrupt_image
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from dataclasses import dataclass

from PIL import Image

from ocr.data.image_size import header_size
from ocr.data.images import ALLOWED_FORMATS, ImageError, as_displayed, decode, sniff_format

RAW_TYPES = ("application/octet-stream",)
FILE_FIELDS = ("file", "image")
_STATUS = {"too_many_pixels": 413, "not_an_image": 415, "unsupported_format": 415}


class RequestError(Exception):
    """A client error: HTTP ``status``, a stable ``code`` and a sentence for people."""

    def __init__(self, status: int, code: str, message: str, request_id: str = ""):
        super().__init__(message)
        self.status, self.code, self.message, self.request_id = status, code, message, request_id

    def to_json(self) -> dict:
        error = {"status": self.status, "code": self.code, "message": self.message}
        return {"error": {**error, "request_id": self.request_id} if self.request_id else error}


# What a stage raises when the decoded image itself is odd (an empty crop, a degenerate box, a
# size a step cannot take): the input's fault, a 422. Anything else is the service's: a 500.
INPUT_FAULTS = (ValueError, IndexError, ZeroDivisionError, OverflowError)


def stage_error(error: Exception, logger) -> RequestError:
    """The answer for an exception raised while a decoded upload went through the stages
    (Ray re-raises a stage's exception as a subclass of its type): 422 when the input is at
    fault, else 500 with a request id that the log line (with its traceback) carries too."""
    if isinstance(error, INPUT_FAULTS):
        cause = getattr(error, "cause", None) or error
        return RequestError(422, "unprocessable_image", f"the image decoded, but a stage could not "
                            f"process it: {type(cause).__name__}: {str(cause)[:300]}")
    request_id = uuid.uuid4().hex[:16]
    logger.error("request %s failed", request_id, exc_info=error)
    return RequestError(500, "internal_error", "the service failed on this request and keeps "
                        "running: retry, and report the request id if it persists", request_id)


@dataclass(frozen=True)
class UploadLimits:
    """Caps on one upload. ``formats`` is the allowlist, checked on magic bytes."""

    max_bytes: int = 10 * 1024 * 1024
    max_pixels: int = 40_000_000
    formats: tuple[str, ...] = ALLOWED_FORMATS

    def __post_init__(self):
        unknown = sorted(set(self.formats) - set(ALLOWED_FORMATS))
        if unknown:
            raise ValueError(f"formats: expected some of {ALLOWED_FORMATS}, found {unknown}")
        if self.max_bytes < 1 or self.max_pixels < 1:
            raise ValueError(f"max_bytes and max_pixels must be positive, found "
                             f"{self.max_bytes} and {self.max_pixels}")


def _too_large(limits: UploadLimits, found: str) -> RequestError:
    return RequestError(413, "too_large", f"upload too large: expected at most {limits.max_bytes} "
                        f"bytes, found {found}")


async def capped_body(request, limits: UploadLimits):
    """The request body in chunks, refused (413) as soon as it passes ``limits.max_bytes``."""
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > limits.max_bytes:
        raise _too_large(limits, f"Content-Length {length}")
    seen = 0
    async for chunk in request.stream():
        seen += len(chunk)
        if seen > limits.max_bytes:
            raise _too_large(limits, f"more than {limits.max_bytes} bytes in the body")
        if chunk:
            yield chunk


async def _multipart_file(request, limits: UploadLimits) -> bytes:
    # lazy: only the HTTP path parses uploads; ServeConfig (the CLI's parser) imports this module
    from starlette.datastructures import UploadFile
    from starlette.formparsers import MultiPartException, MultiPartParser

    parser = MultiPartParser(request.headers, capped_body(request, limits), max_files=1, max_fields=16,
                             max_part_size=limits.max_bytes)
    try:
        form = await parser.parse()
    except MultiPartException as e:
        raise RequestError(400, "bad_multipart", f"malformed multipart body: {e.message}") from None
    for name in FILE_FIELDS:
        part = form.get(name)
        if isinstance(part, UploadFile):
            data = await part.read()
            await part.close()
            return data
    raise RequestError(400, "missing_file", f"multipart body: expected a file part named "
                       f"{' or '.join(repr(f) for f in FILE_FIELDS)}, found fields {sorted(form.keys())}")


async def read_upload(request, limits: UploadLimits) -> bytes:
    """The uploaded image's bytes: a multipart ``file`` part, or the raw body."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype == "multipart/form-data":
        return await _multipart_file(request, limits)
    if not (ctype.startswith("image/") or ctype in RAW_TYPES):
        raise RequestError(415, "unsupported_media_type", "content type: expected multipart/form-data "
                           "with a 'file' part, image/*, or application/octet-stream, found "
                           f"{ctype or 'none'!r}")
    return b"".join([chunk async for chunk in capped_body(request, limits)])


def decode_upload(data: bytes, limits: UploadLimits) -> Image.Image:
    """Checked decode: magic bytes against the allowlist, pixel cap before decoding, then a
    full decode (which catches truncated files). Any failure is a :class:`RequestError`."""
    fmt = sniff_format(data) if data else None
    if fmt is not None and fmt not in limits.formats:
        raise RequestError(415, "unsupported_format", f"image format: expected one of "
                           f"{', '.join(limits.formats)}, found {fmt}")
    try:
        return as_displayed(decode(data, limits.max_pixels))
    except ImageError as e:
        raise RequestError(_STATUS.get(e.reason, 400), e.reason, str(e)) from None


def header_pixels(data: bytes, cap: int) -> int:
    """width x height as the image's header declares it (nothing opened or decoded: PIL's WebP
    plugin allocates the canvas on opening), at most ``cap``; ``cap`` when the header says
    nothing readable (the checked decode then says why)."""
    fmt = sniff_format(data) if data else None
    size = header_size(data, fmt) if fmt else None
    return min(cap, size[0] * size[1]) if size else cap


class PixelBudget:
    """At most ``capacity`` decoded pixels in flight: a request holds its image's pixels from
    before decoding until its answer, and waits for room when there is none. Pages at the
    pixel cap get ``capacity / max_pixels`` slots; small line images barely count."""

    def __init__(self, capacity: int):
        self.capacity, self.free = capacity, capacity
        self._room = asyncio.Condition()

    @contextlib.asynccontextmanager
    async def hold(self, pixels: int):
        pixels = max(1, min(pixels, self.capacity))
        async with self._room:
            await self._room.wait_for(lambda: self.free >= pixels)
            self.free -= pixels
        try:
            yield
        finally:
            async with self._room:
                self.free += pixels
                self._room.notify_all()


@contextlib.asynccontextmanager
async def deadline(seconds: float):
    """A 408 :class:`RequestError` when the body takes longer than ``seconds`` (asyncio.timeout,
    which Python 3.10 lacks): the request's task is cancelled at the deadline, and only that
    cancellation is turned into the 408."""
    task, expired = asyncio.current_task(), []

    def expire():
        expired.append(True)
        task.cancel()

    handle = asyncio.get_running_loop().call_later(seconds, expire)
    try:
        yield
    except asyncio.CancelledError:
        if not expired:
            raise
        if hasattr(task, "uncancel"):
            task.uncancel()
        raise RequestError(408, "timeout", f"the request took longer than {seconds:g} s "
                           "(request_timeout_s): expected a smaller image, or retry") from None
    finally:
        handle.cancel()
