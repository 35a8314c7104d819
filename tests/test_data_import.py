"""Reading every supported format: hand-made files with known answers, plus the real files."""
import gzip
import json

import numpy as np
import pandas as pd
import pytest

from conftest import shared_file
from data import GruowError, make_candles, read_candles
from data._import import detect_format

T0 = pd.Timestamp("2025-01-01 00:00Z")
MS0 = 1735689600000  # T0 in epoch milliseconds
ROWS = [(10.0, 11.0, 9.0, 10.5, 1.5), (10.5, 12.0, 10.0, 11.0, 2.5), (11.0, 11.5, 10.5, 11.25, 0.0)]


def expect_rows(df, step="1min"):
    assert list(df.index) == [T0 + i * pd.Timedelta(step) for i in range(3)]
    np.testing.assert_array_equal(df.to_numpy(), np.array(ROWS))
    assert str(df.index.dtype) == "datetime64[ns, UTC]" and list(df.columns) == ["open", "high", "low", "close", "volume"]


def write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_header_csv_common_names_and_iso_offsets(tmp_path):
    # capitalised names, a different column order, ISO times with Z, +02:00 and naive (= UTC)
    text = "Time,Close,Open,Low,High,Volume\n"
    times = ["2025-01-01T00:00:00Z", "2025-01-01T02:01:00+02:00", "2025-01-01 00:02:00"]
    for t, (o, h, l, c, v) in zip(times, ROWS):
        text += f"{t},{c},{o},{l},{h},{v}\n"
    df = read_candles(write(tmp_path, "a.csv", text), symbol="eth-usdc", exchange="Binance")
    expect_rows(df)
    assert df.attrs["symbol"] == "ETH/USDC" and df.attrs["exchange"] == "binance" and df.attrs["timeframe"] == "1m"
    assert df.attrs["format"] == "csv" and df.attrs["report"]["rows_out"] == 3


def test_short_names_semicolons_and_epoch_seconds_in_a_plain_timestamp_column(tmp_path):
    text = "ts;o;h;l;c;v\n" + "".join(f"{MS0 // 1000 + 60 * i};{o};{h};{l};{c};{v}\n" for i, (o, h, l, c, v) in enumerate(ROWS))
    expect_rows(read_candles(write(tmp_path, "b.csv", text)))


@pytest.mark.parametrize("unit,scale", [("ms", 1), ("us", 1000), ("ns", 1_000_000)])
def test_epoch_unit_detected_by_magnitude(tmp_path, unit, scale):
    text = "timestamp,open,high,low,close,volume\n"
    text += "".join(f"{(MS0 + 60_000 * i) * scale},{o},{h},{l},{c},{v}\n" for i, (o, h, l, c, v) in enumerate(ROWS))
    expect_rows(read_candles(write(tmp_path, f"{unit}.csv", text)))


def test_original_gru_ow_layout_prefers_utc_timestamp(tmp_path):
    # `date` deliberately disagrees: utc_timestamp (epoch ms) must win
    text = "closing_price,date,highest_price,lowest_price,open_price,utc_timestamp,volume\n"
    for i, (o, h, l, c, v) in enumerate(ROWS):
        text += f"{c},1999-01-01 00:0{i}:00,{h},{l},{o},{MS0 + 300_000 * i},{v}\n"
    df = read_candles(write(tmp_path, "seed.csv", text))
    expect_rows(df, "5min")
    assert df.attrs["timeframe"] == "5m"


def test_gru_ow_utc_timestamp_in_seconds_is_refused(tmp_path):
    text = "closing_price,date,highest_price,lowest_price,open_price,utc_timestamp,volume\n"
    text += f"10,2025-01-01 00:00:00,11,9,10,{MS0 // 1000},1\n"
    with pytest.raises(GruowError, match=r"line 2: utc_timestamp 1735689600 looks like seconds .* milliseconds"):
        read_candles(write(tmp_path, "seed_s.csv", text))


