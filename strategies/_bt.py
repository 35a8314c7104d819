"""backtrader glue: the broker set-up and the strategy classes that run the rules bar by bar.

The strategies hold no trading logic of their own: at the close of each bar they hand the bar's
precomputed signal row, the position and the account to a rules object (``strategies._rules``)
and turn the returned :class:`~strategies._rules.Intent` into a market order, which the broker
fills at the next bar's open (see ``strategies._execution``). Signals are precomputed in bulk and
passed in as plain lists aligned to the feed, so a bar costs a few list lookups — no model call
and no pandas lookup per bar.
"""
from __future__ import annotations

import logging

import backtrader as bt

from ._execution import BPS
from ._rules import HOLD, TradeState

log = logging.getLogger(__name__)


class FractionalCommission(bt.CommInfoBase):
    """Commission ``fee * |size| * price`` on each fill (``commission`` is a fraction: 0.001 = 0.1 %),
    stock-like (no leverage, no margin), for fractional sizes that are never rounded."""

    params = (
        ("stocklike", True),
        ("commtype", bt.CommInfoBase.COMM_PERC),
        ("percabs", True),
    )

    def getsize(self, price, cash):
        # backtrader's default rounds down to whole units; ETH sizes are fractional
        return self.p.leverage * cash / price


def configure_broker(cerebro: bt.Cerebro, fee: float, slippage_bps: float, cash: float) -> bt.brokers.BackBroker:
    """Make ``cerebro.broker`` follow the fill contract of ``strategies._execution``; returns it.

    - starting cash ``cash`` (quote currency); no cheat-on-close, no cheat-on-open, so a market
      order created at the close of bar t fills at the open of bar t+1;
    - :class:`FractionalCommission` with ``fee`` on every fill;
    - slippage ``slippage_bps`` against us on fills at the open, allowed outside the bar's high-low
      range (``slip_out=True``) so the price equals ``_execution.fill_price`` exactly;
    - ``checksubmit``: an order that cash cannot pay is marked ``Margin`` — a counted rejection;
    - ``shortcash``: a short sale credits cash (spot-like accounting when shorting is enabled).
    """
    broker = cerebro.broker
    broker.setcash(float(cash))
    broker.set_coc(False)
    broker.set_coo(False)
    broker.set_checksubmit(True)
    broker.set_shortcash(True)
    broker.addcommissioninfo(FractionalCommission(commission=float(fee)))
    broker.set_slippage_perc(
        float(slippage_bps) / BPS, slip_open=True, slip_limit=True, slip_match=True, slip_out=True
    )
    return broker


