"""quantstats tear sheets for backtest (and paper) runs of 24/7 minute data.

quantstats assumes daily returns on a 252-day year and tz-naive dates. So the tear sheet is built
from DAILY returns compounded from the per-bar equity (``E_lastbar(day) / E_lastbar(day before)
- 1``, UTC days; the first day starts from the starting cash), on a tz-naive date index, with
``periods_per_year=365`` (crypto trades every day). Buy-and-hold over the same bars, after the
same fees, is the benchmark. Two pitfalls are handled: quantstats' R^2 regression raises on a
strategy whose daily returns are all equal (e.g. it never traded), and its histogram's KDE raises
when all monthly returns of strategy and benchmark coincide — then the tear sheet is built without
the benchmark and says so. Its HTML template calls an undefined ``save()`` on load (a JavaScript
error) and links a favicon on the internet; both are removed, so the page is clean and offline.
"""
from __future__ import annotations

import contextlib
import json
import logging
import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from data import GruowError, atomic_path

log = logging.getLogger(__name__)

TEARSHEET = "tearsheet.html"


def daily_returns(equity: pd.Series, cash0: float) -> pd.Series:
    """Compound per-bar equity into UTC-daily returns on a tz-naive midnight index.

    ``equity`` is indexed by tz-aware UTC bar open times and holds equity at each bar's close.
    Day d's return = last equity of d / last equity of the previous day (or ``cash0``) - 1.
    """
    idx = equity.index
    if idx.tz is not None:
        idx = idx.tz_convert("UTC").tz_localize(None)
    last = pd.Series(equity.to_numpy(np.float64), index=idx).groupby(idx.normalize()).last()
    prev = np.concatenate([[cash0], last.to_numpy()[:-1]])
    out = pd.Series(last.to_numpy() / prev - 1.0, index=pd.DatetimeIndex(last.index, name="date"))
    return out


def _no_redraw(self, *args, **kwargs) -> None:
    """``draw_idle`` that draws nothing (see :func:`_quiet_plotting`)."""


