"""`ray job submit` as README.md shows it, for real: a local head started with `ray start
--head` (dashboard and Job Submission API on 127.0.0.1, token authentication on), and the
`ray` CLI run in a subprocess from the repository root, as a user types it:

    ray job submit --working-dir . -- python jobs/synth.py --output /abs/path ...

with its token set up as README's "`ray job submit`: the token" says: on the head's machine
``RAY_AUTH_MODE=token`` and the token in ``~/.ray/auth_token``; from a laptop
``RAY_AUTH_MODE=token``, ``RAY_AUTH_TOKEN_PATH`` naming the head's token copied down, and
``RAY_ADDRESS`` the dashboard's URL. A synth job writes shards to an absolute folder, a
train job reads them; a job given a relative output is refused before any work starts; the
CLI without ``RAY_AUTH_MODE=token`` is refused.

The head runs in its own process group with its own temp dir and ports (see
``local_cluster``); this module never connects a driver from the pytest process and never
touches the machine's own ``~/.ray`` (the CLI gets a HOME of its own)."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import write_gt_set
from local_cluster import LocalCluster

REPO = Path(__file__).resolve().parents[1]
RAY = str(Path(sys.executable).with_name("ray"))


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = LocalCluster(tmp_path_factory.mktemp("head-logs"))
    try:
        c.start_head(num_cpus=2)
        yield c
    finally:
        c.shutdown()


def _shell(**env: str) -> dict:
    """The environment of a user's shell: none of the pytest process's RAY_* variables."""
    return {**{k: v for k, v in os.environ.items() if not k.startswith("RAY_")},
            "RAY_USAGE_STATS_ENABLED": "0", **env}


@pytest.fixture(scope="module")
def on_the_head(cluster, tmp_path_factory) -> dict:
    """README's recipe on the machine that ran `ray start --head`: the token in the user's
    ``~/.ray/auth_token`` (a HOME of its own here), ``RAY_AUTH_MODE=token``, no RAY_ADDRESS
    (the CLI finds the local Ray; RAY_TMPDIR stands for the machine's default /tmp/ray)."""
    home = tmp_path_factory.mktemp("home")
    (home / ".ray").mkdir()
    (home / ".ray" / "auth_token").write_text(cluster.token)
    return _shell(HOME=str(home), RAY_AUTH_MODE="token", RAY_TMPDIR=cluster.tmp_root)


@pytest.fixture(scope="module")
def laptop(cluster, tmp_path_factory) -> dict:
    """README's recipe from a laptop: RAY_ADDRESS the dashboard's URL (the port `ray dashboard
    cluster.yaml` forwards), the head's token copied into a file named by RAY_AUTH_TOKEN_PATH,
    ``RAY_AUTH_MODE=token``; no token in that user's ~/.ray."""
    home = tmp_path_factory.mktemp("laptop")
    (home / "cluster-token").write_text(cluster.token)
    return _shell(HOME=str(home), RAY_ADDRESS=cluster.dashboard_url, RAY_AUTH_MODE="token",
                  RAY_AUTH_TOKEN_PATH=str(home / "cluster-token"))


def submit(env: dict, *entrypoint: str, timeout: float = 600) -> subprocess.CompletedProcess:
    """``ray job submit --working-dir . -- ENTRYPOINT`` from the repository root; the CLI
    tails the job's logs and exits 1 when the job fails."""
    out = subprocess.run([RAY, "job", "submit", "--working-dir", ".", "--", *entrypoint], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=timeout)
    out.text = out.stdout + out.stderr
    return out


def succeeded(out: subprocess.CompletedProcess) -> str:
    assert out.returncode == 0 and "Job 'raysubmit_" in out.text and "succeeded" in out.text, (
        f"`ray job submit {shlex.join(out.args[3:])}` exited {out.returncode}:\n{out.text[-8000:]}")
    return out.text


def test_synth_then_train_jobs(cluster, on_the_head, laptop, tmp_path):
    shards, runs = tmp_path / "shards" / "digits", tmp_path / "runs"

    logs = succeeded(submit(on_the_head, "python", "jobs/synth.py", "--output", str(shards), "--count", "40",
                            "--text", "digits:1-4", "--style", "none", "--splits", "train=0.75,val=0.25",
                            "--seed", "1"))
    # --working-dir . ships the code, not the 2 GB .venv/ nor .git/ (Ray 2.60's default
    # excludes) nor what .gitignore lists (read by Ray): the job's copy, unpacked on the head.
    pkg = re.search(r"Uploading package gcs://(_ray_pkg_\w+)\.zip", logs)
    assert pkg, logs[-4000:]
    copy, = Path(cluster.temp_dir).glob(f"session_latest/runtime_resources/working_dir_files/{pkg[1]}")
    shipped = [p.relative_to(copy) for p in copy.rglob("*") if p.is_file()]
    assert (copy / "jobs" / "synth.py").is_file() and (copy / "ocr" / "cli.py").is_file()
    assert not [p for p in shipped if p.parts[0] in {".venv", ".git", "outputs", "runs"}], shipped
    assert sum((copy / p).stat().st_size for p in shipped) < 20 * 2**20
    manifest = json.loads((shards / "manifest.json").read_text())
    counts = manifest["counts"]
    assert counts["written"] == 40 and set(counts["per_split"]) == {"train", "val"}, counts
    assert list((shards / "train").glob("*.parquet"))
    assert f"wrote 40 samples to {shards}" in logs

    logs = succeeded(submit(laptop, "python", "jobs/train.py", "recognition", "--data", str(shards),
                            "--model", "tiny_crnn", "--batch-size", "8", "--max-steps", "6",
                            "--val-every", "3", "--log-every", "3", "--warmup-steps", "2",
                            "--num-workers", "1", "--storage", str(runs), "--name", "job-run"))
    run = runs / "job-run"
    meta = json.loads((run / "best" / "model.json").read_text())
    assert meta["task"] == "recognition" and meta["charset"]["hash"] == manifest["charset"]["hash"]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["final"]["step"] == 6 and (run / "metrics.csv").exists()
    assert "run job-run: best" in logs


def test_a_relative_output_in_a_job_is_refused_before_any_work(cluster, on_the_head):
    """Inside a job the working folder is the job's private copy of --working-dir: a relative
    --output would be written there and vanish with the job, so it is refused, saying why."""
    out = submit(on_the_head, "python", "jobs/synth.py", "--output", "jobdata/d", "--count", "40",
                 timeout=300)
    assert out.returncode == 1 and "failed" in out.text, out.text[-6000:]
    message = out.text.lower()
    assert "relative" in message and "working" in message and "absolute path or s3://" in message, \
        out.text[-6000:]
    assert "wrote " not in out.text and "Traceback" not in out.text, out.text[-6000:]


def test_the_cli_without_token_mode_is_refused(cluster, on_the_head):
    """What a new user met: Ray's CLI sends the token only when RAY_AUTH_MODE=token is set in
    its own environment, even with the token in ~/.ray/auth_token."""
    env = {k: v for k, v in on_the_head.items() if k != "RAY_AUTH_MODE"}
    out = submit(env, "python", "-c", "pass", timeout=120)
    assert out.returncode != 0 and "RAY_AUTH_MODE is currently 'disabled'" in out.text, out.text[-4000:]


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
