"""The backtest runner: candles (+ forecasts) -> backtrader run -> metrics and a results folder.

Timing of a run over ``[start, end)``:

- the feed holds up to 128 warm-up candles before ``start`` plus the candles of the range, as
  1-minute bars (``TimeFrame.Minutes``, compression 1; other timeframes map likewise);
- the first decision is taken at the close of the last candle before ``start`` (its forecast row
  uses the 128 warm-up candles), so the first fill can happen at the open of ``start``; the last
  decision is at the close of the second-to-last candle of the range, so every fill lies inside
  the range. An open position at the end is marked to the last close (not sold);
- equity is recorded at the close of every candle of the range; the starting equity is ``cash``.

A range holding gaps (missing candles) is run with a warning; a gap longer than a day is refused
unless ``allow_gaps``: positions would be held across it as if no time had passed. A gru run
whose range overlaps the model's training data is marked ``in_sample`` (in ``metrics.json``,
``config.json`` and the tear sheet title), and is warned about, as is an unfinished model.

Buy-and-hold over the same candles, after the same fee and slippage, is always computed as the
benchmark (with ``strategies.BarRunner``, which fills exactly like the backtrader broker).
"""
from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import platform
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

import numpy as np
import pandas as pd

from data import (
    GruowError,
    atomic_path,
    atomic_write_text,
    candles_hash,
    candles_meta,
    check_schema,
    timeframe_to_timedelta,
    to_utc,
)
from strategies import STRATEGY_CLASSES, BuyHoldParams, configure_broker, make_rules, params_dict, simulate

from ._feed import make_feed
from ._metrics import equity_metrics, periods_per_year, trade_metrics
from ._report import TEARSHEET, tearsheet_parameters, tearsheet_title, write_tearsheet

log = logging.getLogger(__name__)

WARMUP = 128  # candles the forecaster needs: the decision at t uses candles t-127..t
MAX_GAP = pd.Timedelta(days=1)  # a longer hole in the candles is refused unless allow_gaps
TRADE_COLUMNS = ["time", "side", "size", "price", "fee", "cash_after", "position_after", "reason"]


@dataclass
class BacktestResult:
    """What a backtest produced.

    - ``metrics``: see ``backtests._metrics`` (plus ``benchmark_*`` for buy-and-hold, ``rejected_orders``,
      ``in_sample`` — True when a gru run's range overlaps its model's training data, None when
      unknown (precomputed forecasts) — and ``training_overlap``, that overlap's start/end or None);
    - ``trades``: one row per fill (``time`` = open time of the fill bar, ``side`` buy/sell, ``size``
      ETH > 0, ``price``, ``fee`` quote, ``cash_after``, ``position_after`` ETH, ``reason``);
    - ``equity``/``benchmark_equity``: equity at the close of every bar of the range;
    - ``ledger``: the ``equity.csv`` frame (close, cash, position, equity, benchmark_equity);
    - ``config``: everything needed to reproduce the run; ``out_dir``: the run folder or None;
    - ``forecasts``: the forecast frame used (gru); ``timings``: seconds spent per stage.
    """

    metrics: dict
    trades: pd.DataFrame
    equity: pd.Series
    benchmark_equity: pd.Series
    ledger: pd.DataFrame
    config: dict
    out_dir: Path | None = None
    forecasts: pd.DataFrame | None = field(default=None, repr=False)
    timings: dict = field(default_factory=dict, repr=False)  # seconds per stage, for benchmarks and logs


def _frame_hash(df: pd.DataFrame) -> str:
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(df.index.as_unit("ns").asi8).tobytes())
    h.update(",".join(map(str, df.columns)).encode())
    h.update(np.ascontiguousarray(df.to_numpy(np.float64)).tobytes())
    return h.hexdigest()


