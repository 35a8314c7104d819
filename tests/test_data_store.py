"""The candle store: month layout, de-duplicating merges, atomic writes, [start, end) loads."""
import json

import numpy as np
import pandas as pd
import pytest

from conftest import shared_file
from data import CandleStore, GruowError, make_candles, read_candles, validate
from data._store import normalize_symbol

COLS = ["open", "high", "low", "close", "volume"]


def candles(start, n, *, step="1min", exchange="binance", symbol="ETH/USDC", tf="1m", base=100.0):
    idx = pd.date_range(start, periods=n, freq=step, tz="UTC")
    c = base + np.arange(n, dtype=float)
    df = pd.DataFrame({"open": c, "high": c + 1, "low": c - 1, "close": c + 0.5, "volume": np.ones(n)}, index=idx)
    return make_candles(df, exchange=exchange, symbol=symbol, timeframe=tf)


@pytest.fixture
def store(tmp_path):
    return CandleStore(tmp_path / "data")


def test_month_files_and_round_trip(store, tmp_path):
    c = candles("2025-01-31 23:58", 5)  # spans two months
    res = store.write(c)
    folder = tmp_path / "data" / "binance" / "ETH-USDC" / "1m"
    assert sorted(p.name for p in folder.glob("*.parquet")) == ["2025-01.parquet", "2025-02.parquet"]
    assert res["added"] == 5 and res["updated"] == 0 and len(res["files"]) == 2
    assert json.loads((folder / "series.json").read_text())["symbol"] == "ETH/USDC"
    back = store.load("ETH/USDC", "1m")
    pd.testing.assert_frame_equal(back, c[COLS], check_freq=False)
    assert back.attrs == {"exchange": "binance", "symbol": "ETH/USDC", "timeframe": "1m"}
    assert str(back.index.dtype) == "datetime64[ns, UTC]"


def test_load_is_half_open_and_reads_only_the_months_touched(store, tmp_path):
    store.write(candles("2025-01-31 23:50", 20))  # 23:50 .. 00:09
    got = store.load("eth-usdc", "1m", start="2025-01-31 23:55", end="2025-02-01T00:02")
    assert got.index[0] == pd.Timestamp("2025-01-31 23:55Z") and got.index[-1] == pd.Timestamp("2025-02-01 00:01Z")
    assert len(got) == 7
    # a corrupt January file must not matter when only February is asked for
    (tmp_path / "data" / "binance" / "ETH-USDC" / "1m" / "2025-01.parquet").write_bytes(b"junk")
    feb = store.load("ETH/USDC", start="2025-02-01", end="2025-02-01 00:05")
    assert len(feb) == 5
    assert len(store.load("ETH/USDC", start="2025-03-01", end="2025-03-02")) == 0


def test_same_candles_twice_change_nothing(store, tmp_path):
    c = candles("2025-03-01", 100)
    store.write(c)
    folder = tmp_path / "data" / "binance" / "ETH-USDC" / "1m"
    before = {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in folder.iterdir()}
    info = store.info()
    res = store.write(c)
    assert res == {**res, "added": 0, "updated": 0, "unchanged": 100, "files": []}
    assert {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in folder.iterdir()} == before
    assert store.info() == info


def test_merge_adds_new_rows_and_updates_changed_ones(store):
    store.write(candles("2025-03-01 00:00", 10))
    newer = candles("2025-03-01 00:05", 10, base=105.0)  # 5 overlap (same values), 5 new
    newer.iloc[0, newer.columns.get_loc("close")] = 999.0  # one overlapping candle corrected
    res = store.write(newer)
    assert res["added"] == 5 and res["updated"] == 1 and res["unchanged"] == 4
    got = store.load("ETH/USDC")
    assert len(got) == 15 and got.index.is_unique and got.index.is_monotonic_increasing
    assert got.loc["2025-03-01 00:05Z", "close"] == 999.0
    assert got.loc["2025-03-01 00:04Z", "close"] == 104.5


def test_failed_write_leaves_the_old_file_intact(store, tmp_path, monkeypatch):
    store.write(candles("2025-03-01", 10))
    path = tmp_path / "data" / "binance" / "ETH-USDC" / "1m" / "2025-03.parquet"
    before = path.read_bytes()

    def crash(self, tmp, **kw):  # dies half way through writing the temporary file
        open(tmp, "wb").write(b"PAR1 half a file")
        raise OSError("disk full")

    monkeypatch.setattr(pd.DataFrame, "to_parquet", crash)
    with pytest.raises(OSError, match="disk full"):
        store.write(candles("2025-03-01 00:10", 10))
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert [p.name for p in path.parent.iterdir() if p.name.endswith(".tmp")] == []
    assert len(store.load("ETH/USDC")) == 10


