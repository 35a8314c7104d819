"""Regressions from a new user's trial of paper trading: clock rate at start, unreachable exchange,
end of the replay data, a moved --exchange-url, failed first starts, crash status, the CLI's help,
option names and formats, and log volume."""
from __future__ import annotations

import logging
import socket
import threading
import time

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from backtests import list_sessions, paper_status, request_stop, run_paper
from backtests._paper_report import CRASHED
from backtests._paper_state import STATE_FILE, PaperState
from data import GruowError, ReplayServer, make_candles

T0 = pd.Timestamp("2025-01-01T00:00Z")
BUYHOLD = {"strategy": "buyhold", "exchange": "binance", "symbol": "ETH/USDC", "max_drawdown": 0,
           "daily_loss_limit": 0}


def walk(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    c = 3000 * np.exp(np.cumsum(rng.normal(0, 0.002, n)))
    o = np.r_[c[0], c[:-1]]
    df = pd.DataFrame({"open": o, "high": np.maximum(o, c) * 1.001, "low": np.minimum(o, c) * 0.999, "close": c,
                       "volume": 1.0}, index=pd.date_range(T0, periods=n, freq="1min"))
    return make_candles(df, exchange="binance", symbol="ETH/USDC", timeframe="1m")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_fast_replay_clock_is_measured_before_the_first_wait(tmp_path, caplog):
    """600x server: a minute is 0.1 s. The exchange clock's rate was assumed 1.0 for 2 s, so the
    trader slept a real minute after its first candle; and each poll logged an INFO line."""
    caplog.set_level(logging.DEBUG, logger="backtests._paper")
    with ReplayServer(walk(1000), start=T0 + pd.Timedelta(minutes=300), speed=600) as srv:
        t = time.perf_counter()
        status = run_paper(tmp_path, "fast", BUYHOLD, exchange_url=srv.url, max_candles=8, rate_limit_ms=0)
        secs = time.perf_counter() - t
    assert status["processed"] == 8
    assert secs < 10, f"{secs:.1f} s for 8 candles of a 600x replay"
    processed = [r for r in caplog.records if r.getMessage().startswith("processed ")]
    assert len(processed) >= 2  # several polls ...
    assert [r.levelno for r in processed].count(logging.INFO) == 1  # ... one INFO summary


def test_unreachable_exchange_at_start_fails_fast_and_leaves_no_session(tmp_path):
    url = f"http://127.0.0.1:{free_port()}"
    t = time.perf_counter()
    with pytest.raises(GruowError, match=r"^cannot reach http://127\.0\.0\.1:\d+ \(binance\): .*--exchange-url"):
        run_paper(tmp_path, "down", BUYHOLD, exchange_url=url, rate_limit_ms=0, retry_delay=0.2)
    assert time.perf_counter() - t < 8
    assert not (tmp_path / "paper" / "down").exists() and list_sessions(tmp_path) == []
    # not enough candles: refused, and no folder either
    with ReplayServer(walk(50), start=T0 + pd.Timedelta(minutes=50), speed=0) as srv:
        with pytest.raises(GruowError, match="only 50 closed 1m candle"):
            run_paper(tmp_path, "short", BUYHOLD, exchange_url=srv.url, rate_limit_ms=0)
    assert not (tmp_path / "paper" / "short").exists()


def test_end_of_data_moved_url_and_crash_status(tmp_path, caplog):
    """Past the replay's last candle the server answers [] while its clock runs on: the server says
    so once, the trader reports minutes without candles (not "N candles behind"). A resume against
    another host warns; a start without a recorded stop reads as crashed, not "stopped"."""
    from gruow._cli_paper import status_table
    from rich.console import Console

    caplog.set_level(logging.INFO)
    candles = walk(200)
    folder = tmp_path / "paper" / "end"
    with ReplayServer(candles, start=T0 + pd.Timedelta(minutes=150), speed=0) as srv:
        result: dict = {}
        th = threading.Thread(target=lambda: result.update(run_paper(
            tmp_path, "end", BUYHOLD, exchange_url=srv.url, poll_interval=0.01, rate_limit_ms=0)))
        th.start()
        deadline = time.monotonic() + 15
        while not (folder / STATE_FILE).is_file() or not PaperState.open(folder, create=False).started():
            assert time.monotonic() < deadline and th.is_alive()
            time.sleep(0.02)
        srv.set_clock(T0 + pd.Timedelta(minutes=260, seconds=30))
        while paper_status(tmp_path, "end").get("no_new_candles_min") is None:
            assert time.monotonic() < deadline and th.is_alive()
            time.sleep(0.02)
        live = paper_status(tmp_path, "end")
        assert request_stop(tmp_path, "end", wait=10)["stopped"]
        th.join(10)
        old_url = srv.url
    assert live["last_candle"] == "2025-01-01T03:19:00+00:00" and live["no_new_candles_min"] == 60
    assert live["behind"] == 0
    console = Console(width=300, record=True)
    console.print(status_table(live))
    text = console.export_text()
    assert "no new candles from the exchange for 60 minute(s)" in text and "behind" not in text
    logs = caplog.text
    assert logs.count("end of data at 2025-01-01T03:20:00+00:00") == 1
    assert "no new candles from the exchange for 60 minute(s)" in logs
    assert paper_status(tmp_path, "end")["health"] == "stopped"

    caplog.clear()
    with ReplayServer(candles, start=T0 + pd.Timedelta(minutes=260), speed=0) as srv2:
        new_url = srv2.url
        run_paper(tmp_path, "end", None, exchange_url=new_url, max_candles=1, rate_limit_ms=0)
    warn = [r for r in caplog.records if r.levelno == logging.WARNING and "--exchange-url" in r.getMessage()]
    assert len(warn) == 1 and new_url in warn[0].getMessage() and old_url in warn[0].getMessage()

    with PaperState.open(folder, create=False) as st:  # a start whose trader was then killed (-9)
        st.add_event("start", {"pid": 99999999, "exchange_url": new_url, "processed": 50})
    assert paper_status(tmp_path, "end")["health"] == CRASHED


def test_cli_help_names_and_formats(tmp_path):
    from gruow._cli_paper import _pct
    from gruow.cli import app

    r = CliRunner().invoke(app, ["paper", "--help"])
    assert r.exit_code == 0 and "--entry-threshold" not in r.output
    assert all(c in r.output for c in ("run", "status", "stop"))
    r = CliRunner().invoke(app, ["paper", "run", "--help"])
    assert r.exit_code == 0 and "--entry-threshold" in r.output
    r = CliRunner().invoke(app, ["report", "--paper", "nosuch", "--home", str(tmp_path)])
    assert isinstance(r.exception, GruowError) and str(r.exception).startswith("--paper 'nosuch': no paper session")
    assert _pct(0.0, signed=False) == "0.00 %" and _pct(-0.0, signed=False) == "0.00 %"
    assert _pct(-0.01234, signed=False) == "-1.23 %" and _pct(0.05) == "+5.00 %"


def test_entry_threshold_below_round_trip_cost_is_refused_by_paper_and_backtest_alike(tmp_path):
    """Both build their rules through ``strategies.make_rules`` -> ``GRUParams.resolved``: 0 < 2 x 0.001."""
    from backtests import run_backtest
    from backtests._paper import resolve_settings

    msg = r"^--entry-threshold 0 must be at least the round-trip cost 0\.002"
    with pytest.raises(GruowError, match=msg):
        resolve_settings(None, {"model": "m.pt", "params": {"entry_threshold": 0.0}})
    with pytest.raises(GruowError, match=msg):
        run_backtest(walk(300), strategy="gru", model=tmp_path / "m.pt", params={"entry_threshold": 0.0},
                     out_dir=tmp_path, tearsheet=False)
    assert resolve_settings(None, {"model": "m.pt", "params": {"entry_threshold": 0.0}, "fee": 0.0}).params[
        "entry_threshold"] == 0.0
