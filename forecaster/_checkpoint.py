"""Self-describing checkpoints: one ``.pt`` file carries everything to forecast or to resume.

The file is ``torch.save`` of a dict holding only plain types (str, int, float, bool, None,
lists, dicts) and tensors, so it loads with ``torch.load(weights_only=True)`` — no pickled code
runs on load. Keys:

- ``format``/``format_version``; ``model_config`` + ``model_state`` (the BEST epoch's weights);
- ``train_config`` (:class:`TrainConfig` as a dict), ``lookback``, ``horizon``, ``features``
  (the feature/target definition), ``scaler`` (means/stds fitted on training windows);
- ``data``: symbol, exchange, timeframe, first/last candle, ``end`` (exclusive), rows, sha256 of
  the candles, and the train/val/test time ranges;
- ``history`` (per epoch: train/val loss, lr, seconds), ``best_epoch``, ``stopped`` (why
  training ended: ``"early_stop"`` or ``"max_epochs"``; ``None`` while it runs, so a file left by
  an interrupted run says so), ``metrics`` (validation and test scores beside persistence,
  ``None`` until the last epoch's scores are written), ``versions``, ``created``;
- ``resume``: last epoch's weights, optimiser and scheduler state, RNG states, counters.
"""
from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from pathlib import Path

import torch

from data import GruowError, atomic_path

from ._config import TrainConfig
from ._features import Scaler
from .model import GRUForecaster

log = logging.getLogger(__name__)

FORMAT = "gruow-forecaster"
FORMAT_VERSION = 1
STOP_REASONS = ("early_stop", "max_epochs")  # the values of "stopped" in a finished run's file


@dataclass
class Checkpoint:
    """A loaded checkpoint. ``model`` is on the CPU in eval mode; ``hash`` is the file's sha256."""

    model: GRUForecaster
    config: TrainConfig
    meta: dict
    hash: str
    path: Path | None = None
    scaler: Scaler = field(init=False)

    def __post_init__(self) -> None:
        self.scaler = Scaler.from_dict(self.meta["scaler"])

    @property
    def lookback(self) -> int:
        return int(self.meta["lookback"])

    @property
    def horizon(self) -> int:
        return int(self.meta["horizon"])

    @property
    def timeframe(self) -> str:
        return str(self.meta["data"]["timeframe"])

    @property
    def name(self) -> str:
        return self.path.stem if self.path is not None else self.hash[:12]

    @property
    def epochs(self) -> int:
        """Epochs trained so far (the file is rewritten after each one)."""
        return len(self.meta.get("history") or [])

    @property
    def finished(self) -> bool:
        """True when training ended on its own: early stopping or ``max_epochs`` reached. False
        for the file of a run that was interrupted (Ctrl-C, SIGTERM, a crash) — its weights are
        the best of the epochs it got through; ``train(..., resume=True)`` finishes it."""
        return self.meta.get("stopped") in STOP_REASONS

    def describe(self) -> str:
        """One line on how far training got, e.g. ``"unfinished run (epoch 2 of 6)"`` or
        ``"finished run (early stop after epoch 33 of 60, best epoch 25)"``."""
        of = f"epoch {self.epochs} of {self.config.max_epochs}"
        if not self.finished:
            return f"unfinished run ({of})"
        how = "early stop after " if self.meta["stopped"] == "early_stop" else ""
        return f"finished run ({how}{of}, best epoch {self.meta.get('best_epoch')})"

    def unfinished_warning(self) -> str | None:
        """The warning a command shows before using an unfinished run's weights; None if finished."""
        if self.finished:
            return None
        return (f"model {self.name} is an {self.describe()}; run the same `gruow train ... --resume` command "
                "to finish it")


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def save_state(path: Path, state: dict) -> Path:
    """Write the checkpoint dict atomically (a crash mid-write leaves the previous file intact)."""
    with atomic_path(path) as tmp:
        torch.save(state, tmp)
    return Path(path)


def read_state(path: Path) -> dict:
    """The raw checkpoint dict, loaded safely; :class:`GruowError` if it is not a GRU-ow checkpoint."""
    path = Path(path)
    if not path.is_file():
        raise GruowError(f"{path}: checkpoint not found")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt file, not a torch file, or foreign pickled objects
        raise GruowError(f"{path}: not a readable GRU-ow checkpoint ({type(exc).__name__})") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise GruowError(f"{path}: not a GRU-ow forecaster checkpoint")
    if int(state.get("format_version", 0)) > FORMAT_VERSION:
        raise GruowError(f"{path}: checkpoint format {state['format_version']} is newer than this GRU-ow "
                         f"reads ({FORMAT_VERSION}); upgrade gruow")
    return state


def load_checkpoint(path) -> Checkpoint:
    """Load ``path`` (a ``.pt`` file written by :func:`forecaster.train`) for inference.

    The model gets the best epoch's weights, on the CPU, in eval mode. Forecasting with it is
    bit-identical to forecasting with the model that wrote it (same device, same batch size).
    """
    path = Path(path)
    state = read_state(path)
    model = GRUForecaster(**state["model_config"])
    model.load_state_dict(state["model_state"])
    model.eval()
    meta = {k: v for k, v in state.items() if k not in ("model_state", "resume")}
    return Checkpoint(model=model, config=TrainConfig.from_dict(state["train_config"]), meta=meta,
                      hash=file_sha256(path), path=path)
