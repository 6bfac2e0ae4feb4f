"""Is a point of a search space trainable? Checked on the driver before any trial starts.

* the config itself (types, ranges) and the task's own checks: for CTC recognisers, the
  time steps at the sampled width must hold the data's longest label plus its adjacent
  repeats (``RecognitionTask``); preset parameters must exist;
* memory: weights, gradients and AdamW's two moments (16 bytes per parameter) plus the
  activations of one batch, measured by forward hooks on a 2-sample batch and scaled to
  ``batch_size`` (x2 for what backward keeps), must fit the worker's share of the device.
"""

from __future__ import annotations

import os

import torch

from ocr import checkpoint
from ocr.config import ConfigError, from_dict
from ocr.families import make_task
from ocr.train.config import TrainConfig
from ocr.train.task import TrainTask
from ocr.tune.space import apply


def activation_bytes(model: torch.nn.Module, x: torch.Tensor) -> int:
    """Bytes of every leaf module's output for input ``x`` (train mode, no gradients kept)."""
    total = 0

    def hook(_m, _i, out):
        nonlocal total
        outs = out if isinstance(out, (tuple, list)) else (out,)
        total += sum(o.numel() * o.element_size() for o in outs if isinstance(o, torch.Tensor))

    leaves = [m for m in model.modules() if not list(m.children())]
    handles = [m.register_forward_hook(hook) for m in leaves]
    try:
        model.train()
        with torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
    return total


def memory_estimate(task: TrainTask, batch_size: int) -> int:
    """Training bytes of one worker for ``task`` at ``batch_size`` (see the module doc)."""
    meta = task.model_meta()
    model = checkpoint.build_model(meta)  # the architecture only: no weights are loaded
    p = meta["preprocess"]
    x = torch.zeros(2, p["channels"], p["height"], p["width"])
    params = sum(t.numel() for t in model.parameters())
    return 16 * params + activation_bytes(model, x) * batch_size  # (per sample) x 2 / 2 samples


def device_budget(use_gpu: bool, concurrent_workers: int) -> int:
    """Bytes one worker may use: its share of GPU memory, or of the machine's available RAM."""
    if use_gpu and torch.cuda.is_available():
        return int(torch.cuda.get_device_properties(0).total_memory * 0.9)
    try:
        import psutil  # lazy: an optional dependency (the fallback reads /proc via sysconf)

        free = psutil.virtual_memory().available
    except ImportError:
        free = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")
    return int(free * 0.8 / max(1, concurrent_workers))


def check_point(base: dict, point: dict, budget: int) -> tuple[TrainConfig | None, str | None]:
    """(config, None) when the point can train, else (None, the reason)."""
    try:
        cfg = from_dict(TrainConfig, apply(base, point))
        task = make_task(cfg)
        need = memory_estimate(task, cfg.batch_size)
    except (ConfigError, ValueError, TypeError) as e:
        return None, str(e)
    if need > budget:
        return None, (f"batch {cfg.batch_size} needs about {need / 2**30:.1f} GiB per worker, "
                      f"more than the {budget / 2**30:.1f} GiB available to it")
    return cfg, None
