"""The HTTP ingress and the application builder.

    serve run serve_config.yaml          # import_path: ocr.serve.app:build_app
    ocr serve --recognizer RUN [--detector RUN] [--deskewer RUN]

The ingress (FastAPI, documented at /docs) decodes and checks the upload, then chains the
stages through DeploymentHandles: deskew the page, find its regions, crop them, read the crops
(one call per page; the Recognizer batches them with other requests'), answer JSON.
"""


import asyncio
import base64
import contextlib
import hmac
import io
import logging
import time
from importlib import resources

import numpy as np
import ray
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from PIL import Image
from ray import serve
from ray.exceptions import ActorDiedError, ActorUnavailableError
from ray.serve.context import _get_global_client
from ray.serve.exceptions import BackPressureError
from starlette.exceptions import HTTPException as StarletteHTTPException

from ocr.infer.layout import crop, text_by_rows
from ocr.infer.which_way_up import sample_lines, turn_estimate
from ocr.serve import metrics
from ocr.serve.config import NO_DESKEW, ServeConfig, token_sha256
from ocr.serve.deployments import Deskewer, Detector, Recognizer
from ocr.serve.uploads import (
    PixelBudget,
    RequestError,
    UploadLimits,
    deadline,
    decode_upload,
    header_pixels,
    read_upload,
    stage_error,
)

logger = logging.getLogger("ray.serve")

