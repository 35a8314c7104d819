"""quantstats tear sheets from 1-minute equity: daily compounding, short ranges, degenerate runs."""
import logging
import re

import numpy as np
import pandas as pd
import pytest

from backtests import build_tearsheet, daily_returns, run_backtest, write_tearsheet
from data import GruowError, read_candles

from conftest import shared_file


def minute_equity(days: float, seed: int, start="2025-06-01T00:00", vol=4e-4):
    n = int(days * 1440)
    idx = pd.date_range(start, periods=n, freq="min", tz="UTC")
    rng = np.random.default_rng(seed)
    return pd.Series(10_000.0 * np.cumprod(1.0 + rng.normal(0.0, vol, n)), index=idx)


def test_daily_returns_compound_minutes_per_utc_day():
    idx = pd.to_datetime(["2025-06-01T00:00", "2025-06-01T23:59", "2025-06-02T00:00", "2025-06-02T12:00"], utc=True)
    eq = pd.Series([105.0, 110.0, 120.0, 99.0], index=idx)
    d = daily_returns(eq, 100.0)
    assert d.index.tz is None and list(d.index) == [pd.Timestamp("2025-06-01"), pd.Timestamp("2025-06-02")]
    np.testing.assert_allclose(d.to_numpy(), [0.10, 99.0 / 110.0 - 1.0])
    # compounding the daily returns gives back the total return
    assert np.prod(1.0 + d.to_numpy()) - 1.0 == pytest.approx(99.0 / 100.0 - 1.0)


@pytest.mark.parametrize("days", [1, 30])
def test_tearsheet_builds_from_one_day_and_one_month_of_minutes(tmp_path, days):
    strat, bench = minute_equity(days, 1), minute_equity(days, 2)
    path = write_tearsheet(tmp_path / "t.html", strat, bench, 10_000.0, title="GRU-ow test sheet")
    html = path.read_text()
    assert "GRU-ow test sheet" in html and "Sharpe" in html
    assert "Periods/Year: 365" in html  # crypto trades every day, not 252
    assert "BUY &amp; HOLD" in html or "Buy &amp; hold" in html
    assert [p.name for p in tmp_path.iterdir()] == ["t.html"]  # no temporary file left


def test_tearsheet_keeps_every_day_when_the_strategy_waits(tmp_path):
    # flat for the first day: quantstats' default date matching would drop that day for the
    # benchmark too, misreporting buy-and-hold; the sheet must show both full-range returns
    bench = minute_equity(4, 5, vol=1e-3)
    strat = bench.copy()
    strat.iloc[:1440] = 10_000.0
    strat.iloc[1440:] = 10_000.0 * (1.0 + 0.5 * (bench.iloc[1440:] / bench.iloc[1439] - 1.0))
    html = write_tearsheet(tmp_path / "t.html", strat, bench, 10_000.0, title="waits").read_text()
    row = re.search(r"<tr><td>Cumulative Return</td><td>(-?[\d.]+)%</td><td>(-?[\d.]+)%</td></tr>", html)
    assert row, "no cumulative-return row"
    assert float(row.group(1)) == pytest.approx(100 * (bench.iloc[-1] / 1e4 - 1.0), abs=0.006)
    assert float(row.group(2)) == pytest.approx(100 * (strat.iloc[-1] / 1e4 - 1.0), abs=0.006)
    assert " 1 Jun, 2025" in html  # the range starts on the first day


def test_tearsheet_survives_a_strategy_that_never_trades(tmp_path):
    # constant strategy returns make quantstats' R^2 regression raise: built without the benchmark
    bench = minute_equity(3, 3)
    flat = pd.Series(10_000.0, index=bench.index)
    html = write_tearsheet(tmp_path / "t.html", flat, bench, 10_000.0, title="flat").read_text()
    assert "omitted (strategy daily returns are constant)" in html


def test_tearsheet_survives_a_run_equal_to_its_benchmark_within_one_day(tmp_path):
    # one month value per series, both equal: quantstats' histogram KDE would be singular
    eq = minute_equity(0.2, 4)
    html = write_tearsheet(tmp_path / "t.html", eq, eq.copy(), 10_000.0, title="same").read_text()
    assert "omitted (strategy and benchmark monthly returns coincide)" in html


