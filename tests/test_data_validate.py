"""Validation rules and resampling on small hand-made candles with known answers."""
import numpy as np
import pandas as pd
import pytest

from data import GruowError, make_candles, resample, validate
from data._validate import (
    RULE_NAN,
    RULE_NEG_VOLUME,
    RULE_NONPOSITIVE,
    RULE_NO_TIME,
    RULE_OFF_GRID,
    RULE_SWAP,
    RULE_WIDEN,
    gap_stats,
)

COLS = ["open", "high", "low", "close", "volume"]


def raw(times, rows):
    """A raw frame: open times (strings, naive = UTC) and OHLCV tuples, in the given order."""
    return pd.DataFrame(rows, columns=COLS, index=pd.DatetimeIndex(pd.to_datetime(times, utc=True), name="timestamp"))


def minutes(n, start="2025-01-01 00:00"):
    return [str(t) for t in pd.date_range(start, periods=n, freq="1min")]


def test_clean_candles_pass_unchanged():
    times = minutes(4)
    rows = [(10, 11, 9, 10.5, 1), (10.5, 12, 10, 11, 2), (11, 11.5, 10.5, 11.2, 0), (11.2, 11.3, 11, 11.1, 4)]
    out, rep = validate(raw(times, rows))
    assert rep.clean and rep.timeframe == "1m" and rep.rows_in == rep.rows_out == 4
    assert out.index.tz is not None and str(out.index.dtype) == "datetime64[ns, UTC]"
    np.testing.assert_array_equal(out.to_numpy(), np.array(rows, dtype=float))
    assert out.attrs["timeframe"] == "1m" and out.attrs["report"]["rows_out"] == 4


def test_impossible_rows_rejected_with_row_numbers():
    times = minutes(7) + [None]
    rows = [
        (10, 11, 9, 10, 1),
        (10, np.nan, 9, 10, 1),     # NaN price
        (10, 11, 9, 10, np.inf),    # infinite volume
        (0, 11, 9, 10, 1),          # price <= 0
        (10, 11, 9, 10, -0.5),      # negative volume
        (10, 11, 9, 10, 1),
        (10, 11, 9, 10, 1),
        (10, 11, 9, 10, 1),         # no timestamp
    ]
    out, rep = validate(raw(times, rows), rows=range(2, 10), row_kind="line")
    got = {(e["row"], e["rule"]) for e in rep.rejected}
    assert got == {(3, RULE_NAN), (4, RULE_NAN), (5, RULE_NONPOSITIVE), (6, RULE_NEG_VOLUME), (9, RULE_NO_TIME)}
    assert rep.nan_rows == 2 and rep.nonpositive_rows == 1 and rep.negative_volume_rows == 1
    assert rep.timeframe == "1m" and rep.rows_out == 3
    assert list(out.index.strftime("%H:%M")) == ["00:00", "00:05", "00:06"]
    # the rejected minutes are now a gap, and counted as such
    assert rep.gaps == 4 and rep.longest_gap_start == pd.Timestamp("2025-01-01 00:01Z")


def test_open_close_outside_high_low_widened_and_inverted_range_swapped():
    rows = [
        (10, 11, 9, 12, 1),      # close above high -> high 12
        (8, 11, 9, 10, 1),       # open below low -> low 8
        (10, 9, 11, 10.5, 1),    # high < low -> swapped to 11 / 9
        (10, 9.5, 10.5, 12, 1),  # swapped to 10.5 / 9.5, then widened: high 12
    ]
    out, rep = validate(raw(minutes(4), rows))
    np.testing.assert_array_equal(out["high"].to_numpy(), [12, 11, 11, 12])
    np.testing.assert_array_equal(out["low"].to_numpy(), [9, 8, 9, 9.5])
    np.testing.assert_array_equal(out["close"].to_numpy(), [12, 10, 10.5, 12])  # open/close never moved
    assert [(e["row"], e["rule"]) for e in rep.repaired] == [
        (1, RULE_WIDEN), (2, RULE_WIDEN), (3, RULE_SWAP), (4, RULE_SWAP), (4, RULE_WIDEN)]
    assert rep.rejected == []


