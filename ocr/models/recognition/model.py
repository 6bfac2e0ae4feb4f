"""The recogniser: four stages passed in, DTRB's Trans-Feat-Seq-Pred pipeline."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from ..registry import arch_of
from .ctc import ctc_greedy_decode
from .heads import attention_gold, attention_greedy_decode


class Recognizer(nn.Module):
    """Text-line recogniser: transformation -> features -> sequence -> head.

    Input ``images`` (B, C, H, W) float, C = ``features.in_channels``; H >= the backbone's
    ``min_height`` after the transformation (TPS resamples to its ``out_size``).
    ``targets`` (B, S) LongTensor of ``Charset.encode`` indices padded with 0.

    ``forward`` returns, batch first:

    * ``prediction == "ctc"``: (B, T, num_classes) log-probabilities, T = ``time_steps(W)``;
      ``targets`` are ignored;
    * ``prediction == "attn"``: logits (B, S+1, num_classes+1), teacher-forced on
      ``targets`` when given, else greedily decoded (S+1 <= max_length+1). See ``heads``.

    ``loss(outputs, targets)`` and ``decode(outputs)`` do the matching loss and greedy
    decoding, so callers never branch on the head. ``RECOGNIZERS.create`` sets ``arch``,
    which ``arch_config()`` returns.
    """

    def __init__(self, transformation: nn.Module, features: nn.Module, sequence: nn.Module,
                 head: nn.Module):
        super().__init__()
        self.transformation, self.features, self.sequence, self.head = (
            transformation, features, sequence, head)
        self.prediction = head.prediction
        self.num_classes = head.num_classes
        self.arch: dict | None = None   # set by the registry: how to rebuild this model

    @property
    def channels_last(self) -> bool:
        """The training loop's memory-format hint: the feature extractor's."""
        return self.features.channels_last

    def time_steps(self, width: int) -> int:
        """Sequence length T of the CTC output for input width ``width``."""
        return self.features.time_steps(self.transformation.out_width(width))

    def arch_config(self) -> dict:
        """JSON-able ``{"name": preset, **params}``; ``RECOGNIZERS.create(**cfg)`` rebuilds it."""
        return arch_of(self)

    def _check(self, images: Tensor) -> None:
        c = self.features.in_channels
        if images.dim() != 4 or images.size(1) != c:
            raise ValueError(f"expected images of shape (B, {c}, H, W), found {tuple(images.shape)}")
        h, w = images.shape[2:]
        h2, t = self.transformation.out_height(h), self.time_steps(w)
        if h2 < self.features.min_height or t < 1:
            raise ValueError(f"image size {h}x{w} is too small: expected height >= "
                             f"{self.features.min_height} and at least one time step (found T={t})")

    def forward(self, images: Tensor, targets: Tensor | None = None) -> Tensor:
        self._check(images)
        x = self.features(self.transformation(images))
        return self.head(self.sequence(x), targets)

    def loss(self, outputs: Tensor, targets: Tensor) -> Tensor:
        """Mean loss of ``forward(images, targets)``'s outputs against padded ``targets``.

        CTC: ``F.ctc_loss`` (blank 0, ``zero_infinity`` so infeasible labels count 0).
        Attention: cross-entropy against ``attention_gold`` with ``ignore_index=0``.
        """
        lengths = (targets != 0).sum(1)
        if self.prediction == "ctc":
            b, t = outputs.shape[:2]
            frames = lengths.new_full((b,), t)
            return F.ctc_loss(outputs.transpose(0, 1), targets, frames, lengths, blank=0,
                              zero_infinity=True)
        gold = attention_gold(targets, self.head.eos)
        return F.cross_entropy(outputs.flatten(0, 1), gold.flatten(), ignore_index=0)

    def decode(self, outputs: Tensor) -> list[tuple[list[int], float]]:
        """Greedy decoding: per sample (charset indices, confidence); see ``ctc`` and ``heads``."""
        if self.prediction == "ctc":
            return ctc_greedy_decode(outputs)
        return attention_greedy_decode(outputs, self.head.eos, self.head.max_length)
