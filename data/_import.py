"""PROVISIONAL minimal reader (standard header CSV only) — to be replaced by the full importer."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from ._errors import GruowError
from ._schema import make_candles


def read_candles(path, *, symbol: str = "ETH/USDC", exchange: str = "unknown", timeframe: str | None = None):
    path = Path(path)
    if not path.exists():
        raise GruowError(f"{path}: file not found")
    df = pd.read_csv(path)
    df["timestamp"] = pd.to_datetime(df["timestamp"], utc=True)
    return make_candles(df, exchange=exchange, symbol=symbol, timeframe=timeframe or "1m")
