"""Frequency-weighted words: the ``lexicon:NAME|PATH[:MIN-MAX]`` text source.

``NAME`` is a bundled list (:data:`BUILTIN_LISTS`: ``korean``, ``english``, from wordfreq's
data, CC BY-SA 4.0, see ``words/LICENSE.md``); ``PATH`` a UTF-8 file of ``WORD[<TAB>COUNT]``
lines (COUNT defaults to 1, so a plain word list is sampled uniformly). Words are drawn with
probability proportional to COUNT ** 0.5: frequent words come often, as in real text, yet
the long tail (and its rare characters) still shows up. MIN..MAX words are joined by spaces.

The bundled lists come with the habits of print: Korean morphemes often carry a particle or
an ending (``학교`` -> ``학교에서``), English words are sometimes Capitalised or UPPER case.
"""

from __future__ import annotations

import logging
from importlib import resources

import numpy as np

from ocr import storage
from ocr.charset import BadCharacter, clean_label
from ocr.data.synth.textsource import TextSource, sorted_symbols

log = logging.getLogger(__name__)

BUILTIN_LISTS = ("korean", "english")
FLATTEN = 0.5  # sampling weight = count ** FLATTEN
# Particles and endings glued to Korean words of two or more syllables (with PARTICLE_RATE):
# (after a final consonant, after a vowel), as Korean chooses 을/를, 이/가 ...
PARTICLES = (("은", "는"), ("이", "가"), ("을", "를"), ("과", "와"), ("으로", "로"), ("에", "에"),
             ("에서", "에서"), ("의", "의"), ("도", "도"), ("만", "만"), ("까지", "까지"),
             ("부터", "부터"), ("에게", "에게"), ("하고", "하고"), ("처럼", "처럼"), ("보다", "보다"),
             ("입니다", "입니다"), ("이다", "다"), ("하는", "하는"), ("한", "한"), ("할", "할"),
             ("해요", "해요"), ("하기", "하기"), ("된", "된"))
PARTICLE_RATE = 0.35


def read_lexicon(name_or_path: str, spec: str) -> tuple[list[str], np.ndarray]:
    """(words, counts) of a bundled list or a ``WORD[<TAB>COUNT]`` file."""
    if name_or_path in BUILTIN_LISTS:
        text = (resources.files("ocr.data.synth") / "words" / f"{name_or_path}.tsv").read_text("utf-8")
    else:
        try:
            text = storage.read_text(name_or_path)
        except (OSError, UnicodeDecodeError) as e:
            raise ValueError(f"text source {spec!r}: cannot read {name_or_path} (expected one of "
                             f"the bundled lists {', '.join(BUILTIN_LISTS)} or a word file): {e}") from e
    words, counts, skipped = [], [], []
    for n, line in enumerate(text.splitlines(), start=1):
        word, _, count = line.partition("\t")
        try:
            word = clean_label(word)
            weight = float(count) if count.strip() else 1.0
        except BadCharacter as e:
            skipped.append((n, str(e)))
            continue
        except ValueError:
            raise ValueError(f"text source {spec!r}: line {n} of {name_or_path}: expected "
                             f"WORD or WORD<TAB>COUNT, found {line!r}") from None
        if word and weight > 0:
            words.append(word)
            counts.append(weight)
    if skipped:
        log.warning("text source %r: left out %d words with a control or format character, e.g. "
                    "line %d: %s", spec, len(skipped), *skipped[0])
    if not words:
        raise ValueError(f"text source {spec!r}: expected at least one word in {name_or_path}, found none")
    return words, np.asarray(counts, dtype=np.float64)


def _has_final(syllable: str) -> bool:
    """Whether a Hangul syllable ends in a consonant (batchim): 책 yes, 나 no."""
    code = ord(syllable) - 0xAC00
    return 0 <= code < 11172 and code % 28 != 0


class LexiconSource(TextSource):
    """MIN..MAX words, each drawn with probability proportional to count ** FLATTEN."""

    def __init__(self, name_or_path: str, lo: int, hi: int, spec: str):
        self.spec, self.lo, self.hi = spec, lo, hi
        self.words, counts = read_lexicon(name_or_path, spec)
        weights = counts ** FLATTEN
        self._cdf = np.cumsum(weights / weights.sum())
        self.korean = name_or_path == "korean"
        self.english = name_or_path == "english"

    def _word(self, rng: np.random.Generator) -> str:
        i = min(int(np.searchsorted(self._cdf, rng.random())), len(self.words) - 1)
        word = self.words[i]
        if self.korean and len(word) >= 2 and rng.random() < PARTICLE_RATE:
            word += PARTICLES[int(rng.integers(len(PARTICLES)))][0 if _has_final(word[-1]) else 1]
        elif self.english:
            r = rng.random()
            word = word.capitalize() if r < 0.2 else word.upper() if r < 0.27 else word
        return word

    def sample(self, rng: np.random.Generator) -> str:
        n = int(rng.integers(self.lo, self.hi + 1))
        return " ".join(self._word(rng) for _ in range(n))

    def symbols(self) -> str:
        chars = set("".join(self.words))
        if self.korean:
            chars.update("".join(p for pair in PARTICLES for p in pair))
        if self.english:
            chars.update(w.upper() for w in "".join(self.words))
        if self.hi > 1:
            chars.add(" ")
        return sorted_symbols(chars)
