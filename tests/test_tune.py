"""Sweeps: spaces checked before any trial, and a real 2-trial sweep with a diverging trial."""

from __future__ import annotations

import csv
import dataclasses

import pytest
from conftest import mlflow_runs

from ocr.config import ConfigError
from ocr.train.config import TrainConfig
from ocr.tune.config import SweepConfig
from ocr.tune.feasible import check_point
from ocr.tune.space import check_space, points
from ocr.tune.sweep import feasible_points


def _base(data, tmp_path, **kw) -> dict:
    cfg = TrainConfig(data=str(data), model="tiny_crnn", batch_size=16, max_steps=8, val_every=4,
                      log_every=4, warmup_steps=2, lr=3e-3, storage=str(tmp_path / "runs"),
                      max_bad_steps=2, **kw)
    return dataclasses.asdict(cfg)


def _space(tmp_path, text: str) -> str:
    path = tmp_path / "space.yaml"
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize("key", ["charset", "num_classes", "model_set.num_classes"])
def test_a_space_may_not_set_the_charset_or_num_classes(key):
    with pytest.raises(ConfigError, match="come from the dataset manifest"):
        check_space({key: {"choice": [10, 11]}})


def test_bad_spaces_are_refused():
    with pytest.raises(ConfigError, match="expected a TrainConfig field"):
        check_space({"learning_rate": 0.1})
    with pytest.raises(ConfigError, match="low < high"):
        check_space({"lr": {"loguniform": [0.1, 0.01]}})
    with pytest.raises(ConfigError, match="a run setting"):
        check_space({"data": {"choice": ["a", "b"]}})


def test_points_are_seeded_and_cover_the_grid():
    space = {"lr": {"loguniform": [1e-4, 1e-2]}, "model": {"grid": ["fast", "crnn"]}, "augment": 0.2}
    a, b = points(space, 3, seed=1), points(space, 3, seed=1)
    assert a == b and len(a) == 6 and {p["model"] for p in a} == {"fast", "crnn"}
    assert all(1e-4 <= p["lr"] <= 1e-2 and p["augment"] == 0.2 for p in a)


def test_infeasible_points_are_refused_before_any_trial(digit_shards, tmp_path):
    base = _base(digit_shards, tmp_path)
    budget = 8 * 2**30
    cfg, reason = check_point(base, {"width": 12}, budget)  # 3 CTC steps for 4-digit labels
    assert cfg is None and "CTC steps" in reason
    _, reason = check_point(base, {"batch_size": 10**7}, budget)
    assert "GiB" in reason
    _, reason = check_point(base, {"hidden": 8}, budget)
    assert reason is None
    space = _space(tmp_path, "width: {grid: [12, 100]}\nlr: {loguniform: [1.0e-3, 1.0e-2]}\n")
    good, refused = feasible_points(base, SweepConfig(space=space, num_samples=2), budget)
    assert [p["width"] for p in good] == [100, 100] and len(refused) == 2  # trimmed, with reasons
    with pytest.raises(ConfigError, match="2 of 4 points"):
        feasible_points(base, SweepConfig(space=space, num_samples=2, strict=True), budget)
    only_bad = _space(tmp_path, "width: {choice: [12, 16]}\n")
    with pytest.raises(ConfigError, match="CTC steps"):
        feasible_points(base, SweepConfig(space=only_bad, num_samples=2), budget)


