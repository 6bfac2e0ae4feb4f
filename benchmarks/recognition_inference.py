"""Inference speed of the recognition presets on CPU, against the machine's matmul peak.

    python benchmarks/recognition_inference.py [--threads 2] [--rounds 5] [--presets crnn fast]

For each preset at 1 x 32 x 100 (grey), latin charset (96 classes): lines/s at batch 1 and
64 (torch.inference_mode, warm-up, then the best of ``--rounds`` timed repeats; the presets
are interleaved round by round so background load hits them alike), FLOPs per line
(``FlopCounterMode``; oneDNN is switched off while counting so the LSTMs decompose into
counted matmuls), GFLOP/s achieved (lines/s x FLOPs) and its fraction of the fp32 matmul
peak (1024 x 1024 x 1024) timed in every round of the same run. The attention preset decodes the
full ``max_length + 1`` steps (its [EOS] logit is biased away): the worst case, where
untrained weights would stop after a step or two. Prints the fast/crnn ratio at batch 64.

``--builtins``: each built-in model (``builtin:NAME``) against a CRNN built for its charset and
input size, batch 64, interleaved rounds.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from ocr.charset import load_charset
from ocr.models.recognition import RECOGNIZERS

SHAPE = (1, 32, 100)


def matmul_timer(n: int = 1024):
    """A function timing one n^3 fp32 matmul, and its FLOPs."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    return (lambda: _timed(lambda: a @ b)), 2 * n**3


def _timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def flops_per_line(model) -> int:
    with torch.inference_mode(), torch.backends.mkldnn.flags(enabled=False), \
            FlopCounterMode(display=False) as counter:
        model(torch.rand(1, *SHAPE))
    return counter.get_total_flops()


def build(name: str, num_classes: int):
    model = RECOGNIZERS.create(name, num_classes=num_classes, height=SHAPE[1], width=SHAPE[2]).eval()
    if model.prediction == "attn":
        with torch.no_grad():
            model.head.generator.bias[model.head.eos] = -1e4  # decode all max_length + 1 steps
    return model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=5, help="timed repeats per preset and batch size")
    ap.add_argument("--presets", nargs="+", default=["crnn", "trbc", "trba", "fast"])
    ap.add_argument("--charset", default="latin")
    ap.add_argument("--builtins", action="store_true",
                    help="instead: each built-in model against a CRNN of its charset and input size")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.builtins:
        builtin_ratios(args.rounds)
        return
    torch.manual_seed(0)
    num_classes = load_charset(args.charset).num_classes
    load0 = os.getloadavg()[0]
    models = {n: build(n, num_classes) for n in args.presets}
    flops = {n: flops_per_line(m) for n, m in models.items()}
    matmul, matmul_flops = matmul_timer()
    inputs = {64: torch.rand(64, *SHAPE), 1: torch.rand(1, *SHAPE)}
    times: dict[tuple[str, int], list[float]] = {}
    mm_times = []
    with torch.inference_mode():
        for m in models.values():  # warm-up
            for batch, x in inputs.items():
                for _ in range(2 if batch > 1 else 5):
                    m(x)
        # Rounds are interleaved -- each times the matmul and every preset once -- so that
        # background load hits the peak and the presets alike; best of the rounds is kept.
        for _ in range(args.rounds):
            mm_times.append(min(matmul() for _ in range(5)))
            for n, m in models.items():
                for batch, x in inputs.items():
                    reps = 1 if batch > 1 else 3
                    times.setdefault((n, batch), []).append(
                        _timed(lambda: [m(x) for _ in range(reps)]) / reps)  # noqa: B023
    peak = matmul_flops / min(mm_times) / 1e9
    print(f"torch {torch.__version__}, {args.threads} threads, input {SHAPE}, {args.charset} "
          f"({num_classes} classes), best of {args.rounds} rounds; load average {load0:.1f} -> "
          f"{os.getloadavg()[0]:.1f}")
    print(f"fp32 matmul 1024^3 peak: {peak:.1f} GFLOP/s (best round), "
          f"{matmul_flops / statistics.median(mm_times) / 1e9:.1f} (median round)\n")
    head = (f"{'preset':8} {'MFLOP/line':>10} {'params M':>8} | {'b1 lines/s':>10} {'GFLOP/s':>7} "
            f"{'%peak':>6} | {'b64 lines/s':>11} {'(median)':>8} {'GFLOP/s':>7} {'%peak':>6}")
    print(head + "\n" + "-" * len(head))
    rate = {}
    for n, m in models.items():
        params = sum(p.numel() for p in m.parameters()) / 1e6
        row = f"{n:8} {flops[n] / 1e6:10.1f} {params:8.2f} |"
        for batch in (1, 64):
            ts = times[(n, batch)]
            rate[(n, batch)] = batch / min(ts)
            gflops = rate[(n, batch)] * flops[n] / 1e9
            median = f" {batch / statistics.median(ts):8.0f}" if batch > 1 else ""
            width = 11 if batch > 1 else 10
            row += f" {rate[(n, batch)]:{width}.0f}{median} {gflops:7.1f} {100 * gflops / peak:5.1f}% |"
        print(row.rstrip(" |"))
    if "fast" in models and "crnn" in models:
        med = {n: statistics.median(times[(n, 64)]) for n in ("fast", "crnn")}
        print(f"\nfast / crnn at batch 64: {rate[('fast', 64)] / rate[('crnn', 64)]:.1f}x "
              f"(best), {med['crnn'] / med['fast']:.1f}x (median); target >= 3x")


def builtin_ratios(rounds: int) -> None:
    """Lines/s at batch 64 of each built-in (``builtin:NAME``) and of deep-text-recognition-
    benchmark's CRNN built for the same charset and input size, interleaved, best of ``rounds``."""
    from ocr import checkpoint

    for name in checkpoint.builtin_names():
        model, meta = checkpoint.load(f"builtin:{name}", "recognition")
        p = meta["preprocess"]
        crnn = RECOGNIZERS.create("crnn", num_classes=meta["arch"]["num_classes"], height=p["height"],
                                  width=p["width"], channels=p["channels"]).eval()
        x = torch.rand(64, p["channels"], p["height"], p["width"])
        best = {"builtin": [], "crnn": []}
        with torch.inference_mode():
            for m in (model.eval(), crnn):
                m(x)
            for _ in range(rounds):
                best["builtin"].append(_timed(lambda: model(x)))  # noqa: B023
                best["crnn"].append(_timed(lambda: crnn(x)))      # noqa: B023
        mine, theirs = 64 / min(best["builtin"]), 64 / min(best["crnn"])
        print(f"builtin:{name} ({meta['arch']['name']}, {p['channels']}x{p['height']}x{p['width']}, "
              f"{meta['arch']['num_classes']} classes): {mine:.0f} lines/s, crnn {theirs:.0f} lines/s "
              f"= {mine / theirs:.1f}x (target >= 10x)")


if __name__ == "__main__":
    main()
