"""Download through the real ccxt client pointed at the replay server, into the real store."""
from __future__ import annotations

import json
import sys

import numpy as np
import pandas as pd
import pytest

from conftest import shared_file
from data import (
    CandleStore,
    Faults,
    GruowError,
    ReplayServer,
    download,
    make_exchange,
    normalize_symbol,
    parse_since,
    read_candles,
)

CSV = "eth_usdc_1m_hyperliquid_2025-07-21.csv"
FAST = dict(progress=False, retry_delay=0.01)


@pytest.fixture(scope="module")
def candles() -> pd.DataFrame:
    return read_candles(shared_file(CSV), symbol="ETH/USDC", exchange="hyperliquid")


@pytest.fixture
def store(tmp_path) -> CandleStore:
    return CandleStore(tmp_path / "home" / "data")


def stored(store: CandleStore) -> pd.DataFrame:
    return store.load("ETH/USDC", "1m", exchange="binance")


def serve(candles, clock, **kw) -> ReplayServer:
    return ReplayServer(candles, start=clock, speed=0, **kw)


def test_normalize_symbol_through_market_table(candles):
    with serve(candles, candles.index[-1]) as srv:
        ex = make_exchange("binance", url=srv.url)
        ex.load_markets()
        for text in ["ETHUSDC", "eth-usdc", "eth_usdc", "ETH/USDC", "ethusdc", " Eth/Usdc "]:
            assert normalize_symbol(ex, text) == "ETH/USDC"
        assert normalize_symbol(ex, "btc-usdt") == "BTC/USDT"
        with pytest.raises(GruowError, match=r"--symbol 'ETH/USDX' is not a market on binance; close matches: .*ETH/USDC"):
            normalize_symbol(ex, "ETH/USDX")
        with pytest.raises(GruowError, match=r"'DOGE/JPY' is not a market on binance"):
            normalize_symbol(ex, "DOGE/JPY")
    with pytest.raises(GruowError, match=r"--exchange 'binanse' is not an exchange ccxt knows; close matches: binance"):
        make_exchange("binanse")
    with pytest.raises(GruowError, match="--exchange-url 'localhost:8765' must look like http://"):
        make_exchange("binance", url="localhost:8765")


def test_since_parsing_refuses_seconds():
    assert parse_since(1753089720000) == pd.Timestamp("2025-07-21T09:22Z")
    assert parse_since("1753089720000") == pd.Timestamp("2025-07-21T09:22Z")
    assert parse_since("2025-07-21T11:22+02:00") == pd.Timestamp("2025-07-21T09:22Z")
    assert parse_since("20250721") == pd.Timestamp("2025-07-21T00:00Z")
    with pytest.raises(GruowError, match=r"--start 1753089720 looks like seconds .* \(1753089720000\)"):
        parse_since("1753089720")


def test_multi_page_range_exact_and_no_duplicates(candles, store):
    start, n = candles.index[100], 1000
    with serve(candles, candles.index[-1]) as srv:
        report = download(store, symbol="ETHUSDC", start=start, end=start + pd.Timedelta(minutes=n),
                          limit=150, exchange_url=srv.url, **FAST)
        kline_requests = srv.kline_requests
    got = stored(store)
    assert kline_requests == report["pages"] == 7  # ceil(1000 / 150) pages, no extra empty page
    assert (report["added"], len(got), report["duplicates"], report["missing"]) == (n, n, 0, 0)
    assert got.index.is_unique and got.index[0] == start and got.index[-1] == candles.index[100 + n - 1]
    assert np.array_equal(got.to_numpy(), candles.iloc[100:100 + n].to_numpy())
    assert report["stopped"] == "end" and report["resumed_from"] is None


