"""Stage 3, sequence modelling: (B, T, D) -> (B, T, out_channels)."""

from __future__ import annotations

from torch import Tensor, nn


class NoSequence(nn.Module):
    """No sequence model: passes (B, T, D) through; ``out_channels == in_channels``."""

    def __init__(self, in_channels: int):
        super().__init__()
        self.out_channels = in_channels

    def forward(self, x: Tensor) -> Tensor:
        return x


class BidirectionalLSTM(nn.Module):
    """DTRB's layer: a bidirectional LSTM then a linear map 2*hidden -> out."""

    def __init__(self, in_channels: int, hidden: int, out_channels: int):
        super().__init__()
        self.rnn = nn.LSTM(in_channels, hidden, bidirectional=True, batch_first=True)
        self.linear = nn.Linear(2 * hidden, out_channels)

    def forward(self, x: Tensor) -> Tensor:
        return self.linear(self.rnn(x)[0])


class BiLSTM(nn.Sequential):
    """``num_layers`` stacked ``BidirectionalLSTM`` (DTRB: 2): (B, T, D) -> (B, T, hidden)."""

    def __init__(self, in_channels: int, hidden: int = 256, num_layers: int = 2):
        super().__init__(*[BidirectionalLSTM(in_channels if i == 0 else hidden, hidden, hidden)
                           for i in range(num_layers)])
        self.out_channels = hidden
