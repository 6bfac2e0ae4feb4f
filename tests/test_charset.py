"""The charset contract: presets, unions, files, derivation, blank at 0, NFC, stable hash."""

import json
import subprocess
import sys

import pytest

from ocr.charset import BLANK, Charset, CharsetError, ctc_min_steps, load_charset


def test_presets_sizes_and_num_classes():
    assert len(load_charset("digits")) == 10
    assert load_charset("digits").num_classes == 11
    assert len(load_charset("lower")) == 36
    assert len(load_charset("hangul")) == 2350
    assert len(load_charset("hangul_full")) == 11172
    assert "힣" in load_charset("hangul_full") and "똠" not in load_charset("hangul")
    assert " " in load_charset("latin") and "A" in load_charset("latin")


def test_union_keeps_order_and_dedups():
    cs = load_charset("digits+lower")
    assert cs.symbols[:10] == tuple("0123456789")
    assert len(cs) == 36
    assert cs.spec == "digits+lower"
    assert load_charset("digits+hangul").encode("1가") == [2, 11]


def test_blank_is_zero_and_round_trip():
    cs = load_charset("digits")
    assert BLANK == 0
    assert cs.encode("0190") == [1, 2, 10, 1]
    assert cs.decode([1, 2, 10, 1]) == "0190"
    # CTC collapse: repeats merged, blanks dropped, blank separates true repeats
    assert cs.decode([0, 2, 2, 0, 2, 3, 3, 0], collapse=True) == "112"


def test_nfc_labels():
    cs = load_charset("hangul")
    decomposed = "\u1100\u1161\u11a8"  # 각 as conjoining jamo
    assert cs.encode(decomposed) == cs.encode("각")
    assert Charset.from_labels([decomposed]).symbols == ("각",)


def test_stable_hash_across_processes():
    cs = load_charset("digits+hangul")
    code = "from ocr.charset import load_charset; print(load_charset('digits+hangul').hash)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == cs.hash
    assert load_charset("digits").hash != Charset(tuple("0123456798")).hash  # order matters


def test_from_file_and_json(tmp_path):
    f = tmp_path / "chars.txt"
    f.write_text("가\n나\n<space>\n1\n", "utf-8")
    cs = load_charset(str(f))
    assert cs.symbols == ("가", "나", " ", "1")
    j = tmp_path / "cs.json"
    cs.save(j)
    assert load_charset(str(j)) == cs
    data = json.loads(j.read_text("utf-8"))
    data["hash"] = "cs1-0000"
    j.write_text(json.dumps(data))
    with pytest.raises(CharsetError, match="hash mismatch"):
        load_charset(str(j))


def test_derive_from_labels_sorted():
    cs = Charset.from_labels(["ba", "ac", "다가"])
    assert cs.symbols == ("a", "b", "c", "가", "다")
    assert cs.spec == "derive"


def test_errors_name_what_was_expected():
    with pytest.raises(CharsetError, match="expected one of"):
        load_charset("klingon")
    with pytest.raises(CharsetError, match=r"\['a'\]"):
        load_charset("digits").encode("1a")
    with pytest.raises(CharsetError, match="duplicate"):
        Charset(("a", "a"))


def test_difference_names_symbols():
    old, new = load_charset("digits"), Charset(tuple("0123456789ab"))
    assert old.difference(new) == {"only_here": [], "only_there": ["a", "b"], "moved": []}
    assert "2 only in the other ('ab')" in old.describe_difference(new)
    grown = old.union(Charset(tuple("ab")))
    assert grown.symbols[:10] == old.symbols  # old classifier rows keep their index


def test_ctc_min_steps_counts_repeats():
    assert ctc_min_steps("abc") == 3
    assert ctc_min_steps("aab") == 4
    assert ctc_min_steps("1111") == 7
