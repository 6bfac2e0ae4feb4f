"""The charset contract.

A charset is an ordered tuple of symbols (Unicode code points after NFC). Index 0 of a
model's output is the CTC blank, so symbol ``i`` has class ``i + 1`` and
``num_classes == len(symbols) + 1``: always derived, never configured.

Specs accepted by :func:`load_charset`:

* a preset name: ``digits``, ``lower`` (digits + a-z, deep-text-recognition-benchmark's
  default), ``latin`` (digits, both cases, ASCII punctuation, space), ``hangul`` (the
  2,350 syllables of KS X 1001), ``hangul_full`` (all 11,172 syllables), ``space``,
  ``punct``, ``korean`` (= ``latin+hangul``), ``numeric`` (digits, space and ``+-.,:/%``: numbers
  as screens and meters show them), ``symbols`` (print symbols beyond ASCII: ``€ ₩ ° × ※ →``...);
* a union of specs joined by ``+``: ``digits+hangul``;
* a file: ``file:PATH`` or a path ending in ``.txt`` (one symbol per line, ``<space>``
  for a space) or ``.json`` (``{"symbols": [...]}``, as written in manifests);
* ``derive``: built from a dataset's labels with :meth:`Charset.from_labels`.

Labels are cleaned by :func:`clean_label` (the one place, used by ingest's validation and
synth's text sources): stripped of Unicode whitespace and invisible format characters at
both ends, inner space separators (NBSP, U+3000, ...) made U+0020 (runs kept as they are),
and refused (:class:`BadCharacter`) when a control, format or line-separator character is
left inside. The space U+0020 is a symbol like any other (``latin`` and ``korean`` hold it,
so "Seoul 2024" keeps its inner space); no other whitespace and no control or format
character can ever be a symbol of a derived charset (:func:`is_label_symbol`).
"""

from __future__ import annotations

import hashlib
import json
import string
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

BLANK = 0
SPACE_TOKEN = "<space>"


def nfc(text: str) -> str:
    """Labels are compared and stored in Unicode NFC."""
    return unicodedata.normalize("NFC", text)


# Categories that are never part of a label: controls (TAB, NUL, BEL, BS, DEL, CR, ...),
# format characters (BOM / U+FEFF, zero-width space U+200B, bidi marks, soft hyphen, ...),
# surrogates, and line / paragraph separators.
BAD_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})

# Names of the control characters, which unicodedata.name() does not know (their Unicode
# name aliases; BELL is U+0007's well-known name, its formal alias being ALERT).
_CONTROL_NAMES = dict(enumerate((
    "NULL", "START OF HEADING", "START OF TEXT", "END OF TEXT", "END OF TRANSMISSION", "ENQUIRY",
    "ACKNOWLEDGE", "BELL", "BACKSPACE", "CHARACTER TABULATION", "LINE FEED", "LINE TABULATION",
    "FORM FEED", "CARRIAGE RETURN", "SHIFT OUT", "SHIFT IN", "DATA LINK ESCAPE",
    "DEVICE CONTROL ONE", "DEVICE CONTROL TWO", "DEVICE CONTROL THREE", "DEVICE CONTROL FOUR",
    "NEGATIVE ACKNOWLEDGE", "SYNCHRONOUS IDLE", "END OF TRANSMISSION BLOCK", "CANCEL",
    "END OF MEDIUM", "SUBSTITUTE", "ESCAPE", "INFORMATION SEPARATOR FOUR",
    "INFORMATION SEPARATOR THREE", "INFORMATION SEPARATOR TWO", "INFORMATION SEPARATOR ONE")))
_CONTROL_NAMES.update({0x7F: "DELETE", 0x85: "NEXT LINE"})


def char_name(c: str) -> str:
    """``U+0007 BELL``: a code point and its name (control characters included)."""
    name = unicodedata.name(c, "") or _CONTROL_NAMES.get(ord(c)) or (
        "C1 CONTROL" if 0x80 <= ord(c) <= 0x9F else "UNNAMED")
    return f"U+{ord(c):04X} {name}"


def is_label_symbol(c: str) -> bool:
    """Whether ``c`` may be a symbol of a label (and of a derived charset): the space U+0020
    may, no other whitespace and no control, format or separator character may."""
    return c == " " or not (c.isspace() or unicodedata.category(c) in BAD_CATEGORIES)


def _strippable(c: str) -> bool:
    return c.isspace() or unicodedata.category(c) == "Cf"


class BadCharacter(ValueError):
    """A label holds a character no label may hold (see :func:`clean_label`)."""

    def __init__(self, text: str, index: int):
        self.text, self.index, self.char = text, index, text[index]
        kind = {"Cc": "a control character", "Cf": "an invisible format character",
                "Cs": "a lone surrogate", "Zl": "a line separator", "Zp": "a paragraph separator"}
        super().__init__(f"{char_name(self.char)} ({kind[unicodedata.category(self.char)]}) at "
                         f"index {index} of label {text!r}: expected printable symbols only")