def test_two_trial_sweep_with_a_diverging_trial(digit_shards, tmp_path):
    from ocr.tune.sweep import sweep

    space = _space(tmp_path, "lr: {loguniform: [1.0e-3, 5.0e-3]}\nnan_at_step: {grid: [0, 3]}\n")
    train_cfg = TrainConfig(**_base(digit_shards, tmp_path))
    summary = sweep(SweepConfig(space=space, num_samples=1, storage=str(tmp_path / "sweeps"),
                                name="s3", scheduler="fifo", register_model="digits-sweep"), train_cfg)
    with open(tmp_path / "sweeps/s3/results.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2
    statuses = sorted(r["status"] for r in rows)
    assert statuses[0] == "diverged at step 3", statuses
    assert statuses[1] in ("finished", "stopped early"), statuses
    assert summary["best"] and (tmp_path / "sweeps/s3/best/model.json").exists()
    assert (tmp_path / "sweeps/s3/val_cer_vs_lr.png").stat().st_size > 1000
    assert (tmp_path / "sweeps/s3/learning_curves.png").exists()
    assert list((tmp_path / "sweeps/s3/trials").glob("trial-*/tensorboard/events.*"))
    _check_mlflow(tmp_path / "sweeps", summary)


def _sweep_runs(store):
    client, runs = mlflow_runs(store)
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    return client, parents, children


def _check_mlflow(store, summary):
    """One parent run with the 2 trials as its children, the plots on the parent, the best
    trial marked, and the sweep's best registered and loadable as models:/NAME/1."""
    import os

    from ocr import checkpoint
    from ocr.serve.config import ServeConfig
    from ocr.serve.stages import RecognizerStage

    client, parents, children = _sweep_runs(store)
    assert len(parents) == 1 and len(children) == 2, (parents, children)
    parent = parents[0]
    assert {c.data.tags["mlflow.parentRunId"] for c in children} == {parent.info.run_id}
    assert parent.info.status == "FINISHED" and parent.data.params["sweep.scheduler"] == "fifo"
    names = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"results.csv", "val_cer_vs_lr.png", "learning_curves.png", "points.json"} <= names, names
    best = [c for c in children if c.data.tags.get("best_trial") == "true"]
    assert len(best) == 1 and parent.data.tags["best_run_id"] == best[0].info.run_id
    assert all(client.get_metric_history(c.info.run_id, "loss") for c in children)
    assert summary["registered"] == "models:/digits-sweep/1"
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{store}/mlflow.db"
    try:
        _, meta = checkpoint.load("models:/digits-sweep/latest", "recognition")
        assert meta["registered"]["uri"] == "models:/digits-sweep/1"
        cfg = ServeConfig(recognizer="models:/digits-sweep/1")
        cfg.check_checkpoints()   # the serve builder downloads it; its replicas read the copy
        assert os.path.isdir(cfg.recognizer)
        assert RecognizerStage(cfg.recognizer).version["registered"] == "models:/digits-sweep/1"
        with pytest.raises(ConfigError, match="models:/digits-sweep/7"):
            ServeConfig(recognizer="models:/digits-sweep/7").check_checkpoints()
    finally:
        del os.environ["MLFLOW_TRACKING_URI"]


def test_trial_status_counts_steps_reached_not_iterations_after_a_resume():
    from types import SimpleNamespace

    from ocr.tune.results import _status

    def result(**metrics):
        return SimpleNamespace(metrics=metrics, error=None)

    # max_t 7 reports, 120 steps: a trial restored at step 80 reports only twice more
    assert _status(result(step=120, training_iteration=2), 7, 120)[0] == "finished"
    assert _status(result(step=80, training_iteration=4), 7, 120)[0] == "stopped early"
    assert _status(result(step=60, training_iteration=3, diverged=True, diverged_step=57), 7, 120) == \
        ("diverged at step 57", 57)


def test_resume_unpickles_only_a_sweep_named_with_its_storage_and_owned_by_this_user(tmp_path):
    """Resuming loads the sweep's pickles: never from a default path, a missing sweep, a link,
    a file anyone may write or another user's folder."""
    import os

    from ocr.tune.sweep import check_resumable

    space = _space(tmp_path, "lr: {loguniform: [1.0e-3, 5.0e-3]}\n")
    with pytest.raises(ConfigError, match="expected --storage"):
        SweepConfig(space=space, name="s", resume=True)
    sweep_dir = tmp_path / "sweeps" / "s"
    with pytest.raises(ConfigError, match="found none"):
        check_resumable(str(sweep_dir))
    sweep_dir.mkdir(parents=True)
    (sweep_dir / "tuner.pkl").write_bytes(b"state")
    check_resumable(str(sweep_dir))
    os.chmod(sweep_dir / "tuner.pkl", 0o666)
    with pytest.raises(ConfigError, match="writable by anyone"):
        check_resumable(str(sweep_dir))
    os.chmod(sweep_dir / "tuner.pkl", 0o644)
    link = tmp_path / "sweeps" / "link"
    link.symlink_to(sweep_dir)
    with pytest.raises(ConfigError, match="a link"):
        check_resumable(str(link))
    if os.getuid() == 0:   # root can hand the folder to someone else
        os.chown(sweep_dir, 65534, 65534)
        with pytest.raises(ConfigError, match="owned by uid 65534"):
            check_resumable(str(sweep_dir))


