"""The serving config: what ``build_app`` takes (``args`` in serve_config.yaml, flags of ``ocr serve``)."""

from __future__ import annotations

import hashlib
import ipaddress
import os
import socket
from dataclasses import asdict, dataclass

from ocr.config import ConfigError, absolute_paths, opt
from ocr.data.images import ALLOWED_FORMATS
from ocr.paths import REGISTERED
from ocr.serve.uploads import UploadLimits

NO_DESKEW = "off"
NO_DETECTOR = "off"
CLASSICAL = "lines"   # ocr.infer.layout.CLASSICAL, the line finder (not imported: it pulls in torch)
DEFAULT_RECOGNIZER = "builtin:korean"   # ocr read's default language: Hangul, Latin, digits
TOKEN_SALT = "ocr-serve-token-v1"
MIN_TOKEN_CHARS = 16   # shorter tokens are refused: guessable, and their digest could be searched


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
    max_pages: int = opt(4, "decoded pixels in flight per ingress replica: this many pages at the "
                         "pixel cap (many more small images); more wait, holding their bodies only. "
                         "With max_bytes and max_ongoing_requests it bounds a replica's memory (README)")
    formats: list[str] = opt(factory=lambda: list(ALLOWED_FORMATS), metavar="FORMAT",
                             help="image formats accepted, by their magic bytes (415 otherwise)")
    token_env: str = opt("OCR_SERVE_TOKEN", "environment variable holding the API token: when it is "
                         "set, requests need Authorization: Bearer <token>. Only a salted digest "
                         "of it reaches Ray (never runtime_env or job records)")
    host: str = opt("127.0.0.1", "address to listen on (ocr serve only; serve_config.yaml has "
                    "http_options). Beyond loopback it needs the token, or --insecure")
    insecure: bool = opt(False, "serve beyond loopback without a token: anyone who reaches the "
                         "port can use the service (off: such a deployment is refused)")
    port: int = opt(8000, "HTTP port (ocr serve only)")
    request_timeout_s: float = opt(30.0, "end-to-end HTTP timeout in seconds (408 past it)")

    def __post_init__(self):
        absolute_paths(self)
        if not self.recognizer:
            raise ConfigError("recognizer: expected a recognition checkpoint, found none")
        if not 0 <= self.min_score <= 1:
            raise ConfigError(f"min_score: expected a score in [0, 1], found {self.min_score}")
        for name in ("threads", "max_batch_size", "max_lines", "max_pages"):
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
        """Refuse missing, wrong-task or damaged checkpoints (weights that do not fit their
        model.json) before any replica starts or changes."""
        from ocr import checkpoint  # lazy: torch, which building the CLI's parser must not import

        wanted = {"recognizer": "recognition", "detector": "detection", "deskewer": "orientation"}
        for name, task in wanted.items():
            path = getattr(self, name)
            if not path or (name == "deskewer" and path == NO_DESKEW) or (name == "detector" and
                                                                        path in (CLASSICAL, NO_DETECTOR)):
                continue
            try:
                if path.startswith(REGISTERED):   # downloaded here: the replicas read the copy
                    path = checkpoint.resolve(path)
                    setattr(self, name, path)
                checkpoint.load(path, task)   # model.json checked, and the weights fit it (head, charset)
            except ConfigError as e:
                raise ConfigError(f"{name}: {e}") from None
            except Exception as e:  # noqa: BLE001 - weights that do not load: refused, said why
                raise ConfigError(f"{name}: {path} does not load ({type(e).__name__}: {e}); the "
                                  f"running deployment, if any, is left as it is") from None

    def token(self) -> str:
        """The token, from the builder's environment; refused when too short to be a secret."""
        token = os.environ.get(self.token_env, "") if self.token_env else ""
        if token and len(token) < MIN_TOKEN_CHARS:
            raise ConfigError(f"${self.token_env}: expected a token of at least {MIN_TOKEN_CHARS} "
                              f"characters, found {len(token)}: make one with "
                              f"`export {self.token_env}=$(openssl rand -hex 32)`")
        return token

    def check_exposure(self, hosts: set[str]) -> None:
        """Refuse (ConfigError) to listen on an address beyond loopback with no token, unless
        ``insecure``: before any deployment starts."""
        exposed = sorted(h for h in hosts if not is_loopback(h))
        if exposed and not self.token() and not self.insecure:
            raise ConfigError(
                f"host {', '.join(exposed)}: listening beyond this machine needs a token, found "
                f"${self.token_env or 'OCR_SERVE_TOKEN'} unset. Set one in the environment that "
                f"builds the app (`export {self.token_env or 'OCR_SERVE_TOKEN'}=$(openssl rand "
                f"-hex 32)`; on a cluster, on every node: cluster.yaml, the KubeRay secret), "
                f"listen on 127.0.0.1, or opt out with --insecure (insecure: true in args)")

    def token_digest(self) -> dict | None:
        """What the ingress checks requests against: a salted SHA-256 of the token (None: no
        auth). The token itself never leaves the builder's process. The salt is fixed, so a
        redeploy with the same token leaves the ingress's arguments, and the ingress, as they
        were; tokens of MIN_TOKEN_CHARS or more are beyond searching their digest."""
        token = self.token()
        return {"salt": TOKEN_SALT, "sha256": token_sha256(TOKEN_SALT, token)} if token else None

    def to_json(self) -> dict:
        return asdict(self)


def token_sha256(salt: str, token: str) -> str:
    return hashlib.sha256(f"{salt}:{token}".encode()).hexdigest()


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address or a name) is this machine only; names that do not
    resolve, or resolve to any other address, are not."""
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None)
    except (socket.gaierror, UnicodeError):
        return False
    return bool(infos) and all(ipaddress.ip_address(info[4][0].split("%")[0]).is_loopback
                               for info in infos)
