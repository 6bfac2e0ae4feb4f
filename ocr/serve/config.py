"""The serving config: what ``build_app`` takes (``args`` in serve_config.yaml, flags of ``ocr serve``)."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass

from ocr.config import ConfigError, absolute_paths, opt
from ocr.data.images import ALLOWED_FORMATS
from ocr.serve.uploads import UploadLimits

NO_DESKEW = "off"
NO_DETECTOR = "off"
CLASSICAL = "lines"   # ocr.infer.layout.CLASSICAL, the line finder (not imported: it pulls in torch)
DEFAULT_RECOGNIZER = "builtin:korean"   # ocr read's default language: Hangul, Latin, digits


@dataclass
class ServeConfig:
    recognizer: str = opt(DEFAULT_RECOGNIZER, "recognition checkpoint, run folder (its best/), s3:// URI "
                          "or builtin:NAME (ocr models --builtin)", path="checkpoint")
    detector: str = opt(CLASSICAL, "ROI detection checkpoint; lines: the classical line finder (print "
                        "on a plain ground, no model); off: each image is read as one line",
                        path="checkpoint", keep=(CLASSICAL, NO_DETECTOR))
    deskewer: str = opt("", "orientation checkpoint; empty: the classical deskew; off: none",
                        path="checkpoint", keep=(NO_DESKEW,))
    device: str = opt("auto", "auto (cuda when available), cpu or cuda", choices=("auto", "cpu", "cuda"))
    threads: int = opt(1, "torch threads per stage replica")
    max_batch_size: int = opt(16, "requests per Recognizer batch at most")
    batch_wait_ms: float = opt(0.0, "milliseconds to wait to fill a batch (0: batches merge while "
                               "the model is busy)")
    min_score: float = opt(0.5, "ROI boxes below this score are dropped")
    max_lines: int = opt(100, "lines read per page at most (best scores first)")
    max_bytes: int = opt(10 * 1024 * 1024, "upload size cap in bytes (413 above)")
    max_pixels: int = opt(40_000_000, "width x height cap, read from the header before decoding "
                          "(413 above)")
    formats: list[str] = opt(factory=lambda: list(ALLOWED_FORMATS), metavar="FORMAT",
                             help="image formats accepted, by their magic bytes (415 otherwise)")
    token_env: str = opt("OCR_SERVE_TOKEN", "environment variable holding the API token: when it is "
                         "set, requests need Authorization: Bearer <token>")
    host: str = opt("127.0.0.1", "address to listen on (ocr serve only; serve_config.yaml has "
                    "http_options)")
    port: int = opt(8000, "HTTP port (ocr serve only)")
    request_timeout_s: float = opt(30.0, "end-to-end HTTP timeout in seconds (408 past it)")

    def __post_init__(self):
        absolute_paths(self)
        if not self.recognizer:
            raise ConfigError("recognizer: expected a recognition checkpoint, found none")
        if not 0 <= self.min_score <= 1:
            raise ConfigError(f"min_score: expected a score in [0, 1], found {self.min_score}")
        for name in ("threads", "max_batch_size", "max_lines"):
            if getattr(self, name) < (0 if name == "threads" else 1):
                raise ConfigError(f"{name}: expected a positive number, found {getattr(self, name)}")
        try:
            self.limits()
        except ValueError as e:
            raise ConfigError(str(e)) from None

    def limits(self) -> UploadLimits:
        return UploadLimits(self.max_bytes, self.max_pixels, tuple(f.upper() for f in self.formats))

    @property
    def finds_lines(self) -> bool:
        """Whether pages go through a Detector stage (else each image is one line)."""
        return self.detector not in ("", NO_DETECTOR)

    def stage_config(self, checkpoint: str, **extra) -> dict:
        """A stage's user_config."""
        return {"checkpoint": checkpoint, "device": self.device, "threads": self.threads, **extra}

    def recognizer_config(self) -> dict:
        """The Recognizer's user_config: a stage's, with its batching."""
        return self.stage_config(self.recognizer, max_batch_size=self.max_batch_size,
                                 batch_wait_ms=self.batch_wait_ms)

    def check_checkpoints(self) -> None:
        """Refuse missing or wrong-task checkpoints before any replica starts."""
        from ocr import checkpoint  # lazy: torch, which building the CLI's parser must not import

        wanted = {"recognizer": "recognition", "detector": "detection", "deskewer": "orientation"}
        for name, task in wanted.items():
            path = getattr(self, name)
            if not path or (name == "deskewer" and path == NO_DESKEW) or (name == "detector" and
                                                                        path in (CLASSICAL, NO_DETECTOR)):
                continue
            try:
                checkpoint.read_meta(path, task)
            except ConfigError as e:
                raise ConfigError(f"{name}: {e}") from None

    def token(self) -> str:
        return os.environ.get(self.token_env, "") if self.token_env else ""

    def to_json(self) -> dict:
        return asdict(self)
