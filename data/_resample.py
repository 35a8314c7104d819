"""Aggregate candles to a longer timeframe (1m → 5m, 1h, ...)."""
from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from ._errors import GruowError
from ._schema import COLUMNS, candles_meta, check_schema
from ._time import timeframe_seconds

log = logging.getLogger(__name__)

_NS = 1_000_000_000
_WEEK_OFFSET_NS = 4 * 86400 * _NS  # 1970-01-01 was a Thursday; weekly candles open on Monday


def resample(candles: pd.DataFrame, timeframe: str, *, partial: bool = False) -> pd.DataFrame:
    """Candles aggregated to ``timeframe``, each labelled by its OPEN time.

    Buckets are aligned to the epoch (5m candles open at :00, :05, ...; 1w candles on Monday
    00:00 UTC, as exchanges do). Per bucket: open = first open, high = max high, low = min low,
    close = last close, volume = sum. A bucket with no candle is left out (a gap stays a gap).
    A bucket missing some of its source candles (at a gap, or the still-forming last one) is
    dropped unless ``partial=True``, since its high/low/close would be wrong.
    ``timeframe`` must be a whole multiple of the source timeframe.
    """
    check_schema(candles)
    meta = candles_meta(candles)
    src = timeframe_seconds(meta["timeframe"])
    dst = timeframe_seconds(timeframe)
    if dst < src or dst % src:
        raise GruowError(f"cannot resample {meta['timeframe']} candles to {timeframe}: "
                         f"it must be a whole multiple of {meta['timeframe']}")
    per_bucket = dst // src
    t = candles.index.as_unit("ns").asi8
    offset = _WEEK_OFFSET_NS if dst % (7 * 86400) == 0 else 0
    step = dst * _NS
    keys = (t - offset) // step * step + offset
    if len(t):
        starts = np.concatenate([[0], np.flatnonzero(np.diff(keys)) + 1])
    else:
        starts = np.array([], dtype=np.int64)
    stops = np.append(starts[1:], len(t)).astype(np.int64)
    v = candles[COLUMNS].to_numpy()
    if len(starts):
        out = np.column_stack([
            v[starts, 0],
            np.maximum.reduceat(v[:, 1], starts),
            np.minimum.reduceat(v[:, 2], starts),
            v[stops - 1, 3],
            np.add.reduceat(v[:, 4], starts),
        ])
    else:
        out = np.empty((0, 5))
    complete = (stops - starts) == per_bucket
    keep = np.ones(len(starts), dtype=bool) if partial else complete
    if not partial and (~complete).any():
        log.info("resample to %s: dropped %d incomplete bucket(s)", timeframe, int((~complete).sum()))
    idx = pd.DatetimeIndex(pd.to_datetime(keys[starts][keep], unit="ns", utc=True), name="timestamp")
    df = pd.DataFrame(out[keep], columns=COLUMNS, index=idx)
    df.attrs = {**meta, "timeframe": timeframe}
    df.attrs.pop("report", None)
    return df
