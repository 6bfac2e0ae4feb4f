"""Text sources for synthetic lines, built from a spec string.

Specs:

* ``digits:MIN-MAX``               random digit strings, length in [MIN, MAX];
* ``random:CHARSET:MIN-MAX``       uniform over a charset spec (:func:`ocr.charset.load_charset`),
                                   e.g. ``random:latin:3-10``, ``random:hangul:2-6``; a space is
                                   never the first or last symbol;
* ``file:PATH``                    one word or phrase per line (UTF-8), sampled uniformly;
* ``words:PATH:MIN-MAX``           MIN..MAX words (whitespace-separated tokens of the file)
                                   joined by single spaces;
* ``lexicon:NAME|PATH[:MIN-MAX]``  frequency-weighted words of a bundled list (``korean``,
                                   ``english``) or a ``WORD[<TAB>COUNT]`` file
                                   (:mod:`ocr.data.synth.lexicon`);
* ``template:KIND[:LANG]``         numbers, prices, dates, times, phone numbers, addresses,
                                   codes, units (``any``), in ``ko``/``en``/``mixed`` formats
                                   (:mod:`ocr.data.synth.templates`);
* ``mix:NAME|PATH``                lines up to a target length composed from weighted sources:
                                   a bundled mix (``korean``, ``latin``, ``digits``) or a YAML
                                   file (:mod:`ocr.data.synth.mix`).

``MIN-MAX`` may also be a single number (fixed length). PATH may be any URI
:mod:`ocr.storage` reads (local or ``s3://``).

Texts are clean labels, as ingest stores them (:func:`ocr.charset.clean_label`): a file's
lines (or words) are split at any whitespace (TAB, NBSP, U+3000, CR of CRLF files, ...) and
rejoined with single spaces, zero-width and BOM characters at their ends are stripped, and a
line or word still holding a control or format character (NUL, BEL, BS, DEL, U+200B inside,
...) is left out, with a warning naming it (``skipped`` lists them). A charset's symbols
that are no label symbol (:func:`ocr.charset.is_label_symbol`) are never drawn.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from ocr import storage
from ocr.charset import BadCharacter, CharsetError, clean_label, is_label_symbol, load_charset
from ocr.config import ConfigError, resolve_text_source
from ocr.data.synth.lexicon import LexiconSource
from ocr.data.synth.mix import MixSource, read_mix
from ocr.data.synth.templates import TemplateSource
from ocr.data.synth.textsource import TextSource

__all__ = ["SPEC_HELP", "TextSource", "parse_text_source"]

log = logging.getLogger(__name__)

SPEC_HELP = ("'digits:MIN-MAX', 'random:CHARSET:MIN-MAX', 'file:PATH', 'words:PATH:MIN-MAX', "
             "'lexicon:NAME|PATH[:MIN-MAX]', 'template:KIND[:LANG]' or 'mix:NAME|PATH'")


class _SymbolSource(TextSource):
    """Strings of MIN..MAX symbols drawn uniformly from an alphabet."""

    def __init__(self, alphabet: str, lo: int, hi: int, spec: str):
        self.spec, self.lo, self.hi = spec, lo, hi
        self._alphabet = np.array([c for c in alphabet if is_label_symbol(c)])
        self._solid = np.array([c for c in alphabet if not c.isspace()])
        if len(self._solid) == 0:
            raise ValueError(f"text source {spec!r}: the charset has only whitespace")

    def sample(self, rng: np.random.Generator) -> str:
        n = int(rng.integers(self.lo, self.hi + 1))
        chars = self._alphabet[rng.integers(0, len(self._alphabet), n)]
        if len(self._solid) < len(self._alphabet):  # never start or end with a space
            chars[[0, -1]] = self._solid[rng.integers(0, len(self._solid), 2)]
        return "".join(chars)

    def symbols(self) -> str:
        return "".join(sorted(set(self._alphabet.tolist())))


class _LineSource(TextSource):
    """Lines of a file, one per sample; or (``split``) MIN..MAX of its words joined by spaces."""

    def __init__(self, path: str, spec: str, lo: int = 1, hi: int = 1, split: bool = False):
        self.spec, self.path, self.lo, self.hi = spec, path, lo, hi
        try:
            text = storage.read_text(path)
        except (OSError, UnicodeDecodeError) as e:
            raise ValueError(f"text source {spec!r}: cannot read {path}: {e}") from e
        self.lines, self.skipped = [], []  # skipped: (line number, why)
        for n, line in enumerate(text.splitlines(), start=1):
            for item in line.split() if split else [" ".join(line.split())]:
                try:
                    item = clean_label(item)
                except BadCharacter as e:
                    self.skipped.append((n, str(e)))
                    continue
                if item:
                    self.lines.append(item)
        if self.skipped:
            log.warning("text source %r: left out %d %s with a control or format character, "
                        "e.g. line %d: %s", spec, len(self.skipped), "words" if split else "lines",
                        *self.skipped[0])
        if not self.lines:
            raise ValueError(f"text source {spec!r}: expected at least one non-empty line "
                             f"in {path}, found none"
                             + (f" ({len(self.skipped)} left out: {self.skipped[0][1]})"
                                if self.skipped else ""))

    def sample(self, rng: np.random.Generator) -> str:
        n = int(rng.integers(self.lo, self.hi + 1))
        return " ".join(self.lines[i] for i in rng.integers(0, len(self.lines), n))

    def symbols(self) -> str:
        found = set("".join(self.lines))
        if self.hi > 1:
            found.add(" ")
        return "".join(sorted(found))


def _parse_range(value: str, spec: str) -> tuple[int, int]:
    lo, sep, hi = value.partition("-")
    try:
        lo_i, hi_i = int(lo), int(hi if sep else lo)
    except ValueError:
        raise ValueError(f"text source {spec!r}: expected a length range MIN-MAX "
                         f"(e.g. 1-8) or a number, found {value!r}") from None
    if not 1 <= lo_i <= hi_i:
        raise ValueError(f"text source {spec!r}: expected 1 <= MIN <= MAX, found {lo_i}-{hi_i}")
    return lo_i, hi_i


def _split_last(rest: str, spec: str, what: str) -> tuple[str, str]:
    head, sep, tail = rest.rpartition(":")
    if not sep or not head:
        raise ValueError(f"text source {spec!r}: expected '{what}:MIN-MAX', found {rest!r}")
    return head, tail


def parse_text_source(spec: str) -> TextSource:
    """A :class:`TextSource` from a spec (see module docstring). Raises ValueError when bad."""
    if not isinstance(spec, str) or ":" not in spec:
        raise ValueError(f"bad text source {spec!r}: expected {SPEC_HELP}")
    kind, _, rest = spec.strip().partition(":")
    if kind == "digits":
        lo, hi = _parse_range(rest, spec)
        return _SymbolSource("0123456789", lo, hi, spec)
    if kind == "random":
        charset_spec, length = _split_last(rest, spec, "CHARSET")
        lo, hi = _parse_range(length, spec)
        try:
            charset = load_charset(charset_spec)
        except CharsetError as e:
            raise ValueError(f"text source {spec!r}: {e}") from e
        return _SymbolSource("".join(charset.symbols), lo, hi, spec)
    if kind == "file":
        if not rest:
            raise ValueError(f"text source {spec!r}: expected 'file:PATH', found no path")
        return _LineSource(rest, spec)
    if kind == "words":
        path, length = _split_last(rest, spec, "PATH")
        lo, hi = _parse_range(length, spec)
        return _LineSource(path, spec, lo, hi, split=True)
    if kind == "lexicon":
        return _lexicon(rest, spec)
    if kind == "template":
        name, _, lang = rest.partition(":")
        return TemplateSource(name, lang or "mixed", spec)
    if kind == "mix":
        return _mix(rest, spec)
    raise ValueError(f"bad text source {spec!r}: unknown kind {kind!r}, expected {SPEC_HELP}")


def _lexicon(rest: str, spec: str) -> LexiconSource:
    head, sep, tail = rest.rpartition(":")
    if sep and tail and tail.replace("-", "").isdigit():
        return LexiconSource(head, *_parse_range(tail, spec), spec)
    return LexiconSource(rest, 1, 1, spec)


def _mix(rest: str, spec: str) -> MixSource:
    if not rest:
        raise ValueError(f"text source {spec!r}: expected 'mix:NAME' or 'mix:PATH.yaml', found no name")
    mix = read_mix(rest, spec, _parse_range)
    # a mix file's own relative paths start from its folder (as a YAML config's do)
    base = str(Path(rest).parent) if Path(rest).is_absolute() else None
    parts = []
    for source, weight in mix.sources.items():
        if source.startswith("mix:"):
            raise ValueError(f"text source {spec!r}: a mix cannot hold another mix ({source!r})")
        try:
            resolved = resolve_text_source(source, base, "a source of " + rest) if base else source
        except ConfigError as e:
            raise ValueError(f"text source {spec!r}: {e}") from None
        parts.append((parse_text_source(resolved), weight))
    allowed = None
    if mix.charset:
        try:
            allowed = "".join(load_charset(mix.charset).symbols)
        except CharsetError as e:
            raise ValueError(f"text source {spec!r}: charset: {e}") from e
    return MixSource(parts, *mix.length, spec, allowed)
