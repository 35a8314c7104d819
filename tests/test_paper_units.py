"""The paper trader's parts on small hand-made inputs: the simulated broker against backtrader, the
live candle feed (forming, duplicated, missing candles), retries, the kill switch, settings,
secret masking and the state database."""
from __future__ import annotations

import logging
from pathlib import Path

import backtrader as bt
import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from backtests import KillSwitch, PaperSettings
from backtests._feed import make_feed
from backtests._paper import RedactFilter, resolve_settings
from backtests._paper_feed import LiveCandles, Retrier, StopRequested
from backtests._paper_state import PaperState
from data import GruowError, ReplayServer, make_candles, make_exchange
from strategies import STRATEGY_CLASSES, configure_broker, make_rules, simulate

T0 = pd.Timestamp("2025-01-01T00:00Z")
MIN = 60_000


def walk(n: int, seed: int, gap_sd: float = 0.0) -> pd.DataFrame:
    """A random walk; ``gap_sd`` moves each open away from the previous close (so orders sized at a
    close can become unaffordable at the next open)."""
    rng = np.random.default_rng(seed)
    c = 3000 * np.exp(np.cumsum(rng.normal(0, 0.002, n)))
    o = np.r_[c[0], c[:-1]] * (1 + rng.normal(0, gap_sd, n))
    df = pd.DataFrame({"open": o, "high": np.maximum(o, c) * 1.001, "low": np.minimum(o, c) * 0.999, "close": c,
                       "volume": 1.0}, index=pd.date_range(T0, periods=n, freq="1min"))
    return make_candles(df, exchange="test", symbol="ETH/USDC", timeframe="1m")


# ------------------------------------------------------------------------------------------ broker
@pytest.mark.parametrize("strategy, params, fee, slip, gap_sd", [
    ("sma", {"fast": 3, "slow": 7}, 0.001, 3.0, 0.0),
    ("sma", {"fast": 2, "slow": 5, "stake": 0.5}, 0.00075, 0.0, 0.0),
    ("sma", {"fast": 2, "slow": 4, "stake": 1.0}, 0.001, 20.0, 0.003),  # many rejections
    ("buyhold", None, 0.001, 5.0, 0.0),
])
def test_simulated_fills_are_backtraders_to_the_last_bit(strategy, params, fee, slip, gap_sd):
    """The paper trader fills with ``strategies.BarRunner``; a trades.csv can only be byte-identical
    to a backtest's if its cash, fees, prices and equity are backtrader's floats exactly."""
    c = walk(2000, seed=len(str(params)), gap_sd=gap_sd)
    rules = make_rules(strategy, params, fee=fee, slippage_bps=slip)
    sig = rules.signals(c, None)
    signals = list(zip(*(sig[k].to_numpy().tolist() for k in rules.columns))) if rules.columns else None
    cer = bt.Cerebro(stdstats=False)
    cer.adddata(make_feed(c))
    configure_broker(cer, fee, slip, 10_000.0)
    cer.addstrategy(STRATEGY_CLASSES[strategy], rules=rules, signals=signals, first_decision=0,
                    last_decision=len(c) - 2, record_from=0)
    ref = cer.run()[0]
    fills, eq, cash, pos, rejected = simulate(rules, c["open"].tolist(), c["close"].tolist(), signals, cash=10_000.0,
                                              first_decision=0, last_decision=len(c) - 2, record_from=0)
    assert [(f.bar, f.size, f.price, f.fee, f.cash_after) for f in fills] == [f[:5] for f in ref.fills]
    assert eq == ref.rec_equity and cash == ref.rec_cash
    assert rejected == ref.rejected
    assert len(fills) >= (1 if strategy == "buyhold" else 100)
    if gap_sd:
        assert rejected > 10


# ------------------------------------------------------------------------------------------ feed
def hand(n: int = 30, drop: tuple = ()) -> pd.DataFrame:
    """Candle i: open 100+i, high +2, low -1, close +1, volume 10+i; rows in ``drop`` left out."""
    idx = pd.date_range(T0, periods=n, freq="1min")
    o = 100.0 + np.arange(n)
    df = pd.DataFrame({"open": o, "high": o + 2, "low": o - 1, "close": o + 1, "volume": 10.0 + np.arange(n)},
                      index=idx).drop(index=[idx[i] for i in drop])
    return make_candles(df, exchange="test", symbol="ETH/USDC", timeframe="1m")


