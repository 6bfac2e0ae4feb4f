"""The family table: for each task, where its parts live.

    family("detection").registry.create("ssdlite_mobilenetv2", num_classes=2)
    family(cfg.task).train_task(cfg)                       # what ``ocr train`` builds
    family(meta["task"]).reader.load(path)                 # LineReader, BoxReader, PageDeskewer
    f = family(meta["task"]); f.evaluate(f.eval_config(...))   # what ``ocr eval`` runs

A family is a task name (also a checkpoint's ``task`` and a shard folder's), its model
registry (:mod:`ocr.models`), its training task (:mod:`ocr.train`), its reader
(:mod:`ocr.infer`) and its evaluation (:mod:`ocr.eval`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ocr.config import ConfigError
from ocr.eval import detection as eval_detection
from ocr.eval import orientation as eval_orientation
from ocr.eval import recognition as eval_recognition
from ocr.infer import BoxReader, LineReader, PageDeskewer
from ocr.models import REGISTRIES
from ocr.models.registry import Registry
from ocr.train.config import TrainConfig
from ocr.train.detection import DetectionTask
from ocr.train.orientation import OrientationTask
from ocr.train.recognition import RecognitionTask
from ocr.train.task import TrainTask


@dataclass(frozen=True)
class Family:
    task: str
    registry: Registry                      # register, create, names; create(**arch) rebuilds
    train_task: type                        # a TrainTask, built from a TrainConfig
    reader: type                            # .load(checkpoint, device)
    eval_config: type                       # the config of ``evaluate``
    evaluate: Callable[..., dict]           # eval_config -> summary (also written to its output)
    summary_text: Callable[[dict], str]     # what ``ocr eval`` prints of that summary


FAMILIES: dict[str, Family] = {f.task: f for f in (
    Family("recognition", REGISTRIES["recognition"], RecognitionTask, LineReader,
           eval_recognition.EvalConfig, eval_recognition.evaluate, eval_recognition.summary_text),
    Family("detection", REGISTRIES["detection"], DetectionTask, BoxReader,
           eval_detection.DetectionEvalConfig, eval_detection.evaluate_detector, eval_detection.summary_text),
    Family("orientation", REGISTRIES["orientation"], OrientationTask, PageDeskewer,
           eval_orientation.OrientationEvalConfig, eval_orientation.evaluate_orienter,
           eval_orientation.summary_text),
)}


def family(task: str) -> Family:
    """The family of ``task``, or a ConfigError listing the tasks."""
    if task not in FAMILIES:
        raise ConfigError(f"task: expected one of {', '.join(FAMILIES)}, found {task!r}")
    return FAMILIES[task]


def make_task(cfg: TrainConfig) -> TrainTask:
    """The training task of ``cfg.task`` (refuses bad data or settings before any worker starts)."""
    return family(cfg.task).train_task(cfg)
