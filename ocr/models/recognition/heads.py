"""Stage 4, prediction: sequence features (B, T, D) -> class scores, batch first.

Class indices and the charset (``ocr.charset``), for both heads:

* ``num_classes`` is always the charset's, ``len(symbols) + 1``; index 0 is the CTC blank,
  symbol ``i`` is class ``i + 1`` (``Charset.encode``).
* ``CTCHead`` outputs ``num_classes`` columns.
* ``AttentionHead`` outputs ``num_classes + 1 = len(symbols) + 2`` columns: index 0 is
  [GO] (the blank's slot: fed as the first decoder input, also the padding of targets and
  the ``ignore_index`` of the loss), ``1..len(symbols)`` are the symbols exactly as
  ``Charset.encode`` numbers them, and ``num_classes`` (the last column) is [EOS]. So one
  encoding serves both heads; only EOS is added. (DTRB orders them [GO], [s], symbols.)

Targets for both are a padded LongTensor (B, S) of ``Charset.encode`` indices, 0 after
each label's end.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class CTCHead(nn.Module):
    """Linear + log_softmax: (B, T, D) -> (B, T, num_classes) log-probabilities.

    Batch first; ``F.ctc_loss`` wants (T, B, C), so transpose with ``.transpose(0, 1)``.
    """

    prediction = "ctc"

    def __init__(self, in_channels: int, num_classes: int):
        super().__init__()
        self.num_classes = num_classes
        self.fc = nn.Linear(in_channels, num_classes)

    def forward(self, x: Tensor, targets: Tensor | None = None) -> Tensor:
        return self.fc(x).log_softmax(-1)


HANGUL_FIRST, HANGUL_COUNT = 0xAC00, 11172     # U+AC00..U+D7A3: 19 initials x 21 medials x 28 finals
JAMO = (19, 21, 28)


def hangul_jamo(symbol: str) -> tuple[int, int, int] | None:
    """(initial, medial, final) indices of a precomposed Hangul syllable (final 0: none), else None."""
    code = ord(symbol) - HANGUL_FIRST
    if not 0 <= code < HANGUL_COUNT:
        return None
    return code // (21 * 28), code // 28 % 21, code % 28


class JamoCTCHead(nn.Module):
    """A CTC head that scores Hangul syllables by their jamo: (B, T, D) -> (B, T, num_classes).

    Every syllable is an initial, a medial and a final jamo (19 x 21 x 28), drawn left, right
    or below within its square. Instead of one weight row per syllable (2,350 for KS X 1001),
    a frame's score for syllable (l, v, t) is log p(syllable) + log p(l) + log p(v) + log p(t):
    ``kind`` is a softmax over "a syllable", the blank and each other symbol; three small
    softmaxes pick its jamo. So a rare syllable learns from every syllable sharing its parts,
    and the head learns 68 + (other symbols) rows instead of ``num_classes``. The output is
    renormalised over the charset's classes, so it is what ``CTCHead`` returns: decoding, the
    loss and export see no difference.

    ``symbols`` are the charset's, in class order (symbol ``i`` is class ``i + 1``); classes
    past ``len(symbols)`` are other symbols. An extended charset (symbols appended) keeps every
    old weight in place: new other symbols add rows at the end of ``kind``; new syllables
    need no new weights at all.
    """

    prediction = "ctc"

    def __init__(self, in_channels: int, num_classes: int, symbols: str):
        super().__init__()
        if len(symbols) > num_classes - 1:
            raise ValueError(f"jamo: {len(symbols)} symbols for {num_classes} classes: expected at "
                             f"most num_classes - 1 = {num_classes - 1}")
        self.num_classes = num_classes
        jamo = {i + 1: hangul_jamo(s) for i, s in enumerate(symbols)}
        syllables = [c for c in range(num_classes) if jamo.get(c)]
        others = [c for c in range(num_classes) if not jamo.get(c)]   # the blank first
        self.kind = nn.Linear(in_channels, 1 + len(others))            # "a syllable", then others
        self.jamo = nn.Linear(in_channels, sum(JAMO))
        parts = torch.tensor([jamo[c] for c in syllables], dtype=torch.long).reshape(-1, 3)
        rows = torch.cat([torch.zeros(len(syllables), 1, dtype=torch.long),
                          parts + torch.tensor([0, JAMO[0], JAMO[0] + JAMO[1]]) + 1 + len(others)], 1)
        compose = torch.zeros(1 + len(others) + sum(JAMO), num_classes)    # scores -> classes
        compose[torch.arange(1, 1 + len(others)), torch.tensor(others)] = 1.0
        compose[rows.T, torch.tensor(syllables, dtype=torch.long)] = 1.0
        self.register_buffer("compose", compose, persistent=False)

    def forward(self, x: Tensor, targets: Tensor | None = None) -> Tensor:
        a, b = JAMO[0], JAMO[0] + JAMO[1]
        j = self.jamo(x)
        parts = [self.kind(x).log_softmax(-1), j[..., :a].log_softmax(-1),
                 j[..., a:b].log_softmax(-1), j[..., b:].log_softmax(-1)]
        return (torch.cat(parts, -1) @ self.compose.to(x.dtype)).log_softmax(-1)


def attention_gold(targets: Tensor, eos: int) -> Tensor:
    """(B, S) padded labels -> (B, S+1) gold outputs: each label, then [EOS], then 0 (ignored)."""
    lengths = (targets != 0).sum(1, keepdim=True)
    gold = torch.cat([targets, targets.new_zeros(targets.size(0), 1)], 1)
    return gold.scatter(1, lengths, eos)


def attention_greedy_decode(logits: Tensor, eos: int, max_length: int | None = None
                            ) -> list[tuple[list[int], float]]:
    """(B, S, num_classes+1) logits -> per sample ``(indices before EOS, confidence)``.

    ``confidence`` is the product of the step maxima of the softmax up to and including
    [EOS] (DTRB's), or over all steps when no [EOS] came. Without [EOS] the indices are cut
    to ``max_length`` (a label the decoder never finished); [GO] (0) is never emitted.
    """
    best, idx = logits.detach().float().softmax(-1).max(-1)
    out = []
    for row, probs in zip(idx.tolist(), best.cpu()):
        n = row.index(eos) if eos in row else len(row)
        kept = [i for i in row[:n] if i != 0][:max_length]
        out.append((kept, float(probs[: n + 1].prod())))
    return out


class AttentionHead(nn.Module):
    """DTRB's attention decoder (Bahdanau attention + LSTMCell), batch first.

    ``forward(x, targets)`` with x (B, T, D):

    * ``targets`` (B, S) padded labels -> teacher forcing: inputs [GO], y1..yS; returns
      logits (B, S+1, num_classes+1) to compare with ``attention_gold(targets, eos)`` by
      cross-entropy with ``ignore_index=0``;
    * ``targets=None`` -> greedy decoding from [GO], feeding back the argmax, for at most
      ``max_length + 1`` steps (labels of ``max_length`` symbols, then [EOS]); stops early
      once every sample has emitted [EOS], so S+1 <= max_length + 1.

    Differences from DTRB: the previous symbol enters through an ``nn.Embedding`` (the same
    function as DTRB's one-hot times a weight matrix, without the (B, num_classes) one-hot:
    it matters for Hangul's 2,350+ classes) and the attention projection of ``x`` is
    computed once, not at every step.
    """

    prediction = "attn"

    def __init__(self, in_channels: int, num_classes: int, hidden: int = 256, max_length: int = 25):
        super().__init__()
        self.num_classes, self.hidden, self.max_length = num_classes, hidden, max_length
        self.eos = num_classes
        self.num_outputs = num_classes + 1
        self.i2h = nn.Linear(in_channels, hidden, bias=False)
        self.h2h = nn.Linear(hidden, hidden)
        self.score = nn.Linear(hidden, 1, bias=False)
        self.embed = nn.Embedding(self.num_outputs, hidden)
        self.rnn = nn.LSTMCell(in_channels + hidden, hidden)
        self.generator = nn.Linear(hidden, self.num_outputs)

    def _step(self, state, x: Tensor, proj: Tensor, token: Tensor):
        e = self.score(torch.tanh(proj + self.h2h(state[0]).unsqueeze(1)))  # (B, T, 1)
        context = (F.softmax(e, 1) * x).sum(1)  # (B, D)
        return self.rnn(torch.cat([context, self.embed(token)], 1), state)

    def forward(self, x: Tensor, targets: Tensor | None = None) -> Tensor:
        b = x.size(0)
        proj = self.i2h(x)
        state = (x.new_zeros(b, self.hidden), x.new_zeros(b, self.hidden))
        if targets is not None:
            inputs = torch.cat([targets.new_zeros(b, 1), targets], 1)  # [GO], y1..yS
            hiddens = []
            for i in range(inputs.size(1)):
                state = self._step(state, x, proj, inputs[:, i])
                hiddens.append(state[0])
            return self.generator(torch.stack(hiddens, 1))
        token = torch.zeros(b, dtype=torch.long, device=x.device)
        done = torch.zeros(b, dtype=torch.bool, device=x.device)
        logits = []
        for _ in range(self.max_length + 1):
            state = self._step(state, x, proj, token)
            logits.append(self.generator(state[0]))
            token = logits[-1].argmax(1)
            done |= token == self.eos
            if bool(done.all()):
                break
        return torch.stack(logits, 1)
