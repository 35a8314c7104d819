"""The market-replay exchange: Binance kline semantics on a virtual clock, faults, the ccxt client."""
from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import numpy as np
import pandas as pd
import pytest

from data import Faults, GruowError, ReplayServer, make_candles, make_exchange, read_candles
from conftest import shared_file

T0 = pd.Timestamp("2025-01-01T00:00Z")
MIN = 60_000


def hand_candles(n: int = 10) -> pd.DataFrame:
    """Candle i: open 100+i, high open+2, low open-1, close open+1, volume 10+i."""
    idx = pd.date_range(T0, periods=n, freq="1min")
    o = 100.0 + np.arange(n)
    df = pd.DataFrame({"open": o, "high": o + 2, "low": o - 1, "close": o + 1, "volume": 10.0 + np.arange(n)}, index=idx)
    return make_candles(df, exchange="test", symbol="ETH/USDC", timeframe="1m")


def get(url: str, timeout: float = 5.0):
    """(status, headers, parsed JSON or text) of one GET."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            status, headers, body = r.status, dict(r.headers), r.read().decode()
    except urllib.error.HTTPError as e:
        status, headers, body = e.code, dict(e.headers), e.read().decode()
    try:
        return status, headers, json.loads(body)
    except json.JSONDecodeError:
        return status, headers, body


def ms(ts) -> int:
    return pd.Timestamp(ts).value // 1_000_000


@pytest.fixture
def hand_server():
    with ReplayServer(hand_candles(), start=T0 + pd.Timedelta("5min30s"), speed=0) as srv:
        yield srv


def test_klines_final_and_forming_candles_on_fixed_clock(hand_server):
    status, _, rows = get(f"{hand_server.url}/api/v3/klines?symbol=ETHUSDC&interval=1m")
    assert status == 200
    # clock 00:05:30: candles 00:00..00:04 are final, 00:05 is half formed, 00:06+ do not exist
    assert [r[0] for r in rows] == [ms(T0) + i * MIN for i in range(6)]
    assert rows[0] == [ms(T0), "100", "102", "99", "101", "10", ms(T0) + MIN - 1,
                       rows[0][7], rows[0][8], rows[0][9], rows[0][10], "0"]
    assert len(rows[0]) == 12 and all(isinstance(x, str) for x in rows[0][1:6])
    assert rows[4][1:6] == ["104", "106", "103", "105", "14"]
    # forming: open kept, high/low/close/volume half way from the open toward the stored values
    assert rows[5][1:6] == ["105", "106", "104.5", "105.5", "7.5"]


def test_klines_start_end_limit_like_binance(hand_server):
    url = f"{hand_server.url}/api/v3/klines?symbol=ETHUSDC&interval=1m"
    _, _, rows = get(f"{url}&startTime={ms(T0) + 1}&limit=2")  # open >= startTime, at most limit
    assert [r[0] for r in rows] == [ms(T0) + MIN, ms(T0) + 2 * MIN]
    _, _, rows = get(f"{url}&startTime={ms(T0)}&endTime={ms(T0) + 2 * MIN}")  # endTime inclusive
    assert [r[0] for r in rows] == [ms(T0) + i * MIN for i in range(3)]
    _, _, rows = get(f"{url}&endTime={ms(T0) + 3 * MIN}&limit=2")  # only endTime: the last `limit`
    assert [r[0] for r in rows] == [ms(T0) + 2 * MIN, ms(T0) + 3 * MIN]
    _, _, rows = get(f"{url}&startTime={ms(T0) + 7 * MIN}")  # after the clock: nothing yet
    assert rows == []
    assert get(f"{url}&limit=1001")[2]["code"] == -1130
    assert get(f"{url}&limit=0")[0] == 400
    status, _, body = get(f"{hand_server.url}/api/v3/klines?symbol=ETHUSDX&interval=1m")
    assert (status, body["code"]) == (400, -1121)
    assert get(f"{hand_server.url}/api/v3/klines?symbol=ETHUSDC&interval=7m")[2]["code"] == -1120
    assert get(f"{hand_server.url}/api/v3/klines?symbol=ETHUSDC&interval=5m")[0] == 400  # not replayed
    assert get(f"{hand_server.url}/api/v3/klines?symbol=ETHUSDT&interval=1m")[2] == []  # listed, no data


def test_time_ticker_and_set_clock(hand_server):
    assert get(f"{hand_server.url}/api/v3/time")[2] == {"serverTime": ms(T0) + 330_000}
    assert get(f"{hand_server.url}/api/v3/ping")[2] == {}
    t = get(f"{hand_server.url}/api/v3/ticker/24hr?symbol=ETHUSDC")[2]
    assert (t["openPrice"], t["lastPrice"], t["highPrice"], t["lowPrice"]) == ("100", "105.5", "106", "99")
    assert float(t["volume"]) == pytest.approx(10 + 11 + 12 + 13 + 14 + 7.5)
    assert get(f"{hand_server.url}/api/v3/ticker/price?symbol=ETHUSDC")[2] == {"symbol": "ETHUSDC", "price": "105.5"}
    hand_server.set_clock(T0 + pd.Timedelta("2min"))
    assert hand_server.clock == T0 + pd.Timedelta("2min")
    _, _, rows = get(f"{hand_server.url}/api/v3/klines?symbol=ETHUSDC&interval=1m")
    # at exactly 00:02 candle 00:01 has just closed and 00:02 is forming with nothing moved yet
    assert rows[1][1:6] == ["101", "103", "100", "102", "11"]
    assert rows[2][1:6] == ["102", "102", "102", "102", "0"]
    assert hand_server.kline_requests == 1
    assert [r["endpoint"] for r in hand_server.requests] == ["time", "ping", "ticker/24hr", "ticker/price", "klines"]


def test_clock_runs_at_speed():
    with ReplayServer(hand_candles(), start=T0, speed=600) as srv:
        c0 = srv.clock_ms()
        time.sleep(0.2)
        advanced = srv.clock_ms() - c0
    assert 100_000 <= advanced <= 150_000  # 0.2 s real x 600 = 120 s virtual


def test_default_start_is_after_one_page_of_history():
    df = hand_candles(1200)
    srv = ReplayServer(df, speed=0)
    assert srv.clock == df.index[999] + pd.Timedelta("1min")  # 1000 closed candles
    assert ReplayServer(hand_candles(10), speed=0).clock == T0 + pd.Timedelta("10min")


def test_fault_spec_parsing():
    f = Faults.parse("timeout=0.05,429=0.05,500=0.05,502=0.01,drop=0.05,missing=0.02,duplicate=0.02,seed=1,hang=0.5")
    assert (f.timeout, f.http429, f.http5xx, f.drop, f.missing, f.duplicate, f.seed, f.hang) == (
        0.05, 0.05, {500: 0.05, 502: 0.01}, 0.05, 0.02, 0.02, 1, 0.5)
    assert Faults.parse(f.spec) == f
    assert not Faults.parse(None).any
    for bad, msg in [("timeout=2", "between 0 and 1"), ("teapot=0.1", "unknown fault 'teapot'"),
                     ("429", "KEY=VALUE"), ("timeout=0.6,drop=0.6", "at most 1"), ("seed=x", "KEY=VALUE")]:
        with pytest.raises(GruowError, match=msg):
            Faults.parse(bad)


def test_http_faults_429_5xx_outage():
    with ReplayServer(hand_candles(), start=T0 + pd.Timedelta("5min"), speed=0, faults="429=1,retry_after=3") as srv:
        status, headers, body = get(f"{srv.url}/api/v3/time")
        assert (status, headers["Retry-After"], body["code"]) == (429, "3", -1003)
    with ReplayServer(hand_candles(), start=T0 + pd.Timedelta("5min"), speed=0, faults="502=1") as srv:
        status, headers, body = get(f"{srv.url}/api/v3/time")
        assert status == 502 and "<html>" in body  # an HTML error page, like a CDN's
        assert srv.fault_counts == {"502": 1}
    with ReplayServer(hand_candles(), start=T0 + pd.Timedelta("5min"), speed=0, faults="fail_after=2") as srv:
        url = f"{srv.url}/api/v3/klines?symbol=ETHUSDC&interval=1m"
        assert [get(url)[0] for _ in range(4)] == [200, 200, 503, 503]
        assert get(f"{srv.url}/api/v3/time")[0] == 200  # only klines are out
        srv.faults = Faults()
        assert get(url)[0] == 200


def test_connection_faults_drop_and_timeout():
    with ReplayServer(hand_candles(), start=T0 + pd.Timedelta("5min"), speed=0, faults="drop=1") as srv:
        with pytest.raises((http.client.RemoteDisconnected, urllib.error.URLError, ConnectionError)):
            urllib.request.urlopen(f"{srv.url}/api/v3/time", timeout=2)
    with ReplayServer(hand_candles(), start=T0 + pd.Timedelta("5min"), speed=0, faults="timeout=1,hang=0.5") as srv:
        t = time.monotonic()
        with pytest.raises((socket.timeout, TimeoutError, urllib.error.URLError)):
            urllib.request.urlopen(f"{srv.url}/api/v3/time", timeout=0.1)
        assert time.monotonic() - t < 0.45  # the client gave up; the server was still hanging
        assert srv.fault_counts == {"timeout": 1}


def test_missing_and_duplicate_candle_faults():
    url = "/api/v3/klines?symbol=ETHUSDC&interval=1m&startTime=%d&limit=5" % ms(T0)
    with ReplayServer(hand_candles(), start=T0 + pd.Timedelta("9min"), speed=0, faults="missing=1,seed=3") as srv:
        rows = get(srv.url + url)[2]
        assert len(rows) == 4 and len({r[0] for r in rows}) == 4
    with ReplayServer(hand_candles(), start=T0 + pd.Timedelta("9min"), speed=0, faults="duplicate=1,seed=3") as srv:
        rows = get(srv.url + url)[2]
        assert len(rows) == 6 and len({r[0] for r in rows}) == 5
        assert srv.fault_counts == {"duplicate": 1}


def test_faults_reproducible_with_seed():
    def sequence():
        with ReplayServer(hand_candles(), start=T0 + pd.Timedelta("5min"), speed=0,
                          faults="429=0.3,500=0.3,retry_after=0,seed=7") as srv:
            return [get(f"{srv.url}/api/v3/time")[0] for _ in range(20)]

    first = sequence()
    assert first == sequence()
    assert {200, 429, 500} <= set(first)


def test_ccxt_client_reads_markets_time_ticker_and_real_candles():
    df = read_candles(shared_file("eth_usdc_1m_hyperliquid_2025-07-21.csv"), symbol="ETH/USDC", exchange="hyperliquid")
    clock = df.index[3000] + pd.Timedelta("15s")
    with ReplayServer(df, start=clock, speed=0) as srv:
        ex = make_exchange("binance", url=srv.url)
        markets = ex.load_markets()
        assert {"ETH/USDC", "ETH/USDT", "BTC/USDC", "ETH/BTC"} <= set(markets)
        assert markets["ETH/USDC"]["id"] == "ETHUSDC" and markets["ETH/USDC"]["spot"]
        assert ex.fetch_time() == ms(clock)
        since = df.index[2990]
        rows = ex.fetch_ohlcv("ETH/USDC", "1m", since=ms(since), limit=20)
        assert len(rows) == 11  # 10 closed + the forming one
        got = np.array([r[1:] for r in rows[:10]])
        assert np.array_equal(got, df.iloc[2990:3000].to_numpy())  # exact, via Binance's strings
        assert rows[-1][1] == df["open"].iloc[3000]
        assert ex.fetch_ticker("ETH/USDC")["last"] == rows[-1][4]
        assert all(r["path"].startswith("/api/v3/") for r in srv.requests)  # no sapi/fapi calls


def test_cli_replay_server_serves_until_interrupted(tmp_path):
    path = shared_file("eth_usdc_1m_hyperliquid_2025-07-21.csv")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "COLUMNS": "200"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "gruow", "replay-server", "--data", str(path), "--port", str(port),
         "--speed", "0", "--start", "2025-07-22T00:00:30"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                body = get(f"http://127.0.0.1:{port}/api/v3/time", timeout=1)[2]
                break
            except (urllib.error.URLError, ConnectionError):
                assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()
                time.sleep(0.1)
        assert body == {"serverTime": ms("2025-07-22T00:00:30Z")}
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=10)
    assert proc.returncode == 0
    assert f"http://127.0.0.1:{port}" in err and "6922 candles" in err
    assert "Traceback" not in err


def test_cli_replay_server_bad_faults(tmp_path):
    path = shared_file("eth_usdc_1m_hyperliquid_2025-07-21.csv")
    r = subprocess.run([sys.executable, "-m", "gruow", "replay-server", "--data", str(path), "--port", "0",
                        "--faults", "timeout=3"], capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines()[-1].startswith("error: --faults: 'timeout=3' must be KEY=VALUE with a rate between 0 and 1")
    assert "Traceback" not in r.stderr
