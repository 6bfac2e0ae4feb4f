"""The one place that reads and writes checkpoints: a folder with the weights, ``model.json``
and (for resuming) the train state.

    meta = checkpoint.read_meta("runs/my-run", task="recognition")   # a run folder: its best/
    model, meta = checkpoint.load("s3://bucket/ckpt", task="detection")

A checkpoint is named by a checkpoint folder, a run folder (its ``best/``), an ``s3://`` URI of
either, ``builtin:NAME`` (a model shipped in the package, :data:`BUILTIN_DIR`) or
``models:/NAME/VERSION`` (a version in the MLflow model registry, :mod:`ocr.tracking`). Asking
for a ``task`` refuses any other task's checkpoint, and every reader checks that the charset
is whole and matches the model's classes, with one :class:`CheckpointError` that names the
checkpoint, what was expected and what was found.

    model.pt          state_dict of the model, loaded with ``weights_only=True``
    model.json        the contract (below): all a reader needs to rebuild and feed the model
    train_state.pt    optimiser, scheduler, scaler and counters (only in training checkpoints)

``model.json``::

    format       "ocr-on-ray/1"
    task         "recognition" | "detection" | "orientation"
    arch         the registry's record: ``REGISTRIES[task].create(**arch)`` rebuilds the model
    charset      Charset.to_json() (symbols, spec, hash), or null
    preprocess   the preprocessing's to_json() (sizes, channels, normalisation)
    metrics      validation metrics at this checkpoint
    step, epoch  counters at this checkpoint
    config       the resolved training config
    versions     ocr, torch, ray, python

Serving, evaluation, export and fine-tuning read preprocessing and charset from here.
"""

from __future__ import annotations

import json
import platform
import tempfile
from importlib import resources
from pathlib import Path

import torch

import ocr
from ocr import storage, tracking
from ocr.charset import Charset, CharsetError
from ocr.config import ConfigError
from ocr.models import REGISTRIES
from ocr.paths import BUILTIN, REGISTERED

FORMAT = "ocr-on-ray/1"
MODEL_FILE, META_FILE, STATE_FILE = "model.pt", "model.json", "train_state.pt"
BUILTIN_DIR = "weights"          # ocr/weights/NAME/{model.pt, model.json}


class CheckpointError(ConfigError):
    """A checkpoint that is missing, of another task, or inconsistent."""


def versions() -> dict:
    import ray  # lazy: Ray takes a second to import and only a writer needs its version

    return {"ocr": ocr.__version__, "torch": torch.__version__, "ray": ray.__version__,
            "python": platform.python_version()}


