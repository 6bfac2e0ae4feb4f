"""Which validation is the best: one rule for the training log, ``RUN/best`` and Tune."""

from __future__ import annotations


def ranks_before(score: float, other: float, mode: str) -> bool:
    """Whether a validation ``score`` ranks strictly below ``other`` (``mode``: min or max).
    Equal scores do not: of two equal validations the later is the best, as Ray Train's
    checkpoint ranking keeps the later one, so the training log and RUN/best name one step."""
    return score > other if mode == "min" else score < other


def best_of(results: list, metric: str, mode: str):
    """The best ``(checkpoint, metrics)`` by ``metric``; of equal ones, the later step."""
    sign = 1 if mode == "min" else -1
    return min(results, key=lambda r: (sign * r[1][metric], -r[1].get("step", 0)))
