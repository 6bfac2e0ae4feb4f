"""Detector inference speed: frames per second at batch 1 on CPU (eval, inference_mode,
post-processing included), for the detection presets at 320x320 and 512x512.

    python benchmarks/detection_fps.py [--threads 2 [1 ...]] [--iters 30] [--num-classes 37]

Each preset runs as built ("plain") and after ``model.fuse_for_inference()`` (batch norms
folded into convs, channels-last memory), which is how serving runs it; "speed-up" is the
ratio of the two in this run. Target: ssdlite_mobilenetv2 >= 25 fps at 320x320 on 2 cores.
fps is from the median time; on a machine shared with other jobs, min shows the quiet case.
Prints a table; never asserts. On a shared machine two spinning OpenMP threads can lose
10x to another busy process: add ``--threads 1`` for a figure that load hardly moves.
"""

from __future__ import annotations

import argparse
import os
import time

import torch

from ocr.models.detection import DETECTORS

TARGET_FPS_320 = 25.0


def measure(model: torch.nn.Module, size: int, iters: int, warmup: int) -> tuple[float, float]:
    """(median, min) seconds per image of ``model`` on one random ``size`` x ``size`` image."""
    x = torch.rand(1, 3, size, size)
    times = []
    with torch.inference_mode():
        for i in range(warmup + iters):
            t0 = time.perf_counter()
            model(x)
            if i >= warmup:
                times.append(time.perf_counter() - t0)
    times.sort()
    return times[len(times) // 2], times[0]


def build(name: str, size: int, num_classes: int, fused: bool) -> torch.nn.Module:
    torch.manual_seed(0)
    model = DETECTORS.create(name, num_classes=num_classes, size=size).eval()
    # an untrained head scores everything alike; a realistic threshold keeps NMS input typical
    model.score_thresh = 0.3
    return model.fuse_for_inference() if fused else model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, nargs="+", default=[2])
    ap.add_argument("--iters", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--num-classes", type=int, default=37, help="background + 36 (digits, A-Z)")
    ap.add_argument("--presets", nargs="*", default=["ssdlite_mobilenetv2", "ssd_mobilenetv2"])
    args = ap.parse_args()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"torch {torch.__version__}, {os.cpu_count()} CPUs (load {load:.1f}), batch 1, "
          f"{args.num_classes} classes, {args.iters} runs after {args.warmup} warm-up")
    print(f"{'preset':<21}{'size':>5}{'thr':>4}{'params':>8}{'mode':>7}{'ms med':>8}{'ms min':>8}"
          f"{'fps':>7}{'speed-up':>9}  note")
    for threads in args.threads:
        torch.set_num_threads(threads)
        for name in args.presets:
            for size in (320, 512):
                plain = None
                for fused in (False, True):
                    model = build(name, size, args.num_classes, fused)
                    med, low = measure(model, size, args.iters, args.warmup)
                    plain = plain or med
                    fps = 1.0 / med
                    note = ""
                    if name == "ssdlite_mobilenetv2" and size == 320 and fused:
                        verdict = "met" if fps >= TARGET_FPS_320 else "MISSED"
                        note = f"target >= {TARGET_FPS_320:.0f} fps: {verdict}"
                    params = sum(p.numel() for p in model.parameters()) / 1e6
                    print(f"{name:<21}{size:>5}{threads:>4}{params:>7.2f}M"
                          f"{'fused' if fused else 'plain':>7}{med * 1e3:>8.1f}{low * 1e3:>8.1f}"
                          f"{fps:>7.1f}{plain / med:>8.2f}x  {note}", flush=True)

if __name__ == "__main__":
    main()
