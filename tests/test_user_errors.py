"""Errors a new user meets, through the real ``ocr`` CLI: one paragraph saying what was
expected, what was found and what to do, exit code 2, no traceback, before any work starts.

Each command runs with a Ray temp dir of its own (RAY_TMPDIR, empty) and no RAY_ADDRESS or
RAY_AUTH_*: no Ray of the machine is joined, and an empty temp dir afterwards shows that no
Ray was started.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from concurrent import futures
from pathlib import Path
from types import SimpleNamespace

import pytest
from conftest import write_gt_set

DEJAVU = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")


def ocr(*args: str, tmp_path: Path, timeout: float = 120, **env: str) -> subprocess.CompletedProcess:
    ray_tmp = tmp_path / "raytmp"
    ray_tmp.mkdir(exist_ok=True)
    base = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_ADDRESS", "RAY_AUTH_"))}
    base.update(RAY_TMPDIR=str(ray_tmp), **env)
    started = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "ocr.cli", *args], env=base, capture_output=True,
                         text=True, timeout=timeout)
    out.seconds = time.perf_counter() - started
    out.ray_started = any(ray_tmp.rglob("session_*"))
    return out


def refused(out: subprocess.CompletedProcess, command: str) -> str:
    """The error paragraph, after checking the exit code and that no traceback was printed."""
    assert out.returncode == 2, out.stdout[-2000:] + out.stderr[-4000:]
    assert "Traceback" not in out.stderr, out.stderr[-4000:]
    lines = [ln for ln in out.stderr.splitlines() if ln.startswith(f"ocr {command}: error: ")]
    assert len(lines) == 1, out.stderr[-4000:]
    return lines[0]


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def gt(tmp_path) -> Path:
    return write_gt_set(tmp_path / "raw", [("a.png", "1")])


# --- 1. a port in use -------------------------------------------------------------------
@pytest.fixture(scope="module")
def recognizer(tmp_path_factory) -> str:
    from test_serve import tiny_recognizer

    return tiny_recognizer(tmp_path_factory.mktemp("ckpt") / "rec", 0, "rec")


def test_serve_on_a_taken_port_says_who_holds_it_before_ray_starts(recognizer, tmp_path):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        out = ocr("serve", "--recognizer", recognizer, "--deskewer", "off", "--port", str(port),
                  tmp_path=tmp_path)
    message = refused(out, "serve")
    assert f"port {port} on 127.0.0.1 is in use by " in message
    assert f"(PID {os.getpid()})" in message          # this test process holds it
    assert "Stop that process, or pick another port with --port N" in message
    assert not out.ray_started


def test_a_redeploy_on_the_port_of_the_running_serve_is_allowed(monkeypatch):
    """The Serve already running in the connected Ray holds its port legitimately (a redeploy
    replaces the app in place); another port cannot apply to it and is refused."""
    import ocr.serve.deploy as serving
    from ocr.config import ConfigError

    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        monkeypatch.setattr(serving, "serve_http_options", lambda: None)
        with pytest.raises(ConfigError, match=f"port {port} on 127.0.0.1 is in use"):
            serving.check_port("127.0.0.1", port)
        running = SimpleNamespace(host="127.0.0.1", port=port)
        monkeypatch.setattr(serving, "serve_http_options", lambda: running)
        serving.check_port("127.0.0.1", port)       # no error: this Ray's own Serve
        other = closed_port()
        with pytest.raises(ConfigError, match=f"already runs in this Ray with HTTP on 127.0.0.1:{port}.*"
                                              f"--port {port}"):
            serving.check_port("127.0.0.1", other)


# --- 2. a Ray that cannot be joined -------------------------------------------------------
def test_a_ray_address_that_does_not_answer_fails_fast(gt, tmp_path):
    port = closed_port()
    out = ocr("ingest", str(gt), "--output", str(tmp_path / "out"), tmp_path=tmp_path,
              RAY_ADDRESS=f"127.0.0.1:{port}")
    message = refused(out, "ingest")
    assert f"RAY_ADDRESS=127.0.0.1:{port} does not answer" in message
    assert "ray start --head" in message and "unset RAY_ADDRESS to let ocr start a local Ray" in message
    assert out.seconds < 25 and not out.ray_started   # ray.init alone waits minutes here


def test_a_dead_ray_start_record_is_named_with_the_fix(gt, tmp_path):
    """`ray start`'s record of its address outlives a crashed Ray: ray.init would join it."""
    record = tmp_path / "raytmp" / "ray" / "ray_current_cluster"
    record.parent.mkdir(parents=True)
    record.write_text(f"127.0.0.1:{closed_port()}")
    out = ocr("ingest", str(gt), "--output", str(tmp_path / "out"), "--num-cpus", "1", tmp_path=tmp_path)
    message = refused(out, "ingest")
    assert f"recorded in {record}" in message and "does not answer" in message
    assert "stopped or crashed" in message and "`ray stop`" in message
    assert out.seconds < 25


def test_a_ray_address_of_something_else_is_no_ray(gt, tmp_path):
    """A port that accepts connections but never answers as Ray's GCS (a dashboard's, a web
    server's): ray.init would wait minutes; the check gives up after Ray's first call, ~15 s."""
    with socket.socket() as mute:
        mute.bind(("0.0.0.0", 0))
        mute.listen()
        port = mute.getsockname()[1]
        out = ocr("ingest", str(gt), "--output", str(tmp_path / "out"), tmp_path=tmp_path,
                  RAY_ADDRESS=f"127.0.0.1:{port}")
    message = refused(out, "ingest")
    assert f"RAY_ADDRESS=127.0.0.1:{port} is no Ray" in message and "did not answer" in message
    assert "unset RAY_ADDRESS" in message
    assert out.seconds < 30 and not out.ray_started


