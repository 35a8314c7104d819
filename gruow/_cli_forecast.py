"""CLI: ``gruow train`` and ``gruow evaluate`` — thin layers over ``forecaster.train``/``evaluate``."""
from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich import box
from rich.table import Table

from ._common import TIME_HELP, Home, HomeOpt, JsonOpt, emit_json, out_console, resolve_home

log = logging.getLogger(__name__)

DataOpt = Annotated[Optional[Path], typer.Option(
    "--data", help="Candle file (CSV/Parquet/JSON, as `gruow data import` reads) instead of the store.")]
ExchangeOpt = Annotated[Optional[str], typer.Option(
    "--exchange", help="Exchange of the candles (store: which stored series; --data: the label).")]
TimeframeOpt = Annotated[Optional[str], typer.Option(
    "--timeframe", help="Candle length (store: default 1m; --data: inferred from the file).")]
StartOpt = Annotated[Optional[str], typer.Option("--start", help=f"First candle. {TIME_HELP}")]
EndOpt = Annotated[Optional[str], typer.Option("--end", help="Stop before this candle (exclusive).")]
DeviceOpt = Annotated[Optional[str], typer.Option("--device", help="auto (cuda if available, else cpu), cpu or cuda.")]


def load_range(home: Home, data: Path | None, symbol: str, exchange: str | None, timeframe: str | None,
               start: str | None, end: str | None):
    """Candles of ``[start, end)`` from ``--data FILE`` or else the store; GruowError if none."""
    from data import GruowError, check_range, read_candles

    s, e = check_range(start, end)
    if data is not None:
        candles = read_candles(data, symbol=symbol, exchange=exchange or "unknown", timeframe=timeframe)
        a = candles.index.searchsorted(s) if s is not None else 0
        b = candles.index.searchsorted(e) if e is not None else len(candles)
        candles = candles.iloc[a:b]
        where = str(data)
    else:
        from data import CandleStore

        candles = CandleStore(home.data).load(symbol, timeframe or "1m", s, e, exchange=exchange)
        where = f"the store ({home.data})"
    if len(candles) == 0:
        span = f" in [{s.isoformat() if s is not None else '…'}, {e.isoformat() if e is not None else '…'})"
        raise GruowError(f"no {symbol} candles{span} in {where}; check --start/--end")
    return candles


def resolve_model(home: Home, model: str) -> Path:
    """MODEL as a path to a ``.pt`` file, or a name in ``HOME/models`` (``NAME`` or ``NAME.pt``)."""
    from data import GruowError

    p = Path(model).expanduser()
    if p.is_file():
        return p
    for cand in (home.models / f"{model}.pt", home.models / model):
        if cand.is_file():
            return cand
    have = sorted(q.stem for q in home.models.glob("*.pt"))
    raise GruowError(f"model {model!r} not found as a file or in {home.models}"
                     + (f" (models there: {', '.join(have)})" if have else " (no models there yet; run gruow train)"))


def out_model_path(home: Home, out: str) -> Path:
    """``--out NAME`` → ``HOME/models/NAME.pt``; a value with a ``/`` or ending in ``.pt`` is a path."""
    from data import GruowError

    if "/" in out or out.endswith(".pt"):
        return Path(out).expanduser()
    if not out or out.startswith(".") or any(c in out for c in '\\:*?"<>|'):
        raise GruowError(f"--out {out!r} must be a plain model name such as eth-june, or a path ending in .pt")
    return home.models / f"{out}.pt"


