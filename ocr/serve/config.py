"""The serving config: what ``build_app`` takes (``args`` in serve_config.yaml, flags of ``ocr serve``)."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field, replace

from ocr.config import ConfigError
from ocr.data.images import ALLOWED_FORMATS
from ocr.serve.uploads import UploadLimits

NO_DESKEW = "off"


@dataclass
class ServeConfig:
    recognizer: str = ""             # recognition checkpoint, run folder (its best/) or s3:// URI
    detector: str = ""               # ROI detection checkpoint; "" = each image is one line
    deskewer: str = ""               # orientation checkpoint; "" = the classical method; "off" = none
    device: str = "auto"             # auto (cuda when available) | cpu | cuda
    threads: int = 1                 # torch threads per stage replica
    max_batch_size: int = 16         # requests per Recognizer @serve.batch batch
    batch_wait_ms: float = 0.0       # wait to fill a batch (0: batches merge while the model is busy)
    min_score: float = 0.5           # ROI boxes below this score are dropped
    max_lines: int = 100             # lines read per page at most (best scores first)
    max_bytes: int = 10 * 1024 * 1024  # upload byte cap (413 above)
    max_pixels: int = 40_000_000     # width x height cap, checked before decoding (413 above)
    formats: list[str] = field(default_factory=lambda: list(ALLOWED_FORMATS))
    token_env: str = "OCR_SERVE_TOKEN"  # when this env var is set, requests need "Bearer <token>"
    host: str = "127.0.0.1"          # these three: ocr serve only (serve_config.yaml has http_options)
    port: int = 8000
    request_timeout_s: float = 30.0  # end-to-end HTTP timeout (408 past it)

    def __post_init__(self):
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

    def resolved(self) -> "ServeConfig":
        """The same config with local checkpoint paths made absolute (replicas may run
        elsewhere than the shell that started them)."""
        from ocr import storage

        def fix(path: str) -> str:
            return path if not path or path == NO_DESKEW or storage.is_s3(path) else os.path.abspath(path)

        return replace(self, recognizer=fix(self.recognizer), detector=fix(self.detector),
                       deskewer=fix(self.deskewer))

    def limits(self) -> UploadLimits:
        return UploadLimits(self.max_bytes, self.max_pixels, tuple(f.upper() for f in self.formats))

    def stage_config(self, checkpoint: str, **extra) -> dict:
        """A stage's user_config."""
        return {"checkpoint": checkpoint, "device": self.device, "threads": self.threads, **extra}

    def recognizer_config(self) -> dict:
        """The Recognizer's user_config: a stage's, with its batching."""
        return self.stage_config(self.recognizer, max_batch_size=self.max_batch_size,
                                 batch_wait_ms=self.batch_wait_ms)

    def check_checkpoints(self) -> None:
        """Refuse missing or wrong-task checkpoints before any replica starts."""
        from ocr.train import checkpoint

        wanted = {"recognizer": "recognition", "detector": "detection", "deskewer": "orientation"}
        for name, task in wanted.items():
            path = getattr(self, name)
            if not path or (name == "deskewer" and path == NO_DESKEW):
                continue
            try:
                found = checkpoint.read_meta(path)["task"]
            except FileNotFoundError as e:
                raise ConfigError(f"{name}: {e}") from None
            if found != task:
                raise ConfigError(f"{name}: {path} is a {found} checkpoint: expected {task}")

    def token(self) -> str:
        return os.environ.get(self.token_env, "") if self.token_env else ""

    def to_json(self) -> dict:
        return asdict(self)
