"""The HTTP ingress and the application builder.

    serve run serve_config.yaml          # import_path: ocr.serve.app:build_app
    ocr serve --recognizer RUN [--detector RUN] [--deskewer RUN]

The ingress (FastAPI, documented at /docs) decodes and checks the upload, then chains the
stages through DeploymentHandles: deskew the page, find its regions, crop them, read the crops
(one call per page; the Recognizer batches them with other requests'), answer JSON.
"""


import asyncio
import base64
import hmac
import io
import os
import time
from importlib import resources

import numpy as np
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from PIL import Image
from ray import serve
from ray.exceptions import ActorDiedError, ActorUnavailableError
from ray.serve.exceptions import BackPressureError
from starlette.exceptions import HTTPException as StarletteHTTPException

from ocr.infer.layout import crop, text_by_rows
from ocr.infer.which_way_up import sample_lines, turn_estimate
from ocr.serve import metrics
from ocr.serve.config import NO_DESKEW, ServeConfig
from ocr.serve.deployments import Deskewer, Detector, Recognizer
from ocr.serve.uploads import RequestError, UploadLimits, decode_upload, read_upload

_IMAGE_BODY = {"requestBody": {"required": True, "content": {
    "multipart/form-data": {"schema": {"type": "object", "required": ["file"],
                                       "properties": {"file": {"type": "string", "format": "binary"}}}},
    "image/png": {"schema": {"type": "string", "format": "binary"}},
    "image/jpeg": {"schema": {"type": "string", "format": "binary"}},
    "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}}

# What the ingress needs of the ServeConfig (checkpoint paths are the stages' business).
INGRESS_KEYS = ("min_score", "max_lines", "max_bytes", "max_pixels", "formats", "token_env")

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
        self.token_env = settings["token_env"]
        self.token = os.environ.get(self.token_env, "") if self.token_env else ""
        self.deskewer, self.detector, self.recognizer = deskewer, detector, recognizer

    # --- helpers ---------------------------------------------------------------------------
    def check_token(self, request: Request) -> None:
        if not self.token:
            return
        got = request.headers.get("authorization", "")
        if not hmac.compare_digest(got.encode(), f"Bearer {self.token}".encode()):
            raise RequestError(401, "unauthorized", "expected an 'Authorization: Bearer <token>' header "
                               f"with the token in ${self.token_env}, found "
                               f"{'a wrong token' if got else 'none'}")

    async def page(self, request: Request, clock: _Clock) -> np.ndarray:
        self.check_token(request)
        data = await read_upload(request, self.limits)
        image = decode_upload(data, self.limits)
        page = np.asarray(image.convert("RGB"))
        clock.lap("decode")
        return page

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
    async def healthz(self) -> dict:
        """Liveness, and the model behind each stage."""
        stages = {"recognizer": self.recognizer, "detector": self.detector, "deskewer": self.deskewer}
        names = [k for k, v in stages.items() if v is not None]
        versions = await asyncio.gather(*(stages[k].version.remote() for k in names))
        return {"status": "ok", "models": dict(zip(names, versions)), "auth": bool(self.token)}

    @app.post("/ocr", openapi_extra=_IMAGE_BODY)
    async def ocr(self, request: Request, image: bool = False) -> dict:
        """The whole graph: skew angle, orientation, lines (box, text, confidence), per-stage
        timings in ms and model versions. ``?image=true`` adds the upright page as a PNG data
        URL (boxes are in its pixels)."""
        clock = _Clock()
        page = await self.page(request, clock)
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
        clock = _Clock()
        line = await self.page(request, clock)
        r = (await call(self.recognizer.read, [line]))[0]
        clock.lap("recognize")
        return {"text": r["text"], "confidence": r["confidence"], "timings_ms": clock.done(),
                "models": {"recognizer": r["model"]}}

    @app.post("/detect", openapi_extra=_IMAGE_BODY)
    async def detect(self, request: Request) -> dict:
        """Text regions of a page (no deskew): boxes and scores, in reading order."""
        clock = _Clock()
        page = await self.page(request, clock)
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
        clock = _Clock()
        page = await self.page(request, clock)
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
    any replica starts when a checkpoint is missing or of the wrong task."""
    cfg = (args if isinstance(args, ServeConfig) else ServeConfig(**(args or {})))
    cfg.check_checkpoints()
    recognizer = Recognizer.options(user_config=cfg.recognizer_config()).bind()
    detector = deskewer = None
    if cfg.finds_lines:
        detector = Detector.options(user_config=cfg.stage_config(cfg.detector)).bind()
    if cfg.deskewer != NO_DESKEW:
        deskewer = Deskewer.options(user_config=cfg.stage_config(cfg.deskewer)).bind()
    ingress = OCRService
    if cfg.token():   # the builder's environment names the token: the ingress gets it too
        ingress = OCRService.options(ray_actor_options={
            "num_cpus": 0.1, "runtime_env": {"env_vars": {cfg.token_env: cfg.token()}}})
    # Checkpoint paths live in the stages' user_config only: a new path reconfigures that
    # stage in place, and the ingress (whose arguments did not change) keeps running.
    return ingress.bind(deskewer, detector, recognizer, {k: getattr(cfg, k) for k in INGRESS_KEYS})
