"""Decision rules, free of backtrader: what to do at the close of a bar.

Every strategy is a *rules* object with two halves, after backtesting.py's ``init``/``next`` split:

- ``signals(candles, forecasts)`` precomputes, in bulk, one row of numbers per candle (indexed like
  ``candles``). Row ``t`` uses candles up to ``t`` (and the forecast made at the close of ``t``) only.
- ``decide(state, sig, close, equity, cash)`` runs at the close of bar ``t`` with that bar's signal
  row, the current position and the account, and returns an :class:`Intent`: the signed ETH amount
  to trade at the OPEN of bar ``t+1`` (see ``strategies._execution`` for the fill contract).
- ``flat_hold(signals)`` tells, in bulk, at which bars ``decide`` would hold while flat, so a
  backtest can skip those calls (an optimisation only: calling ``decide`` gives the same result).

The backtest (``strategies.GRUForecastStrategy`` and friends, in backtrader) and the paper trader
both call these same objects, so the rules exist once.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace

import numpy as np
import pandas as pd

from data import GruowError

from ._execution import entry_size, round_trip_cost

NAN = float("nan")
MAX_HORIZON = 8


@dataclass
class TradeState:
    """The position as the rules see it at the close of a bar.

    ``position``: ETH held (negative = short). ``bars_held``: bars closed since the entry fill (the
    fill bar counts as 1 at its close). ``stop``/``take``: exit levels armed at entry (NaN = none).
    """

    position: float = 0.0
    bars_held: int = 0
    stop: float = NAN
    take: float = NAN

    def on_fill(self, size: float, intent: "Intent | None" = None) -> None:
        """Apply a fill of ``size`` ETH (+ buy, - sell) at a bar's open."""
        was_flat = self.position == 0.0
        self.position += size
        if abs(self.position) < 1e-12:
            self.position = 0.0
        if self.position == 0.0:
            self.bars_held, self.stop, self.take = 0, NAN, NAN
        elif was_flat:
            self.bars_held = 0
            self.stop = intent.stop if intent is not None else NAN
            self.take = intent.take if intent is not None else NAN

    def on_bar_close(self) -> None:
        """Count one more bar held; call once per bar, after that bar's fills, before deciding."""
        if self.position != 0.0:
            self.bars_held += 1


@dataclass(frozen=True)
class Intent:
    """An order to place at the close of bar t, filling at the open of bar t+1.

    ``size``: signed ETH (+ buy, - sell), 0.0 = nothing to do. ``reason``: why
    (``entry_long``, ``exit_horizon``, ...; ``rejected_unaffordable`` means the rules wanted to
    enter but cash could not pay any ETH — the caller logs and counts it). ``stop``/``take``:
    price levels to arm if this entry fills.
    """

    size: float = 0.0
    reason: str = ""
    stop: float = NAN
    take: float = NAN

    @property
    def rejected(self) -> bool:
        return self.reason.startswith("rejected")


HOLD = Intent()


def _check_stake(stake: float) -> None:
    if not (0.0 < stake <= 1.0):
        raise GruowError(f"--stake {stake} must be a fraction of equity in (0, 1]")


@dataclass(frozen=True)
class GRUParams:
    """Parameters of the GRU forecast strategy.

    - ``horizon`` (1..8 bars): the forecast close used (``close_h``) and the holding period;
    - ``entry_threshold``: enter long when ``close_h / ref_close - 1`` exceeds it (short when below
      its negative, if ``allow_short``). Must cover the round-trip cost ``2*fee + 2*slippage``;
      ``None`` means exactly that cost;
    - ``exit_threshold``: exit a long when the forecast return falls below it (a short when it rises
      above its negative);
    - ``stake``: fraction of equity put into each position;
    - ``use_stops``: also exit when a bar closes beyond the lowest predicted low (stop) or the highest
      predicted high (take-profit) of the entry's forecast.
    """

    horizon: int = 8
    entry_threshold: float | None = None
    exit_threshold: float = 0.0
    stake: float = 0.99
    allow_short: bool = False
    use_stops: bool = False

    def resolved(self, fee: float, slippage_bps: float) -> "GRUParams":
        """Validated copy with ``entry_threshold`` filled in; raises GruowError on bad values."""
        if not (1 <= int(self.horizon) <= MAX_HORIZON):
            raise GruowError(f"--horizon {self.horizon} must be a whole number of bars from 1 to {MAX_HORIZON}")
        _check_stake(self.stake)
        cost = round_trip_cost(fee, slippage_bps)
        entry = cost if self.entry_threshold is None else float(self.entry_threshold)
        if entry < cost - 1e-15:
            raise GruowError(
                f"--entry-threshold {entry:g} must be at least the round-trip cost {cost:g} "
                "(2 x fee + 2 x slippage), or no trade can pay for itself"
            )
        if self.exit_threshold > entry:
            raise GruowError(f"--exit-threshold {self.exit_threshold:g} must not exceed --entry-threshold {entry:g}")
        return replace(self, horizon=int(self.horizon), entry_threshold=entry)


