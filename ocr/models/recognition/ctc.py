"""CTC helpers: greedy (best-path) decoding and the feasibility of a label for T frames.

Class indices follow the charset contract: 0 is the blank, symbol ``i`` of the charset is
class ``i + 1``, so decoded indices go straight to ``Charset.decode``.
"""

from __future__ import annotations

import torch
from torch import Tensor


def ctc_greedy_decode(log_probs: Tensor, lengths: Tensor | None = None) -> list[tuple[list[int], float]]:
    """Best-path decoding of (B, T, C) log-probabilities (a ``CTCHead``'s output).

    Takes the most likely class per frame, merges repeats, drops blanks. Returns one
    ``(indices, confidence)`` per sample; ``confidence`` is the probability of that best
    path: the *product* of the per-frame maximum probabilities, exp(sum of max log-probs),
    over the sample's ``lengths[b]`` frames (all T when ``lengths`` is None).
    """
    if log_probs.dim() != 3:
        raise ValueError(f"expected (B, T, C) log-probabilities, found shape {tuple(log_probs.shape)}")
    best, idx = log_probs.detach().max(-1)  # (B, T)
    b, t = idx.shape
    lengths = torch.full((b,), t) if lengths is None else lengths
    out = []
    for row, score, n in zip(idx.tolist(), best.float().cpu(), lengths.tolist()):
        row, prev, kept = row[:n], 0, []
        for i in row:
            if i != prev and i != 0:
                kept.append(i)
            prev = i
        out.append((kept, float(score[:n].sum().exp())))
    return out


def ctc_feasible(label_lengths_with_repeats, time_steps: int):
    """Whether CTC can emit labels of these minimal lengths in ``time_steps`` frames.

    ``label_lengths_with_repeats`` is ``len(label) + number of adjacent repeats`` (see
    ``ocr.charset.ctc_min_steps``): an int (returns a bool) or a sequence / tensor of them
    (returns a bool tensor). ``F.ctc_loss`` gives ``inf`` (or 0 with ``zero_infinity``)
    for the infeasible ones.
    """
    if isinstance(label_lengths_with_repeats, int):
        return label_lengths_with_repeats <= time_steps
    return torch.as_tensor(label_lengths_with_repeats) <= time_steps
