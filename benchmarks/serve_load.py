"""Load on the Serve graph over HTTP on 127.0.0.1, against the same models called in-process.

    python benchmarks/serve_load.py [--recognizer RUN --detector RUN --deskewer RUN]
                                    [--requests 400] [--seconds 20] [--python-proxy] [--ceiling]

Without checkpoints it serves untrained models of the default presets (``fast`` recogniser,
``ssdlite_mobilenetv2`` ROI detector at 320, classical deskew): the same compute as trained
ones. Every phase is bounded in requests and in time. Phases:

1. direct: the stages called in this process (no Ray, no HTTP) on the same inputs: p50 per
   line / per page, and offline batched lines/s (batches of 64, the recognition benchmark's
   figure, same threads as the replica);
2. /recognize and /ocr at concurrency 1, 8 and 32: requests/s, lines/s, p50/p99 latency;
   Serve's p50 overhead = p50 at concurrency 1 minus the direct p50;
3. batching gain: /recognize lines/s at concurrency 32 over the offline batched lines/s;
4. a mixed run with 5% malformed uploads: 5xx count (target 0), malformed answered 4xx;
5. the Recognizer replica killed mid-run: failed requests and the time until answers resume;
6. ``--ceiling``: what any Serve design could reach for /recognize on this box, HTTP straight
   into one bare deployment that checks, decodes and reads the line in its own replica (no
   ingress hop, no FastAPI, the same batching): lines/s at concurrency 32 against offline.

Serve runs as the platform starts it: the fast path of ``ocr.runtime.SERVE_FAST_PATH``
(``--python-proxy``: Serve's default proxy, for comparison). Each /recognize and /ocr row also
prints the Recognizer's lines per model call and the ingress's own p50 timings. The load
generator (aiohttp) shares the 2 cores with Ray: figures are for the whole box.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))

PORT = 8011


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def png(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, "PNG")
    return buf.getvalue()


# --- inputs and models ---------------------------------------------------------------------------
def make_inputs(n_lines: int, n_pages: int, seed: int = 0) -> tuple[list[bytes], list[bytes]]:
    from ocr.data.synth.fonts import find_fonts
    from ocr.data.synth.line import render_line
    from ocr.data.synth.page import PageStyle, render_page

    rng = np.random.default_rng(seed)
    fonts = [f for f in find_fonts() if "DejaVu" in f.path][:3]
    digits = list("0123456789")
    lines = [png(render_line("".join(rng.choice(digits, int(rng.integers(3, 10)))), fonts[i % len(fonts)],
                             32, rng=rng)) for i in range(n_lines)]
    pages = []
    for _ in range(n_pages):
        texts = ["".join(rng.choice(digits, int(rng.integers(4, 12)))) for _ in range(6)]
        page = render_page(texts, fonts, rng, size=(640, 480), angle=float(rng.uniform(-10, 10)),
                           style=PageStyle(font_size=(22, 30)))
        pages.append(png(page.image))
    return lines, pages


def untrained_checkpoints(root: Path) -> dict:
    """Default presets, random weights: the serving compute without a training run."""
    import torch

    from ocr import checkpoint
    from ocr.charset import load_charset
    from ocr.models.detection import DETECTORS
    from ocr.models.recognition import RECOGNIZERS

    torch.manual_seed(0)
    cs = load_charset("digits")
    line = {"height": 32, "width": 100, "keep_ratio": True, "pad": "replicate", "channels": 1,
            "mean": 0.5, "std": 0.5}
    page = {**line, "height": 320, "width": 320, "keep_ratio": False, "channels": 3}
    rec = RECOGNIZERS.create("fast", num_classes=cs.num_classes)
    checkpoint.save(root / "rec", rec, {"task": "recognition", "arch": rec.arch_config(),
                                        "charset": cs.to_json(), "preprocess": line, "step": 0,
                                        "config": {"name": "untrained-fast"}})
    det = DETECTORS.create("ssdlite_mobilenetv2", num_classes=2, size=320, channels=3)
    checkpoint.save(root / "roi", det, {"task": "detection", "arch": det.arch_config(), "charset": None,
                                        "preprocess": page, "classes": ["__background__", "line"],
                                        "target": "line", "readout": None, "step": 0,
                                        "config": {"name": "untrained-ssdlite"}})
    return {"recognizer": str(root / "rec"), "detector": str(root / "roi"), "deskewer": ""}


# --- direct (in-process) baseline -----------------------------------------------------------------
def direct_figures(paths: dict, lines: list[bytes], pages: list[bytes], threads: int, min_score: float,
                   max_lines: int) -> dict:
    import torch

    from ocr.infer import LineReader
    from ocr.infer.layout import crop
    from ocr.serve.stages import DeskewerStage, DetectorStage, RecognizerStage
    from ocr.serve.uploads import UploadLimits, decode_upload

    torch.set_num_threads(threads)
    limits = UploadLimits()
    rec = RecognizerStage(paths["recognizer"])
    det, desk = DetectorStage(paths["detector"]), DeskewerStage(paths["deskewer"])
    arrays = [np.asarray(decode_upload(b, limits)) for b in lines]

    def one_line(b: bytes):
        return rec.read([np.asarray(decode_upload(b, limits))])

    def one_page(b: bytes):
        page = np.asarray(decode_upload(b, limits).convert("RGB"))
        page, _ = desk.correct(page)
        boxes = det.detect(page, min_score, max_lines)
        return rec.read([crop(page, bx["box"]) for bx in boxes]), len(boxes)

    line_ms = _timed_each(one_line, lines)
    page_ms = _timed_each(one_page, pages)
    reader = LineReader.load(paths["recognizer"])
    reader.read(lines[:64])
    start = time.perf_counter()
    reader.read(lines, batch_size=64)
    batched = len(lines) / (time.perf_counter() - start)
    lines_per_page = statistics.mean(one_page(b)[1] for b in pages[:5])
    del arrays
    return {"line_p50_ms": percentile(line_ms, 50), "page_p50_ms": percentile(page_ms, 50),
            "offline_lines_per_s": batched, "lines_per_page": lines_per_page}


def _timed_each(fn, items: list) -> list[float]:
    fn(items[0])   # warm-up
    out = []
    for item in items:
        t = time.perf_counter()
        fn(item)
        out.append((time.perf_counter() - t) * 1e3)
    return out


# --- load generator -----------------------------------------------------------------------------
async def load(url: str, payloads: list[tuple[bytes, str]], concurrency: int, max_requests: int,
               seconds: float) -> dict:
    """``concurrency`` clients posting payloads round-robin until ``max_requests`` or ``seconds``."""
    import aiohttp

    latencies, statuses, errors, server = [], [], 0, []
    counter = iter(range(max_requests))
    deadline = time.perf_counter() + seconds
    results: list[tuple[int, bool, float, float]] = []   # status, malformed, ms, end time

    async def client(session):
        nonlocal errors
        for i in counter:
            if time.perf_counter() > deadline:
                return
            body, kind = payloads[i % len(payloads)]
            t = time.perf_counter()
            try:
                async with session.post(url, data=body, headers={"Content-Type": "image/png"}) as r:
                    answer = await r.read()
                    status = r.status
                if status == 200:
                    server.append(json.loads(answer)["timings_ms"])
            except aiohttp.ClientError:
                status, errors = 0, errors + 1
            end = time.perf_counter()
            ms = (end - t) * 1e3
            results.append((status, kind == "bad", ms, end))
            latencies.append(ms)
            statuses.append(status)

    start = time.perf_counter()
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(timeout=timeout, connector=aiohttp.TCPConnector(limit=0)) as session:
        await asyncio.gather(*(client(session) for _ in range(concurrency)))
    elapsed = time.perf_counter() - start
    ok = [ms for s, _, ms, _ in results if s == 200]
    return {"requests": len(results), "seconds": elapsed, "rps": len(ok) / elapsed,
            "p50_ms": percentile(ok, 50), "p99_ms": percentile(ok, 99),
            "status": {s: statuses.count(s) for s in sorted(set(statuses))}, "results": results,
            "connection_errors": errors,
            "server_p50_ms": {k: percentile([t[k] for t in server if k in t], 50)
                              for k in (server[0] if server else {})}}


def run_load(url, payloads, concurrency, max_requests, seconds) -> dict:
    return asyncio.run(load(url, payloads, concurrency, max_requests, seconds))


# --- phases -------------------------------------------------------------------------------------
def bad_payloads(page: bytes) -> list[bytes]:
    return [b"", b"not an image at all", page[: len(page) // 3], b"GIF89a" + b"\0" * 20,
            b"\x89PNG\r\n\x1a\n" + b"\0" * 40]


def mixed_run(url: str, pages: list[bytes], args) -> dict:
    bad = bad_payloads(pages[0])
    payloads = []
    for i in range(100):
        payloads.append((bad[i % len(bad)], "bad") if i % 20 == 7 else (pages[i % len(pages)], "good"))
    r = run_load(f"{url}/ocr", payloads, 8, args.requests, args.seconds)
    results = r["results"]
    return {"requests": len(results), "malformed": sum(b for _, b, _, _ in results),
            "malformed_4xx": sum(b and 400 <= s < 500 for s, b, _, _ in results),
            "5xx": sum(s >= 500 for s, _, _, _ in results),
            "good_200": sum(not b and s == 200 for s, b, _, _ in results)}


def kill_run(url: str, lines: list[bytes], args) -> dict:
    """Kill the Recognizer replica after 2 s of load at concurrency 8: the failed requests,
    and the time from the kill until the first success after the last failure."""
    import ray

    payloads = [(b, "good") for b in lines]
    out = {}

    async def main():
        task = asyncio.create_task(load(f"{url}/recognize", payloads, 8, 10**6, max(args.seconds, 20)))
        await asyncio.sleep(2)
        name = next(a for a in ray.util.list_named_actors(all_namespaces=True) if "Recognizer" in a["name"])
        out["killed_at"] = time.perf_counter()
        ray.kill(ray.get_actor(name["name"], namespace=name["namespace"]), no_restart=True)
        out["load"] = await task

    asyncio.run(main())
    results = sorted(out["load"]["results"], key=lambda r: r[3])
    killed = out["killed_at"]
    failures = [end for status, _, _, end in results if status != 200]
    # a client whose request spanned the kill waited this long (retried onto the new replica)
    across = [ms / 1e3 for _, _, ms, end in results if end - ms / 1e3 <= killed <= end]
    last_failure = max(failures, default=killed)
    recovered = next((end for status, _, _, end in results if status == 200 and end > last_failure), None)
    return {"requests": len(results), "failed": len(failures), "status": out["load"]["status"],
            "recovery_s": (recovered - killed) if recovered else float("nan"),
            "slowest_across_kill_s": max(across, default=float("nan"))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--recognizer", default="")
    ap.add_argument("--detector", default="")
    ap.add_argument("--deskewer", default="", help='orientation checkpoint; "" = classical')
    ap.add_argument("--requests", type=int, default=400, help="at most this many requests per phase")
    ap.add_argument("--seconds", type=float, default=20.0, help="at most this long per phase")
    ap.add_argument("--threads", type=int, default=1, help="torch threads in the stages (2 threads on 2 "
                    "busy cores collapse: OpenMP spin-waits against the other processes)")
    ap.add_argument("--work", default="/tmp/ocr-bench/serve")
    ap.add_argument("--ceiling", action="store_true", help="also measure /recognize's ceiling here "
                    "(phase 6)")
    ap.add_argument("--python-proxy", action="store_true",
                    help="Serve's default Python proxy instead of the fast path (HAProxy, direct ingress, "
                         "actor calls between deployments) that the platform starts: the comparison")
    args = ap.parse_args()
    if args.python_proxy:
        from ocr.runtime import SERVE_FAST_PATH

        os.environ.update({name: "0" for name in SERVE_FAST_PATH})   # before the local Ray starts

    from ray import serve

    from ocr.runtime import ensure_ray
    from ocr.serve.config import ServeConfig
    from ocr.serve.deploy import deploy

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    paths = {"recognizer": args.recognizer, "detector": args.detector, "deskewer": args.deskewer}
    if not args.recognizer:
        paths = untrained_checkpoints(work)
    lines, pages = make_inputs(256, 24)
    min_score, max_lines = (0.5, 100) if args.detector else (0.0, 8)  # untrained: take the top 8 boxes
    print(f"inputs: {len(lines)} line images, {len(pages)} pages 640x480; models {paths}")

    direct = direct_figures(paths, lines, pages, args.threads, min_score, max_lines)
    print(f"direct (in-process): line p50 {direct['line_p50_ms']:.1f} ms, page p50 "
          f"{direct['page_p50_ms']:.1f} ms ({direct['lines_per_page']:.1f} lines/page), "
          f"offline batched {direct['offline_lines_per_s']:.0f} lines/s")

    ensure_ray(num_cpus=2, dashboard=True)
    cfg = ServeConfig(**paths, threads=args.threads, min_score=min_score, max_lines=max_lines, port=PORT)
    url = deploy(cfg, quiet=True)
    print(f"Serve at {url}: {'Python proxy' if args.python_proxy else 'fast path (HAProxy, direct ingress)'}")
    try:
        report(url, lines, pages, direct, args)
        if args.ceiling:
            ceiling(url, paths["recognizer"], lines, direct, args)
    finally:
        serve.shutdown()


_STATS_LOOP = asyncio.new_event_loop()


def recognizer_stats() -> dict:
    from ray import serve

    from ocr.serve.deploy import APP_NAME

    async def stats():   # inside an event loop (one for the whole run): throughput-optimized handles need it
        return await serve.get_deployment_handle("Recognizer", APP_NAME).stats.remote()

    return _STATS_LOOP.run_until_complete(stats())


def report(url: str, lines: list[bytes], pages: list[bytes], direct: dict, args) -> None:
    rows = {}
    for route, items in (("recognize", lines), ("ocr", pages)):
        payloads = [(b, "good") for b in items]
        run_load(f"{url}/{route}", payloads[:4], 1, 8, 10)   # warm-up
        for c in (1, 8, 32):
            before = recognizer_stats()
            r = run_load(f"{url}/{route}", payloads, c, args.requests, args.seconds)
            after = recognizer_stats()
            rows[(route, c)] = r
            per = 1 if route == "recognize" else direct["lines_per_page"]
            calls = max(1, after["model_calls"] - before["model_calls"])
            server = "  ".join(f"{k} {v:.1f}" for k, v in r["server_p50_ms"].items())
            print(f"/{route:<9} c={c:<3} {r['requests']:>4} req in {r['seconds']:5.1f}s  "
                  f"{r['rps']:7.1f} req/s  {r['rps'] * per:7.1f} lines/s  p50 {r['p50_ms']:7.1f} ms  "
                  f"p99 {r['p99_ms']:7.1f} ms  status {r['status']}  "
                  f"{(after['lines'] - before['lines']) / calls:.1f} lines per model call "
                  f"({1e3 * (after['model_seconds'] - before['model_seconds']) / calls:.1f} ms each); "
                  f"ingress p50 ms: {server}")
    over_line = rows[("recognize", 1)]["p50_ms"] - direct["line_p50_ms"]
    over_page = rows[("ocr", 1)]["p50_ms"] - direct["page_p50_ms"]
    print(f"Serve p50 overhead at c=1: /recognize {over_line:.1f} ms, /ocr {over_page:.1f} ms "
          "(target <= 10 ms)")
    gain = rows[("recognize", 32)]["rps"] / direct["offline_lines_per_s"]
    print(f"batching: /recognize at c=32 {rows[('recognize', 32)]['rps']:.0f} lines/s = {gain:.0%} "
          f"of offline batched {direct['offline_lines_per_s']:.0f} lines/s (target >= 70%)")
    m = mixed_run(url, pages, args)
    print(f"mixed 5% malformed on /ocr: {m['requests']} requests, {m['malformed']} malformed, "
          f"{m['malformed_4xx']} of them 4xx, {m['5xx']} 5xx (target 0), {m['good_200']} good 200")
    k = kill_run(url, lines, args)
    print(f"Recognizer replica killed mid-run: {k['failed']} of {k['requests']} requests failed "
          f"(status {k['status']}); first answer after the last failure {k['recovery_s']:.1f} s after the "
          f"kill; the slowest request in flight across the kill took {k['slowest_across_kill_s']:.1f} s")


def ceiling(url: str, checkpoint: str, lines: list[bytes], direct: dict, args) -> None:
    """Phase 6: /recognize's ceiling, the platform's Recognizer serving HTTP itself."""
    from ray import serve
    from starlette.responses import JSONResponse

    from ocr.serve.config import ServeConfig
    from ocr.serve.deployments import Recognizer
    from ocr.serve.uploads import UploadLimits, decode_upload, read_upload

    @serve.deployment(ray_actor_options={"num_cpus": 0.25}, max_ongoing_requests=256)
    class LineCeiling(Recognizer.func_or_class):   # the same loading, batching and merging
        async def __call__(self, request):
            limits = UploadLimits()
            line = np.asarray(decode_upload(await read_upload(request, limits), limits))
            return JSONResponse({**(await self.read([line]))[0], "timings_ms": {}})

    user_config = ServeConfig(recognizer=checkpoint, threads=args.threads).recognizer_config()
    serve.run(LineCeiling.options(user_config=user_config).bind(), name="ceiling", route_prefix="/ceiling")
    payloads = [(b, "good") for b in lines]
    run_load(f"{url}/ceiling", payloads, 32, 200, 10)   # warm-up
    r = run_load(f"{url}/ceiling", payloads, 32, args.requests * 4, args.seconds)
    print(f"ceiling: HTTP straight into one deployment that reads the line, c=32: {r['rps']:.0f} lines/s "
          f"= {r['rps'] / direct['offline_lines_per_s']:.0%} of offline (status {r['status']})")
    serve.delete("ceiling")


if __name__ == "__main__":
    main()
