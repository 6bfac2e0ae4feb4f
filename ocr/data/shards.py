"""The shard contract: Parquet files of one Arrow schema per task, beside a manifest.

Layout of a shard folder::

    OUT/manifest.json        schema version, task, charset, counts, label stats, sources
    OUT/rejects.jsonl        one line per rejected sample: source, key, reason, detail, split
    OUT/<split>/part-SSSSS-PP.parquet

``SSSSS`` is the index chunk and ``PP`` the part within it, both fixed by the input alone,
so a rerun writes the same files with the same rows.
"""

from __future__ import annotations

import io
import json
from collections import Counter

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ocr import storage

SCHEMA_VERSION = 1
SPLITS = ("train", "val", "test")
TASKS = ("recognition", "detection", "orientation")

BOX_TYPE = pa.struct([
    ("x0", pa.float32()), ("y0", pa.float32()), ("x1", pa.float32()), ("y1", pa.float32()),
    ("label", pa.string()), ("text", pa.string()),
])

_COMMON = [
    ("id", pa.string()),
    ("key", pa.string()),
    ("source", pa.string()),
    ("split", pa.string()),
    ("image", pa.binary()),
    ("width", pa.int32()),
    ("height", pa.int32()),
]
SCHEMAS = {
    "recognition": pa.schema(_COMMON + [("label", pa.string())]),
    "detection": pa.schema(_COMMON + [("boxes", pa.list_(BOX_TYPE)), ("angle", pa.float32())]),
    "orientation": pa.schema(_COMMON + [("angle", pa.float32())]),
}


def schema(task: str) -> pa.Schema:
    if task not in SCHEMAS:
        raise ValueError(f"unknown task {task!r}: expected one of {', '.join(TASKS)}")
    return SCHEMAS[task]


def shard_name(split: str, chunk: int, part: int) -> str:
    return f"{split}/part-{chunk:05d}-{part:02d}.parquet"


def write_table(table: pa.Table, uri: str, s3: storage.S3Settings | None = None) -> int:
    """Write one shard; returns its size in bytes. Images are stored as-is (no recompression)."""
    buf = io.BytesIO()
    pq.write_table(
        table, buf,
        compression={name: ("NONE" if name == "image" else "SNAPPY") for name in table.column_names},
        use_dictionary=["split", "source"],
        write_statistics=["id", "split", "width", "height"],
        store_schema=True,
    )
    data = buf.getvalue()
    storage.write_bytes(uri, data, s3)
    return len(data)


def manifest_uri(root: str) -> str:
    return storage.join(root, "manifest.json")


def read_manifest(root: str, s3: storage.S3Settings | None = None) -> dict:
    uri = manifest_uri(root)
    try:
        text = storage.read_text(uri, s3)
    except (FileNotFoundError, OSError) as e:
        raise FileNotFoundError(f"no manifest.json in {root}: expected a shard folder written by "
                                f"`ocr ingest` or `ocr synth` ({e})") from None
    manifest = json.loads(text)
    if manifest.get("schema_version") != SCHEMA_VERSION:
        raise ValueError(f"{uri}: schema_version {manifest.get('schema_version')}, "
                         f"expected {SCHEMA_VERSION}")
    return manifest


def shard_uris(root: str, split: str | None = None, manifest: dict | None = None) -> list[str]:
    """Shard files of ``root`` (one split or all), in manifest order."""
    manifest = manifest or read_manifest(root)
    return [storage.join(root, s["path"]) for s in manifest["shards"]
            if split is None or s["split"] == split]


def read_rows(root: str, split: str | None = None, columns: list[str] | None = None,
              s3: storage.S3Settings | None = None):
    """Iterate shard tables (driver-side helper for small sets, export and tests)."""
    manifest = read_manifest(root, s3)
    for uri in shard_uris(root, split, manifest):
        yield pq.read_table(io.BytesIO(storage.read_bytes(uri, s3)), columns=columns)


def ids_to_ints(ids) -> np.ndarray:
    """16-hex-digit sample ids to int64 (the same 64 bits), so they travel in tensors."""
    return np.array([int(str(i)[:16], 16) for i in ids], dtype=np.uint64).view(np.int64)


def box_labels(data: str, split: str) -> Counter:
    """Box labels of the first shard of ``split`` (a cheap look at what the data holds: only
    that file's ``boxes`` column is read)."""
    uris = shard_uris(data, split)
    if not uris:
        return Counter()
    fs, path = storage.filesystem(uris[0], storage.S3Settings.from_env())
    boxes = pq.read_table(path, filesystem=fs, columns=["boxes"]).column("boxes").combine_chunks()
    return Counter(boxes.flatten().field("label").to_pylist())