def clean_label(text: str) -> str:
    """The clean form of a label: NFC; leading and trailing whitespace of any kind (space,
    TAB, CR, NBSP, U+3000, ...) and invisible format characters (BOM, U+200B, ...) removed;
    inner space separators (category Zs: NBSP, U+3000, thin space, ...) made U+0020, one for
    one, so runs of spaces stay as they are. Raises :class:`BadCharacter` naming the first
    character left that no label may hold (TAB or CR inside, NUL, BEL, BS, DEL, U+200B
    inside, ...), with its index in the cleaned label."""
    text = nfc(text)
    start, end = 0, len(text)
    while start < end and _strippable(text[start]):
        start += 1
    while end > start and _strippable(text[end - 1]):
        end -= 1
    text = text[start:end]
    if text.isprintable():  # the common case, at C speed: no Cc, Cf, Cs, Zl, Zp, nor Zs but " "
        return text
    out = []
    for i, c in enumerate(text):
        if c != " " and c.isspace() and unicodedata.category(c) == "Zs":
            c = " "
        elif not is_label_symbol(c):
            raise BadCharacter(text, i)
        out.append(c)
    return "".join(out)


def _ksx1001_hangul() -> str:
    """The 2,350 precomposed syllables of KS X 1001 (EUC-KR rows 0xB0-0xC8)."""
    out = []
    for hi in range(0xB0, 0xC9):
        for lo in range(0xA1, 0xFF):
            out.append(bytes([hi, lo]).decode("euc_kr"))
    return "".join(out)


_PRESETS = {
    "digits": lambda: string.digits,
    "lower": lambda: string.digits + string.ascii_lowercase,
    "latin": lambda: string.digits + string.ascii_letters + string.punctuation + " ",
    "space": lambda: " ",
    "punct": lambda: string.punctuation,
    "hangul": _ksx1001_hangul,
    "hangul_full": lambda: "".join(chr(c) for c in range(0xAC00, 0xD7A4)),
    "korean": lambda: _PRESETS["latin"]() + _ksx1001_hangul(),
    "numeric": lambda: string.digits + " +-.,:/%",
    "symbols": lambda: "²·°±×÷…‘’“”€£¥₩※→←↑↓○●□■△▲☆★",
}

PRESET_NAMES = tuple(sorted(_PRESETS))


class CharsetError(ValueError):
    """A charset spec or a charset comparison that cannot be satisfied."""


