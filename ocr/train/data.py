"""What every task reads: the manifests it trains on and each worker's slice of the
validation split (training batches come from Ray Data: :meth:`ocr.train.task.TaskBase.train_batches`)."""

from __future__ import annotations

import pyarrow as pa

from ocr.config import ConfigError
from ocr.data.shards import read_manifest, read_rows
from ocr.train import dist
from ocr.train.config import TrainConfig


def val_batches(cfg: TrainConfig, columns: list[str]):
    """This worker's slice (rows rank::world) of the validation split, read straight from the
    shards, as numpy batches of ``cfg.batch_size`` rows (a small split: a Ray Data pass per
    validation would cost seconds of start-up on every call). Cached in the worker process."""
    data = cfg.val_data or cfg.data
    rank, world = dist.rank_and_world()
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


def manifest_of(data: str) -> dict:
    """The manifest of shard folder ``data``, or a ConfigError saying what was expected."""
    try:
        return read_manifest(data)
    except FileNotFoundError:
        raise ConfigError(f"data {data}: expected a shard folder with manifest.json "
                          f"(from `ocr ingest` or `ocr synth`), found none") from None


def check_split(data: str, manifest: dict, split: str) -> None:
    per_split = manifest["counts"]["per_split"]
    if per_split.get(split, {}).get("written", 0) == 0:
        found = {k: v["written"] for k, v in per_split.items()}
        raise ConfigError(f"data {data} has no {split!r} samples: found {found}. "
                          "Ingest with a split ratio for it, or name another split.")


def load_manifests(cfg: TrainConfig, task: str | None) -> tuple[dict, dict]:
    """(training manifest, validation manifest), refused unless both hold samples in the named
    splits (and, when ``task`` is given, of that task)."""
    manifests = []
    for data, split in ((cfg.data, cfg.train_split), (cfg.val_data or cfg.data, cfg.val_split)):
        manifest = manifests[0] if manifests and data == cfg.data else manifest_of(data)
        if task is not None and manifest["task"] != task:
            raise ConfigError(f"data {data} holds {manifest['task']} shards: expected {task}")
        check_split(data, manifest, split)
        manifests.append(manifest)
    return manifests[0], manifests[1]


def split_rows(manifest: dict, split: str) -> int:
    return int(manifest["counts"]["per_split"][split]["written"])
