"""``ocr train``: check the config, then run the one loop in a Ray Train ``TorchTrainer``.

Every run has its own folder, ``STORAGE/NAME``: Ray Train's checkpoints and run state,
``config.yaml`` (the resolved config), ``metrics.csv``, ``tensorboard/``, ``best/`` (a copy
of the best checkpoint by the validation metric, a stable path for serving) and
``summary.json``. Starting a run whose folder exists continues it from its latest
checkpoint; a run is refused when the folder's config differs in what shapes the model.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time

import ray
import yaml
from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig, TrainingFailedError
from ray.train.torch import TorchConfig, TorchTrainer

from ocr import storage
from ocr.config import ConfigError
from ocr.families import make_task
from ocr.runtime import configure_data, ensure_ray
from ocr.tracking import RunRef
from ocr.train.config import TrainConfig
from ocr.train.loop import train_loop_per_worker
from ocr.train.ranking import best_of
from ocr.train.task import TrainTask
from ocr.train.tracked import close_run, open_run

# Keys that may change when a run continues; any other difference is refused.
_RESUMABLE = {"epochs", "max_steps", "max_minutes", "val_every", "log_every", "max_bad_steps",
              "num_workers", "use_gpu", "cpus_per_worker", "max_failures", "num_cpus", "fault_at_step",
              "nan_at_step", "name", "storage", "placement_strategy", "tracking", "tracking_uri",
              "experiment", "register_model"}


def run_dir_of(cfg: TrainConfig) -> tuple[str, str]:
    """(run name, run folder); a new name TASK-MODEL-TIMESTAMP when none is given."""
    name = cfg.name or f"{cfg.task}-{cfg.model or 'default'}-{time.strftime('%Y%m%d-%H%M%S')}"
    root = cfg.storage if storage.is_s3(cfg.storage) else os.path.abspath(cfg.storage)
    return name, storage.join(root, name)


def check_or_write_config(cfg: TrainConfig, run_dir: str) -> bool:
    """Write config.yaml for a new run; for an existing one, refuse a changed model. True: resumed."""
    s3 = storage.S3Settings.from_env()
    uri = storage.join(run_dir, "config.yaml")
    current = dataclasses.asdict(cfg)
    if storage.exists(uri, s3):
        saved = yaml.safe_load(storage.read_text(uri, s3))
        # keys newer than the saved config (e.g. ema) are not compared: the run continues with them
        changed = sorted(k for k in current if k not in _RESUMABLE and k in saved and saved[k] != current[k])
        if changed:
            diffs = ", ".join(f"{k}: {saved.get(k)!r} -> {current[k]!r}" for k in changed)
            raise ConfigError(f"run {run_dir} exists with another config ({diffs}): "
                              "choose a new --name, or rerun with the same settings to continue it")
        return True
    storage.write_text(uri, yaml.safe_dump(current, allow_unicode=True, sort_keys=False), s3)
    return False


def _threads_and_cpus(cfg: TrainConfig) -> tuple[int, float]:
    """(torch threads, Ray CPUs) per worker. By default the workers share the cluster's CPUs
    but one, which Ray Data's readers need; each worker computes with its share of cores."""
    if cfg.cpus_per_worker > 0:
        return max(1, round(cfg.cpus_per_worker)), cfg.cpus_per_worker
    cpus = ray.cluster_resources().get("CPU", 1)
    per_worker = max(0.25, (cpus - 1) / cfg.num_workers)
    if cfg.use_gpu:
        per_worker = min(per_worker, 4.0)
    return max(1, int(cpus // cfg.num_workers)), per_worker


def _storage_args(root: str) -> dict:
    if not storage.is_s3(root):
        return {"storage_path": root}
    fs, path = storage.filesystem(root, storage.S3Settings.from_env())
    return {"storage_path": path, "storage_filesystem": fs}


def total_steps(cfg: TrainConfig, task: TrainTask) -> int:
    """Optimiser steps of the run: ``max_steps``, or ``epochs`` of each worker's equal share."""
    rows_per_worker = task.train_rows // cfg.num_workers
    if rows_per_worker == 0:
        raise ConfigError(f"{task.train_rows} training samples cannot feed {cfg.num_workers} workers")
    return cfg.max_steps or cfg.epochs * max(1, math.ceil(rows_per_worker / cfg.batch_size))


def build_trainer(cfg: TrainConfig, task: TrainTask, run_name: str, run_dir: str,
                  callbacks: list | None = None, tracked: RunRef | None = None):
    """The TorchTrainer (also what ``ocr tune`` runs in each trial, with Tune's callback);
    rank 0 logs the metrics to the MLflow run ``tracked``."""
    threads, cpus = _threads_and_cpus(cfg)
    total = total_steps(cfg, task)
    resources = {"CPU": cpus, **({"GPU": 1} if cfg.use_gpu else {})}
    return TorchTrainer(
        train_loop_per_worker,
        train_loop_config={"cfg": cfg, "task": task, "total_steps": total, "run_dir": run_dir,
                           "threads": threads, "tracked": tracked},
        scaling_config=ScalingConfig(num_workers=cfg.num_workers, use_gpu=cfg.use_gpu,
                                     resources_per_worker=resources,
                                     placement_strategy=cfg.placement_strategy),
        torch_config=TorchConfig(backend="nccl" if cfg.use_gpu else "gloo"),
        datasets=task.datasets(),
        run_config=RunConfig(
            name=run_name, **_storage_args(run_dir.rsplit("/", 1)[0]),
            failure_config=FailureConfig(max_failures=cfg.max_failures), callbacks=callbacks,
            checkpoint_config=CheckpointConfig(num_to_keep=1, checkpoint_score_attribute=task.metric,
                                               checkpoint_score_order=task.mode)),
    )


def publish_best(result, task: TrainTask, run_dir: str) -> dict:
    """Copy the best checkpoint to RUN/best; return where the best and latest are."""
    s3 = storage.S3Settings.from_env()
    ranked = [(c, m) for c, m in (result.best_checkpoints or []) if m.get(task.metric) is not None]
    if not ranked:
        return {}
    best, metrics = best_of(ranked, task.metric, task.mode)
    with best.as_directory() as folder:
        for name in os.listdir(folder):
            if name.endswith((".pt", ".json")) and name != "train_state.pt":
                with open(os.path.join(folder, name), "rb") as f:
                    storage.write_bytes(storage.join(run_dir, "best", name), f.read(), s3)
    return {"best": storage.join(run_dir, "best"), "best_checkpoint": best.path,
            "best_step": metrics.get("step"), "latest_checkpoint": result.checkpoint.path,
            "metrics": {k: v for k, v in metrics.items() if k.startswith("val_") or k == "step"}}


class TrainingFailed(RuntimeError):
    """A run that ran out of restarts (``--max-failures``); its checkpoints are kept."""


def last_error(error: TrainingFailedError) -> str:
    """The error that ended the run: each failed worker's, else the controller's, in a line."""
    failures = getattr(error, "worker_failures", None) or {}
    causes = [f"worker {rank}: {type(e).__name__}: {e}" for rank, e in sorted(failures.items())]
    if not causes:
        cause = getattr(error, "controller_failure", error)
        causes = [f"{type(cause).__name__}: {cause}"]
    return "; ".join(" ".join(c.split())[:400] for c in causes)


def failure_message(error: TrainingFailedError, cfg: TrainConfig, run_dir: str) -> str:
    restarts = f"{cfg.max_failures} restart{'s' if cfg.max_failures != 1 else ''}"
    return (f"the run failed after {restarts} (--max-failures {cfg.max_failures}); the last error: "
            f"{last_error(error)}. Its checkpoints are kept in {run_dir}: fix the cause and run the "
            f"same command (same --name) to continue from the last one, or allow more restarts "
            f"with --max-failures")


def train(cfg: TrainConfig) -> dict:
    """Run (or continue) a training run; returns its summary (also RUN/summary.json)."""
    task = make_task(cfg)  # refuses bad data, charset, model or feasibility before any worker
    run_name, run_dir = run_dir_of(cfg)
    ensure_ray(cfg.num_cpus, dashboard=True)
    configure_data(progress=False)
    resumed = check_or_write_config(cfg, run_dir)
    print(f"run {run_name} ({'continuing' if resumed else 'new'}): {run_dir}", flush=True)
    tracked = open_run(cfg, task, run_name, run_dir)
    started = time.perf_counter()
    try:
        result = build_trainer(cfg, task, run_name, run_dir, tracked=tracked).fit()
    except TrainingFailedError as e:
        close_run(tracked, cfg, run_dir, task.metric, None, failed=True)
        raise TrainingFailed(failure_message(e, cfg, run_dir)) from None
    final = result.metrics or {}
    summary = {"run": run_name, "run_dir": run_dir, "resumed": resumed, "diverged": final.get("diverged"),
               "seconds": round(time.perf_counter() - started, 1), **publish_best(result, task, run_dir),
               "final": dict(final)}
    if tracked:
        summary["mlflow"] = {"run_id": tracked.run_id, "tracking_uri": tracked.uri}
    storage.write_text(storage.join(run_dir, "summary.json"),
                       json.dumps(summary, indent=1, default=str) + "\n", storage.S3Settings.from_env())
    registered = close_run(tracked, cfg, run_dir, task.metric, summary, failed=bool(final.get("diverged")))
    if registered:
        summary["registered"] = registered
    return summary
