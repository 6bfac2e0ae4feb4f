"""Data-parallel steps without DDP: one all-reduce of (gradients x samples, step statistics).

Ray Train sets up the process group (gloo on CPU, NCCL on GPU). Each step, every worker
adds its gradients multiplied by its number of samples, and its statistics, into one flat
buffer; one all-reduce sums them and every worker divides by the total of samples. So:

* workers may hold uneven batches, or none at all (an epoch that resumed mid-way, with
  the samples already trained skipped): a worker without a batch adds zeros;
* the epoch ends everywhere on the same step (when the summed sample count is 0);
* a NaN/inf on any worker reaches every worker, so all skip the same steps.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn


def world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def rank_and_world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def all_reduce(t: torch.Tensor) -> torch.Tensor:
    """Sum over workers, in place (a no-op on one worker)."""
    if world_size() > 1:
        dist.all_reduce(t)
    return t


def broadcast_model(model: nn.Module) -> None:
    """Every worker starts from rank 0's parameters and buffers."""
    if world_size() > 1:
        for t in list(model.parameters()) + list(model.buffers()):
            dist.broadcast(t.data, 0)


def average_buffers(model: nn.Module) -> None:
    """Average float buffers (BatchNorm running statistics) over workers."""
    n = world_size()
    if n > 1:
        for b in model.buffers():
            if b.is_floating_point():
                dist.all_reduce(b.data)
                b.data /= n


def sync_step(model: nn.Module, samples: int, stats: list[float]) -> torch.Tensor:
    """Sum ``[samples, *stats]`` over workers and set every gradient to the sample-weighted mean.

    ``stats`` are per-worker sums (e.g. loss x samples). Returns the summed
    ``[samples, *stats]`` as a float64 CPU tensor.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    device = params[0].device
    grads = [(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1) for p in params]
    tail = torch.tensor([samples, *stats], dtype=torch.float32, device=device)
    flat = torch.cat([torch.cat(grads).float() * samples, tail])
    all_reduce(flat)
    total = flat[-len(tail)].item()
    if total > 0:
        flat[: -len(tail)] /= total
        offset = 0
        for p in params:
            n = p.numel()
            p.grad = flat[offset: offset + n].view_as(p).to(p.dtype)
            offset += n
    return flat[-len(tail):].double().cpu()


def gather_objects(value) -> list:
    """Every worker's ``value`` (picklable), in rank order, on every worker."""
    if world_size() == 1:
        return [value]
    out: list = [None] * world_size()
    dist.all_gather_object(out, value)
    return out


def gather_ints(values: list[int]) -> list[int]:
    """Every worker's ``values``, concatenated (for the samples seen in an epoch)."""
    return [v for part in gather_objects(list(values)) for v in part]