@pytest.mark.parametrize("scale", [1, 1000])  # Binance open time in ms, and in µs (spot files since 2025)
def test_binance_kline_csv_without_header(tmp_path, scale):
    lines = []
    for i, (o, h, l, c, v) in enumerate(ROWS):
        t = (MS0 + 60_000 * i) * scale
        lines.append(f"{t},{o},{h},{l},{c},{v},{t + 59_999 * scale},123.4,7,0.5,5.1,0")
    p = write(tmp_path, "ETHUSDC-1m-2025-01-01.csv", "\n".join(lines) + "\n")
    assert detect_format(p) == "binance"
    expect_rows(read_candles(p))


def test_binance_kline_in_seconds_is_refused(tmp_path):
    p = write(tmp_path, "k.csv", f"{MS0 // 1000},1,2,0.5,1.5,3,{MS0 // 1000 + 59},4,5,6,7,0\n")
    with pytest.raises(GruowError, match=r"k.csv line 1: open time .* looks like seconds"):
        read_candles(p)


def test_binance_kline_zip_and_gzip(tmp_path):
    import zipfile

    body = "".join(f"{MS0 + 60_000 * i},{o},{h},{l},{c},{v},{MS0 + 60_000 * i + 59_999},1,1,1,1,0\n"
                   for i, (o, h, l, c, v) in enumerate(ROWS))
    z = tmp_path / "k.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("k.csv", body)
    expect_rows(read_candles(z))
    g = tmp_path / "k.csv.gz"
    g.write_bytes(gzip.compress(body.encode()))
    expect_rows(read_candles(g))


def test_ccxt_json_and_json_records(tmp_path):
    data = [[MS0 + 60_000 * i, *r] for i, r in enumerate(ROWS)]
    p = write(tmp_path, "ohlcv.json", json.dumps(data))
    df = read_candles(p)
    expect_rows(df)
    assert df.attrs["format"] == "json"
    records = [{"datetime": (T0 + pd.Timedelta(minutes=i)).isoformat(), "open": o, "high": h, "low": l, "close": c,
                "volume": v} for i, (o, h, l, c, v) in enumerate(ROWS)]
    expect_rows(read_candles(write(tmp_path, "records.json", json.dumps(records))))