def test_exchange_choice_and_missing_series(store):
    store.write(candles("2025-03-01", 3, exchange="binance"))
    assert len(store.load("ETH/USDC")) == 3
    store.write(candles("2025-03-01", 4, exchange="hyperliquid"))
    with pytest.raises(GruowError, match=r"several exchanges \(binance, hyperliquid\); pass --exchange"):
        store.load("ETH/USDC")
    assert len(store.load("ETH/USDC", exchange="hyperliquid")) == 4
    with pytest.raises(GruowError, match=r"no ETH/USDC 5m candles .*stored: binance 1m, hyperliquid 1m"):
        store.load("ETH/USDC", "5m")
    with pytest.raises(GruowError, match=r"no BTC/USDT 1m candles"):
        store.load("BTCUSDT")


def test_bad_ranges(store):
    store.write(candles("2025-03-01", 3))
    with pytest.raises(GruowError, match="--end .* must be after --start"):
        store.load("ETH/USDC", start="2025-03-02", end="2025-03-01")
    with pytest.raises(GruowError, match="in the future"):
        store.load("ETH/USDC", start="2999-01-01")
    with pytest.raises(GruowError, match="must be after"):
        store.info(start="2025-03-02", end="2025-03-02")


def test_last_timestamp_for_resuming(store):
    assert store.last_timestamp("binance", "ETH/USDC", "1m") is None
    store.write(candles("2025-03-31 23:00", 90))
    assert store.last_timestamp("binance", "ETH/USDC", "1m") == pd.Timestamp("2025-04-01 00:29Z")


def test_info_counts_gaps_across_month_files(store):
    a = candles("2025-01-31 23:57", 3)
    b = candles("2025-02-01 00:05", 5)  # 00:00 .. 00:04 missing, across the month boundary
    store.write(a)
    store.write(b)
    (s,) = store.info("ETH/USDC")
    assert s["rows"] == 8 and s["months"] == 2
    assert s["first"] == pd.Timestamp("2025-01-31 23:57Z") and s["last"] == pd.Timestamp("2025-02-01 00:09Z")
    assert s["missing"] == 5 and s["longest_gap"] == pd.Timedelta("6min")
    assert s["longest_gap_start"] == pd.Timestamp("2025-02-01 00:00Z") and s["longest_gap_candles"] == 5
    (part,) = store.info(start="2025-02-01")
    assert part["rows"] == 5 and part["missing"] == 0
    assert store.info("BTC/USDT") == []


def test_repairs_recorded_once_in_the_sidecar(store):
    idx = pd.to_datetime(["2025-03-01 00:00", "2025-03-01 00:01", "2025-03-01 00:02", "2025-03-01 00:01"], utc=True)
    raw = pd.DataFrame([(1, 2, 0.5, 1, 1), (1, 0.5, 2, 1, 1), (1, 2, 0.5, 3, 1), (1, 2, 0.5, 1.5, 1)], columns=COLS, index=idx)
    raw.attrs = {"exchange": "x", "symbol": "ETH/USDC"}
    good, rep = validate(raw, source="hand.csv")
    store.write(good)
    store.write(good)  # nothing changes, so nothing is recorded twice
    (s,) = store.info()
    rules = {e["rule"]: e["count"] for e in s["repairs"]}
    assert rules == {"open/close outside high-low: widened high/low to include them": 1,
                     "high below low: swapped high and low": 1,
                     "rows out of time order: sorted": 1,
                     "duplicate timestamp: kept the last row": 1}
    assert all(e["source"] == "hand.csv" for e in s["repairs"])


def test_invalid_candles_are_not_stored(store):
    c = candles("2025-03-01", 3)
    c.iloc[1, 0] = np.nan
    with pytest.raises(ValueError, match="validate"):
        store.write(c)


def test_symbols_normalised():
    assert normalize_symbol("eth-usdc") == normalize_symbol("ETHUSDC") == normalize_symbol(" ETH/USDC ") == "ETH/USDC"
    assert normalize_symbol("eth_usdt") == "ETH/USDT" and normalize_symbol("ETH/USDC:USDC") == "ETH/USDC:USDC"
    with pytest.raises(GruowError, match="--symbol 'ETH' must look like BASE/QUOTE"):
        normalize_symbol("ETH")


