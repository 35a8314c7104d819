"""What a backtest checks and tells about its inputs (warm-up, gaps, shorts on spot, rejected orders)
and that identical runs written at the same moment each get their own folder."""
import copy
import dataclasses
import json
import logging
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
import pytest

import backtests._runner as runner_mod
from backtests import run_backtest, write_run
from data import GruowError, make_candles
from strategies import GRUParams, SMAParams


def candles(closes, opens=None, start="2025-01-01T00:00", symbol="ETH/USDC", index=None):
    c = np.asarray(closes, float)
    o = c if opens is None else np.asarray(opens, float)
    idx = index if index is not None else pd.date_range(start, periods=len(c), freq="min", tz="UTC")
    df = pd.DataFrame({"open": o, "high": np.maximum(o, c) + 0.5, "low": np.minimum(o, c) - 0.5, "close": c,
                       "volume": 1.0}, index=idx)
    return make_candles(df, exchange="test", symbol=symbol, timeframe="1m")


def forecasts(c, ret):
    ref = c["close"].to_numpy()
    cols = {"ref_close": ref}
    for h in range(1, 9):
        p = ref * (1.0 + ret)
        cols.update({f"open_{h}": ref, f"high_{h}": p, f"low_{h}": p, f"close_{h}": p})
    return pd.DataFrame(cols, index=c.index)


def warnings_of(caplog):
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


def test_identical_runs_written_at_once_get_their_own_folders(tmp_path, monkeypatch):
    c = candles(3000.0 + np.sin(np.arange(300) / 7.0))
    result = run_backtest(c, strategy="buyhold", progress=False)
    n = 4
    # every writer has picked its folder name before any renames its finished folder into place
    barrier = threading.Barrier(n)
    real = runner_mod.write_trades_csv

    def slow_trades(trades, path):
        barrier.wait(timeout=10)
        return real(trades, path)

    monkeypatch.setattr(runner_mod, "write_trades_csv", slow_trades)
    copies = [dataclasses.replace(result, config=copy.deepcopy(result.config), timings={}) for _ in range(n)]
    with ThreadPoolExecutor(n) as pool:
        dirs = list(pool.map(lambda r: write_run(r, tmp_path, tearsheet=False), copies))
    assert len(set(dirs)) == n
    rid = runner_mod.run_id(result.config)
    assert sorted(d.name for d in dirs) == sorted([rid] + [f"{rid}-{k}" for k in range(2, n + 1)])
    for d in dirs:
        assert sorted(p.name for p in d.iterdir()) == ["config.json", "equity.csv", "metrics.json", "trades.csv"]
        assert json.loads((d / "config.json").read_text())["run_id"] == d.name
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(d.name for d in dirs)  # no temporary folder left


def test_sma_warns_about_missing_history_and_gets_the_warm_up_it_needs(caplog):
    c = candles(3000.0 + 5 * np.sin(np.arange(400) / 9.0))
    with caplog.at_level(logging.WARNING):
        r = run_backtest(c, strategy="sma", start=c.index[10], progress=False)
    warned = [w for w in warnings_of(caplog) if "unbroken history" in w]
    assert warned == ["only 10 candle(s) of unbroken history before 2025-01-01T00:10:00+00:00 (the data begin at "
                      "2025-01-01T00:00:00+00:00); the sma strategy needs 60 for its slow mean of 60 closes: its "
                      "first decisions wait for enough history (fewer trades)"]
    assert r.config["warmup_candles"] == 10
    caplog.clear()
    # a slow window longer than the default 128-candle warm-up: the feed takes all of it
    with caplog.at_level(logging.WARNING):
        r = run_backtest(c, strategy="sma", start=c.index[300], params=SMAParams(fast=5, slow=200), progress=False)
    assert r.config["warmup_candles"] == 200
    assert not [w for w in warnings_of(caplog) if "unbroken history" in w]
    assert r.metrics["n_trades"] > 0