def train_cmd(
    symbol: Annotated[str, typer.Option("--symbol", help="Market, e.g. ETH/USDC.")],
    out: Annotated[str, typer.Option("--out", help="Model name (saved as HOME/models/NAME.pt) or a .pt path.")],
    data: DataOpt = None,
    exchange: ExchangeOpt = None,
    timeframe: TimeframeOpt = None,
    start: StartOpt = None,
    end: EndOpt = None,
    epochs: Annotated[Optional[int], typer.Option("--epochs", help="Maximum epochs (default 60; early stopping may end sooner).")] = None,
    seed: Annotated[Optional[int], typer.Option("--seed", help="Random seed (default 0); same seed + data on CPU = same weights.")] = None,
    device: DeviceOpt = None,
    hidden: Annotated[Optional[int], typer.Option("--hidden", help="GRU hidden width (default 64).")] = None,
    layers: Annotated[Optional[int], typer.Option("--layers", help="GRU layers (default 1).")] = None,
    val_fraction: Annotated[Optional[float], typer.Option("--val-fraction", help="Share of the range, at its end, for validation (default 0.2).")] = None,
    test_fraction: Annotated[Optional[float], typer.Option("--test-fraction", help="Share at the very end held out for a test score (default 0).")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue the interrupted run saved at --out from its last epoch.")] = False,
    home: HomeOpt = None,
    json: JsonOpt = False,
) -> None:
    """Train the GRU forecaster on a candle range and save a checkpoint in HOME/models."""
    from forecaster import TrainConfig, load_checkpoint, train

    h = resolve_home(home)
    path = out_model_path(h, out)
    given = {"max_epochs": epochs, "seed": seed, "device": device, "hidden": hidden, "layers": layers,
             "val_fraction": val_fraction, "test_fraction": test_fraction}
    given = {k: v for k, v in given.items() if v is not None}
    if resume and path.is_file():  # continue with the saved settings; only what was given changes
        saved = load_checkpoint(path).config.to_dict()
        config = TrainConfig.from_dict({**saved, **given})
    else:
        config = TrainConfig(**given)
    candles = load_range(h, data, symbol, exchange, timeframe, start, end)
    t0 = time.perf_counter()
    ckpt = train(candles, config, path, resume=resume, progress=not json)
    wall = time.perf_counter() - t0
    report = _train_report(ckpt, wall)
    if json:
        emit_json(report)
        return
    table = Table(title=f"trained {ckpt.name}")
    table.add_column("field")
    table.add_column("value", justify="right")
    for key, value in report.items():
        if key not in ("history",):
            table.add_row(key, _fmt(value))
    out_console.print(table)
    out_console.print(f"checkpoint written to [bold]{ckpt.path}[/]")


def _train_report(ckpt, wall: float) -> dict:
    meta = ckpt.meta
    d = meta["data"]
    val = (meta.get("metrics") or {}).get("val") or {}
    s = val.get("summary", {})
    last = meta["history"][-1] if meta["history"] else {}
    return {
        "checkpoint": str(ckpt.path),
        "sha256": ckpt.hash,
        "data": f"{d['exchange']} {d['symbol']} {d['timeframe']} {d['start']} … {d['end']} ({d['rows']} rows)",
        "train windows": d["splits"]["train"]["windows"],
        "val windows": d["splits"]["val"]["windows"],
        "epochs": len(meta["history"]),
        "stopped": meta.get("stopped"),
        "best epoch": meta.get("best_epoch"),
        "val loss (best)": val.get("loss", min((h["val_loss"] for h in meta["history"]), default=None)),
        "val loss persistence": last.get("val_persistence_loss"),
        "val close MAE": s.get("close_mae", {}).get("model"),
        "val close MAE persistence": s.get("close_mae", {}).get("persistence"),
        "val high/low MAE": s.get("high_low_mae", {}).get("model"),
        "val high/low MAE persistence": s.get("high_low_mae", {}).get("persistence"),
        "wall seconds": wall,
        "history": meta["history"],
    }


def evaluate_cmd(
    model: Annotated[str, typer.Argument(help="Model name in HOME/models, or a path to a .pt checkpoint.")],
    symbol: Annotated[Optional[str], typer.Option("--symbol", help="Market (default: the one the model was trained on).")] = None,
    data: DataOpt = None,
    exchange: ExchangeOpt = None,
    timeframe: TimeframeOpt = None,
    start: StartOpt = None,
    end: EndOpt = None,
    out: Annotated[Optional[Path], typer.Option("--out", help="Folder for evaluation.json and charts (default HOME/models/NAME-eval).")] = None,
    device: DeviceOpt = None,
    home: HomeOpt = None,
    json: JsonOpt = False,
) -> None:
    """Score a model on unseen candles against persistence, drift and trailing-range baselines."""
    from forecaster import evaluate, load_checkpoint

    h = resolve_home(home)
    ckpt = load_checkpoint(resolve_model(h, model))
    trained = ckpt.meta["data"]
    symbol = symbol or trained["symbol"]
    if data is None and exchange is None and symbol == trained["symbol"]:
        exchange = trained["exchange"]
    candles = load_range(h, data, symbol, exchange, timeframe or (None if data is not None else ckpt.timeframe),
                         start, end)
    out_dir = out if out is not None else h.models / f"{ckpt.name}-eval"
    result = evaluate(ckpt, candles, out_dir=out_dir, cache_dir=h.root / "cache", device=device,
                      progress=not json)
    if json:
        emit_json(result)
        return
    print_evaluation(result)


def print_evaluation(result: dict) -> None:
    """Three rich tables (close errors; direction and range; high/low errors) and a summary, on stdout."""
    d = result["data"]
    out_console.print(f"[bold]{result['model']['name']}[/] on {d['exchange']} {d['symbol']} {d['timeframe']} "
                      f"{d['start']} … {d['end']}: {result['windows']:,} windows; errors in quote currency, "
                      "[bold]bold[/] = best of its group", highlight=False)
    models = ("model", "persistence", "drift")
    t = _table("close: MAE and RMSE vs persistence and drift",
               ["MAE\nmodel", "MAE\npersist.", "MAE\ndrift", "RMSE\nmodel", "RMSE\npersist.", "RMSE\ndrift"])
    for r in result["horizons"]:
        t.add_row(str(r["h"]), *(_best(r["close"], "mae", m) for m in models),
                  *(_best(r["close"], "rmse", m) for m in models))
    out_console.print(t)
    t = _table("close direction (hit rate, flat moves excluded) and high-low range MAE",
               ["direction\nmodel", "95% CI\n(Wilson)", "n", "direction\ndrift", "range MAE\nmodel",
                "range MAE\ntrailing"])
    for r in result["horizons"]:
        dm, dd = r["direction"]["model"], r["direction"]["drift"]
        t.add_row(str(r["h"]), f"{dm['accuracy']:.3f}", f"{dm['ci95'][0]:.3f}–{dm['ci95'][1]:.3f}", f"{dm['n']:,}",
                  f"{dd['accuracy']:.3f}", *(_best(r["range"], "mae", m) for m in ("model", "trailing")))
    out_console.print(t)
    t = _table("high and low: MAE vs persistence and drift",
               ["high\nmodel", "high\npersist.", "high\ndrift", "low\nmodel", "low\npersist.", "low\ndrift"])
    for r in result["horizons"]:
        t.add_row(str(r["h"]), *(_best(r["high"], "mae", m) for m in models),
                  *(_best(r["low"], "mae", m) for m in models))
    out_console.print(t)
    s = result["summary"]
    out_console.print(
        f"mean over horizons: close MAE skill vs persistence {s['close_skill_vs_persistence']:+.2%}, high/low "
        f"MAE skill {s['high_low_skill_vs_persistence']:+.2%}, direction accuracy {s['direction_accuracy']:.3f}",
        highlight=False,
    )
    if result["overlaps_training"]:
        out_console.print("[bold yellow]warning:[/] this range overlaps the model's training range; "
                          "scores are optimistic")
    if result.get("files"):
        out_console.print(f"wrote {', '.join(result['files'])}", highlight=False)


def _table(title: str, columns: list[str]) -> Table:
    t = Table(title=title, box=box.SIMPLE_HEAD, padding=(0, 1))
    t.add_column("h", justify="right")
    for col in columns:
        t.add_column(col, justify="right")
    return t


def _best(block: dict, metric: str, name: str) -> str:
    value = block[name][metric]
    best = min(v[metric] for k, v in block.items() if isinstance(v, dict) and metric in v)
    return f"[bold]{value:.3f}[/]" if value == best else f"{value:.3f}"


def _fmt(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.5f}" if abs(value) < 100 else f"{value:,.1f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def register(app: typer.Typer) -> None:
    """Add ``train`` and ``evaluate``."""
    app.command("train")(train_cmd)
    app.command("evaluate")(evaluate_cmd)
