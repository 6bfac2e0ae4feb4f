"""Checkpoints: a folder with the weights, ``model.json`` and (for resuming) the train state.

    model.pt          state_dict of the model, loaded with ``weights_only=True``
    model.json        the contract (below): all a reader needs to rebuild and feed the model
    train_state.pt    optimiser, scheduler, scaler and counters (only in training checkpoints)

``model.json``::

    format       "ocr-on-ray/1"
    task         "recognition" | "detection" | "orientation"
    arch         the registry's arch_config(): {"name": preset, **parameters}
    charset      Charset.to_json() (symbols, spec, hash), or null
    preprocess   Preprocess.to_json(): height, width, keep_ratio, pad, channels, mean, std
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
from pathlib import Path

import torch

from ocr import storage

FORMAT = "ocr-on-ray/1"
MODEL_FILE, META_FILE, STATE_FILE = "model.pt", "model.json", "train_state.pt"


def versions() -> dict:
    import ray

    import ocr

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


def resolve(path: str) -> str:
    """A checkpoint folder from a checkpoint, or a run folder (its ``best``)."""
    s3 = storage.S3Settings.from_env()
    if storage.exists(storage.join(path, META_FILE), s3):
        return path
    best = storage.join(path, "best")
    if storage.exists(storage.join(best, META_FILE), s3):
        return best
    raise FileNotFoundError(f"{path}: expected a checkpoint folder with {META_FILE} "
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


def read_meta(path: str) -> dict:
    path = resolve(path)
    meta = json.loads(storage.read_text(storage.join(path, META_FILE), storage.S3Settings.from_env()))
    if meta.get("format") != FORMAT:
        raise ValueError(f"{path}/{META_FILE}: expected format {FORMAT!r}, found {meta.get('format')!r}")
    return meta


def build_model(meta: dict) -> torch.nn.Module:
    """An untrained model of the architecture that ``meta`` describes."""
    task = meta["task"]
    if task == "recognition":
        from ocr.models.recognition import create_recognizer

        return create_recognizer(**meta["arch"])
    if task == "detection":
        from ocr.models.detection import create_detector

        return create_detector(**meta["arch"])
    if task == "orientation":
        from ocr.models.orientation import build_orienter

        return build_orienter(meta["arch"])
    raise ValueError(f"unknown task {task!r} in model.json: expected recognition, detection or orientation")


def preferred_layout(model: torch.nn.Module) -> torch.nn.Module:
    """The model in channels-last memory when its ``channels_last`` hint asks for it (faster
    convolutions on the CPU for those models; the same numbers either way)."""
    return model.to(memory_format=torch.channels_last) if getattr(model, "channels_last", False) else model


def load(path: str, device: str | torch.device = "cpu") -> tuple[torch.nn.Module, dict]:
    """(model in eval mode, model.json) from a checkpoint folder, run folder or s3:// URI."""
    folder = local_copy(path)
    meta = read_meta(str(folder))
    model = build_model(meta)
    weights = torch.load(folder / MODEL_FILE, map_location=device, weights_only=True)
    model.load_state_dict(weights)
    return model.to(device).eval(), meta


def ranks_before(score: float, other: float, mode: str) -> bool:
    """Whether a validation ``score`` ranks strictly below ``other`` (``mode``: min or max).
    Equal scores do not: of two equal validations the later is the best, as Ray Train's
    checkpoint ranking keeps the later one, so the training log and RUN/best name one step."""
    return score > other if mode == "min" else score < other


def best_of(results: list, metric: str, mode: str):
    """The best ``(checkpoint, metrics)`` by ``metric``; of equal ones, the later step."""
    sign = 1 if mode == "min" else -1
    return min(results, key=lambda r: (sign * r[1][metric], -r[1].get("step", 0)))
