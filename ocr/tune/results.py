"""A finished (or stopped) sweep: results table, plots, and the best checkpoint published."""

from __future__ import annotations

import csv
import io
import math

from ocr import storage


def _status(result, max_t: int, total_steps: int) -> tuple[str, int | None]:
    """finished | stopped early | diverged at step N | error: ..., and the diverged step."""
    last = result.metrics or {}
    if last.get("diverged"):
        return f"diverged at step {last.get('diverged_step')}", last.get("diverged_step")
    if result.error:
        return f"error: {str(result.error).strip().splitlines()[-1][:120]}", None
    # a trial resumed after an interruption counts its iterations from the restore: one that
    # reached the last step finished, whatever its iteration count
    reached_end = (last.get("step") or 0) >= total_steps
    if not reached_end and last.get("training_iteration", 0) < max_t - 1:
        return "stopped early", None
    return "finished", None


def _history(result, metric: str) -> list[tuple[int, float]]:
    df = result.metrics_dataframe
    if df is None or metric not in df or "step" not in df:
        return []
    rows = df[["step", metric]].dropna()
    return [(int(s), float(v)) for s, v in zip(rows["step"], rows[metric]) if math.isfinite(float(v))]


def table(grid, metric: str, mode: str, max_t: int, total_steps: int) -> list[dict]:
    rows = []
    for r in grid:
        history = _history(r, metric)
        status, _ = _status(r, max_t, total_steps)
        pick = min if mode == "min" else max
        best = pick((v for _, v in history), default=None)
        last = r.metrics or {}
        rows.append({"trial": (r.path or "").rstrip("/").split("/")[-1], **r.config["point"],
                     "status": status, f"best_{metric}": best, "steps": last.get("step"),
                     "seconds": last.get("seconds"), "run_dir": _run_dir(r),
                     "_history": history})
    key = f"best_{metric}"
    rows.sort(key=lambda row: (row[key] is None, (row[key] or 0) * (1 if mode == "min" else -1)))
    return rows


def _run_dir(result) -> str:
    trial = (result.metrics or {}).get("trial_id") or ""
    return storage.join(result.config["trials_dir"], f"trial-{trial}") if trial else ""


def write_csv(rows: list[dict], uri: str) -> None:
    cols = [k for k in rows[0] if not k.startswith("_")]
    for row in rows[1:]:
        cols += [k for k in row if k not in cols and not k.startswith("_")]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, cols, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    storage.write_text(uri, buf.getvalue(), storage.S3Settings.from_env())


def print_table(rows: list[dict], metric: str) -> None:
    params = [k for k in rows[0] if k not in ("trial", "status", "steps", "seconds", "run_dir")
              and not k.startswith("_") and not k.startswith("best_")]
    head = f"{'trial':>14} " + " ".join(f"{p:>12}" for p in params) + f" {metric:>9} {'steps':>6}  status"
    print(head + "\n" + "-" * len(head))
    for row in rows:
        best = row[f"best_{metric}"]
        print(f"{row['trial'][-14:]:>14} " + " ".join(f"{str(row.get(p))[:12]:>12}" for p in params)
              + f" {'-' if best is None else f'{best:.4f}':>9} {str(row['steps']):>6}  {row['status']}")


def plots(rows: list[dict], metric: str, sweep_dir: str) -> list[str]:
    """val metric against learning rate, and a learning curve per trial (PNG)."""
    import matplotlib  # lazy: 0.5 s to import, and only the end of a sweep plots

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = []
    fig, ax = plt.subplots(figsize=(6, 4))
    for preset in sorted({str(r.get("model", "")) for r in rows}):
        pts = [(r["lr"], r[f"best_{metric}"]) for r in rows
               if "lr" in r and r[f"best_{metric}"] is not None and str(r.get("model", "")) == preset]
        if pts:
            ax.scatter(*zip(*pts), label=preset or "trials")
    ax.set_xscale("log")
    ax.set(xlabel="learning rate", ylabel=f"best {metric}", title=f"{metric} against learning rate")
    ax.legend()
    out.append(_save(fig, storage.join(sweep_dir, f"{metric}_vs_lr.png")))
    fig, ax = plt.subplots(figsize=(7, 4))
    for r in rows:
        if r["_history"]:
            ax.plot(*zip(*r["_history"]), marker=".", label=r["trial"][-8:])
    ax.set(xlabel="step", ylabel=metric, title="learning curves")
    ax.legend(fontsize=6)
    out.append(_save(fig, storage.join(sweep_dir, "learning_curves.png")))
    plt.close("all")
    return out


def _save(fig, uri: str) -> str:
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=100)
    storage.write_bytes(uri, buf.getvalue(), storage.S3Settings.from_env())
    return uri


def publish(rows: list[dict], sweep_dir: str) -> str | None:
    """Copy the best trial's best checkpoint (model.pt, model.json) to SWEEP/best."""
    s3 = storage.S3Settings.from_env()
    for row in rows:
        src = storage.join(row["run_dir"], "best") if row["run_dir"] else ""
        if src and storage.exists(storage.join(src, "model.json"), s3):
            for name in ("model.pt", "model.json"):
                storage.write_bytes(storage.join(sweep_dir, "best", name),
                                    storage.read_bytes(storage.join(src, name), s3), s3)
            return storage.join(sweep_dir, "best")
    return None


def summarise(grid, metric: str, mode: str, max_t: int, total_steps: int, sweep_dir: str) -> dict:
    rows = table(grid, metric, mode, max_t, total_steps)
    write_csv(rows, storage.join(sweep_dir, "results.csv"))
    print_table(rows, metric)
    pngs = plots(rows, metric, sweep_dir)
    best = publish(rows, sweep_dir)
    steps_run = sum(int(r["steps"] or 0) for r in rows)
    full = total_steps * len(rows)
    saved = 1 - steps_run / full if full else 0.0
    print(f"best {metric}: {rows[0][f'best_{metric}']} ({rows[0]['trial']}); best checkpoint: {best}")
    print(f"steps run {steps_run} of {full} if every trial ran to the end: the scheduler saved "
          f"{100 * saved:.0f}%")
    return {"best": best, "best_metric": rows[0][f"best_{metric}"], "rows": rows, "plots": pngs,
            "steps_run": steps_run, "steps_full": full, "saved_fraction": saved, "sweep_dir": sweep_dir}
