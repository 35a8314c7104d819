"""Forecast scores against naive baselines, on data the model did not train on.

Baselines, for a decision at the close of candle ``t`` (close ``c_t``) and horizon ``h``:

- persistence: every future open/high/low/close = ``c_t``;
- drift: ``c_t · exp(μ·h)`` for every field, where ``μ = (log c_t − log c_{t−L+1}) / (L−1)`` is
  the mean one-candle log return over the model's own lookback window (the trend of the input
  window extrapolated; it predicts no range);
- trailing range: the predicted high−low range of every future candle = the mean high−low of
  the ``L`` input candles.

Directional accuracy counts, among windows whose actual close at ``t+h`` differs from ``c_t``,
the share where the predicted close is on the same side of ``c_t`` (a forecast equal to ``c_t``
counts as a miss), with a 95 % Wilson score interval. The interval treats windows as
independent; neighbouring windows' ``h``-step moves overlap for ``h`` > 1, so the true
uncertainty is wider than shown there.
"""
from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import numpy as np
import pandas as pd

from data import atomic_write_text, candles_hash, candles_meta, segments, timeframe_to_timedelta

from ._checkpoint import Checkpoint, load_checkpoint
from ._features import require_windows
from ._inference import forecast
from ._plots import plot_forecast, plot_loss_curves

log = logging.getLogger(__name__)

Z95 = 1.959963984540054
FIELDS = {"close": 3, "high": 1, "low": 2}


