"""No lookahead: corrupting every candle from time T on leaves every trade before T unchanged.

(A fill AT T happens at candle T's corrupted open: its price — and whether cash can pay it — may
change, so it is not compared.) Checked for the SMA baseline and for the GRU strategy with
forecasts from a real (tiny, quickly trained) GRU checkpoint, recomputed on the corrupted candles.
"""
import numpy as np
import pandas as pd
import pytest

from backtests import run_backtest
from data import read_candles
from strategies import GRUParams

from conftest import shared_file


@pytest.fixture(scope="module")
def candles():
    return read_candles(shared_file("eth_usdc_1m_hyperliquid_2025-07-21.csv"), symbol="ETH/USDC",
                        exchange="hyperliquid")


def corrupt_from(c: pd.DataFrame, t: pd.Timestamp) -> pd.DataFrame:
    bad = c.copy()
    after = bad.index >= t
    rng = np.random.default_rng(1)
    factor = rng.uniform(0.8, 1.25, after.sum())
    for col in ("open", "high", "low", "close"):
        bad.loc[after, col] = bad.loc[after, col].to_numpy() * factor
    bad.loc[after, "volume"] = bad.loc[after, "volume"].to_numpy() * 7.0
    bad.attrs = dict(c.attrs)
    return bad


def assert_same_before(a, b, t):
    ta, tb = a.trades, b.trades
    before_a, before_b = ta[ta["time"] < t].reset_index(drop=True), tb[tb["time"] < t].reset_index(drop=True)
    assert len(before_a) > 5
    pd.testing.assert_frame_equal(before_a, before_b)
    pd.testing.assert_series_equal(a.equity[a.equity.index < t], b.equity[b.equity.index < t])
    # and the corruption did change what came after (the test has teeth)
    assert not a.equity[a.equity.index > t].equals(b.equity[b.equity.index > t])


def test_sma_trades_before_t_unchanged(candles):
    c = candles.iloc[-1_500:]
    t = c.index[900]
    params = {"fast": 5, "slow": 20}
    a = run_backtest(c, strategy="sma", params=params, progress=False)
    b = run_backtest(corrupt_from(c, t), strategy="sma", params=params, progress=False)
    assert_same_before(a, b, t)


def test_gru_trades_before_t_unchanged_with_a_real_checkpoint(candles, tmp_path_factory):
    from forecaster import TrainConfig, forecast, train

    folder = tmp_path_factory.mktemp("model")
    ckpt = train(candles.iloc[:1_500], TrainConfig(hidden=8, max_epochs=1, samples_per_epoch=256, batch_size=128,
                                                   seed=0, patience=1), folder / "tiny.pt", progress=False)
    c = candles.iloc[-1_500:]
    t = c.index[900]
    # a threshold in the middle of this model's forecasts, so entries depend on the forecast values
    fc = forecast(ckpt, c, progress=False)
    ret = (fc["close_8"] / fc["ref_close"] - 1.0).to_numpy()
    params = GRUParams(horizon=4, entry_threshold=float(np.median(ret)), exit_threshold=float(np.median(ret)))
    a = run_backtest(c, strategy="gru", model=ckpt, fee=0.0, params=params, progress=False)
    b = run_backtest(corrupt_from(c, t), strategy="gru", model=ckpt, fee=0.0, params=params, progress=False)
    assert_same_before(a, b, t)
    # the forecasts themselves: rows before T identical, rows from T on differ
    fa, fb = a.forecasts, b.forecasts
    pd.testing.assert_frame_equal(fa[fa.index < t], fb[fb.index < t])
    assert not np.allclose(fa[fa.index >= t].to_numpy(), fb[fb.index >= t].to_numpy())
