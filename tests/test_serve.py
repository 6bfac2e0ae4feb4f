"""The Serve graph over real HTTP, with tiny untrained checkpoints (what they read is noise;
the tests check the plumbing: routes, batching, upload safety, hot swap, auth, the page)."""

from __future__ import annotations

import concurrent.futures as cf
import http.client
import io
import json
import logging
import struct
import subprocess
import sys
import threading
import time
import zlib
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pytest
import requests
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from PIL import Image

from ocr import checkpoint
from ocr.charset import Charset
from ocr.config import ConfigError
from ocr.infer.layout import reading_order
from ocr.models.detection import DETECTORS
from ocr.models.recognition import RECOGNIZERS
from ocr.serve.config import ServeConfig
from ocr.serve.stages import RecognizerStage

PREPROCESS_LINE = {"height": 32, "width": 100, "keep_ratio": True, "pad": "replicate", "channels": 1,
                   "mean": 0.5, "std": 0.5}
PREPROCESS_PAGE = {**PREPROCESS_LINE, "height": 64, "width": 64, "keep_ratio": False, "channels": 3}


def tiny_recognizer(folder: Path, seed: int, run: str) -> str:
    import torch

    torch.manual_seed(seed)
    cs = Charset.from_string("0123456789", spec="digits")
    model = RECOGNIZERS.create("tiny_crnn", num_classes=cs.num_classes)
    checkpoint.save(folder, model, {"task": "recognition", "arch": model.arch_config(),
                                    "charset": cs.to_json(), "preprocess": PREPROCESS_LINE, "step": seed,
                                    "config": {"name": run}})
    return str(folder)


def tiny_detector(folder: Path) -> str:
    import torch

    torch.manual_seed(0)
    model = DETECTORS.create("tiny_ssdlite", num_classes=2, size=64, channels=3)
    checkpoint.save(folder, model, {"task": "detection", "arch": model.arch_config(), "charset": None,
                                    "preprocess": PREPROCESS_PAGE, "classes": ["__background__", "line"],
                                    "target": "line", "readout": None, "step": 1, "config": {"name": "roi"}})
    return str(folder)


def png(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, "PNG")
    return buf.getvalue()


def line_images(n: int) -> list[bytes]:
    rng = np.random.default_rng(0)
    return [png(Image.fromarray(rng.integers(0, 255, (20 + 3 * i, 40 + 17 * i), dtype=np.uint8)))
            for i in range(n)]


def page_png() -> bytes:
    from ocr.data.synth.fonts import find_fonts
    from ocr.data.synth.page import PageStyle, render_page

    fonts = [f for f in find_fonts() if "DejaVuSans" in f.path][:1]
    page = render_page(["12345 678", "90 1234", "567890"], fonts, np.random.default_rng(1),
                       size=(240, 160), style=PageStyle(font_size=(18, 18), background="plain"))
    return png(page.image)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("serve-models")
    return {"rec": tiny_recognizer(root / "rec", 0, "rec-a"),
            "rec2": tiny_recognizer(root / "rec2", 1, "rec-b"),
            "rec3": tiny_recognizer(root / "rec3", 2, "rec-c"), "roi": tiny_detector(root / "roi")}


def _config(models, **overrides) -> ServeConfig:
    base = dict(recognizer=models["rec"], detector=models["roi"], deskewer="", min_score=0.0, max_lines=4,
                max_bytes=1_000_000, max_pixels=4_000_000, formats=["PNG", "JPEG", "BMP", "TIFF", "WEBP"],
                threads=1, port=_free_port(), request_timeout_s=120)   # CI boxes can be slow
    return ServeConfig(**{**base, **overrides})


@pytest.fixture(scope="module")
def service(ray_local, models):
    from ray import serve

    from ocr.serve.deploy import deploy

    cfg = _config(models)
    url = deploy(cfg, quiet=True)
    yield {"url": url, "cfg": cfg}
    serve.shutdown()


def post(url: str, data: bytes, ctype: str = "image/png", **kw) -> requests.Response:
    return requests.post(url, data=data, headers={"Content-Type": ctype, **kw.pop("headers", {})},
                         timeout=120, **kw)


# --- without Serve ---------------------------------------------------------------------------
def test_reading_order_rows_then_columns():
    boxes = np.array([[50, 0, 90, 10], [0, 2, 40, 12], [0, 30, 40, 40], [45, 31, 80, 41]], np.float32)
    assert reading_order(boxes) == [1, 0, 2, 3]
    assert reading_order(np.zeros((0, 4), np.float32)) == []


def test_pixel_budget_lets_small_images_past_and_holds_big_ones_back():
    import asyncio

    from ocr.serve.uploads import PixelBudget

    async def run() -> list:
        budget, events = PixelBudget(10), []

        async def upload(name: str, pixels: int, seconds: float):
            async with budget.hold(pixels):
                events.append((name, budget.free))
                await asyncio.sleep(seconds)

        await asyncio.gather(upload("page", 6, 0.05), upload("page2", 6, 0.01), upload("line", 1, 0.01),
                             upload("over the cap", 100, 0.01))
        return events + [("end", budget.free)]

    assert asyncio.run(run()) == [("page", 4), ("line", 3), ("page2", 4), ("over the cap", 0), ("end", 10)]


