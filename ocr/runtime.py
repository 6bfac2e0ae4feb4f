"""Connecting to Ray: an existing cluster when there is one, else a local Ray started for us."""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import socket
import sys
import time
from pathlib import Path

import ray
from ray._common.utils import get_ray_address_file
from ray._private import ray_constants, services
from ray._private.authentication import authentication_token_setup as auth
from ray._private.utils import read_ray_address
from ray._raylet import AuthenticationTokenLoader, InnerGcsClient
from ray.data import DataContext
from ray.data._internal.execution.execution_callback import ExecutionCallback
from ray.exceptions import AuthenticationError, RpcError

from ocr.config import ConfigError

_QUIET_LOGGERS = ("ray", "ray.data", "ray.train", "ray.tune", "ray.serve")


# Ray Serve's high-throughput mode (Ray >= 2.55, documented for KubeRay): HAProxy on the HTTP
# port in place of the Python proxy, each ingress replica serving HTTP itself. On 2 cores it
# cuts Serve's p50 overhead from ~27 ms to ~10 ms a request and triples /recognize throughput
# (benchmarks/README.md). Between deployments it would use gRPC; Ray actor calls are faster
# here (one node, same-session A/B, two runs each: 2-3 ms less a request at concurrency 1,
# 1.25x the /recognize rate at 32), so the mode's gRPC default is turned off. Set for the
# local Ray started here; a cluster sets them in its nodes' environment (cluster.yaml, the
# KubeRay manifests); set any of them beforehand to opt out.
SERVE_FAST_PATH = {"RAY_SERVE_THROUGHPUT_OPTIMIZED": "1", "RAY_SERVE_ENABLE_HA_PROXY": "1",
                   "RAY_SERVE_USE_GRPC_BY_DEFAULT": "0"}
# The mode's HAProxy opens a stats page and a metrics exporter on every interface; Serve runs
# ``ocr-haproxy`` (ocr/serve/haproxy_loopback.py) in its place, which binds them to loopback.
HAPROXY_BINARY_ENV = "RAY_SERVE_HAPROXY_BINARY_PATH"


def serve_environment() -> dict[str, str]:
    """SERVE_FAST_PATH, and HAProxy's binary: ``ocr-haproxy`` beside this Python's ``ocr``."""
    env = dict(SERVE_FAST_PATH)
    wrapper = Path(sys.executable).parent / "ocr-haproxy"
    if not wrapper.is_file():
        found = shutil.which("ocr-haproxy")
        wrapper = Path(found) if found else None
    if wrapper is not None:
        env[HAPROXY_BINARY_ENV] = str(wrapper)
    return env


def ensure_ray(num_cpus: int | None = None, address: str | None = None, quiet: bool = True,
               dashboard: bool = False) -> None:
    """Initialise Ray once per process.

    Uses ``address`` or ``RAY_ADDRESS`` when set (a cluster), else, as ``ray.init`` does, a
    Ray started here by ``ray start --head`` (joined in ~0.05 s where a start takes 3-6 s;
    its resources, not ``num_cpus``, apply); otherwise starts a local Ray with ``num_cpus``
    (default: all cores) and Serve's fast path (``SERVE_FAST_PATH``). The dashboard (and the
    state API behind it) is started only when asked: data jobs start faster without it; Ray
    Train and Tune need it to watch their actors.
    """
    if ray.is_initialized():
        return
    if quiet:
        for name in _QUIET_LOGGERS:
            logging.getLogger(name).setLevel(logging.WARNING)
    # Ray Train's print patch would echo each worker's print twice on the console.
    os.environ.setdefault("RAY_TRAIN_ENABLE_PRINT_PATCH", "0")
    named = "address" if address else "RAY_ADDRESS"
    address = address or os.environ.get("RAY_ADDRESS")
    kwargs = dict(logging_level=logging.WARNING if quiet else logging.INFO, log_to_driver=True)
    if address:
        check_ray_answers(address, f"{named}={address}")
        ray.init(address=address, **kwargs)
        return
    recorded = recorded_ray()
    if recorded:  # ray.init would join it: say so now if it cannot
        check_ray_answers(recorded, f"the Ray that `ray start` recorded in {_address_file()} "
                          f"({recorded})", explicit=False)
    for name, value in serve_environment().items():   # read by Serve's processes when they start
        os.environ.setdefault(name, value)
    try:
        ray.init(num_cpus=num_cpus, include_dashboard=dashboard, **kwargs)
        atexit.register(_stop_autoscaler_monitor)  # runs before Ray's own exit hook
    except ValueError as err:  # a `ray start` Ray runs here: ray.init joins it, on its terms
        if num_cpus is None or "existing cluster" not in str(err):
            raise
        ray.init(**kwargs)
        cpus = ray.cluster_resources().get("CPU", 0)
        if cpus != num_cpus:
            print(f"using the Ray already running here (`ray start`, {cpus:g} CPUs); num_cpus="
                  f"{num_cpus} not applied: its {cpus:g} CPUs are used. To use {num_cpus}, `ray stop` "
                  f"it (ocr then starts a Ray of its own each time) or restart it with `ray start "
                  f"--head --num-cpus {num_cpus}`", file=sys.stderr)