@contextlib.contextmanager
def _quiet_plotting():
    """Agg backend, no font-fallback chatter, no pandas/numpy warnings from quantstats."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    font_log = logging.getLogger("matplotlib.font_manager")
    old = font_log.level
    font_log.setLevel(logging.ERROR)
    # pyplot.savefig redraws the whole figure on the Agg canvas after saving it (draw_idle, for
    # interactive windows); nothing is shown here, and that redraw was ~30 % of a tear sheet's time
    own = FigureCanvasAgg.__dict__.get("draw_idle")  # None: inherited, as in matplotlib 3.x
    FigureCanvasAgg.draw_idle = _no_redraw
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        if own is None:
            del FigureCanvasAgg.draw_idle  # back to the inherited method
        else:
            FigureCanvasAgg.draw_idle = own
        font_log.setLevel(old)
        import matplotlib.pyplot as plt

        plt.close("all")


def write_tearsheet(
    path: str | Path,
    equity: pd.Series,
    benchmark_equity: pd.Series | None,
    cash0: float,
    *,
    title: str,
    parameters: dict | None = None,
) -> Path:
    """Write a quantstats HTML tear sheet of ``equity`` (benchmark: ``benchmark_equity``) to ``path``.

    Both series: equity at the close of each bar, tz-aware UTC bar-open index. Atomic write.
    Works from a single day of data upwards.
    """
    if len(equity) == 0:
        raise GruowError("cannot build a tear sheet: the run has no bars")
    rets = daily_returns(equity, cash0).rename("Strategy")
    if len(rets) < 2:
        # quantstats works on daily returns: from a single one its ratios and drawdowns stay empty
        log.warning("the run lies within one UTC day and the tear sheet's figures come from daily returns: most "
                    "of its ratios stay empty; metrics.json has the per-candle figures")
    params = dict(parameters or {})
    bench = None
    if benchmark_equity is not None:
        bench = daily_returns(benchmark_equity, cash0).rename("Buy & hold")
        problem = _benchmark_problem(rets, bench)
        if problem:
            log.info("tear sheet built without benchmark: %s", problem)
            params["Benchmark"] = f"omitted ({problem})"
            bench = None
    try:
        _write_html(path, rets, bench, title, params)
    except Exception as exc:  # quantstats is fragile on short or degenerate series
        if bench is None:
            raise
        log.warning("quantstats failed with the benchmark (%s: %s); tear sheet built without it",
                    type(exc).__name__, exc)
        params["Benchmark"] = "omitted (quantstats could not compare)"
        _write_html(path, rets, None, title, params)
    return Path(path)


def _benchmark_problem(rets: pd.Series, bench: pd.Series) -> str | None:
    """Why quantstats would crash comparing ``rets`` with ``bench``, or None.

    - its R^2 (scipy ``linregress``) raises when all strategy daily returns are equal;
    - its monthly-returns histogram fits one KDE over both series' monthly returns, which raises
      when they are all the same value (e.g. one month of data where the strategy equals buy-and-hold).
    """
    r = rets.to_numpy()
    if len(r) > 1 and np.ptp(r) <= 1e-12:
        return "strategy daily returns are constant"
    monthly = pd.concat([(1.0 + x).groupby(x.index.to_period("M")).prod() - 1.0 for x in (rets, bench)])
    if np.ptp(monthly.to_numpy()) <= 1e-9:
        return "strategy and benchmark monthly returns coincide"
    return None


def _write_html(path, rets: pd.Series, bench: pd.Series | None, title: str, params: dict) -> None:
    import quantstats as qs

    with _quiet_plotting(), atomic_path(path) as tmp:
        qs.reports.html(
            rets,
            benchmark=bench,
            output=str(tmp),
            title=title,
            periods_per_year=365,
            compounded=True,
            rf=0.0,
            strategy_title="Strategy",
            benchmark_title="Buy & hold" if bench is not None else None,
            parameters=params,
            # quantstats' date matching drops the leading days on which EITHER series is flat
            # (a strategy that waits a day would cut buy-and-hold's first day); ours share one index
            match_dates=False,
        )
        tmp.write_text(_clean_html(tmp.read_text(encoding="utf-8")), encoding="utf-8")


def _clean_html(html: str) -> str:
    """Fix quantstats' template: it calls an undefined ``save()`` on load (a JavaScript
    ReferenceError in every browser) and links a favicon on the internet."""
    html = html.replace('<body onload="save()">', "<body>")
    return re.sub(r'<link rel="shortcut icon"[^>]*>', "", html)


def load_equity(run_dir: str | Path) -> pd.DataFrame:
    """Read ``equity.csv`` of a run folder (index: tz-aware UTC ``timestamp``)."""
    path = Path(run_dir) / "equity.csv"
    if not path.exists():
        raise GruowError(f"{path}: not found; RUN_DIR must be a folder written by `gruow backtest`")
    try:
        df = pd.read_csv(path)
        if "timestamp" not in df.columns or "equity" not in df.columns:
            raise GruowError(f"{path}: needs columns timestamp and equity")
        df["timestamp"] = pd.to_datetime(df["timestamp"], utc=True)
        for col in ("equity", "benchmark_equity"):
            if col in df.columns:
                df[col] = pd.to_numeric(df[col])
    except (ValueError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        why = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise GruowError(f"{path}: not a readable equity.csv ({why}); the run folder is damaged — rerun the "
                         "backtest") from None
    return df.set_index("timestamp")


def _read_json(path: Path) -> dict:
    if not path.exists():
        raise GruowError(f"{path}: not found; RUN_DIR must be a folder written by `gruow backtest`")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise GruowError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(doc, dict):
        raise GruowError(f"{path}: must hold a JSON object")
    return doc


def check_run_files(run_dir: Path, eq: pd.DataFrame, cfg: dict, metrics: dict) -> None:
    """Raise :class:`GruowError` naming the file of ``run_dir`` that disagrees with ``metrics.json``
    (bar count, first bar, final equity of ``equity.csv``; fill count of ``trades.csv``)."""
    where = run_dir / "equity.csv"
    damaged = "; the run folder is damaged or edited — rerun the backtest"
    bars = metrics.get("bars")
    if bars is not None and len(eq) != int(bars):
        raise GruowError(f"{where}: {len(eq)} row(s), but metrics.json says the run has {int(bars)} bars{damaged}")
    if len(eq) == 0:
        raise GruowError(f"{where}: no rows{damaged}")
    if cfg.get("start") and eq.index[0] != pd.Timestamp(cfg["start"]):
        raise GruowError(f"{where}: first bar {eq.index[0].isoformat()}, but config.json says the run starts at "
                         f"{cfg['start']}{damaged}")
    if not np.isfinite(eq["equity"].to_numpy(np.float64)).all():
        raise GruowError(f"{where}: the equity column holds empty values{damaged}")
    final = metrics.get("final_equity")
    last = float(eq["equity"].iloc[-1])
    if final is not None and not np.isclose(last, float(final), rtol=1e-9, atol=1e-9):
        raise GruowError(f"{where}: final equity {last:.10g}, but metrics.json says {float(final):.10g}{damaged}")
    trades_path = run_dir / "trades.csv"
    fills = metrics.get("n_fills")
    if fills is not None and trades_path.exists():
        try:
            n = len(pd.read_csv(trades_path))
        except (ValueError, pd.errors.ParserError, pd.errors.EmptyDataError):
            n = -1
        if n != int(fills):
            raise GruowError(f"{trades_path}: {'unreadable' if n < 0 else f'{n} fill(s)'}, but metrics.json says "
                             f"{int(fills)}{damaged}")


def build_tearsheet(run_dir: str | Path) -> Path:
    """(Re)build ``RUN_DIR/tearsheet.html`` from its ``equity.csv``, ``config.json`` and
    ``metrics.json``; returns its path. The files are checked against ``metrics.json`` first
    (:func:`check_run_files`): a damaged folder raises :class:`GruowError` naming the file."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise GruowError(f"{run_dir}: not a folder; RUN_DIR must be a folder written by `gruow backtest`")
    cfg = _read_json(run_dir / "config.json")
    metrics = _read_json(run_dir / "metrics.json")
    eq = load_equity(run_dir)
    check_run_files(run_dir, eq, cfg, metrics)
    bench = eq["benchmark_equity"] if "benchmark_equity" in eq.columns else None
    return write_tearsheet(
        run_dir / TEARSHEET,
        eq["equity"],
        bench,
        float(cfg["cash"]),
        title=tearsheet_title(cfg),
        parameters=tearsheet_parameters(cfg, metrics),
    )


