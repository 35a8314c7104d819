"""The decision rules and the fill/fee/sizing model, without backtrader (hand-made numbers)."""
import math

import numpy as np
import pandas as pd
import pytest

from data import GruowError
from strategies import (
    HOLD,
    BarRunner,
    GRUParams,
    GRURules,
    SimBroker,
    SMARules,
    TradeState,
    commission,
    entry_size,
    fill_price,
    gru_signals,
    make_rules,
    round_trip_cost,
)


def test_fractional_sizing_half_of_equity_at_3000():
    size = entry_size(equity=10_000.0, cash=10_000.0, price=3_000.0, stake=0.5, fee=0.001, slippage_bps=0.0)
    assert size == pytest.approx(5_000.0 / 3_000.0, rel=1e-12)  # 1.6667 ETH, not 1
    assert round(size, 4) == 1.6667


def test_entry_size_is_capped_by_cash_after_fee_and_slippage():
    # stake 1.0 of equity 10,000 wants 5 ETH at 2,000, but only 4,000 cash is free
    size = entry_size(equity=10_000.0, cash=4_000.0, price=2_000.0, stake=1.0, fee=0.001, slippage_bps=10.0)
    assert size == pytest.approx(4_000.0 / (2_000.0 * 1.001 * 1.001), rel=1e-12)
    assert entry_size(equity=10_000.0, cash=0.0, price=2_000.0, stake=1.0, fee=0.0, slippage_bps=0.0) == 0.0


def test_fill_price_and_commission():
    assert fill_price(2_000.0, +1.0, 5.0) == pytest.approx(2_001.0)  # 5 bps against a buy
    assert fill_price(2_000.0, -1.0, 5.0) == pytest.approx(1_999.0)  # and against a sell
    assert commission(-1.5, 2_100.0, 0.00075) == pytest.approx(2.3625)
    assert round_trip_cost(0.001, 5.0) == pytest.approx(0.003)


def test_fees_on_both_legs_net_pnl():
    # buy 1.5 ETH at 2000, sell at 2100, fee 0.075 % on each fill -> 150 - 2.25 - 2.3625
    broker = SimBroker(cash=10_000.0, fee=0.00075, slippage_bps=0.0)
    assert broker.execute(1.5, created_price=2_000.0, open_price=2_000.0) == (2_000.0, pytest.approx(2.25))
    assert broker.execute(-1.5, created_price=2_100.0, open_price=2_100.0) == (2_100.0, pytest.approx(2.3625))
    assert broker.position == 0.0
    assert broker.cash - 10_000.0 == pytest.approx(145.3875, abs=1e-9)


def test_sim_broker_rejects_unaffordable_entry_and_never_resizes():
    broker = SimBroker(cash=1_000.0, fee=0.0, slippage_bps=0.0)
    assert broker.execute(10.0, created_price=100.0, open_price=110.0) is None  # gap up: 1,100 > 1,000
    assert (broker.cash, broker.position) == (1_000.0, 0.0)
    assert broker.execute(-2.0, created_price=100.0, open_price=110.0) == (110.0, 0.0)  # a short sale credits cash
    assert broker.cash == pytest.approx(1_220.0)


def test_entry_threshold_must_cover_round_trip_cost():
    with pytest.raises(GruowError, match="--entry-threshold 0.001 must be at least the round-trip cost 0.002"):
        GRURules(GRUParams(entry_threshold=0.001), fee=0.001)
    assert GRURules(GRUParams(), fee=0.001, slippage_bps=5).params.entry_threshold == pytest.approx(0.003)
    with pytest.raises(GruowError, match="--horizon 9"):
        make_rules("gru", {"horizon": 9}, fee=0.001, slippage_bps=0)
    with pytest.raises(GruowError, match="unknown gru parameter"):
        make_rules("gru", {"horizn": 4}, fee=0.001, slippage_bps=0)
    with pytest.raises(GruowError, match="--strategy 'ema'"):
        make_rules("ema", None, fee=0.001, slippage_bps=0)


def _rules(**kw):
    return GRURules(GRUParams(**{"horizon": 3, "entry_threshold": 0.01, "stake": 0.5, **kw}), fee=0.001)


def test_gru_entry_only_above_threshold():
    r, st = _rules(), TradeState()
    assert r.decide(st, (0.01, 90.0, 110.0), 100.0, 1_000.0, 1_000.0) is HOLD  # equal is not above
    assert r.decide(st, (math.nan, 90.0, 110.0), 100.0, 1_000.0, 1_000.0) is HOLD  # no forecast, no entry
    assert r.decide(st, (-0.05, 90.0, 110.0), 100.0, 1_000.0, 1_000.0) is HOLD  # long-only by default
    it = r.decide(st, (0.02, 90.0, 110.0), 100.0, 1_000.0, 1_000.0)
    assert it.reason == "entry_long" and it.size == pytest.approx(5.0)
    assert math.isnan(it.stop)  # stops off by default
    short = _rules(allow_short=True).decide(st, (-0.05, 90.0, 110.0), 100.0, 1_000.0, 1_000.0)
    assert short.reason == "entry_short" and short.size == pytest.approx(-5.0)


