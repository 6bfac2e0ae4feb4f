"""Multi-node fault tolerance on one machine: a head and a second node, each with its own
raylet; a 2-worker training run spread over both (placement SPREAD); the second node is
killed mid-run (its raylet SIGKILLed, then every other process of the node, as when a
machine is lost). The run must go on from its latest checkpoint on the surviving node and
finish, with step, epoch and sample counters continuing and no sample lost from or trained
twice in the epoch accounting.

Capacity after the loss: the head has 3 logical CPUs (1 per worker, 1 for Ray Data), so the
two replacement workers fit on it, as they would on a cluster whose head (or autoscaled
replacement node) has room. The run trains for a fixed time budget (``--max-minutes``,
which counts training time across attempts), so the kill never races the end of the run
however fast or loaded the machine is.

Drivers run as subprocesses with ``RAY_ADDRESS`` set; nothing here connects the pytest
process to this cluster (the rest of the suite has its own session Ray).
"""

from __future__ import annotations

import csv
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import torch
from local_cluster import LocalCluster

REPO = Path(__file__).resolve().parents[1]
ROWS = 96  # even: Ray Train's equal split over 2 workers drops no row


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = LocalCluster(tmp_path_factory.mktemp("cluster-logs"))
    try:
        c.start_head(num_cpus=3)
        c.add_node(num_cpus=1)
        c.wait_for_nodes(2)
        yield c
    finally:
        c.shutdown()


def _job(cluster, script: str, *args: str, log: Path) -> subprocess.Popen:
    """A driver on this cluster: ``python jobs/SCRIPT ARGS`` with RAY_ADDRESS set, output to ``log``."""
    with open(log, "w") as out:
        return subprocess.Popen([sys.executable, "-u", f"jobs/{script}", *args], cwd=REPO, stdout=out,
                                stderr=subprocess.STDOUT, env=cluster.env(PYTHONUNBUFFERED="1"))


def _finish(proc: subprocess.Popen, log: Path, what: str, timeout: float = 600) -> str:
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    text = log.read_text(errors="replace")
    assert proc.returncode == 0, f"{what} exited {proc.returncode}:\n{text[-8000:]}"
    return text


def _latest_registered(run_dir: Path) -> int:
    """Step of the latest checkpoint Ray Train's controller has registered (0: none yet)."""
    try:
        snap = json.loads((run_dir / "checkpoint_manager_snapshot.json").read_text())
    except (OSError, ValueError):
        return 0
    latest = snap.get("latest_checkpoint_result") or {}
    return int((latest.get("metrics") or {}).get("step", 0))


def _wait_for(predicate, what: str, proc: subprocess.Popen, log: Path, timeout: float = 300,
              every: float = 0.2):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        if proc.poll() is not None:
            break
        time.sleep(every)
    raise AssertionError(f"{what}: not seen (driver exit {proc.poll()}):\n"
                         f"{log.read_text(errors='replace')[-8000:]}")


def _train_worker_nodes(cluster) -> set[str]:
    actors = cluster.state("actors")
    return {a["node_id"] for a in actors if a["class_name"] == "RayTrainWorker" and a["state"] == "ALIVE"}


def _shard_ids(shards: Path) -> set[int]:
    from ocr.data.shards import ids_to_ints

    ids = [i for f in sorted(shards.glob("train/*.parquet")) for i in pq.read_table(f, columns=["id"])["id"]]
    return set(ids_to_ints([str(i) for i in ids]).tolist())


@pytest.fixture(scope="module")
def shards(cluster, tmp_path_factory):
    out = tmp_path_factory.mktemp("data") / "digits"
    log = out.parent / "synth.log"
    proc = _job(cluster, "synth.py", "--output", str(out), "--count", str(ROWS), "--text", "digits:1-4",
                "--style", "none", "--splits", "train=1.0", "--seed", "3", log=log)
    _finish(proc, log, "synth")
    return out


