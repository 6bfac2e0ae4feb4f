"""Start Ray Serve and run the OCR graph: ``ocr serve``, the demo and the tests call
:func:`deploy`; :func:`check_port` refuses an address Serve could not listen on, before
anything starts."""

from __future__ import annotations

import errno
import os
import socket

import ray
from ray import serve
from ray.serve.schema import LoggingConfig

from ocr.config import ConfigError
from ocr.runtime import ensure_ray, recorded_ray
from ocr.serve.app import build_app, serve_http_options

APP_NAME = "ocr"


def deploy(cfg, name: str = APP_NAME, route_prefix: str = "/", blocking: bool = False,
           quiet: bool = False) -> str:
    """Start Serve on ``cfg.host:cfg.port`` (in the connected Ray, or a local one) and run the
    graph; returns the base URL once every replica is up. ``quiet``: warnings only, no access log.
    Refused (ConfigError) before anything is deployed when the port is taken (:func:`check_port`)."""
    application = build_app(cfg)            # refuses bad checkpoints before Serve starts
    if not ray.is_initialized() and not (os.environ.get("RAY_ADDRESS") or recorded_ray()):
        check_port(cfg.host, cfg.port)      # a Ray about to start here holds no port yet
    ensure_ray(dashboard=True)
    check_port(cfg.host, cfg.port)          # free, or this Ray's own Serve (a redeploy)
    logs = LoggingConfig(log_level="WARNING", enable_access_log=False) if quiet else None
    serve.start(http_options={"host": cfg.host, "port": cfg.port, "request_timeout_s": cfg.request_timeout_s},
                logging_config=logs)
    serve.run(application, name=name, route_prefix=route_prefix, blocking=blocking, logging_config=logs)
    return f"http://{cfg.host}:{cfg.port}{route_prefix.rstrip('/')}"


def check_port(host: str, port: int) -> None:
    """Refuse (ConfigError) an HTTP address Serve could not listen on, saying who holds it and
    what to do. The Serve already running in the connected Ray is fine on its own port (a
    redeploy replaces the app in place) and refused on another (Serve keeps its first address)."""
    running = serve_http_options()
    if running is not None:
        if int(running.port) == int(port):
            return
        raise ConfigError(
            f"Ray Serve already runs in this Ray with HTTP on {running.host}:{running.port}: expected "
            f"port {port}, but a running Serve keeps the address it started with. Deploy there with "
            f"--port {running.port} (the app is replaced in place), or stop that Serve first "
            f"(`serve shutdown -y`) to start anew on {port}")
    problem = _bind_problem(host, port)
    if problem:
        raise ConfigError(problem)


def _bind_problem(host: str, port: int) -> str | None:
    """Why ``host:port`` cannot be listened on (a sentence saying what to do), or None."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                             flags=socket.AI_PASSIVE)[0]
    except (socket.gaierror, UnicodeError) as e:
        return (f"host {host!r}: expected an address of this machine to serve on (127.0.0.1 for this "
                f"machine only, 0.0.0.0 for every interface), found a name that does not resolve "
                f"({e}): pick another with --host")
    with socket.socket(family, kind, proto) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)   # as HTTP servers do
        try:
            sock.bind(address)
            return None
        except OSError as e:
            err = e
    if err.errno == errno.EADDRINUSE:
        owner = _port_owner(port)
        free = _free_port_near(family, address)
        return (f"port {port} on {host} is in use{f' by {owner}' if owner else ''}: expected a free "
                f"port for Serve's HTTP server, found another process listening there. Stop that "
                f"process, or pick another port with --port N{f' (e.g. --port {free})' if free else ''}")
    if err.errno == errno.EACCES:
        return (f"port {port} on {host}: expected a port this user may listen on, found one below 1024 "
                f"(root only): pick another with --port N, such as 8000")
    if err.errno == errno.EADDRNOTAVAIL:
        return (f"host {host}: expected an address of this machine to serve on (127.0.0.1, or 0.0.0.0 "
                f"for every interface), found one it does not have: pick another with --host")
    return f"cannot listen on {host}:{port} ({err.strerror or err}): pick another --host or --port"


def _port_owner(port: int) -> str:
    """``python3 (PID 1234)``: the process listening on ``port``, when psutil can tell."""
    try:
        import psutil  # lazy: an optional dependency; without it the message names no process

        for conn in psutil.net_connections(kind="inet"):
            if conn.laddr and conn.laddr.port == port and conn.status == psutil.CONN_LISTEN and conn.pid:
                return f"{psutil.Process(conn.pid).name()} (PID {conn.pid})"
    except Exception:  # noqa: BLE001, S110 - no psutil, no permission: say nothing
        pass
    return ""


def _free_port_near(family, address: tuple) -> int | None:
    """A free port among the next few after ``address``'s, to suggest."""
    for candidate in range(address[1] + 1, min(address[1] + 20, 65536)):
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            try:
                sock.bind((address[0], candidate, *address[2:]))
                return candidate
            except OSError:
                continue
    return None