def test_gru_exits_after_horizon_bars_or_when_forecast_turns():
    r = _rules()
    st = TradeState()
    entry = r.decide(st, (0.02, 90.0, 110.0), 100.0, 1_000.0, 1_000.0)
    st.on_fill(entry.size, entry)
    decisions = []
    for _ in range(3):  # the fill bar closes (bars_held 1), then 2, then 3 = horizon
        st.on_bar_close()
        decisions.append(r.decide(st, (0.005, 90.0, 110.0), 100.0, 1_000.0, 500.0).reason)
    assert decisions == ["", "", "exit_horizon"]
    st2 = TradeState(position=5.0, bars_held=1)
    assert r.decide(st2, (-0.0001, 0, 0), 100.0, 1_000.0, 500.0).reason == "exit_forecast"
    assert r.decide(st2, (-0.0001, 0, 0), 100.0, 1_000.0, 500.0).size == -5.0
    short = TradeState(position=-5.0, bars_held=1)
    assert _rules(allow_short=True).decide(short, (0.0001, 0, 0), 100.0, 1_000.0, 1_500.0).size == 5.0


def test_gru_stops_from_predicted_low_and_high():
    r = _rules(use_stops=True)
    st = TradeState()
    entry = r.decide(st, (0.02, 95.0, 104.0), 100.0, 1_000.0, 1_000.0)
    assert (entry.stop, entry.take) == (95.0, 104.0)
    st.on_fill(entry.size, entry)
    st.on_bar_close()
    assert r.decide(st, (0.02, 0, 0), 96.0, 1_000.0, 500.0) is HOLD
    assert r.decide(st, (0.02, 0, 0), 95.0, 1_000.0, 500.0).reason == "exit_stop"
    assert r.decide(st, (0.02, 0, 0), 104.5, 1_000.0, 500.0).reason == "exit_take"
    st.on_fill(-st.position)
    assert (st.position, st.bars_held, math.isnan(st.stop)) == (0.0, 0, True)


def test_gru_signals_from_forecast_frame():
    idx = pd.date_range("2025-01-01", periods=2, freq="min", tz="UTC", name="timestamp")
    cols = {"ref_close": [100.0, 200.0]}
    for h in range(1, 9):
        cols.update({f"open_{h}": [100.0, 200.0], f"high_{h}": [101.0 + h, 201.0], f"low_{h}": [99.0 - h, 199.0],
                     f"close_{h}": [100.0 + h, 200.0 - h]})
    sig = gru_signals(pd.DataFrame(cols, index=idx), horizon=4)
    np.testing.assert_allclose(sig["ret"], [0.04, -0.02])
    np.testing.assert_allclose(sig["low"], [95.0, 199.0])  # lowest predicted low over h = 1..4
    np.testing.assert_allclose(sig["high"], [105.0, 201.0])


def test_sma_signals_are_trailing():
    idx = pd.date_range("2025-01-01", periods=6, freq="min", tz="UTC", name="timestamp")
    c = pd.DataFrame({"close": [1.0, 2.0, 3.0, 4.0, 5.0, 100.0]}, index=idx)
    sig = make_rules("sma", {"fast": 2, "slow": 3}, fee=0.0, slippage_bps=0.0).signals(c)
    assert isinstance(make_rules("sma", None, fee=0.0, slippage_bps=0.0), SMARules)
    assert np.isnan(sig["slow"].iloc[1])
    assert sig["fast"].iloc[4] == 4.5 and sig["slow"].iloc[4] == 4.0  # row 4 ignores the 100 at row 5


def test_bar_runner_fills_at_next_open():
    rules = GRURules(GRUParams(horizon=1, entry_threshold=0.0, stake=0.5), fee=0.0)
    runner = BarRunner(rules, 1_000.0)
    eq0 = runner.on_bar(0, 100.0, 101.0, (0.05, 0, 0))  # decide at close 101
    assert eq0 == 1_000.0 and runner.fills == [] and runner.pending is not None
    runner.on_bar(1, 102.0, 103.0, (0.05, 0, 0))  # filled at open 102, exit decided (horizon 1)
    assert runner.fills[0].price == 102.0 and runner.fills[0].size == pytest.approx(500.0 / 101.0)
    runner.on_bar(2, 104.0, 105.0, (0.05, 0, 0), decide=False)
    assert [f.price for f in runner.fills] == [102.0, 104.0]
    assert runner.broker.cash == pytest.approx(1_000.0 + 2.0 * 500.0 / 101.0)


@pytest.mark.parametrize("strategy, params", [("gru", {"entry_threshold": 0.002, "allow_short": True}),
                                              ("gru", {"entry_threshold": 0.004}),
                                              ("sma", {"fast": 3, "slow": 7}), ("buyhold", None)])
def test_flat_hold_agrees_with_decide(strategy, params):
    """flat_hold (the backtest's bulk shortcut) marks exactly the bars where decide() holds while flat."""
    rng = np.random.default_rng(3)
    n = 400
    idx = pd.date_range("2025-01-01", periods=n, freq="min", tz="UTC", name="timestamp")
    close = 2_000.0 * np.cumprod(1.0 + rng.normal(0, 0.002, n))
    candles = pd.DataFrame({"close": close}, index=idx)
    ret = rng.normal(0, 0.003, n)
    ret[::17] = np.nan
    cols = {"ref_close": close}
    for h in range(1, 9):
        cols.update({f"open_{h}": close, f"high_{h}": close * 1.01, f"low_{h}": close * 0.99,
                     f"close_{h}": close * (1.0 + ret)})
    rules = make_rules(strategy, params, fee=0.001, slippage_bps=0.0)
    sig = rules.signals(candles, pd.DataFrame(cols, index=idx))
    hold = rules.flat_hold(sig)
    rows = list(zip(*(sig[c].to_numpy() for c in rules.columns))) if rules.columns else [()] * n
    decided = np.array([rules.decide(TradeState(), row, c, 10_000.0, 10_000.0) is HOLD for row, c in zip(rows, close)])
    np.testing.assert_array_equal(hold, decided)
    assert 0 < (~hold).sum() < n or strategy == "buyhold"
