import pandas as pd
import pytest

from data import GruowError, check_range, make_candles, segments, timeframe_seconds, to_utc


def test_timeframes():
    assert timeframe_seconds("1m") == 60
    assert timeframe_seconds("5m") == 300
    assert timeframe_seconds("1h") == 3600
    with pytest.raises(GruowError, match="timeframe"):
        timeframe_seconds("5 minutes")


def test_naive_time_means_utc():
    assert to_utc("2025-06-01T12:30") == pd.Timestamp("2025-06-01T12:30Z")
    assert to_utc("2025-06-01T14:30+02:00") == pd.Timestamp("2025-06-01T12:30Z")
    with pytest.raises(GruowError, match="--start"):
        to_utc("yesterday-ish", "--start")


def test_range_checks():
    with pytest.raises(GruowError, match="must be after"):
        check_range("2025-06-02", "2025-06-01")
    with pytest.raises(GruowError, match="future"):
        check_range("2999-01-01", None)


def test_segments_split_on_gaps():
    idx = pd.to_datetime(["2025-01-01 00:00", "2025-01-01 00:01", "2025-01-01 00:05", "2025-01-01 00:06"], utc=True)
    df = make_candles(pd.DataFrame({c: 1.0 for c in ["open", "high", "low", "close", "volume"]}, index=idx), timeframe="1m")
    assert segments(df) == [(0, 2), (2, 4)]
