"""Candles: import, validate, store, download and resample minute OHLCV data.

Public API (import from ``data``)::

    from data import read_candles, CandleStore, download, resample, segments, GruowError

Every function speaks one schema (see ``data._schema``): a DataFrame indexed by a tz-aware UTC
``DatetimeIndex`` named ``timestamp`` holding candle OPEN times, float64 columns
``open high low close volume`` (prices in quote currency, volume in base currency),
metadata ``exchange``/``symbol``/``timeframe`` in ``df.attrs``.
"""
from ._errors import GruowError
from ._io import atomic_path, atomic_write_text
from ._schema import COLUMNS, PRICE_COLUMNS, candles_hash, candles_meta, check_schema, make_candles, segments
from ._time import (
    check_range,
    seconds_to_timeframe,
    timeframe_seconds,
    timeframe_to_timedelta,
    to_utc,
)
from ._import import read_candles
from ._resample import resample
from ._store import CandleStore
from ._validate import ValidationReport, validate
from .synthetic import synthetic_candles
from ._download import download, make_exchange, normalize_symbol, parse_since
from ._replay_server import Faults, ReplayServer

__all__ = [
    "COLUMNS",
    "CandleStore",
    "Faults",
    "ReplayServer",
    "PRICE_COLUMNS",
    "GruowError",
    "atomic_path",
    "atomic_write_text",
    "candles_hash",
    "candles_meta",
    "check_range",
    "check_schema",
    "download",
    "make_candles",
    "make_exchange",
    "normalize_symbol",
    "parse_since",
    "read_candles",
    "resample",
    "seconds_to_timeframe",
    "segments",
    "synthetic_candles",
    "timeframe_seconds",
    "timeframe_to_timedelta",
    "to_utc",
    "validate",
    "ValidationReport",
]