def recorded_ray() -> str | None:
    """The address of the Ray that ``ray start`` recorded on this machine (which a plain
    ``ray.init()`` joins), or None."""
    return read_ray_address() or None


def _address_file() -> str:
    return get_ray_address_file(None)


def check_ray_answers(address: str, what: str, explicit: bool = True) -> None:
    """Refuse (ConfigError) a Ray address that ``ray.init`` would wait minutes on, or fail to
    join after ~20 s of retries: nothing listening there, something that is no Ray there, or
    token authentication on there without this process's token. One TCP connect, then one GCS
    call (a few ms when the Ray answers); Ray client addresses (``ray://``) and anything else it
    cannot judge are left to ``ray.init``.

    ``what`` names the address in the message; ``explicit``: given (RAY_ADDRESS, ``address``),
    not found on the machine (Ray then sends a token only with RAY_AUTH_MODE=token).
    """
    if "://" in address or address in ("auto", "local"):
        return
    try:
        gcs = services.canonicalize_bootstrap_address(address)
        host, port = services.parse_address(gcs)
        port = int(port)
    except (ValueError, TypeError, OSError):
        return  # not host:port: ray.init says what is wrong with it
    if not explicit:
        expected = "that Ray still running"
        todo = ("it has stopped or crashed. Run `ray stop` (or delete that file) to clear the record, "
                "and ocr starts a local Ray; or start a Ray again with `ray start --head`")
    else:
        expected = "a running Ray cluster's head there (the address `ray start --head` prints)"
        todo = (f"start it with `ray start --head --port {port}`, or "
                + ("unset RAY_ADDRESS to let ocr start a local Ray" if what.startswith("RAY_ADDRESS")
                   else "give no address to start a local Ray"))
    try:
        with socket.create_connection((host, port), timeout=5):
            pass
    except OSError as e:
        reason = getattr(e, "strerror", None) or "no answer in 5 s"
        raise ConfigError(f"{what} does not answer: expected {expected}, found nothing listening at "
                          f"{gcs} ({reason}): {todo}") from None
    if _gcs_says(gcs, what, explicit) == "no answer":
        raise ConfigError(f"{what} is no Ray: expected {expected}, found something listening at {gcs} "
                          "that did not answer Ray's first call in 15 s (a dashboard's port, 8265, is "
                          f"for `ray job submit`; a head's own is 6379 unless set otherwise): {todo}")


_TOKEN_PLACES = ("in $RAY_AUTH_TOKEN, in the file $RAY_AUTH_TOKEN_PATH names, or in ~/.ray/auth_token "
                 "(Ray reads them in that order)")
_GET_TOKEN = ("`ray get-auth-token` on the machine that ran `ray start --head` prints it: "
              "`export RAY_AUTH_TOKEN=<that token>` here")


def _gcs_says(gcs: str, what: str, explicit: bool) -> str:
    """One call to the GCS at ``gcs``, with the token ray.init would send: "ok", "no answer"
    (it timed out), "unknown" (any other failure: left to ray.init); a ConfigError saying what
    to do when it refuses the token, or when token mode is on here without a token.

    Token authentication is on by default for a Ray that ``ray.init`` starts, and for ``ray
    start`` where a token exists; ray.init would retry ~20 s, then say only "Failed to connect".
    Mirrors ray.init's choice: the token is RAY_AUTH_TOKEN, else the file RAY_AUTH_TOKEN_PATH
    names, else ~/.ray/auth_token; sent to a given address only with RAY_AUTH_MODE=token, to
    the Ray found on the machine whenever one exists (unless RAY_AUTH_MODE=disabled)."""
    mode = (os.environ.get("RAY_AUTH_MODE") or "").lower()
    has_token = AuthenticationTokenLoader.instance().has_token(ignore_auth_mode=True)
    if mode == "token" and not has_token:  # ray.init refuses this too (the client would abort)
        raise ConfigError(f"RAY_AUTH_MODE=token is set but no Ray token is: expected the token of "
                          f"{what} {_TOKEN_PLACES}, found none. {_GET_TOKEN}; or `unset RAY_AUTH_MODE` "
                          "for a Ray without token authentication")
    if not explicit:
        auth.maybe_enable_token_auth_if_token_available(warn_if_disabled=False)  # as ray.init does
    try:
        InnerGcsClient.standalone(gcs, None, 5000)   # + Ray's own 10 s of connecting
        return "ok"
    except AuthenticationError:
        pass
    except RpcError as e:
        return "no answer" if "timed out" in str(e).lower() else "unknown"
    except Exception:  # noqa: BLE001 - anything else: ray.init has its own retries and words
        return "unknown"
    source = ("$RAY_AUTH_TOKEN" if os.environ.get("RAY_AUTH_TOKEN") else
              f"$RAY_AUTH_TOKEN_PATH ({os.environ['RAY_AUTH_TOKEN_PATH']})"
              if os.environ.get("RAY_AUTH_TOKEN_PATH") else "~/.ray/auth_token")
    sent = (mode == "token") if explicit else (has_token and mode != "disabled")
    if sent:
        message = (f"{what} refused this process's Ray token (from {source}): expected that cluster's "
                   f"token, found another. {_GET_TOKEN} (it comes first)")
    elif has_token:
        message = (f"{what} has token authentication on: expected RAY_AUTH_MODE=token with its token, "
                   f"found the token ({source}) but RAY_AUTH_MODE {'=' + mode if mode else 'unset'} "
                   "(Ray sends a token to a given address only with RAY_AUTH_MODE=token): "
                   "`export RAY_AUTH_MODE=token`")
    else:
        message = (f"{what} has token authentication on: expected its token {_TOKEN_PLACES}, found "
                   f"none. {_GET_TOKEN}" + ("; and `export RAY_AUTH_MODE=token` (Ray sends a token to "
                                             "a given address only then)" if explicit else ""))
    raise ConfigError(message)


