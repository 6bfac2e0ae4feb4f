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
import time
from dataclasses import dataclass

from ocr import storage
from ocr.config import ConfigError, absolute_paths, from_dict, opt
from ocr.train.config import TrainConfig
from ocr.tune.feasible import check_point, device_budget
from ocr.tune.space import load_space, points

TRIAL_CPU = 0.01  # a trial only waits for its driver (see _TrialDriver)


@dataclass
class SweepConfig:
    """What to sweep and how; the training settings come from the training config."""

    space: str = opt("", "YAML search space (see README, Sweeps)", path="file")
    num_samples: int = opt(8, "random draws per grid combination")
    scheduler: str = opt("asha", "asha stops weak trials early on the validation metric; fifo runs "
                         "every trial to its end", choices=("asha", "fifo"))
    grace_period: int = opt(1, "validations every trial gets before ASHA may stop it")
    reduction_factor: int = opt(2, "ASHA keeps 1 in this many trials at each rung")
    max_concurrent: int = opt(0, "trials at once; 0: as many as the cluster's CPUs (or GPUs) hold")
    storage: str = opt("sweeps", "folder (or s3:// URI) that holds the sweep folders", path="output")
    name: str = opt("", "sweep name, its folder under --storage (empty: sweep-TIMESTAMP); with "
                    "--resume, the sweep to continue")
    resume: bool = opt(False, "continue the sweep --name after an interruption")
    strict: bool = opt(False, "refuse the space if any point cannot train (default: drop the point)")
    seed: int = opt(0, "random seed of the draws")
    train_set: list[str] = opt(factory=list, metavar="KEY=VALUE",
                               help="training settings to change over --config, such as num_workers=1")
    verbose: int = opt(1, "Tune's console output: 0 quiet, 1 status tables, 2 also each result")

    def __post_init__(self):
        absolute_paths(self)
        if self.scheduler not in ("asha", "fifo"):
            raise ConfigError(f"scheduler: expected asha or fifo, found {self.scheduler!r}")
        if self.num_samples < 1:
            raise ConfigError(f"num_samples: expected >= 1, found {self.num_samples}")
        if self.resume and not self.name:
            raise ConfigError("resume: expected --name of the sweep to continue")


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
    import ray

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
        from ocr.runtime import configure_data
        from ocr.train.run import _check_or_write_config, build_trainer, publish_best, run_dir_of
        from ocr.train.task import make_task
        from ocr.tune.space import apply

        data = {**apply(params["base"], params["point"]), "name": f"trial-{params['trial_id']}",
                "storage": params["trials_dir"]}
        cfg = from_dict(TrainConfig, data)
        task = make_task(cfg)
        name, run_dir = run_dir_of(cfg)
        _check_or_write_config(cfg, run_dir)
        configure_data(progress=False)  # the same Ray Data settings as `ocr train`
        result = build_trainer(cfg, task, name, run_dir, callbacks=[callback]).fit()
        publish_best(result, task, run_dir)


def _trial(params: dict) -> None:
    """One Tune trial: the ``ocr train`` driver for one point, reporting to Tune."""
    import ray
    from ray import tune
    from ray.tune.integration.ray_train import TuneReportCallback

    callback = TuneReportCallback()  # made here, in the Tune session; used by the controller
    driver = ray.remote(num_cpus=0, scheduling_strategy="DEFAULT")(_TrialDriver).remote()
    params = {**params, "trial_id": tune.get_context().get_trial_id()}
    ray.get(driver.fit.remote(params, callback))


def sweep(cfg: SweepConfig, train_cfg: TrainConfig) -> dict:
    """Check the space, run (or continue) the sweep; returns the summary."""
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

    from ocr.runtime import configure_data, ensure_ray
    from ocr.train.run import total_steps
    from ocr.train.task import make_task

    ensure_ray(train_cfg.num_cpus, dashboard=True)
    configure_data(progress=False)
    base = dataclasses.asdict(train_cfg)
    per_worker, concurrent = _per_trial(train_cfg)
    base["cpus_per_worker"] = per_worker
    concurrent = cfg.max_concurrent or concurrent
    name = cfg.name or f"sweep-{time.strftime('%Y%m%d-%H%M%S')}"
    root = cfg.storage if storage.is_s3(cfg.storage) else os.path.abspath(cfg.storage)
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
        param_space = {"point": tune.grid_search(good), "base": base,
                       "trials_dir": storage.join(sweep_dir, "trials")}
        tuner = tune.Tuner(
            trainable, param_space=param_space,
            tune_config=tune.TuneConfig(metric=task.metric, mode=task.mode, scheduler=scheduler,
                                        max_concurrent_trials=concurrent),
            run_config=tune.RunConfig(name=name, storage_path=root, verbose=cfg.verbose))
    print(f"sweep {name}: {len(good)} points ({len(refused)} refused), {concurrent} at a time, "
          f"{cfg.scheduler} on {task.metric}; {sweep_dir}", flush=True)
    started = time.perf_counter()
    grid = tuner.fit()
    from ocr.tune.results import summarise

    summary = summarise(grid, task.metric, task.mode, max_t, total, sweep_dir)
    summary.update(seconds=round(time.perf_counter() - started, 1), refused=refused, name=name)
    storage.write_text(storage.join(sweep_dir, "points.json"),
                       json.dumps({"run": good, "refused": refused}, indent=1, default=str))
    return summary