def test_gaps_in_the_range_are_counted_and_a_long_one_refused():
    idx = pd.date_range("2025-01-01T00:00", periods=400, freq="min", tz="UTC")
    short_holes = idx.delete([200, 201, 202, 300])  # 3 then 1 missing candle
    c = candles(np.full(len(short_holes), 3000.0), index=short_holes)
    with pytest.MonkeyPatch.context() as mp:
        seen = []
        mp.setattr(runner_mod.log, "warning", lambda msg, *a: seen.append(msg % a))
        r = run_backtest(c, strategy="buyhold", start=idx[150], end=idx[-1], progress=False)
    assert r.config["data"]["gaps"] == {"count": 2, "missing": 4, "longest": "P0DT0H3M0S",
                                        "longest_start": "2025-01-01T03:20:00+00:00",
                                        "longest_end": "2025-01-01T03:23:00+00:00"}
    assert any("2 gap(s) in the candles (4 missing); the longest is 0 days 00:03:00 without candles from "
               "2025-01-01T03:20:00+00:00" in w for w in seen)
    # a hole of two days inside the range: refused, then allowed
    long_hole = idx[:200].append(idx[200:] + pd.Timedelta("2D"))
    c = candles(3000.0 + np.sin(np.arange(400) / 5.0), index=long_hole)
    with pytest.raises(GruowError, match=r"span a gap of 2 days 00:00:00 without candles from "
                                         r"2025-01-01T03:20:00\+00:00 to 2025-01-03T03:20:00\+00:00.*--allow-gaps"):
        run_backtest(c, strategy="buyhold", start=long_hole[150], end=long_hole[-1], progress=False)
    r = run_backtest(c, strategy="buyhold", start=long_hole[150], end=long_hole[-1], allow_gaps=True, progress=False)
    assert r.config["data"]["gaps"]["count"] == 1
    # a range starting right after it: candles from before the hole are no warm-up
    with pytest.MonkeyPatch.context() as mp:
        seen = []
        mp.setattr(runner_mod.log, "warning", lambda msg, *a: seen.append(msg % a))
        r = run_backtest(c, strategy="sma", start=long_hole[230], end=long_hole[-1], progress=False)
    assert r.config["data"]["gaps"]["count"] == 0 and r.config["warmup_candles"] == 30
    assert r.config["data"]["first"] == "2025-01-03T03:20:00+00:00"
    assert seen == ["only 30 candle(s) of unbroken history before 2025-01-03T03:50:00+00:00 (a gap in the candles "
                    "ends at 2025-01-03T03:20:00+00:00); the sma strategy needs 60 for its slow mean of 60 closes: "
                    "its first decisions wait for enough history (fewer trades)"]


def test_short_on_a_spot_pair_is_warned_about(caplog):
    for symbol, warned in (("ETH/USDC", True), ("ETH/USDC:USDC", False)):
        c = candles(3000.0 - np.arange(200.0), symbol=symbol)
        caplog.clear()
        with caplog.at_level(logging.WARNING):
            r = run_backtest(c, strategy="gru", forecasts=forecasts(c, -0.01), fee=0.0, progress=False,
                             params=GRUParams(horizon=2, allow_short=True))
        assert (r.trades["reason"] == "entry_short").any()
        hits = [w for w in warnings_of(caplog) if "--short on the spot pair" in w]
        assert hits == ([f"--short on the spot pair {symbol}: shorting is simulated as if margin or a perpetual "
                         "were available (a short sale credits its proceeds; no borrow fee, funding or "
                         "liquidation)"] if warned else [])


def test_many_rejected_orders_give_one_warning(caplog):
    # every open is above the previous close: an entry sized with all the cash at the close never fills
    n = 60
    c = candles(np.full(n, 100.0), opens=np.full(n, 101.0))
    with caplog.at_level(logging.DEBUG, logger="strategies"):
        r = run_backtest(c, strategy="gru", start=c.index[1], forecasts=forecasts(c, 0.05), fee=0.0,
                         params=GRUParams(stake=1.0), progress=False)
    assert r.metrics["rejected_orders"] == n - 1 and r.metrics["n_trades"] == 0
    bt_debug = [x for x in caplog.records if x.name == "strategies._bt"]
    assert len(bt_debug) == n - 1 and all(x.levelno == logging.DEBUG for x in bt_debug)
    warned = [w for w in warnings_of(caplog) if "not filled" in w or "rejected" in w]
    assert warned == [f"{n - 1} order(s) not filled: not affordable at the next open incl. fee (orders are sized "
                      "at the decision close and never resized; a --stake below 1 leaves room), the first at "
                      "2025-01-01T00:01:00+00:00; -v lists each"]
