"""The backtest runner's fill timing, fees, sizing, rejections and parity with the simulated broker,
on hand-made candles and forecast frames with known answers."""
import logging

import numpy as np
import pandas as pd
import pytest

from backtests import WARMUP, run_backtest
from data import GruowError, make_candles, read_candles
from strategies import BuyHoldRules, GRUParams, make_rules, simulate

from conftest import shared_file


def hand_candles(opens, closes, start="2025-01-01T00:00"):
    idx = pd.date_range(start, periods=len(opens), freq="min", tz="UTC")
    o, c = np.asarray(opens, float), np.asarray(closes, float)
    df = pd.DataFrame({"open": o, "high": np.maximum(o, c), "low": np.minimum(o, c), "close": c,
                       "volume": 1.0}, index=idx)
    return make_candles(df, exchange="test", symbol="ETH/USDC", timeframe="1m")


def hand_forecasts(candles, rets):
    """A forecast frame (forecaster format) whose predicted return to every horizon is ``rets[i]``."""
    ref = candles["close"].to_numpy()
    cols = {"ref_close": ref}
    for h in range(1, 9):
        pred = ref * (1.0 + np.asarray(rets, float))
        cols.update({f"open_{h}": ref, f"high_{h}": pred * 1.01, f"low_{h}": pred * 0.99, f"close_{h}": pred})
    return pd.DataFrame(cols, index=candles.index.rename("timestamp"))


def test_signal_at_bar_t_fills_at_open_of_t_plus_1():
    # bar 0 is warm-up; the decision at its close (101) fills at bar 1's OPEN (102), not at 100 or 101
    c = hand_candles([100, 102, 104], [101, 103, 105])
    fc = hand_forecasts(c, [0.05, 0.05, 0.05])
    r = run_backtest(c, strategy="gru", start=c.index[1], forecasts=fc, fee=0.0, cash=1_000.0,
                     params=GRUParams(horizon=1, stake=0.5), progress=False)
    t = r.trades
    size = 500.0 / 101.0
    assert list(t["time"]) == [c.index[1], c.index[2]]
    assert list(t["side"]) == ["buy", "sell"]
    assert list(t["price"]) == [102.0, 104.0]  # horizon 1: exit decided at bar 1's close, filled at bar 2's open
    assert t["size"].tolist() == pytest.approx([size, size], rel=1e-12)
    assert r.equity.tolist() == pytest.approx([1_000.0 + size * (103 - 102), 1_000.0 + size * (104 - 102)])
    assert list(r.equity.index) == list(c.index[1:])
    assert r.metrics["n_trades"] == 1 and r.metrics["win_rate"] == 1.0


def test_no_fill_at_the_decision_bar_even_for_the_first_bar():
    # without warm-up the first decision is at bar 0's close; nothing can fill at bar 0
    c = hand_candles([100, 150, 250], [150, 250, 350])
    r = run_backtest(c, strategy="buyhold", start=c.index[0], fee=0.0, cash=1_000.0, progress=False)
    assert r.trades["time"].tolist() == [c.index[1]] and r.trades["price"].tolist() == [150.0]
    assert r.trades["size"].iloc[0] == pytest.approx(0.99 * 1_000.0 / 150.0)  # default stake 0.99
    assert r.equity.tolist() == pytest.approx([1_000.0, 1_000.0 + 6.6 * 100.0, 1_000.0 + 6.6 * 200.0])


def test_fees_on_both_legs_give_net_pnl_145_3875():
    c = hand_candles([2_000, 2_000, 2_100, 2_100], [2_000, 2_050, 2_100, 2_100])
    fc = hand_forecasts(c, [0.01, 0.0, 0.0, 0.0])
    r = run_backtest(c, strategy="gru", start=c.index[1], forecasts=fc, fee=0.00075, cash=10_000.0,
                     params=GRUParams(horizon=1, stake=0.3), progress=False)
    t = r.trades
    assert t["size"].tolist() == pytest.approx([1.5, 1.5], rel=1e-12)
    assert t["price"].tolist() == [2_000.0, 2_100.0]
    assert t["fee"].tolist() == pytest.approx([2.25, 2.3625], rel=1e-12)
    assert r.metrics["final_equity"] - 10_000.0 == pytest.approx(145.3875, abs=1e-9)
    assert r.metrics["fees_paid"] == pytest.approx(4.6125)
    assert t["cash_after"].iloc[-1] == pytest.approx(10_145.3875)


def test_fractional_size_is_kept():
    c = hand_candles([3_000, 3_000, 3_000], [3_000, 3_000, 3_000])
    fc = hand_forecasts(c, [0.01, 0.0, 0.0])
    r = run_backtest(c, strategy="gru", start=c.index[1], forecasts=fc, fee=0.001, cash=10_000.0,
                     params=GRUParams(stake=0.5), progress=False)
    assert r.trades["size"].iloc[0] == pytest.approx(5_000.0 / 3_000.0, rel=1e-12)  # 1.6667 ETH, not 1
    assert r.metrics["open_position"] == pytest.approx(1.666667, rel=1e-6)


