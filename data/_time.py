"""Time and timeframe helpers. Every timestamp in GRU-ow is a tz-aware UTC pandas Timestamp
holding a candle's OPEN time; every timeframe is a ccxt-style string ("1m", "5m", "1h", "1d")."""
from __future__ import annotations

import re

import pandas as pd

from ._errors import GruowError

_TF_RE = re.compile(r"^(\d+)([smhdw])$")
_TF_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def timeframe_seconds(timeframe: str) -> int:
    """Length of one candle in seconds: ``"5m"`` → 300. Raises GruowError on a bad string."""
    m = _TF_RE.match(str(timeframe).strip())
    if not m or int(m.group(1)) <= 0:
        raise GruowError(f"timeframe {timeframe!r} must look like 1m, 5m, 15m, 1h, 4h or 1d")
    return int(m.group(1)) * _TF_UNIT_S[m.group(2)]


def timeframe_to_timedelta(timeframe: str) -> pd.Timedelta:
    """``"1m"`` → ``Timedelta("1min")``."""
    return pd.Timedelta(seconds=timeframe_seconds(timeframe))


def seconds_to_timeframe(seconds: int) -> str:
    """Inverse of :func:`timeframe_seconds`, choosing the largest whole unit: 300 → ``"5m"``."""
    for unit in ("w", "d", "h", "m", "s"):
        size = _TF_UNIT_S[unit]
        if seconds % size == 0 and seconds >= size:
            return f"{seconds // size}{unit}"
    raise GruowError(f"candle spacing of {seconds} s is not a usable timeframe")


def to_utc(value, option: str = "time") -> pd.Timestamp:
    """Parse an ISO date/datetime (or Timestamp/datetime) to a tz-aware UTC Timestamp.

    A naive value means UTC. ``option`` names the CLI option or field in the error message.
    """
    if isinstance(value, pd.Timestamp):
        ts = value
    else:
        try:
            ts = pd.Timestamp(value)
        except (ValueError, TypeError):
            ts = None
        if ts is None or ts is pd.NaT:
            raise GruowError(
                f"{option} {value!r} must be an ISO date or datetime, e.g. 2025-06-01 or "
                "2025-06-01T12:30 (naive means UTC)"
            )
    if ts.tzinfo is None:
        return ts.tz_localize("UTC")
    return ts.tz_convert("UTC")


def check_range(start, end, *, allow_future: bool = False) -> tuple[pd.Timestamp | None, pd.Timestamp | None]:
    """Validate a half-open ``[start, end)`` range given as strings/Timestamps/None."""
    s = to_utc(start, "--start") if start is not None else None
    e = to_utc(end, "--end") if end is not None else None
    if s is not None and e is not None and e <= s:
        raise GruowError(f"--end {e.isoformat()} must be after --start {s.isoformat()}")
    if not allow_future and s is not None and s > pd.Timestamp.now(tz="UTC"):
        raise GruowError(f"--start {s.isoformat()} is in the future; it must be before now")
    return s, e
