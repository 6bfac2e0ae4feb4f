"""Statistics of written and rejected samples, computed per block and merged on the driver.

Counts always hold ``read = written + rejected``, in total, per split, per source and per
reason (a reason's rows are all rejected ones).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field

import pyarrow as pa

from ocr.charset import ctc_min_steps


def _zero() -> dict:
    return {"read": 0, "written": 0, "rejected": 0}


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

    @classmethod
    def from_block(cls, block: pa.Table, task: str) -> "BlockStats":
        s = cls()
        cols = ["key", "source", "split", "reject", "detail", "dropped"]
        labels = block["label"].to_pylist() if task == "recognition" else [None] * block.num_rows
        for row, label in zip(block.select(cols).to_pylist(), labels):
            s.add(row["source"], row["key"], row["split"], row["reject"], row["detail"],
                  label, row["dropped"] or [])
        return s

    def add(self, source, key, split, reason=None, detail=None, label=None, dropped=()):
        outcome = "rejected" if reason else "written"
        for counts in (self.split_counts[split], self.source_counts[source]):
            counts["read"] += 1
            counts[outcome] += 1
        if reason:
            self.reasons[reason][split] += 1
            self.rejects.append({"source": source, "key": key, "reason": reason,
                                 "detail": detail, "split": split})
            return
        self.dropped.update(dropped)
        if label is not None:
            self.label_lengths[len(label)] += 1
            self.max_ctc_steps = max(self.max_ctc_steps, ctc_min_steps(label))

    def to_json(self) -> dict:
        return {
            "splits": dict(self.split_counts), "sources": dict(self.source_counts),
            "reasons": {k: dict(v) for k, v in self.reasons.items()}, "rejects": self.rejects,
            "label_lengths": {str(k): v for k, v in self.label_lengths.items()},
            "max_ctc_steps": self.max_ctc_steps, "dropped": dict(self.dropped),
            "shards": self.shards,
        }


def merge_stats(blocks: list[dict]) -> dict:
    """Blocks' statistics (in chunk order) to the manifest's counts and lists."""
    splits, sources = defaultdict(_zero), defaultdict(_zero)
    reasons: dict = defaultdict(Counter)
    lengths, dropped = Counter(), Counter()
    rejects, shard_list, max_steps = [], [], 0
    for b in blocks:
        for table, target in ((b["splits"], splits), (b["sources"], sources)):
            for name, counts in table.items():
                for k, v in counts.items():
                    target[name][k] += v
        for reason, per_split in b["reasons"].items():
            reasons[reason].update(per_split)
        lengths.update({int(k): v for k, v in b["label_lengths"].items()})
        dropped.update(b["dropped"])
        rejects.extend(b["rejects"])
        shard_list.extend(b["shards"])
        max_steps = max(max_steps, b["max_ctc_steps"])
    totals = _zero()
    for counts in splits.values():
        for k in totals:
            totals[k] += counts[k]
    n = sum(lengths.values())
    label_length = {"count": n}
    if n:
        label_length.update(
            min=min(lengths), max=max(lengths),
            mean=sum(k * v for k, v in lengths.items()) / n,
            max_ctc_steps=max_steps,
            histogram={str(k): lengths[k] for k in sorted(lengths)},
        )
    return {
        "counts": {**totals,
                   "per_split": {k: splits[k] for k in sorted(splits)},
                   "per_reason": {r: {"total": sum(c.values()), **dict(sorted(c.items()))}
                                  for r, c in sorted(reasons.items())}},
        "sources": dict(sources),
        "label_length": label_length,
        "dropped": dict(sorted(dropped.items())),
        "rejects": rejects,
        "shards": sorted(shard_list, key=lambda s: s["path"]),
    }
