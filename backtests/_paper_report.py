"""Reading paper sessions: status, stop requests, exported files and tear sheets.

Everything here reads ``HOME/paper/<NAME>/state.sqlite`` (WAL: safe while the trader writes) and
never changes the trading state. ``export_session`` writes ``trades.csv`` / ``equity.csv`` with the
backtest's own writers, so a session's files and a backtest's over the same candles compare byte
for byte; ``write_paper_report`` adds ``metrics.json``, ``config.json`` and the quantstats tear
sheet in the backtest's formats (``gruow report --paper NAME``).
"""
from __future__ import annotations

import os
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from data import GruowError, atomic_write_text, timeframe_seconds

from ._metrics import equity_metrics, periods_per_year, trade_metrics
from ._paper_state import STATE_FILE, STOP_FILE, PaperState, ms_to_ts, running_pid, session_dir
from ._runner import TRADE_COLUMNS, write_ledger_csv, write_trades_csv


CRASHED = "not running (no clean stop recorded — crashed or killed)"


def _now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def request_stop(home: str | os.PathLike, name: str, *, wait: float = 30.0) -> dict:
    """Ask the running trader of session ``name`` to stop; wait up to ``wait`` seconds for it.

    Returns ``{"name", "was_running", "pid", "stopped"}``. A session that is not running is left alone.
    """
    folder = session_dir(home, name)
    if not folder.is_dir():
        raise GruowError(f"--state {name!r}: no paper session in {folder.parent}{_known(folder.parent)}")
    pid = running_pid(folder)
    if pid is None:
        return {"name": name, "was_running": False, "pid": None, "stopped": True}
    atomic_write_text(folder / STOP_FILE, f"stop requested {_now_iso()}\n")
    end = time.monotonic() + max(0.0, wait)
    while running_pid(folder) is not None and time.monotonic() < end:
        time.sleep(0.1)
    stopped = running_pid(folder) is None
    if stopped:
        (folder / STOP_FILE).unlink(missing_ok=True)
    return {"name": name, "was_running": True, "pid": pid, "stopped": stopped}


def _known(parent: Path) -> str:
    names = sorted(p.name for p in parent.iterdir() if (p / STATE_FILE).is_file()) if parent.is_dir() else []
    return f" (sessions: {', '.join(names)})" if names else " (none yet; start one with `gruow paper`)"


def paper_status(home: str | os.PathLike, name: str, *, option: str = "--state") -> dict:
    """Equity, position, P&L, fills, last candle and health of session ``name`` (see :func:`paper_status_dir`);
    errors name the CLI ``option`` that gave the name."""
    folder = session_dir(home, name, option)
    if not (folder / STATE_FILE).is_file():
        raise GruowError(f"{option} {name!r}: no paper session in {folder.parent}{_known(folder.parent)}")
    return paper_status_dir(folder)


def list_sessions(home: str | os.PathLike) -> list[dict]:
    """The status of every session under ``HOME/paper``."""
    parent = Path(home) / "paper"
    if not parent.is_dir():
        return []
    return [paper_status_dir(p) for p in sorted(parent.iterdir()) if (p / STATE_FILE).is_file()]


