"""The network, and nothing else: a GRU over a window of candle features and a linear head.

Input ``x``: ``(batch, lookback, n_features)`` float32, already scaled (see ``forecaster._features``).
Output: ``(batch, horizon, n_outputs)`` — for each of the next ``horizon`` candles its scaled
open/high/low/close (``n_outputs`` = 4). The network knows nothing about prices or time.
"""
from __future__ import annotations

import torch
from torch import nn


class GRUForecaster(nn.Module):
    """``nn.GRU`` (``layers`` deep, ``hidden`` wide) whose last hidden state feeds one linear head.

    ``dropout`` acts between stacked GRU layers (when ``layers`` > 1) and on the final hidden
    state before the head. :meth:`config` returns the constructor arguments, so
    ``GRUForecaster(**m.config())`` rebuilds the same architecture.
    """

    def __init__(
        self,
        n_features: int = 5,
        hidden: int = 64,
        layers: int = 1,
        dropout: float = 0.0,
        horizon: int = 8,
        n_outputs: int = 4,
    ):
        super().__init__()
        self.n_features = n_features
        self.hidden = hidden
        self.layers = layers
        self.dropout_p = dropout
        self.horizon = horizon
        self.n_outputs = n_outputs
        self.gru = nn.GRU(
            n_features, hidden, num_layers=layers, batch_first=True, dropout=dropout if layers > 1 else 0.0
        )
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(hidden, horizon * n_outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, h = self.gru(x)  # h: (layers, batch, hidden); h[-1] is the top layer after the last candle
        return self.head(self.dropout(h[-1])).view(-1, self.horizon, self.n_outputs)

    def config(self) -> dict:
        """The constructor arguments, as plain values (stored in checkpoints)."""
        return {
            "n_features": self.n_features,
            "hidden": self.hidden,
            "layers": self.layers,
            "dropout": self.dropout_p,
            "horizon": self.horizon,
            "n_outputs": self.n_outputs,
        }
