"""The :class:`TextSource` interface every synthetic text source implements."""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np


class TextSource(ABC):
    """Samples label texts. Picklable, so it can travel to Ray workers."""

    spec: str = ""

    @abstractmethod
    def sample(self, rng: np.random.Generator) -> str:
        """One text, drawn with ``rng`` only (same generator state, same text)."""

    @abstractmethod
    def symbols(self) -> str:
        """Every symbol this source can produce, sorted by code point (for charsets)."""


def sorted_symbols(chars) -> str:
    """The distinct characters of ``chars``, sorted by code point."""
    return "".join(sorted(set(chars)))