@dataclass(frozen=True)
class Charset:
    symbols: tuple[str, ...]
    spec: str = ""
    _index: dict = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self):
        normalised = tuple(nfc(s) for s in self.symbols)
        bad = [s for s in normalised if len(s) != 1]
        if bad:
            raise CharsetError(f"charset symbols must be single code points after NFC, found {bad[:5]}")
        if len(set(normalised)) != len(normalised):
            dup = sorted({s for s in normalised if normalised.count(s) > 1})
            raise CharsetError(f"charset has duplicate symbols: {dup[:10]}")
        if not normalised:
            raise CharsetError("charset is empty: expected at least one symbol")
        object.__setattr__(self, "symbols", normalised)
        object.__setattr__(self, "_index", {s: i + 1 for i, s in enumerate(normalised)})

    # --- construction ---------------------------------------------------------------
    @classmethod
    def from_string(cls, chars: str, spec: str = "") -> "Charset":
        seen: dict[str, None] = {}
        for c in nfc(chars):
            seen.setdefault(c, None)
        return cls(tuple(seen), spec=spec)

    @classmethod
    def from_labels(cls, labels: Iterable[str]) -> "Charset":
        """Every symbol that occurs in ``labels``, sorted by code point. Characters that are
        no label symbol (:func:`is_label_symbol`: whitespace other than U+0020, controls,
        format characters) never enter; pass labels cleaned by :func:`clean_label`, so no
        leading or trailing space does either."""
        found: set[str] = set()
        for label in labels:
            found.update(nfc(label))
        return cls(tuple(sorted(c for c in found if is_label_symbol(c))), spec="derive")

    @classmethod
    def from_json(cls, data: dict) -> "Charset":
        cs = cls(tuple(data["symbols"]), spec=data.get("spec", ""))
        if "hash" in data and data["hash"] != cs.hash:
            raise CharsetError(f"charset hash mismatch: file says {data['hash']}, symbols give {cs.hash}")
        return cs

    # --- the contract ---------------------------------------------------------------
    @property
    def num_classes(self) -> int:
        """Classes of a CTC head: the symbols plus the blank at index 0."""
        return len(self.symbols) + 1

    @property
    def hash(self) -> str:
        """Stable across processes and versions: sha256 of the ordered symbols."""
        payload = "\x1f".join(self.symbols).encode("utf-8")
        return "cs1-" + hashlib.sha256(payload).hexdigest()[:16]

    def __len__(self) -> int:
        return len(self.symbols)

    def __contains__(self, symbol: str) -> bool:
        return symbol in self._index

    def missing(self, text: str) -> list[str]:
        """Symbols of ``text`` (NFC) that this charset lacks, in order of first use."""
        out: dict[str, None] = {}
        for c in nfc(text):
            if c not in self._index:
                out.setdefault(c, None)
        return list(out)

    def encode(self, text: str) -> list[int]:
        """Class indices (1-based; 0 is the blank). Raises on unknown symbols."""
        text = nfc(text)
        try:
            return [self._index[c] for c in text]
        except KeyError:
            raise CharsetError(
                f"label {text!r} has symbols outside the charset ({self.spec or self.hash}): "
                f"{self.missing(text)}"
            ) from None

    def decode(self, indices: Iterable[int], collapse: bool = False) -> str:
        """Indices to text; ``collapse`` applies CTC's merge-repeats-then-drop-blanks."""
        out, prev = [], None
        for i in indices:
            i = int(i)
            if collapse and i == prev:
                continue
            prev = i
            if i != BLANK:
                out.append(self.symbols[i - 1])
        return "".join(out)

    def filter(self, text: str) -> str:
        """``text`` without the symbols this charset lacks."""
        return "".join(c for c in nfc(text) if c in self._index)

    def union(self, other: "Charset") -> "Charset":
        """This charset's symbols in order, then ``other``'s new ones: old indices are kept."""
        extra = [s for s in other.symbols if s not in self._index]
        spec = f"{self.spec}+{other.spec}" if self.spec and other.spec else ""
        return Charset(self.symbols + tuple(extra), spec=spec)

    def difference(self, other: "Charset") -> dict:
        """What differs from ``other``: symbols only here, only there, and moved ones."""
        mine, theirs = set(self.symbols), set(other.symbols)
        moved = [s for s in self.symbols if s in theirs and self._index[s] != other._index[s]]
        return {
            "only_here": [s for s in self.symbols if s not in theirs],
            "only_there": [s for s in other.symbols if s not in mine],
            "moved": moved,
        }

    def describe_difference(self, other: "Charset") -> str:
        d = self.difference(other)
        parts = []
        for k, title in (("only_here", "only in this"), ("only_there", "only in the other"),
                         ("moved", "at another index")):
            if d[k]:
                shown = "".join(d[k][:40]) + ("…" if len(d[k]) > 40 else "")
                parts.append(f"{len(d[k])} {title} ({shown!r})")
        return "; ".join(parts) or "identical"

    def to_json(self) -> dict:
        return {"spec": self.spec, "hash": self.hash, "num_classes": self.num_classes,
                "symbols": list(self.symbols)}

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_json(), ensure_ascii=False, indent=1), "utf-8")


def ctc_min_steps(label: str) -> int:
    """Fewest CTC frames that can emit ``label``: its length plus one blank per adjacent repeat."""
    repeats = sum(1 for a, b in zip(label, label[1:]) if a == b)
    return len(label) + repeats


def _load_file(path: Path, spec: str) -> Charset:
    if path.suffix == ".json":
        return Charset.from_json(json.loads(path.read_text("utf-8")))
    symbols = []
    for line in path.read_text("utf-8").splitlines():
        line = line.rstrip("\r\n")
        if line == SPACE_TOKEN:
            symbols.append(" ")
        elif line:
            symbols.extend(nfc(line))  # a line may hold one symbol or a run of them
    return Charset.from_string("".join(symbols), spec=spec)


def load_charset(spec: str) -> Charset:
    """A charset from a preset name, a ``+`` union, or a file (see module docstring)."""
    spec = spec.strip()
    if not spec:
        raise CharsetError("empty charset spec: expected a preset name, a file, or 'derive'")
    if spec == "derive":
        raise CharsetError("'derive' needs labels: use Charset.from_labels(labels)")
    if spec.startswith("file:") or spec.endswith((".txt", ".json")):
        path = Path(spec.removeprefix("file:"))
        if not path.is_file():
            raise CharsetError(f"charset file not found: {path}")
        return _load_file(path, spec)
    if "+" in spec:
        parts = [load_charset(p) for p in spec.split("+")]
        out = parts[0]
        for p in parts[1:]:
            out = out.union(p)
        return Charset(out.symbols, spec=spec)
    if spec not in _PRESETS:
        raise CharsetError(
            f"unknown charset {spec!r}: expected one of {', '.join(PRESET_NAMES)}, a '+' union, "
            "a .txt/.json file, or 'derive'"
        )
    return Charset.from_string(_PRESETS[spec](), spec=spec)