def wilson_interval(hits: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a proportion ``hits/n``; ``(nan, nan)`` when ``n`` is 0."""
    if n == 0:
        return math.nan, math.nan
    p = hits / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return centre - half, centre + half


def _err(pred: np.ndarray, actual: np.ndarray) -> dict:
    e = pred - actual
    return {"mae": float(np.mean(np.abs(e))), "rmse": float(np.sqrt(np.mean(e * e)))}


def _direction(pred_close: np.ndarray, actual_close: np.ndarray, ref: np.ndarray) -> dict:
    move = np.sign(actual_close - ref)
    moved = move != 0
    n = int(moved.sum())
    hits = int((np.sign(pred_close - ref)[moved] == move[moved]).sum())
    lo, hi = wilson_interval(hits, n)
    return {"accuracy": hits / n if n else math.nan, "ci95": [lo, hi], "n": n, "flat": int((~moved).sum())}


def score_windows(pred: np.ndarray, actual: np.ndarray, ref: np.ndarray, drift: np.ndarray,
                  trailing_range: np.ndarray) -> list[dict]:
    """Per-horizon scores of forecasts against actual candles and the baselines (module doc).

    ``pred``/``actual``: ``(B, H, 4)`` open/high/low/close prices; ``ref``: ``(B,)`` close at the
    decision; ``drift``: ``(B, H)`` drift-baseline prices; ``trailing_range``: ``(B,)``.
    Errors are in quote currency. Returns one dict per horizon ``h = 1 … H``.
    """
    rows = []
    for k in range(pred.shape[1]):
        row: dict = {"h": k + 1}
        for field, j in FIELDS.items():
            row[field] = {
                "model": _err(pred[:, k, j], actual[:, k, j]),
                "persistence": _err(ref, actual[:, k, j]),
                "drift": _err(drift[:, k], actual[:, k, j]),
            }
        row["direction"] = {
            "model": _direction(pred[:, k, 3], actual[:, k, 3], ref),
            "drift": _direction(drift[:, k], actual[:, k, 3], ref),
        }
        actual_range = actual[:, k, 1] - actual[:, k, 2]
        row["range"] = {
            "model": _err(pred[:, k, 1] - pred[:, k, 2], actual_range),
            "trailing": _err(trailing_range, actual_range),
            "mean_actual": float(actual_range.mean()),
        }
        rows.append(row)
    return rows


def baselines(candles: pd.DataFrame, ends: np.ndarray, lookback: int, horizon: int):
    """``(actual (B,H,4), ref (B,), drift (B,H), trailing_range (B,))`` for windows ending at ``ends``."""
    ohlc = candles[["open", "high", "low", "close"]].to_numpy(np.float64)
    actual = ohlc[ends[:, None] + np.arange(1, horizon + 1)]
    ref = ohlc[ends, 3]
    logc = np.log(ohlc[:, 3])
    mu = (logc[ends] - logc[ends - lookback + 1]) / (lookback - 1)
    drift = ref[:, None] * np.exp(mu[:, None] * np.arange(1, horizon + 1))
    csum = np.concatenate([[0.0], np.cumsum(ohlc[:, 1] - ohlc[:, 2])])
    trailing = (csum[ends + 1] - csum[ends + 1 - lookback]) / lookback
    return actual, ref, drift, trailing


def summarize(horizons: list[dict]) -> dict:
    """Means over horizons: close MAE of model/persistence/drift, skill = 1 − model/persistence."""
    mae = {m: float(np.mean([r["close"][m]["mae"] for r in horizons])) for m in ("model", "persistence", "drift")}
    hl = {m: float(np.mean([(r["high"][m]["mae"] + r["low"][m]["mae"]) / 2 for r in horizons]))
          for m in ("model", "persistence", "drift")}
    return {
        "close_mae": mae,
        "close_skill_vs_persistence": 1 - mae["model"] / mae["persistence"] if mae["persistence"] else math.nan,
        "high_low_mae": hl,
        "high_low_skill_vs_persistence": 1 - hl["model"] / hl["persistence"] if hl["persistence"] else math.nan,
        "direction_accuracy": float(np.nanmean([r["direction"]["model"]["accuracy"] for r in horizons])),
    }


def training_overlap(ckpt: Checkpoint, symbol: str, start, end) -> tuple[pd.Timestamp, pd.Timestamp] | None:
    """The part ``[lo, hi)`` of ``[start, end)`` that lies inside the data ``ckpt`` was trained on
    (its ``data`` range, train/val/test together, same symbol), or None when they do not overlap.

    Scores or backtests there are in-sample: optimistic. ``start``/``end``: tz-aware UTC.
    """
    trained = ckpt.meta["data"]
    t_start, t_end = pd.Timestamp(trained["start"]), pd.Timestamp(trained["end"])
    start, end = pd.Timestamp(start), pd.Timestamp(end)
    if trained.get("symbol") != symbol or not (start < t_end and t_start < end):
        return None
    return max(start, t_start), min(end, t_end)


def evaluate(
    checkpoint: Checkpoint | Path | str,
    candles: pd.DataFrame,
    *,
    out_dir: Path | None = None,
    cache_dir: Path | None = None,
    batch_size: int | None = None,
    device: str | None = None,
    progress: bool = True,
) -> dict:
    """Score a model on ``candles`` against persistence, drift and trailing-range baselines.

    Every window with ``lookback`` input and ``horizon`` actual candles inside one gap-free
    segment is scored. Logs a warning if the candles overlap the model's training range (its
    scores there are optimistic) and if the checkpoint is an unfinished training run (see
    :attr:`Checkpoint.finished`; ``model.finished``/``model.status`` in the result say which).
    Returns a JSON-ready dict: ``model``, ``data``, ``windows``,
    ``overlaps_training``, ``horizons`` (see :func:`score_windows`) and ``summary``. With
    ``out_dir``, also writes ``evaluation.json``, ``loss_curves.png`` and ``forecast.png`` there
    (listed under ``files``).
    """
    ckpt = checkpoint if isinstance(checkpoint, Checkpoint) else load_checkpoint(checkpoint)
    if not ckpt.finished:
        log.warning("%s", ckpt.unfinished_warning())
    meta = candles_meta(candles)
    lookback, horizon = ckpt.lookback, ckpt.horizon
    ends = require_windows(segments(candles, meta["timeframe"]), lookback, horizon, "evaluation")
    fc = forecast(ckpt, candles, cache_dir=cache_dir, batch_size=batch_size, device=device, progress=progress)
    rows = fc.index.get_indexer(candles.index[ends])
    pred = fc.to_numpy()[rows, 1:].reshape(len(ends), horizon, 4)
    actual, ref, drift, trailing = baselines(candles, ends, lookback, horizon)
    horizons = score_windows(pred, actual, ref, drift, trailing)

    step = timeframe_to_timedelta(meta["timeframe"])
    start, end = candles.index[0], candles.index[-1] + step
    trained = ckpt.meta["data"]
    t_start, t_end = pd.Timestamp(trained["start"]), pd.Timestamp(trained["end"])
    overlaps = training_overlap(ckpt, meta["symbol"], start, end) is not None
    if overlaps:
        log.warning("the evaluation range %s … %s overlaps model %s's training range %s … %s: "
                    "scores there are optimistic", start.isoformat(), end.isoformat(), ckpt.name,
                    t_start.isoformat(), t_end.isoformat())
    result = {
        "model": {"name": ckpt.name, "path": str(ckpt.path) if ckpt.path else None, "sha256": ckpt.hash,
                  "trained_on": trained, "best_epoch": ckpt.meta.get("best_epoch"), "finished": ckpt.finished,
                  "status": ckpt.describe()},
        "data": {"symbol": meta["symbol"], "exchange": meta["exchange"], "timeframe": meta["timeframe"],
                 "start": start.isoformat(), "end": end.isoformat(), "rows": len(candles),
                 "sha256": candles_hash(candles)},
        "windows": int(len(ends)),
        "overlaps_training": overlaps,
        "units": "MAE/RMSE in quote currency per candle; direction accuracy as a fraction",
        "baselines": {
            "persistence": "every future price = close at the decision time",
            "drift": f"close_t * exp(mu*h), mu = mean 1-candle log return over the {lookback} input candles",
            "trailing": f"future high-low range = mean high-low of the {lookback} input candles",
        },
        "horizons": horizons,
        "summary": summarize(horizons),
    }
    if out_dir is not None:
        result["files"] = write_report(result, ckpt, candles, pred, ends, Path(out_dir))
    return result


def _finite(obj):
    """NaN/inf → None, recursively, so the JSON is standard."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def write_report(result: dict, ckpt: Checkpoint, candles: pd.DataFrame, pred: np.ndarray, ends: np.ndarray,
                 out_dir: Path) -> list[str]:
    """Write ``evaluation.json``, ``loss_curves.png`` and ``forecast.png`` (the last scored window)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    L, H = ckpt.lookback, ckpt.horizon
    e = int(ends[-1])
    files = [
        plot_loss_curves(ckpt.meta.get("history", []), out_dir / "loss_curves.png", title=f"{ckpt.name}: loss"),
        plot_forecast(candles.iloc[e - L + 1:e + 1], candles.iloc[e + 1:e + 1 + H], pred[-1],
                      out_dir / "forecast.png",
                      title=f"{ckpt.name}: {candles_meta(candles)['symbol']} forecast at "
                            f"{candles.index[e].isoformat()} vs actual"),
    ]
    files.insert(0, out_dir / "evaluation.json")
    names = [str(p) for p in files]
    atomic_write_text(out_dir / "evaluation.json", json.dumps(_finite({**result, "files": names}), indent=2) + "\n")
    return names
