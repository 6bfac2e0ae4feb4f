"""``ocr train``: the typed config of a training run (any task; one loop runs them all)."""

from __future__ import annotations

from dataclasses import dataclass

import yaml

from ocr.config import ConfigError, absolute_paths, opt

TASKS = ("recognition", "detection", "orientation")
OPTIMIZERS = ("adamw", "adadelta")
SCHEDULES = ("cosine", "constant", "onecycle")
PRECISIONS = ("auto", "fp32", "bf16")
PLACEMENTS = ("PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD")  # Ray placement-group strategies


@dataclass
class TrainConfig:
    """One training run. ``data`` is a shard folder written by ``ocr ingest`` or ``ocr synth``."""

    task: str = opt("recognition", "what to train: a text-line recogniser, a box detector, or a "
                    "deskew/orientation model", choices=TASKS)
    data: str = opt("", "shard folder to train on (manifest.json, from `ocr ingest` or `ocr synth`), "
                    "local or s3://", path="input")
    val_data: str = opt("", "another shard folder to validate on (default: --data)", path="input")
    train_split: str = opt("train", "split of --data to train on")
    val_split: str = opt("val", "split to validate on")
    target: str = opt("", "detection: the box label to learn: line (ROI, default), word, char (one "
                      "class per charset symbol, on line crops) or any other label of the data")
    model: str = opt("", "model preset (see `ocr models`); default: the task's default")
    model_set: list[str] = opt(factory=list, metavar="KEY=VALUE",
                               help="preset parameters to change, such as hidden=64")
    height: int = opt(0, "input height in pixels; 0: the task's default (lines 32, pages 320)")
    width: int = opt(0, "input width in pixels (the padded width with --keep-ratio); 0: the default")
    keep_ratio: bool = opt(True, "recognition: keep each line's aspect ratio and pad the rest")
    trim: float = opt(0.1, "recognition: cut the background around each line's ink before "
                      "resizing, leaving this fraction of the ink's height (in training and in "
                      "every use of the model, so loose crops read as tight ones); 0: off")
    channels: int = opt(0, "input channels: 1 grey or 3 RGB; 0: the task's default")
    batch_size: int = opt(64, "samples per step on each worker (the global batch is workers x this)")
    epochs: int = opt(10, "passes over the training split")
    max_steps: int = opt(0, "optimiser steps in all; 0: --epochs decides")
    max_minutes: float = opt(0.0, "stop (validating and checkpointing) after this many minutes, the "
                             "learning-rate schedule ending with it (or with the steps, if first); 0: "
                             "no limit")
    optimizer: str = opt("adamw", "the optimiser that updates the weights", choices=OPTIMIZERS)
    lr: float = opt(1e-3, "peak learning rate")
    weight_decay: float = opt(1e-4, "decoupled weight decay of the optimiser (an L2 pull towards 0)")
    schedule: str = opt("cosine", "learning-rate schedule after the warm-up", choices=SCHEDULES)
    warmup_steps: int = opt(100, "steps of linear warm-up (at most a tenth of the run)")
    grad_clip: float = opt(5.0, "largest gradient norm; 0: no clipping")
    ema: float = opt(0.995, "decay per step of an exponential moving average of the weights, which "
                     "validation, checkpoints and serving use; 0: off")
    precision: str = opt("auto", "arithmetic: auto is bf16 on CUDA where supported, else fp32",
                         choices=PRECISIONS)
    augment: float = opt(0.5, "online augmentation strength, 0 (off) to 1")
    shuffle_buffer: int = opt(512, "rows in each worker's local shuffle buffer; 0: no shuffle")
    val_every: int = opt(200, "validate and checkpoint every this many steps (and at the end)")
    log_every: int = opt(20, "print a progress line every this many steps")
    max_bad_steps: int = opt(20, "stop after this many NaN/inf steps in a row")
    num_workers: int = opt(1, "Ray Train workers (processes, one model replica each)")
    use_gpu: bool = opt(False, "give each worker one GPU (NCCL); default: CPU (gloo)")
    cpus_per_worker: float = opt(0.0, "CPUs per worker; 0: share the CPUs, leaving half a CPU for "
                                 "Ray Data")
    placement_strategy: str = opt("PACK", "where workers go: PACK fills a node first, SPREAD puts one "
                                  "per node", choices=PLACEMENTS)
    storage: str = opt("runs", "folder (or s3:// URI) that holds the run folders", path="output")
    name: str = opt("", "run name, the folder under --storage; default: TASK-MODEL-TIMESTAMP. An "
                    "existing run of that name resumes")
    max_failures: int = opt(3, "worker failures to recover from, each from the latest checkpoint")
    init_from: str = opt("", "checkpoint (or run folder) whose weights to fine-tune from",
                         path="checkpoint")
    extend_charset: bool = opt(False, "with --init-from: add the data's new symbols to the "
                               "checkpoint's charset (old classes keep their rows)")
    seed: int = opt(0, "random seed of the weights, shuffling and augmentation")
    num_cpus: int | None = opt(None, "CPUs of the local Ray started for the run (default: all; "
                               "ignored when joining a running Ray)")
    tracking: bool = opt(True, "record the run in MLflow (params, metrics, artifacts); "
                         "--no-tracking: only the run folder's files")
    tracking_uri: str = opt("", metavar="URI", help="MLflow tracking URI (a team's http:// server, "
                            "sqlite:///FILE, a folder); default: MLFLOW_TRACKING_URI, else "
                            "STORAGE/mlflow.db")
    experiment: str = opt("", metavar="NAME", help="MLflow experiment of the run; default: ocr-TASK")
    register_model: str = opt("", metavar="NAME", help="register the run's best checkpoint as a new "
                              "version of this model in the MLflow registry (then served as "
                              "models:/NAME/VERSION)")
    fault_at_step: int = opt(0, "tests: the last worker exits once at this step (0: never)", hidden=True)
    nan_at_step: int = opt(0, "tests: the loss is NaN from this step on (0: never)", hidden=True)

    def __post_init__(self):
        absolute_paths(self)
        checks = [("optimizer", OPTIMIZERS), ("schedule", SCHEDULES), ("precision", PRECISIONS),
                  ("placement_strategy", PLACEMENTS)]
        for name, allowed in checks:
            if getattr(self, name) not in allowed:
                raise ConfigError(f"{name}: expected one of {allowed}, found {getattr(self, name)!r}")
        for name in ("batch_size", "val_every", "log_every", "max_bad_steps", "num_workers"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name}: expected a positive number, found {getattr(self, name)}")
        for name in ("height", "width", "epochs", "max_steps", "max_minutes", "warmup_steps",
                     "grad_clip", "shuffle_buffer", "cpus_per_worker"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name}: expected >= 0, found {getattr(self, name)}")
        if self.epochs == 0 and self.max_steps == 0:
            raise ConfigError("epochs and max_steps are both 0: expected one of them to be positive")
        if not 0 <= self.ema < 1:
            raise ConfigError(f"ema: expected a decay in [0, 1) (0: off), found {self.ema}")
        if not 0 <= self.augment <= 1:
            raise ConfigError(f"augment: expected a strength in [0, 1], found {self.augment}")
        if not 0 <= self.trim <= 1:
            raise ConfigError(f"trim: expected a fraction of the ink's height in [0, 1] (0: off), "
                              f"found {self.trim}")
        if self.lr <= 0:
            raise ConfigError(f"lr: expected a positive learning rate, found {self.lr}")
        if self.channels not in (0, 1, 3):
            raise ConfigError(f"channels: expected 1 or 3 (0: the task's default), found {self.channels}")
        if self.extend_charset and not self.init_from:
            raise ConfigError("extend_charset needs init_from: the checkpoint whose charset to extend")
        if not self.data:
            raise ConfigError("data: expected a shard folder (from `ocr ingest` or `ocr synth`)")

    def model_overrides(self) -> dict:
        """``model_set`` as a dict of parsed values (``hidden=64`` -> ``{"hidden": 64}``)."""
        out = {}
        for pair in self.model_set:
            key, sep, value = pair.partition("=")
            if not sep:
                raise ConfigError(f"model_set {pair!r}: expected KEY=VALUE")
            parsed = yaml.safe_load(value)
            out[key.strip().replace("-", "_")] = tuple(parsed) if isinstance(parsed, list) else parsed
        return out
