"""Text recognition metrics (hand-computed cases) and the HTML/CSV/JSON reports."""

from __future__ import annotations

import csv
import io
import json

import pytest
from PIL import Image

from ocr.eval.metrics import TextMetrics, cer, edit_distance
from ocr.eval.report import write_html_report, write_summary_json, write_table_csv


def _metrics(pairs):
    m = TextMetrics()
    for truth, pred in pairs:
        m.add(truth, pred)
    return m


def test_edit_distance_and_cer_single_pair():
    assert edit_distance("abc", "abd") == 1
    assert cer("abc", "abd") == pytest.approx(1 / 3)
    assert edit_distance("kitten", "sitting") == 3
    assert cer("", "xy") == 2.0  # denominator max(1, 0) = 1


def test_empty_pair_is_correct_word_with_zero_ned():
    s = _metrics([("", "")]).summary()
    assert s["samples"] == 1
    assert s["word_accuracy"] == 1.0
    assert s["ned_distance"] == 0.0
    assert s["ned"] == 1.0
    assert s["cer"] == 0.0


def test_corpus_cer_is_sum_of_edits_over_sum_of_lengths():
    pairs = [("abc", "abd"), ("hello", "hello"), ("ab", ""), ("x", "xyz")]
    edits = [1, 0, 2, 2]
    s = _metrics(pairs).summary()
    assert s["cer"] == pytest.approx(sum(edits) / 11)
    assert s["char_accuracy"] == pytest.approx((11 - 5) / 11)
    assert s["word_accuracy"] == pytest.approx(1 / 4)
    assert s["samples"] == 4


def test_ned_and_char_accuracy_clip():
    s = _metrics([("abcd", "ab")]).summary()
    assert s["ned_distance"] == pytest.approx(0.5)
    assert s["ned"] == pytest.approx(1 - 0.5)
    # NED is a per-sample mean: ("abcd","ab") -> 0.5, ("a","xyz") -> 3/3 = 1.
    s = _metrics([("abcd", "ab"), ("a", "xyz")]).summary()
    assert s["ned_distance"] == pytest.approx(0.75)
    assert s["ned"] == pytest.approx(0.25)
    assert s["cer"] == pytest.approx(5 / 5)
    s = _metrics([("a", "xyz")]).summary()
    assert s["cer"] == pytest.approx(3.0)
    assert s["char_accuracy"] == 0.0


def test_no_truth_chars_falls_back_to_pred_chars():
    s = _metrics([("", "ab"), ("", "")]).summary()
    assert s["cer"] == pytest.approx(2 / 2)
    assert s["word_accuracy"] == pytest.approx(0.5)


def test_case_sensitive_and_nfc():
    assert edit_distance("\u1100\u1161", "가") == 0
    assert edit_distance("Abc", "abc") == 1
    s = _metrics([("\u1100\u1161", "가")]).summary()
    assert s["word_accuracy"] == 1.0 and s["cer"] == 0.0


def test_empty_accumulator_summary():
    s = TextMetrics().summary()
    assert s["samples"] == 0
    for k in ("cer", "ned", "ned_distance", "char_accuracy", "word_accuracy"):
        assert s[k] is None


def test_merge_and_sums_round_trip():
    pairs = [("abc", "abd"), ("hello", "help"), ("", ""), ("가나다", "가나")]
    whole = _metrics(pairs)
    a, b = _metrics(pairs[:2]), _metrics(pairs[2:])
    assert a.merge(b).summary() == whole.summary()
    sums = whole.to_sums()
    assert all(isinstance(v, float) for v in sums)
    assert TextMetrics.from_sums(sums).summary() == whole.summary()
    # an all-reduce is an element-wise sum of the vectors
    summed = [x + y for x, y in zip(_metrics(pairs[:2]).to_sums(), _metrics(pairs[2:]).to_sums())]
    assert TextMetrics.from_sums(summed).summary() == whole.summary()
    with pytest.raises(ValueError):
        TextMetrics.from_sums([1.0])


def _png(color) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (8, 4), color).save(buf, format="PNG")
    return buf.getvalue()


def _rows():
    return [
        {
            "image": _png("white"),
            "key": "perfect",
            "truth": "ok",
            "pred": "ok",
            "confidence": 0.99,
            "cer": 0.0,
        },
        {
            "image": _png("red"),
            "key": "worst",
            "truth": "<b>&",
            "pred": "<b>X",
            "confidence": 0.2,
            "cer": 0.25,
        },
        {"image": None, "key": "mid", "truth": "abc", "pred": "abd", "confidence": 0.5, "cer": 1 / 3},
        {"image": _png("blue"), "key": "bad", "truth": "xyz", "pred": "q", "confidence": 0.1, "cer": 1.0},
    ]


def test_html_report(tmp_path):
    rows = _rows()
    summary = _metrics([(r["truth"], r["pred"]) for r in rows]).summary()
    out = tmp_path / "sub" / "report.html"
    write_html_report(out, rows, summary, title="eval <run>")
    page = out.read_text(encoding="utf-8")
    assert "<title>eval &lt;run&gt;</title>" in page
    assert "&lt;b&gt;" in page and "&amp;" in page
    assert "<b>&" not in page
    assert "data:image/png;base64," in page
    assert "ab<mark>d</mark>" in page
    assert "<mark>X</mark>" in page
    assert "http://" not in page and "https://" not in page and "<script" not in page
    order = [page.index(f"<td>{k}</td>") for k in ("bad", "mid", "worst", "perfect")]
    assert order == sorted(order)
    assert "word_accuracy" in page


def test_html_report_worst_limit_and_jpeg(tmp_path):
    buf = io.BytesIO()
    Image.new("RGB", (8, 4), "green").save(buf, format="JPEG")
    rows = _rows() + [
        {"image": buf.getvalue(), "key": "jpg", "truth": "a", "pred": "b", "confidence": 0.3, "cer": 1.0}
    ]
    out = tmp_path / "r.html"
    write_html_report(out, rows, {"samples": 5, "cer": None}, title="t", worst=2)
    page = out.read_text(encoding="utf-8")
    # ties on cer=1.0 broken by ascending confidence: bad (0.1) then jpg (0.3)
    assert page.index("<td>bad</td>") < page.index("<td>jpg</td>")
    assert "data:image/jpeg;base64," in page
    assert "<td>perfect</td>" not in page and "<td>mid</td>" not in page


def test_csv_and_json(tmp_path):
    rows = _rows()
    write_table_csv(tmp_path / "t.csv", rows)
    with open(tmp_path / "t.csv", encoding="utf-8", newline="") as f:
        back = list(csv.DictReader(f))
    assert list(back[0].keys()) == ["key", "truth", "pred", "confidence", "cer"]
    assert [r["key"] for r in back] == [r["key"] for r in rows]
    assert back[1]["truth"] == "<b>&"
    assert float(back[2]["cer"]) == pytest.approx(1 / 3)
    summary = _metrics([("가", "가")]).summary()
    write_summary_json(tmp_path / "s.json", summary)
    assert json.loads((tmp_path / "s.json").read_text(encoding="utf-8")) == summary