def test_real_month_round_trip(store):
    df = read_candles(shared_file("eth_usdt_1m_binance_2025-06.csv"), symbol="ETH/USDT", exchange="binance")
    res = store.write(df)
    assert res["added"] == 43199 and len(res["files"]) == 2  # June and the first hours of July
    june = store.load("ETH/USDT", start="2025-06-01", end="2025-07-01")
    assert len(june) == 43199 - (17 * 60 + 19)  # 2025-07-01 00:00 .. 17:18 are July
    pd.testing.assert_frame_equal(store.load("ETH/USDT"), df[COLS], check_freq=False)


# ---------------------------------------------------------------- all-or-nothing writes

def series_files(tmp_path):
    folder = tmp_path / "data" / "binance" / "ETH-USDC" / "1m"
    return {p.name: p.read_bytes() for p in folder.iterdir()} if folder.exists() else {}


def interrupt_on_call(monkeypatch, n):
    """Ctrl-C (or SIGTERM, which the CLI turns into KeyboardInterrupt) while month ``n`` is written."""
    real, calls = pd.DataFrame.to_parquet, []

    def to_parquet(self, path, **kw):
        calls.append(path)
        if len(calls) == n:
            open(path, "wb").write(b"PAR1 half a month")
            raise KeyboardInterrupt
        return real(self, path, **kw)

    monkeypatch.setattr(pd.DataFrame, "to_parquet", to_parquet)
    return calls


def test_interrupted_multi_month_write_stores_nothing(store, tmp_path, monkeypatch, caplog):
    c = candles("2025-01-31 23:00", 4 * 31 * 1440)  # five month files
    calls = interrupt_on_call(monkeypatch, 4)
    with pytest.raises(KeyboardInterrupt):
        store.write(c)
    monkeypatch.undo()
    assert len(calls) == 4
    assert {n for n in series_files(tmp_path)} <= {".lock"}  # no month, no series.json, no .tmp
    assert store.series() == [] and store.info() == []
    assert "nothing of this write was stored (3 prepared month file(s) discarded)" in caplog.text


def test_interrupted_write_leaves_stored_months_as_they_were(store, tmp_path, monkeypatch):
    store.write(candles("2025-01-31 22:00", 180))  # January and February
    before = series_files(tmp_path)
    grown = candles("2025-01-31 22:00", 3 * 31 * 1440, base=200.0)  # changes both and adds three months
    interrupt_on_call(monkeypatch, 3)
    with pytest.raises(KeyboardInterrupt):
        store.write(grown)
    monkeypatch.undo()
    assert series_files(tmp_path) == before
    assert len(store.load("ETH/USDC")) == 180


def test_interrupt_during_the_final_renames_completes_the_write(store, tmp_path, monkeypatch):
    import data._store as st

    c = candles("2025-01-31 23:00", 50 * 1440)  # three month files
    real, calls = st.os.replace, []

    def replace(src, dst):
        calls.append(dst)
        if len(calls) == 2:
            raise KeyboardInterrupt  # before the second rename happens
        return real(src, dst)

    monkeypatch.setattr(st.os, "replace", replace)
    with pytest.raises(KeyboardInterrupt):
        store.write(c)
    monkeypatch.undo()
    names = series_files(tmp_path)
    assert sorted(n for n in names if n.endswith(".parquet")) == ["2025-01.parquet", "2025-02.parquet", "2025-03.parquet"]
    assert "series.json" in names and not any(n.endswith(".tmp") for n in names)
    pd.testing.assert_frame_equal(store.load("ETH/USDC"), c[COLS], check_freq=False)


def test_stale_temp_files_are_removed_by_the_next_write(store, tmp_path):
    store.write(candles("2025-03-01", 10))
    folder = tmp_path / "data" / "binance" / "ETH-USDC" / "1m"
    stale = [folder / ".2025-03.parquet.k3j_x9.tmp", folder / ".2025-04.parquet.a1b2.tmp",
             folder / ".series.json.q8w.tmp"]
    for p in stale:
        p.write_bytes(b"left by a SIGKILL")
    (folder / "notes.tmp").write_text("not ours")
    store.write(candles("2025-03-01", 10))  # changes nothing, still cleans up
    assert not any(p.exists() for p in stale) and (folder / "notes.tmp").exists()
    assert len(store.load("ETH/USDC")) == 10


def test_open_times_of_a_range(store):
    store.write(candles("2025-01-31 23:58", 5))
    t = store.open_times("binance", "ETH/USDC", "1m", "2025-01-31 23:59", "2025-02-01 00:02")
    assert list(pd.to_datetime(t, utc=True)) == list(pd.date_range("2025-01-31 23:59", periods=3, freq="1min", tz="UTC"))
    assert len(store.open_times("binance", "ETH/USDC", "1m")) == 5
    assert len(store.open_times("kraken", "ETH/USDC", "1m")) == 0
