"""Text recognition metrics.

All comparisons are made after Unicode NFC normalisation and are case-sensitive. Edit
distance is Levenshtein (unit cost insert/delete/substitute). Over a set of (truth, pred)
pairs, :class:`TextMetrics` reports:

* ``cer``: corpus-level character error rate, total edit distance / total truth
  characters (lower is better). If there are no truth characters at all, the
  denominator is ``max(1, total pred characters)``.
* ``char_accuracy``: ``(truth chars - edit distance) / truth chars`` clipped at 0, i.e.
  ``max(0, 1 - cer)`` (higher is better).
* ``ned_distance``: ICDAR 2019 normalised edit distance, the mean over samples of
  ``edit / max(len(truth), len(pred))``; two empty strings have distance 0 (lower is better).
* ``ned``: the ICDAR 2019 score ``1 - ned_distance`` (higher is better, 1.0 = perfect).
* ``word_accuracy``: fraction of samples where pred == truth exactly; the whole line
  counts as one "word", as in deep-text-recognition-benchmark (higher is better).
* ``samples``: number of pairs.

An empty accumulator reports ``samples == 0`` and every rate as ``None``.
"""

from __future__ import annotations

import unicodedata

from rapidfuzz.distance import Levenshtein

_FIELDS = ("samples", "edits", "truth_chars", "pred_chars", "ned_distance_sum", "exact")


def _nfc(s: str) -> str:
    return unicodedata.normalize("NFC", s)


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance between ``a`` and ``b`` after NFC."""
    return int(Levenshtein.distance(_nfc(a), _nfc(b)))


def cer(truth: str, pred: str) -> float:
    """Character error rate of one pair: edit distance / max(1, len(truth)) (after NFC)."""
    return edit_distance(truth, pred) / max(1, len(_nfc(truth)))


class TextMetrics:
    """Accumulates sums over (truth, pred) pairs; see the module docstring for definitions.

    :meth:`to_sums` gives a fixed-order float vector (``samples, edits, truth_chars,
    pred_chars, ned_distance_sum, exact``) that can be all-reduced (summed) across workers
    and turned back into an accumulator with :meth:`from_sums`.
    """

    def __init__(self) -> None:
        self.sums = dict.fromkeys(_FIELDS, 0.0)

    def add(self, truth: str, pred: str) -> None:
        truth, pred = _nfc(truth), _nfc(pred)
        edits = Levenshtein.distance(truth, pred)
        longest = max(len(truth), len(pred))
        s = self.sums
        s["samples"] += 1
        s["edits"] += edits
        s["truth_chars"] += len(truth)
        s["pred_chars"] += len(pred)
        s["ned_distance_sum"] += edits / longest if longest else 0.0
        s["exact"] += float(truth == pred)

    def merge(self, other: TextMetrics) -> TextMetrics:
        """Add ``other``'s sums into this accumulator; returns ``self``."""
        for k in _FIELDS:
            self.sums[k] += other.sums[k]
        return self

    def to_sums(self) -> list[float]:
        return [float(self.sums[k]) for k in _FIELDS]

    @classmethod
    def from_sums(cls, sums: list[float]) -> TextMetrics:
        if len(sums) != len(_FIELDS):
            raise ValueError(f"expected {len(_FIELDS)} sums {_FIELDS}, got {len(sums)}")
        m = cls()
        m.sums = {k: float(v) for k, v in zip(_FIELDS, sums)}
        return m

    def summary(self) -> dict:
        s = self.sums
        n = int(round(s["samples"]))
        if n == 0:
            keys = ("cer", "ned", "ned_distance", "char_accuracy", "word_accuracy")
            return {"samples": 0, **dict.fromkeys(keys)}
        denom = s["truth_chars"] if s["truth_chars"] > 0 else max(1.0, s["pred_chars"])
        rate = s["edits"] / denom
        ned_distance = s["ned_distance_sum"] / n
        return {
            "samples": n,
            "cer": rate,
            "ned": 1.0 - ned_distance,
            "ned_distance": ned_distance,
            "char_accuracy": max(0.0, 1.0 - rate),
            "word_accuracy": s["exact"] / n,
        }
