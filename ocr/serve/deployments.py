"""One Ray Serve deployment per stage. Each loads its checkpoint in ``reconfigure``, from its
``user_config`` (local path, run folder or ``s3://``), so ``serve deploy`` with a new path
swaps the model in place: the new model is loaded beside the old one, then swapped in, and
requests in flight finish on the model they started with.

user_config keys (all stages): ``checkpoint``, ``device`` (auto | cpu | cuda), ``threads``
(torch threads; 0 = leave as is). The Recognizer also takes ``max_batch_size`` (requests per
``@serve.batch`` batch) and ``batch_wait_ms`` (how long a batch waits to fill; 0: batches grow
by merging while the model is busy instead, so a lone request is never held back).
"""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import ThreadPoolExecutor

import torch
from ray import serve

from ocr.infer.which_way_up import upside_down
from ocr.serve.stages import DeskewerStage, DetectorStage, RecognizerStage

logger = logging.getLogger("ray.serve")

# A page fans out into up to max_lines crop calls, so the stages queue deep; overload is
# shed at the ingress (its max_queued_requests), not half-way through a page.
_STAGE_OPTIONS = dict(ray_actor_options={"num_cpus": 0.25}, max_ongoing_requests=64, max_queued_requests=4096,
                      health_check_period_s=5)


def _device(name: str) -> str:
    if name == "auto":

        return "cuda" if torch.cuda.is_available() else "cpu"
    if name not in ("cpu", "cuda"):
        raise ValueError(f"device: expected auto, cpu or cuda, found {name!r}")
    return name


class _Swappable:
    """The stage object, rebuilt only when the checkpoint (or device) in user_config changes.
    The model runs on one worker thread of its own (torch's thread count is per calling
    thread under OpenMP, so it is set there), leaving the replica's event loop free to
    gather the next batch."""

    stage_cls: type
    stage = None
    swap_refused = None
    _key = None
    _pool = None
    _threads = 0

    def _load(self, config: dict, optional: bool = False) -> None:
        path = config.get("checkpoint") or ""
        if not path and not optional:
            raise ValueError(f"{type(self).__name__}: user_config must name a 'checkpoint', found {config}")
        threads = int(config.get("threads", 1))
        if self._pool is None or threads != self._threads:
            self._pool = ThreadPoolExecutor(1, initializer=_set_threads, initargs=(threads,))
            self._threads = threads
        key = (path, config.get("device", "auto"))
        if key != self._key:
            self._swap(key)

    def _swap(self, key: tuple[str, str]) -> None:
        """Load the new model beside the old one, then swap it in. A checkpoint that does not
        load (missing, damaged, another task, a charset its head does not match) is refused:
        the old model keeps serving, and the error is logged and shown in /healthz. A replica
        with no model yet fails instead (Serve retries it)."""
        try:
            stage = self.stage_cls(key[0], _device(key[1]))
        except Exception as e:  # noqa: BLE001 - any load failure: keep the model that works
            if self.stage is None:
                raise
            self.swap_refused = {"checkpoint": key[0], "error": f"{type(e).__name__}: {e}"}
            logger.error("%s: refused to swap to %s (%s); still serving %s", type(self).__name__,
                         key[0], self.swap_refused["error"], self._key[0])
            return
        self.stage, self._key, self.swap_refused = stage, key, None

    async def run(self, fn, *args):
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    def version(self) -> dict:
        """The model serving, and the last swap refused since (if any)."""
        refused = {"swap_refused": self.swap_refused} if self.swap_refused else {}
        return {**self.stage.version, **refused}


def _set_threads(threads: int) -> None:
    if threads > 0:

        torch.set_num_threads(threads)


@serve.deployment(**_STAGE_OPTIONS)
class Deskewer(_Swappable):
    stage_cls = DeskewerStage

    def reconfigure(self, config: dict) -> None:
        self._load(config, optional=True)

    async def correct(self, page):
        stage = self.stage
        upright, info = await self.run(stage.correct, page)
        return upright, {**info, "model": stage.version}


