"""CLI: ``gruow backtest`` and ``gruow report`` (thin layers over ``backtests``)."""
from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from ._common import TIME_HELP, HomeOpt, JsonOpt, emit_json, err_console, out_console, resolve_home, say

log = logging.getLogger(__name__)


def _load_candles(home, *, data_file: Path | None, symbol: str, exchange: str | None, timeframe: str, start, end):
    from data import CandleStore, GruowError, check_range, read_candles, timeframe_to_timedelta

    from backtests import WARMUP

    s, e = check_range(start, end)
    if data_file is not None:
        candles = read_candles(data_file, symbol=symbol, exchange=exchange or "unknown",
                               timeframe=None if timeframe == "auto" else timeframe)
        candles.attrs["source"] = str(data_file)
        return candles
    tf = "1m" if timeframe == "auto" else timeframe
    lo = s - WARMUP * timeframe_to_timedelta(tf) if s is not None else None
    store = CandleStore(home.data)
    candles = store.load(symbol, tf, lo, e, exchange=exchange)
    if len(candles) == 0:
        held = [f"{i['exchange']} {i['first'].isoformat()} to {i['last'].isoformat()}"
                for i in store.info(symbol) if i["timeframe"] == tf and i["rows"]]
        raise GruowError(f"no stored {symbol} {tf} candles for --start {s.isoformat()} / --end {e.isoformat()} "
                         f"(nor in the {WARMUP} warm-up candles before --start) under {home.data}; "
                         + (f"the store holds {symbol} {tf} from {'; '.join(held)}" if held else
                            "import a file with `gruow data import`, download with `gruow data download` or pass "
                            "--data FILE"))
    candles.attrs["source"] = f"store:{home.data}"
    return candles


def backtest_cmd(
    start: Annotated[str, typer.Option("--start", help=f"First candle of the range. {TIME_HELP}")],
    end: Annotated[str, typer.Option("--end", help=f"End of the range (exclusive). {TIME_HELP}")],
    symbol: Annotated[str, typer.Option("--symbol", help="Market, e.g. ETH/USDC.")] = "ETH/USDC",
    strategy: Annotated[str, typer.Option("--strategy", help="gru (forecast-driven), buyhold or sma (crossover).")] = "gru",
    model: Annotated[Optional[str], typer.Option("--model", help="Trained model name in HOME/models (or a checkpoint path); needed for gru.")] = None,
    data_file: Annotated[Optional[Path], typer.Option("--data", help="Read candles from this file instead of the store.")] = None,
    exchange: Annotated[Optional[str], typer.Option("--exchange", help="Venue of the candles (store series; label for --data).")] = None,
    timeframe: Annotated[str, typer.Option("--timeframe", help="Candle length in the store (1m, 5m, ...); 'auto' = 1m, or inferred for --data.")] = "auto",
    fee: Annotated[float, typer.Option("--fee", help="Commission per fill as a fraction of notional (0.001 = 0.1 %).")] = 0.001,
    slippage_bps: Annotated[float, typer.Option("--slippage-bps", help="Slippage against each fill, in basis points.")] = 0.0,
    cash: Annotated[float, typer.Option("--cash", help="Starting cash in quote currency.")] = 10_000.0,
    horizon: Annotated[int, typer.Option("--horizon", help="gru: forecast horizon in bars (1-8) = holding period.")] = 8,
    entry_threshold: Annotated[Optional[float], typer.Option("--entry-threshold", help="gru: forecast return needed to enter (fraction); default = round-trip cost 2*fee + 2*slippage.")] = None,
    exit_threshold: Annotated[float, typer.Option("--exit-threshold", help="gru: exit when the forecast return falls below this (fraction).")] = 0.0,
    stake: Annotated[float, typer.Option("--stake", help="Fraction of equity put into each position.")] = 0.99,
    short: Annotated[bool, typer.Option("--short", help="gru: also go short on negative forecasts (perpetuals; not spot).")] = False,
    stops: Annotated[bool, typer.Option("--stops", help="gru: exit at the entry forecast's lowest low (stop) / highest high (take-profit).")] = False,
    tearsheet: Annotated[bool, typer.Option("--tearsheet/--no-tearsheet", help="Build tearsheet.html (quantstats, the slowest step); without it `gruow report RUN_DIR` builds it later.")] = True,
    allow_gaps: Annotated[bool, typer.Option("--allow-gaps", help="Run across gaps of more than a day in the candles (refused otherwise: positions would be held across them as if no time had passed).")] = False,
    home: HomeOpt = None,
    json: JsonOpt = False,
) -> None:
    """Backtest a strategy over [--start, --end) and write HOME/backtests/<run-id>/ (metrics, trades,
    equity, tear sheet, config). Orders decided at a candle's close fill at the next candle's open.
    Gaps in the candles are warned about; one longer than a day is refused unless --allow-gaps."""
    from backtests import run_backtest

    h = resolve_home(home)
    candles = _load_candles(h, data_file=data_file, symbol=symbol, exchange=exchange, timeframe=timeframe,
                            start=start, end=end)
    if strategy == "gru":
        params = {"horizon": horizon, "entry_threshold": entry_threshold, "exit_threshold": exit_threshold,
                  "stake": stake, "allow_short": short, "use_stops": stops}
    else:
        params = {"stake": stake}
    if model is not None and strategy == "gru":
        from ._cli_forecast import resolve_model  # one place knows where models live

        model_path = resolve_model(h, model)
    else:
        model_path = None
    progress = (not json) and err_console.is_terminal
    result = run_backtest(candles, strategy=strategy, start=start, end=end, model=model_path, fee=fee,
                          slippage_bps=slippage_bps, cash=cash, params=params, out_dir=h.backtests,
                          cache_dir=h.root / "cache", progress=progress, tearsheet=tearsheet, allow_gaps=allow_gaps)
    sheet = result.out_dir / "tearsheet.html" if tearsheet else None
    if json:
        emit_json({"run_dir": result.out_dir, "tearsheet": sheet, "metrics": result.metrics,
                   "config": result.config})
        return
    out_console.print(summary_line(result.config), highlight=False, soft_wrap=True)
    out_console.print(summary_table(result.metrics, result.config))
    if sheet is not None:
        say(f"tear sheet: {sheet}")
    else:
        say(f"results: {result.out_dir} (no tear sheet; `gruow report {result.out_dir}` builds it)")