def test_interrupted_download_resumes_without_refetching(candles, store):
    start, end = candles.index[0], candles.index[0] + pd.Timedelta(minutes=1000)
    with serve(candles, candles.index[-1], faults="fail_after=3") as srv:
        with pytest.raises(GruowError, match=r"binance: ExchangeNotAvailable persisted after 2 attempt") as err:
            download(store, symbol="ETH/USDC", start=start, end=end, limit=100, exchange_url=srv.url,
                     max_retries=1, **FAST)
        assert f"(300 new candles up to {candles.index[299].isoformat()} are stored; run the same" in str(err.value)
        assert len(stored(store)) == 300  # the three pages that arrived were kept
        srv.faults = Faults()  # the outage ends
        before = srv.kline_requests
        report = download(store, symbol="ETH/USDC", start=start, end=end, limit=100, exchange_url=srv.url, **FAST)
        resumed_requests = srv.kline_requests - before
        assert report["resumed_from"] == start + pd.Timedelta(minutes=300)
        assert resumed_requests == report["pages"] == 7  # only the 700 missing candles, 100 a page
        assert report["added"] == 700
        before = srv.kline_requests
        again = download(store, symbol="ETH/USDC", start=start, end=end, limit=100, exchange_url=srv.url, **FAST)
        assert srv.kline_requests == before and again["added"] == 0 and again["pages"] == 0
    got = stored(store)
    assert np.array_equal(got.to_numpy(), candles.iloc[:1000].to_numpy())


def test_keyboard_interrupt_keeps_pages_already_written(candles, store):
    class StopAfterTwoPages:
        """The real store; Ctrl-C arrives while the third page is being written."""
        def __init__(self, inner):
            self.inner, self.writes = inner, 0

        def write(self, frame):
            self.writes += 1
            if self.writes == 3:
                raise KeyboardInterrupt
            return self.inner.write(frame)

        def __getattr__(self, name):
            return getattr(self.inner, name)

    start = candles.index[0]
    with serve(candles, candles.index[-1]) as srv:
        with pytest.raises(KeyboardInterrupt):
            download(StopAfterTwoPages(store), symbol="ETH/USDC", start=start, end=start + pd.Timedelta("10h"),
                     limit=50, exchange_url=srv.url, **FAST)
    got = stored(store)
    assert len(got) == 100 and got.index[-1] == candles.index[99]


def test_forming_last_candle_dropped_by_time(candles, store):
    i = 2000
    clock = candles.index[i] + pd.Timedelta("40s")  # candle i is 40 s into its minute
    with serve(candles, clock) as srv:
        report = download(store, symbol="ETH/USDC", start=candles.index[i - 30], exchange_url=srv.url, **FAST)
    got = stored(store)
    assert report["dropped_forming"] == 1 and report["stopped"] == "now"
    assert len(got) == 30 and got.index[-1] == candles.index[i - 1]
    assert np.array_equal(got.to_numpy(), candles.iloc[i - 30:i].to_numpy())


def test_candle_closed_exactly_at_server_time_is_kept(candles, store):
    # by time, not by position: at exactly open + 1 min the candle is final and kept, even as
    # the last row of the answer when the range ends there
    i = 2000
    with serve(candles, candles.index[i] + pd.Timedelta("1min")) as srv:
        report = download(store, symbol="ETH/USDC", start=candles.index[i - 9],
                          end=candles.index[i] + pd.Timedelta("1min"), exchange_url=srv.url, **FAST)
    assert report["dropped_forming"] == 0 and report["added"] == 10
    assert stored(store).index[-1] == candles.index[i]


def test_gap_in_exchange_answer_reported_not_filled(candles, store):
    holed = candles.drop(candles.index[205:212])  # the exchange lacks 7 minutes
    holed.attrs = dict(candles.attrs)
    with serve(holed, candles.index[-1]) as srv:
        report = download(store, symbol="ETH/USDC", start=candles.index[150], end=candles.index[300],
                          limit=40, exchange_url=srv.url, **FAST)
    got = stored(store)
    assert report["missing"] == 7 and len(report["gaps"]) == 1
    assert report["gaps"][0]["after"] == candles.index[204] and report["gaps"][0]["before"] == candles.index[212]
    assert len(got) == 150 - 7 and not got.index.isin(candles.index[205:212]).any()


def test_missing_and_duplicated_candles_in_answers(candles, store):
    start = candles.index[0]
    with serve(candles, candles.index[-1], faults="missing=0.5,duplicate=0.5,seed=4") as srv:
        report = download(store, symbol="ETH/USDC", start=start, end=start + pd.Timedelta(minutes=400),
                          limit=50, exchange_url=srv.url, **FAST)
        counts = dict(srv.fault_counts)
    got = stored(store)
    assert report["duplicates"] == counts.get("duplicate", 0) > 0
    # each dropped row becomes a reported gap (a missing last row of a page is fetched by the
    # next page, which starts right after the last row received)
    assert len(got) + report["missing"] == 400
    assert 0 < report["missing"] <= counts["missing"]
    assert got.index.is_unique
    assert np.array_equal(got.to_numpy(), candles.loc[got.index].to_numpy())


