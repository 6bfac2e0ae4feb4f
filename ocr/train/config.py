"""``ocr train``: the typed config of a training run (any task; one loop runs them all)."""

from __future__ import annotations

from dataclasses import dataclass, field

from ocr.config import ConfigError

OPTIMIZERS = ("adamw", "adadelta")
SCHEDULES = ("cosine", "constant", "onecycle")
PRECISIONS = ("auto", "fp32", "bf16")
PLACEMENTS = ("PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD")  # Ray placement-group strategies


@dataclass
class TrainConfig:
    """One training run. ``data`` is a shard folder written by ``ocr ingest`` or ``ocr synth``."""

    task: str = "recognition"
    data: str = ""                   # shard folder (manifest.json), local or s3://
    val_data: str = ""               # another shard folder to validate on (default: data)
    train_split: str = "train"
    val_split: str = "val"
    # detection: the box label to learn: line (ROI, default) | word | char (one class per
    # charset symbol, on line crops); any other label of the data (e.g. LabelMe's "text") too
    target: str = ""
    model: str = ""                  # preset name (see `ocr models`); empty: the task's default
    model_set: list[str] = field(default_factory=list)   # preset parameters, KEY=VALUE
    height: int = 0                  # input height; 0: the task's default (lines 32, pages 320)
    width: int = 0                   # input width (the padded width with keep_ratio); 0: default
    keep_ratio: bool = True          # recognition: keep the line's aspect ratio, pad the rest
    channels: int = 0                # 1 grey or 3 RGB; 0: the task's default
    batch_size: int = 64             # per worker
    epochs: int = 10
    max_steps: int = 0               # optimiser steps in all; 0: `epochs` decides
    max_minutes: float = 0.0         # stop (validating and checkpointing) after this long, the
                                     # schedule ending with it (or with the steps, if first); 0: no limit
    optimizer: str = "adamw"         # adamw | adadelta
    lr: float = 1e-3
    weight_decay: float = 1e-4
    schedule: str = "cosine"         # cosine | constant | onecycle
    warmup_steps: int = 100          # linear warm-up, at most a tenth of the run
    grad_clip: float = 5.0           # max gradient norm; 0 disables
    ema: float = 0.995               # decay per step of an exponential moving average of the
                                     # weights, which validation, checkpoints and so serving use; 0: off
    precision: str = "auto"          # auto (bf16 on CUDA where supported, else fp32) | fp32 | bf16
    augment: float = 0.5             # online augmentation strength, 0 (off) to 1
    shuffle_buffer: int = 512        # rows in each worker's local shuffle buffer; 0: no shuffle
    val_every: int = 200             # validate and checkpoint every N steps (and at the end)
    log_every: int = 20              # progress line every N steps
    max_bad_steps: int = 20          # stop after this many NaN/inf steps in a row
    num_workers: int = 1
    use_gpu: bool = False
    cpus_per_worker: float = 0.0     # 0: share the CPUs, leaving half a CPU for Ray Data
    placement_strategy: str = "PACK"  # workers on as few nodes as fit (PACK) or one per node (SPREAD)
    storage: str = "runs"            # root of run folders, local or s3://
    name: str = ""                   # run name; empty: TASK-MODEL-TIMESTAMP. An existing run resumes.
    max_failures: int = 3            # worker failures to recover from (from the latest checkpoint)
    init_from: str = ""              # checkpoint (or run folder) to fine-tune from
    extend_charset: bool = False     # with init_from: add the data's new symbols to the old charset
    seed: int = 0
    num_cpus: int | None = None      # CPUs of a local Ray started for the run
    fault_at_step: int = 0           # tests: the last worker exits once at this step (0: never)
    nan_at_step: int = 0             # tests: the loss is NaN from this step on (0: never)

    def __post_init__(self):
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
        import yaml

        out = {}
        for pair in self.model_set:
            key, sep, value = pair.partition("=")
            if not sep:
                raise ConfigError(f"model_set {pair!r}: expected KEY=VALUE")
            parsed = yaml.safe_load(value)
            out[key.strip().replace("-", "_")] = tuple(parsed) if isinstance(parsed, list) else parsed
        return out
