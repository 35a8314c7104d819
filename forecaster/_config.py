"""Training configuration, device choice and CPU thread count."""
from __future__ import annotations

import contextlib
import math
import os
from dataclasses import asdict, dataclass, fields
from typing import Iterator

import numpy as np
import torch

from data import GruowError

# Bounds of the integer options, inclusive. Generous for real use, small enough that a typo fails
# here with the option's name instead of deep in torch with an allocation error: a 4096-wide,
# 8-layer GRU already holds ~0.8 G parameters (~13 GB with AdamW's state).
INT_LIMITS = {
    "lookback": (2, 10_000),        # the drift baseline needs two input candles
    "horizon": (1, 1_000),
    "hidden": (1, 4096),
    "layers": (1, 8),
    "batch_size": (1, 1 << 20),
    "max_epochs": (1, 100_000),
    "patience": (1, 100_000),
    "lr_patience": (0, 100_000),
    "samples_per_epoch": (1, 1 << 40),
    "seed": (0, 2**32 - 1),
    "threads": (1, 4096),
}
OPTIONAL = {"samples_per_epoch": "all windows", "threads": "half the CPUs"}  # may be None
# float options: (low, high, interval text); "(" / ")" mark an open end
FLOAT_LIMITS = {
    "dropout": (0.0, 1.0, "[0, 1)"),
    "lr": (0.0, 10.0, "(0, 10]"),
    "weight_decay": (0.0, 10.0, "[0, 10]"),
    "lr_factor": (0.0, 1.0, "(0, 1)"),
    "val_fraction": (0.0, 1.0, "(0, 1)"),
    "test_fraction": (0.0, 1.0, "[0, 1)"),
    "grad_clip": (0.0, math.inf, "(0, inf)"),
}
# TrainConfig fields that `gruow train` sets, by option (errors name what the user typed)
CLI_OPTIONS = {"max_epochs": "--epochs", "seed": "--seed", "hidden": "--hidden", "layers": "--layers",
               "val_fraction": "--val-fraction", "test_fraction": "--test-fraction", "device": "--device"}


def _label(name: str) -> str:
    return CLI_OPTIONS.get(name, name)


