"""Self-contained evaluation reports: an HTML page of the worst samples, a CSV table, a JSON summary.

A row is a dict with ``image`` (encoded PNG/JPEG bytes or None), ``key``, ``truth``,
``pred``, ``confidence`` and ``cer``. The HTML page embeds images as base64 data URIs and
uses inline CSS only: no scripts, no network resources.
"""

from __future__ import annotations

import base64
import csv
import difflib
import html
import json
import pathlib
import unicodedata

CSV_COLUMNS = ("key", "truth", "pred", "confidence", "cer")

_CSS = """
body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}
table{border-collapse:collapse;margin-bottom:1.5em}
td,th{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f3f3f3}
.txt{font-family:monospace;white-space:pre-wrap;font-size:1.1em}
mark{background:#fbb}
mark.t{background:#bdf}
img{max-width:480px;max-height:96px}
"""


def _mime(data: bytes) -> str:
    return "image/jpeg" if data[:3] == b"\xff\xd8\xff" else "image/png"


def _img(data: bytes | None) -> str:
    if not data:
        return "<em>no image</em>"
    b64 = base64.b64encode(data).decode("ascii")
    return f'<img src="data:{_mime(data)};base64,{b64}" alt="">'


def _diff(truth: str, pred: str) -> tuple[str, str]:
    """Truth and prediction as HTML, differing spans wrapped in ``<mark>`` (truth: ``mark.t``)."""
    truth, pred = unicodedata.normalize("NFC", truth), unicodedata.normalize("NFC", pred)
    t_out, p_out = [], []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, truth, pred, autojunk=False).get_opcodes():
        t, p = html.escape(truth[i1:i2]), html.escape(pred[j1:j2])
        if op == "equal":
            t_out.append(t)
            p_out.append(p)
            continue
        if t:
            t_out.append(f'<mark class="t">{t}</mark>')
        if p:
            p_out.append(f"<mark>{p}</mark>")
    return "".join(t_out), "".join(p_out)


def _fmt(v: object) -> str:
    if v is None:
        return "&mdash;"
    if isinstance(v, float):
        return f"{v:.4f}"
    return html.escape(str(v))


def _summary_table(summary: dict) -> str:
    rows = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{_fmt(v)}</td></tr>" for k, v in summary.items())
    return f"<table>{rows}</table>"


def _row(r: dict) -> str:
    truth, pred = _diff(str(r.get("truth", "")), str(r.get("pred", "")))
    return (
        f"<tr><td>{html.escape(str(r.get('key', '')))}</td><td>{_img(r.get('image'))}</td>"
        f'<td><div class="txt">{truth}</div><div class="txt">{pred}</div></td>'
        f"<td>{_fmt(float(r.get('confidence', 0.0)))}</td><td>{_fmt(float(r.get('cer', 0.0)))}</td></tr>"
    )


def worst_rows(rows: list[dict], worst: int = 50) -> list[dict]:
    """The ``worst`` rows by descending CER, then ascending confidence."""
    return sorted(rows, key=lambda r: (-float(r["cer"]), float(r["confidence"])))[: max(0, worst)]


def write_html_report(
    path: str | pathlib.Path, rows: list[dict], summary: dict, title: str, worst: int = 50
) -> None:
    """Write a single-file HTML report: title, summary table, then the worst rows."""
    shown = worst_rows(rows, worst)
    head = "<tr><th>key</th><th>image</th><th>truth / prediction</th><th>confidence</th><th>CER</th></tr>"
    page = (
        f'<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{_CSS}</style></head><body>\n<h1>{html.escape(title)}</h1>\n"
        f"{_summary_table(summary)}\n<h2>Worst {len(shown)} of {len(rows)} samples</h2>\n"
        f"<table>{head}\n" + "\n".join(_row(r) for r in shown) + "\n</table>\n</body></html>\n"
    )
    _write_text(path, page)


def write_table_csv(path: str | pathlib.Path, rows: list[dict]) -> None:
    """Write ``key,truth,pred,confidence,cer`` (UTF-8; the image column is dropped)."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=CSV_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def write_summary_json(path: str | pathlib.Path, summary: dict) -> None:
    """Write the summary dict as indented UTF-8 JSON."""
    _write_text(path, json.dumps(summary, indent=2, ensure_ascii=False, sort_keys=True) + "\n")


def _write_text(path: str | pathlib.Path, text: str) -> None:
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
