"""Forecaster speed as RATIOS to bare PyTorch in the same process (so a busy machine cancels out).

1. Inference: ``forecaster.forecast`` over a month of 1-minute windows (windows/s, building the
   windows from candles and returning prices in a DataFrame included, cache off) against a bare
   ``nn.GRU`` + ``nn.Linear`` forward over the same, already built input tensor, same batch size
   (forecast's CPU default 256, and 4096), same thread count. Target ratio >= 0.8.
2. Training: ``forecaster.train`` samples/s against a bare training step (forward, MSE,
   backward, AdamW step on pre-built tensors), same batch size and threads. Reported for the
   training batches alone (target >= 0.8), per epoch including validation, and for the whole
   ``train()`` call (data prep, validation, checkpoints and final scoring included).

Timings alternate ours / bare for ``--rounds`` rounds and keep each side's best, which filters
out other processes stealing the CPU. Run: ``python benchmarks/bench_forecaster.py``.
"""
from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

from data import read_candles, segments
from _shared import shared_data_dir
from forecaster import TrainConfig, forecast, train
from forecaster._config import default_batch_size, inference_threads, torch_threads
from forecaster._features import candle_arrays, clip_runs, split_rows, window_ends

SHARED = shared_data_dir()
MONTH = SHARED / "eth_usdt_1m_binance_2025-06.csv"


def bare_forward(x: torch.Tensor, gru: nn.GRU, head: nn.Linear, batch_size: int) -> None:
    with torch.inference_mode():
        for xb in x.split(batch_size):
            _, h = gru(xb)
            head(h[-1])


def bare_train(x: torch.Tensor, y: torch.Tensor, n_samples: int, batch_size: int, seed: int = 0) -> float:
    """Seconds for ``n_samples`` of plain training steps on pre-built tensors."""
    torch.manual_seed(seed)
    gru, head = nn.GRU(5, 64, batch_first=True), nn.Linear(64, 32)
    opt = torch.optim.AdamW([*gru.parameters(), *head.parameters()], lr=2e-3)
    order = torch.randperm(len(x))[:n_samples]
    t0 = time.perf_counter()
    for idx in order.split(batch_size):
        _, h = gru(x[idx])
        loss = nn.functional.mse_loss(head(h[-1]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=4, help="alternating ours/bare repetitions; best of each")
    ap.add_argument("--epochs", type=int, default=3, help="training epochs of 8192 samples")
    args = ap.parse_args()

    candles = read_candles(MONTH, symbol="ETH/USDT", exchange="binance")
    train_part = candles.loc[:"2025-06-22T17:19"]
    tmp = Path(tempfile.mkdtemp(prefix="bench-forecaster-"))

    # ---- a default-architecture model (hidden 64); its weights do not change the speed
    ckpt = train(train_part, TrainConfig(max_epochs=1, samples_per_epoch=1024), tmp / "m.pt", progress=False)
    ends = torch.from_numpy(window_ends(segments(candles), 128, 0))
    base = torch.from_numpy(candle_arrays(candles))
    with torch_threads(inference_threads()) as threads:  # forecast()'s own setting
        x = ckpt.scaler.inputs(base, ends, 128)  # the same tensors forecast() builds, pre-built
        gru, head = ckpt.model.gru, ckpt.model.head
        n = len(ends)
        print(f"machine: {os.cpu_count()} logical CPUs, torch {torch.__version__}, {threads} thread(s)")
        print(f"\n1. inference over {n:,} windows (a month of 1m candles)")
        for bs in (default_batch_size(torch.device("cpu")), 4096):
            ours, bare = [], []
            for _ in range(args.rounds):
                t0 = time.perf_counter()
                fc = forecast(ckpt, candles, batch_size=bs, device="cpu", progress=False)
                ours.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                bare_forward(x, gru, head, bs)
                bare.append(time.perf_counter() - t0)
            assert len(fc) == n
            o, b = n / min(ours), n / min(bare)
            default = " (forecast's CPU default)" if bs == default_batch_size(torch.device("cpu")) else ""
            print(f"   batch {bs}{default}:")
            print(f"     forecast():          {o:10,.0f} windows/s  (best of {args.rounds}: {min(ours):.2f} s)")
            print(f"     bare GRU+head:       {b:10,.0f} windows/s  (best of {args.rounds}: {min(bare):.2f} s)")
            print(f"     RATIO forecast/bare: {o / b:.3f}   (target >= 0.8)")

    # ---- training
    cfg = TrainConfig(max_epochs=args.epochs, samples_per_epoch=8192, patience=100)
    samples = cfg.max_epochs * cfg.samples_per_epoch
    with torch_threads(cfg.threads):
        a, b = split_rows(len(train_part), cfg.val_fraction)["train"]
        tr_ends = torch.from_numpy(window_ends(clip_runs(segments(train_part), a, b), 128, 8))
        tbase = torch.from_numpy(candle_arrays(train_part))
        xt, yt = ckpt.scaler.inputs(tbase, tr_ends, 128), ckpt.scaler.targets(tbase, tr_ends, 8).reshape(-1, 32)
    print(f"\n2. training: {cfg.max_epochs} epochs x {cfg.samples_per_epoch} samples, batch {cfg.batch_size}")
    whole, loop, epoch, bare_t = [], [], [], []
    for r in range(args.rounds):
        path = tmp / f"t{r}.pt"
        t0 = time.perf_counter()
        run = train(train_part, cfg, path, progress=False)
        whole.append(time.perf_counter() - t0)
        loop.append(sum(h["train_seconds"] for h in run.meta["history"]))
        epoch.append(sum(h["seconds"] for h in run.meta["history"]))
        with torch_threads(cfg.threads):
            bare_t.append(bare_train(xt, yt, samples, cfg.batch_size))
    b = samples / min(bare_t)
    for label, secs in (("training batches", loop), ("epochs incl. validation", epoch),
                        ("whole train() call", whole)):
        s = samples / min(secs)
        print(f"   {label:24s} {s:8,.0f} samples/s   RATIO to bare step: {s / b:.3f}")
    print(f"   bare training step       {b:8,.0f} samples/s   (target for 'training batches' >= 0.8)")
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