def test_retries_on_429_5xx_timeouts_and_drops(candles, store):
    start = candles.index[500]
    spec = "timeout=0.07,429=0.07,500=0.07,503=0.07,drop=0.07,seed=4,hang=0.8,retry_after=0.02"
    ex_timeout_ms = 500  # generous: only injected hangs may time out, even on a loaded CI machine
    with serve(candles, candles.index[-1], faults=spec) as srv:
        ex = make_exchange("binance", url=srv.url, timeout_ms=ex_timeout_ms)
        report = download(store, exchange=ex, symbol="ETH/USDC", start=start, end=start + pd.Timedelta(minutes=900),
                          limit=60, max_retries=8, **FAST)
        counts = dict(srv.fault_counts)
    got = stored(store)
    assert {"timeout", "429", "500", "503", "drop"} <= set(counts)  # every kind was injected
    assert report["retries"] == sum(counts.values())  # each fault cost exactly one retry
    assert len(got) == 900 and np.array_equal(got.to_numpy(), candles.iloc[500:1400].to_numpy())


def test_retries_exhausted_give_one_line_error(candles, store, caplog):
    with serve(candles, candles.index[-1], faults="500=1") as srv:
        with pytest.raises(GruowError) as err:
            download(store, symbol="ETH/USDC", start=candles.index[0], exchange_url=srv.url, max_retries=2, **FAST)
        assert srv.fault_counts == {"500": 3}
    msg = str(err.value)
    assert msg.startswith("binance: ExchangeNotAvailable persisted after 3 attempt(s)") and "\n" not in msg
    assert sum("retry" in r.getMessage() for r in caplog.records) == 2  # the log shows the retries
    assert store.series() == []


def cli(monkeypatch, capsys, *args) -> tuple[int, str, str]:
    """Run ``gruow ARGS`` in-process through the real entry point; (exit code, stdout, stderr)."""
    from gruow.cli import main

    monkeypatch.setattr(sys, "argv", ["gruow", *args])
    with pytest.raises(SystemExit) as exc:
        main()
    out, err = capsys.readouterr()
    return exc.value.code, out, err


def test_cli_download_json_and_resume(candles, home, monkeypatch, capsys):
    start = candles.index[10]
    with serve(candles, candles.index[-1]) as srv:
        args = ["data", "download", "--exchange", "binance", "--symbol", "eth-usdc", "--timeframe", "1m",
                "--start", start.isoformat(), "--end", (start + pd.Timedelta("5h")).isoformat(),
                "--limit", "120", "--exchange-url", srv.url, "--json"]
        code, out, _ = cli(monkeypatch, capsys, *args)
        assert code in (0, None)
        first = json.loads(out)
        code, out, _ = cli(monkeypatch, capsys, *args)
        second = json.loads(out)
    assert (first["symbol"], first["added"], first["pages"], first["duplicates"]) == ("ETH/USDC", 300, 3, 0)
    assert (second["added"], second["pages"]) == (0, 0)
    assert len(CandleStore(home / "data").load("ETH/USDC", exchange="binance")) == 300


@pytest.mark.parametrize("extra, message", [
    (["--symbol", "ETH/USDX"], "--symbol 'ETH/USDX' is not a market on binance; close matches:"),
    (["--end", "2025-07-21T10:00"], "--end 2025-07-21T10:00:00+00:00 must be after --start"),
    (["--start", "2999-01-01"], "--start 2999-01-01T00:00:00+00:00 is in the future"),
    (["--start", "1753089720"], "--start 1753089720 looks like seconds since 1970"),
])
def test_cli_bad_inputs(candles, home, monkeypatch, capsys, extra, message):
    with serve(candles, candles.index[-1]) as srv:
        args = {"--symbol": "ETH/USDC", "--start": "2025-07-21T12:00", "--exchange-url": srv.url}
        for k, v in zip(extra[::2], extra[1::2]):
            args[k] = v
        code, out, err = cli(monkeypatch, capsys, "data", "download", *[x for kv in args.items() for x in kv])
    assert code == 2 and out == ""
    lines = err.strip().splitlines()
    assert lines[-1].startswith(f"error: {message}") and "Traceback" not in err
    assert not home.exists() or not any(p.is_file() for p in home.rglob("*"))  # nothing written


