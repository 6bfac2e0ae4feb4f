"""One Ray Serve deployment per stage. Each loads its checkpoint in ``reconfigure``, from its
``user_config`` (local path, run folder or ``s3://``), so ``serve deploy`` with a new path
swaps the model in place: the new model is loaded beside the old one, then swapped in, and
requests in flight finish on the model they started with.

user_config keys (all stages): ``checkpoint``, ``device`` (auto | cpu | cuda), ``threads``
(torch threads; 0 = leave as is). The Recognizer also takes ``max_batch_size`` and
``batch_wait_ms`` for ``@serve.batch``.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

from ray import serve

from ocr.serve.stages import DeskewerStage, DetectorStage, RecognizerStage

# A page fans out into up to max_lines crop calls, so the stages queue deep; overload is
# shed at the ingress (its max_queued_requests), not half-way through a page.
_STAGE_OPTIONS = dict(ray_actor_options={"num_cpus": 0.25}, max_ongoing_requests=64, max_queued_requests=4096,
                      health_check_period_s=5)


def _device(name: str) -> str:
    if name == "auto":
        import torch

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
            self.stage = self.stage_cls(path, _device(key[1]))   # loaded first, then swapped in
            self._key = key

    async def run(self, fn, *args):
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    def version(self) -> dict:
        return self.stage.version


def _set_threads(threads: int) -> None:
    if threads > 0:
        import torch

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


@serve.deployment(**_STAGE_OPTIONS)
class Recognizer(_Swappable):
    stage_cls = RecognizerStage

    def reconfigure(self, config: dict) -> None:
        self._load(config)
        self.read.set_max_batch_size(int(config.get("max_batch_size", 32)))
        self.read.set_batch_wait_timeout_s(float(config.get("batch_wait_ms", 5.0)) / 1000)

    @serve.batch(max_batch_size=32, batch_wait_timeout_s=0.005)
    async def read(self, crops: list) -> list[dict]:
        """One line image (uint8 array) per call; Serve gathers concurrent calls into a batch."""
        stage = self.stage
        results = await self.run(stage.read, crops)
        return [{**r, "model": stage.version} for r in results]
