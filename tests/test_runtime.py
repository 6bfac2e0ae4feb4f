"""Starting and stopping the local Ray (ocr.runtime), in child processes of their own."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile

import psutil
import pytest

CHILD = """
import json, sys
import psutil, ray
from ocr.runtime import ensure_ray, stop_ray

ensure_ray(num_cpus=1)
ray.get(ray.remote(lambda: 1).remote())  # a worker process too
node = ray._private.worker._global_node
print(json.dumps({"kinds": sorted(node.all_processes),
                  "pids": [p.pid for p in psutil.Process().children(recursive=True)]}), flush=True)
if sys.argv[1] == "stop_ray":
    stop_ray()
    print(json.dumps({"initialized": ray.is_initialized()}), flush=True)
"""


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@pytest.mark.parametrize("how", ["stop_ray", "exit"])
def test_a_ray_started_here_stops_whole(how):
    """stop_ray, or the end of the process, stops every process the local Ray started
    (the autoscaler monitor, which stop_ray kills first, included)."""
    # A temp dir of its own: no `ray start` Ray that another test left running is joined.
    env = dict(os.environ, RAY_TMPDIR=tempfile.mkdtemp(prefix="rt", dir="/tmp"))
    env.pop("RAY_ADDRESS", None)
    out = subprocess.run([sys.executable, "-c", CHILD, how], env=env, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    lines = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    started = lines[0]
    assert "monitor" in started["kinds"] and "raylet" in started["kinds"]
    assert len(started["pids"]) >= 6  # gcs, raylet, monitor, log monitor, agents, a worker...
    if how == "stop_ray":
        assert lines[1] == {"initialized": False}
    psutil.wait_procs([p for p in map(_proc, started["pids"]) if p], timeout=10)
    left = [pid for pid in started["pids"] if _alive(pid)]
    assert not left, f"Ray processes left running: {left}"


def _proc(pid: int) -> psutil.Process | None:
    try:
        return psutil.Process(pid)
    except psutil.NoSuchProcess:
        return None


def test_ray_data_scheduling_pauses_after_steps_that_waited_for_nothing(monkeypatch):
    """Ray Data's loop spins when nothing can progress; fast steps are followed by a pause."""
    from ray.data import DataContext

    from ocr import runtime

    clock, slept = [100.0], []

    class FakeTime:
        @staticmethod
        def perf_counter():
            return clock[0]

        @staticmethod
        def sleep(seconds):
            slept.append(seconds)
            clock[0] += seconds

    monkeypatch.setattr(runtime, "time", FakeTime)
    pause = runtime.IdleStepPause()
    clock[0] += 0.1                      # a step that blocked in ray.wait: no pause
    pause.on_execution_step(None)
    assert slept == []
    clock[0] += 0.0002                   # a step that waited for nothing: paused
    pause.on_execution_step(None)
    assert slept == [runtime.IdleStepPause.pause_s]
    clock[0] += 0.0002                   # the pause does not count as the next step's time
    pause.on_execution_step(None)
    assert len(slept) == 2
    runtime.configure_data(progress=False)
    runtime.configure_data(progress=False)
    assert DataContext.get_current().custom_execution_callback_classes.count(runtime.IdleStepPause) == 1
