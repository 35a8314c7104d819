"""Training configuration, device choice and CPU thread count."""
from __future__ import annotations

import contextlib
import os
from dataclasses import asdict, dataclass, fields
from typing import Iterator

import torch

from data import GruowError


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
        positive = ("lookback", "horizon", "hidden", "layers", "batch_size", "max_epochs", "patience")
        for name in positive:
            if int(getattr(self, name)) < 1:
                raise GruowError(f"{name} must be a positive integer, got {getattr(self, name)}")
        if not 0 <= self.dropout < 1:
            raise GruowError(f"dropout {self.dropout} must be in [0, 1)")
        if self.lr <= 0:
            raise GruowError(f"lr {self.lr} must be > 0")
        if self.samples_per_epoch is not None and self.samples_per_epoch < 1:
            raise GruowError("samples_per_epoch must be positive or None (= all windows)")
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