@dataclass
class TrainConfig:
    """Everything that decides a training run. Defaults are the ones ``gruow train`` uses.

    The defaults are sized for three weeks of 1-minute candles (~24k training windows) on a
    2-core CPU: each epoch trains on a fresh random sample of ``samples_per_epoch`` windows,
    so an epoch takes ~4 s on one core (3.4 s of training, 0.4 s of validation) and a run of
    ``max_epochs`` about 4 minutes when the machine is idle; early stopping usually ends it
    sooner (June 2025 ETH/USDT: epoch 33, 2 min 13 s in all).

    Attributes:
        lookback: input candles per window (128).
        horizon: forecast candles per window (8).
        hidden: GRU hidden width (64).
        layers: stacked GRU layers (1).
        dropout: dropout between GRU layers and before the head (0 = off).
        batch_size: windows per optimiser step (256).
        lr: AdamW learning rate (2e-3); halved (``lr_factor``) after ``lr_patience`` epochs
            without a better validation loss.
        weight_decay: AdamW decoupled weight decay (1e-4).
        max_epochs: upper bound on epochs (60); ``gruow train --epochs`` sets it.
        patience: stop after this many epochs without a better validation loss (8); the best
            epoch's weights are kept.
        samples_per_epoch: training windows drawn (without replacement, seeded) per epoch;
            ``None`` = all of them. Neighbouring windows overlap by 127 candles, so a sample
            loses little information and buys more validation checks per minute.
        val_fraction: share of the given candles, at the END of the range (before any test
            part), used for validation (0.2). Windows never cross the split (see
            ``forecaster._features.split_rows``).
        test_fraction: share of candles at the very end held out for a test score (0 = none).
        grad_clip: max gradient norm (1.0), a guard against exploding GRU gradients.
        seed: seeds weight init and the sampling order; same seed + data on CPU → same weights.
        device: ``"auto"`` (cuda if available, else cpu), ``"cpu"`` or ``"cuda"``.
        threads: CPU threads for torch; ``None`` = half the logical CPUs (at least 1). A GRU
            this small scales poorly past a few threads, and on a shared machine a busy core
            stalls every thread of a parallel op, so leaving half free is faster in practice.
    """

    lookback: int = 128
    horizon: int = 8
    hidden: int = 64
    layers: int = 1
    dropout: float = 0.0
    batch_size: int = 256
    lr: float = 2e-3
    weight_decay: float = 1e-4
    max_epochs: int = 60
    patience: int = 8
    lr_patience: int = 3
    lr_factor: float = 0.5
    samples_per_epoch: int | None = 10240
    val_fraction: float = 0.2
    test_fraction: float = 0.0
    grad_clip: float = 1.0
    seed: int = 0
    device: str = "auto"
    threads: int | None = None

    def __post_init__(self) -> None:
        """Check every field against :data:`INT_LIMITS`/:data:`FLOAT_LIMITS`: a value outside them is a user mistake (a
        ``--hidden 100000`` would otherwise ask torch for ~120 GB), reported as :class:`GruowError`
        naming the ``gruow train`` option where there is one."""
        for name, (lo, hi) in INT_LIMITS.items():
            value = getattr(self, name)
            if name in OPTIONAL and value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not lo <= value <= hi:
                extra = f" or None (= {OPTIONAL[name]})" if name in OPTIONAL else ""
                raise GruowError(f"{_label(name)} {value!r} must be a whole number from {lo:,} to {hi:,}{extra}")
        for name, (lo, hi, text) in FLOAT_LIMITS.items():
            value = getattr(self, name)
            number = isinstance(value, (int, float, np.number)) and not isinstance(value, bool)
            if not number or not (
                (lo < value if text[0] == "(" else lo <= value) and (value < hi if text[-1] == ")" else value <= hi)
            ):
                raise GruowError(f"{_label(name)} {value!r} must be a number in {text}")
        if self.val_fraction + self.test_fraction >= 1:
            raise GruowError(f"--val-fraction {self.val_fraction:g} + --test-fraction {self.test_fraction:g} must "
                             "be below 1 (the rest of the range is trained on)")
        resolve_device(self.device, check_available=False)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        """Rebuild from :meth:`to_dict`; unknown keys (from a newer version) are ignored."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


def resolve_device(device: str | None, *, check_available: bool = True) -> torch.device:
    """``"auto"``/``None`` → cuda when available else cpu; ``"cpu"``/``"cuda"``/``"cuda:N"`` as given."""
    name = "auto" if device is None else str(device).strip().lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name != "cpu" and not name.startswith("cuda"):
        raise GruowError(f"--device {device!r} must be auto, cpu or cuda")
    if check_available and name.startswith("cuda") and not torch.cuda.is_available():
        raise GruowError(f"--device {device} asked for, but this torch build sees no CUDA GPU; use --device cpu")
    return torch.device(name)


def default_batch_size(device: torch.device) -> int:
    """Windows per inference batch: 4096 on a GPU; 256 on a CPU, where a (256, 128, 64) GRU
    output still fits in cache and runs ~1.8x faster per window than batches of 4096."""
    return 4096 if device.type == "cuda" else 256


def default_threads() -> int:
    """Half the logical CPUs, at least 1 (see :attr:`TrainConfig.threads`)."""
    return max(1, (os.cpu_count() or 2) // 2)


def inference_threads() -> int:
    """All logical CPUs: inference is one long forward pass with nothing beside it (measured on 2
    cores: 7,000 windows/s with 2 threads against 4,600 with 1)."""
    return max(1, os.cpu_count() or 1)


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[int]:
    """Run the block with ``n`` torch CPU threads (``None`` = :func:`default_threads`), then restore."""
    n = default_threads() if n is None else max(1, int(n))
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield n
    finally:
        torch.set_num_threads(before)
