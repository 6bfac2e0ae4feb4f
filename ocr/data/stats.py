"""Statistics of written and rejected samples, computed per block and merged on the driver.

Counts always hold ``read = written + rejected``, in total, per split, per source and per
reason (a reason's rows are all rejected ones), in the unit they declare: ``counts["unit"]``
is ``"image"`` (a shard row: a line image, or a page). Detection adds ``counts["boxes"]``
(unit ``"box"``: read, written, rejected, clipped, per split and per reason; each source gets
its own ``boxes``): a box is rejected on its own (``bad_box``, ``empty_label``,
``bad_character``, ``out_of_charset``), or with its page, under the page's reason; a box
partly outside its image is clipped to it, written and counted in ``clipped``.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc


def _zero() -> dict:
    return {"read": 0, "written": 0, "rejected": 0}


def _box_zero() -> dict:
    return {"read": 0, "written": 0, "rejected": 0, "clipped": 0}


BOX_COLUMNS = ["source", "key", "split", "reject", "box_read", "box_clipped", "box_rejects"]


@dataclass
class BlockStats:
    split_counts: dict = field(default_factory=lambda: defaultdict(_zero))
    source_counts: dict = field(default_factory=lambda: defaultdict(_zero))
    reasons: dict = field(default_factory=lambda: defaultdict(Counter))  # reason -> split -> n
    rejects: list = field(default_factory=list)
    label_lengths: Counter = field(default_factory=Counter)
    max_ctc_steps: int = 0
    dropped: Counter = field(default_factory=Counter)
    shards: list = field(default_factory=list)
    box_splits: dict = field(default_factory=lambda: defaultdict(_box_zero))
    box_sources: dict = field(default_factory=lambda: defaultdict(_box_zero))
    box_reasons: dict = field(default_factory=lambda: defaultdict(Counter))  # reason -> split -> n
    boxes: bool = False  # detection: box counts kept

    @classmethod
    def from_block(cls, block: pa.Table, task: str) -> "BlockStats":
        """The statistics of a validated block (columnar: Python touches only rejected rows)."""
        s = cls()
        rejected = pc.is_valid(block["reject"])
        for column, counts in (("split", s.split_counts), ("source", s.source_counts)):
            read, bad = _value_counts(block[column]), _value_counts(block[column].filter(rejected))
            for name, n in read.items():
                counts[name].update(read=n, written=n - bad.get(name, 0), rejected=bad.get(name, 0))
        for row in block.filter(rejected).select(["source", "key", "reject", "detail", "split"]).to_pylist():
            s.reasons[row["reject"]][row["split"]] += 1
            s.rejects.append({"source": row["source"], "key": row["key"], "reason": row["reject"],
                              "detail": row["detail"], "split": row["split"]})
        valid = block.filter(pc.invert(rejected))
        s.dropped.update(_value_counts(pc.list_flatten(valid["dropped"])))
        if task == "recognition" and valid.num_rows:
            s.label_lengths.update(_value_counts(pc.utf8_length(valid["label"])))
            s.max_ctc_steps = pc.max(valid["ctc_steps"]).as_py() or 0
        if task == "detection":
            s.add_boxes(block)
        return s

    def add_boxes(self, block: pa.Table) -> None:
        """Box counts of a detection block (pages are few: a Python loop over them), and a
        reject line, naming the box, for each box rejected on its own."""
        self.boxes = True
        for row in block.select(BOX_COLUMNS).to_pylist():
            read, split = row["box_read"] or 0, row["split"]
            if row["reject"] is not None:  # the page is rejected: its boxes with it
                n = {"read": read, "written": 0, "rejected": read, "clipped": 0}
                if read:
                    self.box_reasons[row["reject"]][split] += read
            else:
                bad = row["box_rejects"] or []
                n = {"read": read, "written": read - len(bad), "rejected": len(bad),
                     "clipped": row["box_clipped"] or 0}
                for r in bad:
                    self.box_reasons[r["reason"]][split] += 1
                    self.rejects.append({
                        "source": row["source"], "key": row["key"], "reason": r["reason"],
                        "detail": r["detail"], "split": split,
                        "box": {k: r[k] for k in ("index", "x0", "y0", "x1", "y1")}})
            for counts in (self.box_splits[split], self.box_sources[row["source"]]):
                for k, v in n.items():
                    counts[k] += v

    def to_json(self) -> dict:
        return {
            "splits": dict(self.split_counts), "sources": dict(self.source_counts),
            "reasons": {k: dict(v) for k, v in self.reasons.items()}, "rejects": self.rejects,
            "label_lengths": {str(k): v for k, v in self.label_lengths.items()},
            "max_ctc_steps": self.max_ctc_steps, "dropped": dict(self.dropped),
            "shards": self.shards,
            **({"boxes": {"splits": dict(self.box_splits), "sources": dict(self.box_sources),
                          "reasons": {k: dict(v) for k, v in self.box_reasons.items()}}}
               if self.boxes else {}),
        }


def _value_counts(values) -> dict:
    """{value: count} of an Arrow array (nulls left out)."""
    counts = pc.value_counts(values)
    return {v: n for v, n in zip(counts.field("values").to_pylist(), counts.field("counts").to_pylist())
            if v is not None}


def _per_reason(reasons: dict) -> dict:
    return {r: {"total": sum(c.values()), **dict(sorted(c.items()))}
            for r, c in sorted(reasons.items())}


def _sum_counts(parts: list[dict], zero) -> tuple[dict, dict, dict, dict]:
    """(per split, per source, per reason, totals) summed over blocks' ``splits``, ``sources``
    and ``reasons`` tables; ``zero`` makes a row of the unit's counters."""
    splits, sources = defaultdict(zero), defaultdict(zero)
    reasons: dict = defaultdict(Counter)
    for part in parts:
        for table, target in ((part["splits"], splits), (part["sources"], sources)):
            for name, counts in table.items():
                for k, v in counts.items():
                    target[name][k] += v
        for reason, per_split in part["reasons"].items():
            reasons[reason].update(per_split)
    totals = zero()
    for counts in splits.values():
        for k in totals:
            totals[k] += counts[k]
    return splits, sources, reasons, totals


