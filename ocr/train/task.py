"""What the one training loop needs from a model family.

A task is built on the driver from the :class:`TrainConfig` (reading the manifest and
refusing a bad config before any worker starts), then shipped to the workers, where the
loop calls:

    datasets()                       {"train": Dataset, "val": Dataset} for the trainer
    build_model()                    the model (fine-tuning weights already loaded)
    train_batches(epoch, skip_ids)   this worker's batches: dicts of CPU tensors, "ids" included
    loss(model, batch, device, gen)  (mean loss, extra sums) of a CPU batch: moved, augmented
    extra_names                      names of those extra sums (e.g. unalignable samples)
    validate(model, device)          this worker's validation results (any picklable value)
    val_metrics(parts)               metrics from every worker's ``validate`` result (rank order)
    val_columns, metric, mode        metric names; the one that picks the best checkpoint
    model_meta()                     model.json's task, arch, charset and preprocess
"""

from __future__ import annotations

import numpy as np

from ocr.config import ConfigError
from ocr.data.shards import read_manifest
from ocr.train.config import TrainConfig


def ids_to_ints(ids) -> np.ndarray:
    """16-hex-digit sample ids to int64 (the same 64 bits), so they travel in tensors."""
    return np.array([int(str(i)[:16], 16) for i in ids], dtype=np.uint64).view(np.int64)


def numpy_collate(cls, *args, **kwargs):
    """An instance of collate class ``cls`` that Ray Data's ``iter_torch_batches`` feeds numpy."""
    from ray.data.collate_fn import NumpyBatchCollateFn

    return type(cls.__name__, (cls, NumpyBatchCollateFn), {})(*args, **kwargs)


def val_batches(cfg: TrainConfig, columns: list[str]):
    """This worker's slice (rows rank::world) of the validation split, read straight from the
    shards, as numpy batches of ``cfg.batch_size`` rows (a small split: a Ray Data pass per
    validation would cost seconds of start-up on every call). Cached in the worker process."""
    import pyarrow as pa

    from ocr.data.shards import read_rows
    from ocr.train.dist import rank_and_world

    data = cfg.val_data or cfg.data
    rank, world = rank_and_world()
    key = (data, cfg.val_split, tuple(columns), rank, world)
    if key not in _VAL_CACHE:
        table = pa.concat_tables(read_rows(data, cfg.val_split, columns))
        # typed indices: a worker with no rows (fewer val rows than workers) takes an empty slice
        _VAL_CACHE[key] = table.take(pa.array(range(rank, table.num_rows, world), type=pa.int64()))
    table = _VAL_CACHE[key]
    for start in range(0, table.num_rows, cfg.batch_size):
        part = table.slice(start, cfg.batch_size)
        yield {k: part.column(k).to_numpy(zero_copy_only=False) for k in columns}


_VAL_CACHE: dict = {}


def _manifest(data: str) -> dict:
    try:
        return read_manifest(data)
    except FileNotFoundError:
        raise ConfigError(f"data {data}: expected a shard folder with manifest.json "
                          f"(from `ocr ingest` or `ocr synth`), found none") from None


def _check_split(data: str, manifest: dict, split: str) -> None:
    per_split = manifest["counts"]["per_split"]
    if per_split.get(split, {}).get("written", 0) == 0:
        found = {k: v["written"] for k, v in per_split.items()}
        raise ConfigError(f"data {data} has no {split!r} samples: found {found}. "
                          "Ingest with a split ratio for it, or name another split.")


def load_manifests(cfg: TrainConfig, task: str) -> tuple[dict, dict]:
    """(training manifest, validation manifest), refused unless both hold ``task`` samples
    in the named splits."""
    manifests = []
    for data, split in ((cfg.data, cfg.train_split), (cfg.val_data or cfg.data, cfg.val_split)):
        manifest = _manifest(data)
        if manifest["task"] != task:
            raise ConfigError(f"data {data} holds {manifest['task']} shards: expected {task}")
        _check_split(data, manifest, split)
        manifests.append(manifest)
    return manifests[0], manifests[1]


def split_rows(manifest: dict, split: str) -> int:
    return int(manifest["counts"]["per_split"][split]["written"])


def make_task(cfg: TrainConfig):
    """The task object for ``cfg.task``."""
    if cfg.task == "recognition":
        from ocr.train.recognition import RecognitionTask

        return RecognitionTask(cfg)
    if cfg.task == "detection":
        from ocr.train.detection import DetectionTask

        return DetectionTask(cfg)
    if cfg.task == "orientation":
        from ocr.train.orientation import OrientationTask

        return OrientationTask(cfg)
    raise ConfigError(f"task: expected recognition, detection or orientation, found {cfg.task!r}")