def test_build_tearsheet_rebuilds_a_run_folder(tmp_path):
    c = read_candles(shared_file("eth_usdc_1m_hyperliquid_2025-07-21.csv"), symbol="ETH/USDC",
                     exchange="hyperliquid").iloc[-1_700:]
    r = run_backtest(c, strategy="sma", out_dir=tmp_path, progress=False)
    sheet = r.out_dir / "tearsheet.html"
    first = sheet.read_text()
    sheet.unlink()
    assert build_tearsheet(r.out_dir) == sheet
    again = sheet.read_text()
    assert "GRU-ow sma on ETH/USDC 1m" in again
    # same content apart from the embedded figures' random ids
    assert len(again) == pytest.approx(len(first), rel=0.02)
    # the header gives the per-minute figures of metrics.json beside the sheet's daily ones
    m = r.metrics
    note = (f"this sheet's tables and charts use daily-compounded returns; per-1m figures (metrics.json): Sharpe "
            f"{m['sharpe']:.2f}, max drawdown {100 * m['max_drawdown']:.2f}%")
    assert note in first and note in again


def test_build_tearsheet_refuses_a_damaged_run_folder(tmp_path):
    c = read_candles(shared_file("eth_usdc_1m_hyperliquid_2025-07-21.csv"), symbol="ETH/USDC",
                     exchange="hyperliquid").iloc[-1_000:]
    run = run_backtest(c, strategy="sma", out_dir=tmp_path, progress=False, tearsheet=False).out_dir
    good = {name: (run / name).read_text() for name in ("equity.csv", "trades.csv", "metrics.json")}
    assert len(good["trades.csv"].splitlines()) > 3
    eq = good["equity.csv"].splitlines(keepends=True)
    last = eq[-1].split(",")
    last[4] = str(float(last[4]) + 1.0)  # the final equity, edited
    cases = [
        ("equity.csv", "".join(eq[:4]), "equity.csv: 3 row(s), but metrics.json says the run has 872 bars"),
        ("equity.csv", "".join(eq[:-1] + [",".join(last)]), "equity.csv: final equity"),
        ("equity.csv", "".join(eq[:-1] + ["2025-07-26T04:43:00+00:00,1,1,0,x,1\n"]), "equity.csv: not a readable"),
        ("trades.csv", "".join(good["trades.csv"].splitlines(keepends=True)[:3]), "trades.csv: 2 fill(s), but "
                                                                                  "metrics.json says"),
        ("metrics.json", "{", "metrics.json: not valid JSON"),
    ]
    for name, text, message in cases:
        (run / name).write_text(text)
        with pytest.raises(GruowError, match=re.escape(message)):
            build_tearsheet(run)
        (run / name).write_text(good[name])
        assert not (run / "tearsheet.html").exists()
    (run / "metrics.json").unlink()
    with pytest.raises(GruowError, match="metrics.json: not found"):
        build_tearsheet(run)
    with pytest.raises(GruowError, match="not a folder"):
        build_tearsheet(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(GruowError, match="config.json: not found"):
        build_tearsheet(tmp_path / "empty")


def test_a_tear_sheet_of_one_utc_day_says_its_ratios_stay_empty(tmp_path, caplog):
    idx = pd.date_range("2025-07-25T05:38Z", periods=240, freq="1min")
    eq = pd.Series(10_000.0 * (1 + 0.0001 * np.sin(np.arange(240) / 10)), index=idx)
    caplog.set_level(logging.WARNING, logger="backtests")
    write_tearsheet(tmp_path / "one.html", eq, None, 10_000.0, title="one day")
    assert "lies within one UTC day" in caplog.text
    caplog.clear()
    two = pd.Series(10_000.0, index=pd.date_range("2025-07-25T20:00Z", periods=480, freq="1min"))
    write_tearsheet(tmp_path / "two.html", two * (1 + 0.0001 * np.arange(480)), None, 10_000.0, title="two days")
    assert "within one UTC day" not in caplog.text
