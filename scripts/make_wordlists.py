"""Rebuild the bundled word lists ``ocr/data/synth/words/{korean,english}.tsv`` from the
``wordfreq`` package (a development tool only: ``pip install wordfreq==3.1.1``; the product
reads the bundled lists and never imports wordfreq).

Each line is ``WORD<TAB>COUNT``, COUNT being the word's frequency per billion words, most
frequent first. Korean keeps tokens made only of KS X 1001 syllables (wordfreq splits Korean
into morphemes; the text source glues particles on, see ``ocr.data.synth.lexicon``); English
keeps ASCII letters, apostrophes and hyphens. The data is CC BY-SA 4.0 (see LICENSE.md there).

    python scripts/make_wordlists.py [--korean 20000] [--english 30000]
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import wordfreq

from ocr.charset import load_charset

OUT = Path(__file__).resolve().parent.parent / "ocr" / "data" / "synth" / "words"


def write(lang: str, name: str, keep, n: int) -> None:
    rows = []  # the frequency dict, not word_frequency(): that tokenises Korean with MeCab
    for word, freq in sorted(wordfreq.get_frequency_dict(lang, wordlist="best").items(),
                             key=lambda item: -item[1]):
        if keep(word):
            rows.append(f"{word}\t{max(round(freq * 1e9), 1)}")
        if len(rows) == n:
            break
    (OUT / f"{name}.tsv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    print(f"{name}.tsv: {len(rows)} words")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--korean", type=int, default=20000, help="Korean words to keep")
    parser.add_argument("--english", type=int, default=30000, help="English words to keep")
    args = parser.parse_args()
    hangul = set(load_charset("hangul").symbols)
    write("ko", "korean", lambda w: all(c in hangul for c in w), args.korean)
    english = re.compile(r"^[a-z][a-z'\-]*$")
    write("en", "english", lambda w: bool(english.match(w)), args.english)


if __name__ == "__main__":
    main()
