"""CLI: ``gruow data import`` and ``gruow data info`` (thin layers over ``data``).

``data_app`` is the ``gruow data`` sub-app; other areas add commands to it (``download``).
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated, Optional

import pandas as pd
import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table
from rich.text import Text

from ._common import TIME_HELP, HomeOpt, JsonOpt, emit_json, err_console, out_console, resolve_home, say

log = logging.getLogger(__name__)

data_app = typer.Typer(
    name="data",
    help="Candles: import files, download from exchanges, inspect the store.",
    no_args_is_help=True,
)


def _store(home: Path | None):
    from data import CandleStore

    # the folder is created on the first write only, so a refused import leaves nothing behind
    return CandleStore(resolve_home(home).root / "data")


@data_app.command("import")
def import_cmd(
    path: Annotated[Path, typer.Argument(help="Candle file: CSV (with header, incl. the original GRU-ow layout), "
                                              "Binance kline CSV, ccxt OHLCV JSON or Parquet.", show_default=False)],
    symbol: Annotated[str, typer.Option("--symbol", help="Market the candles belong to, e.g. ETH/USDC.")],
    exchange: Annotated[str, typer.Option("--exchange", help="Venue the candles come from (a folder name in the store).")] = "unknown",
    timeframe: Annotated[str, typer.Option("--timeframe", help="Candle length (1m, 5m, ...); 'auto' infers it from the spacing, a given one is checked.")] = "auto",
    fill_gaps: Annotated[bool, typer.Option("--fill-gaps", help="Fill missing candles with flat zero-volume candles at the previous close (recorded as a repair). Default: gaps stay gaps.")] = False,
    home: HomeOpt = None,
    json: JsonOpt = False,
) -> None:
    """Read, validate and store a candle file; print the validation report and what was stored."""
    from data import read_candles

    store = _store(home)  # checks --home before a long read
    try:
        candles = read_candles(path, symbol=symbol, exchange=exchange, timeframe=timeframe, fill_gaps=fill_gaps)
    except KeyboardInterrupt:
        log.warning("import interrupted while reading %s: nothing was stored", path)
        raise
    # an interrupted store.write stores nothing and says so, see CandleStore.write
    with _progress(not json) as bar:
        task = bar.add_task("store", total=None)
        stored = store.write(candles, progress=lambda done, total: bar.update(task, completed=done, total=total))
    meta = candles.attrs
    series = next((s for s in store.info(meta["symbol"])
                   if s["exchange"] == stored["exchange"] and s["timeframe"] == stored["timeframe"]), None)
    report = meta["report"]
    if json:  # the report lists the first 20 repaired/rejected rows; its counts cover all
        emit_json({"source": str(path), "format": meta["format"], "report": report, "stored": stored, "series": series})
        return
    say(f"import {report['source']}")  # a path: plain, so it stays whole and copy-pasteable
    out_console.print(_report_table(report, meta["format"]))
    for kind in ("rejected", "repaired"):
        shown = report[kind]
        if shown:
            t = Table(title=f"{kind} rows (first {len(shown)} of {report[kind + '_count']})", title_justify="left")
            for col in (report["row_kind"], "timestamp", "rule"):
                t.add_column(col)
            for e in shown:
                t.add_row(str(e["row"]), e["timestamp"] or "-", e["rule"])
            out_console.print(t)
    changed = f"{stored['added']:,} added, {stored['updated']:,} updated, {stored['unchanged']:,} unchanged"
    out_console.print(f"stored {stored['exchange']} {stored['symbol']} {stored['timeframe']}: {changed} "
                      f"({len(stored['files'])} month file(s) written)")
    if series:
        out_console.print(_info_table([series]))


@data_app.command("info")
def info_cmd(
    symbol: Annotated[Optional[str], typer.Option("--symbol", help="Only this market, e.g. ETH/USDC.")] = None,
    start: Annotated[Optional[str], typer.Option("--start", help=f"Count candles from here. {TIME_HELP}")] = None,
    end: Annotated[Optional[str], typer.Option("--end", help=f"Count candles before this. {TIME_HELP}")] = None,
    home: HomeOpt = None,
    json: JsonOpt = False,
) -> None:
    """Show every stored series: exchange, symbol, timeframe, first/last candle, rows, gaps, repairs."""
    infos = _store(home).info(symbol, start=start, end=end)
    if json:
        emit_json(infos)
        return
    if not infos:
        say(f"no stored candles{f' for {symbol}' if symbol else ''} in {resolve_home(home).root / 'data'}")
        return
    out_console.print(_info_table(infos))


def register(app: typer.Typer) -> None:
    app.add_typer(data_app, name="data")


# ---------------------------------------------------------------- rendering

def _progress(enabled: bool) -> Progress:
    return Progress(TextColumn("[bold]{task.description}[/] months"), BarColumn(), MofNCompleteColumn(),
                    console=err_console, transient=True, disable=not (enabled and err_console.is_terminal))


def _span(td: pd.Timedelta | str | None) -> str:
    td = pd.Timedelta(td) if td is not None else pd.Timedelta(0)
    minutes = int(td.total_seconds() // 60)
    d, rem = divmod(minutes, 1440)
    h, m = divmod(rem, 60)
    return (f"{d}d " if d else "") + f"{h}h {m:02d}m"


def _when(ts) -> str:
    return "-" if ts is None else pd.Timestamp(ts).strftime("%Y-%m-%d %H:%M UTC")


def _report_table(r: dict, fmt: str) -> Table:
    t = Table(title="validation", title_justify="left", show_header=False)
    t.add_column("field", style="bold")
    t.add_column("value")
    t.add_row("format", fmt)
    t.add_row("timeframe", r["timeframe"])
    t.add_row("rows read / kept", f"{r['rows_in']:,} / {r['rows_out']:,}")
    t.add_row("first → last", f"{_when(r['first'])} → {_when(r['last'])}")
    t.add_row("out of order (sorted)", f"{r['unsorted']:,}")
    t.add_row("duplicates (last kept)", f"{r['duplicates']:,}")
    t.add_row("rejected rows", f"{r['rejected_count']:,}")
    t.add_row("repaired rows", f"{r['repaired_count']:,}")
    t.add_row("gaps", _gap_text(r["gaps"], r))
    t.add_row("filled", f"{r['filled']:,}" + (" (flat, volume 0)" if r["filled"] else " (gaps kept)"))
    return t


def _gap_text(missing: int, r: dict) -> str:
    """``N missing in K gap(s); longest: ...`` from a validation report or a store info dict."""
    text = f"{missing:,} missing in {r['gap_runs']:,} gap(s)"
    if missing:
        text += (f"; longest: {r['longest_gap_candles']:,} missing from {_when(r['longest_gap_start'])} "
                 f"({_span(r['longest_gap'])} between candles)")
    return text


def _info_table(infos: list[dict]) -> Table:
    """One block of rows per series (fits a narrow terminal better than one wide row each)."""
    t = Table(title="stored candles", title_justify="left", show_header=False)
    t.add_column("field", style="bold")
    t.add_column("value")
    for i, s in enumerate(infos):
        if i:
            t.add_section()
        t.add_row("series", f"[bold]{s['exchange']} {s['symbol']} {s['timeframe']}[/]")
        t.add_row("first → last", f"{_when(s['first'])} → {_when(s['last'])}")
        t.add_row("candles", f"{s['rows']:,} in {s['months']} month file(s)")
        t.add_row("gaps", _gap_text(s["missing"], s))
        repairs = [f"{e['rule']} ×{e['count']:,} ({Path(e['source']).name if e.get('source') else '?'})"
                   for e in s["repairs"]]
        t.add_row("repairs", Text("\n".join(repairs) or "none"))  # file names: no markup
    return t