class RulesStrategy(bt.Strategy):
    """Runs a rules object (``strategies._rules``) at the close of every bar.

    Params:
    - ``rules``: ``GRURules`` / ``SMARules`` / ``BuyHoldRules`` (or anything with ``decide``);
    - ``signals``: list with one tuple per feed bar (the rules' signal row of that bar);
    - ``first_decision``, ``last_decision``: bar indices (inclusive) where decisions are taken —
      the runner sets them so that every fill falls inside the backtest range;
    - ``record_from``: first bar index whose closing equity is recorded;
    - ``progress``: optional callable(bars_done) called every few thousand bars;
    - ``flat_hold``: optional list of bools from ``rules.flat_hold(signals)``: bars where ``decide``
      would hold while flat, so the call is skipped (most bars of a selective strategy);
    - ``times``: optional open times of the feed's bars, to name them in log lines.

    After ``cerebro.run()`` the instance holds ``fills`` (one tuple per fill: bar index, signed
    size, price, fee, cash after, position after, reason), ``rec_equity``/``rec_cash``/
    ``rec_position`` (one value per recorded bar, at its close), ``rejected`` (count of rejected
    orders) and ``first_rejected`` (bar index of the first, or None). Each rejection is logged at
    DEBUG only: a run can have thousands; the caller reports the count.
    """

    params = (
        ("rules", None),
        ("signals", None),
        ("first_decision", 0),
        ("last_decision", None),
        ("record_from", 0),
        ("progress", None),
        ("flat_hold", None),
        ("times", None),
    )

    def __init__(self):
        self.state = TradeState()
        self.fills: list[tuple] = []
        self.rec_equity: list[float] = []
        self.rec_cash: list[float] = []
        self.rec_position: list[float] = []
        self.rejected = 0
        self.first_rejected: int | None = None
        self._bar = -1
        self._pending = None  # (order, intent) awaiting its fill
        self._decide = self.p.rules.decide
        self._signals = self.p.signals

    def start(self):
        # everything next() needs per bar, as plain attributes and lists: no params lookups there
        n = self.data.buflen()
        first = self.p.first_decision
        last = n - 1 if self.p.last_decision is None else self.p.last_decision
        window = [first <= i <= last for i in range(n)]
        flat_hold = self.p.flat_hold if self.p.flat_hold is not None else [False] * n
        self._window = window
        self._skip_flat = [not w or h for w, h in zip(window, flat_hold)]
        self._record_from = self.p.record_from
        self._progress = self.p.progress
        self._broker = self.broker
        self._closes = self.data.close.array  # preloaded: bar i's close is _closes[i]
        self._rec = (self.rec_equity.append, self.rec_cash.append, self.rec_position.append)

    def notify_order(self, order):
        if order.status in (order.Submitted, order.Accepted):
            return
        intent = self._pending[1] if self._pending is not None and self._pending[0].ref == order.ref else None
        self._pending = None
        # notifications arrive before next() of the bar that executed the order
        bar = self._bar + 1
        if order.status == order.Completed:
            size = order.executed.size
            self.state.on_fill(size, intent)
            self.fills.append(
                (bar, size, order.executed.price, order.executed.comm, self.broker.getcash(),
                 self.state.position, intent.reason if intent else "")
            )
        else:
            self._reject(bar, "order of %+.8g ETH (%s) decided at the close of %s not filled at the open of %s "
                         "(%s): not affordable at the next open incl. fee (cash %.2f, open %.8g); not resized",
                         order.created.size, intent.reason if intent else "?", self._when(bar - 1),
                         self._when(bar), order.getstatusname(), self.broker.getcash(), self.data.open[0])

    def _when(self, bar: int) -> str:
        times = self.p.times
        return times[bar].isoformat() if times is not None and 0 <= bar < len(times) else f"bar {bar}"

    def _reject(self, bar: int, msg: str, *args) -> None:
        self.rejected += 1
        if self.first_rejected is None:
            self.first_rejected = bar
        log.debug(msg, *args)

    def next(self):
        i = self._bar = self._bar + 1
        state = self.state
        position = state.position
        if position != 0.0:  # TradeState.on_bar_close, inlined: this runs every bar
            state.bars_held += 1
        broker = self._broker
        equity = broker.getvalue()
        if i >= self._record_from:
            rec_equity, rec_cash, rec_position = self._rec
            rec_equity(equity)
            rec_cash(broker.cash)
            rec_position(position)
        if not i & 4095 and self._progress is not None:
            self._progress(i)
        if self._pending is not None or (self._skip_flat[i] if position == 0.0 else not self._window[i]):
            return
        sig = self._signals[i] if self._signals is not None else ()
        intent = self._decide(state, sig, self._closes[i], equity, broker.cash)
        if intent is HOLD:
            return
        if intent.size > 0.0:
            self._pending = (self.buy(size=intent.size, exectype=bt.Order.Market), intent)
        elif intent.size < 0.0:
            self._pending = (self.sell(size=-intent.size, exectype=bt.Order.Market), intent)
        elif intent.rejected:
            self._reject(i, "%s: %s wanted to enter but cash %.2f buys no ETH incl. fee; counted as rejected",
                         self._when(i), type(self.p.rules).__name__, broker.cash)


class GRUForecastStrategy(RulesStrategy):
    """The GRU forecast strategy: ``rules`` is a ``GRURules``, ``signals`` come from
    ``GRURules.signals(candles, forecasts)`` — forecasts precomputed in bulk, row t made from
    candles up to t only and used at the close of t."""


class SMACrossStrategy(RulesStrategy):
    """SMA crossover baseline (``rules`` = ``SMARules``)."""


class BuyHoldStrategy(RulesStrategy):
    """Buy-and-hold baseline (``rules`` = ``BuyHoldRules``)."""


class IdleStrategy(bt.Strategy):
    """Does nothing: the reference for measuring backtrader's own cost per bar."""

    def next(self):
        pass


STRATEGY_CLASSES = {"gru": GRUForecastStrategy, "sma": SMACrossStrategy, "buyhold": BuyHoldStrategy}
