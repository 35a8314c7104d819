"""A written run folder: the ledger reconciles, metrics match an independent computation, writes are atomic."""
import json
import math

import numpy as np
import pandas as pd
import pytest

import backtests._runner as runner_mod
from backtests import run_backtest
from data import read_candles
from strategies import GRUParams

from conftest import shared_file


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A GRU-rules run with fee, slippage and shorts on the last ~1.5 days of real ETH/USDC candles,
    driven by a forecast frame made from past closes only (a 30-bar momentum)."""
    c = read_candles(shared_file("eth_usdc_1m_hyperliquid_2025-07-21.csv"), symbol="ETH/USDC",
                     exchange="hyperliquid").iloc[-2_200:]
    mom = (c["close"] / c["close"].shift(30) - 1.0).fillna(0.0).to_numpy()
    ref = c["close"].to_numpy()
    cols = {"ref_close": ref}
    for h in range(1, 9):
        p = ref * (1.0 + mom)
        cols.update({f"open_{h}": ref, f"high_{h}": p * 1.002, f"low_{h}": p * 0.998, f"close_{h}": p})
    fc = pd.DataFrame(cols, index=c.index)
    out = tmp_path_factory.mktemp("home") / "backtests"
    r = run_backtest(c, strategy="gru", start=c.index[200], forecasts=fc, fee=0.001, slippage_bps=2.0,
                     params=GRUParams(horizon=8, entry_threshold=0.0045, allow_short=True), out_dir=out,
                     progress=False)
    return r


def test_run_folder_has_the_five_files(run):
    names = sorted(p.name for p in run.out_dir.iterdir())
    assert names == ["config.json", "equity.csv", "metrics.json", "tearsheet.html", "trades.csv"]
    assert run.out_dir.name.split("-")[1:3] == ["gru", "ETH_USDC"]
    cfg = json.loads((run.out_dir / "config.json").read_text())
    assert cfg["data"]["sha256"] and len(cfg["data"]["sha256"]) == 64
    assert cfg["data"]["rows"] == 2_200 - 200 + 128 and cfg["warmup_candles"] == 128
    assert cfg["params"]["entry_threshold"] == 0.0045 and cfg["fee"] == 0.001
    assert cfg["versions"]["backtrader"] and cfg["forecasts_sha256"]
    html = (run.out_dir / "tearsheet.html").read_text()
    assert "Buy &amp; hold" in html or "BUY &amp; HOLD" in html
    assert "qtpylib.io" not in html  # offline page


def test_ledger_replays_to_equity_and_final_equity(run):
    trades = pd.read_csv(run.out_dir / "trades.csv", parse_dates=["time"])
    eq = pd.read_csv(run.out_dir / "equity.csv", parse_dates=["timestamp"]).set_index("timestamp")
    metrics = json.loads((run.out_dir / "metrics.json").read_text())
    assert len(trades) > 10 and (trades["side"] == "sell").any()
    assert len(eq) == 2_000 and list(eq.columns) == ["close", "cash", "position", "equity", "benchmark_equity"]
    cash, pos = 10_000.0, 0.0
    by_time = trades.groupby("time")
    fills = {t: g for t, g in by_time}
    replay = []
    for t, row in eq.iterrows():
        for _, f in fills.get(t, pd.DataFrame()).iterrows():
            signed = f["size"] if f["side"] == "buy" else -f["size"]
            assert f["fee"] == pytest.approx(0.001 * f["size"] * f["price"], rel=1e-12)
            cash -= signed * f["price"] + f["fee"]
            pos += signed
            assert cash == pytest.approx(f["cash_after"], abs=1e-6)
            assert pos == pytest.approx(f["position_after"], abs=1e-9)
        replay.append(cash + pos * row["close"])
    np.testing.assert_allclose(replay, eq["equity"], atol=1e-6, rtol=0)
    assert replay[-1] == pytest.approx(metrics["final_equity"], abs=1e-6)
    assert sum(fills[t]["fee"].sum() for t in fills) == pytest.approx(metrics["fees_paid"], abs=1e-6)


def test_metrics_equal_an_independent_numpy_computation(run):
    eq = pd.read_csv(run.out_dir / "equity.csv")["equity"].to_numpy()
    m = json.loads((run.out_dir / "metrics.json").read_text())
    e = np.concatenate([[10_000.0], eq])
    r = np.diff(e) / e[:-1]
    per_year = 365 * 24 * 60
    sharpe = r.mean() / r.std(ddof=1) * math.sqrt(per_year)
    drawdown = (e / np.maximum.accumulate(e) - 1.0).min()
    cagr = (e[-1] / e[0]) ** (per_year / len(r)) - 1.0
    assert m["sharpe"] == pytest.approx(sharpe, rel=1e-9)
    assert m["max_drawdown"] == pytest.approx(drawdown, rel=1e-9)
    assert m["cagr"] == pytest.approx(cagr, rel=1e-6)
    assert m["total_return"] == pytest.approx(e[-1] / 1e4 - 1.0, rel=1e-12)
    assert m["volatility"] == pytest.approx(r.std(ddof=1) * math.sqrt(per_year), rel=1e-9)
    assert m["periods_per_year"] == per_year
    position = pd.read_csv(run.out_dir / "equity.csv")["position"].to_numpy()
    assert m["exposure"] == pytest.approx((position != 0).mean())
    bench = pd.read_csv(run.out_dir / "equity.csv")["benchmark_equity"].to_numpy()
    assert m["benchmark_total_return"] == pytest.approx(bench[-1] / 1e4 - 1.0, rel=1e-12)


def test_win_rate_counts_closed_round_trips_after_fees(run):
    t = run.trades
    flat = np.flatnonzero(np.abs(t["position_after"].to_numpy()) < 1e-12)
    pnls, start = [], 0
    for end in flat:
        legs = t.iloc[start:end + 1]
        signed = np.where(legs["side"] == "buy", legs["size"], -legs["size"])
        pnls.append(float(-(signed * legs["price"]).sum() - legs["fee"].sum()))
        start = end + 1
    assert run.metrics["win_rate"] == pytest.approx(np.mean(np.array(pnls) > 0))
    assert run.metrics["n_trades"] == len(pnls) + (1 if start < len(t) else 0)


def test_failed_run_leaves_no_folder(tmp_path, monkeypatch):
    c = read_candles(shared_file("eth_usdc_1m_hyperliquid_2025-07-21.csv"), symbol="ETH/USDC",
                     exchange="hyperliquid").iloc[:400]

    def boom(*a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(runner_mod, "write_tearsheet", boom)
    out = tmp_path / "backtests"
    with pytest.raises(RuntimeError, match="disk full"):
        run_backtest(c, strategy="buyhold", out_dir=out, progress=False)
    assert list(out.iterdir()) == []  # neither a run folder nor a temporary one