def test_unaffordable_fill_is_rejected_logged_and_counted(caplog):
    # stake 1.0 sized at close 100 cannot be paid at a gapped-up open of 110: rejected, not resized;
    # the next decision (close 110) fills at 109.9
    c = hand_candles([100, 110, 109.9, 110], [100, 110, 110, 111])
    fc = hand_forecasts(c, [0.05, 0.05, 0.0, 0.0])
    with caplog.at_level(logging.DEBUG, logger="strategies"):
        r = run_backtest(c, strategy="gru", start=c.index[1], forecasts=fc, fee=0.0, cash=1_000.0,
                         params=GRUParams(stake=1.0), progress=False)
    assert r.metrics["rejected_orders"] == 1
    # the detail at DEBUG names the bars' times and the open it failed at; one WARNING sums up
    detail = [x.getMessage() for x in caplog.records if x.name == "strategies._bt" and x.levelno == logging.DEBUG]
    assert len(detail) == 1
    assert ("decided at the close of 2025-01-01T00:00:00+00:00 not filled at the open of 2025-01-01T00:01:00+00:00"
            in detail[0]) and "not affordable at the next open incl. fee" in detail[0] and "open 110" in detail[0]
    warnings = [x.getMessage() for x in caplog.records if x.levelno == logging.WARNING]
    assert warnings == [w for w in warnings if "not filled" not in w or w.startswith("1 order(s) not filled")]
    assert any(w.startswith("1 order(s) not filled: not affordable") and "first at 2025-01-01T00:01:00+00:00" in w
               for w in warnings)
    assert r.trades["time"].tolist() == [c.index[2]]
    assert r.trades["size"].iloc[0] == pytest.approx(1_000.0 / 110.0)


def test_bad_inputs_are_user_errors():
    c = hand_candles([1, 2, 3], [1, 2, 3])
    with pytest.raises(GruowError, match="--strategy gru needs a model"):
        run_backtest(c, strategy="gru", start=c.index[1], progress=False)
    with pytest.raises(GruowError, match="select 0 candle"):
        run_backtest(c, strategy="buyhold", start="2030-01-01", progress=False)
    with pytest.raises(GruowError, match="--cash"):
        run_backtest(c, strategy="buyhold", cash=0, progress=False)
    with pytest.raises(GruowError, match="must be after"):
        run_backtest(c, strategy="buyhold", start=c.index[2], end=c.index[1], progress=False)


def test_backtrader_and_simulated_broker_agree_on_real_data():
    """The same rules through backtrader and through strategies.simulate give the same fills to 1e-9
    (fee, slippage, shorts and exits included): the paper trader can rely on the shared fill model."""
    c = read_candles(shared_file("eth_usdc_1m_hyperliquid_2025-07-21.csv"), symbol="ETH/USDC",
                     exchange="hyperliquid").iloc[-2_000:]
    rng = np.random.default_rng(7)
    fc = hand_forecasts(c, rng.normal(0.0, 0.004, len(c)))
    params = GRUParams(horizon=4, entry_threshold=0.004, exit_threshold=-0.001, stake=0.7, allow_short=True,
                       use_stops=True)
    r = run_backtest(c, strategy="gru", forecasts=fc, fee=0.001, slippage_bps=3.0, params=params, progress=False)
    assert r.metrics["n_trades"] > 20 and (r.trades["reason"] == "entry_short").any()
    rules = make_rules("gru", params, fee=0.001, slippage_bps=3.0)
    sig = rules.signals(c, fc)
    rows = list(zip(*(sig[k].to_numpy().tolist() for k in rules.columns)))
    fills, eq, _, _, rej = simulate(rules, c["open"].tolist(), c["close"].tolist(), rows, cash=10_000.0,
                                    first_decision=WARMUP - 1, last_decision=len(c) - 2, record_from=WARMUP)
    assert rej == r.metrics["rejected_orders"]
    assert [c.index[f.bar] for f in fills] == list(r.trades["time"])
    np.testing.assert_allclose([abs(f.size) for f in fills], r.trades["size"], rtol=1e-9)
    np.testing.assert_allclose([f.price for f in fills], r.trades["price"], rtol=1e-12)
    np.testing.assert_allclose([f.fee for f in fills], r.trades["fee"], rtol=1e-9)
    np.testing.assert_allclose(eq, r.equity.to_numpy(), rtol=1e-9)
    # buy-and-hold through backtrader equals the runner's benchmark
    bh = run_backtest(c, strategy="buyhold", fee=0.001, slippage_bps=3.0, progress=False)
    np.testing.assert_allclose(bh.equity.to_numpy(), r.benchmark_equity.to_numpy(), rtol=1e-12)
    assert bh.metrics["benchmark_total_return"] == pytest.approx(bh.metrics["total_return"], abs=1e-12)
    assert isinstance(make_rules("buyhold", None, fee=0.001, slippage_bps=3.0), BuyHoldRules)
