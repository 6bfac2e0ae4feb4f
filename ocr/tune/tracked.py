"""A sweep's MLflow record: one parent run, a child run per trial (each trial's
``ocr train`` run, :mod:`ocr.train.tracked`), the plots and table on the parent, and the best
trial marked."""

from __future__ import annotations

import dataclasses

from ocr import storage, tracking
from ocr.train.config import TrainConfig
from ocr.tune.config import SweepConfig


def open_sweep_run(cfg: SweepConfig, train_cfg: TrainConfig, name: str, sweep_dir: str,
                   root: str) -> tracking.RunRef | None:
    if not train_cfg.tracking:
        return None
    uri = tracking.tracking_uri(train_cfg.tracking_uri, root)
    if uri is None:
        print("MLflow: sweeps on s3:// storage are tracked with --tracking-uri (or MLFLOW_TRACKING_URI) "
              "only; this sweep is not tracked", flush=True)
        return None
    params = {f"sweep.{k}": v for k, v in dataclasses.asdict(cfg).items() if k not in ("resume", "verbose")}
    params.update({f"base.{k}": v for k, v in dataclasses.asdict(train_cfg).items()
                   if k not in ("fault_at_step", "nan_at_step")})
    tags = {"task": train_cfg.task, "kind": "sweep", "sweep_dir": sweep_dir, "mlflow.source.name": "ocr tune"}
    return tracking.start_run(uri, train_cfg.experiment or f"ocr-{train_cfg.task}", name, sweep_dir,
                              tags, params)


def close_sweep_run(parent: tracking.RunRef | None, summary: dict, metric: str, sweep_dir: str,
                    register_name: str) -> str | None:
    """Plots and results on the parent; every trial's run closed (a trial ASHA stopped was
    killed before it could close its own) and the best one tagged. Returns the registered
    ``models:/NAME/VERSION``, if any."""
    if parent is None:
        return None
    rows = summary.get("rows") or []
    for i, row in enumerate(rows):
        child = tracking.read_ref(row["run_dir"]) if row.get("run_dir") else None
        if child is None:
            continue
        tags = {"trial_status": row["status"], "best_trial": str(i == 0).lower()}
        tracking.set_tags(child, tags)
        if row["status"] != "finished":
            tracking.end_run(child, "KILLED" if row["status"] == "stopped early" else "FAILED")
        if i == 0:
            tracking.set_tags(parent, {"best_run_id": child.run_id, "best_trial": row["trial"],
                                       f"best_{metric}": row[f"best_{metric}"]})
    files = {name: storage.join(sweep_dir, name)
             for name in ("results.csv", f"{metric}_vs_lr.png", "learning_curves.png", "points.json")}
    tracking.log_artifacts(parent, files)
    best = summary.get("best")
    registered = tracking.register(parent, best, register_name) if best and register_name else None
    tracking.end_run(parent)
    print(f"MLflow sweep run {parent.run_id} ({len(rows)} trials): {tracking.ui_command(parent.uri)}",
          flush=True)
    if registered:
        print(f"registered {registered}", flush=True)
    return registered