def test_training_survives_losing_a_node(cluster, shards, tmp_path):
    head_id = {n["node_id"] for n in cluster.alive_nodes() if n["is_head_node"]}
    node2 = cluster.nodes[0]
    runs, log = tmp_path / "runs", tmp_path / "train.log"
    run_dir = runs / "spread"
    proc = _job(cluster, "train.py", "recognition", "--data", str(shards), "--val-split", "train",
                "--model", "tiny_crnn", "--batch-size", "8", "--max-steps", "100000", "--max-minutes", "0.75",
                "--val-every", "4", "--log-every", "4", "--warmup-steps", "2", "--augment", "0",
                "--num-workers", "2", "--cpus-per-worker", "1", "--placement-strategy", "SPREAD",
                "--max-failures", "2", "--storage", str(runs), "--name", "spread", log=log)
    try:
        # Both workers alive, one per node, and a checkpoint registered: now lose the node.
        nodes = _wait_for(lambda: len(w := _train_worker_nodes(cluster)) == 2 and w, "2 workers", proc, log,
                          every=1)
        assert len(nodes) == 2 and head_id < nodes, f"workers not spread over both nodes: {nodes}"
        killed_after = _wait_for(lambda: _latest_registered(run_dir), "a registered checkpoint", proc, log)
        os.kill(node2.raylet_pid(), signal.SIGKILL)
        node2.kill()
        text = _finish(proc, log, "training driver")
    finally:
        if proc.poll() is None:
            proc.kill()
    assert len(cluster.wait_for_nodes(1)) == 1

    resumed = re.search(r"resumed at step (\d+), epoch (\d+) \((\d+) samples", text)
    assert resumed, f"the run did not resume from a checkpoint:\n{text[-6000:]}"
    step0 = int(resumed.group(1))
    assert step0 >= killed_after and step0 % 4 == 0
    summary = json.loads((run_dir / "summary.json").read_text())
    final = summary["final"]
    assert final["restarts"] == 1 and final["step"] > step0, final

    with open(run_dir / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    train = [int(r["step"]) for r in rows if r["loss"]]
    val = [[int(float(r[k])) for k in ("step", "epoch", "samples")] for r in rows if not r["loss"]]
    assert train == sorted(set(train)), train  # no step logged twice: the resumed run went on
    val_steps = [v[0] for v in val]
    assert val_steps == sorted(set(val_steps)) and step0 in val_steps and val_steps[-1] == final["step"]
    for column in (1, 2):  # epoch and samples only grow, across the restart too
        assert [v[column] for v in val] == sorted(v[column] for v in val), val

    saved = torch.load(Path(summary["latest_checkpoint"]) / "train_state.pt", weights_only=True)["state"]
    seen = saved["epoch_seen"]
    assert (saved["step"], saved["samples"], saved["restarts"]) == (final["step"], final["samples"], 1)
    assert len(seen) == len(set(seen)) and set(seen) <= _shard_ids(shards)  # none twice, all real
    # Every finished epoch trained every sample once; the current one trained exactly `seen`.
    assert saved["samples"] == saved["epoch"] * ROWS + len(seen), saved


def test_placement_strategy_is_checked(tmp_path):
    from ocr.config import ConfigError
    from ocr.train.config import TrainConfig

    assert TrainConfig(data=str(tmp_path), placement_strategy="SPREAD").placement_strategy == "SPREAD"
    with pytest.raises(ConfigError, match="placement_strategy: expected one of"):
        TrainConfig(data=str(tmp_path), placement_strategy="spread")


def test_a_resumed_epoch_skips_batches_already_trained():
    from ocr.train.loop import _next_to_train

    empty = {"ids": torch.zeros(0, dtype=torch.long)}
    batches = iter([empty, empty, {"ids": torch.tensor([5, 6])}, empty])
    assert _next_to_train(batches)["ids"].tolist() == [5, 6]
    assert _next_to_train(batches) is None  # only trained samples left: this worker is done
