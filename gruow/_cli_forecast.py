"""CLI: ``gruow train`` and ``gruow evaluate`` — thin layers over ``forecaster.train``/``evaluate``."""
from __future__ import annotations

import logging
import os
import re
import time
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich import box
from rich.markup import escape
from rich.table import Table

from ._common import TIME_HELP, Home, HomeOpt, JsonOpt, emit_json, out_console, resolve_home, say

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


# a model name: what may sit between HOME/models/ and .pt (no separators, no leading dot, so
# neither `..` nor a hidden file can be named)
MODEL_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,199}")
NAME_RULE = "a model name (letters, digits, . _ -; not starting with .) or a path ending in .pt"


def _is_path(value: str) -> bool:
    return value.endswith(".pt") or "/" in value or os.sep in value


def resolve_model(home: Home, model: str) -> Path:
    """MODEL → an existing checkpoint: a name in ``HOME/models`` (``NAME`` → ``HOME/models/NAME.pt``)
    or a path ending in ``.pt`` (a bare ``NAME.pt`` not found as given is also looked for in
    ``HOME/models``). Anything else — ``../x``, a path not ending in ``.pt`` — is a GruowError,
    so a model name can never reach outside ``HOME/models``."""
    from data import GruowError

    if _is_path(model):
        if not model.endswith(".pt"):
            raise GruowError(f"model {model!r} must be {NAME_RULE}")
        p = Path(model).expanduser()
        if p.is_file():
            return p
        if MODEL_NAME.fullmatch(model) and (home.models / model).is_file():
            return home.models / model
        raise GruowError(f"model file {p} not found")
    if not MODEL_NAME.fullmatch(model):
        raise GruowError(f"model {model!r} must be {NAME_RULE}")
    if (home.models / f"{model}.pt").is_file():
        return home.models / f"{model}.pt"
    have = sorted(q.stem for q in home.models.glob("*.pt"))
    raise GruowError(f"model {model!r} not found in {home.models}"
                     + (f" (models there: {', '.join(have)})" if have else " (no models there yet; run gruow train)"))


def out_model_path(home: Home, out: str) -> Path:
    """``--out NAME`` → ``HOME/models/NAME.pt``; ``--out PATH.pt`` → that path. Anything else
    (``../evil``, ``a/b``, ``.hidden``, an empty name) is a GruowError: nothing is written
    outside ``HOME/models`` unless the user named a ``.pt`` file explicitly."""
    from data import GruowError

    if out.endswith(".pt") and Path(out).name != ".pt":
        return Path(out).expanduser()
    if _is_path(out) or not MODEL_NAME.fullmatch(out):
        raise GruowError(f"--out {out!r} must be {NAME_RULE}, e.g. eth-june or runs/eth-june.pt")
    return home.models / f"{out}.pt"