def _merge_boxes(blocks: list[dict]) -> tuple[dict, dict]:
    """(the manifest's ``counts["boxes"]``, each source's box counts) of detection blocks."""
    empty = {"splits": {}, "sources": {}, "reasons": {}}
    splits, sources, reasons, totals = _sum_counts([b.get("boxes") or empty for b in blocks], _box_zero)
    return ({"unit": "box", **totals, "per_split": {k: splits[k] for k in sorted(splits)},
             "per_reason": _per_reason(reasons)}, dict(sources))


def merge_stats(blocks: list[dict], task: str | None = None) -> dict:
    """Blocks' statistics (in chunk order) to the manifest's counts and lists; ``task``
    "detection" (or any block with box counts) adds the box counts."""
    splits, sources, reasons, totals = _sum_counts(blocks, _zero)
    lengths, dropped = Counter(), Counter()
    rejects, shard_list, max_steps = [], [], 0
    for b in blocks:
        lengths.update({int(k): v for k, v in b["label_lengths"].items()})
        dropped.update(b["dropped"])
        rejects.extend(b["rejects"])
        shard_list.extend(b["shards"])
        max_steps = max(max_steps, b["max_ctc_steps"])
    n = sum(lengths.values())
    label_length = {"count": n}
    if n:
        label_length.update(
            min=min(lengths), max=max(lengths),
            mean=sum(k * v for k, v in lengths.items()) / n,
            max_ctc_steps=max_steps,
            histogram={str(k): lengths[k] for k in sorted(lengths)},
        )
    counts = {"unit": "image", **totals,
              "per_split": {k: splits[k] for k in sorted(splits)},
              "per_reason": _per_reason(reasons)}
    if task == "detection" or any("boxes" in b for b in blocks):
        counts["boxes"], box_sources = _merge_boxes(blocks)
        sources = {name: {**row, "boxes": box_sources.get(name, _box_zero())}
                   for name, row in sources.items()}
    return {
        "counts": counts,
        "sources": dict(sources),
        "label_length": label_length,
        "dropped": dict(sorted(dropped.items())),
        "rejects": rejects,
        "shards": sorted(shard_list, key=lambda s: s["path"]),
    }