# ---------------------------------------------------------------- holes, option checks, non-binance URLs

def test_holes_and_counts_on_hand_made_times():
    from data._download import _count, _holes

    m = 60_000
    held = np.array([2, 3, 4, 8, 9]) * m
    assert _holes(held, 0, 12 * m, m) == [(0, 2 * m), (5 * m, 8 * m), (10 * m, 12 * m)]
    assert _holes(held, 2 * m, 10 * m, m) == [(5 * m, 8 * m)]  # nothing before, nothing after
    assert _holes(held, 30_000, None, m) == [(30_000, 2 * m), (5 * m, 8 * m), (10 * m, None)]
    assert _holes(held, 90_000, 10 * m, m) == [(5 * m, 8 * m)]  # 01:30 .. 02:00 holds no open
    assert _holes(np.array([], dtype=np.int64), 5, 7, m) == [(5, 7)]
    assert [_count(a, b, m, anchor=2 * m) for a, b in [(0, 2 * m), (5 * m, 8 * m), (10 * m, 12 * m)]] == [2, 3, 2]
    assert _count(30_000, 2 * m, m, anchor=0) == 1 and _count(10 * m, 10 * m + 1, m, anchor=0) == 1


def test_download_fills_holes_inside_and_after_stored_ranges(candles, store):
    # the QA repro: 20:00-21:00, then 10:00-12:00, then 10:00-22:00 must fill 12:00-20:00 too
    day = pd.Timestamp("2025-07-21", tz="UTC")
    h = lambda n: day + pd.Timedelta(hours=n)  # noqa: E731
    with serve(candles, candles.index[-1]) as srv:
        download(store, symbol="ETH/USDC", start=h(20), end=h(21), limit=100, exchange_url=srv.url, **FAST)
        download(store, symbol="ETH/USDC", start=h(10), end=h(12), limit=100, exchange_url=srv.url, **FAST)
        before = len(srv.requests)
        report = download(store, symbol="ETH/USDC", start=h(10), end=h(22), limit=100, exchange_url=srv.url, **FAST)
        asked = [r["params"] for r in srv.requests[before:] if r["endpoint"] == "klines"]
    assert [(r["start"], r["end"], r["candles"], r["added"]) for r in report["ranges"]] == [
        (h(12), h(20), 480, 480), (h(21), h(22), 60, 60)]
    assert (report["added"], report["missing"], report["gaps"], report["resumed_from"]) == (540, 0, [], h(12))
    # resume without refetching: no request reaches into a stored candle
    assert len(asked) == report["pages"] == 5 + 1
    for p in asked:
        first = pd.Timestamp(int(p["startTime"]), unit="ms", tz="UTC")
        last = first + pd.Timedelta(minutes=int(p["limit"]) - 1)
        assert h(12) <= first and (last < h(20) or h(21) <= first) and last < h(22)
    got = stored(store)
    assert len(got) == 720 and np.array_equal(got.to_numpy(), candles.loc[h(10):h(22) - pd.Timedelta("1min")].to_numpy())
    (info,) = store.info(start=h(10), end=h(22))
    assert info["missing"] == 0


def test_candles_lost_in_a_flaky_download_are_fetched_by_a_clean_run(candles, store):
    start, n = candles.index[0], 400
    end = start + pd.Timedelta(minutes=n)
    with serve(candles, candles.index[-1], faults="missing=0.5,seed=4") as srv:
        first = download(store, symbol="ETH/USDC", start=start, end=end, limit=50, exchange_url=srv.url, **FAST)
        assert first["missing"] > 0 and len(stored(store)) == n - first["missing"]
        srv.faults = Faults()  # the exchange behaves now
        before = srv.kline_requests
        second = download(store, symbol="ETH/USDC", start=start, end=end, limit=50, exchange_url=srv.url, **FAST)
        requests = srv.kline_requests - before
    # one short request per hole, each asking exactly for the candles it lacks
    assert requests == second["pages"] == len(first["gaps"]) == len(second["ranges"])
    assert second["added"] == first["missing"] and (second["missing"], second["gaps"]) == (0, [])
    assert sum(r["candles"] for r in second["ranges"]) == first["missing"]
    assert np.array_equal(stored(store).to_numpy(), candles.iloc[:n].to_numpy())


