"""A bar-by-bar runner of the rules with a simulated broker, without backtrader.

:class:`SimBroker` fills orders under the contract of ``strategies._execution`` with the same
arithmetic as the backtrader broker set up by ``configure_broker``, operation for operation, so
fills, fees and equity agree bit for bit (the paper-trading parity tests compare the files byte
for byte). :class:`BarRunner` drives rules + position state + broker one closed bar at a time; the
paper trader uses it live, the backtest runner uses it for the buy-and-hold benchmark.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field

from ._execution import commission, fill_price
from ._rules import HOLD, Intent, TradeState

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Fill:
    """One executed order: ``bar`` index, signed ``size`` (ETH), fill ``price``, ``fee`` (quote),
    ``cash_after``/``position_after`` the account after it, ``reason`` from the intent."""

    bar: int
    size: float
    price: float
    fee: float
    cash_after: float
    position_after: float
    reason: str


@dataclass
class SimBroker:
    """Cash and position of a stock-like spot account filling market orders at the next open.

    Acceptance follows backtrader's ``checksubmit``: an order that opens or adds to a long position
    must be payable at the decision close ``created_price`` (after fee, before slippage), and again at
    the slipped open it fills at; otherwise it is rejected, never resized. Closing and short sales
    credit cash and are always accepted.

    The arithmetic repeats backtrader's ``BackBroker`` (stock-like, ``shortcash``, leverage 1)
    operation for operation, so cash, equity, fees and reported prices are the same floats, bit
    for bit, as a backtest's (a closed long credits ``size * entry + size * (price - entry)``, not
    ``size * price``; a long is valued as ``(size * close - unrealized) + unrealized``). The paper
    trader relies on this for byte-identical ``trades.csv`` files. ``entry_price`` is backtrader's
    ``Position.price``: the (average) price of the open position, 0.0 when flat.
    """

    cash: float
    fee: float
    slippage_bps: float
    position: float = 0.0
    entry_price: float = 0.0

    def value(self, close: float) -> float:
        """Equity marked at ``close``: cash plus position value (negative for a short)."""
        dvalue = self.position * close
        if dvalue > 0.0:  # a long: backtrader adds the unrealized P&L back separately
            unrealized = self.position * (close - self.entry_price)
            return self.cash + ((dvalue - unrealized) + unrealized)
        return self.cash + dvalue

    def _split(self, size: float) -> tuple[float, float]:
        """(opened, closed) parts of an order of ``size``, as backtrader's ``Position.update``."""
        pos = self.position
        new = pos + size
        if not new:
            return 0.0, size
        if not pos or (pos > 0) == (size > 0):
            return size, 0.0
        if (new > 0) == (pos > 0):
            return 0.0, size
        return new, -pos  # a reversal

    def _cash_after(self, size: float, price: float, entry: float) -> tuple[float, float] | None:
        """(cash, commission) after filling ``size`` at ``price``, or None if cash cannot pay the
        opened part; ``entry`` = price the closed part was bought/sold at."""
        opened, closed = self._split(size)
        cash, comm = self.cash, 0.0
        if closed:
            cash += (-closed) * entry + (-closed) * (price - entry)
            comm = abs(closed) * self.fee * price
            cash -= comm
        if opened:
            cash -= opened * price
            opened_comm = commission(opened, price, self.fee)
            cash -= opened_comm
            if cash < 0.0:
                return None
            comm = comm + opened_comm
        return cash, comm

    def execute(self, size: float, created_price: float, open_price: float) -> tuple[float, float] | None:
        """Fill ``size`` ETH at ``open_price`` (with slippage); returns ``(price, fee)`` or None if rejected.

        ``price`` is what backtrader reports as ``order.executed.price``: ``size * px / size``
        for the fill price ``px``, which may differ from ``px`` in the last bit.
        """
        if self._cash_after(size, created_price, created_price) is None:  # checksubmit, at the close
            return None
        px = fill_price(open_price, size, self.slippage_bps)
        done = self._cash_after(size, px, self.entry_price)
        if done is None:
            return None
        self.cash, fee = done
        old, opened = self.position, self._split(size)[0]
        self.position = old + size
        if not self.position:
            self.entry_price = 0.0
        elif not old or (opened and opened != size):  # opened from flat, or reversed
            self.entry_price = px
        elif opened:  # added to the position: average price
            self.entry_price = (self.entry_price * old + size * px) / self.position
        return (0.0 + size * px) / size, fee


