"""Batch inference: every window of a candle frame in one vectorised pass, cached on disk."""
from __future__ import annotations

import copy
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from data import GruowError, atomic_path, candles_hash, candles_meta, check_schema, segments

from ._checkpoint import Checkpoint, load_checkpoint
from ._config import default_batch_size, inference_threads, resolve_device, torch_threads
from ._features import TARGET_FIELDS, candle_arrays, require_windows
from ._progress import progress_bar

log = logging.getLogger(__name__)


def forecast_columns(horizon: int = 8) -> list[str]:
    """``["ref_close", "open_1", "high_1", "low_1", "close_1", ..., "close_<horizon>"]``."""
    return ["ref_close"] + [f"{f}_{h}" for h in range(1, horizon + 1) for f in TARGET_FIELDS]


FORECAST_COLUMNS = forecast_columns(8)


def forecast(
    checkpoint: Checkpoint | Path | str,
    candles: pd.DataFrame,
    *,
    cache_dir: Path | None = None,
    batch_size: int | None = None,
    device: str | None = None,
    progress: bool = True,
) -> pd.DataFrame:
    """Forecast the next ``horizon`` candles at every decision time of ``candles``.

    Returns a DataFrame indexed by the decision time ``t`` (``timestamp``, tz-aware UTC) = the
    open time of the LAST input candle, one row for every candle with ``lookback - 1`` gap-free
    candles before it (the first row of a segment is its 128th candle). Columns
    :data:`FORECAST_COLUMNS`: ``ref_close`` = close of candle ``t``; ``<field>_<h>`` = predicted
    open/high/low/close (quote currency) of the candle opening at ``t + h·timeframe``. Row ``t``
    uses candles up to and including ``t`` only, so a decision at the close of ``t`` may use it.

    Windows are gathered with tensor indexing and run through the model ``batch_size`` at a
    time under ``torch.inference_mode()`` (no Python loop per window); ``None`` = 4096 on a GPU,
    256 on a CPU (faster there, see ``_config.default_batch_size``). With ``cache_dir`` the
    result is stored as ``forecast-<checkpoint hash>-<data hash>.parquet`` (atomic write) and a
    second call over the same candles just reads it back. ``device`` ``None`` = cuda if
    available, else cpu. Raises :class:`GruowError` if no candle has enough history, or the
    candles' timeframe differs from the one the model was trained on.
    """
    ckpt = checkpoint if isinstance(checkpoint, Checkpoint) else load_checkpoint(checkpoint)
    check_schema(candles)
    meta = candles_meta(candles)
    if meta["timeframe"] != ckpt.timeframe:
        raise GruowError(f"the candles are {meta['timeframe']} but model {ckpt.name} was trained on "
                         f"{ckpt.timeframe} candles; resample them or use a {meta['timeframe']} model")
    dev = resolve_device(device)
    batch_size = default_batch_size(dev) if batch_size is None else int(batch_size)
    if batch_size < 1:
        raise GruowError(f"batch_size {batch_size} must be positive")

    cache_file = None
    if cache_dir is not None:
        cache_file = Path(cache_dir) / f"forecast-{ckpt.hash[:16]}-{candles_hash(candles)[:16]}.parquet"
        if cache_file.is_file():
            try:
                out = pd.read_parquet(cache_file)
                log.debug("forecast cache hit %s", cache_file)
                return _label(out, ckpt, meta)
            except Exception as exc:  # a damaged cache is recomputed, never trusted
                log.warning("ignoring unreadable forecast cache %s (%s)", cache_file, exc)

    lookback, horizon = ckpt.lookback, ckpt.horizon
    ends = require_windows(segments(candles, meta["timeframe"]), lookback, 0, "forecasting")

    out = np.empty((len(ends), 1 + 4 * horizon), dtype=np.float64)
    with torch_threads(inference_threads()), torch.inference_mode():
        model = ckpt.model if dev.type == "cpu" else copy.deepcopy(ckpt.model).to(dev)
        model.eval()
        base = torch.from_numpy(candle_arrays(candles)).to(dev)
        close = torch.from_numpy(candles["close"].to_numpy(np.float64, copy=True)).to(dev)
        ends_t = torch.from_numpy(ends).to(dev)
        with progress_bar(progress and len(ends) >= 20_000) as bar:  # only long ranges take seconds
            task = bar.add_task("forecasting", total=len(ends), info="windows")
            for i0 in range(0, len(ends), batch_size):
                e = ends_t[i0:i0 + batch_size]
                prices = ckpt.scaler.to_prices(model(ckpt.scaler.inputs(base, e, lookback)), close[e])
                out[i0:i0 + len(e), 0] = close[e].cpu().numpy()
                out[i0:i0 + len(e), 1:] = prices.reshape(len(e), -1).cpu().numpy()
                bar.advance(task, len(e))

    frame = pd.DataFrame(out, index=candles.index[ends], columns=forecast_columns(horizon))
    if cache_file is not None:
        with atomic_path(cache_file) as tmp:
            frame.to_parquet(tmp)
    return _label(frame, ckpt, meta)


def _label(frame: pd.DataFrame, ckpt: Checkpoint, meta: dict) -> pd.DataFrame:
    frame.index.name = "timestamp"
    frame.attrs = {
        "symbol": meta["symbol"],
        "exchange": meta["exchange"],
        "timeframe": meta["timeframe"],
        "model": ckpt.name,
        "checkpoint": ckpt.hash,
        "lookback": ckpt.lookback,
        "horizon": ckpt.horizon,
    }
    return frame