def test_tune_driver_killed_mid_sweep_resumes_keeping_finished_trials(digit_shards, tmp_path):
    """SIGKILL of the `ocr tune` driver (and the local Ray it started) once a trial has ended
    and the next has a checkpoint; `ocr tune --resume` keeps the ended trials, continues the
    interrupted one from its checkpoint (no step trained twice) and writes results.csv and
    best/ as a sweep that was never stopped."""
    import os
    import signal
    import subprocess
    import sys
    import tempfile
    import time

    (tmp_path / "train.yaml").write_text(
        f"data: {digit_shards}\nmodel: tiny_crnn\nbatch_size: 16\nmax_steps: 12\nval_every: 4\n"
        "log_every: 4\nwarmup_steps: 2\nnum_workers: 1\nnum_cpus: 2\n")
    space = _space(tmp_path, "lr: {grid: [1.0e-3, 3.0e-3]}\n")
    args = [sys.executable, "-m", "ocr.cli", "tune", "--config", str(tmp_path / "train.yaml"),
            "--space", space, "--num-samples", "1", "--max-concurrent", "1", "--name", "kt",
            "--storage", str(tmp_path / "sweeps")]
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_ADDRESS")}
    env["RAY_TMPDIR"] = ray_tmp = tempfile.mkdtemp(prefix="rt")   # short: Ray's socket paths
    trials = tmp_path / "sweeps" / "kt" / "trials"
    log = open(tmp_path / "first.log", "w")
    driver = subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    deadline, interrupted = time.time() + 600, None
    while time.time() < deadline and driver.poll() is None:
        # one trial at a time: once the second has a checkpoint, the first has ended
        second = [d for d in trials.glob("trial-*_00001") if list(d.glob("checkpoint-*"))]
        if second:
            interrupted = second[0]
            break
        time.sleep(0.05)
    assert interrupted is not None, (tmp_path / "first.log").read_text()[-3000:]
    os.killpg(driver.pid, signal.SIGKILL)
    driver.wait()
    log.close()
    subprocess.run(["pkill", "-9", "-f", ray_tmp])   # what of its Ray left the process group
    kept = {d.name: (d / "metrics.csv").stat().st_mtime for d in trials.glob("trial-*")
            if d != interrupted and (d / "metrics.csv").exists()}
    again = subprocess.run(args + ["--resume"], env=env, capture_output=True, text=True, timeout=900)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    with open(tmp_path / "sweeps/kt/results.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2 and list(rows[0])[:3] == ["trial", "lr", "status"], rows
    assert {"best_val_cer", "steps", "seconds", "run_dir"} <= set(rows[0])
    assert (tmp_path / "sweeps/kt/best/model.json").exists()
    for name, mtime in kept.items():   # an ended trial is not trained again
        assert (trials / name / "metrics.csv").stat().st_mtime == mtime, name
    with open(interrupted / "metrics.csv", newline="") as f:
        steps = [int(r["step"]) for r in csv.DictReader(f) if r["loss"]]
    assert steps == sorted(set(steps)), steps   # continued from its checkpoint: no step twice
    _, parents, children = _sweep_runs(tmp_path / "sweeps")   # the same MLflow runs continued
    assert len(parents) == 1 and len(children) == 2 and parents[0].info.status == "FINISHED"
