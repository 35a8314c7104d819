"""A fast backtrader feed for GRU-ow candle frames.

backtrader's ``PandasData`` reads every value with ``DataFrame.iloc`` (tens of microseconds per
value). :class:`CandleFeed` keeps its interface but loads whole numpy columns into the line
buffers at once when preloading, and reads plain lists when not preloading.
"""
from __future__ import annotations

from array import array

import backtrader as bt
import numpy as np
import pandas as pd

from data import candles_meta, timeframe_seconds

_EPOCH_ORDINAL = 719163.0  # datetime(1970, 1, 1).toordinal(): backtrader counts days from year 1
_NS_PER_DAY = 86_400 * 10**9


def bt_datenums(index: pd.DatetimeIndex) -> np.ndarray:
    """backtrader's float day numbers (``bt.date2num``) for a tz-aware UTC index, vectorised."""
    ns = index.as_unit("ns").asi8
    days, rem = np.divmod(ns, _NS_PER_DAY)
    return days.astype(np.float64) + _EPOCH_ORDINAL + rem.astype(np.float64) / _NS_PER_DAY


def _timeframe_and_compression(timeframe: str) -> tuple[int, int]:
    secs = timeframe_seconds(timeframe)
    if secs % 86400 == 0:
        return bt.TimeFrame.Days, secs // 86400
    if secs % 60 == 0:
        return bt.TimeFrame.Minutes, secs // 60
    return bt.TimeFrame.Seconds, secs


class CandleFeed(bt.feeds.PandasData):
    """Candles (GRU-ow schema) as a backtrader feed, declared with their real timeframe.

    Build it with :func:`make_feed`, which sets ``timeframe``/``compression`` from the frame's
    metadata (1m -> ``TimeFrame.Minutes``, compression 1; never backtrader's daily default).
    """

    def start(self):
        super().start()
        df = self.p.dataname
        self._cols = {name: df[name].to_numpy(np.float64) for name in ("open", "high", "low", "close", "volume")}
        self._dt = bt_datenums(df.index)
        self._n = len(df)
        self._lists = None

    def preload(self):
        # one bulk copy per line instead of one iloc call per value
        lines = self.lines
        for name, values in self._cols.items():
            getattr(lines, name).array.extend(array("d", values))
        lines.openinterest.array.extend(array("d", bytes(8 * self._n)))
        lines.datetime.array.extend(array("d", self._dt))
        self._idx = self._n
        self._last()
        self.home()

    def _load(self):
        self._idx += 1
        if self._idx >= self._n:
            return False
        if self._lists is None:
            self._lists = {k: v.tolist() for k, v in self._cols.items()}
            self._dtl = self._dt.tolist()
        i = self._idx
        lines = self.lines
        for name, values in self._lists.items():
            getattr(lines, name)[0] = values[i]
        lines.openinterest[0] = 0.0
        lines.datetime[0] = self._dtl[i]
        return True


def make_feed(candles: pd.DataFrame) -> CandleFeed:
    """A :class:`CandleFeed` over ``candles`` with timeframe/compression from ``candles.attrs``."""
    tf, comp = _timeframe_and_compression(candles_meta(candles)["timeframe"])
    return CandleFeed(dataname=candles, timeframe=tf, compression=comp, openinterest=None)
