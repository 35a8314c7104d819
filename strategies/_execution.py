"""The fill, fee, slippage and sizing model shared by the backtest and the paper trader.

Fill semantics (the one contract every GRU-ow execution path follows):

- A decision is taken at the CLOSE of bar ``t`` and becomes a market order.
- The order fills at the OPEN of bar ``t+1`` (never at the close of ``t``: no cheat-on-close,
  no cheat-on-open). Fill price = ``open[t+1] * (1 + slippage_bps / 10_000)`` for a buy and
  ``open[t+1] * (1 - slippage_bps / 10_000)`` for a sell: slippage always goes against us and
  may leave the bar's high-low range.
- Commission = ``fee * |size| * fill_price`` on EVERY fill (entry and exit), taken from cash.
  ``fee`` is a fraction: 0.001 = 0.1 %.
- Sizes are in base currency (ETH) and fractional: 0.0012 ETH stays 0.0012 ETH.
- An entry is sized at the close of ``t`` as a fraction (``stake``) of equity, capped so that it can
  be paid at that price including fee and slippage. If the price then moves so that the fill at
  ``open[t+1]`` would cost more than the cash available, the order is REJECTED (never resized);
  every rejection is logged and counted.

This module is pure Python (no backtrader): the paper trader simulates fills with these functions,
and ``strategies.configure_broker`` makes backtrader's broker follow exactly the same contract
(tests check that both give the same prices, fees and cash).
"""
from __future__ import annotations

import logging
import math

log = logging.getLogger(__name__)

BPS = 10_000.0


def fill_price(open_price: float, size: float, slippage_bps: float) -> float:
    """Price at which a market order of ``size`` ETH (+ buy, - sell) fills at a bar's open."""
    slip = slippage_bps / BPS
    return open_price * (1.0 + slip) if size > 0 else open_price * (1.0 - slip)


def commission(size: float, price: float, fee: float) -> float:
    """Commission in quote currency for one fill: ``fee * |size| * price``."""
    # backtrader's order of operations (|size| * fee * price): the same bits as the backtest's fees
    return abs(size) * fee * price


def round_trip_cost(fee: float, slippage_bps: float) -> float:
    """Cost of entering and leaving a position, as a fraction of its value (both legs)."""
    return 2.0 * fee + 2.0 * slippage_bps / BPS


def entry_size(
    *,
    equity: float,
    cash: float,
    price: float,
    stake: float,
    fee: float,
    slippage_bps: float,
) -> float:
    """ETH to buy (or sell short) for a new position, sized at the decision bar's close ``price``.

    ``stake * equity`` worth of ETH, capped at what ``cash`` pays at ``price`` after slippage and
    fee. Never rounded: fractional ETH is kept. Returns 0.0 when nothing can be afforded.
    """
    if not (price > 0 and math.isfinite(price)) or equity <= 0 or cash <= 0:
        return 0.0
    wanted = stake * equity / price
    # a hair under the exact limit, so float rounding cannot turn "exactly affordable" into a rejection
    affordable = cash / (price * (1.0 + slippage_bps / BPS) * (1.0 + fee)) * (1.0 - 1e-12)
    return max(0.0, min(wanted, affordable))


def fill_cost(size: float, open_price: float, fee: float, slippage_bps: float) -> float:
    """Cash needed to buy ``size`` ETH at the next bar's open: notional at the slipped price plus fee."""
    px = fill_price(open_price, size, slippage_bps)
    return abs(size) * px + commission(size, px, fee)
