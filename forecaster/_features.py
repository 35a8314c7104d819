"""Windows, features, targets and the scaler: how candles become tensors and predictions become prices.

Timing (``L`` = lookback, ``H`` = horizon, rows counted in one gap-free segment): a window is
named by its END row ``e``, the last input candle, whose open time is the decision time ``t``.

- inputs: rows ``e-L+1 … e`` (``L`` candles, the newest is ``e``);
- targets: rows ``e+1 … e+H`` — target ``h`` is the candle that opens at ``t + h·timeframe``.

Every target row is strictly after every input row, and no window spans a gap, so a segment of
``N`` candles gives ``N - L - H + 1`` training windows (``N - 135`` for 128 → 8) and ``N - L + 1``
forecast windows (targets are not needed to forecast).

Features are scale-free, so one model serves any price level. For each input candle ``j`` of the
window ending at ``e``: ``log(open_j/close_e)``, ``log(high_j/close_e)``, ``log(low_j/close_e)``,
``log(close_j/close_e)``, ``log1p(volume_j)``. Targets: ``log(open_{e+h}/close_e)`` and likewise for
high, low, close. A :class:`Scaler` standardises both with means/stds fitted on TRAINING windows
only (each feature over all positions of all training windows; each target per horizon and field).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from data import GruowError

N_FEATURES = 5
TARGET_FIELDS = ("open", "high", "low", "close")
# stored in every checkpoint so a reader knows what the numbers mean
FEATURE_DEFINITION = {
    "version": 1,
    "window": "inputs rows e-L+1..e (e = decision candle), targets rows e+1..e+H, no gap inside",
    "inputs": [
        "log(open_j/close_e)",
        "log(high_j/close_e)",
        "log(low_j/close_e)",
        "log(close_j/close_e)",
        "log1p(volume_j)",
    ],
    "targets": ["log(open_{e+h}/close_e)", "log(high_{e+h}/close_e)", "log(low_{e+h}/close_e)",
                "log(close_{e+h}/close_e)"],
    "scaling": "(value - mean) / std, fitted on training windows only; inputs per feature, "
               "targets per (horizon, field)",
}


def candle_arrays(candles: pd.DataFrame) -> np.ndarray:
    """``(N, 5)`` float64: log open, log high, log low, log close, log1p volume of every candle.

    Raises :class:`GruowError` naming the first candle with a non-positive or non-finite price,
    or a negative/non-finite volume (logs of those are meaningless).
    """
    prices = candles[["open", "high", "low", "close"]].to_numpy(dtype=np.float64)
    volume = candles["volume"].to_numpy(dtype=np.float64)
    bad = ~np.isfinite(prices).all(axis=1) | (prices <= 0).any(axis=1) | ~np.isfinite(volume) | (volume < 0)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise GruowError(
            f"candle at {candles.index[i].isoformat()} has a non-positive or missing price or a negative "
            "volume; prices must be > 0 and volume >= 0 to forecast"
        )
    return np.column_stack([np.log(prices), np.log1p(volume)])


def split_rows(n_rows: int, val_fraction: float, test_fraction: float = 0.0) -> dict[str, tuple[int, int]]:
    """Chronological train/val/test row ranges ``{"train": (0, a), "val": (a, b), "test": (b, n)}``.

    The split is on CANDLES, and windows are then built inside each part only, so no candle is
    shared between the windows of two parts (the validation windows start ``L + H - 1`` candles
    after the last training target — no overlap at all).
    """
    if not 0 < val_fraction < 1:
        raise GruowError(f"val_fraction {val_fraction} must be between 0 and 1 (exclusive)")
    if not 0 <= test_fraction < 1 or val_fraction + test_fraction >= 1:
        raise GruowError(f"test_fraction {test_fraction} must be >= 0 with val_fraction + test_fraction < 1")
    n_test = int(round(n_rows * test_fraction))
    n_val = int(round(n_rows * val_fraction))
    b = n_rows - n_test
    a = b - n_val
    return {"train": (0, a), "val": (a, b), "test": (b, n_rows)}


def clip_runs(runs: list[tuple[int, int]], lo: int, hi: int) -> list[tuple[int, int]]:
    """The parts of the gap-free runs ``[(start, stop), ...]`` that lie inside rows ``[lo, hi)``."""
    out = []
    for a, b in runs:
        a, b = max(a, lo), min(b, hi)
        if b > a:
            out.append((a, b))
    return out


def window_ends(runs: list[tuple[int, int]], lookback: int, horizon: int = 0) -> np.ndarray:
    """End rows ``e`` of every window whose rows ``e-lookback+1 … e+horizon`` lie in one run.

    ``runs`` are gap-free row ranges (``data.segments``); pass ``horizon=0`` for forecasting,
    where no future candle is needed. A run of ``N`` rows gives ``max(0, N - lookback - horizon + 1)``.
    """
    parts = [np.arange(a + lookback - 1, b - horizon, dtype=np.int64) for a, b in runs]
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)


def require_windows(runs: list[tuple[int, int]], lookback: int, horizon: int, what: str) -> np.ndarray:
    """:func:`window_ends`, raising :class:`GruowError` (naming ``what``) when there is none."""
    ends = window_ends(runs, lookback, horizon)
    if len(ends) == 0:
        longest = max((b - a for a, b in runs), default=0)
        need = f"{lookback + horizon} consecutive candles without a gap ({lookback} inputs + {horizon} to compare)" \
            if horizon else f"{lookback} consecutive candles without a gap"
        raise GruowError(f"{what} needs {need}; the longest run here is {longest} candles")
    return ends


def input_rows(ends, lookback: int):
    """``(B, lookback)`` input row numbers of windows ending at ``ends`` (oldest first)."""
    ends = torch.as_tensor(ends)
    return ends[:, None] + torch.arange(-lookback + 1, 1, device=ends.device)


def target_rows(ends, horizon: int):
    """``(B, horizon)`` target row numbers: column ``h-1`` is the candle ``h`` steps after the end."""
    ends = torch.as_tensor(ends)
    return ends[:, None] + torch.arange(1, horizon + 1, device=ends.device)


def raw_inputs(base: torch.Tensor, ends: torch.Tensor, lookback: int) -> torch.Tensor:
    """Unscaled ``(B, lookback, 5)`` float64 features (see module doc) from ``base`` = candle_arrays."""
    w = base[input_rows(ends, lookback)]  # (B, L, 5)
    ref = base[ends, 3]  # log close of the decision candle
    return torch.cat([w[..., :4] - ref[:, None, None], w[..., 4:]], dim=-1)


def raw_targets(base: torch.Tensor, ends: torch.Tensor, horizon: int) -> torch.Tensor:
    """Unscaled ``(B, horizon, 4)`` float64 targets: log(future OHLC / close of the decision candle)."""
    return base[target_rows(ends, horizon)][..., :4] - base[ends, 3][:, None, None]


@dataclass
class Scaler:
    """Means and stds of the features (``(5,)``) and targets (``(horizon, 4)``), float64 tensors."""

    x_mean: torch.Tensor
    x_std: torch.Tensor
    y_mean: torch.Tensor
    y_std: torch.Tensor

    @classmethod
    def fit(cls, base: torch.Tensor, ends: torch.Tensor, lookback: int, horizon: int,
            chunk: int = 4096) -> "Scaler":
        """Fit on the windows ending at ``ends`` (the TRAINING windows) and nothing else."""
        if len(ends) == 0:
            raise ValueError("cannot fit a scaler on zero windows")
        xs = torch.zeros(N_FEATURES, dtype=torch.float64, device=base.device)
        xq = torch.zeros_like(xs)
        ys = torch.zeros(horizon, 4, dtype=torch.float64, device=base.device)
        yq = torch.zeros_like(ys)
        for part in torch.as_tensor(ends, device=base.device).split(chunk):
            x = raw_inputs(base, part, lookback)
            y = raw_targets(base, part, horizon)
            xs += x.sum(dim=(0, 1))
            xq += (x * x).sum(dim=(0, 1))
            ys += y.sum(dim=0)
            yq += (y * y).sum(dim=0)
        n = len(ends)
        x_mean, y_mean = xs / (n * lookback), ys / n
        x_std = (xq / (n * lookback) - x_mean**2).clamp(min=0).sqrt()
        y_std = (yq / n - y_mean**2).clamp(min=0).sqrt()
        # a constant feature (e.g. flat volume in a hand-made series) is left unscaled
        x_std = torch.where(x_std > 1e-12, x_std, torch.ones_like(x_std))
        y_std = torch.where(y_std > 1e-12, y_std, torch.ones_like(y_std))
        return cls(x_mean.cpu(), x_std.cpu(), y_mean.cpu(), y_std.cpu())

    def inputs(self, base: torch.Tensor, ends: torch.Tensor, lookback: int) -> torch.Tensor:
        """Scaled float32 model inputs ``(B, lookback, 5)``."""
        x = raw_inputs(base, ends, lookback)
        return ((x - self.x_mean.to(x.device)) / self.x_std.to(x.device)).float()

    def targets(self, base: torch.Tensor, ends: torch.Tensor, horizon: int) -> torch.Tensor:
        """Scaled float32 training targets ``(B, horizon, 4)``."""
        y = raw_targets(base, ends, horizon)
        return ((y - self.y_mean.to(y.device)) / self.y_std.to(y.device)).float()

    def to_prices(self, scaled: torch.Tensor, ref_close: torch.Tensor) -> torch.Tensor:
        """Inverse transform: scaled ``(B, H, 4)`` outputs → float64 prices ``ref_close · exp(log ratio)``."""
        y = scaled.double() * self.y_std.to(scaled.device) + self.y_mean.to(scaled.device)
        return ref_close.double()[:, None, None] * torch.exp(y)

    def to_dict(self) -> dict:
        """Plain lists, for the checkpoint."""
        return {k: getattr(self, k).tolist() for k in ("x_mean", "x_std", "y_mean", "y_std")}

    @classmethod
    def from_dict(cls, d: dict) -> "Scaler":
        return cls(*(torch.tensor(d[k], dtype=torch.float64) for k in ("x_mean", "x_std", "y_mean", "y_std")))
