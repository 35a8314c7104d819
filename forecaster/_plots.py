"""PNG charts for evaluations: loss curves, and the last window with forecast vs actual candles.

Drawn on a bare matplotlib ``Figure`` with the Agg canvas (no global backend switch, no display)
and written atomically.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from matplotlib.ticker import MaxNLocator

from data import atomic_path

UP, DOWN = "#26a69a", "#ef5350"


def _save(fig: Figure, path: Path) -> Path:
    FigureCanvasAgg(fig)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    return Path(path)


def plot_loss_curves(history: list[dict], path: Path, *, title: str = "") -> Path:
    """Train and validation loss (scaled MSE) per epoch; the best epoch is marked."""
    fig = Figure(figsize=(7, 4))
    ax = fig.add_subplot()
    epochs = [h["epoch"] for h in history]
    ax.plot(epochs, [h["train_loss"] for h in history], marker="o", ms=3, label="train")
    ax.plot(epochs, [h["val_loss"] for h in history], marker="o", ms=3, label="validation")
    if history:
        best = min(history, key=lambda h: h["val_loss"])
        ax.axvline(best["epoch"], color="grey", ls=":", label=f"best epoch {best['epoch']}")
        if history[0].get("val_persistence_loss") is not None:
            ax.axhline(history[0]["val_persistence_loss"], color="black", ls="--", lw=1,
                       label="persistence (validation)")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss (MSE of scaled targets)")
    ax.set_title(title or "training loss")
    ax.grid(alpha=0.3)
    ax.legend()
    return _save(fig, path)


def _candles(ax, x: np.ndarray, ohlc: np.ndarray, width: float, *, hollow: bool = False, color=None, label=None):
    for i, (o, h, l, c) in zip(x, ohlc):
        col = color or (UP if c >= o else DOWN)
        ax.vlines(i, l, h, color=col, lw=1)
        ax.add_patch(Rectangle((i - width / 2, min(o, c)), width, max(abs(c - o), 1e-12),
                               facecolor="none" if hollow else col, edgecolor=col, lw=1))
    if label:
        ax.plot([], [], color=color or UP, lw=4, label=label)


def plot_forecast(past: pd.DataFrame, actual: pd.DataFrame, predicted: np.ndarray, path: Path,
                  *, title: str = "") -> Path:
    """``past`` (the input candles), then per future step the actual candle (filled, left) beside
    the forecast candle (hollow blue, right). ``predicted`` is ``(horizon, 4)`` OHLC prices."""
    fig = Figure(figsize=(12, 5))
    ax = fig.add_subplot()
    n, h = len(past), len(actual)
    ohlc = ["open", "high", "low", "close"]
    _candles(ax, np.arange(n), past[ohlc].to_numpy(), 0.6)
    fut = np.arange(n, n + h)
    _candles(ax, fut - 0.2, actual[ohlc].to_numpy(), 0.35, label=None)
    _candles(ax, fut + 0.2, np.asarray(predicted), 0.35, hollow=True, color="#1f5fbf",
             label="forecast (hollow, right)")
    ax.plot(fut + 0.2, np.asarray(predicted)[:, 3], color="#1f5fbf", lw=1, ls="--")
    ax.plot([], [], color="grey", lw=4, label="actual (filled, left)")
    ax.axvline(n - 0.5, color="grey", ls=":", lw=1)
    ticks = np.linspace(0, n + h - 1, 8).round().astype(int)
    times = list(past.index) + list(actual.index)
    ax.set_xticks(ticks, [times[i].strftime("%m-%d %H:%M") for i in ticks], fontsize=8)
    ax.set_xlim(-1, n + h)
    ax.set_ylabel("price")
    ax.set_title(title or "last window: forecast vs actual")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left")
    ax.autoscale_view()
    return _save(fig, path)
