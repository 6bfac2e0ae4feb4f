"""Real multi-process Ray clusters on this machine, for the job and multi-node tests.

Each node is one ``ray start --block`` process, started as the leader of its own session:
every process of the node (GCS, raylet, dashboard, agents, and the workers the raylet forks,
each in a process group of its own) belongs to that session, so a node is stopped or killed
by signalling the processes of that session and nothing else. ``ray stop`` is never used:
it kills every Ray process on the machine, other test sessions' clusters included.

Each cluster also has its own short ``--temp-dir`` (Unix socket paths under it must stay
below ~107 characters), so its ``ray_current_cluster`` file is not the machine's default
one that a plain ``ray.init()`` elsewhere would pick up, and its own free ports (GCS,
dashboard, agents, client server, metrics), so clusters never collide. Every process
started here has ``RAY_ADDRESS`` set to its own cluster: drivers and the Ray State API
(which Ray Train's placement-group cleaner calls) then never have to guess among the
several clusters running on the machine.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RAY = str(Path(sys.executable).with_name("ray"))
STARTED = "Ray runtime started."


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _node_ports() -> list[str]:
    """Per-node ports whose defaults are fixed numbers shared by every cluster on a machine."""
    return ["--dashboard-agent-listen-port", str(free_port()), "--dashboard-agent-grpc-port",
            str(free_port()), "--runtime-env-agent-port", str(free_port()),
            "--metrics-export-port", str(free_port())]


def _die_with_parent() -> None:
    """In the child: SIGTERM when the test process dies, however it dies (Linux); `ray start
    --block` then stops its node."""
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class Node:
    """One ``ray start --block`` process and the session of processes it starts."""

    def __init__(self, args: list[str], env: dict, log: Path):
        self.log = log
        self._out = open(log, "w")
        self.proc = subprocess.Popen([RAY, "start", "--block", *args], env=env, stdout=self._out,
                                     stderr=subprocess.STDOUT, start_new_session=True,
                                     preexec_fn=_die_with_parent)

    def wait_started(self, timeout: float = 120) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            if STARTED in self.log.read_text(errors="replace"):
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.3)
        raise RuntimeError(f"ray start did not start (exit {self.proc.poll()}):\n{self.tail()}")

    def tail(self, chars: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-chars:]

    def pids(self) -> set[int]:
        """Every live process of this node: its session (the raylet forks each worker into a
        process group of its own, but within this session) and the start process's descendants."""
        import psutil

        out = set()
        try:
            root = psutil.Process(self.proc.pid)
            out |= {p.pid for p in [root, *root.children(recursive=True)]}
        except psutil.NoSuchProcess:
            pass
        for pid in psutil.pids():
            try:
                if os.getsid(pid) == self.proc.pid:
                    out.add(pid)
            except OSError:
                pass
        return out

    def raylet_pid(self) -> int:
        import psutil

        for pid in self.pids():
            try:
                if psutil.Process(pid).name() == "raylet":
                    return pid
            except psutil.Error:
                pass
        raise RuntimeError(f"no raylet among the node's processes {sorted(self.pids())}")

    def kill(self) -> None:
        """SIGKILL every process of the node at once (what losing the machine does)."""
        _kill_all(self.pids())
        self.proc.wait(timeout=30)
        self._out.close()

    def stop(self, grace: float = 5) -> None:
        """SIGTERM every process of the node (as `ray stop` does, for this node only), then
        SIGKILL what is left after ``grace`` seconds."""
        import psutil

        procs = []
        for pid in self.pids():
            try:
                procs.append(psutil.Process(pid))
                procs[-1].terminate()
            except psutil.Error:
                pass
        _, alive = psutil.wait_procs(procs, timeout=grace)
        _kill_all({p.pid for p in alive} | self.pids())
        self.proc.wait(timeout=30)
        self._out.close()