def paper_status_dir(folder: Path) -> dict:
    """Status of the session in ``folder``.

    Keys: name, running, pid, health (``running``, ``retrying``, ``halted``, ``stopped``,
    ``not started``, or :data:`CRASHED` when no trader holds the lock and its last start has no
    recorded stop: it was killed or crashed), settings, start (first processed candle), last_candle (open time of the
    last processed one), processed, equity, cash, position, entry_price, pnl, return,
    max_drawdown, benchmark_equity, fills, rejected_orders, pending (the order waiting for the next
    open), halted (kill switch reason or None), halted_until, gaps, behind (closed candles not yet
    processed at the last poll), no_new_candles_min (minutes of exchange time without a new candle
    past the last one's close, e.g. past a replay's end; None when candles come), retries, last_error, last_poll, last_stop.
    """
    folder = Path(folder)
    pid = running_pid(folder)
    with PaperState.open(folder, create=False) as st:
        if not st.initialized():
            return {"name": folder.name, "folder": str(folder), "running": pid is not None, "pid": pid,
                    "settings": {}, "created": None, "health": "not started", "processed": 0}
        meta = st.meta()
        settings = meta.get("settings", {})
        runner = st.runner()
        health = st.health()
        n_fills = st.count("fills")
        stops = st.events("stop")
        last_run_event = st.conn.execute("SELECT kind FROM events WHERE kind IN ('start', 'stop') ORDER BY seq DESC "
                                         "LIMIT 1").fetchone()
        last_eq = st.conn.execute("SELECT equity, benchmark_equity, cash, position FROM equity ORDER BY ts DESC "
                                  "LIMIT 1").fetchone()
        eq_all = [r[0] for r in st.conn.execute("SELECT equity FROM equity ORDER BY ts")]
    cash0 = float(settings.get("cash", 0.0)) or float("nan")
    out: dict = {"name": folder.name, "folder": str(folder), "running": pid is not None, "pid": pid,
                 "settings": settings, "created": meta.get("created")}
    if runner is None:
        out.update(health="not started", processed=0)
        return out
    last_ts, processed, blob = runner
    r = blob["runner"]
    equity = last_eq[0] if last_eq else cash0
    peak = np.maximum.accumulate(np.concatenate([[cash0], eq_all])) if eq_all else np.array([cash0])
    dd = float((np.concatenate([[cash0], eq_all]) / peak - 1.0).min()) if eq_all else 0.0
    pending = r["pending"]
    kill = blob["kill"]
    halted = kill.get("halted")
    if pid is None:
        state = "stopped" if last_run_event is not None and last_run_event[0] == "stop" else CRASHED
    elif halted:
        state = "halted"
    elif int(health.get("consecutive_failures") or 0) > 0:
        state = "retrying"
    else:
        state = "running"
    out.update(
        health=state,
        start=ms_to_ts(meta["start"]).isoformat() if meta.get("start") is not None else None,
        last_candle=ms_to_ts(last_ts).isoformat(),
        processed=processed,
        equity=equity,
        cash=r["cash"],
        position=r["position"],
        entry_price=r["entry_price"] or None,
        pnl=equity - cash0,
        **{"return": equity / cash0 - 1.0},
        max_drawdown=dd,
        benchmark_equity=last_eq[1] if last_eq else cash0,
        fills=n_fills,
        rejected_orders=r["rejected"],
        pending=None if pending is None else {"size": pending["intent"]["size"], "reason": pending["intent"]["reason"]},
        halted=halted,
        halted_until=ms_to_ts(kill["halt_until"]).isoformat() if kill.get("halt_until") else None,
        gaps=int(blob.get("gaps", 0)),
        behind=health.get("behind"),
        no_new_candles_min=health.get("no_new_candles_min"),
        retries=health.get("retries", 0),
        retries_by_error=health.get("retries_by_error", {}),
        last_error=health.get("last_error"),
        last_poll=health.get("last_poll"),
        last_stop=stops[-1]["detail"].get("reason") if stops else None,
    )
    return out


def session_trades(folder: Path) -> pd.DataFrame:
    """The session's fills in the backtest's ``trades.csv`` layout (``backtests._runner.TRADE_COLUMNS``)."""
    with PaperState.open(folder, create=False) as st:
        f = st.fills()
    return pd.DataFrame({
        "time": f["time"], "side": np.where(f["size"] > 0, "buy", "sell"), "size": f["size"].abs(),
        "price": f["price"], "fee": f["fee"], "cash_after": f["cash_after"], "position_after": f["position_after"],
        "reason": f["reason"],
    }, columns=TRADE_COLUMNS)


