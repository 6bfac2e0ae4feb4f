"""What the one training loop needs from a model family: the :class:`TrainTask` protocol, and
:class:`TaskBase`, the parts the three tasks share.

A task is built on the driver from the :class:`TrainConfig` (reading the manifest and
refusing a bad config before any worker starts), then shipped to the workers, where the
loop calls the protocol's methods. The families' tasks are listed in :mod:`ocr.families`.
"""

from __future__ import annotations

from typing import Any, ClassVar, Protocol, runtime_checkable

import ray.train
import torch

from ocr import checkpoint
from ocr.config import ConfigError
from ocr.data.loader import read_split
from ocr.train.config import TrainConfig


@runtime_checkable
class TrainTask(Protocol):
    """The contract between a model family and the training loop."""

    name: ClassVar[str]                 # the checkpoint's task: recognition, detection, orientation
    metric: ClassVar[str]               # the validation metric that picks the best checkpoint
    mode: ClassVar[str]                 # "min" or "max" of ``metric``
    cfg: TrainConfig
    train_rows: int                     # rows of the training split (for the schedule)
    val_columns: list[str]              # the metrics ``val_metrics`` returns
    extra_names: list[str]              # names of the extra sums ``loss`` returns

    def datasets(self) -> dict:
        """``{"train": ray.data.Dataset}`` for the trainer (on the driver)."""

    def model_meta(self) -> dict:
        """model.json's task, arch, charset and preprocess (and the family's own keys)."""

    def build_model(self) -> torch.nn.Module:
        """The model, fine-tuning weights already loaded (in a worker)."""

    def train_batches(self, epoch: int, skip_ids: frozenset[int]):
        """This worker's batches: dicts of CPU tensors, ``ids`` included."""

    def loss(self, model, batch: dict, device, gen: torch.Generator) -> tuple[torch.Tensor, list[float]]:
        """(mean loss, extra sums) of a CPU batch: moved to ``device``, augmented with ``gen``."""

    def validate(self, model, device) -> Any:
        """This worker's validation results (any picklable value)."""

    def val_metrics(self, parts: list) -> dict:
        """Metrics from every worker's ``validate`` result (rank order)."""


class TaskBase:
    """Shared by the tasks: the training data, the fine-tuning checkpoint, the model, the
    training batches.

    A subclass sets ``name``, ``columns`` (the training split's columns its collate reads)
    and ``large_samples`` (pages: the local shuffle buffer holds at most 8 batches of them)
    and defines ``collate(seed, skip_ids)``; it may override ``init_weights`` (recognition
    grows its classifier for new symbols)."""

    name: ClassVar[str]
    large_samples: ClassVar[bool] = False
    cfg: TrainConfig
    columns: list[str]

    def datasets(self) -> dict:
        """Training data streams through Ray Data; validation is read by each worker."""
        return {"train": read_split(self.cfg.data, self.cfg.train_split, self.columns)}

    def init_meta(self) -> dict:
        """model.json of ``cfg.init_from``, refused unless it is a checkpoint of this task."""
        try:
            return checkpoint.read_meta(self.cfg.init_from, task=self.name)
        except ConfigError as e:
            raise ConfigError(f"init_from: {e}") from None

    def build_model(self) -> torch.nn.Module:
        model = checkpoint.build_model(self.model_meta())
        if self.cfg.init_from:
            model.load_state_dict(self.init_weights(model, checkpoint.weights(self.cfg.init_from)))
        return model

    def init_weights(self, model: torch.nn.Module, old: dict) -> dict:
        """The state_dict to start fine-tuning from, given the checkpoint's."""
        return old

    def collate(self, seed: int, skip_ids: frozenset[int]):
        """The collate of this epoch's batches (``seed``: the epoch's, for random crops)."""
        raise NotImplementedError

    def train_batches(self, epoch: int, skip_ids: frozenset[int]):
        """This worker's shard of the training split, shuffled locally with a seed per epoch,
        collated (minus ``skip_ids``, already trained this epoch) into CPU tensors."""
        cfg, seed = self.cfg, self.cfg.seed * 1000 + epoch
        buffer = cfg.shuffle_buffer or None
        if self.large_samples:
            buffer = min(cfg.shuffle_buffer, 8 * cfg.batch_size) or None
        shard = ray.train.get_dataset_shard("train")
        return shard.iter_torch_batches(batch_size=cfg.batch_size, collate_fn=self.collate(seed, skip_ids),
                                        local_shuffle_buffer_size=buffer, local_shuffle_seed=seed)