def _kill_all(pids: set[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


class LocalCluster:
    """A head (with the dashboard and the Job Submission API) and any number of extra nodes."""

    def __init__(self, log_dir: Path):
        self.log_dir = Path(log_dir)
        self.tmp_root = tempfile.mkdtemp(prefix="rt", dir="/tmp")  # short: socket path limit
        self.temp_dir = os.path.join(self.tmp_root, "ray")  # Ray's layout: see local_env
        self.port, self.dashboard_port = free_port(), free_port()
        self.token = secrets.token_hex(32)  # Ray's token authentication, this cluster's own token
        self.head: Node | None = None
        self.nodes: list[Node] = []

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def dashboard_url(self) -> str:
        return f"http://127.0.0.1:{self.dashboard_port}"

    def env(self, **extra: str) -> dict:
        """The environment of every process of (or driver for) this cluster."""
        env = {**os.environ, "RAY_ADDRESS": self.address, "RAY_USAGE_STATS_ENABLED": "0",
               "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": self.token, **extra}
        env.pop("RAY_API_SERVER_ADDRESS", None)
        # This venv first on PATH, as in the shell (venv activated) `ray start` is typed in: a
        # job's entrypoint `python jobs/...` then runs this venv's python.
        env["PATH"] = os.pathsep.join(p for p in (str(Path(sys.executable).parent), env.get("PATH")) if p)
        return env

    def local_env(self) -> dict:
        """The environment of a process that finds this cluster as a plain ``ray.init()`` on
        the machine finds one started by ``ray start``: no RAY_ADDRESS, the temp dir's file."""
        return {k: v for k, v in self.env(RAY_TMPDIR=self.tmp_root).items() if k != "RAY_ADDRESS"}

    def _common(self, num_cpus: int, resources: dict | None = None) -> list[str]:
        args = ["--num-cpus", str(num_cpus), "--num-gpus", "0", "--temp-dir", self.temp_dir,
                "--object-store-memory", str(256 * 1024 * 1024), "--disable-usage-stats", *_node_ports()]
        return args + (["--resources", json.dumps(resources)] if resources else [])

    def start_head(self, num_cpus: int) -> Node:
        args = ["--head", "--port", str(self.port), "--include-dashboard", "true",
                "--dashboard-host", "127.0.0.1", "--dashboard-port", str(self.dashboard_port),
                "--ray-client-server-port", str(free_port()), *self._common(num_cpus)]
        self.head = Node(args, self.env(), self.log_dir / "head.log")
        self.head.wait_started()
        self.wait_for_dashboard()
        return self.head

    def add_node(self, num_cpus: int, resources: dict | None = None) -> Node:
        # One log monitor per machine: the nodes share the session's log folder.
        args = ["--address", self.address, "--include-log-monitor", "false",
                *self._common(num_cpus, resources)]
        node = Node(args, self.env(), self.log_dir / f"node{len(self.nodes) + 1}.log")
        self.nodes.append(node)
        node.wait_started()
        return node

    def wait_for_dashboard(self, timeout: float = 120) -> None:
        import urllib.error
        import urllib.request

        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                with urllib.request.urlopen(f"{self.dashboard_url}/api/version", timeout=5):
                    return
            except urllib.error.HTTPError:  # it answers (401 when token auth is on)
                return
            except OSError:
                time.sleep(0.5)
        raise RuntimeError(f"dashboard {self.dashboard_url} did not answer:\n{self.head.tail()}")

    @property
    def headers(self) -> dict:
        return {"Authorization": f"Bearer {self.token}"}

    def state(self, resource: str) -> list[dict]:
        """A State API listing (``nodes``, ``actors``, ...) over HTTP, without a driver connection."""
        import urllib.request

        url = f"{self.dashboard_url}/api/v0/{resource}?detail=1&limit=10000"
        with urllib.request.urlopen(urllib.request.Request(url, headers=self.headers), timeout=30) as r:
            return json.load(r)["data"]["result"]["result"]

    def alive_nodes(self) -> list[dict]:
        return [n for n in self.state("nodes") if n["state"] == "ALIVE"]

    def wait_for_nodes(self, count: int, timeout: float = 90) -> list[dict]:
        deadline = time.time() + timeout
        while time.time() < deadline:
            nodes = self.alive_nodes()
            if len(nodes) == count:
                return nodes
            time.sleep(0.5)
        raise RuntimeError(f"expected {count} live nodes, found {len(self.alive_nodes())}")

    def shutdown(self) -> None:
        """Stop every node (extra nodes first), then remove the temp dir."""
        try:
            for node in [*reversed(self.nodes), self.head]:
                if node is not None and node.proc.returncode is None:
                    try:
                        node.stop()
                    except Exception as e:  # stop the others regardless
                        print(f"stopping {node.log.name}: {e!r}", file=sys.stderr)
        finally:
            shutil.rmtree(self.tmp_root, ignore_errors=True)