_IMAGE_BODY = {"requestBody": {"required": True, "content": {
    "multipart/form-data": {"schema": {"type": "object", "required": ["file"],
                                       "properties": {"file": {"type": "string", "format": "binary"}}}},
    "image/png": {"schema": {"type": "string", "format": "binary"}},
    "image/jpeg": {"schema": {"type": "string", "format": "binary"}},
    "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}}

# What the ingress needs of the ServeConfig (checkpoint paths are the stages' business).
INGRESS_KEYS = ("min_score", "max_lines", "max_bytes", "max_pixels", "max_pages", "formats", "token_env",
                "request_timeout_s")
TIMEOUT_SHARE = 0.95

app = FastAPI(title="ocr-on-ray", version="1", description=(
    "Deskew, find text regions and read them. Upload an image as a multipart `file` part or as "
    "the raw body. Bad uploads get a 4xx JSON error: `{\"error\": {status, code, message}}`."))


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse(RequestError(status, code, message).to_json(), status_code=status)


@app.exception_handler(RequestError)
async def _request_error(request: Request, e: RequestError):
    return _error(e.status, e.code, e.message)


@app.exception_handler(RequestValidationError)
async def _validation_error(request: Request, e: RequestValidationError):
    where = "; ".join(f"{'.'.join(map(str, err['loc']))}: {err['msg']}" for err in e.errors())
    return _error(422, "invalid_parameter", where)


@app.exception_handler(StarletteHTTPException)
async def _http_error(request: Request, e: StarletteHTTPException):
    return _error(e.status_code, "http_error", str(e.detail))


class _CountRequests:
    """Requests by route and status, and their latency (a plain ASGI middleware: Starlette's
    ``@app.middleware("http")`` costs about a millisecond a request)."""

    def __init__(self, asgi):
        self.asgi = asgi

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.asgi(scope, receive, send)
        start, status = time.perf_counter(), [500]

        async def send_and_note(message):
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.asgi(scope, receive, send_and_note)
        finally:
            metrics.record_request(scope["path"], status[0], (time.perf_counter() - start) * 1e3)


app.add_middleware(_CountRequests)


REFUSED = {"swap_refused"}   # a new checkpoint refused in place, the old one serving


def public_version(version: dict) -> dict:
    """A stage's version without checkpoint paths, URIs or the messages that hold them."""
    public = {k: v for k, v in version.items() if k != "checkpoint" and k not in REFUSED}
    for key in REFUSED & set(version):
        public[key] = "a new checkpoint did not load: details with the token"
    return public


def decoded_rgb(data: bytes, limits: UploadLimits) -> np.ndarray:
    """The checked upload (:func:`decode_upload`) as an RGB array; a mode Pillow cannot turn
    into RGB is a 415."""
    image = decode_upload(data, limits)
    try:
        return np.asarray(image.convert("RGB"))
    except (ValueError, OSError) as e:
        raise RequestError(415, "unsupported_mode", f"image mode: expected one Pillow converts to RGB, "
                           f"found {image.mode} ({e})") from None


def _png_data_url(page: np.ndarray) -> str:
    buf = io.BytesIO()
    Image.fromarray(page).save(buf, "PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


async def call(method, *args, tries: int = 3):
    """``await method.remote(*args)`` on a stage, retried when its replica died (the handle
    routes the retry to a live or replacement replica); a 503 JSON answer when that fails or
    the stage sheds load."""
    for attempt in range(tries):
        try:
            return await method.remote(*args)
        except (ActorDiedError, ActorUnavailableError) as e:
            if attempt == tries - 1:
                raise RequestError(503, "stage_unavailable", f"a stage of the graph is restarting "
                                   f"({type(e).__name__}): expected it back within seconds, retry") from None
            await asyncio.sleep(0.5 * (attempt + 1))
        except BackPressureError:
            raise RequestError(503, "overloaded", "the service is at capacity: retry later") from None


class _Clock:
    """Per-stage timings in ms, also recorded as the stage latency metric."""

    def __init__(self):
        self.start = self.last = time.perf_counter()
        self.ms: dict[str, float] = {}

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        self.ms[stage] = round((now - self.last) * 1e3, 2)
        metrics.record_stage(stage, self.ms[stage])
        self.last = now

    def done(self) -> dict:
        self.ms["total"] = round((time.perf_counter() - self.start) * 1e3, 2)
        return self.ms


@serve.deployment(ray_actor_options={"num_cpus": 0.1}, max_ongoing_requests=64, max_queued_requests=256)
@serve.ingress(app)
class OCRService:
    def __init__(self, deskewer, detector, recognizer, settings: dict):
        self.min_score, self.max_lines = settings["min_score"], settings["max_lines"]
        self.limits = UploadLimits(settings["max_bytes"], settings["max_pixels"], tuple(settings["formats"]))
        self.token_env, self.token_digest = settings["token_env"], settings["token_digest"]
        self.decoded_pixels = PixelBudget(settings["max_pages"] * settings["max_pixels"])
        # a JSON 408 from here, a little before Serve's own HTTP timeout (the backstop)
        self.timeout_s = settings["request_timeout_s"] * TIMEOUT_SHARE
        self.deskewer, self.detector, self.recognizer = deskewer, detector, recognizer

    # --- helpers ---------------------------------------------------------------------------
    def authorized(self, request: Request) -> bool:
        """Whether the request carries the token (compared by its salted digest)."""
        got = request.headers.get("authorization", "")
        if not self.token_digest or not got.startswith("Bearer "):
            return False
        digest = token_sha256(self.token_digest["salt"], got[len("Bearer "):])
        return hmac.compare_digest(digest, self.token_digest["sha256"])

    def check_token(self, request: Request) -> None:
        if self.token_digest and not self.authorized(request):
            got = request.headers.get("authorization", "")
            raise RequestError(401, "unauthorized", "expected an 'Authorization: Bearer <token>' header "
                               f"with the token in ${self.token_env}, found "
                               f"{'a wrong token' if got else 'none'}")

    @contextlib.asynccontextmanager
    async def upload(self, request: Request):
        """(the decoded page, the request's clock), for as long as the route reads it. The
        upload is checked (token, size) first; then it waits for room for its pixels in the
        replica's budget (``max_pages`` pages at the pixel cap) and is decoded off the event
        loop, in a thread. So the decoded images in the replica hold max_pages x max_pixels
        pixels at most (the memory bound in the README)."""
        clock = _Clock()
        self.check_token(request)
        async with deadline(self.timeout_s):
            data = await read_upload(request, self.limits)
            async with self.decoded_pixels.hold(header_pixels(data, self.limits.max_pixels)):
                page = await asyncio.to_thread(decoded_rgb, data, self.limits)
                del data
                clock.lap("decode")
                try:
                    yield page, clock
                except RequestError:
                    raise
                except Exception as e:  # noqa: BLE001 - past decoding: 422 (the input) or 500 with an id
                    raise stage_error(e, logger) from None

    async def read_lines(self, page: np.ndarray, lines: list[dict]) -> dict | None:
        if not lines:
            return None
        results = await call(self.recognizer.read, [crop(page, ln["box"]) for ln in lines])
        for line, r in zip(lines, results):
            line.update(text=r["text"], confidence=r["confidence"])
        return results[-1]["model"]

    async def reads_upside_down(self, page: np.ndarray, lines: list[dict]) -> bool:
        """Whether the page's longest lines read better turned a half turn (which_way_up)."""
        crops = [crop(page, lines[i]["box"]) for i in sample_lines(np.asarray([ln["box"] for ln in lines]))]
        return await call(self.recognizer.reads_upside_down, crops)

    async def regions(self, page: np.ndarray) -> tuple[list[dict], dict | None]:
        if self.detector is None:
            h, w = page.shape[:2]
            return [{"box": [0.0, 0.0, float(w), float(h)], "score": 1.0}], None
        return await call(self.detector.detect, page, self.min_score, self.max_lines)

    # --- routes ----------------------------------------------------------------------------
    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def index(self) -> str:
        return resources.files("ocr.serve").joinpath("static/index.html").read_text("utf-8")

    @app.get("/healthz")
    async def healthz(self, request: Request) -> dict:
        """Liveness, and the model behind each stage. ``degraded``: a stage refused a new
        checkpoint in place and serves its old one (``swap_refused`` says why). Checkpoint
        paths, URIs and messages are shown only to a request with the token."""
        stages = {"recognizer": self.recognizer, "detector": self.detector, "deskewer": self.deskewer}
        names = [k for k, v in stages.items() if v is not None]
        versions = await asyncio.gather(*(stages[k].version.remote() for k in names))
        if not self.authorized(request):
            versions = [public_version(version) for version in versions]
        status = "degraded" if any(REFUSED & set(v) for v in versions) else "ok"
        return {"status": status, "models": dict(zip(names, versions)), "auth": bool(self.token_digest)}

    @app.post("/ocr", openapi_extra=_IMAGE_BODY)
    async def ocr(self, request: Request, image: bool = False) -> dict:
        """The whole graph: skew angle, orientation, lines (box, text, confidence), per-stage
        timings in ms and model versions. ``?image=true`` adds the upright page as a PNG data
        URL (boxes are in its pixels)."""
        async with self.upload(request) as (page, clock):
            deskew, models = {"angle": 0.0, "skew": 0.0, "orientation": 0, "method": NO_DESKEW}, {}
            if self.deskewer is not None:
                page, deskew = await call(self.deskewer.correct, page)
                models["deskewer"] = deskew.pop("model")
                clock.lap("deskew")
            lines, models["detector"] = await self.regions(page)
            clock.lap("detect")
            if deskew["method"] == "classical" and self.detector is not None and lines:
                if await self.reads_upside_down(page, lines):   # the classical skew's axis, not which way up
                    page, deskew = np.ascontiguousarray(page[::-1, ::-1]), turn_estimate(deskew)
                    lines, _ = await self.regions(page)
                clock.lap("which_way_up")
            models["recognizer"] = await self.read_lines(page, lines)
            clock.lap("recognize")
            no_text = not any(ln.get("text", "").strip() for ln in lines)
            if no_text:   # nothing read: no angle to speak of, whatever the estimate made of the blank
                deskew = {**deskew, "angle": 0.0, "skew": 0.0, "orientation": 0}
            out = {"no_text": no_text, "angle": deskew["angle"], "skew": deskew.get("skew"),
                   "orientation": deskew.get("orientation"),
                   "deskew_method": deskew.get("method"), "size": [page.shape[1], page.shape[0]],
                   "lines": lines, "text": text_by_rows(lines),
                   "timings_ms": clock.done(), "models": models}
            if image:
                out["image"] = _png_data_url(page)
            return out

    @app.post("/recognize", openapi_extra=_IMAGE_BODY)
    async def recognize(self, request: Request) -> dict:
        """One line image: its text and confidence."""
        async with self.upload(request) as (line, clock):
            r = (await call(self.recognizer.read, [line]))[0]
            clock.lap("recognize")
            return {"text": r["text"], "confidence": r["confidence"], "timings_ms": clock.done(),
                    "models": {"recognizer": r["model"]}}

    @app.post("/detect", openapi_extra=_IMAGE_BODY)
    async def detect(self, request: Request) -> dict:
        """Text regions of a page (no deskew): boxes and scores, in reading order."""
        async with self.upload(request) as (page, clock):
            if self.detector is None:
                raise RequestError(404, "no_detector", "this deployment has no detector: start it with one")
            lines, version = await self.regions(page)
            clock.lap("detect")
            return {"lines": lines, "size": [page.shape[1], page.shape[0]], "timings_ms": clock.done(),
                    "models": {"detector": version}}

    @app.post("/deskew", openapi_extra=_IMAGE_BODY)
    async def deskew(self, request: Request, image: bool = False) -> dict:
        """The page's rotation (total angle, fine skew, orientation); ``?image=true`` adds the
        upright page as a PNG data URL."""
        async with self.upload(request) as (page, clock):
            if self.deskewer is None:
                raise RequestError(404, "no_deskewer", "this deployment has deskewing turned off")
            page, info = await call(self.deskewer.correct, page)
            clock.lap("deskew")
            out = {**info, "timings_ms": clock.done()}
            out["models"] = {"deskewer": out.pop("model")}
            if image:
                out["image"] = _png_data_url(page)
            return out


def build_app(args: dict):
    """The Serve application for ``args`` (a :class:`ServeConfig` as a dict); refused before
    any replica starts or changes when a checkpoint does not load, or when it would listen
    beyond loopback without a token. (Serve calls it with the one dict of serve_config.yaml's
    ``args``: it takes nothing else.)"""
    return build_app_with(args)


def build_app_with(args: dict, ingress_options: dict | None = None):
    """:func:`build_app`, with Serve options for the ingress deployment (serve_config.yaml sets
    them under ``deployments``; tests set them here)."""
    cfg = (args if isinstance(args, ServeConfig) else ServeConfig(**(args or {})))
    running = serve_http_options()
    cfg.check_exposure({cfg.host} | ({running.host} if running is not None else set()))
    cfg.check_checkpoints()
    recognizer = Recognizer.options(user_config=cfg.recognizer_config()).bind()
    detector = deskewer = None
    if cfg.finds_lines:
        detector = Detector.options(user_config=cfg.stage_config(cfg.detector)).bind()
    if cfg.deskewer != NO_DESKEW:
        deskewer = Deskewer.options(user_config=cfg.stage_config(cfg.deskewer)).bind()
    # Checkpoint paths live in the stages' user_config only: a new path reconfigures that
    # stage in place, and the ingress (whose arguments did not change) keeps running. The
    # token stays in this process: the ingress gets its salted digest.
    settings = {**{k: getattr(cfg, k) for k in INGRESS_KEYS}, "token_digest": cfg.token_digest()}
    if running is not None and getattr(running, "request_timeout_s", None):   # the HTTP timeout in force
        settings["request_timeout_s"] = min(cfg.request_timeout_s, running.request_timeout_s)
    ingress = OCRService.options(**ingress_options) if ingress_options else OCRService
    return ingress.bind(deskewer, detector, recognizer, settings)


def serve_http_options():
    """The HTTP options of the Serve running in the connected Ray, or None (no Ray, no Serve)."""
    if not ray.is_initialized():
        return None
    try:
        client = _get_global_client(raise_if_no_controller_running=False)
        return None if client is None else client.http_config
    except Exception:  # noqa: BLE001 - cannot tell: the config's own host decides
        return None
