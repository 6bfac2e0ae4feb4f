"""``ocr ingest``: any input layout to Parquet shards, a manifest and a rejects file.

The driver indexes every input (cheap: no image is opened; a gt or labels file is only
split into lines), derives or loads the charset, marks duplicate ids, and cuts the index
into chunks sized from the input alone; entries, ids and splits are made in the tasks, so
the serial part stays small. A Ray Data datasource reads chunks (for LMDB, key ranges;
two tasks per CPU) and validates each sample; a fused ``map_batches`` step writes
each chunk's rows, split by split, as Parquet and returns only small statistics, which the
driver merges into ``manifest.json`` and ``rejects.jsonl``. Chunks and parts are fixed by
the input, so reruns write identical shards, and memory stays flat whatever the number of
images.
"""

from __future__ import annotations

import json
import pickle
import time
from collections import Counter
from dataclasses import dataclass
from functools import partial

import pyarrow as pa
import pyarrow.compute as pc
import ray
import ray.data
from ray.data.block import BlockMetadata
from ray.data.datasource import Datasource, ReadTask

from ocr import storage
from ocr.charset import BadCharacter, Charset, clean_label, load_charset
from ocr.config import ConfigError, to_dict
from ocr.data import shards
from ocr.data.config import IngestConfig, parse_split_ratios
from ocr.data.formats import get_reader, locate
from ocr.data.formats.base import Reader, ReaderOptions
from ocr.data.stats import BlockStats, merge_stats
from ocr.data.validate import Reject, Validator, index_reason, load_reject, sample_id, split_of
from ocr.runtime import configure_data, ensure_ray

PART_BYTES = 64 << 20  # one Parquet part holds at most this much image data


@dataclass(frozen=True)
class Chunk:
    """A read task's unit: consecutive index items of one reader (:meth:`Reader.index`).
    Entries, ids and splits are made in the task; the driver only marks duplicates, which
    need the whole index."""

    index: int
    reader: Reader
    items: tuple
    split: str | None                # the input's given split, else by ``ratios``
    ratios: dict[str, float]
    duplicates: dict[int, str]       # position in the chunk -> why it is a duplicate


def parse_input(spec: str) -> tuple[str | None, str]:
    """``train=PATH`` gives the split; a plain ``PATH`` leaves it to the ratios."""
    head, sep, tail = spec.partition("=")
    if sep and head in shards.SPLITS:
        return head, tail
    return None, spec


def make_reader(uri: str, cfg: IngestConfig, s3: storage.S3Settings) -> Reader:
    uri, layout = locate(uri, cfg.layout, s3)
    options = ReaderOptions(separator=cfg.separator, filename_style=cfg.filename_style,
                            image_root=cfg.image_root, labelme_text=cfg.labelme_text,
                            max_file_bytes=cfg.max_file_bytes)
    return get_reader(layout)(uri, options=options, s3=s3, name=cfg.source)


def _texts(entries):
    """The clean labels and box texts (as validation will store them) of entries; texts that
    validation rejects (a control character inside) are left out."""
    for e in entries:
        for raw in (e.label, *(b.text for b in e.boxes or ())):
            if raw:
                try:
                    text = clean_label(raw)
                except BadCharacter:
                    continue
                if text:
                    yield text


def resolve_charset(spec: str, readers: list[Reader], given: list) -> Charset:
    if spec == "derive":
        texts = list(_texts(e for r, (_, items) in zip(readers, given)
                            for e in r.entries_of(items)))
        if not texts:
            raise ConfigError("charset 'derive' found no labels to derive it from: give --charset")
        return Charset.from_labels(texts)
    return load_charset(spec)


