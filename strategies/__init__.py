"""Trading strategies: decision rules, the fill/fee/sizing model, and their backtrader wrappers.

Public API (import from ``strategies``)::

    from strategies import GRUForecastStrategy, GRURules, GRUParams, TradeState, Intent
    from strategies import configure_broker, fill_price, commission, entry_size
    from strategies import BarRunner, SimBroker   # the same rules and fills without backtrader

The rules (``GRURules``, ``SMARules``, ``BuyHoldRules``) are pure Python and decide at the close of
bar t; their orders fill at the open of bar t+1 under the contract documented in
``strategies._execution``. The backtest runs them inside backtrader (``GRUForecastStrategy`` and
friends, broker set up by ``configure_broker``); the paper trader calls the same rules directly.
"""
from ._bt import (
    STRATEGY_CLASSES,
    BuyHoldStrategy,
    FractionalCommission,
    GRUForecastStrategy,
    IdleStrategy,
    RulesStrategy,
    SMACrossStrategy,
    configure_broker,
)
from ._execution import commission, entry_size, fill_cost, fill_price, round_trip_cost
from ._rules import (
    HOLD,
    BuyHoldParams,
    BuyHoldRules,
    GRUParams,
    GRURules,
    Intent,
    SMAParams,
    SMARules,
    TradeState,
    gru_signals,
    make_rules,
    params_dict,
)
from ._sim import BarRunner, Fill, SimBroker, simulate

__all__ = [
    "BarRunner",
    "Fill",
    "SimBroker",
    "simulate",
    "HOLD",
    "STRATEGY_CLASSES",
    "BuyHoldParams",
    "BuyHoldRules",
    "BuyHoldStrategy",
    "FractionalCommission",
    "GRUForecastStrategy",
    "GRUParams",
    "GRURules",
    "IdleStrategy",
    "Intent",
    "RulesStrategy",
    "SMACrossStrategy",
    "SMAParams",
    "SMARules",
    "TradeState",
    "commission",
    "configure_broker",
    "entry_size",
    "fill_cost",
    "fill_price",
    "gru_signals",
    "make_rules",
    "params_dict",
    "round_trip_cost",
]