def test_the_stages_do_not_pull_in_training_code():
    """A page's first /ocr once spent 2.4 s importing ocr.train (and Ray Train, Ray Data) to
    cut its lines: the stages, line crops included, load none of it."""
    code = ("import sys, numpy as np; import ocr.serve.stages; from ocr.infer.layout import crop; "
            "crop(np.zeros((40, 80, 3), np.uint8), [5, 5, 60, 20]); "
            "print(sorted(m for m in sys.modules if m.startswith(('ocr.train', 'ray.train', 'ray.data'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_batched_equals_unbatched_in_process(models, one_torch_thread):
    stage = RecognizerStage(models["rec"])
    crops = [np.asarray(Image.open(io.BytesIO(b))) for b in line_images(9)]
    batched = stage.read(crops)
    alone = [stage.read([c])[0] for c in crops]
    assert [b["text"] for b in batched] == [a["text"] for a in alone]
    np.testing.assert_allclose([b["confidence"] for b in batched], [a["confidence"] for a in alone],
                               atol=1e-4)


def test_merger_merges_calls_that_wait_for_a_busy_model():
    import asyncio

    from ocr.serve.deployments import _Merger

    calls: list[list[int]] = []

    async def model(items):
        calls.append(list(items))
        await asyncio.sleep(0.05)
        if -1 in items:
            raise ValueError("bad item")
        return [x * 10 for x in items]

    async def main():
        merger = _Merger(model)
        first = asyncio.ensure_future(merger.submit([1]))
        await asyncio.sleep(0.01)            # the model is busy with [1]: these three wait
        rest = [asyncio.ensure_future(merger.submit(items)) for items in ([2, 3], [4], [5, 6, 7])]
        answers = await asyncio.gather(first, *rest)
        failing = await asyncio.gather(merger.submit([-1]), return_exceptions=True)
        return answers, failing, merger

    answers, failing, merger = asyncio.run(main())
    assert calls[:2] == [[1], [2, 3, 4, 5, 6, 7]]
    assert answers == [[10], [20, 30], [40], [50, 60, 70]]
    assert isinstance(failing[0], ValueError) and not merger.busy
    assert (merger.calls, merger.items) == (3, 8)


def test_bad_serve_configs_are_refused(models, tmp_path):
    from ocr.serve.app import build_app

    with pytest.raises(ConfigError, match="recognizer: expected a recognition checkpoint"):
        ServeConfig(recognizer="")
    with pytest.raises(ConfigError, match="min_score"):
        _config(models, min_score=2)
    with pytest.raises(ConfigError, match="formats"):
        _config(models, formats=["PNG", "PDF"])
    with pytest.raises(ConfigError, match="detector: .* is a recognition checkpoint: expected detection"):
        build_app(_config(models, detector=models["rec"]))
    with pytest.raises(ConfigError, match="recognizer: .*nowhere: expected a checkpoint folder"):
        build_app(_config(models, recognizer=str(tmp_path / "nowhere")))


# --- the graph over HTTP ---------------------------------------------------------------------
def test_ocr_end_to_end(service):
    url = service["url"]
    for kwargs in ({"files": {"file": ("page.png", page_png(), "image/png")}},
                   {"data": page_png(), "headers": {"Content-Type": "image/png"}}):
        r = requests.post(f"{url}/ocr", timeout=120, **kwargs)
        assert r.status_code == 200, r.text
        out = r.json()
        assert out["size"] == [240, 160] and 1 <= len(out["lines"]) <= 4
        assert {"box", "score", "text", "confidence"} <= set(out["lines"][0])
        assert set(out["timings_ms"]) == {"decode", "deskew", "detect", "which_way_up", "recognize", "total"}
        assert out["models"]["recognizer"]["run"] == "rec-a" and out["models"]["detector"]["run"] == "roi"
        assert out["deskew_method"] == "classical" and out["orientation"] in (0, 90, 180, 270)
        assert out["text"].split() == " ".join(ln["text"] for ln in out["lines"]).split()
        assert len(out["text"].split("\n")) == len({ln["row"] for ln in out["lines"]})
    with_image = requests.post(f"{url}/ocr?image=true", files={"file": ("p.png", page_png())},
                               timeout=120).json()
    assert with_image["image"].startswith("data:image/png;base64,")


def test_stage_routes_health_and_docs(service):
    url = service["url"]
    line = line_images(1)[0]
    r = post(f"{url}/recognize", line).json()
    assert set(r) >= {"text", "confidence", "timings_ms", "models"} and set(r["text"]) <= set("0123456789")
    d = post(f"{url}/detect", page_png()).json()
    assert d["size"] == [240, 160] and len(d["lines"]) <= 4 and "text" not in d["lines"][0]
    s = post(f"{url}/deskew?image=true", page_png()).json()
    assert {"angle", "skew", "orientation", "image"} <= set(s)
    health = requests.get(f"{url}/healthz", timeout=30).json()
    assert health["status"] == "ok" and set(health["models"]) == {"recognizer", "detector", "deskewer"}
    spec = requests.get(f"{url}/openapi.json", timeout=30).json()
    assert {"/ocr", "/recognize", "/detect", "/deskew", "/healthz"} <= set(spec["paths"])
    assert "multipart/form-data" in spec["paths"]["/ocr"]["post"]["requestBody"]["content"]
    assert requests.get(f"{url}/docs", timeout=30).status_code == 200


def _bomb_png(width: int, height: int) -> bytes:
    """A PNG header claiming ``width`` x ``height`` pixels, with a few bytes of data."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + \
        chunk(b"IEND", b"")


def _gif() -> bytes:
    buf = io.BytesIO()
    Image.new("L", (30, 10), 255).save(buf, "GIF")
    return buf.getvalue()


def _bomb_jpeg(width: int, height: int) -> bytes:
    """A small JPEG whose frame header claims ``width`` x ``height``."""
    buf = io.BytesIO()
    Image.new("L", (8, 8), 255).save(buf, "JPEG")
    data = bytearray(buf.getvalue())
    sof = data.index(b"\xff\xc0")
    data[sof + 5:sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


# The test service's cap is 4,000,000 pixels; Pillow's own guard is 89 million: these are
# refused by the project's cap, from the header.
JUST_OVER_CAP = (2001, 2000)

BAD_UPLOADS = {
    "over_our_cap_png": (_bomb_png(*JUST_OVER_CAP), "image/png", 413),
    "over_our_cap_jpeg": (_bomb_jpeg(*JUST_OVER_CAP), "image/jpeg", 413),
    "zero_byte": (b"", "image/png", 400),
    "not_an_image": (b"%PDF-1.7 definitely not an image", "application/octet-stream", 415),
    "unsupported_format": (_gif(), "image/gif", 415),
    "truncated": (None, "image/png", 400),
    "too_many_pixels": (_bomb_png(30_000, 30_000), "image/png", 413),
    "wrong_content_type": (b"{}", "application/json", 415),
    "too_large": (b"\x89PNG\r\n\x1a\n" + b"\0" * 1_100_000, "image/png", 413),
}


@pytest.mark.parametrize("case", sorted(BAD_UPLOADS))
@pytest.mark.parametrize("route", ["ocr", "recognize"])
def test_bad_uploads_get_4xx_json(service, case, route):
    data, ctype, status = BAD_UPLOADS[case]
    if data is None:
        data = page_png()[:300]
    r = post(f"{service['url']}/{route}", data, ctype)
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert err["status"] == status and err["message"]
    renamed = {"truncated": "corrupt_image", "wrong_content_type": "unsupported_media_type",
               "over_our_cap_png": "too_many_pixels", "over_our_cap_jpeg": "too_many_pixels"}
    assert err["code"] == renamed.get(case, case)
    if case.startswith("over_our_cap"):
        assert "2001x2000" in err["message"] and "4,000,000" in err["message"], err


def test_bad_multipart_uploads(service):
    url = f"{service['url']}/ocr"
    r = requests.post(url, files={"picture": ("p.png", page_png())}, timeout=60)
    assert r.status_code == 400 and r.json()["error"]["code"] == "missing_file"
    r = requests.post(url, data=b"--xx\r\nnonsense", timeout=60,
                      headers={"Content-Type": "multipart/form-data; boundary=xx"})
    assert 400 <= r.status_code < 500 and "error" in r.json()
    big = requests.post(url, files={"file": ("p.png", b"\x89PNG\r\n\x1a\n" + b"\0" * 1_200_000)}, timeout=60)
    assert big.status_code == 413 and big.json()["error"]["code"] == "too_large"


# Pillow modes, and the formats that write each (those a format refuses are skipped)
ODD_MODES = ("1", "L", "P", "RGB", "RGBA", "CMYK", "I", "I;16", "F", "LA", "PA", "YCbCr")
ODD_FORMATS = ("PNG", "TIFF", "WEBP", "BMP", "JPEG")


@st.composite
def odd_images(draw) -> bytes:
    """A valid image file, odd in every way Pillow allows: any mode, 1x1 to the test
    service's pixel cap, flat, noisy or striped, a palette with transparency, an EXIF
    rotation."""
    side = st.one_of(st.integers(1, 4), st.integers(1, 400), st.integers(1000, 2000))
    w, h = draw(side), draw(side)
    mode, fmt = draw(st.sampled_from(ODD_MODES)), draw(st.sampled_from(ODD_FORMATS))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    pixels = {"flat": np.full((h, w), 255, np.uint8), "noise": rng.integers(0, 256, (h, w), dtype=np.uint8),
              "stripes": np.repeat((np.arange(h) // 3 % 2 * 255).astype(np.uint8)[:, None], w, 1)}
    image = Image.fromarray(pixels[draw(st.sampled_from(sorted(pixels)))]).convert(mode)
    options = {}
    if mode in ("P", "PA") and fmt in ("PNG", "GIF"):
        options["transparency"] = 0
    if draw(st.booleans()) and fmt in ("PNG", "TIFF", "WEBP", "JPEG"):
        exif = Image.Exif()
        exif[0x0112] = draw(st.integers(1, 8))   # Orientation
        options["exif"] = exif.tobytes()
    out = io.BytesIO()
    try:
        image.save(out, fmt, **options)
    except (OSError, ValueError, KeyError, TypeError):
        assume(False)   # this format cannot hold this mode
    return out.getvalue()


@settings(max_examples=12, deadline=None, database=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
@given(data=odd_images())
def test_odd_valid_images_never_get_a_500(service, data):
    """Random valid-but-odd images at all four routes: each answer is 2xx or a 4xx JSON error."""
    for route in ("ocr", "recognize", "detect", "deskew"):
        r = post(f"{service['url']}/{route}", data, "application/octet-stream")
        assert r.status_code < 500, (route, r.status_code, r.text[:300])
        assert r.status_code < 400 or r.json()["error"]["code"], r.text[:300]


def test_streamed_body_is_cut_at_the_cap(service):
    """A chunked body with no Content-Length is refused once it passes the cap: the server
    answers 413 before the client has sent everything."""
    u = urlparse(service["url"])
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
    conn.putrequest("POST", "/recognize")
    conn.putheader("Content-Type", "image/png")
    conn.putheader("Transfer-Encoding", "chunked")
    conn.endheaders()
    sent, chunk = 0, b"\0" * 65536
    try:
        for _ in range(200):   # up to 13 MB, far past the 1 MB cap
            conn.send(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            sent += len(chunk)
        conn.send(b"0\r\n\r\n")
    except (BrokenPipeError, ConnectionResetError):
        pass
    res = conn.getresponse()
    assert res.status == 413 and json.loads(res.read())["error"]["code"] == "too_large"


def _read_lines_concurrently(url: str, lines: list[bytes], workers: int) -> list[dict]:
    with cf.ThreadPoolExecutor(workers) as pool:
        return list(pool.map(lambda b: post(f"{url}/recognize", b).json(), lines))


def test_batched_answers_equal_unbatched(service):
    url, lines = service["url"], line_images(16)
    alone = [post(f"{url}/recognize", b).json() for b in lines]
    together = _read_lines_concurrently(url, lines, 16)
    assert [a["text"] for a in alone] == [t["text"] for t in together]
    np.testing.assert_allclose([a["confidence"] for a in alone], [t["confidence"] for t in together],
                               atol=1e-4)


def test_killed_replica_is_retried_not_500(service):
    """Requests in flight when the Recognizer replica dies are retried on its replacement."""
    import ray

    url, line = service["url"], line_images(1)[0]
    name = next(a for a in ray.util.list_named_actors(all_namespaces=True) if "Recognizer" in a["name"])
    with cf.ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(post, f"{url}/recognize", line) for _ in range(4)]
        ray.kill(ray.get_actor(name["name"], namespace=name["namespace"]), no_restart=True)
        futures += [pool.submit(post, f"{url}/recognize", line) for _ in range(8)]
        statuses = [f.result().status_code for f in futures]
    assert statuses == [200] * 12, statuses


@pytest.mark.parametrize("deployment", ["OCRService", "Detector", "Deskewer"])
def test_a_replica_killed_under_load_is_replaced_and_the_service_answers_again(service, deployment):
    """SIGKILL, from outside, of one replica's process while two clients post pages: Serve
    starts a replacement and the service answers again. Prints the failed requests and the
    seconds from the kill to the first answer after it (the note's figures)."""
    import os
    import signal

    import ray
    from ray.util.state import list_actors

    url, page, answers, stop = f"{service['url']}/ocr", page_png(), [], threading.Event()

    def client():
        while not stop.is_set():
            try:
                status = post(url, page).status_code
            except requests.RequestException:
                status = 0   # the connection itself failed
            answers.append((time.monotonic(), status))

    (victim,) = list_actors(address=ray.get_runtime_context().gcs_address, filters=[
        ("class_name", "=", f"ServeReplica:ocr:{deployment}"), ("state", "=", "ALIVE")])
    clients = [threading.Thread(target=client) for _ in range(2)]
    for t in clients:
        t.start()
    time.sleep(2)
    killed = time.monotonic()
    os.kill(victim.pid, signal.SIGKILL)
    def after_kill() -> list[tuple[float, int]]:
        return [(at, status) for at, status in answers if at > killed]

    deadline = killed + 120
    while time.monotonic() < deadline and [s for _, s in after_kill()[-4:]] != [200] * 4:
        time.sleep(0.2)
    stop.set()
    for t in clients:
        t.join()
    after = after_kill()
    failed = [status for _, status in after if status != 200]
    recovered = next((at - killed for at, status in after if status == 200), float("nan"))
    print(f"\nkilled {deployment}: {len(failed)} of {len(after)} requests failed after the kill "
          f"({sorted(set(failed))}), first answer {recovered:.1f} s after it")
    assert [s for _, s in after[-4:]] == [200] * 4, after[-8:]


def test_client_prints_text_and_json(service, tmp_path):
    image = tmp_path / "line.png"
    image.write_bytes(line_images(1)[0])
    cmd = [sys.executable, "-m", "ocr.cli", "client", str(image), "--url", service["url"]]
    out = subprocess.run(cmd + ["--endpoint", "recognize"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and set(out.stdout.strip()) <= set("0123456789"), out.stderr
    out = subprocess.run(cmd + ["--json"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "timings_ms" in json.loads(out.stdout)
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"nope")
    out = subprocess.run(cmd[:4] + [str(bad), "--url", service["url"]], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 1 and "415" in out.stderr and "not an image" in out.stderr


def test_hot_swap_drops_no_request(service, models):
    """Redeploying with another recognizer checkpoint swaps it in place while requests flow."""
    from ray import serve

    from ocr.serve.app import build_app

    url, line = service["url"], line_images(1)[0]
    answers, stop = [], threading.Event()

    def hammer():
        while not stop.is_set():
            r = post(f"{url}/recognize", line)
            run = r.json()["models"]["recognizer"]["run"] if r.status_code == 200 else r.text[:200]
            answers.append((r.status_code, run))

    threads = [threading.Thread(target=hammer) for _ in range(3)]
    for t in threads:
        t.start()
    time.sleep(2)
    cfg = ServeConfig(**{**service["cfg"].to_json(), "recognizer": models["rec2"]})
    serve.run(build_app(cfg), name="ocr", route_prefix="/")
    deadline = time.time() + 60
    while time.time() < deadline and (not answers or answers[-1][1] != "rec-b"):
        time.sleep(0.5)
    time.sleep(1)
    stop.set()
    for t in threads:
        t.join()
    statuses = {s for s, _ in answers}
    runs = [r for _, r in answers]
    assert statuses == {200}, answers
    assert runs[0] == "rec-a" and runs[-1] == "rec-b" and "rec-a" not in runs[runs.index("rec-b"):]


def test_a_registered_model_is_served_and_healthz_shows_its_version(service, models, tmp_path, monkeypatch):
    """A checkpoint registered in MLflow's model registry is served by name (models:/NAME/1):
    the builder downloads it, the replicas read the copy, and /healthz (no token) names the
    registered version, not a path."""
    from ray import serve

    from ocr import tracking
    from ocr.serve.app import build_app

    store = f"sqlite:///{tmp_path}/mlflow.db"
    ref = tracking.start_run(store, "ocr-recognition", "rec-d", str(tmp_path / "run"), {}, {})
    registered = tiny_recognizer(tmp_path / "rec-d", 3, "rec-d")
    assert tracking.register(ref, registered, "served-rec") == "models:/served-rec/1"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    cfg = ServeConfig(**{**service["cfg"].to_json(), "recognizer": "models:/served-rec/1"})
    serve.run(build_app(cfg), name="ocr", route_prefix="/")
    deadline, recognizer = time.time() + 60, {}
    while time.time() < deadline and recognizer.get("run") != "rec-d":
        recognizer = requests.get(f"{service['url']}/healthz", timeout=30).json()["models"]["recognizer"]
        time.sleep(0.5)
    assert recognizer["run"] == "rec-d" and recognizer["registered"] == "models:/served-rec/1", recognizer
    assert "checkpoint" not in recognizer and str(tmp_path) not in json.dumps(recognizer)
    answer = post(f"{service['url']}/recognize", line_images(1)[0])
    assert answer.status_code == 200 and answer.json()["models"]["recognizer"]["run"] == "rec-d"


TOKEN = "s3cret-token-for-tests-0123456789"


def test_bearer_token(service, models, monkeypatch):
    from ray import serve

    from ocr.serve.app import build_app

    monkeypatch.setenv("OCR_TEST_TOKEN", TOKEN)
    cfg = ServeConfig(**{**service["cfg"].to_json(), "token_env": "OCR_TEST_TOKEN", "detector": "",
                         "deskewer": "off"})
    serve.run(build_app(cfg), name="secure", route_prefix="/secure")
    try:
        url, line, auth = f"{service['url']}/secure", line_images(1)[0], {"Authorization": f"Bearer {TOKEN}"}
        none = post(f"{url}/recognize", line)
        wrong = post(f"{url}/recognize", line, headers={"Authorization": "Bearer nope"})
        right = post(f"{url}/recognize", line, headers=auth)
        assert none.status_code == wrong.status_code == 401
        assert "OCR_TEST_TOKEN" in none.json()["error"]["message"]
        assert right.status_code == 200 and "text" in right.json()
        # no detector: the whole image is one line; /detect says so with a 404
        ocr = post(f"{url}/ocr", line, headers=auth).json()
        assert len(ocr["lines"]) == 1 and ocr["deskew_method"] == "off"
        assert post(f"{url}/detect", line, headers=auth).status_code == 404
        # /healthz: open, but checkpoint paths only with the token
        public = requests.get(f"{url}/healthz", timeout=30)
        private = requests.get(f"{url}/healthz", headers=auth, timeout=30).json()
        assert public.status_code == 200 and public.json()["auth"] is True
        assert public.json()["models"]["recognizer"]["run"] == "rec-a"
        assert models["rec"] not in public.text and "checkpoint" not in public.json()["models"]["recognizer"]
        assert private["models"]["recognizer"]["checkpoint"] == models["rec"]
        assert TOKEN not in ray_records(), "the token is stored by Ray"
    finally:
        serve.delete("secure")


def ray_records() -> str:
    """What Ray keeps about the running apps, as text: Serve's state in the GCS (deployments'
    arguments and options) and every actor's record (runtime_env included)."""
    import ray
    from ray.experimental import internal_kv
    from ray.util.state import list_actors, list_jobs

    address = ray.get_runtime_context().gcs_address
    kept = [internal_kv._internal_kv_get(key, namespace=namespace) or b""
            for namespace in ("serve", None)
            for key in internal_kv._internal_kv_list("", namespace=namespace)]
    actors = json.dumps([vars(a) for a in list_actors(address=address, detail=True, limit=10_000)],
                        default=str)
    jobs = json.dumps([vars(j) for j in list_jobs(address=address)], default=str)
    return b"".join(kept).decode("latin-1") + actors + jobs


def test_every_port_the_service_opens_is_loopback(service):
    """The listening sockets themselves: Serve's HTTP port, HAProxy's frontend, stats page and
    metrics exporter (ocr-haproxy binds the last two), the replicas' own ports, the dashboard."""
    import ipaddress

    import psutil
    import ray

    listening = [c for c in psutil.net_connections(kind="inet") if c.status == psutil.CONN_LISTEN]
    port = urlparse(service["url"]).port
    http = [c for c in listening if c.laddr.port == port]
    haproxy = {p.pid for p in psutil.process_iter(["name"]) if p.info["name"] == "haproxy"}
    by_haproxy = [c for c in listening if c.pid in haproxy]
    assert http and haproxy, (http, haproxy)
    assert len({c.laddr.port for c in by_haproxy}) >= 3, by_haproxy   # frontend, stats, metrics
    dashboard = int(ray._private.worker.global_worker.node.address_info["webui_url"].rsplit(":", 1)[1])
    by_dashboard = [c for c in listening if c.laddr.port == dashboard]
    assert by_dashboard
    exposed = [c for c in http + by_haproxy + by_dashboard
               if not ipaddress.ip_address(c.laddr.ip).is_loopback]
    assert not exposed, exposed


def head_mismatch(recognizer: str, folder: Path) -> str:
    """A copy of ``recognizer`` whose model.json is whole (a charset of one symbol more, its
    hash, the class count to match) but whose weights have the old head: it passes every
    check of model.json and fails only when the weights are loaded, as a replica swaps."""
    import shutil

    shutil.copytree(recognizer, folder)
    meta = json.loads((folder / "model.json").read_text("utf-8"))
    charset = Charset((*meta["charset"]["symbols"], "Ω"))
    meta["charset"], meta["arch"]["num_classes"] = charset.to_json(), charset.num_classes
    (folder / "model.json").write_text(json.dumps(meta, ensure_ascii=False), "utf-8")
    return str(folder)


def test_overload_is_shed_with_503_and_slow_requests_end_with_408(service):
    """An ingress that takes one request and queues one more sheds the rest at once with a 503
    (Serve's max_queued_requests); a request past request_timeout_s ends with a 408 JSON error.
    Never a 500."""
    import dataclasses

    from ray import serve

    from ocr.serve.app import build_app, build_app_with

    page = page_png()
    cfg = dataclasses.replace(service["cfg"], deskewer="")
    serve.run(build_app_with(cfg, {"max_ongoing_requests": 1, "max_queued_requests": 1}), name="busy",
              route_prefix="/busy")
    try:
        with cf.ThreadPoolExecutor(16) as pool:
            answers = list(pool.map(lambda _: post(f"{service['url']}/busy/ocr", page), range(16)))
        statuses = sorted(r.status_code for r in answers)
        assert 200 in statuses and 503 in statuses and set(statuses) <= {200, 503}, statuses
        shed = next(r for r in answers if r.status_code == 503)
        assert "backpressure" in shed.text, shed.text[:200]   # Serve's own answer, before the app
        assert post(f"{service['url']}/busy/ocr", page).status_code == 200   # and it serves on
    finally:
        serve.delete("busy")   # 2 CPUs hold two apps at a time
    serve.run(build_app(dataclasses.replace(cfg, request_timeout_s=0.01)), name="slow", route_prefix="/slow")
    try:
        slow = post(f"{service['url']}/slow/ocr", page)
        assert slow.status_code == 408 and slow.json()["error"]["code"] == "timeout", slow.text[:300]
    finally:
        serve.delete("slow")


def test_a_swap_to_a_checkpoint_that_does_not_load_is_refused(service, models, tmp_path):
    """A redeploy whose recogniser does not load (its head does not match its charset) is
    refused by the builder, before any replica changes: the old model keeps serving."""
    from ray import serve

    from ocr.serve.app import build_app

    def serving() -> str:
        answer = post(f"{service['url']}/recognize", line_images(1)[0])
        assert answer.status_code == 200, answer.text
        return answer.json()["models"]["recognizer"]["run"]

    before = serving()
    broken = head_mismatch(models["rec"], tmp_path / "broken")
    with pytest.raises(ConfigError, match="(?s)recognizer: .*does not load.*size mismatch"):
        serve.run(build_app(ServeConfig(**{**service["cfg"].to_json(), "recognizer": broken})))
    assert serving() == before
    assert requests.get(f"{service['url']}/healthz", timeout=30).json()["status"] == "ok"


def test_an_in_place_swap_that_does_not_load_keeps_the_old_model(models, tmp_path):
    """serve deploy of a new path reconfigures the replica in place: a checkpoint that does not
    load is refused there, logged, and named by version() (/healthz)."""
    from ocr.serve.deployments import Recognizer

    replica = Recognizer.func_or_class()
    replica.reconfigure({"checkpoint": models["rec"], "threads": 1})
    broken = head_mismatch(models["rec"], tmp_path / "broken")
    logged, logger = [], logging.getLogger("ray.serve")   # Serve's logger does not propagate
    handler = logging.Handler()
    handler.emit = logged.append
    logger.addHandler(handler)
    try:
        replica.reconfigure({"checkpoint": broken, "threads": 1})
    finally:
        logger.removeHandler(handler)
    version = replica.version()
    assert version["run"] == "rec-a" and version["checkpoint"] == models["rec"]
    refused = version["swap_refused"]
    assert refused["checkpoint"] == broken and "size mismatch" in refused["error"]
    assert any(f"refused to swap to {broken}" in record.getMessage() for record in logged)
    replica.reconfigure({"checkpoint": models["rec2"], "threads": 1})
    assert replica.version()["run"] == "rec-b" and "swap_refused" not in replica.version()


def test_concurrent_largest_uploads_stay_within_the_memory_bound(service, models):
    """max_pages decoded uploads at most live in the ingress replica: 12 uploads at the pixel
    cap at once raise its resident memory by no more than the README's bound (bodies waiting
    + max_pages x 10 bytes a pixel), where decoding all at once would take 12 pages."""
    import dataclasses
    import threading

    import psutil
    from ray import serve

    from ocr.serve.app import build_app

    side, pages = 1800, 2
    cfg = dataclasses.replace(service["cfg"], detector="", deskewer="off", max_pages=pages,
                              max_pixels=side * side, max_bytes=8_000_000)
    serve.run(build_app(cfg), name="mem", route_prefix="/mem")
    try:
        rng = np.random.default_rng(0)
        bodies = [png(Image.fromarray(rng.integers(0, 256, (side, side), dtype=np.uint8))) for _ in range(12)]
        (ingress,) = [p for p in psutil.process_iter(["cmdline"])
                      if "ServeReplica:mem:OCRService" in " ".join(p.info["cmdline"] or [])]
        def private() -> int:   # resident, less shared pages (the object store's, libraries')
            info = ingress.memory_info()
            return info.rss - info.shared

        url, peak, done = f"{service['url']}/mem/recognize", [private()], threading.Event()
        assert post(url, bodies[0]).status_code == 200   # warm: the first decode's buffers

        def sample():
            while not done.is_set():
                peak.append(private())
                time.sleep(0.005)

        base = private()
        watcher = threading.Thread(target=sample)
        watcher.start()
        with cf.ThreadPoolExecutor(12) as pool:
            statuses = [r.status_code for r in pool.map(lambda b: post(url, b), bodies)]
        done.set()
        watcher.join()
        assert statuses == [200] * 12
        bound = sum(len(b) for b in bodies) + pages * 10 * side * side
        all_at_once = 12 * 7 * side * side   # L + RGB + the array, per page
        assert max(peak) - base <= bound + 32_000_000, (max(peak) - base, bound, all_at_once)
    finally:
        serve.delete("mem")


def test_serve_config_yaml_deploys_and_swaps(service, models, tmp_path):
    """serve_config.yaml is valid for Serve and ServeConfig, and `serve deploy` of it (with
    tiny checkpoints and this test's port) swaps the running app's recognizer."""
    import ray
    import yaml
    from ray.serve.schema import ServeDeploySchema

    cfg = yaml.safe_load((Path(__file__).parents[1] / "serve_config.yaml").read_text())
    ServeDeploySchema.model_validate(cfg)
    app = cfg["applications"][0]
    assert app["import_path"] == "ocr.serve.app:build_app"
    ServeConfig(**app["args"])
    assert {d["name"] for d in app["deployments"]} == {"OCRService", "Deskewer", "Detector", "Recognizer"}
    assert all("max_queued_requests" in d and "autoscaling_config" in d for d in app["deployments"])
    assert cfg["http_options"]["host"] == "127.0.0.1" and cfg["http_options"]["request_timeout_s"] > 0

    app["args"].update(recognizer=models["rec3"], detector=models["roi"], deskewer="", min_score=0.0,
                       max_lines=4, max_bytes=1_000_000, max_pixels=4_000_000)
    cfg["http_options"]["port"] = urlparse(service["url"]).port
    cfg["logging_config"] = {"log_level": "WARNING", "enable_access_log": False}
    for d in app["deployments"]:
        d["ray_actor_options"] = {"num_cpus": 0.1}
        d["autoscaling_config"]["max_replicas"] = 1
    path = tmp_path / "serve_config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    dashboard = ray._private.worker.global_worker.node.address_info["webui_url"]
    serve_cli = str(Path(sys.executable).parent / "serve")
    out = subprocess.run([serve_cli, "deploy", str(path), "-a", f"http://{dashboard}"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    deadline, run = time.time() + 120, None
    while time.time() < deadline and run != "rec-c":
        time.sleep(1)
        try:
            run = requests.get(f"{service['url']}/healthz", timeout=10).json()["models"]["recognizer"]["run"]
        except (requests.RequestException, KeyError, ValueError):
            run = None
    assert run == "rec-c"
    assert post(f"{service['url']}/recognize", line_images(1)[0]).status_code == 200


def test_prometheus_metrics(service):
    """Our counters by route and status, and stage latencies, on Ray's metrics endpoint."""
    import ray

    url = service["url"]
    post(f"{url}/recognize", line_images(1)[0])
    post(f"{url}/recognize", b"nope")
    port = ray._private.worker.global_worker.node.metrics_export_port
    wanted = ['ray_ocr_requests_total{', 'route="/recognize"', 'status="415"',
              'ray_ocr_stage_latency_ms_bucket', 'stage="recognize"', "ray_serve_num_http_requests"]
    deadline, text = time.time() + 90, ""
    while time.time() < deadline:
        text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
        if all(w in text for w in wanted):
            break
        time.sleep(3)
    missing = [w for w in wanted if w not in text]
    assert not missing, f"not on the metrics endpoint: {missing}"


def _chromium_reads(url: str, image_path: Path) -> tuple[list[str], str, np.ndarray]:
    """Drop ``image_path`` on the web page at ``url`` in headless Chromium: (the text of the
    lines listed, the status line, a screenshot of the canvas)."""
    import shutil

    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.fail("chromium not found: `make test` installs it (Debian package chromium)")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1000, "height": 700})
        page.goto(url + "/")
        page.set_input_files("#file", str(image_path))
        page.wait_for_selector("body[data-done='1']", timeout=60_000)
        page.wait_for_function("document.getElementById('canvas').dataset.lines !== undefined",
                               timeout=30_000)
        items = page.eval_on_selector_all("#lines li", "els => els.map(e => e.firstChild.textContent)")
        shot = page.locator("#canvas").screenshot()
        status = page.inner_text("#status")
        browser.close()
    return items, status, np.asarray(Image.open(io.BytesIO(shot)).convert("RGB")).astype(int)


def test_ocr_serve_with_no_arguments_reads_korean_and_english_pages(service, tmp_path):
    """`ocr serve` with no arguments: builtin:korean, the classical line finder and deskew. A
    Korean page dropped on the web page in Chromium shows its lines; an English page posted
    upside down comes back upright (the last test here: it leaves this deployment up)."""
    from rapidfuzz.distance import Levenshtein
    from ray import serve

    from ocr.data.synth.fonts import find_fonts
    from ocr.data.synth.page import render_page
    from ocr.serve.app import build_app

    models = ("recognizer", "detector", "deskewer")
    cfg = ServeConfig(**{**{k: v for k, v in service["cfg"].to_json().items() if k not in models},
                         "max_lines": 20})
    assert (cfg.recognizer, cfg.detector, cfg.deskewer) == ("builtin:korean", "lines", "")
    serve.run(build_app(cfg), name="ocr", route_prefix="/")
    korean_charset = checkpoint.read_meta("builtin:korean")["charset"]["hash"]
    deadline = time.time() + 120
    while time.time() < deadline:   # the fixture's app answers until the new one is up
        health = requests.get(f"{service['url']}/healthz", timeout=30).json()
        if health["models"].get("recognizer", {}).get("charset") == korean_charset:
            break
        time.sleep(1)
    assert health["models"]["recognizer"]["charset"] == korean_charset, health
    assert health["models"]["detector"]["arch"] == "classical lines"

    korean = ["서울특별시 중구 세종대로 110", "영업시간 오전 9시 - 오후 6시", "합계 12,500원", "감사합니다"]
    nanum = [f for f in find_fonts() if f.name == "NanumGothic"]
    assert nanum, "NanumGothic is installed by scripts/setup.sh (fonts-nanum)"
    sample = render_page(korean, nanum, np.random.default_rng(3), size=(640, 400), angle=-2.0)
    assert sample.lines == korean
    sample.image.save(tmp_path / "korean.png")
    items, status, pixels = _chromium_reads(service["url"], tmp_path / "korean.png")
    assert "line(s)" in status and "total" in status and len(items) == len(korean), (items, status)
    shown, drawn = ("".join("".join(lines).split()) for lines in (items, korean))
    assert Levenshtein.distance(shown, drawn) <= 0.1 * len(drawn), items   # a slip or two at most
    red = (pixels[..., 0] > 200) & (pixels[..., 1] < 90) & (pixels[..., 2] < 90)
    assert red.sum() > 100, "expected the lines' boxes drawn in red on the canvas"
    assert pixels.shape[1] >= 200   # the page itself is shown, not an empty canvas

    english = ["Total due 42.50 USD", "2026-12-07 14:30", "Thank you for shopping", "+82 10-1234-5678"]
    fonts = [f for f in find_fonts() if f.name == "DejaVu Sans"]
    page = render_page(english, fonts, np.random.default_rng(5), size=(480, 320), angle=3.0)
    assert page.lines == english
    r = requests.post(f"{service['url']}/ocr", data=png(page.image.rotate(180)), timeout=120,
                      headers={"Content-Type": "image/png"})
    out = r.json()
    assert r.status_code == 200 and out["orientation"] == 180 and abs(out["angle"] + 177.0) < 0.5, out
    read = [ln["text"] for ln in out["lines"]]
    assert len(read) == len(english) and sum(a == b for a, b in zip(read, english)) >= 3, read
    assert "which_way_up" in out["timings_ms"] and out["no_text"] is False
    blank = Image.fromarray(np.random.default_rng(0).normal(215, 6, (400, 300)).clip(0, 255).astype(np.uint8))
    out = requests.post(f"{service['url']}/ocr", data=png(blank), timeout=120,
                        headers={"Content-Type": "image/png"}).json()
    assert out["no_text"] is True and out["text"] == "" and out["angle"] == 0.0, out
