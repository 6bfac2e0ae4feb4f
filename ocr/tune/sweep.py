"""``ocr tune``: Ray Tune runs the training driver of ``ocr train`` once per point.

Train V2 pattern: each Tune trial is a function that builds the same ``TorchTrainer`` as
``ocr train`` (``ocr.train.run.build_trainer``) with a ``TuneReportCallback``, so every
validation reaches Tune (and its ASHA scheduler) as one result. There is no second loop.

The sweep folder ``STORAGE/NAME`` holds Tune's state, ``trials/TRIAL`` (each trial's run
folder: checkpoints, metrics.csv, tensorboard/), ``results.csv``, ``val_cer_vs_lr.png``,
``learning_curves.png``, ``points.json`` (what was checked and why points were refused)
and ``best/`` (the best trial's best checkpoint: the stable path a Serve config names).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import stat
import time
from pathlib import Path

import ray
from ray import tune
from ray.tune.integration.ray_train import TuneReportCallback
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

from ocr import storage, tracking
from ocr.config import ConfigError, from_dict
from ocr.families import make_task
from ocr.runtime import configure_data, ensure_ray
from ocr.tracking import RunRef
from ocr.train.config import TrainConfig
from ocr.train.run import build_trainer, check_or_write_config, publish_best, run_dir_of, total_steps
from ocr.train.tracked import close_run, open_run
from ocr.tune.config import SweepConfig
from ocr.tune.feasible import check_point, device_budget
from ocr.tune.results import summarise
from ocr.tune.space import apply, load_space, points
from ocr.tune.tracked import close_sweep_run, open_sweep_run

TRIAL_CPU = 0.01  # a trial only waits for its driver (see _TrialDriver)


def feasible_points(base: dict, sweep: SweepConfig, budget: int) -> tuple[list[dict], list[dict]]:
    """(points to run, refused points with their reasons); refuses the sweep when none is left."""
    space = load_space(sweep.space)
    good, refused = [], []
    for point in points(space, sweep.num_samples, sweep.seed):
        _, reason = check_point(base, point, budget)
        (refused if reason else good).append({**point, "reason": reason} if reason else point)
    for r in refused:
        print(f"refused {({k: v for k, v in r.items() if k != 'reason'})}: {r['reason']}")
    if not good or (refused and sweep.strict):
        raise ConfigError(f"{len(refused)} of {len(good) + len(refused)} points of {sweep.space} cannot "
                          f"train: {refused[0]['reason']}")
    return good, refused


def _per_trial(base: TrainConfig) -> tuple[float, int]:
    """(CPUs per worker, trials at once) on this cluster."""
    cpus = ray.cluster_resources().get("CPU", 1)
    if base.use_gpu:
        return base.cpus_per_worker or 1.0, max(1, int(ray.cluster_resources().get("GPU", 1)
                                                       // base.num_workers))
    # Ray Data's readers stall unless a whole CPU is left outside every placement group.
    per_worker = base.cpus_per_worker or min(1.0, (cpus - 1 - TRIAL_CPU) / base.num_workers)
    return per_worker, max(1, int((cpus - 1) // (per_worker * base.num_workers + TRIAL_CPU)))


class _TrialDriver:
    """Runs a trial's TorchTrainer *outside* the trial's placement group.

    Tune places each trial in a placement group that captures what it starts. Ray Train's
    controller and Ray Data's split coordinator would land in it, and Ray Data's read tasks
    would wait for CPUs the tiny bundle does not have. An actor started with the DEFAULT
    strategy escapes the capture; it is owned by the trial, so it dies with it (ASHA)."""

    def fit(self, params: dict, callback) -> None:
        data = {**apply(params["base"], params["point"]), "name": f"trial-{params['trial_id']}",
                "storage": params["trials_dir"]}
        cfg = from_dict(TrainConfig, data)
        task = make_task(cfg)
        name, run_dir = run_dir_of(cfg)
        check_or_write_config(cfg, run_dir)
        configure_data(progress=False)  # the same Ray Data settings as `ocr train`
        parent = RunRef(**params["parent"]) if params.get("parent") else None
        tracked = open_run(cfg, task, name, run_dir, parent=parent)   # a child of the sweep's run
        result = build_trainer(cfg, task, name, run_dir, callbacks=[callback], tracked=tracked).fit()
        close_run(tracked, cfg, run_dir, task.metric, publish_best(result, task, run_dir))


def _trial(params: dict) -> None:
    """One Tune trial: the ``ocr train`` driver for one point, reporting to Tune."""
    callback = TuneReportCallback()  # made here, in the Tune session; used by the controller
    driver = ray.remote(num_cpus=0, scheduling_strategy="DEFAULT")(_TrialDriver).remote()
    params = {**params, "trial_id": tune.get_context().get_trial_id()}
    ray.get(driver.fit.remote(params, callback))


DEFAULT_STORAGE = "sweeps"


def check_resumable(sweep_dir: str) -> None:
    """Refuse (ConfigError) to unpickle a sweep's state from a local folder that is missing,
    a link, someone else's, or writable by anyone: its pickles could run anyone's code."""
    if storage.is_s3(sweep_dir):
        return
    state = Path(sweep_dir) / "tuner.pkl"
    if not state.is_file():
        raise ConfigError(f"resume: expected a sweep in {sweep_dir} (its tuner.pkl), found none: "
                          "check --storage and --name")
    for path in (Path(sweep_dir), state):
        problem = _untrusted(path)
        if problem:
            raise ConfigError(f"resume: {path} is {problem}: expected a sweep this user wrote and only "
                              "it can change, as resuming unpickles it")


def _untrusted(path: Path) -> str:
    info = path.lstat()
    if stat.S_ISLNK(info.st_mode):
        return "a link"
    if info.st_uid != os.getuid():
        return f"owned by uid {info.st_uid}"
    return "writable by anyone" if info.st_mode & stat.S_IWOTH else ""


def sweep(cfg: SweepConfig, train_cfg: TrainConfig) -> dict:
    """Check the space, run (or continue) the sweep; returns the summary."""
    name = cfg.name or f"sweep-{time.strftime('%Y%m%d-%H%M%S')}"
    given = cfg.storage or DEFAULT_STORAGE
    root = given if storage.is_s3(given) else os.path.abspath(given)
    if cfg.resume:
        check_resumable(storage.join(root, name))   # before anything starts
    ensure_ray(train_cfg.num_cpus, dashboard=True)
    configure_data(progress=False)
    train_cfg = dataclasses.replace(train_cfg, tracking=train_cfg.tracking and cfg.tracking,
                                    tracking_uri=cfg.tracking_uri or train_cfg.tracking_uri,
                                    register_model=cfg.register_model or train_cfg.register_model)
    base = dataclasses.asdict(train_cfg)
    per_worker, concurrent = _per_trial(train_cfg)
    base["cpus_per_worker"] = per_worker
    base["register_model"] = ""   # the sweep registers its best, not each trial
    concurrent = cfg.max_concurrent or concurrent
    sweep_dir = storage.join(root, name)
    task = make_task(train_cfg)  # the base config itself is refused here when it cannot train
    good, refused = feasible_points(base, cfg, device_budget(train_cfg.use_gpu, concurrent))
    total = total_steps(train_cfg, task)
    # One more than a full trial's reports: ASHA then never stops a trial at its natural end
    # (a trial Tune stops is killed, and Ray Train leaves its workers' CPUs reserved).
    max_t = max(1, math.ceil(total / train_cfg.val_every)) + 1
    scheduler = (ASHAScheduler(time_attr="training_iteration", max_t=max_t, grace_period=cfg.grace_period,
                               reduction_factor=cfg.reduction_factor)
                 if cfg.scheduler == "asha" else FIFOScheduler())
    trainable = tune.with_resources(_trial, {"CPU": TRIAL_CPU})
    if cfg.resume:
        tuner = tune.Tuner.restore(sweep_dir, trainable, resume_unfinished=True, resume_errored=True)
    else:
        parent = open_sweep_run(cfg, train_cfg, name, sweep_dir, root)
        # the trials record into the sweep's store (a trial does not run in this folder)
        base.update(tracking=parent is not None, tracking_uri=parent.uri if parent else "")
        param_space = {"point": tune.grid_search(good), "base": base,
                       "trials_dir": storage.join(sweep_dir, "trials"),
                       "parent": dataclasses.asdict(parent) if parent else None}
        tuner = tune.Tuner(
            trainable, param_space=param_space,
            tune_config=tune.TuneConfig(metric=task.metric, mode=task.mode, scheduler=scheduler,
                                        max_concurrent_trials=concurrent),
            run_config=tune.RunConfig(name=name, storage_path=root, verbose=cfg.verbose))
    print(f"sweep {name}: {len(good)} points ({len(refused)} refused), {concurrent} at a time, "
          f"{cfg.scheduler} on {task.metric}; {sweep_dir}", flush=True)
    started = time.perf_counter()
    grid = tuner.fit()

    summary = summarise(grid, task.metric, task.mode, max_t, total, sweep_dir)
    summary.update(seconds=round(time.perf_counter() - started, 1), refused=refused, name=name)
    storage.write_text(storage.join(sweep_dir, "points.json"),
                       json.dumps({"run": good, "refused": refused}, indent=1, default=str))
    parent = tracking.read_ref(sweep_dir) if train_cfg.tracking else None
    registered = close_sweep_run(parent, summary, task.metric, sweep_dir, train_cfg.register_model)
    if registered:
        summary["registered"] = registered
    return summary