def test_unsorted_sorted_and_duplicates_keep_last_in_file_order():
    times = ["2025-01-01 00:02", "2025-01-01 00:00", "2025-01-01 00:01", "2025-01-01 00:01", "2025-01-01 00:00"]
    rows = [(3, 3, 3, 3, 1), (1, 1, 1, 1, 1), (2, 2, 2, 2, 1), (2.5, 2.5, 2.5, 2.5, 1), (1.5, 1.5, 1.5, 1.5, 1)]
    out, rep = validate(raw(times, rows))
    assert rep.unsorted == 2  # 00:00 after 00:02, and 00:00 after 00:01
    assert rep.duplicates == 2
    assert out["close"].tolist() == [1.5, 2.5, 3]  # the later row of each duplicate wins
    assert out.index.is_monotonic_increasing and rep.rows_out == 3


def test_gaps_counted_with_longest_and_kept_by_default():
    times = ["2025-01-01 00:00", "2025-01-01 00:01", "2025-01-01 00:04", "2025-01-01 00:05", "2025-01-01 00:15"]
    out, rep = validate(raw(times, [(1, 1, 1, 1, 1)] * 5))
    assert rep.gaps == 2 + 9 and rep.gap_runs == 2
    assert rep.longest_gap == pd.Timedelta("10min")          # 00:05 -> 00:15 between candles
    assert rep.longest_gap_start == pd.Timestamp("2025-01-01 00:06Z")  # first missing candle
    assert rep.longest_gap_candles == 9
    assert len(out) == 5 and rep.filled == 0


def test_fill_gaps_inserts_flat_zero_volume_candles_at_previous_close():
    times = ["2025-01-01 00:00", "2025-01-01 00:03", "2025-01-01 00:04"]
    rows = [(10, 12, 9, 11, 5), (11, 13, 10, 12, 6), (12, 12, 12, 12, 1)]
    out, rep = validate(raw(times, rows), timeframe="1m", fill_gaps=True)
    assert rep.filled == 2 and rep.gaps == 2 and rep.rows_out == 5
    np.testing.assert_array_equal(out.loc["2025-01-01 00:01Z"].to_numpy(), [11, 11, 11, 11, 0])
    np.testing.assert_array_equal(out.loc["2025-01-01 00:02Z"].to_numpy(), [11, 11, 11, 11, 0])
    np.testing.assert_array_equal(out.iloc[3].to_numpy(), [11, 13, 10, 12, 6])
    assert rep.rule_counts()["missing candle: filled flat at the previous close, volume 0"] == 2


def test_timeframe_inferred_from_spacing_and_checked():
    times = [str(t) for t in pd.date_range("2025-01-01", periods=6, freq="5min")]
    times.pop(3)  # a gap does not confuse the inference
    _, rep = validate(raw(times, [(1, 1, 1, 1, 1)] * 5))
    assert rep.timeframe == "5m" and rep.gaps == 1
    _, rep = validate(raw(times, [(1, 1, 1, 1, 1)] * 5), timeframe="5m")
    assert rep.timeframe == "5m"
    with pytest.raises(GruowError, match="5m apart but --timeframe 1m"):
        validate(raw(times, [(1, 1, 1, 1, 1)] * 5), timeframe="1m")  # no two candles 1m apart
    with pytest.raises(GruowError, match="5m apart but --timeframe 15m"):
        validate(raw(times, [(1, 1, 1, 1, 1)] * 5), timeframe="15m")  # finer than declared
    # sparse data may be declared: mostly gaps, but some neighbours one timeframe apart
    sparse = ["2025-01-01 00:00", "2025-01-01 00:01", "2025-01-01 00:04", "2025-01-01 00:07", "2025-01-01 00:10"]
    _, rep = validate(raw(sparse, [(1, 1, 1, 1, 1)] * 5), timeframe="1m")
    assert rep.timeframe == "1m" and rep.gaps == 6
    with pytest.raises(GruowError, match="single candle"):
        validate(raw(times[:1], [(1, 1, 1, 1, 1)]))
    one, rep = validate(raw(times[:1], [(1, 1, 1, 1, 1)]), timeframe="1h")
    assert rep.timeframe == "1h" and len(one) == 1