def library_versions() -> dict:
    out = {"python": platform.python_version()}
    for dist in ("gruow", "backtrader", "quantstats", "pandas", "numpy", "torch"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = None
    return out


def _range_rows(candles: pd.DataFrame, start, end, warmup: int = WARMUP) -> tuple[int, int]:
    """Row indices [a, b) of the candles whose open time is in [start, end) (``start`` None: after
    the first ``warmup`` candles)."""
    idx = candles.index
    n = len(idx)
    a = int(idx.searchsorted(start)) if start is not None else min(warmup, max(n - 2, 0))
    b = int(idx.searchsorted(end)) if end is not None else n
    if b - a < 2:
        span = f"{idx[0].isoformat()} to {idx[-1].isoformat()}" if n else "nothing"
        s = start.isoformat() if start is not None else "the start"
        e = end.isoformat() if end is not None else "the end"
        raise GruowError(f"--start {s} / --end {e} select {max(b - a, 0)} candle(s); a backtest needs at least 2 "
                         f"(the data cover {span})")
    return a, b


def _history_needed(strategy: str, rules, ckpt) -> tuple[int, str]:
    """Candles of unbroken history the first decision (at the close of the candle before the
    range) needs for a full signal, and why."""
    if strategy == "gru":  # precomputed forecasts (no checkpoint) bring their own history
        n = ckpt.lookback if ckpt is not None else 0
        return n, f"the forecaster's {n}-candle input window"
    if strategy == "sma":
        return int(rules.params.slow), f"its slow mean of {rules.params.slow} closes"
    return 0, ""


def _unbroken_before(times: pd.DatetimeIndex, row: int, step: pd.Timedelta) -> int:
    """How many candles up to row ``row - 1`` follow one another without a gap (0 when ``row`` is 0)."""
    if row <= 0:
        return 0
    breaks = np.flatnonzero(np.diff(times[:row].asi8) != step.value)
    return row - (int(breaks[-1]) + 1 if len(breaks) else 0)


def _range_gaps(times: pd.DatetimeIndex, step: pd.Timedelta) -> dict:
    """Gaps in sorted, unique candle open times ``step`` apart.

    Returns ``count`` (holes), ``missing`` (candles), and for the longest hole ``longest`` (time
    without candles: Timedelta), ``longest_start`` (its first missing candle) and ``longest_end``
    (the candle after it); the last three are None when there is no gap.
    """
    d = np.diff(times.asi8)
    k = np.flatnonzero(d != step.value)
    if not len(k):
        return {"count": 0, "missing": 0, "longest": None, "longest_start": None, "longest_end": None}
    i = int(k[np.argmax(d[k])])
    return {
        "count": int(len(k)),
        "missing": int((d[k] // step.value - 1).sum()),
        "longest": pd.Timedelta(int(d[i] - step.value), unit="ns"),
        "longest_start": times[i] + step,
        "longest_end": times[i + 1],
    }


def _load_model(model):
    """(Checkpoint, hash, meta) from a Checkpoint object or a path."""
    from forecaster import load_checkpoint  # heavy (torch): only when a model is used

    ckpt = load_checkpoint(model) if isinstance(model, (str, os.PathLike)) else model
    return ckpt, getattr(ckpt, "hash", None), dict(getattr(ckpt, "meta", {}) or {})


def _progress_bar(enabled: bool, total: int, label: str):
    """A rich progress bar on stderr (or a no-op): returns (context manager, update(done))."""
    if not enabled:
        import contextlib

        return contextlib.nullcontext(), None
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                   console=Console(stderr=True), transient=True)
    task = bar.add_task(label, total=total)
    return bar, lambda done: bar.update(task, completed=done)


def run_backtest(
    candles: pd.DataFrame,
    *,
    strategy: str = "gru",
    start=None,
    end=None,
    model=None,
    forecasts: pd.DataFrame | None = None,
    fee: float = 0.001,
    slippage_bps: float = 0.0,
    cash: float = 10_000.0,
    params=None,
    out_dir: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None,
    progress: bool = True,
    tearsheet: bool = True,
    allow_gaps: bool = False,
) -> BacktestResult:
    """Backtest ``strategy`` on ``candles`` over ``[start, end)``; see the module docstring for timing.

    - ``candles``: the candle schema (``data``); include the 128 candles before ``start`` as warm-up
      (more if the strategy needs more: an SMA's ``slow`` window, a model's lookback).
      ``start`` None = after the first 128 candles; ``end`` None = to the last candle.
    - ``strategy``: ``gru`` (needs ``model`` — a ``forecaster`` Checkpoint or checkpoint path — or
      precomputed ``forecasts`` in the forecaster's format), ``buyhold`` or ``sma``.
    - ``fee``: fraction per fill (0.001 = 0.1 %); ``slippage_bps``: basis points against us;
      ``cash``: starting quote currency; ``params``: the strategy's params dataclass or dict.
    - ``out_dir``: folder (e.g. ``HOME/backtests``) in which the run folder ``<run-id>/`` is written
      (``metrics.json trades.csv equity.csv tearsheet.html config.json``), atomically: written to a
      temporary folder, renamed at the end. None writes nothing.
    - ``cache_dir``: forecast cache of the forecaster (a second run with the same model and data is fast).
    - ``tearsheet``: False leaves ``tearsheet.html`` out of the run folder (``build_tearsheet`` makes
      it later); quantstats' figures are the slowest part of a run on cached forecasts.
    - ``allow_gaps``: run across a gap of more than a day in the candles (refused otherwise; shorter
      gaps are logged as a warning).
    """
    import backtrader as bt

    timings: dict[str, float] = {}
    clock = time.perf_counter()
    check_schema(candles)
    if not (cash > 0 and np.isfinite(cash)):
        raise GruowError(f"--cash {cash} must be a positive amount of quote currency")
    rules = make_rules(strategy, params, fee=fee, slippage_bps=slippage_bps)
    meta = candles_meta(candles)
    s = to_utc(start, "--start") if start is not None else None
    e = to_utc(end, "--end") if end is not None else None
    if s is not None and e is not None and e <= s:
        raise GruowError(f"--end {e.isoformat()} must be after --start {s.isoformat()}")
    step = timeframe_to_timedelta(meta["timeframe"])

    ckpt, model_hash, model_meta, forecasts_hash = None, None, None, None
    if strategy == "gru" and forecasts is None:
        if model is None:
            raise GruowError("--strategy gru needs a model: pass --model NAME (a checkpoint in HOME/models, made "
                             "by `gruow train`)")
        ckpt, model_hash, model_meta = _load_model(model)
        unfinished = ckpt.unfinished_warning()
        if unfinished:
            log.warning("%s; its forecasts may be poor", unfinished)
    need, why = _history_needed(strategy, rules, ckpt)
    warmup = max(WARMUP, need)
    a, b = _range_rows(candles, s, e, warmup)
    lo = max(0, a - warmup)
    # candles from before a hole of more than MAX_GAP are no warm-up: the feed starts after it
    holes = np.flatnonzero(np.diff(candles.index[lo:a + 1].asi8) > (MAX_GAP + step).value)
    trimmed = len(holes) > 0
    if trimmed:
        lo += int(holes[-1]) + 1
    feed_candles = candles.iloc[lo:b]
    first_bar = a - lo
    times = feed_candles.index
    range_start, range_end = times[first_bar], times[-1] + step
    span = (f"--start {(range_start if s is None else s).isoformat()} / "
            f"--end {(range_end if e is None else e).isoformat()}")

    unbroken = _unbroken_before(times, first_bar, step)
    if unbroken < need:
        if unbroken < first_bar or trimmed:
            cause = f"a gap in the candles ends at {times[first_bar - unbroken].isoformat()}"
        else:
            cause = f"the data begin at {times[0].isoformat()}" if first_bar else "no candle precedes it"
        waits = strategy == "gru" or unbroken == first_bar
        log.warning("only %d candle(s) of unbroken history before %s (%s); the %s strategy needs %d for %s: "
                    "its first decisions %s", unbroken, range_start.isoformat(), cause, strategy, need, why,
                    "wait for enough history (fewer trades)" if waits else "use closes from before the gap")

    # the decision at the close of the candle before the range fills at the range's first open
    gaps = _range_gaps(times[max(first_bar - 1, 0):], step)
    if gaps["count"]:
        hole = (f"{gaps['longest']} without candles from {gaps['longest_start'].isoformat()} to "
                f"{gaps['longest_end'].isoformat()}")
        if gaps["longest"] > MAX_GAP and not allow_gaps:
            raise GruowError(f"{span} span a gap of {hole}; a backtest would hold positions across it as if no "
                             "time had passed. Choose a range without it (`gruow data info` lists the gaps) or "
                             "pass --allow-gaps to run across it")
        log.warning("%s: %d gap(s) in the candles (%d missing); the longest is %s. Positions are held across "
                    "gaps as if no time had passed", span, gaps["count"], gaps["missing"], hole)

    if getattr(rules.params, "allow_short", False) and ":" not in str(meta["symbol"]):
        log.warning("--short on the spot pair %s: shorting is simulated as if margin or a perpetual were "
                    "available (a short sale credits its proceeds; no borrow fee, funding or liquidation)",
                    meta["symbol"])

    in_sample, overlap = (None, None) if strategy == "gru" else (False, None)
    if strategy == "gru":
        if ckpt is not None:
            from forecaster import forecast, training_overlap

            both = training_overlap(ckpt, meta["symbol"], range_start, range_end)
            in_sample = both is not None
            if both is not None:
                overlap = {"start": both[0].isoformat(), "end": both[1].isoformat()}
                trained = ckpt.meta["data"]
                log.warning("the backtest range %s … %s overlaps model %s's training range %s … %s (in %s … %s): "
                            "results there are in-sample and optimistic", range_start.isoformat(),
                            range_end.isoformat(), ckpt.name, trained["start"], trained["end"], overlap["start"],
                            overlap["end"])
            t0 = time.perf_counter()
            forecasts = forecast(ckpt, feed_candles, cache_dir=cache_dir, progress=progress)
            timings["forecast_s"] = time.perf_counter() - t0
        else:
            if not isinstance(forecasts.index, pd.DatetimeIndex) or str(forecasts.index.tz) != "UTC":
                raise GruowError("forecasts must be indexed by tz-aware UTC decision times")
            forecasts_hash = _frame_hash(forecasts.loc[feed_candles.index[0]:feed_candles.index[-1]])
    sig = rules.signals(feed_candles, forecasts)
    signals = list(zip(*(sig[c].to_numpy(np.float64).tolist() for c in rules.columns))) if rules.columns else None
    flat_hold = rules.flat_hold(sig).tolist()
    n = len(feed_candles)
    first_decision, last_decision = max(first_bar - 1, 0), n - 2

    cerebro = bt.Cerebro(stdstats=False, runonce=True, preload=True, maxcpus=1, quicknotify=False)
    cerebro.adddata(make_feed(feed_candles))
    configure_broker(cerebro, fee, slippage_bps, cash)
    bar, update = _progress_bar(progress, n, f"backtest {strategy}")
    cerebro.addstrategy(STRATEGY_CLASSES[strategy], rules=rules, signals=signals, first_decision=first_decision,
                        last_decision=last_decision, record_from=first_bar, progress=update,
                        flat_hold=flat_hold, times=times)
    t0 = time.perf_counter()
    with bar:
        strat = cerebro.run()[0]
    timings["backtrader_s"] = time.perf_counter() - t0
    if update:
        update(n)
    if strat.rejected:
        log.warning("%d order(s) not filled: not affordable at the next open incl. fee (orders are sized at the "
                    "decision close and never resized; a --stake below 1 leaves room), the first at %s; "
                    "-v lists each", strat.rejected, times[strat.first_rejected].isoformat())

    trades = pd.DataFrame(
        [(times[i], "buy" if sz > 0 else "sell", abs(sz), px, fe, ca, po, why)
         for i, sz, px, fe, ca, po, why in strat.fills],
        columns=TRADE_COLUMNS,
    )
    rng = times[first_bar:]
    equity = pd.Series(np.asarray(strat.rec_equity, dtype=np.float64), index=rng, name="equity")
    if len(equity) != len(rng):
        raise RuntimeError(f"recorded {len(equity)} equity values for {len(rng)} bars")

    # buy-and-hold benchmark: same bars, same decision window, same fills and fees
    bh_params = rules.params if strategy == "buyhold" else BuyHoldParams()
    bh_rules = make_rules("buyhold", bh_params, fee=fee, slippage_bps=slippage_bps)
    opens = feed_candles["open"].to_numpy(np.float64).tolist()
    closes = feed_candles["close"].to_numpy(np.float64).tolist()
    bh_fills, bh_eq, _, bh_pos, bh_rej = simulate(bh_rules, opens, closes, None, cash=cash,
                                                   first_decision=first_decision, last_decision=last_decision,
                                                   record_from=first_bar)
    bench = pd.Series(np.asarray(bh_eq), index=rng, name="benchmark_equity")
    bh_trades = pd.DataFrame([(times[f.bar], "buy" if f.size > 0 else "sell", abs(f.size), f.price, f.fee,
                               f.cash_after, f.position_after, f.reason) for f in bh_fills], columns=TRADE_COLUMNS)

    ppy = periods_per_year(meta["timeframe"])
    positions = np.asarray(strat.rec_position, dtype=np.float64)
    metrics = equity_metrics(equity.to_numpy(), cash, ppy)
    metrics.update(trade_metrics(trades, positions))
    metrics["rejected_orders"] = int(strat.rejected)
    metrics["in_sample"] = in_sample
    metrics["training_overlap"] = overlap
    bm = equity_metrics(bench.to_numpy(), cash, ppy)
    bm.update(trade_metrics(bh_trades, np.asarray(bh_pos)))
    metrics["benchmark_total_return"] = bm["total_return"]
    metrics["benchmark"] = {k: bm[k] for k in ("total_return", "cagr", "sharpe", "sortino", "max_drawdown",
                                               "volatility", "fees_paid", "final_equity", "n_trades")}
    metrics["benchmark"]["rejected_orders"] = int(bh_rej)
    metrics["bars"] = int(len(rng))
    metrics["periods_per_year"] = ppy
    metrics["open_position"] = float(positions[-1]) if len(positions) else 0.0

    ledger = pd.DataFrame(
        {
            "close": feed_candles["close"].to_numpy()[first_bar:],
            "cash": np.asarray(strat.rec_cash, dtype=np.float64),
            "position": positions,
            "equity": equity.to_numpy(),
            "benchmark_equity": bench.to_numpy(),
        },
        index=pd.DatetimeIndex(rng, name="timestamp"),
    )
    extra = {k: v for k, v in meta.items() if k not in ("exchange", "symbol", "timeframe") and _jsonable(v)}
    config = {
        "strategy": strategy,
        "params": params_dict(rules),
        "start": rng[0].isoformat(),
        "end": (rng[-1] + timeframe_to_timedelta(meta["timeframe"])).isoformat(),
        "requested_start": s.isoformat() if s is not None else None,
        "requested_end": e.isoformat() if e is not None else None,
        "warmup_candles": int(first_bar),
        "in_sample": in_sample,
        "training_overlap": overlap,
        "fee": float(fee),
        "slippage_bps": float(slippage_bps),
        "cash": float(cash),
        "benchmark": {"strategy": "buyhold", "params": params_dict(bh_rules)},
        "fill_model": "market orders decided at the close of bar t fill at the open of bar t+1; slippage in bps "
                      "against the order; commission = fee x notional on every fill; fractional ETH sizes",
        "data": {
            "exchange": meta["exchange"],
            "symbol": meta["symbol"],
            "timeframe": meta["timeframe"],
            "first": times[0].isoformat(),
            "last": times[-1].isoformat(),
            "rows": int(n),
            "sha256": candles_hash(feed_candles),
            "gaps": {k: (v.isoformat() if isinstance(v, (pd.Timestamp, pd.Timedelta)) else v)
                     for k, v in gaps.items()},
            "synthetic": bool(meta.get("synthetic", False)),
            **{k: v for k, v in extra.items() if k in ("source", "path", "format", "seed")},
        },
        "model": {"hash": model_hash, "meta": _json_safe(model_meta), "path": str(model) if isinstance(
            model, (str, os.PathLike)) else None, "finished": ckpt.finished} if ckpt is not None else None,
        "forecasts_sha256": forecasts_hash,
        "versions": library_versions(),
    }
    result = BacktestResult(metrics=metrics, trades=trades, equity=equity, benchmark_equity=bench, ledger=ledger,
                            config=config, forecasts=forecasts, timings=timings)
    if out_dir is not None:
        result.out_dir = write_run(result, Path(out_dir), tearsheet=tearsheet)
    timings["total_s"] = time.perf_counter() - clock
    log.debug("backtest timings: %s", {k: round(v, 3) for k, v in timings.items()})
    return result


def _jsonable(v) -> bool:
    try:
        json.dumps(v)
        return True
    except (TypeError, ValueError):
        return False


def _json_safe(obj):
    if obj is None:
        return None
    try:
        from gruow._common import to_json

        return json.loads(to_json(obj))
    except TypeError:
        return {k: str(v) for k, v in obj.items()} if isinstance(obj, dict) else str(obj)


def run_id(config: dict, now: datetime | None = None) -> str:
    """``<UTC yyyymmddThhmm>-<strategy>-<BASE_QUOTE>-<8 hex of the config hash>``."""
    now = now or datetime.now(timezone.utc)
    ident = {k: v for k, v in config.items() if k not in ("versions", "run_id", "created")}
    digest = hashlib.sha256(json.dumps(ident, sort_keys=True, default=str).encode()).hexdigest()[:8]
    symbol = str(config["data"]["symbol"]).replace("/", "_").replace(":", "_")
    return f"{now:%Y%m%dT%H%M}-{config['strategy']}-{symbol}-{digest}"


def _iso(index: pd.DatetimeIndex) -> pd.Index:
    """ISO-8601 UTC strings (``2025-06-01T00:00:00+00:00``), vectorised."""
    if len(index) == 0:
        return pd.Index([], dtype=object)
    naive = index.tz_convert("UTC").tz_localize(None).as_unit("ns").to_numpy()
    return pd.Index(np.char.add(np.datetime_as_string(naive, unit="s"), "+00:00"))


def write_trades_csv(trades: pd.DataFrame, path: Path) -> Path:
    """Write ``trades.csv`` (columns :data:`TRADE_COLUMNS`) atomically; the paper trader writes its own
    with this function too, so the two files compare byte for byte."""
    # floats are written in Python's shortest round-trip form: reading them back is exact
    trades = trades.copy()
    trades["time"] = _iso(pd.DatetimeIndex(trades["time"]))
    with atomic_path(path) as p:
        trades.to_csv(p, index=False)
    return Path(path)


def write_ledger_csv(ledger: pd.DataFrame, path: Path) -> Path:
    """Write ``equity.csv`` (index ``timestamp``; close, cash, position, equity, benchmark_equity) atomically."""
    ledger = ledger.copy()
    ledger.index = _iso(ledger.index)
    with atomic_path(path) as p:
        ledger.to_csv(p, index_label="timestamp")
    return Path(path)


def write_run(result: BacktestResult, parent: Path, *, tearsheet: bool = True) -> Path:
    """Write a run folder under ``parent`` atomically (temporary folder, renamed at the end).

    The folder is named :func:`run_id` (``-2``, ``-3``, ... appended when taken). Several processes
    writing identical runs at once each get their own folder: the name is claimed by the rename
    itself, which fails on a folder another run has just put there, and the next suffix is tried.
    """
    from gruow._common import to_json

    parent.mkdir(parents=True, exist_ok=True)
    rid = run_id(result.config)
    names = (rid if k == 1 else f"{rid}-{k}" for k in range(1, 10_000))
    final = next(parent / name for name in names if not (parent / name).exists())
    result.config["created"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    tmp = Path(tempfile.mkdtemp(prefix=f".{rid}.", suffix=".tmp", dir=parent))
    try:
        result.config["run_id"] = final.name
        atomic_write_text(tmp / "metrics.json", to_json(result.metrics) + "\n")
        atomic_write_text(tmp / "config.json", to_json(result.config) + "\n")
        write_trades_csv(result.trades, tmp / "trades.csv")
        write_ledger_csv(result.ledger, tmp / "equity.csv")
        if tearsheet:
            t0 = time.perf_counter()
            write_tearsheet(tmp / TEARSHEET, result.equity, result.benchmark_equity, result.config["cash"],
                            title=tearsheet_title(result.config),
                            parameters=tearsheet_parameters(result.config, result.metrics))
            result.timings["tearsheet_s"] = time.perf_counter() - t0
        os.chmod(tmp, 0o755)
        while True:
            try:
                os.rename(tmp, final)  # fails if another run took the name since (POSIX: ENOTEMPTY/EEXIST)
                break
            except OSError as exc:
                if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                    raise
            final = next(parent / name for name in names if not (parent / name).exists())
            result.config["run_id"] = final.name
            atomic_write_text(tmp / "config.json", to_json(result.config) + "\n")
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.debug("backtest written to %s", final)  # the CLI prints the paths a user needs
    return final