def test_ccxt_json_in_seconds_is_refused(tmp_path):
    data = [[MS0 // 1000 + 60 * i, *r] for i, r in enumerate(ROWS)]
    with pytest.raises(GruowError, match=r"item 1: timestamp 1735689600 looks like seconds since 1970 but this field "
                                         r"holds milliseconds"):
        read_candles(write(tmp_path, "s.json", json.dumps(data)))


def test_parquet_written_by_this_project_round_trips(tmp_path):
    idx = pd.DatetimeIndex([T0 + pd.Timedelta(minutes=i) for i in range(3)])
    df = make_candles(pd.DataFrame(ROWS, columns=["open", "high", "low", "close", "volume"], index=idx))
    p = tmp_path / "c.parquet"
    df.to_parquet(p)
    back = read_candles(p, symbol="ETH/USDC", exchange="x")
    expect_rows(back)
    assert back.attrs["format"] == "parquet"


def test_rows_with_empty_cells_rejected_with_their_line(tmp_path):
    text = "timestamp,open,high,low,close,volume\n"
    text += "2025-01-01T00:00:00Z,10,11,9,10.5,1.5\n2025-01-01T00:01:00Z,10,,9,10.5,1\n"
    text += "2025-01-01T00:02:00Z,10,11,9,10.5,1\n2025-01-01T00:03:00Z,10,11,9,10.5,1\n"
    df = read_candles(write(tmp_path, "e.csv", text))
    rep = df.attrs["report"]
    assert rep["rejected"] == [{"row": 3, "timestamp": "2025-01-01T00:01:00+00:00",
                                "rule": "NaN, empty or infinite value: rejected"}]
    assert rep["row_kind"] == "line" and len(df) == 3 and rep["gaps"] == 1


@pytest.mark.parametrize("text,match", [
    ("timestamp,foo,bar\n2025-01-01T00:00:00Z,1,2\n", r"no price columns open/high/low/close found"),
    ("timestamp,open,high,low,close\n2025-01-01T00:00:00Z,1,2,0.5,1\n", r"no volume column"),
    ("when,open,high,low,close,volume\n2025-01-01T00:00:00Z,1,2,0.5,1,1\n", r"no time column"),
    ("timestamp,open,high,low,close,volume\n2025-01-01T00:00:00Z,1,2,0.5,1,1\n2025-01-01T00:01:00Z,1,2,x1,1,1\n",
     r"bad.csv line 3: low 'x1' is not a number"),
    ("timestamp,open,high,low,close,volume\nyesterday,1,2,0.5,1,1\n", r"line 2: timestamp 'yesterday' is not an ISO-8601"),
    ("timestamp,open,high,low,close,volume\n12,1,2,0.5,1,1\n", r"line 2: timestamp reads as 1970-01-01"),
    ("1,2,3\n4,5,6\n", r"no header row and 3 columns"),
    ("", r"empty"),
])
def test_bad_files_give_one_line_errors(tmp_path, text, match):
    with pytest.raises(GruowError, match=match) as exc:
        read_candles(write(tmp_path, "bad.csv", text))
    assert "\n" not in str(exc.value)


def test_missing_file(tmp_path):
    with pytest.raises(GruowError, match=r"nope.csv: file not found"):
        read_candles(tmp_path / "nope.csv")


def test_given_timeframe_is_checked(tmp_path):
    text = "timestamp,open,high,low,close,volume\n" + "".join(
        f"{(T0 + pd.Timedelta(minutes=5 * i)).isoformat()},1,1,1,1,1\n" for i in range(4))
    p = write(tmp_path, "five.csv", text)
    assert read_candles(p, timeframe="5m").attrs["timeframe"] == "5m"
    with pytest.raises(GruowError, match="5m apart but --timeframe 1m"):
        read_candles(p, timeframe="1m")


# ---------------------------------------------------------------- the real files

def test_real_hyperliquid_file():
    df = read_candles(shared_file("eth_usdc_1m_hyperliquid_2025-07-21.csv"), symbol="ETH/USDC", exchange="hyperliquid")
    rep = df.attrs["report"]
    assert len(df) == 6922 and rep["timeframe"] == "1m" and rep["gaps"] == 0 and rep["rules"] == {}
    assert df.index[0] == pd.Timestamp("2025-07-21 09:22Z") and df.index[-1] == pd.Timestamp("2025-07-26 04:43Z")
    assert df["close"].iloc[0] == 3777.0  # first data line: 2025-07-21T09:22:00Z,3776.2,3777.2,3776,3777,1.4571


def test_real_seed_format_file_is_5m_with_one_gap():
    df = read_candles(shared_file("gru_ow_eth_usdt_5m_seed_format.csv"), symbol="ETH/USDT")
    rep = df.attrs["report"]
    assert len(df) == 38083 and rep["timeframe"] == "5m"
    assert rep["gaps"] == 24 and rep["gap_runs"] == 1 and rep["longest_gap_s"] == 2 * 3600 + 5 * 60
    assert rep["longest_gap_start"] == "2021-09-29T07:00:00+00:00"
    # first data line: 3306.27,2021-09-14 07:50:00,3307.99,3303.25,3305.99,1631605800000,548.5083
    assert df.index[0] == pd.Timestamp("2021-09-14 07:50Z")
    np.testing.assert_array_equal(df.iloc[0].to_numpy(), [3305.99, 3307.99, 3303.25, 3306.27, 548.5083])


def test_real_uniswap_file_flat_minutes_and_one_gap():
    df = read_candles(shared_file("eth_usdc_1m_uniswap_polygon_2023-08-13.csv"), exchange="uniswap")
    rep = df.attrs["report"]
    assert len(df) == 7199 and rep["gaps"] == 1 and rep["rules"] == {}
    assert (df["volume"] == 0).sum() > 1000  # zero-volume flat minutes are real candles, kept
    filled = read_candles(shared_file("eth_usdc_1m_uniswap_polygon_2023-08-13.csv"), fill_gaps=True)
    assert len(filled) == 7200 and filled.attrs["report"]["filled"] == 1
    gap = pd.Timestamp(rep["longest_gap_start"])
    prev_close = df["close"][df.index < gap].iloc[-1]
    np.testing.assert_array_equal(filled.loc[gap].to_numpy(), [prev_close] * 4 + [0.0])