def test_exchange_gaps_stay_reported_and_cost_one_request_per_run(candles, store):
    holed = candles.drop(candles.index[205:212])
    holed.attrs = dict(candles.attrs)
    with serve(holed, candles.index[-1]) as srv:
        download(store, symbol="ETH/USDC", start=candles.index[150], end=candles.index[300], limit=40,
                 exchange_url=srv.url, **FAST)
        before = len(srv.requests)
        again = download(store, symbol="ETH/USDC", start=candles.index[150], end=candles.index[300], limit=40,
                         exchange_url=srv.url, **FAST)
        asked = [r["params"] for r in srv.requests[before:] if r["endpoint"] == "klines"]
    assert [(int(p["startTime"]), int(p["limit"])) for p in asked] == [(candles.index[205].value // 10**6, 7)]
    assert (again["added"], again["missing"]) == (0, 7)
    assert again["gaps"] == [{"after": candles.index[204], "before": candles.index[212], "missing": 7}]


@pytest.mark.parametrize("kw, message", [
    (dict(max_retries=-1), "--retries -1 must be a whole number from 0 to 20"),
    (dict(max_retries=21), "--retries 21 must be a whole number from 0 to 20"),
    (dict(limit=0), "--limit 0 must be a positive number of candles per request"),
    (dict(limit=1001), "--limit 1001 is more than binance answers per request; use 1 to 1000"),
])
def test_bad_retries_and_limit_are_one_line_errors(candles, store, kw, message):
    with serve(candles, candles.index[-1]) as srv:
        with pytest.raises(GruowError) as err:
            download(store, symbol="ETH/USDC", start=candles.index[0], end=candles.index[10],
                     exchange_url=srv.url, **{**FAST, **kw})
        assert srv.kline_requests == 0
    assert str(err.value) == message and store.series() == []


def test_exchange_url_needs_binance_and_fails_at_once(candles, store):
    with serve(candles, candles.index[-1]) as srv:
        with pytest.raises(GruowError, match=r"^--exchange-url serves Binance's API \(gruow replay-server\); use "
                                             r"it with --exchange binance, not hyperliquid$"):
            download(store, exchange="hyperliquid", symbol="ETH/USDC", start=candles.index[0],
                     exchange_url=srv.url, progress=False)  # the default 1 s backoff: no time to waste
        assert srv.requests == []


def test_answers_that_cannot_change_are_not_retried(candles, store):
    from data._download import _permanent

    assert [s for s in (400, 403, 404, 408, 418, 425, 429, 451, 500, 501, 502, 503, 504) if _permanent(s)] == [
        400, 403, 404, 451, 501]
    with serve(candles, candles.index[-1], faults="501=1") as srv:
        with pytest.raises(GruowError, match=r"^binance: HTTP 501 \(ExchangeNotAvailable\), not retried"):
            download(store, symbol="ETH/USDC", start=candles.index[0], exchange_url=srv.url, max_retries=5, **FAST)
        assert srv.fault_counts == {"501": 1}


def test_cli_bad_retries_port_and_replay_start(candles, home, monkeypatch, capsys, tmp_path):
    code, out, err = cli(monkeypatch, capsys, "data", "download", "--symbol", "ETH/USDC", "--start", "2025-07-21",
                         "--retries", "-1")
    assert code == 2 and err.strip().splitlines()[-1] == "error: --retries -1 must be a whole number from 0 to 20"
    code, out, err = cli(monkeypatch, capsys, "replay-server", "--port", "70000")
    assert code == 2 and err.strip().splitlines()[-1] == "error: --port 70000 must be between 0 and 65535 (0 picks a free port)"
    path = shared_file(CSV)
    code, out, err = cli(monkeypatch, capsys, "replay-server", "--data", str(path), "--start", "2020-01-01",
                         "--port", "0")
    assert code == 2 and err.strip().splitlines()[-1] == (
        "error: --start 2020-01-01T00:00:00+00:00 is outside the candles served: it must lie between the first "
        "candle's open 2025-07-21T09:22:00+00:00 and the last candle's close 2025-07-26T04:44:00+00:00 "
        "(last candle 2025-07-26T04:43:00+00:00)")
    assert not home.exists() or not any(p.is_file() for p in home.rglob("*"))