def _pct(x, sign: bool = True) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    return f"{100 * x:+.2f} %" if sign and x != 0 else f"{100 * x:.2f} %"


def _num(x, fmt="{:.2f}") -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else fmt.format(x)


def summary_line(cfg: dict) -> str:
    """What was backtested: data, range, costs."""
    d = cfg["data"]
    return (f"{d['exchange']} {d['symbol']} {d['timeframe']}, {cfg['start'][:16].replace('T', ' ')} → "
            f"{cfg['end'][:16].replace('T', ' ')} UTC, fee {100 * cfg['fee']:g} %, slippage {cfg['slippage_bps']:g} bps"
            + (", SYNTHETIC DATA" if d.get("synthetic") else ""))


def summary_table(m: dict, cfg: dict) -> Table:
    """Strategy vs buy-and-hold: return, Sharpe, max drawdown, trades, fees, final equity."""
    b = m["benchmark"]
    d = cfg["data"]
    t = Table(title=f"{cfg['strategy']} vs buy & hold" + (" — SYNTHETIC DATA" if d.get("synthetic") else "")
              + (" — IN-SAMPLE (the model trained on this range)" if cfg.get("in_sample") else ""),
              title_justify="left")
    t.add_column("")
    t.add_column(cfg["strategy"], justify="right")
    t.add_column("buy & hold", justify="right")
    t.add_row("total return", _pct(m["total_return"]), _pct(b["total_return"]))
    t.add_row("Sharpe (ann.)", _num(m["sharpe"]), _num(b["sharpe"]))
    t.add_row("max drawdown", _pct(m["max_drawdown"], False), _pct(b["max_drawdown"], False))
    t.add_row("trades", f"{m['n_trades']:,}", f"{b['n_trades']:,}")
    t.add_row("win rate", _pct(m["win_rate"], False), "-")
    t.add_row("fees paid", _num(m["fees_paid"], "{:,.2f}"), _num(b["fees_paid"], "{:,.2f}"))
    t.add_row("final equity", _num(m["final_equity"], "{:,.2f}"), _num(b["final_equity"], "{:,.2f}"))
    t.add_row("rejected orders", f"{m['rejected_orders']:,}", f"{b['rejected_orders']:,}")
    return t


def report_cmd(
    run_dir: Annotated[Optional[Path], typer.Argument(help="A run folder written by `gruow backtest` (HOME/backtests/<run-id>).")] = None,
    paper: Annotated[Optional[str], typer.Option("--paper", help="Instead: a paper session's name; writes trades.csv, equity.csv, metrics.json and the tear sheet into HOME/paper/NAME.")] = None,
    home: HomeOpt = None,
    json: JsonOpt = False,
) -> None:
    """Rebuild the quantstats tear sheet of a backtest run folder (or of a paper session: --paper NAME)."""
    from backtests import build_tearsheet

    if paper is not None:
        from backtests import write_paper_report
        from data import GruowError

        if run_dir is not None:
            raise GruowError("give either RUN_DIR or --paper NAME, not both")
        path = write_paper_report(resolve_home(home).root, paper) / "tearsheet.html"
    elif run_dir is None:
        from data import GruowError

        raise GruowError("give RUN_DIR (a folder written by `gruow backtest`) or --paper NAME")
    else:
        path = build_tearsheet(run_dir)
    if json:
        emit_json({"tearsheet": path})
        return
    say(f"tear sheet: {path}")


def register(app: typer.Typer) -> None:
    app.command("backtest")(backtest_cmd)
    app.command("report")(report_cmd)
