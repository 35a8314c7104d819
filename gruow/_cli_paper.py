"""CLI: ``gruow paper run`` (run a paper-trading session), ``gruow paper status``, ``gruow paper stop``.

``gruow paper --help`` lists the sub-commands only; ``gruow paper --model m ...`` (options first, no
sub-command) is read as ``gruow paper run --model m ...``.

Thin layers over ``backtests.run_paper`` / ``paper_status`` / ``request_stop``. Settings options
default to None: a new session takes the documented defaults, a resumed one (same ``--state``)
keeps the settings it started with, and an option that contradicts them is refused.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table
from rich.text import Text
from typer.core import TyperGroup

from ._common import HomeOpt, JsonOpt, emit_json, err_console, out_console, resolve_home

class _PaperGroup(TyperGroup):
    """``gruow paper --opt ...`` (an option where the sub-command goes) means ``gruow paper run --opt ...``."""

    def parse_args(self, ctx, args):
        if args and args[0].startswith("-") and args[0] not in ("--help", "-h"):
            args = ["run", *args]
        return super().parse_args(ctx, args)


paper_app = typer.Typer(
    name="paper",
    cls=_PaperGroup,
    help="Paper-trade a strategy live on an exchange's candles (simulated fills, state in HOME/paper/NAME). "
         "Start one with `gruow paper run --model NAME` (`gruow paper --model NAME` works too).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

StateOpt = Annotated[str, typer.Option("--state", help="Session name: state lives in HOME/paper/NAME.")]


def run_cmd(
    exchange: Annotated[Optional[str], typer.Option("--exchange", help="ccxt exchange id. (default binance)")] = None,
    symbol: Annotated[Optional[str], typer.Option("--symbol", help="Market. (default ETH/USDC)")] = None,
    timeframe: Annotated[Optional[str], typer.Option("--timeframe", help="Candle length. (default 1m)")] = None,
    model: Annotated[Optional[str], typer.Option("--model", help="Trained model name in HOME/models (or a .pt path); needed for gru.")] = None,
    strategy: Annotated[Optional[str], typer.Option("--strategy", help="gru, buyhold or sma. (default gru)")] = None,
    cash: Annotated[Optional[float], typer.Option("--cash", help="Starting cash in quote currency. (default 10000)")] = None,
    fee: Annotated[Optional[float], typer.Option("--fee", help="Commission per fill as a fraction of notional (0.001 = 0.1 %). (default 0.001)")] = None,
    slippage_bps: Annotated[Optional[float], typer.Option("--slippage-bps", help="Slippage against each fill, in basis points. (default 0)")] = None,
    horizon: Annotated[Optional[int], typer.Option("--horizon", help="gru: forecast horizon in bars (1-8) = holding period. (default 8)")] = None,
    entry_threshold: Annotated[Optional[float], typer.Option("--entry-threshold", help="gru: forecast return needed to enter; default = round-trip cost.")] = None,
    exit_threshold: Annotated[Optional[float], typer.Option("--exit-threshold", help="gru: exit when the forecast return falls below this. (default 0)")] = None,
    stake: Annotated[Optional[float], typer.Option("--stake", help="Fraction of equity put into each position. (default 0.99)")] = None,
    short: Annotated[Optional[bool], typer.Option("--short/--no-short", help="gru: also go short (perpetuals). (default no)")] = None,
    stops: Annotated[Optional[bool], typer.Option("--stops/--no-stops", help="gru: exit at the forecast's low/high. (default no)")] = None,
    max_drawdown: Annotated[Optional[float], typer.Option("--max-drawdown", help="Kill switch: close and stop entering at this drawdown from the peak (fraction; 0 = off). (default 0.25)")] = None,
    daily_loss_limit: Annotated[Optional[float], typer.Option("--daily-loss-limit", help="Kill switch: close and stop entering for the UTC day at this loss (fraction; 0 = off). (default 0.10)")] = None,
    sandbox: Annotated[Optional[bool], typer.Option("--sandbox/--no-sandbox", help="Use the exchange's testnet; keys from env GRUOW_API_KEY / GRUOW_API_SECRET (never printed or logged).")] = None,
    state: StateOpt = "default",
    exchange_url: Annotated[Optional[str], typer.Option("--exchange-url", help="Send every request to this compatible host, e.g. a `gruow replay-server` at http://127.0.0.1:8765.")] = None,
    max_candles: Annotated[Optional[int], typer.Option("--max-candles", help="Stop once the session has processed N candles (counted across restarts).")] = None,
    poll_interval: Annotated[Optional[float], typer.Option("--poll-interval", help="Seconds between polls; default: until the next candle closes on the exchange's clock.")] = None,
    rate_limit_ms: Annotated[Optional[float], typer.Option("--rate-limit-ms", help="Minimum ms between requests (default: the exchange's; 0 for a local replay server).")] = None,
    home: HomeOpt = None,
    json: JsonOpt = False,
) -> None:
    """Start (or resume) a paper-trading session: live closed candles through ccxt, the backtest's
    strategy and fill model, state in SQLite. Stop it with `gruow paper stop --state NAME` or Ctrl-C."""
    from backtests import run_paper

    h = resolve_home(home)
    model_path = None
    if model is not None:
        from ._cli_forecast import resolve_model  # one place knows where models live

        model_path = str(resolve_model(h, model))
    params = {"horizon": horizon, "entry_threshold": entry_threshold, "exit_threshold": exit_threshold,
              "stake": stake, "allow_short": short, "use_stops": stops}
    if (strategy or "gru") != "gru":
        params = {"stake": stake}
    settings = {"exchange": exchange, "symbol": symbol, "timeframe": timeframe, "strategy": strategy,
                "model": model_path, "cash": cash, "fee": fee, "slippage_bps": slippage_bps,
                "max_drawdown": max_drawdown, "daily_loss_limit": daily_loss_limit, "sandbox": sandbox,
                "params": params if any(v is not None for v in params.values()) else None}
    status = run_paper(h.root, state, settings, exchange_url=exchange_url, max_candles=max_candles,
                       poll_interval=poll_interval, rate_limit_ms=rate_limit_ms,
                       progress=(not json) and err_console.is_terminal)
    if json:
        emit_json(status)
        return
    out_console.print(status_table(status))


def status_cmd(
    state: Annotated[Optional[str], typer.Option("--state", help="Session name (default: list every session).")] = None,
    home: HomeOpt = None,
    json: JsonOpt = False,
) -> None:
    """Equity, position, P&L, fills, last candle and health of a paper session (or of all of them)."""
    from backtests import list_sessions, paper_status

    h = resolve_home(home)
    if state is None:
        sessions = list_sessions(h.root)
        if json:
            emit_json(sessions)
            return
        out_console.print(sessions_table(sessions, h.root / "paper"))
        return
    status = paper_status(h.root, state)
    if json:
        emit_json(status)
        return
    out_console.print(status_table(status))


def stop_cmd(
    state: StateOpt,
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds to wait for the trader to finish its candle and exit.")] = 30.0,
    home: HomeOpt = None,
    json: JsonOpt = False,
) -> None:
    """Stop a running paper session gracefully (it finishes the candle in progress and flushes its state)."""
    from backtests import request_stop

    h = resolve_home(home)
    result = request_stop(h.root, state, wait=timeout)
    if json:
        emit_json(result)
        return
    if not result["was_running"]:
        out_console.print(f"paper session {state!r} is not running")
    elif result["stopped"]:
        out_console.print(f"paper session {state!r} stopped (pid {result['pid']})")
    else:
        err_console.print(f"paper session {state!r} (pid {result['pid']}) has not exited after {timeout:g} s; "
                          "it stops after its current request; `kill -TERM` it to hurry it")
        raise typer.Exit(1)


def _money(x) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:,.2f}"


def _pct(x, signed: bool = True) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    x = 0.0 if x == 0 else x  # no "-0.00"
    return f"{100 * x:+.2f} %" if signed and x != 0 else f"{100 * x:.2f} %"


def status_table(st: dict) -> Table:
    s = st.get("settings", {})
    t = Table(title=f"paper session {st['name']} — {s.get('exchange', '?')} {s.get('symbol', '?')} "
                    f"{s.get('timeframe', '')}, {s.get('strategy', '?')}" + (" (sandbox)" if s.get("sandbox") else ""),
              title_justify="left", show_header=False)
    t.add_column("", style="bold")
    t.add_column("")
    t.add_row("health", f"{st['health']}" + (f" (pid {st['pid']})" if st.get("pid") else ""))
    if st.get("processed"):
        base = s.get("symbol", "ETH/").split("/")[0]
        pending = st.get("pending")
        t.add_row("candles", f"{st['processed']:,} processed, {st['start']} → {st['last_candle']} (open times, UTC)")
        t.add_row("equity", f"{_money(st['equity'])}  (P&L {_money(st['pnl'])}, {_pct(st['return'])}; "
                            f"buy & hold {_money(st['benchmark_equity'])})")
        t.add_row("position", f"{st['position']:.8g} {base}" + (f" bought at {st['entry_price']:.6g}"
                                                                 if st.get("entry_price") else "")
                  + f", cash {_money(st['cash'])}")
        t.add_row("max drawdown", _pct(st["max_drawdown"], signed=False))
        t.add_row("fills", f"{st['fills']:,} ({st['rejected_orders']} rejected order(s))")
        t.add_row("pending order", "none" if not pending else f"{pending['size']:+.8g} {base} ({pending['reason']}) "
                                                              "at the next open")
        t.add_row("kill switch", "armed" if not st.get("halted") else
                  f"HALTED ({st['halted']})" + (f" until {st['halted_until']}" if st.get("halted_until") else ""))
        lag = (f"no new candles from the exchange for {st['no_new_candles_min']} minute(s)"
               if st.get("no_new_candles_min") is not None else f"{st.get('behind') or 0} closed candle(s) behind")
        t.add_row("feed", f"{st['gaps']} gap(s), {st.get('retries', 0)} retried request(s), "
                          f"{lag} at the last poll ({st.get('last_poll')})")
        if st.get("last_error"):
            t.add_row("last error", st["last_error"])
    if st.get("last_stop") and not st.get("running"):
        t.add_row("last stop", st["last_stop"])
    t.add_row("folder", st["folder"])
    return t


def sessions_table(sessions: list[dict], parent: Path) -> Table:
    """One block of rows per session, like ``data info``: readable on an 80-column terminal."""
    t = Table(title=f"paper sessions in {parent}", title_justify="left", show_header=False)
    t.add_column("field", style="bold")
    t.add_column("value", overflow="fold")
    for i, st in enumerate(sessions):
        if i:
            t.add_section()
        s = st.get("settings", {})
        t.add_row("session", Text(f"{st['name']} ({st['health']})"))  # user-chosen name: no markup
        t.add_row("market", f"{s.get('exchange', '?')} {s.get('symbol', '?')} {s.get('timeframe', '')}")
        t.add_row("last candle", st.get("last_candle") or "-")
        t.add_row("equity", f"{_money(st.get('equity'))} ({_pct(st.get('return'))})")
        base = str(s.get("symbol", "?")).split("/")[0]
        t.add_row("position", f"{st.get('position', 0):.6g} {base}, {st.get('fills', 0)} fill(s)")
    return t


paper_app.command("run")(run_cmd)
paper_app.command("status")(status_cmd)
paper_app.command("stop")(stop_cmd)


def register(app: typer.Typer) -> None:
    app.add_typer(paper_app, name="paper")
