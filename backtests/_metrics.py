"""Performance metrics from an equity curve, on a 365-day, 24/7 year.

Definitions (``E_0`` = starting cash, ``E_1..E_n`` = equity at the close of each bar of the range,
``r_i = E_i / E_{i-1} - 1``, ``P`` = bars per year = 365 * 86400 / bar seconds, 525,600 for 1m):

- ``total_return`` = E_n / E_0 - 1; ``cagr`` = (E_n / E_0) ** (P / n) - 1;
- ``volatility`` = std(r, ddof=1) * sqrt(P); ``sharpe`` = mean(r) / std(r, ddof=1) * sqrt(P)
  (risk-free rate 0); ``sortino`` = mean(r) / sqrt(mean(min(r, 0)^2)) * sqrt(P);
- ``max_drawdown`` = min over i of E_i / max(E_0..E_i) - 1 (a negative fraction, 0 if none);
- ``exposure`` = share of bars closed with a non-zero position;
- trades are round trips (entry fill to the fill that flattens it): ``n_trades`` counts entries
  (an open trade at the end counts), ``win_rate`` = share of CLOSED round trips whose PnL after
  both fees is positive (NaN when none closed); ``fees_paid`` = all commissions.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from data import timeframe_seconds

YEAR_SECONDS = 365 * 86_400


def periods_per_year(timeframe: str) -> float:
    """Bars in a 365-day, 24/7 year: ``"1m"`` -> 525600."""
    return YEAR_SECONDS / timeframe_seconds(timeframe)


def equity_metrics(equity: np.ndarray, cash0: float, ppy: float) -> dict:
    """Return, risk and drawdown figures of an equity curve (see the module docstring)."""
    eq = np.asarray(equity, dtype=np.float64)
    n = len(eq)
    if n == 0:
        nan = float("nan")
        return dict(total_return=0.0, cagr=nan, sharpe=nan, sortino=nan, max_drawdown=0.0, volatility=nan,
                    final_equity=float(cash0))
    prev = np.concatenate([[cash0], eq[:-1]])
    r = eq / prev - 1.0
    total = eq[-1] / cash0 - 1.0
    cagr = _annualise(eq[-1] / cash0, ppy / n)
    sd = r.std(ddof=1) if n > 1 else float("nan")
    mean = r.mean()
    sharpe = mean / sd * math.sqrt(ppy) if sd and sd > 0 else float("nan")
    downside = math.sqrt(np.mean(np.minimum(r, 0.0) ** 2))
    sortino = mean / downside * math.sqrt(ppy) if downside > 0 else float("nan")
    peak = np.maximum.accumulate(np.concatenate([[cash0], eq]))
    mdd = float((np.concatenate([[cash0], eq]) / peak - 1.0).min())
    return dict(
        total_return=float(total),
        cagr=cagr,
        sharpe=float(sharpe),
        sortino=float(sortino),
        max_drawdown=mdd,
        volatility=float(sd * math.sqrt(ppy)) if n > 1 else float("nan"),
        final_equity=float(eq[-1]),
    )


def _annualise(growth: float, periods: float) -> float:
    """``growth ** periods - 1`` in log space; ``inf`` where it overflows (a few bars of gain)."""
    if growth <= 0:
        return -1.0
    exponent = periods * math.log(growth)
    return math.expm1(exponent) if exponent < 700 else float("inf")


def round_trips(trades: pd.DataFrame) -> pd.DataFrame:
    """Group fills into round trips: one row per entry with ``pnl`` (after both fees) and ``closed``.

    ``trades`` has columns ``side`` (buy/sell), ``size`` (ETH, positive), ``price``, ``fee`` and
    ``position_after``. A trip ends at the fill that brings the position back to 0.
    """
    rows = []
    cur = None
    for side, size, price, fee, pos_after in trades[["side", "size", "price", "fee", "position_after"]].itertuples(
        index=False
    ):
        signed = size if side == "buy" else -size
        if cur is None:
            cur = {"cashflow": 0.0, "fees": 0.0}
        cur["cashflow"] -= signed * price
        cur["fees"] += fee
        if abs(pos_after) < 1e-12:
            rows.append({"pnl": cur["cashflow"] - cur["fees"], "fees": cur["fees"], "closed": True})
            cur = None
    if cur is not None:
        rows.append({"pnl": float("nan"), "fees": cur["fees"], "closed": False})
    return pd.DataFrame(rows, columns=["pnl", "fees", "closed"])


def trade_metrics(trades: pd.DataFrame, positions: np.ndarray) -> dict:
    """Counts from the fills: n_trades, n_fills, win_rate, fees_paid, exposure."""
    trips = round_trips(trades) if len(trades) else pd.DataFrame(columns=["pnl", "fees", "closed"])
    closed = trips[trips["closed"].astype(bool)]
    pos = np.asarray(positions, dtype=np.float64)
    return dict(
        n_trades=int(len(trips)),
        n_fills=int(len(trades)),
        win_rate=float((closed["pnl"] > 0).mean()) if len(closed) else float("nan"),
        fees_paid=float(trades["fee"].sum()) if len(trades) else 0.0,
        exposure=float((np.abs(pos) > 0).mean()) if len(pos) else 0.0,
    )