def chunk_size(readers, given, cap: int) -> int:
    """Samples per task, a function of the input alone (so reruns write the same shards).

    Aims at 32 tasks or more, each with at least ~1 MB and at most ~16 MB of images
    (and at most ``cap`` samples), from the mean size of the first few readable images.
    """
    n = sum(len(items) for _, items in given)
    sizes = []
    for reader, (_, items) in zip(readers, given):
        for e in reader.entries_of(items[:64]):
            if len(sizes) >= 8:
                break
            if not e.error:
                try:
                    sizes.append(len(reader.load(e)))
                except OSError:
                    continue
    mean = max(1, sum(sizes) // len(sizes)) if sizes else 4096
    lo, hi = -(-(1 << 20) // mean), min(cap, -(-(16 << 20) // mean))
    return max(1, min(hi, max(lo, -(-n // 32))))


def duplicates(reader: Reader, items: list) -> dict[int, str]:
    """Positions of the index items whose id an earlier item already has, with the reason.

    An id hashes (source, key), so within a source equal ids are equal keys: a set of the
    keys finds them without hashing any (the common case, none, costs one set).
    """
    source, keys = reader.source, [reader.key(item) for item in items]
    if len(set(keys)) == len(keys):
        return {}
    first: dict[str, int] = {}
    found = {}
    for i, key in enumerate(keys):
        if key in first:
            found[i] = (f"id {sample_id(source, key)} of key {key!r} is already taken by entry "
                        f"#{first[key] + 1} of {source}")
        else:
            first[key] = i
    return found


def plan_chunks(readers, given, ratios, size) -> list[Chunk]:
    """Cut every reader's index into chunks of ``size`` entries."""
    chunks: list[Chunk] = []
    for reader, (split, items) in zip(readers, given):
        dups: dict[int, dict[int, str]] = {}
        for i, why in duplicates(reader, items).items():
            dups.setdefault(i // size, {})[i % size] = why
        for start in range(0, len(items), size):
            chunks.append(Chunk(len(chunks), reader, tuple(items[start:start + size]), split,
                                ratios, dups.get(start // size, {})))
    return chunks


def new_row(sid: str, key: str, source: str, split: str) -> dict:
    """A shard row before validation fills it in (or marks it rejected)."""
    return {"id": sid, "key": key, "source": source, "split": split,
            "image": None, "reject": None, "detail": None, "dropped": []}


def _validated_rows(chunk: Chunk, validator: Validator):
    """Yield (row, nbytes) for every entry of the chunk: a shard row or a reject row."""
    reader, dups = chunk.reader, chunk.duplicates
    source = reader.source
    for i, entry in enumerate(reader.entries_of(chunk.items)):
        sid = sample_id(source, entry.key)
        row = new_row(sid, entry.key, source, chunk.split or split_of(sid, chunk.ratios))
        if validator.task == "detection":  # a rejected page's boxes are rejected with it
            row["box_read"] = len(entry.boxes or ())
        try:
            if entry.error:
                raise Reject(index_reason(entry.error), entry.error)
            if i in dups:
                raise Reject("duplicate_id", dups[i])
            try:
                data = reader.load(entry)
            except OSError as e:
                raise load_reject(e) from None
            cols, dropped = validator.row(entry, data)
            row.update(cols, image=data, dropped=dropped)
        except Reject as r:
            row.update(reject=r.reason, detail=r.detail)
        yield row, len(row["image"] or b"")


def read_chunk(chunk: Chunk, validator: Validator):
    """A Ray Data read task: one chunk's rows, cut into parts of at most PART_BYTES."""
    rows, nbytes, part = [], 0, 0
    for row, size in _validated_rows(chunk, validator):
        if rows and nbytes + size > PART_BYTES:
            yield to_block(rows, chunk.index, part, validator.task)
            rows, nbytes, part = [], 0, part + 1
        rows.append(row)
        nbytes += size
    if rows:
        yield to_block(rows, chunk.index, part, validator.task)


# Columns of a validated block beside the shard's own: what happened to each row (and, for
# detection, to each of its boxes), and where it goes (chunk and part name its shard files).
BOX_REJECT = pa.struct([("index", pa.int32()), ("reason", pa.string()), ("detail", pa.string()),
                        ("x0", pa.float64()), ("y0", pa.float64()), ("x1", pa.float64()),
                        ("y1", pa.float64())])
BLOCK_EXTRA = pa.schema([("reject", pa.string()), ("detail", pa.string()),
                         ("dropped", pa.list_(pa.string())), ("ctc_steps", pa.int32()),
                         ("box_read", pa.int32()), ("box_clipped", pa.int32()),
                         ("box_rejects", pa.list_(BOX_REJECT)),
                         ("chunk", pa.int32()), ("part", pa.int32())])


def to_block(rows: list[dict], chunk: int, part: int, task: str) -> pa.Table:
    """Validated rows (dicts; missing columns are null) as one Arrow block."""
    schema = pa.unify_schemas([shards.schema(task), BLOCK_EXTRA])
    where = {"chunk": [chunk] * len(rows), "part": [part] * len(rows)}
    return pa.table({f.name: pa.array(where.get(f.name) or [r.get(f.name) for r in rows], f.type)
                     for f in schema}, schema=schema)


def write_block(block: pa.Table, output: str, task: str, s3: storage.S3Settings) -> pa.Table:
    """A fused map step: write a block's valid rows, split by split; return its statistics."""
    chunk, part = block["chunk"][0].as_py(), block["part"][0].as_py()
    stats = BlockStats.from_block(block, task)
    valid = block.filter(pc.is_null(block["reject"]))
    for split in sorted(set(valid["split"].to_pylist())):
        rows = valid.filter(pc.equal(valid["split"], split)).select(shards.schema(task).names)
        path = shards.shard_name(split, chunk, part)
        nbytes = shards.write_table(rows.cast(shards.schema(task)), storage.join(output, path), s3)
        stats.shards.append({"path": path, "split": split, "rows": rows.num_rows, "bytes": nbytes})
    return pa.table({"chunk": [chunk], "part": [part], "stats": [json.dumps(stats.to_json())]})


def shard_datasource(read_fns: list, name: str):
    """A Ray Data datasource with one read task per zero-argument function yielding blocks."""

    class _Shards(Datasource):
        def get_name(self) -> str:
            return name

        def estimate_inmemory_data_size(self):
            return None

        def get_read_tasks(self, parallelism, per_task_row_limit=None, data_context=None):
            meta = BlockMetadata(num_rows=None, size_bytes=None, exec_stats=None, input_files=None)
            return [ReadTask(fn, meta) for fn in read_fns]

    return _Shards()


def _chain(ref):
    """One read task over several chunks, whose functions wait in the object store (as one
    pickle), so the task itself stays small however many entries the chunks index."""

    def read_chunks():
        for fn in pickle.loads(ray.get(ref)):
            yield from fn()

    return read_chunks


def group_tasks(read_fns: list, cpus: float, per_cpu: int = 2) -> list:
    """Fewer, larger tasks: ``per_cpu`` per CPU. Each Ray Data task costs ~20 ms of its
    own; on 20k small lines 2 a CPU ran 9% faster than 3 (median of 16 warm runs each).

    Chunks stay the unit of output, so the files written do not depend on the grouping.
    A group's functions (module-level, with their chunks) go to the object store as one
    pickle of the standard C pickler (``ray.put``'s cloudpickle calls back into Python for
    every object of an index), which also stores what the chunks share (reader, validator)
    once.
    """
    n = max(1, min(len(read_fns), int(cpus * per_cpu)))
    size, larger = divmod(len(read_fns), n)
    bounds = [0]
    for i in range(n):  # the larger groups first, so the last wave's tasks end together
        bounds.append(bounds[-1] + size + (i < larger))
    return [_chain(ray.put(pickle.dumps(read_fns[a:b], protocol=pickle.HIGHEST_PROTOCOL)))
            for a, b in zip(bounds, bounds[1:])]


def run_pipeline(read_fns: list, output: str, task: str, s3: storage.S3Settings,
                 name: str = "Ingest", num_cpus: int | None = None,
                 progress: bool | None = None) -> dict:
    """Read tasks -> fused shard writer on Ray Data; returns the merged statistics."""
    stats = []
    if read_fns:
        ensure_ray(num_cpus)
        configure_data(progress)
        tasks = group_tasks(read_fns, ray.cluster_resources().get("CPU", 1))
        ds = ray.data.read_datasource(shard_datasource(tasks, name), override_num_blocks=len(tasks))
        ds = ds.map_batches(write_block, batch_size=None, batch_format="pyarrow",
                            zero_copy_batch=True,
                            fn_kwargs={"output": output, "task": task, "s3": s3})
        stats = [json.loads(r["stats"]) for r in
                 sorted(ds.take_all(), key=lambda r: (r["chunk"], r["part"]))]
    return merge_stats(stats, task)


def prepare(cfg: IngestConfig, s3: storage.S3Settings):
    """Driver side: readers, index, charset, chunks. Raises ConfigError before any task."""
    cfg.validate_paths()
    ratios = parse_split_ratios(cfg.splits)
    readers, given, tasks = [], [], set()
    for spec in cfg.inputs:
        split, uri = parse_input(spec)
        reader = make_reader(uri, cfg, s3)
        readers.append(reader)
        given.append((split, reader.index()))
        tasks.add(reader.task)
    if len(tasks) != 1:
        raise ConfigError(f"inputs mix tasks {sorted(tasks)}: ingest one task per output")
    task = tasks.pop()
    charset = resolve_charset(cfg.charset, readers, given)
    validator = Validator(task=task, charset=charset, out_of_charset=cfg.out_of_charset,
                          max_label_length=cfg.max_label_length, height=cfg.height,
                          ctc_width=cfg.ctc_width if task == "recognition" else 0,
                          ctc_stride=cfg.ctc_stride, max_pixels=cfg.max_pixels)
    chunks = plan_chunks(readers, given, ratios, chunk_size(readers, given, cfg.shard_size))
    for reader in readers:
        reader.release()
    return readers, chunks, validator


def check_output(output: str, overwrite: bool, s3: storage.S3Settings) -> None:
    if storage.list_files(output, s3):
        if not overwrite:
            raise ConfigError(f"output {output} is not empty: choose a new folder or pass --overwrite")
        storage.delete_dir(output, s3)


def ingest(cfg: IngestConfig, progress: bool | None = None) -> dict:
    """Run the pipeline; returns the manifest (also written beside the shards)."""
    s3 = storage.S3Settings.from_env()
    readers, chunks, validator = prepare(cfg, s3)
    check_output(cfg.output, cfg.overwrite, s3)
    started = time.perf_counter()
    read_fns = [partial(read_chunk, c, validator) for c in chunks]
    merged = run_pipeline(read_fns, cfg.output, validator.task, s3, "Ingest", cfg.num_cpus,
                          progress)
    sources = [{"name": r.source, "uri": r.uri, "layout": r.layout} for r in readers]
    manifest = build_manifest(validator, sources, merged, cfg)
    finish(cfg.output, manifest, merged, s3)
    manifest["_seconds"] = time.perf_counter() - started
    return manifest


def build_manifest(validator: Validator, sources: list[dict], merged: dict, cfg) -> dict:
    """The manifest: deterministic (no timestamps), so reruns write identical files."""
    options = to_dict(cfg)
    return {
        "schema_version": shards.SCHEMA_VERSION,
        "task": validator.task,
        "charset": validator.charset.to_json() if validator.charset else None,
        "counts": merged["counts"],  # unit "image"; detection adds counts["boxes"] (unit "box")
        "label_length": merged["label_length"],
        "dropped_symbols": merged["dropped"],
        "sources": [{**s, **merged["sources"].get(s["name"], {})} for s in sources],
        "shards": merged["shards"],
        "options": {k: v for k, v in options.items()
                    if k not in ("output", "overwrite", "num_cpus", "progress")},
    }


def finish(output: str, manifest: dict, merged: dict, s3: storage.S3Settings) -> None:
    rejects = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in merged["rejects"])
    storage.write_text(storage.join(output, "rejects.jsonl"), rejects, s3)
    storage.write_text(shards.manifest_uri(output),
                       json.dumps(manifest, ensure_ascii=False, indent=1) + "\n", s3)


def summary_table(manifest: dict) -> str:
    """The human summary printed by ``ocr ingest`` and ``ocr synth``."""
    c = manifest["counts"]
    lines = [f"task {manifest['task']}  charset "
             f"{(manifest['charset'] or {}).get('spec') or '-'} "
             f"({(manifest['charset'] or {}).get('hash', '-')}, "
             f"{len((manifest['charset'] or {}).get('symbols', []))} symbols)",
             f"{'split':<8}{'read':>10}{'written':>10}{'rejected':>10}"]
    for split, row in sorted(c["per_split"].items()):
        lines.append(f"{split:<8}{row['read']:>10}{row['written']:>10}{row['rejected']:>10}")
    lines.append(f"{'total':<8}{c['read']:>10}{c['written']:>10}{c['rejected']:>10}")
    if c["per_reason"]:
        lines.append("rejected by reason:")
        for reason, row in sorted(c["per_reason"].items(), key=lambda kv: -kv[1]["total"]):
            lines.append(f"  {reason:<20}{row['total']:>8}")
    b = c.get("boxes")
    if b:
        lines.append(f"{'boxes':<8}{b['read']:>10}{b['written']:>10}{b['rejected']:>10}"
                     f"   ({b['clipped']} clipped to the image)")
        for reason, row in sorted(b["per_reason"].items(), key=lambda kv: -kv[1]["total"]):
            lines.append(f"  box {reason:<16}{row['total']:>8}")
    if manifest.get("dropped_symbols"):
        dropped = Counter(manifest["dropped_symbols"]).most_common(10)
        lines.append("dropped out-of-charset symbols: " +
                     ", ".join(f"{s!r}x{n}" for s, n in dropped))
    ll = manifest.get("label_length") or {}
    if ll.get("count"):
        lines.append(f"label length: min {ll['min']}  mean {ll['mean']:.1f}  max {ll['max']}  "
                     f"(max CTC steps {ll['max_ctc_steps']})")
    return "\n".join(lines)

