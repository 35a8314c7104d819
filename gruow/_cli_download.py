"""CLI: ``gruow data download`` (ccxt -> store) and ``gruow replay-server`` (a local exchange)."""
from __future__ import annotations

import logging
import signal
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from ._common import TIME_HELP, HomeOpt, JsonOpt, emit_json, out_console, resolve_home

log = logging.getLogger(__name__)


def download_cmd(
    symbol: Annotated[str, typer.Option("--symbol", help="Market, e.g. ETH/USDC (ETHUSDC, eth-usdc also work).")],
    start: Annotated[str, typer.Option("--start", help=f"First candle to fetch. {TIME_HELP} Epoch milliseconds also work; seconds are refused.")],
    exchange: Annotated[str, typer.Option("--exchange", help="ccxt exchange id.")] = "binance",
    timeframe: Annotated[str, typer.Option("--timeframe", help="Candle length: 1m, 5m, 1h, ...")] = "1m",
    end: Annotated[Optional[str], typer.Option("--end", help="Stop before this candle (default: up to the last closed one).")] = None,
    limit: Annotated[Optional[int], typer.Option("--limit", help="Candles per request, 1 up to the exchange's maximum (the default).")] = None,
    exchange_url: Annotated[Optional[str], typer.Option("--exchange-url", help="Send every request to this Binance-compatible host instead, e.g. http://127.0.0.1:8765 (gruow replay-server); needs --exchange binance.")] = None,
    retries: Annotated[int, typer.Option("--retries", help="Retries of a failing request (exponential backoff) before giving up, 0 to 20.")] = 5,
    home: HomeOpt = None,
    json: JsonOpt = False,
) -> None:
    """Download candles through ccxt into the store: every part of the range the store lacks, and only those."""
    from data import CandleStore, download

    # root / "data", not Home.data: a refused command must not even create the folder
    store = CandleStore(resolve_home(home).root / "data")
    report = download(
        store, exchange=exchange, symbol=symbol, timeframe=timeframe, start=start, end=end,
        limit=limit, exchange_url=exchange_url, progress=not json, max_retries=retries,
    )
    if json:
        emit_json(report)
        return
    table = Table(title=f"download {report['exchange']} {report['symbol']} {report['timeframe']}")
    table.add_column("field")
    table.add_column("value", justify="right")
    for key in ("start", "end", "resumed_from", "first", "last", "pages", "fetched", "added",
                "duplicates", "invalid", "dropped_forming", "missing", "retries", "stopped"):
        value = report[key]
        table.add_row(key, "-" if value is None else f"{value:,}" if isinstance(value, int) else str(value))
    parts = report["ranges"]
    shown = [f"{_when(r['start'])} → {_when(r['end'])}: {r['added']:,} added" for r in parts[:5]]
    if len(parts) > 5:
        shown.append(f"... {len(parts) - 5} more")
    table.add_row("ranges fetched", "\n".join(shown)
                  or "none (the store held every candle of the range closed on the exchange's clock)")
    gaps = report["gaps"]
    if gaps:
        g = max(gaps, key=lambda g: g["missing"])
        where = (f"after {_when(g['after'])}" if g["after"] is not None
                 else f"before {_when(g['before'])}" if g["before"] is not None else "over the whole range")
        table.add_row("still missing", f"{report['missing']:,} in {len(gaps)} gap(s) the exchange did not send "
                                       f"(longest {g['missing']:,} {where}); the next run asks again")
    out_console.print(table)


def _when(ts) -> str:
    return ts.strftime("%Y-%m-%d %H:%M") if ts is not None else "now"


def replay_server_cmd(
    data: Annotated[Optional[Path], typer.Option("--data", help="Candle file to replay (CSV/Parquet/JSON, as `gruow data import` reads).")] = None,
    symbol: Annotated[str, typer.Option("--symbol", help="Symbol the candles are served as; without --data, the stored series to replay.")] = "ETH/USDC",
    exchange: Annotated[Optional[str], typer.Option("--exchange", help="Without --data: which stored exchange's series to replay.")] = None,
    timeframe: Annotated[str, typer.Option("--timeframe", help="Without --data: the stored timeframe to replay.")] = "1m",
    port: Annotated[int, typer.Option("--port", help="Port on 127.0.0.1 (0 picks a free one).")] = 8765,
    speed: Annotated[float, typer.Option("--speed", help="Virtual seconds per real second (0 freezes the clock).")] = 60.0,
    start: Annotated[Optional[str], typer.Option("--start", help=f"Virtual clock at start-up. {TIME_HELP} Default: after the first 1000 candles.")] = None,
    faults: Annotated[Optional[str], typer.Option("--faults", help="Fault rates, e.g. timeout=0.05,429=0.05,500=0.05,drop=0.05,missing=0.02,duplicate=0.02,seed=1 (also hang=S, retry_after=S, fail_after=K).")] = None,
    home: HomeOpt = None,
) -> None:
    """Serve stored candles as a Binance-compatible exchange on 127.0.0.1 until Ctrl-C."""
    from data import Faults, GruowError, ReplayServer, read_candles, timeframe_to_timedelta, to_utc

    # check options before reading anything
    if not 0 <= port <= 65535:
        raise GruowError(f"--port {port} must be between 0 and 65535 (0 picks a free port)")
    fault_spec = Faults.parse(faults)
    clock = to_utc(start, "--start") if start is not None else None
    if data is not None:
        candles = read_candles(data, symbol=symbol, exchange=exchange or "unknown")
    else:
        from data import CandleStore

        # root / "data", not Home.data: serving must not create folders
        candles = CandleStore(resolve_home(home).root / "data").load(symbol, timeframe, exchange=exchange)
        if len(candles) == 0:
            raise GruowError(
                f"--symbol {symbol}: no stored {timeframe} candles"
                f"{f' from {exchange}' if exchange else ''}; import or download some, or pass --data FILE"
            )
    if clock is not None:
        first, close = candles.index[0], candles.index[-1] + timeframe_to_timedelta(candles.attrs["timeframe"])
        if not first <= clock <= close:
            # outside the data the replay would serve no candle at all, or never a new one
            raise GruowError(f"--start {clock.isoformat()} is outside the candles served: it must lie between "
                             f"the first candle's open {first.isoformat()} and the last candle's close "
                             f"{close.isoformat()} (last candle {candles.index[-1].isoformat()})")
    server = ReplayServer(candles, symbol=symbol, start=clock, speed=speed, faults=fault_spec, port=port)

    def _stop(signum, frame):  # SIGTERM (and SIGINT where a shell ignored it) stop like Ctrl-C
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        log.info("replay server stopped: %d requests (%d for klines), faults injected: %s",
                 len(server.requests), server.kline_requests, server.fault_counts or "none")


def register(app: typer.Typer) -> None:
    """Add ``data download`` (to the ``data`` group) and ``replay-server``."""
    try:
        from ._cli_data import data_app
    except ModuleNotFoundError as exc:  # the data area's CLI not built yet: make the group here
        if exc.name != "gruow._cli_data":
            raise
        data_app = typer.Typer(help="Candles: import, download, inspect.", no_args_is_help=True)
        app.add_typer(data_app, name="data")
    data_app.command("download")(download_cmd)
    app.command("replay-server")(replay_server_cmd)