@serve.deployment(**_STAGE_OPTIONS)
class Detector(_Swappable):
    stage_cls = DetectorStage

    def reconfigure(self, config: dict) -> None:
        self._load(config)

    async def detect(self, page, min_score: float, max_boxes: int) -> tuple[list[dict], dict]:
        stage = self.stage
        return await self.run(stage.detect, page, min_score, max_boxes), stage.version


class _Merger:
    """Runs ``fn`` over the items of every call waiting for it, merged (one model call for a
    whole @serve.batch batch, as its requests are submitted together): while the model is busy,
    the calls that arrive queue here and go into its next call together. So a model call grows
    with the load (up to all that is waiting) and a lone call never waits for company."""

    def __init__(self, fn):
        self.fn = fn   # async: list of items -> list of results, in order
        self.waiting: list[tuple[list, asyncio.Future]] = []
        self.busy = False
        self.calls = self.items = 0
        self.seconds = 0.0   # in fn

    async def submit(self, items: list) -> list:
        future = asyncio.get_running_loop().create_future()
        self.waiting.append((items, future))
        if not self.busy:
            self.busy = True
            asyncio.get_running_loop().create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        try:
            while self.waiting:
                group, self.waiting = self.waiting, []
                flat = [x for items, _ in group for x in items]
                self.calls, self.items = self.calls + 1, self.items + len(flat)
                started = time.perf_counter()
                try:
                    results = await self.fn(flat)
                except Exception as e:   # every caller of this model call gets the error
                    for _, future in group:
                        if not future.done():
                            future.set_exception(e)
                    continue
                finally:
                    self.seconds += time.perf_counter() - started
                start = 0
                for items, future in group:
                    if not future.done():
                        future.set_result(results[start:start + len(items)])
                    start += len(items)
        finally:
            self.busy = False


# max_ongoing_requests = max_batch_size x max_concurrent_batches: every batch formed goes on to
# the merger at once instead of queueing behind the one the model is running.
@serve.deployment(**{**_STAGE_OPTIONS, "max_ongoing_requests": 256})
class Recognizer(_Swappable):
    """Reads line images. One call carries the crops of one request (a /recognize line, or all
    the lines of a page); ``@serve.batch`` gathers concurrent calls, and batches that arrive
    while the model is busy are merged into its next run (``_Merger``)."""
    stage_cls = RecognizerStage

    def __init__(self):
        self.merger = _Merger(self._read)

    def reconfigure(self, config: dict) -> None:
        self._load(config)
        self.read.set_max_batch_size(int(config.get("max_batch_size", 16)))
        self.read.set_batch_wait_timeout_s(float(config.get("batch_wait_ms", 0.0)) / 1000)

    @serve.batch(max_batch_size=16, batch_wait_timeout_s=0.0, max_concurrent_batches=16)
    async def read(self, requests: list[list]) -> list[list[dict]]:
        """Per request, a list of line images (uint8 arrays); per request, {"text",
        "confidence", "model"} per line."""
        return list(await asyncio.gather(*(self.merger.submit(crops) for crops in requests)))

    async def reads_upside_down(self, crops: list) -> bool:
        """Whether these lines of a page read better turned a half turn (which_way_up), in
        the batches of the other requests."""
        if not self.stage.orients_by_reading:
            return False
        as_found, turned = await asyncio.gather(self.merger.submit(crops),
                                                self.merger.submit([c[::-1, ::-1] for c in crops]))
        return upside_down([r["confidence"] for r in as_found], [r["confidence"] for r in turned])

    async def _read(self, crops: list) -> list[dict]:
        stage = self.stage
        results = await self.run(stage.read, crops)
        return [{**r, "model": stage.version} for r in results]

    def stats(self) -> dict:
        """Model calls and lines read since the replica started (lines per call = batching)."""
        return {"model_calls": self.merger.calls, "lines": self.merger.items,
                "model_seconds": self.merger.seconds}
