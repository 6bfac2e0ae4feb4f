"""An exponential moving average of a model's weights (Polyak averaging), for the loop.

The average is what validation sees and what checkpoints hold as ``model.pt``; the raw
weights the optimiser works on travel in ``train_state.pt`` so a resumed run continues both.
Early on the decay is capped at ``(1 + step) / (10 + step)`` so the average is not held back
by the random start. Buffers (BatchNorm statistics) are copied from the model, not averaged.
"""

from __future__ import annotations

import copy

import torch
from torch import nn


class WeightAverage:
    def __init__(self, model: nn.Module, decay: float, weights: dict | None = None):
        self.decay = decay
        self.model = copy.deepcopy(model).eval()
        if weights is not None:
            self.model.load_state_dict(weights)
        for p in self.model.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module, step: int) -> None:
        """Move the average towards ``model``'s parameters after optimiser step ``step``."""
        keep = min(self.decay, (1 + step) / (10 + step))
        for avg, p in zip(self.model.parameters(), model.parameters(), strict=True):
            avg.lerp_(p.detach(), 1 - keep)

    @torch.no_grad()
    def synced(self, model: nn.Module) -> nn.Module:
        """The averaged model, with ``model``'s buffers (BatchNorm statistics)."""
        for avg, b in zip(self.model.buffers(), model.buffers(), strict=True):
            avg.copy_(b)
        return self.model