def train_cmd(
    symbol: Annotated[str, typer.Option("--symbol", help="Market, e.g. ETH/USDC.")],
    out: Annotated[str, typer.Option("--out", help="Model name (letters, digits, . _ -), saved as HOME/models/NAME.pt, or a path ending in .pt.")],
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
    path.parent.mkdir(parents=True, exist_ok=True)  # a bad --out fails now, not after the training
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
    try:
        ckpt = train(candles, config, path, resume=resume, progress=not json)
    except KeyboardInterrupt:  # Ctrl-C, or SIGTERM (main() turns it into KeyboardInterrupt)
        _log_interrupted(path)
        raise
    wall = time.perf_counter() - t0
    report = _train_report(ckpt, wall)
    if json:
        emit_json(report)
        return
    table = Table(title=f"trained {ckpt.name}")
    table.add_column("field")
    table.add_column("value", justify="right")
    for key, label in TRAIN_LABELS.items():
        table.add_row(label, _fmt(report[key]))
    d = report["data"]
    table.add_row("data", f"{d['exchange']} {d['symbol']} {d['timeframe']} {d['start']} … {d['end']} "
                          f"({d['rows']:,} rows)")
    out_console.print(table)
    say(f"checkpoint written to {ckpt.path}")


def _log_interrupted(path: Path) -> None:
    """Say what an interrupted ``gruow train`` left behind (the file is rewritten atomically per epoch)."""
    from data import GruowError
    from forecaster import load_checkpoint

    try:
        ckpt = load_checkpoint(path) if path.is_file() else None
    except GruowError:
        ckpt = None
    if ckpt is None or ckpt.epochs == 0:
        log.warning("interrupted before the first epoch ended; nothing was saved to %s", path)
    elif ckpt.finished:
        log.warning("interrupted after the last epoch (%d), before the scores were written; rerun the same "
                    "command with --resume to score %s", ckpt.epochs, path)
    else:
        log.warning("interrupted after epoch %d of %d; the checkpoint %s holds epoch %d; rerun the same command "
                    "with --resume to continue", ckpt.epochs, ckpt.config.max_epochs, path, ckpt.epochs)


# the table rows of `gruow train`, by report key (``--json`` prints the keys)
TRAIN_LABELS = {
    "checkpoint": "checkpoint", "sha256": "checkpoint sha256", "status": "status",
    "train_windows": "train windows", "val_windows": "val windows", "epochs": "epochs",
    "max_epochs": "max epochs", "best_epoch": "best epoch", "val_loss": "val loss (best)",
    "val_persistence_loss": "val loss persistence", "val_close_mae": "val close MAE",
    "val_close_mae_persistence": "val close MAE persistence", "val_high_low_mae": "val high/low MAE",
    "val_high_low_mae_persistence": "val high/low MAE persistence", "wall_seconds": "wall seconds",
}


def _train_report(ckpt, wall: float) -> dict:
    """The ``gruow train`` report: snake_case keys; ``data`` is the identity of the candles trained
    on (the same keys as ``gruow evaluate``'s ``data``: sha256 = ``data.candles_hash``)."""
    meta = ckpt.meta
    d = meta["data"]
    val = (meta.get("metrics") or {}).get("val") or {}
    s = val.get("summary", {})
    last = meta["history"][-1] if meta["history"] else {}
    return {
        "name": ckpt.name,
        "checkpoint": str(ckpt.path),
        "sha256": ckpt.hash,
        "data": {k: d[k] for k in ("symbol", "exchange", "timeframe", "start", "end", "rows", "sha256")},
        "train_windows": d["splits"]["train"]["windows"],
        "val_windows": d["splits"]["val"]["windows"],
        "epochs": ckpt.epochs,
        "max_epochs": ckpt.config.max_epochs,
        "stopped": meta.get("stopped"),
        "finished": ckpt.finished,
        "status": ckpt.describe(),
        "best_epoch": meta.get("best_epoch"),
        "val_loss": val.get("loss", min((h["val_loss"] for h in meta["history"]), default=None)),
        "val_persistence_loss": last.get("val_persistence_loss"),
        "val_close_mae": s.get("close_mae", {}).get("model"),
        "val_close_mae_persistence": s.get("close_mae", {}).get("persistence"),
        "val_high_low_mae": s.get("high_low_mae", {}).get("model"),
        "val_high_low_mae_persistence": s.get("high_low_mae", {}).get("persistence"),
        "wall_seconds": wall,
        "history": meta["history"],
    }


def evaluate_cmd(
    model: Annotated[str, typer.Argument(help="Model name in HOME/models (NAME for NAME.pt), or a path ending in .pt.")],
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
    ckpt = load_checkpoint(resolve_model(h, model))  # evaluate() warns if it is an unfinished run
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
    out_console.print(f"[bold]{escape(result['model']['name'])}[/] on {d['exchange']} {d['symbol']} {d['timeframe']} "
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
    if not result["model"].get("finished", True):
        out_console.print(f"[bold yellow]warning:[/] the model is an {result['model']['status']}; its scores "
                          "are those of a partly trained model", highlight=False)
    for path in result.get("files") or []:
        say(f"wrote {path}")


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
