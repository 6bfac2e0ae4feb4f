"""Angles and the fine skew buckets.

Conventions (everywhere in the orientation family): an angle is in degrees, counter-clockwise
positive as PIL's ``Image.rotate`` turns an image; a page's ``angle`` is the rotation that made
it from the upright page, so ``page.rotate(-angle)`` undoes it. A total angle splits into an
``orientation`` (0, 90, 180 or 270) and a ``skew`` in [-45, 45): ``angle = skew + orientation``
(modulo 360).

:class:`AngleBuckets` cuts one period of angles (90 degrees for skew: text lines look the same
every quarter turn to the skew model; 180 for line directions) into buckets of ``step``
degrees, wrapping around at the ends. Targets are circular Gaussians over the buckets, so the
expected value over the buckets around the best one recovers an angle finer than a bucket.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

ORIENTATIONS = (0, 90, 180, 270)
TURN_SEED = 9973


def wrap(angle, period: float = 360.0):
    """``angle`` wrapped into [-period/2, period/2) (floats, numpy arrays or tensors)."""
    half = period / 2
    return (angle + half) % period - half


def decompose(angle: float) -> tuple[float, int]:
    """(skew in [-45, 45), orientation in 0/90/180/270) with skew + orientation = angle mod 360."""
    skew = float(wrap(float(angle), 90.0))
    return skew, int(round((float(angle) - skew) / 90.0)) % 4 * 90


def compose(skew: float, orientation: int) -> float:
    """The total angle in [-180, 180) of a skew and an orientation."""
    return float(wrap(float(skew) + float(orientation), 360.0))


@dataclass(frozen=True)
class AngleBuckets:
    """``period / step`` buckets; bucket ``i`` is centred on ``-period/2 + i * step``."""

    period: float = 90.0
    step: float = 0.5

    def __post_init__(self):
        n = self.period / self.step
        if self.step <= 0 or abs(n - round(n)) > 1e-9 or n < 4:
            raise ValueError(f"AngleBuckets: expected a period ({self.period}) that is a whole number "
                             f"(>= 4) of steps ({self.step})")

    @property
    def count(self) -> int:
        return round(self.period / self.step)

    def centres(self) -> torch.Tensor:
        return -self.period / 2 + self.step * torch.arange(self.count, dtype=torch.float64)

    def index(self, angles) -> torch.Tensor:
        """The nearest bucket of each angle (int64), wrapping around: ``+period/2`` is bucket 0."""
        a = torch.as_tensor(angles, dtype=torch.float64)
        return torch.round((wrap(a, self.period) + self.period / 2) / self.step).long() % self.count

    def targets(self, angles, sigma: float = 1.0) -> torch.Tensor:
        """(B, count) float32 soft targets: a circular Gaussian of ``sigma`` buckets around each
        angle (its exact position, not its bucket), summing to 1."""
        a = torch.as_tensor(angles, dtype=torch.float64).reshape(-1, 1)
        offset = wrap(self.centres()[None, :] - a, self.period) / self.step      # in buckets
        weights = torch.exp(-0.5 * (offset / sigma) ** 2)
        return (weights / weights.sum(1, keepdim=True)).float()

    def decode(self, logits: torch.Tensor, window: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
        """(angles (B,) in [-period/2, period/2), confidence (B,)) from (B, count) logits: the
        expected value over the ``window`` buckets on each side of the best one (wrapping
        around), and the probability mass of those buckets."""
        probs = torch.softmax(logits.double(), dim=1)
        best = probs.argmax(1)
        offsets = torch.arange(-window, window + 1, device=logits.device)
        near = torch.gather(probs, 1, (best[:, None] + offsets[None, :]) % self.count)
        mass = near.sum(1)
        shift = (near * offsets[None, :].double()).sum(1) / mass.clamp_min(1e-12)
        centre = -self.period / 2 + self.step * best.double()
        return wrap(centre + shift * self.step, self.period).float(), mass.float()


def circular_error(pred, truth, period: float = 360.0):
    """|pred - truth| on a circle of ``period`` degrees (floats, arrays or tensors)."""
    return abs(wrap(pred - truth, period))


def seeded_turn(sample_id: int, span: float = 180.0, seed: int = TURN_SEED) -> float:
    """A fixed turn in [-span, span) degrees for a sample, drawn from its (int) id: the same
    page is turned the same way in every validation and evaluation."""
    rng = np.random.default_rng([seed, int(sample_id) & 0x7FFFFFFFFFFFFFFF])
    return float(rng.uniform(-span, span)) if span else 0.0