def tearsheet_title(cfg: dict) -> str:
    data = cfg.get("data", {})
    title = f"GRU-ow {cfg.get('strategy', '?')} on {data.get('symbol', '?')} {data.get('timeframe', '')}"
    if cfg.get("in_sample"):
        title = "IN-SAMPLE — " + title
    if cfg.get("synthetic") or data.get("synthetic"):
        title = "SYNTHETIC DATA — " + title
    return title


def _fmt(x, pct: bool) -> str:
    if x is None or (isinstance(x, float) and not np.isfinite(x)):
        return "n/a"
    return f"{100 * x:.2f}%" if pct else f"{x:.2f}"


def tearsheet_parameters(cfg: dict, metrics: dict | None = None) -> dict:
    """The tear sheet's header lines. With ``metrics`` (``metrics.json``), a note gives the
    minute-level figures, which differ from the sheet's: its tables use daily-compounded returns."""
    data = cfg.get("data", {})
    out = {
        "Data": f"{data.get('exchange', '?')} {data.get('symbol', '?')} {data.get('timeframe', '')}"
        + (" (synthetic)" if cfg.get("synthetic") or data.get("synthetic") else ""),
        "Range": f"{cfg.get('start', '?')} to {cfg.get('end', '?')}",
        "Fee": f"{100 * float(cfg.get('fee', 0)):g}%",
        "Slippage": f"{cfg.get('slippage_bps', 0)} bps",
        "Returns": "per-bar equity compounded to UTC days",
    }
    overlap = cfg.get("training_overlap")
    if cfg.get("in_sample") and overlap:
        out["In-sample"] = (f"{overlap.get('start')} to {overlap.get('end')} overlaps the model's training data "
                            "(results there are optimistic)")
    if metrics:
        bar = data.get("timeframe", "bar")
        out["Note"] = (
            f"this sheet's tables and charts use daily-compounded returns; per-{bar} figures (metrics.json): "
            f"Sharpe {_fmt(metrics.get('sharpe'), False)}, "
            f"max drawdown {_fmt(metrics.get('max_drawdown'), True)}, "
            f"volatility {_fmt(metrics.get('volatility'), True)}, "
            f"total return {_fmt(metrics.get('total_return'), True)}"
        )
    return out