def save(folder: str | Path, model: torch.nn.Module, meta: dict, state: dict | None = None) -> None:
    """Write a checkpoint folder (local). ``meta`` is model.json without format/versions."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), folder / MODEL_FILE)
    meta = {"format": FORMAT, **meta, "versions": versions()}
    (folder / META_FILE).write_text(json.dumps(meta, ensure_ascii=False, indent=1) + "\n", "utf-8")
    if state is not None:
        torch.save(state, folder / STATE_FILE)


def builtin_names() -> list[str]:
    """Names of the models shipped in the package (``builtin:NAME``)."""
    root = resources.files(ocr) / BUILTIN_DIR
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if (p / META_FILE).is_file())


def _builtin(path: str) -> str:
    name = path[len(BUILTIN):]
    if name not in builtin_names():
        raise CheckpointError(f"{path}: expected one of the built-in models "
                              f"{builtin_names() or '(none in this install)'}, found no {name!r}")
    return str(resources.files(ocr) / BUILTIN_DIR / name)


def _registered(path: str) -> str:
    try:
        return tracking.download_registered(path)
    except Exception as e:  # noqa: BLE001 - any registry failure is a checkpoint that cannot be read
        raise CheckpointError(f"{path}: the MLflow model registry did not give it "
                              f"({type(e).__name__}: {' '.join(str(e).split())[:300]})") from None


def resolve(path: str) -> str:
    """A checkpoint folder from a checkpoint, a run folder (its ``best``), ``builtin:NAME`` or
    ``models:/NAME/VERSION`` (the MLflow registry of MLFLOW_TRACKING_URI, downloaded once)."""
    if str(path).startswith(BUILTIN):
        return _builtin(str(path))
    if str(path).startswith(REGISTERED):
        return _registered(str(path))
    s3 = storage.S3Settings.from_env()
    if storage.exists(storage.join(path, META_FILE), s3):
        return path
    best = storage.join(path, "best")
    if storage.exists(storage.join(best, META_FILE), s3):
        return best
    raise CheckpointError(f"{path}: expected a checkpoint folder with {META_FILE} "
                          f"(or a run folder with best/{META_FILE}), found neither")


def local_copy(path: str) -> Path:
    """A local folder holding the checkpoint at ``path`` (downloaded when it is on s3://)."""
    path = resolve(path)
    if not storage.is_s3(path):
        return Path(path)
    s3 = storage.S3Settings.from_env()
    tmp = Path(tempfile.mkdtemp(prefix="ocr-ckpt-"))
    for name in (MODEL_FILE, META_FILE):
        (tmp / name).write_bytes(storage.read_bytes(storage.join(path, name), s3))
    return tmp


def read_meta(path: str, task: str | None = None) -> dict:
    """``model.json`` of the checkpoint at ``path``, checked: its format, its ``task`` (when
    one is asked for) and its charset."""
    return _checked_meta(path, resolve(path), task)


def _checked_meta(path: str, folder: str, task: str | None) -> dict:
    """model.json of the resolved checkpoint ``folder`` (named ``path`` in messages), checked."""
    meta = json.loads(storage.read_text(storage.join(folder, META_FILE), storage.S3Settings.from_env()))
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{folder}/{META_FILE}: expected format {FORMAT!r}, "
                              f"found {meta.get('format')!r}")
    if meta.get("task") not in REGISTRIES:
        raise CheckpointError(f"{path}: expected a task of {sorted(REGISTRIES)} in {META_FILE}, "
                              f"found {meta.get('task')!r}")
    if task is not None and meta["task"] != task:
        raise CheckpointError(f"{path} is a {meta['task']} checkpoint: expected {task}")
    _check_charset(path, meta)
    registered = None if storage.is_s3(folder) else tracking.registered_as(folder)
    return {**meta, "registered": registered} if registered else meta


def charset_of(meta: dict) -> Charset | None:
    """The checkpoint's charset (None for models without one)."""
    return Charset.from_json(meta["charset"]) if meta.get("charset") else None


def _check_charset(path: str, meta: dict) -> None:
    """A recognition or char-detection checkpoint needs a whole charset with one class per
    symbol (plus the blank / background)."""
    needs = meta["task"] == "recognition" or (meta["task"] == "detection" and meta.get("target") == "char")
    try:
        charset = charset_of(meta)
    except (CharsetError, KeyError, TypeError) as e:
        raise CheckpointError(f"{path}: its charset is damaged ({e})") from None
    if charset is None:
        if needs:
            raise CheckpointError(f"{path}: expected a charset in {META_FILE} for a "
                                  f"{meta['task']} model, found none")
        return
    classes = (meta.get("arch") or {}).get("num_classes")
    if classes is not None and classes != charset.num_classes:
        raise CheckpointError(f"{path}: its charset has {len(charset.symbols)} symbols but the model "
                              f"has {classes} classes: expected {charset.num_classes} (symbols + 1)")


def build_model(meta: dict) -> torch.nn.Module:
    """An untrained model of the architecture that ``meta`` describes."""
    return REGISTRIES[meta["task"]].create(**meta["arch"])


def weights(path: str, device: str | torch.device = "cpu") -> dict:
    """The state_dict of the checkpoint at ``path`` (fine-tuning starts from it)."""
    return torch.load(local_copy(path) / MODEL_FILE, map_location=device, weights_only=True)


def preferred_layout(model: torch.nn.Module) -> torch.nn.Module:
    """The model in channels-last memory when its ``channels_last`` hint asks for it (faster
    convolutions on the CPU for those models; the same numbers either way)."""
    return model.to(memory_format=torch.channels_last) if getattr(model, "channels_last", False) else model


def load(path: str, task: str | None = None,
         device: str | torch.device = "cpu") -> tuple[torch.nn.Module, dict]:
    """(model in eval mode, model.json) from a checkpoint folder, run folder, s3:// URI or
    ``builtin:NAME``; ``task`` as in :func:`read_meta`."""
    folder = local_copy(path)           # resolved once, downloaded once (s3://)
    meta = _checked_meta(path, str(folder), task)
    model = build_model(meta)
    model.load_state_dict(torch.load(folder / MODEL_FILE, map_location=device, weights_only=True))
    return model.to(device).eval(), meta