@pytest.fixture(scope="module")
def token_gcs():
    """A GCS stand-in that refuses every call as a Ray with token authentication refuses a
    missing or wrong token (status UNAUTHENTICATED, Ray's words)."""
    import grpc

    class Refuse(grpc.GenericRpcHandler):
        def service(self, details):
            def refuse(request, context):
                context.abort(grpc.StatusCode.UNAUTHENTICATED,
                              "InvalidAuthToken: Authentication token is missing or incorrect")
            return grpc.unary_unary_rpc_method_handler(refuse)

    server = grpc.server(futures.ThreadPoolExecutor(2))
    server.add_generic_rpc_handlers((Refuse(),))
    port = server.add_insecure_port("0.0.0.0:0")
    server.start()
    yield f"127.0.0.1:{port}"
    server.stop(0)


@pytest.mark.parametrize("case, env, expected", [
    ("no token", {}, ["has token authentication on", "$RAY_AUTH_TOKEN", "$RAY_AUTH_TOKEN_PATH",
                      "~/.ray/auth_token", "ray get-auth-token", "export RAY_AUTH_MODE=token"]),
    ("token, no mode", {"RAY_AUTH_TOKEN": "a" * 32},
     ["has token authentication on", "found the token ($RAY_AUTH_TOKEN) but RAY_AUTH_MODE unset",
      "`export RAY_AUTH_MODE=token`"]),
    ("wrong token", {"RAY_AUTH_TOKEN": "a" * 32, "RAY_AUTH_MODE": "token"},
     ["refused this process's Ray token (from $RAY_AUTH_TOKEN)", "ray get-auth-token"]),
    ("mode, no token", {"RAY_AUTH_MODE": "token"},
     ["RAY_AUTH_MODE=token is set but no Ray token is", "~/.ray/auth_token", "unset RAY_AUTH_MODE"]),
])
def test_token_authentication_says_how_to_get_the_token(case, env, expected, token_gcs, gt, tmp_path):
    home = tmp_path / "home"    # no ~/.ray/auth_token
    home.mkdir()
    out = ocr("ingest", str(gt), "--output", str(tmp_path / "out"), tmp_path=tmp_path,
              RAY_ADDRESS=token_gcs, HOME=str(home), **env)
    message = refused(out, "ingest")
    assert message.startswith(f"ocr ingest: error: RAY_ADDRESS={token_gcs}") or case == "mode, no token"
    for phrase in expected:
        assert phrase in message, message
    assert out.seconds < 25      # ray.init retries ~20 s before "Failed to connect"


# --- 3. no font for the text ------------------------------------------------------------
@pytest.fixture
def latin_fonts(tmp_path) -> Path:
    folder = tmp_path / "latin"
    folder.mkdir()
    (folder / DEJAVU.name).symlink_to(DEJAVU)
    return folder


def test_hangul_without_a_hangul_font_names_symbols_fonts_and_packages(latin_fonts, tmp_path):
    out = ocr("synth", "--output", str(tmp_path / "out"), "--text", "random:hangul:2-6", "--count", "4",
              "--fonts", str(latin_fonts), tmp_path=tmp_path)
    message = refused(out, "synth")
    assert "no selected font covers 2,350 of the 2,350 symbols of --text random:hangul:2-6" in message
    assert "'가' U+AC00" in message
    assert f"1 font considered (from --fonts {latin_fonts})" in message
    assert "fonts-nanum" in message and "fonts-noto-cjk" in message
    assert not out.ray_started and not (tmp_path / "out").exists()


def test_a_font_include_matching_nothing_lists_names(latin_fonts, tmp_path):
    out = ocr("synth", "--output", str(tmp_path / "out"), "--count", "4", "--fonts", str(latin_fonts),
              "--font-include", "NOSUCH", tmp_path=tmp_path)
    message = refused(out, "synth")
    assert "--font-include NOSUCH left no font" in message
    assert f"among the 1 font in --fonts {latin_fonts}" in message
    assert "'DejaVu Sans'" in message and "Loosen --font-include" in message
    assert not out.ray_started


def test_a_fonts_folder_without_fonts(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "readme.txt").write_text("no fonts here")
    out = ocr("synth", "--output", str(tmp_path / "out"), "--count", "4", "--fonts", str(empty),
              tmp_path=tmp_path)
    message = refused(out, "synth")
    assert f"expected font files in --fonts {empty}, found no .ttf, .otf, .ttc or .otc file" in message
    assert "leave --fonts out" in message
    assert not out.ray_started


def test_file_lines_no_font_has_are_skipped_with_a_note_unless_all_are(latin_fonts, tmp_path, capsys):
    """A file's lines are drawn whole: lines with a symbol no font has are left out (a note
    says how many), and only a file with no drawable line is refused."""
    from ocr.config import ConfigError
    from ocr.data.config import SynthConfig
    from ocr.data.synth.job import select_fonts

    mixed = tmp_path / "mixed.txt"
    mixed.write_text("12 34\n가나 1\n56\n", "utf-8")
    fonts = select_fonts(SynthConfig(text=f"file:{mixed}", fonts=[str(latin_fonts)]))
    assert len(fonts) == 1
    assert "the 1 of 3 lines holding them are never drawn" in capsys.readouterr().err
    korean = tmp_path / "korean.txt"
    korean.write_text("가나\n다라\n", "utf-8")
    with pytest.raises(ConfigError, match="no selected font covers 4 of the 4 symbols"):
        select_fonts(SynthConfig(text=f"file:{korean}", fonts=[str(latin_fonts)]))
