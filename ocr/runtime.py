"""Connecting to Ray: an existing cluster when there is one, else a local Ray started for us."""

from __future__ import annotations

import atexit
import logging
import os
import sys

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
    import ray

    if ray.is_initialized():
        return
    if quiet:
        for name in _QUIET_LOGGERS:
            logging.getLogger(name).setLevel(logging.WARNING)
    # Ray Train's print patch would echo each worker's print twice on the console.
    os.environ.setdefault("RAY_TRAIN_ENABLE_PRINT_PATCH", "0")
    address = address or os.environ.get("RAY_ADDRESS")
    kwargs = dict(logging_level=logging.WARNING if quiet else logging.INFO, log_to_driver=True)
    if address:
        ray.init(address=address, **kwargs)
        return
    for name, value in SERVE_FAST_PATH.items():   # read by Serve's processes when they start
        os.environ.setdefault(name, value)
    try:
        ray.init(num_cpus=num_cpus, include_dashboard=dashboard, **kwargs)
        atexit.register(_stop_autoscaler_monitor)  # runs before Ray's own exit hook
    except ValueError as err:  # a `ray start` Ray runs here: ray.init joins it, on its terms
        if num_cpus is None or "existing cluster" not in str(err):
            raise
        ray.init(**kwargs)
        cpus = ray.cluster_resources().get("CPU", 0)
        print(f"using the Ray already running here (`ray start`, {cpus:g} CPUs); num_cpus="
              f"{num_cpus} not applied (`ray stop` it to start a fresh one)", file=sys.stderr)


def stop_ray() -> None:
    """``ray.shutdown``, about a second sooner for a Ray started here."""
    import ray

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
    import ray
    from ray._private import ray_constants

    node = getattr(ray._private.worker, "_global_node", None)
    if node is None or not getattr(node, "head", False):
        return
    for info in node.all_processes.get(ray_constants.PROCESS_TYPE_MONITOR, []):
        if info.process.poll() is None:
            info.process.kill()
            info.process.wait(timeout=5)


def configure_data(progress: bool | None = None) -> None:
    """Ray Data settings for our pipelines (called on the driver before a pipeline runs).

    Operator resource reservation is off: our pipelines are one fused operator, and the
    reservation would otherwise hold back half of a 2-CPU machine.
    """
    from ray.data import DataContext

    _quiet_data_console()
    ctx = DataContext.get_current()
    ctx.op_resource_reservation_enabled = False
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
