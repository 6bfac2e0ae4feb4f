"""Serving fails closed: beyond loopback only with a token (or --insecure, said out loud),
the token never leaves the builder's process, HAProxy's stats and metrics stay on loopback.
No Ray here; tests/test_serve.py checks the listening sockets of a running service."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

from ocr.config import ConfigError
from ocr.serve.config import MIN_TOKEN_CHARS, ServeConfig, is_loopback, token_sha256
from ocr.serve.haproxy_loopback import loopback_binds

TOKEN = "a-token-of-thirty-two-characters"


@pytest.mark.parametrize("host,expected", [
    ("127.0.0.1", True), ("127.0.0.2", True), ("::1", True), ("[::1]", True), ("localhost", True),
    ("0.0.0.0", False), ("::", False), ("192.0.2.10", False), ("no-such-host.invalid", False)])
def test_loopback_hosts(host, expected):
    assert is_loopback(host) is expected


def _serve(*args: str, **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in ("OCR_SERVE_TOKEN", "RAY_ADDRESS")}
    return subprocess.run([sys.executable, "-m", "ocr.cli", "serve", *args], env={**clean, **env},
                          capture_output=True, text=True, timeout=120)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serving_beyond_loopback_without_a_token_exits_before_anything_starts(tmp_path):
    port = _free_port()
    out = _serve("--host", "0.0.0.0", "--port", str(port), RAY_TMPDIR=str(tmp_path))
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
    assert "0.0.0.0" in out.stderr and "OCR_SERVE_TOKEN" in out.stderr and "--insecure" in out.stderr
    assert not any(tmp_path.rglob("session_*")), "a Ray was started"
    with socket.socket() as s:   # nothing listens there
        assert s.connect_ex(("127.0.0.1", port)) != 0


def test_a_short_token_is_refused_with_how_to_make_one(tmp_path):
    out = _serve("--port", str(_free_port()), OCR_SERVE_TOKEN="short", RAY_TMPDIR=str(tmp_path))
    assert out.returncode == 2 and f"at least {MIN_TOKEN_CHARS} characters" in out.stderr
    assert "openssl rand" in out.stderr


def test_exposure_rules(monkeypatch):
    monkeypatch.delenv("OCR_SERVE_TOKEN", raising=False)
    ServeConfig().check_exposure({"127.0.0.1", "localhost"})
    with pytest.raises(ConfigError, match="needs a token"):
        ServeConfig().check_exposure({"127.0.0.1", "0.0.0.0"})   # the running Serve's host counts
    ServeConfig(insecure=True).check_exposure({"0.0.0.0"})
    monkeypatch.setenv("OCR_SERVE_TOKEN", TOKEN)
    ServeConfig().check_exposure({"0.0.0.0"})


def test_only_a_salted_digest_of_the_token_leaves_the_builder(monkeypatch):
    monkeypatch.setenv("OCR_SERVE_TOKEN", TOKEN)
    digest = ServeConfig().token_digest()
    assert TOKEN not in repr(digest) and digest["sha256"] == token_sha256(digest["salt"], TOKEN)
    assert ServeConfig().token_digest() == digest   # a redeploy leaves the ingress as it is
    monkeypatch.delenv("OCR_SERVE_TOKEN")
    assert ServeConfig().token_digest() is None


HAPROXY_CONFIG = """\
frontend prometheus
    bind :9101
    mode http
frontend http_frontend
    bind 0.0.0.0:8000
listen stats
  bind *:8404
  stats enable
"""


def test_ocr_haproxy_binds_stats_and_metrics_to_loopback_only():
    out = loopback_binds(HAPROXY_CONFIG)
    assert "bind 127.0.0.1:9101" in out and "bind 127.0.0.1:8404" in out
    assert "bind 0.0.0.0:8000" in out   # the API frontend keeps http_options.host
    assert "bind [::1]:8404" in loopback_binds(HAPROXY_CONFIG, "::1")


def test_ocr_haproxy_runs_the_real_binary_on_the_rewritten_file(tmp_path):
    config = tmp_path / "haproxy.cfg"
    timeouts = "".join(f"    timeout {t} 1s\n" for t in ("client", "server", "connect"))
    defaults = "defaults\n    mode http\n" + timeouts
    frontends = HAPROXY_CONFIG.replace("frontend http_frontend\n    bind 0.0.0.0:8000\n", "")
    config.write_text("global\n    log stdout format raw local0\n" + defaults + frontends)
    wrapper = os.path.join(os.path.dirname(sys.executable), "ocr-haproxy")
    env = {**os.environ, "RAY_SERVE_HAPROXY_BINARY_PATH": wrapper}   # as Serve runs it
    out = subprocess.run([wrapper, "-c", "-f", str(config)], capture_output=True, text=True, timeout=60,
                         env=env)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "bind 127.0.0.1:8404" in config.read_text() and "bind *:" not in config.read_text()
