"""Backtests: run a strategy over a date range with backtrader, compute metrics, write tear sheets.

Public API (import from ``backtests``)::

    from backtests import run_backtest, BacktestResult, build_tearsheet

``run_backtest(candles, strategy="gru"|"buyhold"|"sma", start=..., end=..., model=...)`` returns a
:class:`BacktestResult` and, with ``out_dir``, writes ``<out_dir>/<run-id>/`` holding
``metrics.json trades.csv equity.csv tearsheet.html config.json``. ``build_tearsheet(run_dir)``
rebuilds the tear sheet of such a folder.

Paper trading (the same rules and fill model, live)::

    from backtests import run_paper, PaperSettings, paper_status, request_stop, write_paper_report

``run_paper(home, name, PaperSettings(model=...), exchange_url=...)`` runs the session stored in
``HOME/paper/<name>/`` (see ``backtests._paper``).
"""
from ._feed import CandleFeed, bt_datenums, make_feed
from ._metrics import equity_metrics, periods_per_year, round_trips, trade_metrics
from ._report import build_tearsheet, daily_returns, load_equity, write_tearsheet
from ._runner import WARMUP, BacktestResult, candles_hash, run_backtest, run_id, write_run
from ._paper import KillSwitch, PaperSettings, PaperTrader, run_paper
from ._paper_report import export_session, list_sessions, paper_status, request_stop, write_paper_report

__all__ = [
    "WARMUP",
    "BacktestResult",
    "CandleFeed",
    "KillSwitch",
    "PaperSettings",
    "PaperTrader",
    "build_tearsheet",
    "bt_datenums",
    "candles_hash",
    "daily_returns",
    "equity_metrics",
    "export_session",
    "list_sessions",
    "load_equity",
    "make_feed",
    "paper_status",
    "periods_per_year",
    "request_stop",
    "round_trips",
    "run_backtest",
    "run_id",
    "run_paper",
    "trade_metrics",
    "write_paper_report",
    "write_run",
    "write_tearsheet",
]