def test_off_grid_open_time_rejected():
    times = minutes(4) + ["2025-01-01 00:04:30"]
    out, rep = validate(raw(times, [(1, 1, 1, 1, 1)] * 5))
    assert [(e["row"], e["rule"]) for e in rep.rejected] == [(5, RULE_OFF_GRID)]
    assert rep.off_grid_rows == 1 and len(out) == 4


def test_nothing_valid_is_an_error():
    with pytest.raises(GruowError, match="no valid candle"):
        validate(raw(minutes(2), [(np.nan, 1, 1, 1, 1), (-1, 1, 1, 1, 1)]), source="x.csv")


def test_report_to_dict_is_json_ready_and_limited():
    times = minutes(30)
    rows = [(10, 9, 11, 10, 1)] * 30  # every row swapped
    _, rep = validate(raw(times, rows))
    d = rep.to_dict(limit=5)
    assert len(d["repaired"]) == 5 and d["repaired_count"] == 30 and d["rules"] == {RULE_SWAP: 30}
    assert d["first"] == "2025-01-01T00:00:00+00:00" and d["longest_gap_s"] == 0


def test_gap_stats_on_ns_times():
    step = pd.Timedelta("5min").value
    t = pd.to_datetime(["2021-09-29 06:50", "2021-09-29 06:55", "2021-09-29 09:00"], utc=True).as_unit("ns").asi8
    g = gap_stats(t, step)
    assert g["missing"] == 24 and g["longest_gap"] == pd.Timedelta("2h05min")
    assert g["longest_gap_start"] == pd.Timestamp("2021-09-29 07:00Z")


# ---------------------------------------------------------------- resample

def one_minute(closes, start="2025-01-01 00:00", drop=()):
    idx = pd.date_range(start, periods=len(closes), freq="1min", tz="UTC")
    c = np.asarray(closes, dtype=float)
    df = pd.DataFrame({"open": c - 0.5, "high": c + 1, "low": c - 1, "close": c, "volume": np.arange(1, len(c) + 1.0)},
                      index=idx)
    df = df.drop(df.index[list(drop)])
    return make_candles(df, exchange="x", symbol="ETH/USDC", timeframe="1m")


def test_resample_ohlcv_aggregation_labelled_by_open_time():
    c = one_minute([10, 12, 8, 11, 9, 20, 21, 22, 23, 24], start="2025-01-01 00:00")
    r = resample(c, "5m")
    assert list(r.index) == [pd.Timestamp("2025-01-01 00:00Z"), pd.Timestamp("2025-01-01 00:05Z")]
    first = r.iloc[0]
    assert first["open"] == 9.5 and first["high"] == 13 and first["low"] == 7 and first["close"] == 9
    assert first["volume"] == 1 + 2 + 3 + 4 + 5
    assert r.iloc[1]["open"] == 19.5 and r.iloc[1]["close"] == 24 and r.iloc[1]["volume"] == 6 + 7 + 8 + 9 + 10
    assert r.attrs["timeframe"] == "5m" and r.attrs["exchange"] == "x"


def test_resample_aligns_to_epoch_and_drops_incomplete_buckets():
    # starts at 00:03: the 00:00 bucket has 2 of 5 minutes; 00:05 is complete; 00:10 has a gap
    c = one_minute(list(range(1, 13)), start="2025-01-01 00:03", drop=[9])
    r = resample(c, "5m")
    assert list(r.index) == [pd.Timestamp("2025-01-01 00:05Z")]
    assert r.iloc[0]["open"] == 2.5 and r.iloc[0]["close"] == 7
    p = resample(c, "5m", partial=True)
    assert list(p.index.strftime("%H:%M")) == ["00:00", "00:05", "00:10"]
    assert p.iloc[0]["close"] == 2 and p.iloc[2]["volume"] == 8 + 9 + 11 + 12


def test_resample_hour_from_real_minutes_matches_pandas():
    c = one_minute(np.linspace(100, 200, 180), start="2025-01-01 00:00")
    r = resample(c, "1h")
    ref = c.resample("1h").agg({"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"})
    np.testing.assert_allclose(r.to_numpy(), ref.to_numpy())
    with pytest.raises(GruowError, match="whole multiple"):
        resample(c, "90s")