def export_session(folder: str | os.PathLike) -> tuple[Path, Path]:
    """Write ``trades.csv`` and ``equity.csv`` of a session (the backtest's formats), atomically."""
    folder = Path(folder)
    trades = session_trades(folder)
    with PaperState.open(folder, create=False) as st:
        ledger = st.equity()
    return write_trades_csv(trades, folder / "trades.csv"), write_ledger_csv(ledger, folder / "equity.csv")


def write_paper_report(home: str | os.PathLike, name: str, *, tearsheet: bool = True, option: str = "--paper") -> Path:
    """Write the session's ``trades.csv``, ``equity.csv``, ``metrics.json``, ``config.json`` and
    (``tearsheet``) ``tearsheet.html`` into ``HOME/paper/<name>/``, in the backtest's formats;
    returns the folder. Metrics are those of a backtest (``backtests._metrics``), plus the paper
    session's halts, gaps and rejected orders."""
    from ._report import build_tearsheet

    folder = session_dir(home, name, option)
    status = paper_status(home, name, option=option)
    if not status.get("processed"):
        raise GruowError(f"paper session {name!r} has not processed a candle yet; nothing to report")
    export_session(folder)
    settings = status["settings"]
    with PaperState.open(folder, create=False) as st:
        ledger = st.equity()
        meta = st.meta()
    trades = session_trades(folder)
    cash = float(settings["cash"])
    ppy = periods_per_year(settings["timeframe"])
    metrics = equity_metrics(ledger["equity"].to_numpy(), cash, ppy)
    metrics.update(trade_metrics(trades, ledger["position"].to_numpy()))
    metrics["rejected_orders"] = status["rejected_orders"]
    bm = equity_metrics(ledger["benchmark_equity"].to_numpy(), cash, ppy)
    metrics["benchmark_total_return"] = bm["total_return"]
    metrics["benchmark"] = {k: bm[k] for k in ("total_return", "cagr", "sharpe", "sortino", "max_drawdown",
                                               "volatility", "final_equity")}
    metrics["bars"] = int(len(ledger))
    metrics["periods_per_year"] = ppy
    metrics["open_position"] = float(ledger["position"].iloc[-1])
    metrics["halted"] = status["halted"]
    metrics["gaps"] = status["gaps"]
    tf = pd.Timedelta(milliseconds=timeframe_seconds(settings["timeframe"]) * 1000)
    config = {
        "strategy": settings["strategy"],
        "params": settings["params"],
        "start": ledger.index[0].isoformat(),
        "end": (ledger.index[-1] + tf).isoformat(),
        "fee": settings["fee"],
        "slippage_bps": settings["slippage_bps"],
        "cash": cash,
        "benchmark": {"strategy": "buyhold"},
        "fill_model": "market orders decided at the close of candle t fill at the open of candle t+1; slippage in "
                      "bps against the order; commission = fee x notional on every fill; fractional ETH sizes",
        "data": {"exchange": settings["exchange"], "symbol": settings["symbol"], "timeframe": settings["timeframe"],
                 "first": ledger.index[0].isoformat(), "last": ledger.index[-1].isoformat(), "rows": int(len(ledger)),
                 "source": "paper trading (live candles)"},
        "model": {"path": settings.get("model"), "hash": meta.get("model_hash")} if settings["strategy"] == "gru" else None,
        "paper": {"name": name, "created": meta.get("created"), "max_drawdown": settings.get("max_drawdown"),
                  "daily_loss_limit": settings.get("daily_loss_limit"), "sandbox": settings.get("sandbox"),
                  "processed": status["processed"], "last_candle": status["last_candle"]},
    }
    from gruow._common import to_json

    atomic_write_text(folder / "metrics.json", to_json(metrics) + "\n")
    atomic_write_text(folder / "config.json", to_json(config) + "\n")
    if tearsheet:
        build_tearsheet(folder)
    return folder
