"""``ocr export-lmdb``: recognition shards back to deep-text-recognition-benchmark's LMDB.

Keys are ``num-samples``, ``image-%09d`` (the original encoded bytes) and ``label-%09d``
(UTF-8), numbered from 1, as create_lmdb_dataset.py writes them, so old tools keep working.
Samples come out in input order: shards in chunk order and, within a chunk, by key (an
LMDB ingested and exported again gives back the same key/value pairs).
"""

from __future__ import annotations

import io
import os
import re
from collections import defaultdict

import lmdb
import pyarrow as pa
import pyarrow.parquet as pq

from ocr import storage
from ocr.data.shards import read_manifest

_PART = re.compile(r"part-(\d+)-(\d+)\.parquet$")


def _groups(manifest: dict, split: str | None) -> list[list[str]]:
    """Shard paths grouped by (chunk, part), in order."""
    groups = defaultdict(list)
    for s in manifest["shards"]:
        if split is None or s["split"] == split:
            m = _PART.search(s["path"])
            groups[(int(m.group(1)), int(m.group(2)))].append(s["path"])
    return [groups[k] for k in sorted(groups)]


def export_lmdb(shards_root: str, output: str, split: str | None = None,
                s3: storage.S3Settings | None = None) -> int:
    """Write the LMDB under ``output`` (a local folder); returns the number of samples."""
    manifest = read_manifest(shards_root, s3)
    if manifest["task"] != "recognition":
        raise ValueError(f"export-lmdb needs recognition shards, found task {manifest['task']!r}")
    if storage.is_s3(output):
        raise ValueError("export-lmdb writes a local folder (LMDB is a memory-mapped file)")
    total = sum(s["bytes"] for s in manifest["shards"])
    os.makedirs(output, exist_ok=True)
    env = lmdb.open(output, map_size=max(1 << 30, 4 * total), subdir=True, lock=True)
    n = 0
    try:
        for paths in _groups(manifest, split):
            tables = [pq.read_table(io.BytesIO(storage.read_bytes(storage.join(shards_root, p), s3)),
                                    columns=["key", "image", "label"]) for p in paths]
            table = pa.concat_tables(tables).sort_by("key")
            with env.begin(write=True) as txn:
                for image, label in zip(table["image"].to_pylist(), table["label"].to_pylist()):
                    n += 1
                    txn.put(b"image-%09d" % n, image)
                    txn.put(b"label-%09d" % n, label.encode("utf-8"))
        with env.begin(write=True) as txn:
            txn.put(b"num-samples", str(n).encode())
    finally:
        env.close()
    return n
