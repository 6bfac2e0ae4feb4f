"""The recognisers shipped in the package (``builtin:NAME``), as ``ocr models --builtin`` lists
them: what each reads, its charset, its size on disk and the figures its recipe measured."""

from __future__ import annotations

from ocr import checkpoint


def builtin_rows() -> list[dict]:
    """One row per built-in model: name, task, model, charset (size, hash), MB, figures."""
    rows = []
    for name in checkpoint.builtin_names():
        path = f"{checkpoint.BUILTIN}{name}"
        meta = checkpoint.read_meta(path)
        folder = checkpoint.local_copy(path)
        info = meta.get("builtin") or {}
        charset = checkpoint.charset_of(meta)
        rows.append({
            "name": path, "task": meta["task"], "model": meta["arch"]["name"],
            "description": info.get("description", ""),
            "charset_size": len(charset) if charset else None,
            "charset_hash": charset.hash if charset else None,
            "megabytes": round(sum(f.stat().st_size for f in folder.iterdir() if f.is_file()) / 1e6, 2),
            "figures": info.get("figures") or {},
            "recipe": info.get("recipe", ""),
        })
    return rows


def builtin_table() -> str:
    rows = builtin_rows()
    if not rows:
        return "no built-in models in this install"
    lines = []
    for r in rows:
        lines.append(f"{r['name']}: {r['description']}")
        lines.append(f"    {r['task']} model {r['model']}, {r['charset_size']} symbols (charset "
                     f"{r['charset_hash']}), {r['megabytes']} MB, recipe `ocr recipe "
                     f"{r['recipe'].removesuffix('.yaml')}`")
        for where, f in r["figures"].items():
            shown = "  ".join(f"{k} {v:.4f}" for k, v in f.items() if k in ("cer", "word_accuracy"))
            lines.append(f"    {where}: {shown} ({f.get('samples', '?')} lines)")
    return "\n".join(lines)