def stop_ray() -> None:
    """``ray.shutdown``, about a second sooner for a Ray started here."""
    _stop_autoscaler_monitor()
    ray.shutdown()


def _stop_autoscaler_monitor() -> None:
    """Kill the autoscaler monitor of the Ray this process started, before ``ray.shutdown``.

    ``ray.shutdown`` stops the GCS before the monitor; the monitor's SIGTERM handler then
    reports its end to the GCS that is gone, until Ray kills it a second later (1.0 of the
    1.4 s a shutdown takes on 2 cores). A local Ray's monitor keeps no state, and Ray ends it
    with SIGKILL anyway: doing that first ends the same way, a second sooner. A Ray joined
    here (a cluster, `ray start`) is not ours to stop and is left alone.
    """
    node = getattr(ray._private.worker, "_global_node", None)
    if node is None or not getattr(node, "head", False):
        return
    for info in node.all_processes.get(ray_constants.PROCESS_TYPE_MONITOR, []):
        if info.process.poll() is None:
            info.process.kill()
            info.process.wait(timeout=5)


class IdleStepPause(ExecutionCallback):
    """Pauses Ray Data's scheduling loop for ``pause_s`` after a step that took under
    ``spin_s``: a step that waited for nothing.

    The loop blocks in ``ray.wait`` (up to 0.1 s) for its tasks' outputs, but outputs that
    backpressure keeps it from reading are "ready" at once, and with no task running it
    waits for nothing: during a training run that streams a large split, Ray 2.60's
    SplitCoordinator spins so for the whole run, half a core of a 2-CPU machine that the
    training workers need. A pause of 20 ms delays the next read by at most that, against
    blocks that take seconds to consume (benchmarks/README.md).
    """

    pause_s = 0.02
    spin_s = 0.005

    def __init__(self):
        self._last = time.perf_counter()

    def on_execution_step(self, executor) -> None:
        now = time.perf_counter()
        if now - self._last < self.spin_s:
            time.sleep(self.pause_s)
            now = time.perf_counter()
        self._last = now


def configure_data(progress: bool | None = None) -> None:
    """Ray Data settings for our pipelines (called on the driver before a pipeline runs;
    datasets carry them to the processes that execute them).

    Operator resource reservation is off: our pipelines are one fused operator, and the
    reservation would otherwise hold back half of a 2-CPU machine. :class:`IdleStepPause`
    keeps the scheduling loop from spinning.
    """
    _quiet_data_console()
    ctx = DataContext.get_current()
    ctx.op_resource_reservation_enabled = False
    if IdleStepPause not in ctx.custom_execution_callback_classes:
        ctx.custom_execution_callback_classes.append(IdleStepPause)
    show = sys.stderr.isatty() if progress is None else progress
    ctx.enable_progress_bars = show
    ctx.print_on_execution_start = False
    ctx.enable_auto_log_stats = False


def _quiet_data_console() -> None:
    """Ray Data's console handler prints a stats line per dataset at INFO: keep warnings only,
    minus the notice that progress bars are off (we turn them off on purpose off a TTY)."""
    for handler in logging.getLogger("ray.data").handlers:
        if type(handler).__name__ == "PlainRayHandler" and handler.level < logging.WARNING:
            handler.setLevel(logging.WARNING)
            handler.addFilter(lambda r: not str(r.msg).startswith("Progress bars"))