def feed_for(srv, **kw) -> LiveCandles:
    ex = make_exchange("binance", srv.url)
    ex.rateLimit = 0
    ex.load_markets()
    return LiveCandles(ex, "ETH/USDC", "1m", Retrier("binance", base_delay=0.001), **kw)


def expected(i0: int, i1: int) -> list[tuple]:
    return [(T0.value // 10**6 + i * MIN, 100.0 + i, 102.0 + i, 99.0 + i, 101.0 + i, 10.0 + i) for i in range(i0, i1)]


def test_feed_returns_closed_candles_only_never_the_forming_one():
    # clock 00:20:45: candles 00:00..00:19 are closed, 00:20 is forming (partial values on the wire)
    with ReplayServer(hand(), start=T0 + pd.Timedelta("20min45s"), speed=0) as srv:
        feed = feed_for(srv)
        now = feed.server_ms()
        got = feed.closed(T0.value // 10**6 + 5 * MIN, now)
        assert got.candles == expected(5, 20)
        assert got.dropped_forming == 1 and got.gaps == []
        # at exactly 00:21:00 the 00:20 candle has closed
        srv.set_clock(T0 + pd.Timedelta("21min"))
        assert feed.closed(T0.value // 10**6 + 20 * MIN, feed.server_ms()).candles == expected(20, 21)


def test_feed_ignores_duplicates_and_refetches_missing_candles():
    with ReplayServer(hand(), start=T0 + pd.Timedelta("29min30s"), speed=0, faults="duplicate=0.5,missing=0.5,seed=4") \
            as srv:
        feed = feed_for(srv)
        dup = miss = refetched = 0
        for _ in range(20):
            got = feed.closed(T0.value // 10**6, feed.server_ms())
            assert got.candles == expected(0, 29) and got.gaps == []
            dup += got.duplicates
            refetched += got.refetches
        miss = srv.fault_counts.get("missing", 0)
    assert dup > 3 and miss > 3 and refetched > 3


def test_feed_records_a_candle_the_exchange_never_has_as_a_gap(caplog):
    with ReplayServer(hand(drop=(10, 11)), start=T0 + pd.Timedelta("25min10s"), speed=0) as srv:
        feed = feed_for(srv, gap_retries=2)
        got = feed.closed(T0.value // 10**6 + 5 * MIN, feed.server_ms())
    assert got.candles == expected(5, 10) + expected(12, 25)
    assert got.gaps == [(T0.value // 10**6 + 10 * MIN, 2)] and got.refetches == 2
    assert "still missing after 2 refetches; recorded as a gap" in caplog.text


def test_feed_pages_through_a_long_catch_up():
    with ReplayServer(hand(2600), start=T0 + pd.Timedelta("2500min"), speed=0) as srv:
        got = feed_for(srv).closed(T0.value // 10**6 + 10 * MIN, srv.clock_ms())
    assert got.candles == expected(10, 2500) and got.requests == 3


# ------------------------------------------------------------------------------------------ retries
def test_retrier_retries_network_errors_with_backoff_and_honours_retry_after(monkeypatch, caplog):
    import ccxt

    waits = []
    monkeypatch.setattr(Retrier, "_wait", lambda self, s: waits.append(round(s, 6)))

    class Ex:
        last_response_headers = {"Retry-After": "0.5"}
        calls = 0

        def fetch_time(self):
            Ex.calls += 1
            errors = [ccxt.RequestTimeout("t"), ccxt.ExchangeNotAvailable("503"), ccxt.NetworkError("reset"),
                      ccxt.RateLimitExceeded("429")]
            if Ex.calls <= len(errors):
                raise errors[Ex.calls - 1]
            return 42

    r = Retrier("x", base_delay=0.01, max_delay=1.0)
    assert r(Ex().fetch_time) == 42
    assert waits == [0.01, 0.02, 0.04, 0.5]  # doubling, then at least Retry-After on the 429
    assert r.retries == 4 and r.counts == {"RequestTimeout": 1, "ExchangeNotAvailable": 1, "NetworkError": 1,
                                           "RateLimitExceeded": 1}
    assert caplog.text.count("; retry ") == 4

    def bad_symbol():
        raise ccxt.BadSymbol("no such market")

    with pytest.raises(ccxt.BadSymbol):  # not a network problem: never retried
        r(bad_symbol)
    assert r.retries == 4


def test_retrier_gives_up_waiting_when_a_stop_is_requested():
    import ccxt

    def down():
        raise ccxt.ExchangeNotAvailable("down")

    r = Retrier("x", base_delay=5.0, should_stop=lambda: True)
    with pytest.raises(StopRequested):
        r(down)


# ------------------------------------------------------------------------------------------ kill switch
def test_kill_switch_drawdown_and_daily_loss_by_hand():
    day = 86_400_000
    k = KillSwitch(max_drawdown=0.10, daily_loss_limit=0.05, peak=1000.0, day_start=1000.0, last_equity=1000.0)
    assert k.update(0, 1100.0) is None and k.peak == 1100.0
    assert k.update(60_000, 1050.0) is None  # -4.5 % from the peak, +5 % on the day
    trip = k.update(120_000, 989.0)  # -10.09 % from 1100
    assert trip["reason"] == "max_drawdown" and trip["drawdown"] == pytest.approx(989 / 1100 - 1)
    assert k.active(day * 5) and k.update(day * 5, 2000.0) is None  # for good
    k = KillSwitch(max_drawdown=None, daily_loss_limit=0.05, peak=1000.0, day_start=1000.0, last_equity=1000.0)
    assert k.update(day - 60_000, 960.0) is None  # -4 % on day 0
    # day 1 starts from the close of day 0's last candle: 960; -5 % of that is 912
    assert k.update(day, 913.0) is None and k.day_start == 960.0
    trip = k.update(day + 60_000, 912.0)
    assert trip["reason"] == "daily_loss" and trip["until"] == pd.Timestamp(2 * day, unit="ms", tz="UTC").isoformat()
    assert k.active(2 * day - 60_000) and not k.active(2 * day)


# ------------------------------------------------------------------------------------------ settings
def test_settings_new_session_defaults_and_resume_rules(tmp_path):
    model = tmp_path / "m.pt"
    model.write_bytes(b"x")
    new = resolve_settings(None, {"model": str(model), "fee": None, "max_drawdown": 0})
    assert new.fee == 0.001 and new.max_drawdown is None and new.daily_loss_limit == 0.10
    assert new.params["entry_threshold"] == pytest.approx(0.002) and new.params["horizon"] == 8
    stored = new.to_dict()
    assert resolve_settings(stored, {"fee": None, "params": {"horizon": None}}) == new  # nothing given: resume
    assert resolve_settings(stored, {"fee": 0.001, "model": str(model)}) == new  # the same values: fine
    with pytest.raises(GruowError, match=r"--fee 0.002 differs from this session's 0.001"):
        resolve_settings(stored, {"fee": 0.002})
    with pytest.raises(GruowError, match=r"--params"):
        resolve_settings(stored, {"params": {"horizon": 4}})
    with pytest.raises(GruowError, match="needs a model"):
        resolve_settings(None, {})
    with pytest.raises(GruowError, match="--max-drawdown 1.5 must be a fraction"):
        PaperSettings(strategy="buyhold", max_drawdown=1.5).check()
    # a whole PaperSettings counts every field, None (= off) included
    explicit = PaperSettings(model=str(model), max_drawdown=None, daily_loss_limit=None)
    assert resolve_settings(None, explicit.to_dict(), explicit=True).daily_loss_limit is None


# ------------------------------------------------------------------------------------------ secrets
def test_redact_filter_masks_secrets_in_messages_arguments_and_tracebacks():
    f = RedactFilter(["s3cr3t-key", "ab"])  # too short to mask safely: ignored
    rec = logging.LogRecord("ccxt", logging.DEBUG, __file__, 1, "headers %s", ({"X-KEY": "s3cr3t-key"},), None)
    f.filter(rec)
    assert rec.getMessage() == "headers {'X-KEY': '***'}"
    try:
        raise ValueError("bad key s3cr3t-key")
    except ValueError:
        import sys

        rec = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    f.filter(rec)
    assert "s3cr3t-key" not in logging.Formatter().format(rec) and "bad key ***" in rec.exc_text


# ------------------------------------------------------------------------------------------ state
def test_a_candle_transaction_is_all_or_nothing(tmp_path):
    st = PaperState.open(tmp_path)
    st.bootstrap({"settings": {}}, [(0, 1.0, 1.0, 1.0, 1.0, 1.0)], 0, {"n": 0}, {})
    with pytest.raises(ZeroDivisionError):
        with st.transaction() as c:
            c.execute("INSERT INTO fills (ts, size, price, fee, cash_after, position_after, reason) "
                      "VALUES (60000, 1, 1, 0, 0, 1, 'x')")
            c.execute("UPDATE runner SET processed = 1")
            1 / 0
    assert st.count("fills") == 0 and st.runner()[1] == 0
    st.commit_candle((60000, 2.0, 2.0, 2.0, 2.0, 1.0), [(60000, 1.5, 2.0, 0.01, 7.0, 1.5, "entry_long")],
                     (60000, 2.0, 7.0, 1.5, 10.0, 10.0), 1, {"n": 1}, [("gap", {"missing": 0})])
    assert st.runner() == (60000, 1, {"n": 1}) and st.count("fills") == 1 and st.count("equity") == 1
    assert st.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    st.close()


# ------------------------------------------------------------------------------------------ CLI errors
def test_cli_names_the_session_that_does_not_exist(tmp_path, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    from gruow.cli import app

    r = CliRunner().invoke(app, ["paper", "status", "--state", "nope", "--home", str(tmp_path)])
    assert r.exit_code != 0 and isinstance(r.exception, GruowError) and "--state 'nope'" in str(r.exception)
    r = CliRunner().invoke(app, ["paper", "status", "--state", "../x", "--home", str(tmp_path)])
    assert isinstance(r.exception, GruowError) and "plain name" in str(r.exception)
    r = CliRunner().invoke(app, ["paper", "status", "--home", str(tmp_path), "--json"])
    assert r.exit_code == 0 and r.output.strip() == "[]"
    r = CliRunner().invoke(app, ["paper", "--strategy", "gru", "--home", str(tmp_path)])
    assert isinstance(r.exception, GruowError) and "needs a model" in str(r.exception)


# ------------------------------------------------------------------------------------------ bootstrap
def test_bootstrap_takes_the_store_first_then_the_exchange(tmp_path):
    """The store holds candles 0..199 (as binance), the exchange only 150..299: the 135 warm-up
    candles 115..249 come from both, and the first candle processed is 250."""
    from backtests import run_paper
    from data import CandleStore

    CandleStore(tmp_path / "data").write(make_candles(hand(200), exchange="binance", symbol="ETH/USDC"))
    exchange_side = hand(300).iloc[150:]
    with ReplayServer(exchange_side, start=T0 + pd.Timedelta("250min"), speed=0) as srv:
        requests_before = len(srv.requests)

        def step():  # move the clock one candle per poll
            srv.set_clock(srv.clock + pd.Timedelta("1min"))

        import threading

        stop = threading.Event()

        def driver():
            seen = 0
            while not stop.is_set():
                k = srv.kline_requests
                if k > seen:
                    seen = k
                    step()
                stop.wait(0.005)

        th = threading.Thread(target=driver, daemon=True)
        th.start()
        try:
            status = run_paper(tmp_path, "boot", PaperSettings(strategy="buyhold"), exchange_url=srv.url,
                               max_candles=3, poll_interval=0.01, rate_limit_ms=0)
        finally:
            stop.set()
            th.join()
        first_kline = next(r for r in srv.requests[requests_before:] if r["endpoint"] == "klines")
    # the first kline request asks for what the store lacks: from candle 200 on
    assert int(first_kline["params"]["startTime"]) == T0.value // 10**6 + 200 * MIN
    st = PaperState.open(tmp_path / "paper" / "boot", create=False)
    warm = st.conn.execute("SELECT ts, open FROM candles WHERE warmup = 1 ORDER BY ts").fetchall()
    st.close()
    assert [t for t, _ in warm] == [T0.value // 10**6 + i * MIN for i in range(115, 250)]
    assert [o for _, o in warm] == [100.0 + i for i in range(115, 250)]
    assert status["start"] == (T0 + pd.Timedelta("250min")).isoformat() and status["processed"] == 3
    assert status["fills"] == 1  # buy-and-hold bought at the open of candle 250


def test_sessions_table_keeps_every_figure_whole_on_80_columns():
    from rich.console import Console

    from gruow._cli_paper import sessions_table

    st = {"name": "rehearsal-with-a-long-name", "health": "stopped", "last_candle": "2025-07-25T09:37:00+00:00",
          "equity": 10003.68, "return": 0.000368, "position": 2.66631, "fills": 3,
          "settings": {"exchange": "binance", "symbol": "ETH/USDC", "timeframe": "1m"}}
    console = Console(width=80, record=True, color_system=None)
    console.print(sessions_table([st, {**st, "name": "live"}], Path("/tmp/home/paper")))
    text = console.export_text()
    for whole in ("rehearsal-with-a-long-name (stopped)", "binance ETH/USDC 1m", "2025-07-25T09:37:00+00:00",
                  "10,003.68", "2.66631 ETH, 3 fill(s)", "live (stopped)"):
        assert whole in text, text
    assert "…" not in text
