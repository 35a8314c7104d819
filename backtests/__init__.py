"""Backtests: run a strategy over a date range with backtrader, compute metrics, write tear sheets.

Public API (import from ``backtests``)::

    from backtests import run_backtest, BacktestResult, build_tearsheet

``run_backtest(candles, strategy="gru"|"buyhold"|"sma", start=..., end=..., model=...)`` returns a
:class:`BacktestResult` and, with ``out_dir``, writes ``<out_dir>/<run-id>/`` holding
``metrics.json trades.csv equity.csv tearsheet.html config.json``. ``build_tearsheet(run_dir)``
rebuilds the tear sheet of such a folder.
"""
from ._feed import CandleFeed, bt_datenums, make_feed
from ._metrics import equity_metrics, periods_per_year, round_trips, trade_metrics
from ._report import build_tearsheet, daily_returns, load_equity, write_tearsheet
from ._runner import WARMUP, BacktestResult, candles_hash, run_backtest, run_id, write_run

__all__ = [
    "WARMUP",
    "BacktestResult",
    "CandleFeed",
    "build_tearsheet",
    "bt_datenums",
    "candles_hash",
    "daily_returns",
    "equity_metrics",
    "load_equity",
    "make_feed",
    "periods_per_year",
    "round_trips",
    "run_backtest",
    "run_id",
    "trade_metrics",
    "write_run",
    "write_tearsheet",
]