@dataclass
class BarRunner:
    """Rules + :class:`TradeState` + :class:`SimBroker`, advanced one closed bar at a time.

    Call :meth:`on_bar` once per bar in order. An intent decided at the close of bar t is filled at
    the open of bar t+1 inside the next :meth:`on_bar` call, before that bar's decision.
    Rejected orders are counted in ``rejected`` (the first at bar ``first_rejected``) and logged at
    ``log_level`` (WARNING: live, each one matters; :func:`simulate` uses DEBUG and lets its caller
    summarise).
    """

    rules: object
    cash: float
    state: TradeState = field(default_factory=TradeState)
    broker: SimBroker = None
    pending: tuple[Intent, float] | None = None  # (intent, close it was decided at)
    fills: list[Fill] = field(default_factory=list)
    rejected: int = 0
    first_rejected: int | None = None
    log_level: int = logging.WARNING

    def __post_init__(self):
        if self.broker is None:
            self.broker = SimBroker(self.cash, self.rules.fee, self.rules.slippage_bps)

    def on_bar(self, bar: int, open_: float, close: float, sig, decide: bool = True) -> float:
        """Process bar ``bar``: fill the pending order at ``open_``, then (if ``decide``) decide at
        ``close`` with signal row ``sig``. Returns equity at the bar's close (before the new order)."""
        broker, state = self.broker, self.state
        if self.pending is not None:
            intent, created = self.pending
            self.pending = None
            done = broker.execute(intent.size, created, open_)
            if done is None:
                self._reject(bar, "bar %d: order of %+.8g ETH (%s) not filled: not affordable at the next open "
                             "incl. fee (cash %.2f, open %.8g); not resized", bar, intent.size, intent.reason,
                             broker.cash, open_)
            else:
                state.on_fill(intent.size, intent)
                self.fills.append(Fill(bar, intent.size, done[0], done[1], broker.cash, broker.position, intent.reason))
        state.on_bar_close()
        equity = broker.value(close)
        if decide:
            intent = self.rules.decide(state, sig, close, equity, broker.cash)
            if intent is HOLD:
                pass
            elif intent.size != 0.0:
                self.pending = (intent, close)
            elif intent.rejected:
                self._reject(bar, "bar %d: wanted to enter but cash %.2f buys no ETH incl. fee; counted as rejected",
                             bar, broker.cash)
        return equity

    def _reject(self, bar: int, msg: str, *args) -> None:
        self.rejected += 1
        if self.first_rejected is None:
            self.first_rejected = bar
        log.log(self.log_level, msg, *args)


def simulate(rules, opens, closes, signals, *, cash: float, first_decision: int, last_decision: int,
             record_from: int) -> tuple[list[Fill], list[float], list[float], list[float], int]:
    """Run ``rules`` over whole arrays of bars; the same windows as ``RulesStrategy``.

    Returns ``(fills, equity, cash, position, rejected)`` with equity/cash/position recorded at the
    close of bars ``record_from..``.
    """
    runner = BarRunner(rules, cash, log_level=logging.DEBUG)
    eq, cs, ps = [], [], []
    empty = ()
    for i in range(len(closes)):
        sig = signals[i] if signals is not None else empty
        e = runner.on_bar(i, opens[i], closes[i], sig, first_decision <= i <= last_decision)
        if i >= record_from:
            eq.append(e)
            cs.append(runner.broker.cash)
            ps.append(runner.broker.position)
    return runner.fills, eq, cs, ps, runner.rejected