@dataclass(frozen=True)
class SMAParams:
    """SMA crossover baseline: long while the ``fast``-bar mean close is above the ``slow``-bar one."""

    fast: int = 20
    slow: int = 60
    stake: float = 0.99

    def resolved(self, fee: float, slippage_bps: float) -> "SMAParams":
        if not (1 <= self.fast < self.slow):
            raise GruowError(f"SMA windows fast={self.fast}, slow={self.slow} must satisfy 1 <= fast < slow")
        _check_stake(self.stake)
        return self


@dataclass(frozen=True)
class BuyHoldParams:
    """Buy-and-hold baseline: buy ``stake`` of equity at the first decision, hold to the end."""

    stake: float = 0.99

    def resolved(self, fee: float, slippage_bps: float) -> "BuyHoldParams":
        _check_stake(self.stake)
        return self


def gru_signals(forecasts: pd.DataFrame, horizon: int) -> pd.DataFrame:
    """Per decision time: ``ret`` = forecast return to ``horizon``, ``low``/``high`` = the lowest
    predicted low and highest predicted high over candles 1..horizon. Index as ``forecasts``.

    ``forecasts`` follows the forecaster's contract: row ``t`` (decision time = open time of the
    last input candle) holds ``ref_close`` and ``open_h, high_h, low_h, close_h`` for h = 1..8.
    """
    need = ["ref_close", f"close_{horizon}"] + [f"low_{h}" for h in range(1, horizon + 1)] + [
        f"high_{h}" for h in range(1, horizon + 1)
    ]
    missing = [c for c in need if c not in forecasts.columns]
    if missing:
        raise GruowError(f"forecasts lack column(s) {', '.join(missing)} needed for horizon {horizon}")
    ref = forecasts["ref_close"].to_numpy(np.float64)
    out = pd.DataFrame(index=forecasts.index)
    out["ret"] = forecasts[f"close_{horizon}"].to_numpy(np.float64) / ref - 1.0
    out["low"] = forecasts[[f"low_{h}" for h in range(1, horizon + 1)]].to_numpy(np.float64).min(axis=1)
    out["high"] = forecasts[[f"high_{h}" for h in range(1, horizon + 1)]].to_numpy(np.float64).max(axis=1)
    return out


class _ResolvedParams:
    """Mixin of the rules dataclasses: ``params`` are validated and resolved against the fee and
    slippage once, at construction (e.g. the default entry threshold = the round-trip cost)."""

    def __post_init__(self):
        object.__setattr__(self, "params", self.params.resolved(self.fee, self.slippage_bps))


@dataclass(frozen=True)
class GRURules(_ResolvedParams):
    """The GRU forecast strategy's rules (see :class:`GRUParams`)."""

    params: GRUParams = field(default_factory=GRUParams)
    fee: float = 0.001
    slippage_bps: float = 0.0
    name = "gru"
    columns = ("ret", "low", "high")

    def signals(self, candles: pd.DataFrame, forecasts: pd.DataFrame | None) -> pd.DataFrame:
        """Signal rows aligned to ``candles.index``; NaN where no forecast exists for a bar."""
        if forecasts is None:
            raise GruowError("the gru strategy needs forecasts: pass --model NAME (or forecasts=...)")
        return gru_signals(forecasts, self.params.horizon).reindex(candles.index)

    def flat_hold(self, sig: pd.DataFrame) -> np.ndarray:
        """Per bar: True where :meth:`decide` holds when flat (no entry signal), in bulk."""
        ret = sig["ret"].to_numpy(np.float64)
        enter = ret > self.params.entry_threshold
        if self.params.allow_short:
            enter |= ret < -self.params.entry_threshold
        return ~enter

    def decide(self, state: TradeState, sig, close: float, equity: float, cash: float) -> Intent:
        """Intent at the close of a bar; ``sig`` = ``(ret, low, high)`` of that bar."""
        ret, low, high = sig
        p = self.params
        if state.position == 0.0:
            if not math.isfinite(ret):
                return HOLD
            if ret > p.entry_threshold:
                side, reason, stop, take = 1.0, "entry_long", low, high
            elif p.allow_short and ret < -p.entry_threshold:
                side, reason, stop, take = -1.0, "entry_short", high, low
            else:
                return HOLD
            size = entry_size(
                equity=equity, cash=cash, price=close, stake=p.stake, fee=self.fee, slippage_bps=self.slippage_bps
            )
            if size <= 0.0:
                return Intent(0.0, "rejected_unaffordable")
            if not p.use_stops:
                stop = take = NAN
            return Intent(side * size, reason, stop, take)

        side = 1.0 if state.position > 0 else -1.0
        exit_size = -state.position
        if state.bars_held >= p.horizon:
            return Intent(exit_size, "exit_horizon")
        if p.use_stops:
            if math.isfinite(state.stop) and side * (close - state.stop) <= 0.0:
                return Intent(exit_size, "exit_stop")
            if math.isfinite(state.take) and side * (close - state.take) >= 0.0:
                return Intent(exit_size, "exit_take")
        if math.isfinite(ret) and side * ret < p.exit_threshold:
            return Intent(exit_size, "exit_forecast")
        return HOLD


