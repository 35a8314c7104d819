"""The one candle schema every part of GRU-ow speaks.

A candle frame is a ``pandas.DataFrame``:

- index: tz-aware UTC ``DatetimeIndex`` named ``timestamp`` = candle OPEN time, sorted, unique;
- columns: ``open high low close volume``, float64; prices in quote currency (USDC/USDT),
  volume in base currency (ETH);
- ``df.attrs``: ``{"exchange": str, "symbol": "ETH/USDC", "timeframe": "1m"}`` (plus optional
  extras such as ``"repairs"``). Use :func:`candles_meta` to read them.

Gaps (missing candles) are kept as gaps: consumers split on them with :func:`segments`.
"""
from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd

from ._errors import GruowError
from ._time import timeframe_to_timedelta

COLUMNS = ["open", "high", "low", "close", "volume"]
PRICE_COLUMNS = ["open", "high", "low", "close"]


def make_candles(
    df: pd.DataFrame,
    *,
    exchange: str = "unknown",
    symbol: str = "ETH/USDC",
    timeframe: str = "1m",
    **extra,
) -> pd.DataFrame:
    """Return ``df`` coerced to the candle schema, with metadata attached.

    ``df`` must have a DatetimeIndex (or a ``timestamp`` column) and the five OHLCV columns.
    Does not validate prices; see ``data.validate`` for that.
    """
    out = df
    if not isinstance(out.index, pd.DatetimeIndex):
        if "timestamp" not in out.columns:
            raise GruowError("candles need a DatetimeIndex or a 'timestamp' column")
        out = out.set_index("timestamp")
    missing = [c for c in COLUMNS if c not in out.columns]
    if missing:
        raise GruowError(f"candles are missing column(s) {', '.join(missing)}")
    out = out[COLUMNS].astype("float64")
    idx = pd.DatetimeIndex(out.index)
    idx = idx.tz_localize("UTC") if idx.tz is None else idx.tz_convert("UTC")
    out.index = idx.as_unit("ns").rename("timestamp")
    out.attrs = {"exchange": exchange, "symbol": symbol, "timeframe": timeframe, **extra}
    return out


def candles_meta(df: pd.DataFrame) -> dict:
    """The metadata of a candle frame (exchange, symbol, timeframe, ...), as a new dict."""
    meta = dict(df.attrs)
    meta.setdefault("exchange", "unknown")
    meta.setdefault("symbol", "ETH/USDC")
    meta.setdefault("timeframe", "1m")
    return meta


def check_schema(df: pd.DataFrame) -> None:
    """Raise ``ValueError`` if ``df`` does not follow the candle schema (a programming error)."""
    if not isinstance(df.index, pd.DatetimeIndex) or str(df.index.tz) != "UTC":
        raise ValueError("candle index must be a tz-aware UTC DatetimeIndex")
    if df.index.name != "timestamp":
        raise ValueError("candle index must be named 'timestamp'")
    if list(df.columns[:5]) != COLUMNS:
        raise ValueError(f"candle columns must start with {COLUMNS}, got {list(df.columns)}")
    if not df.index.is_monotonic_increasing or not df.index.is_unique:
        raise ValueError("candle index must be sorted and unique")


def segments(df: pd.DataFrame, timeframe: str | None = None) -> list[tuple[int, int]]:
    """Contiguous runs of candles without gaps, as ``[(start_row, stop_row), ...]`` (stop exclusive).

    Two neighbouring rows belong to the same segment iff their open times differ by exactly one
    timeframe. Windows built for the model never span two segments.
    """
    n = len(df)
    if n == 0:
        return []
    step = timeframe_to_timedelta(timeframe or candles_meta(df)["timeframe"])
    t = df.index.asi8
    breaks = np.flatnonzero(np.diff(t) != step.value) + 1
    starts = np.concatenate([[0], breaks])
    stops = np.concatenate([breaks, [n]])
    return [(int(a), int(b)) for a, b in zip(starts, stops)]


def candles_hash(df: pd.DataFrame) -> str:
    """sha256 identity of candle data: timeframe, open times and OHLCV values (not attrs or file
    names). Keys the forecast cache and names the data in checkpoints and run configs."""
    h = hashlib.sha256()
    h.update(candles_meta(df)["timeframe"].encode())
    h.update(np.ascontiguousarray(df.index.as_unit("ns").asi8).tobytes())
    h.update(np.ascontiguousarray(df[COLUMNS].to_numpy(np.float64)).tobytes())
    return h.hexdigest()
