"""A training run's MLflow record (:mod:`ocr.tracking`): opened by the driver before the
workers start, filled by rank 0's :class:`~ocr.train.runlog.RunLog`, closed by the driver
with the artifacts (config, summary, model.json, metrics.csv, learning curves) and, when
asked, the best checkpoint registered."""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import os
import subprocess

from ocr import storage, tracking
from ocr.data.shards import manifest_uri
from ocr.train.config import TrainConfig
from ocr.train.task import TrainTask

# What is not a training setting: not logged as a param.
_NOT_PARAMS = {"fault_at_step", "nan_at_step", "tracking", "tracking_uri", "experiment", "register_model"}


def _source_commit() -> str:
    """The git commit of the ocr source, when it runs from a checkout."""
    here = os.path.dirname(os.path.abspath(__file__))
    try:
        out = subprocess.run(["git", "-C", here, "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=5)
    except (OSError, subprocess.SubprocessError):
        return ""
    return out.stdout.strip() if out.returncode == 0 else ""


def _manifest_hash(data: str) -> str:
    try:
        text = storage.read_text(manifest_uri(data), storage.S3Settings.from_env())
    except Exception:  # noqa: BLE001 - the task already read it; a tag is not worth failing for
        return ""
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def tags_of(cfg: TrainConfig, task: TrainTask, run_dir: str) -> dict:
    meta = task.model_meta()
    charset = (meta.get("charset") or {}).get("hash", "")
    commit = _source_commit()
    return {"task": cfg.task, "model_preset": cfg.model or "default", "charset_hash": charset,
            "data_manifest_hash": _manifest_hash(cfg.data), "run_dir": run_dir,
            "mlflow.source.git.commit": commit, "mlflow.source.name": "ocr train"}


def open_run(cfg: TrainConfig, task: TrainTask, run_name: str, run_dir: str,
             parent: tracking.RunRef | None = None) -> tracking.RunRef | None:
    """The run's MLflow run (reopened when the run folder continues), or None (off or
    unreachable: a warning, and training goes on)."""
    if not cfg.tracking:
        return None
    uri = tracking.tracking_uri(cfg.tracking_uri, cfg.storage)
    if uri is None:
        print("MLflow: runs on s3:// storage are tracked with --tracking-uri (or MLFLOW_TRACKING_URI) "
              "only; this run is not tracked", flush=True)
        return None
    params = {k: v for k, v in dataclasses.asdict(cfg).items() if k not in _NOT_PARAMS}
    return tracking.start_run(uri, cfg.experiment or f"ocr-{cfg.task}", run_name, run_dir,
                              tags_of(cfg, task, run_dir), params, parent)


def learning_curves(run_dir: str, metric: str) -> str | None:
    """RUN/learning_curves.png: the training loss and the validation metric against the step."""
    s3 = storage.S3Settings.from_env()
    path = storage.join(run_dir, "metrics.csv")
    if not storage.exists(path, s3):
        return None
    rows = list(csv.DictReader(io.StringIO(storage.read_text(path, s3))))
    curves = {key: [(int(r["step"]), float(r[key])) for r in rows if r.get(key) not in (None, "")]
              for key in ("loss", metric)}
    if not any(curves.values()):
        return None
    import matplotlib  # lazy: only the end of a run plots

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.5))
    for ax, (key, points) in zip(axes, curves.items()):
        if points:
            ax.plot(*zip(*points), marker="." if key == metric else None)
        ax.set(xlabel="step", ylabel=key, title=f"{'validation' if key == metric else 'training'} {key}")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    out = storage.join(run_dir, "learning_curves.png")
    storage.write_bytes(out, buf.getvalue(), s3)
    return out


def close_run(ref: tracking.RunRef | None, cfg: TrainConfig, run_dir: str, metric: str,
              summary: dict | None, failed: bool = False) -> str | None:
    """Artifacts and status of the run; registers ``best/`` when asked. Returns the
    registered ``models:/NAME/VERSION``, if any."""
    if ref is None:
        return None
    curves = learning_curves(run_dir, metric)
    best = (summary or {}).get("best")
    files = {"config.yaml": storage.join(run_dir, "config.yaml"),
             "metrics.csv": storage.join(run_dir, "metrics.csv"),
             "summary.json": storage.join(run_dir, "summary.json"),
             "learning_curves.png": curves or ""}
    if best:
        files["best/model.json"] = storage.join(best, "model.json")
    tracking.log_artifacts(ref, files)
    if summary and summary.get("metrics"):
        tracking.set_tags(ref, {"best_step": summary["metrics"].get("step"),
                                f"best_{metric}": summary["metrics"].get(metric)})
    registered = tracking.register(ref, best, cfg.register_model) if best and cfg.register_model else None
    tracking.end_run(ref, "FAILED" if failed else "FINISHED")
    print(f"MLflow run {ref.run_id}: {tracking.ui_command(ref.uri)}", flush=True)
    if registered:
        print(f"registered {registered}", flush=True)
    return registered
