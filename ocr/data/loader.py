"""Shards to per-worker torch batches, through the one preprocessing of :mod:`ocr.data.images`.

On the driver, :func:`read_split` gives the Ray Dataset of one split, passed to a
``TorchTrainer(datasets={...})``. In each worker, :func:`iter_recognition_batches` reads
``ray.train.get_dataset_shard(split)`` and yields dicts of tensors::

    images          float32 (B, C, H, W)    Preprocess: decode, resize to H, pad, normalise
    targets         int64   (B, Lmax)       charset classes (1..), 0 past each label's end
    target_lengths  int64   (B,)
"""

from __future__ import annotations

import numpy as np
import ray.data
import ray.train
import torch
from ray.data.collate_fn import NumpyBatchCollateFn

from ocr import storage
from ocr.charset import Charset
from ocr.data.images import Preprocess, preprocess_bytes
from ocr.data.shards import read_manifest, shard_uris


def read_split(root: str, split: str, columns: list[str] | None = None,
               s3: storage.S3Settings | None = None):
    """The Ray Dataset of one split of a shard folder (lazy; read in parallel by Ray Data)."""
    manifest = read_manifest(root, s3)
    uris = shard_uris(root, split, manifest)
    if not uris:
        splits = sorted({s["split"] for s in manifest["shards"]})
        raise ValueError(f"{root} has no {split!r} shards: found splits {splits}")
    fs, _ = storage.filesystem(root, s3)
    paths = [storage.filesystem(u, s3)[1] for u in uris]
    # A quarter CPU per read task: reading Parquet is light, and Ray Train workers hold
    # most of the CPUs (decoding happens in their collate).
    ds = ray.data.read_parquet(paths, filesystem=fs, num_cpus=0.25)
    return ds.select_columns(columns) if columns else ds


class RecognitionCollate:
    """numpy batch (columns ``image``, ``label``) to the tensors documented above.

    ``bucket`` pads each batch only to its widest line (rounded up to 16 pixels) instead
    of the full ``preprocess.width``.
    """

    def __init__(self, charset: Charset, preprocess: Preprocess, bucket: bool = False,
                 max_pixels: int = 50_000_000):
        self.charset = charset
        self.preprocess = preprocess
        self.bucket = bucket
        self.max_pixels = max_pixels

    def arrays(self, batch: dict) -> dict[str, np.ndarray]:
        x = preprocess_bytes([bytes(b) for b in batch["image"]], self.preprocess, self.bucket,
                             self.max_pixels)
        encoded = [self.charset.encode(str(t)) for t in batch["label"]]
        lengths = np.array([len(e) for e in encoded], dtype=np.int64)
        targets = np.zeros((len(encoded), max(1, int(lengths.max(initial=1)))), dtype=np.int64)
        for i, e in enumerate(encoded):
            targets[i, : len(e)] = e
        return {"images": x, "targets": targets, "target_lengths": lengths}

    def __call__(self, batch: dict):
        return {k: torch.from_numpy(v) for k, v in self.arrays(batch).items()}


def numpy_collate(cls, *args, **kwargs):
    """An instance of collate class ``cls`` that Ray Data's ``iter_torch_batches`` feeds numpy."""
    return type(cls.__name__, (cls, NumpyBatchCollateFn), {})(*args, **kwargs)


def iter_recognition_batches(charset: Charset, preprocess: Preprocess, batch_size: int,
                             split: str = "train", bucket: bool = False, drop_last: bool = False,
                             shuffle_buffer: int | None = None, seed: int | None = None):
    """Inside a Ray Train worker: this worker's shard of ``split`` as tensor batches."""
    shard = ray.train.get_dataset_shard(split)
    return shard.iter_torch_batches(
        batch_size=batch_size, drop_last=drop_last,
        collate_fn=numpy_collate(RecognitionCollate, charset, preprocess, bucket),
        local_shuffle_buffer_size=shuffle_buffer, local_shuffle_seed=seed)
