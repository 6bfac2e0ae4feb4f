"""`ray job submit` for real: a local head started with `ray start --head` (dashboard and
Job Submission API on 127.0.0.1), tiny ingest and train jobs submitted over HTTP with the
repository as the job's working_dir, their artifacts checked, the head stopped.

The head runs in its own process group with its own temp dir and ports (see
``local_cluster``); this test never connects a driver from the pytest process.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import write_gt_set
from local_cluster import LocalCluster

REPO = Path(__file__).resolve().parents[1]
# What `ray job submit --working-dir .` would upload, minus what a job never needs.
RUNTIME_ENV = {"working_dir": str(REPO),
               "excludes": [".venv/", ".git/", "runs/", "outputs/", "**/__pycache__/", ".pytest_cache/",
                            ".ruff_cache/", "*.egg-info/"]}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = LocalCluster(tmp_path_factory.mktemp("head-logs"))
    try:
        c.start_head(num_cpus=2)
        yield c
    finally:
        c.shutdown()


@pytest.fixture(scope="module")
def client(cluster):
    from ray.job_submission import JobSubmissionClient

    return JobSubmissionClient(cluster.dashboard_url, headers=cluster.headers)


def run_job(client, script: str, *args: str, timeout: float = 600) -> str:
    """Submit ``python jobs/SCRIPT ARGS`` (the venv's python), wait, return its logs; fail
    with the logs when it does not succeed."""
    from ray.job_submission import JobStatus

    entrypoint = shlex.join([sys.executable, f"jobs/{script}", *args])
    job_id = client.submit_job(entrypoint=entrypoint, runtime_env=RUNTIME_ENV)
    deadline = time.time() + timeout
    while (status := client.get_job_status(job_id)) not in {JobStatus.SUCCEEDED, JobStatus.FAILED,
                                                              JobStatus.STOPPED}:
        if time.time() > deadline:
            client.stop_job(job_id)
            break
        time.sleep(1)
    logs = client.get_job_logs(job_id)
    info = client.get_job_info(job_id)
    assert status == JobStatus.SUCCEEDED, (
        f"job {job_id} ({entrypoint}) ended {status}: {info.message}\n--- job logs ---\n{logs[-8000:]}")
    return logs


def test_ingest_then_train_jobs(client, cluster, tmp_path):
    digits = [f"{i}{(i * 7) % 10}" * (1 + i % 2) for i in range(48)]
    gt = write_gt_set(tmp_path / "raw", [(f"{i:03d}.png", t) for i, t in enumerate(digits)])
    shards, runs = tmp_path / "shards", tmp_path / "runs"

    logs = run_job(client, "ingest.py", str(gt), "--output", str(shards), "--splits", "train=0.75,val=0.25")
    manifest = json.loads((shards / "manifest.json").read_text())
    counts = manifest["counts"]
    assert counts["read"] == 48 and counts["written"] == 48, counts
    assert {s: v["written"] for s, v in counts["per_split"].items()}.keys() == {"train", "val"}
    assert list((shards / "train").glob("*.parquet")) and (shards / "rejects.jsonl").exists()
    assert f"wrote 48 samples to {shards}" in logs

    logs = run_job(client, "train.py", "recognition", "--data", str(shards), "--model", "tiny_crnn",
                   "--batch-size", "8", "--max-steps", "6", "--val-every", "3", "--log-every", "3",
                   "--warmup-steps", "2", "--num-workers", "1", "--storage", str(runs), "--name", "job-run")
    run = runs / "job-run"
    meta = json.loads((run / "best" / "model.json").read_text())
    assert meta["task"] == "recognition" and meta["charset"]["hash"] == manifest["charset"]["hash"]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["final"]["step"] == 6 and (run / "metrics.csv").exists()
    assert "run job-run: best" in logs


def test_a_command_on_the_machine_joins_the_ray_started_there(cluster, tmp_path):
    """`ocr ingest --num-cpus 1` run on the head without RAY_ADDRESS finds the Ray that `ray
    start --head` left there (as ray.init does) and joins it instead of starting a second one
    (which Ray refuses when num_cpus is given): it says so and ingests."""
    gt = write_gt_set(tmp_path / "raw", [(f"{i}.png", str(i)) for i in range(6)])
    out = subprocess.run([sys.executable, "-m", "ocr.cli", "ingest", str(gt), "--output", str(tmp_path / "o"),
                          "--num-cpus", "1"], env=cluster.local_env(), capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-4000:]
    assert "using the Ray already running here (`ray start`, 2 CPUs); num_cpus=1 not applied" in out.stderr
    assert json.loads((tmp_path / "o" / "manifest.json").read_text())["counts"]["written"] == 6
