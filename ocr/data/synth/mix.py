"""Lines composed from weighted text sources: the ``mix:NAME|PATH`` text source.

A mix is a YAML mapping (a bundled one, :data:`BUILTIN_MIXES`, or a file)::

    length: 2-40          # characters per line: a target drawn uniformly per line
    charset: korean+symbols   # optional: segments with other symbols are drawn again
    sources:              # text source spec: weight
      lexicon:korean:1-3: 6
      template:any:ko: 2
      random:hangul:1-4: 1

A line is built segment by segment: a source is drawn by weight, its text appended (joined by
a space) while the line stays within ``length``'s maximum, until the line reaches its target.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources

import numpy as np
import yaml

from ocr import storage
from ocr.data.synth.textsource import TextSource, sorted_symbols

BUILTIN_MIXES = ("korean", "latin", "digits")


@dataclass
class MixSpec:
    """A mix file, parsed: ``sources`` maps text source specs to weights."""

    sources: dict[str, float]
    length: tuple[int, int] = (1, 40)
    charset: str | None = None


def read_mix(name_or_path: str, spec: str, parse_range) -> MixSpec:
    """The :class:`MixSpec` of a bundled mix or a YAML file (local or s3://)."""
    try:
        if name_or_path in BUILTIN_MIXES:
            text = (resources.files("ocr.data.synth") / "mixes" / f"{name_or_path}.yaml").read_text("utf-8")
        else:
            text = storage.read_text(name_or_path)
        data = yaml.safe_load(text)
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        raise ValueError(f"text source {spec!r}: cannot read {name_or_path} (expected one of the "
                         f"bundled mixes {', '.join(BUILTIN_MIXES)} or a YAML file): {e}") from e
    if not isinstance(data, dict) or not isinstance(data.get("sources"), dict) or not data["sources"]:
        raise ValueError(f"text source {spec!r}: expected a YAML mapping with 'sources' (a mapping "
                         f"of text source specs to weights), found {str(data)[:120]!r}")
    unknown = sorted(set(data) - {"sources", "length", "charset"})
    if unknown:
        raise ValueError(f"text source {spec!r}: unknown keys {unknown}, expected sources, length, charset")
    sources = {}
    for source, weight in data["sources"].items():
        if not isinstance(weight, (int, float)) or weight < 0:
            raise ValueError(f"text source {spec!r}: the weight of {source!r} must be a number >= 0, "
                             f"found {weight!r}")
        if weight > 0:
            sources[str(source)] = float(weight)
    if not sources:
        raise ValueError(f"text source {spec!r}: expected a source with a positive weight, found none")
    length = parse_range(str(data.get("length", "1-40")), spec)
    return MixSpec(sources, length, data.get("charset"))


class MixSource(TextSource):
    """Segments of weighted sources joined by spaces, up to a per-line target length."""

    def __init__(self, parts: list[tuple[TextSource, float]], lo: int, hi: int, spec: str,
                 allowed: str | None = None):
        self.spec, self.parts, self.lo, self.hi = spec, parts, lo, hi
        weights = np.array([w for _, w in parts], dtype=np.float64)
        self._cdf = np.cumsum(weights / weights.sum())
        self.allowed = frozenset(allowed) if allowed is not None else None

    def _segment(self, rng: np.random.Generator) -> str:
        source = self.parts[min(int(np.searchsorted(self._cdf, rng.random())), len(self.parts) - 1)][0]
        text = source.sample(rng)
        if self.allowed is not None and not self.allowed.issuperset(text):
            return ""
        return text

    def sample(self, rng: np.random.Generator) -> str:
        target = int(rng.integers(self.lo, self.hi + 1))
        line = ""
        for _ in range(64):
            segment = self._segment(rng)
            if not segment:
                continue
            longer = f"{line} {segment}" if line else segment
            if len(longer) > self.hi:
                if line:
                    break
                continue
            line = longer
            if len(line) >= target:
                break
        if not line:
            raise ValueError(f"text source {self.spec!r}: no segment within {self.hi} characters"
                             + (" and the charset" if self.allowed is not None else "")
                             + " in 64 draws: raise the length's maximum or check the sources")
        return line

    def symbols(self) -> str:
        chars = set("".join(source.symbols() for source, _ in self.parts)) | {" "}
        if self.allowed is not None:
            chars &= self.allowed
        return sorted_symbols(chars)