@dataclass(frozen=True)
class SMARules(_ResolvedParams):
    """SMA crossover baseline (see :class:`SMAParams`)."""

    params: SMAParams = field(default_factory=SMAParams)
    fee: float = 0.001
    slippage_bps: float = 0.0
    name = "sma"
    columns = ("fast", "slow")

    def signals(self, candles: pd.DataFrame, forecasts: pd.DataFrame | None = None) -> pd.DataFrame:
        """Trailing means of the close (row t uses closes t-n+1..t only); NaN until a window fills."""
        close = candles["close"]
        return pd.DataFrame(
            {
                "fast": close.rolling(self.params.fast, min_periods=self.params.fast).mean(),
                "slow": close.rolling(self.params.slow, min_periods=self.params.slow).mean(),
            },
            index=candles.index,
        )

    def flat_hold(self, sig: pd.DataFrame) -> np.ndarray:
        """Per bar: True where :meth:`decide` holds when flat (fast mean not above slow), in bulk."""
        return ~(sig["fast"].to_numpy(np.float64) > sig["slow"].to_numpy(np.float64))

    def decide(self, state: TradeState, sig, close: float, equity: float, cash: float) -> Intent:
        fast, slow = sig
        if not (math.isfinite(fast) and math.isfinite(slow)):
            return HOLD
        if state.position == 0.0 and fast > slow:
            size = entry_size(
                equity=equity, cash=cash, price=close, stake=self.params.stake, fee=self.fee,
                slippage_bps=self.slippage_bps,
            )
            return Intent(size, "entry_long") if size > 0 else Intent(0.0, "rejected_unaffordable")
        if state.position > 0.0 and fast < slow:
            return Intent(-state.position, "exit_cross")
        return HOLD


@dataclass(frozen=True)
class BuyHoldRules(_ResolvedParams):
    """Buy-and-hold baseline (see :class:`BuyHoldParams`)."""

    params: BuyHoldParams = field(default_factory=BuyHoldParams)
    fee: float = 0.001
    slippage_bps: float = 0.0
    name = "buyhold"
    columns = ()

    def signals(self, candles: pd.DataFrame, forecasts: pd.DataFrame | None = None) -> pd.DataFrame:
        return pd.DataFrame(index=candles.index)

    def flat_hold(self, sig: pd.DataFrame) -> np.ndarray:
        """Never: flat means not yet bought."""
        return np.zeros(len(sig), dtype=bool)

    def decide(self, state: TradeState, sig, close: float, equity: float, cash: float) -> Intent:
        if state.position != 0.0:
            return HOLD
        size = entry_size(
            equity=equity, cash=cash, price=close, stake=self.params.stake, fee=self.fee,
            slippage_bps=self.slippage_bps,
        )
        return Intent(size, "entry_long") if size > 0 else Intent(0.0, "rejected_unaffordable")


RULES = {"gru": (GRURules, GRUParams), "sma": (SMARules, SMAParams), "buyhold": (BuyHoldRules, BuyHoldParams)}


def make_rules(strategy: str, params=None, *, fee: float, slippage_bps: float):
    """Build the rules object for ``strategy`` (``gru``, ``sma`` or ``buyhold``).

    ``params``: ``None`` (defaults), the strategy's params dataclass, or a dict of its fields
    (unknown keys raise GruowError naming them).
    """
    if strategy not in RULES:
        raise GruowError(f"--strategy {strategy!r} must be one of {', '.join(RULES)}")
    rules_cls, params_cls = RULES[strategy]
    if params is None:
        params = params_cls()
    elif isinstance(params, dict):
        known = set(params_cls.__dataclass_fields__)
        bad = sorted(set(params) - known)
        if bad:
            raise GruowError(
                f"unknown {strategy} parameter(s) {', '.join(bad)}; known: {', '.join(sorted(known))}"
            )
        params = params_cls(**{k: v for k, v in params.items() if v is not None})
    elif not isinstance(params, params_cls):
        raise GruowError(f"params for {strategy} must be a {params_cls.__name__} or a dict")
    if not (0.0 <= fee < 0.1):
        raise GruowError(f"--fee {fee} must be a fraction in [0, 0.1) (0.001 = 0.1 %)")
    if not (0.0 <= slippage_bps < 1000):
        raise GruowError(f"--slippage-bps {slippage_bps} must be in [0, 1000) basis points")
    return rules_cls(params=params, fee=float(fee), slippage_bps=float(slippage_bps))


def params_dict(rules) -> dict:
    """The resolved parameters of a rules object, as a plain dict (for config.json)."""
    return asdict(rules.params)
