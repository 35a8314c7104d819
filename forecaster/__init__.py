"""The GRU forecaster: 128 candles in → the next 8 candles (open, high, low, close) out.

Public API (import from ``forecaster``)::

    from forecaster import (GRUForecaster, TrainConfig, train, load_checkpoint, Checkpoint,
                            forecast, evaluate, FORECAST_COLUMNS)

    ckpt = train(candles, TrainConfig(), Path("user_data/models/eth.pt"))   # → Checkpoint
    fc = forecast(ckpt, candles, cache_dir=Path("user_data/models/cache"))   # → DataFrame
    report = evaluate(ckpt, unseen_candles)                                  # → dict

``forecast`` rows are indexed by the decision time ``t`` (open time of the last input candle);
row ``t`` uses candles up to ``t`` only. Modules: ``model`` (the network), ``train`` (the loop),
``_features`` (windows, features, scaler), ``_checkpoint``, ``_inference``, ``_evaluate``,
``_plots``.
"""
from ._checkpoint import Checkpoint, load_checkpoint
from ._config import TrainConfig, resolve_device
from ._evaluate import evaluate, training_overlap, wilson_interval
from ._inference import FORECAST_COLUMNS, forecast, forecast_columns
from .model import GRUForecaster
from .train import train

__all__ = [
    "FORECAST_COLUMNS",
    "Checkpoint",
    "GRUForecaster",
    "TrainConfig",
    "evaluate",
    "forecast",
    "forecast_columns",
    "load_checkpoint",
    "resolve_device",
    "train",
    "training_overlap",
    "wilson_interval",
]
