"""Training, as one plain loop you can read top to bottom.

data → chronological train/val(/test) split on candles → windows inside each part → scaler fitted
on training windows → model, AdamW, ReduceLROnPlateau → per epoch: a seeded random sample of
training windows in mini-batches, validation loss, lr schedule, early stopping, checkpoint (atomic)
→ validation/test scores of the best weights against persistence → the final checkpoint.

Loss: mean squared error of the scaled targets (see ``forecaster._features``), all 8 × 4 outputs
weighted equally. ``history`` also records the persistence loss on the validation windows (every
future price = last close), so a reader sees at once whether the model beats it.
"""
from __future__ import annotations

import contextlib
import logging
import math
import platform
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd
import torch
from torch import nn

from data import GruowError, candles_hash, candles_meta, check_schema, segments, timeframe_to_timedelta

from ._checkpoint import (
    FORMAT,
    FORMAT_VERSION,
    STOP_REASONS,
    Checkpoint,
    file_sha256,
    load_checkpoint,
    read_state,
    save_state,
)
from ._config import TrainConfig, default_batch_size, resolve_device, torch_threads
from ._evaluate import baselines, score_windows, summarize
from ._features import FEATURE_DEFINITION, Scaler, candle_arrays, clip_runs, split_rows, window_ends
from ._progress import progress_bar
from .model import GRUForecaster

log = logging.getLogger(__name__)

# options that may change when a run is resumed; every other TrainConfig field must match
RESUMABLE_CHANGES = ("max_epochs", "device", "threads")


def train(
    candles: pd.DataFrame,
    config: TrainConfig,
    out_path: Path,
    *,
    resume: bool = False,
    progress: bool = True,
) -> Checkpoint:
    """Train a :class:`GRUForecaster` on ``candles`` and write the checkpoint to ``out_path``.

    The candles are split chronologically by ``config.val_fraction``/``test_fraction`` (the
    validation part follows the training part; windows never cross a split or a gap). The
    checkpoint is rewritten atomically after every epoch, so an interrupted run (Ctrl-C,
    SIGTERM: the ``KeyboardInterrupt`` propagates) leaves a valid file holding its last completed
    epoch, with ``stopped`` None (:attr:`Checkpoint.finished` False). ``resume=True`` continues
    it from there (same candles and config, except ``max_epochs``, ``device`` and ``threads``)
    and gives the same weights as an uninterrupted run on CPU; a run stopped after its last
    epoch but before its scores were written is only scored.
    An existing ``out_path`` is never overwritten without ``resume``. Returns the trained
    :class:`Checkpoint` (best epoch's weights, CPU, eval mode), identical to
    ``load_checkpoint(out_path)``. Sets torch's global seed (``config.seed``) and, for the
    duration of the call only, its thread count and deterministic-algorithms flag.
    """
    out_path = Path(out_path)
    check_schema(candles)
    meta = candles_meta(candles)
    device = resolve_device(config.device)
    L, H = config.lookback, config.horizon

    # ---- data: split the candles, then build windows inside each part only
    parts = split_rows(len(candles), config.val_fraction, config.test_fraction)
    runs = segments(candles, meta["timeframe"])
    ends = {name: window_ends(clip_runs(runs, a, b), L, H) for name, (a, b) in parts.items()}
    needed = ["train", "val"] + (["test"] if config.test_fraction > 0 else [])
    for name in needed:
        if len(ends[name]) == 0:
            a, b = parts[name]
            raise GruowError(
                f"the {name} part ({b - a} candles) holds no window of {L + H} consecutive candles "
                f"({L} inputs + {H} targets); give a longer --start/--end range"
                + (" or a larger --val-fraction" if name == "val" else "")
            )
    identity = _data_identity(candles, meta, parts, ends)

    saved = _previous_run(out_path, config, identity, resume)
    done = saved is not None and saved["stopped"] in STOP_REASONS and (
        saved["stopped"] == "early_stop" or len(saved["history"]) >= config.max_epochs)
    if done and saved.get("metrics") is not None:
        log.info("%s already finished (%s at epoch %d); nothing to resume", out_path, saved["stopped"],
                 len(saved["history"]))
        return load_checkpoint(out_path)
    if done:  # the last epoch was saved, then the run was stopped before its scores were written
        log.info("%s finished training (%s at epoch %d) but has no scores yet; scoring it", out_path,
                 saved["stopped"], len(saved["history"]))
    elif saved is not None and len(saved["history"]) >= config.max_epochs:
        raise GruowError(f"--resume: {out_path} already holds {len(saved['history'])} epochs; --epochs "
                         f"{config.max_epochs} must be larger to continue it")

    with torch_threads(config.threads) as threads, _deterministic(device), _memory_errors(config, device):
        log.info("training on %s (%d CPU threads): %d train / %d val windows", device, threads,
                 len(ends["train"]), len(ends["val"]))
        base = torch.from_numpy(candle_arrays(candles)).to(device)
        train_ends = torch.from_numpy(ends["train"]).to(device)
        val_ends = torch.from_numpy(ends["val"]).to(device)
        scaler = Scaler.fit(base, train_ends, L, H)
        x_train, y_train = scaler.inputs(base, train_ends, L), scaler.targets(base, train_ends, H)
        x_val, y_val = scaler.inputs(base, val_ends, L), scaler.targets(base, val_ends, H)
        # persistence predicts log ratio 0 for every output; its scaled value is -mean/std
        persistence = (-scaler.y_mean / scaler.y_std).float().to(device)
        val_persistence = float(((y_val - persistence) ** 2).mean())

        # ---- model and optimiser
        torch.manual_seed(config.seed)
        model = GRUForecaster(hidden=config.hidden, layers=config.layers, dropout=config.dropout,
                              horizon=H).to(device)
        opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=config.lr_factor,
                                                           patience=config.lr_patience)
        shuffle = torch.Generator().manual_seed(config.seed)
        history: list[dict] = []
        best_val, best_epoch, bad_epochs = math.inf, 0, 0
        best_state = _cpu_state(model)
        if saved is not None:  # resume: restore everything the next epoch depends on
            r = saved["resume"]
            model.load_state_dict(r["model_state"])
            opt.load_state_dict(r["optimizer"])
            sched.load_state_dict(r["scheduler"])
            torch.set_rng_state(r["rng_torch"])
            shuffle.set_state(r["rng_shuffle"])
            history, best_state = list(saved["history"]), saved["model_state"]
            best_val, best_epoch, bad_epochs = r["best_val"], saved["best_epoch"], r["bad_epochs"]
            log.info("resuming %s after epoch %d (best %.5f at epoch %d)", out_path, len(history), best_val,
                     best_epoch)

        n_train = len(train_ends)
        per_epoch = min(n_train, config.samples_per_epoch or n_train)
        stopped, state = (saved["stopped"], saved) if done else (None, None)
        with progress_bar(progress and not done) as bar:
            epochs = bar.add_task("epochs", total=config.max_epochs, completed=len(history), info="")
            batches = bar.add_task("batches", total=-(-per_epoch // config.batch_size), info="")
            last = len(history) if done else config.max_epochs
            for epoch in range(len(history) + 1, last + 1):
                t0 = time.perf_counter()
                bar.reset(batches)
                model.train()
                order = torch.randperm(n_train, generator=shuffle)[:per_epoch].to(device)
                total = 0.0
                for idx in order.split(config.batch_size):
                    loss = nn.functional.mse_loss(model(x_train[idx]), y_train[idx])
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
                    opt.step()
                    total += loss.item() * len(idx)
                    bar.advance(batches)
                train_loss = total / per_epoch
                train_seconds = time.perf_counter() - t0
                val_loss = _mse(model, x_val, y_val, default_batch_size(device))
                sched.step(val_loss)

                if val_loss < best_val:
                    best_val, best_epoch, bad_epochs, best_state = val_loss, epoch, 0, _cpu_state(model)
                else:
                    bad_epochs += 1
                history.append({"epoch": epoch, "train_loss": train_loss, "val_loss": val_loss,
                                "val_persistence_loss": val_persistence, "lr": opt.param_groups[0]["lr"],
                                "samples": per_epoch, "train_seconds": train_seconds,
                                "seconds": time.perf_counter() - t0})
                if bad_epochs >= config.patience:
                    stopped = "early_stop"
                elif epoch == config.max_epochs:
                    stopped = "max_epochs"
                resume_state = {"model_state": _cpu_state(model), "optimizer": opt.state_dict(),
                                "scheduler": sched.state_dict(), "rng_torch": torch.get_rng_state(),
                                "rng_shuffle": shuffle.get_state(), "best_val": best_val,
                                "bad_epochs": bad_epochs}
                state = _state(model, best_state, config, scaler, identity, history, best_epoch, stopped,
                               resume_state, metrics=None)
                save_state(out_path, state)
                log.info("epoch %d/%d  train %.5f  val %.5f  (persistence %.5f)  lr %.1e  %.1fs%s", epoch,
                         config.max_epochs, train_loss, val_loss, val_persistence, opt.param_groups[0]["lr"],
                         history[-1]["seconds"], "  *" if best_epoch == epoch else "")
                bar.update(epochs, advance=1, info=f"train {train_loss:.4f} val {val_loss:.4f} "
                           f"best {best_val:.4f}@{best_epoch}")
                if stopped:
                    break

        # score the best weights on the held-out parts, beside the baselines
        model.load_state_dict(best_state)
        metrics = {name: _scores(model, scaler, base, candles, ends[name], L, H) for name in needed[1:]}
        metrics["val"]["loss"] = best_val
        metrics["val"]["persistence_loss"] = val_persistence
        state["metrics"] = metrics
        save_state(out_path, state)
        s = metrics["val"]["summary"]
        log.info("stopped (%s); best epoch %d: val loss %.5f vs persistence %.5f; close MAE %.4f vs "
                 "persistence %.4f", stopped, best_epoch, best_val, val_persistence,
                 s["close_mae"]["model"], s["close_mae"]["persistence"])
    # the model in memory, not a re-read: tests compare it with load_checkpoint(out_path)
    meta = {k: v for k, v in state.items() if k not in ("model_state", "resume")}
    return Checkpoint(model=model.cpu().eval(), config=config, meta=meta, hash=file_sha256(out_path), path=out_path)


@contextlib.contextmanager
def _memory_errors(config: TrainConfig, device: torch.device) -> Iterator[None]:
    """Turn torch's allocation failures into a :class:`GruowError` naming the options that size the model."""
    try:
        yield
    except RuntimeError as exc:  # torch.OutOfMemoryError (GPU) is one; the CPU allocator raises a plain one
        text = str(exc)
        if not (isinstance(exc, torch.OutOfMemoryError) or "can't allocate memory" in text
                or "out of memory" in text.lower()):
            raise
        raise GruowError(f"out of memory on {device} training a GRU of --hidden {config.hidden}, --layers "
                         f"{config.layers} in batches of {config.batch_size}; choose a smaller --hidden or "
                         "--layers") from None


def _mse(model: nn.Module, x: torch.Tensor, y: torch.Tensor, chunk: int) -> float:
    """Mean squared error over all windows, evaluated in chunks, in eval mode."""
    model.eval()
    with torch.inference_mode():
        total = sum(float(((model(xb) - yb) ** 2).sum()) for xb, yb in zip(x.split(chunk), y.split(chunk)))
    return total / y.numel()


def _scores(model, scaler: Scaler, base, candles, ends: np.ndarray, L: int, H: int) -> dict:
    """Price-space scores of ``model`` on the windows ending at ``ends`` (see ``_evaluate``)."""
    model.eval()
    close = torch.from_numpy(candles["close"].to_numpy(np.float64, copy=True)).to(base.device)
    chunk = default_batch_size(base.device)
    with torch.inference_mode():
        pred = torch.cat([scaler.to_prices(model(scaler.inputs(base, e, L)), close[e])
                          for e in torch.from_numpy(ends).to(base.device).split(chunk)]).cpu().numpy()
    actual, ref, drift, trailing = baselines(candles, ends, L, H)
    horizons = score_windows(pred, actual, ref, drift, trailing)
    return {"windows": int(len(ends)), "summary": summarize(horizons), "horizons": horizons}


def _cpu_state(model: nn.Module) -> dict:
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


def _state(model, best_state, config, scaler, identity, history, best_epoch, stopped, resume_state, metrics):
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "model_config": model.config(),
        "model_state": best_state,
        "train_config": config.to_dict(),
        "lookback": config.lookback,
        "horizon": config.horizon,
        "features": FEATURE_DEFINITION,
        "scaler": scaler.to_dict(),
        "data": identity,
        "history": history,
        "best_epoch": best_epoch,
        "stopped": stopped,
        "metrics": metrics,
        "versions": _versions(),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "resume": resume_state,
    }


def _data_identity(candles: pd.DataFrame, meta: dict, parts: dict, ends: dict) -> dict:
    idx, step = candles.index, timeframe_to_timedelta(meta["timeframe"])
    splits = {
        name: {"start": idx[a].isoformat(), "end": (idx[b - 1] + step).isoformat(), "rows": b - a,
               "windows": int(len(ends[name]))}
        for name, (a, b) in parts.items() if b > a
    }
    return {
        "symbol": meta["symbol"], "exchange": meta["exchange"], "timeframe": meta["timeframe"],
        "start": idx[0].isoformat(), "end": (idx[-1] + step).isoformat(), "rows": len(candles),
        "gaps": len(segments(candles, meta["timeframe"])) - 1, "sha256": candles_hash(candles), "splits": splits,
    }


def _previous_run(path: Path, config: TrainConfig, identity: dict, resume: bool) -> dict | None:
    """The saved state to resume from, after checking it matches; None for a fresh run."""
    if not resume:
        if path.exists():
            raise GruowError(f"{path} already exists; pass --resume to continue that run or choose another --out")
        return None
    if not path.exists():
        raise GruowError(f"--resume: {path} does not exist; start a run without --resume")
    saved = read_state(path)
    if saved.get("resume") is None:
        raise GruowError(f"--resume: {path} holds no resume state")
    if saved["data"]["sha256"] != identity["sha256"]:
        raise GruowError(f"--resume: the candles differ from those {path.name} was trained on "
                         f"({saved['data']['symbol']} {saved['data']['start']} … {saved['data']['end']}); "
                         "pass the same data and range")
    old = TrainConfig.from_dict(saved["train_config"]).to_dict()
    new = config.to_dict()
    changed = [k for k in new if k not in RESUMABLE_CHANGES and old.get(k) != new[k]]
    if changed:
        raise GruowError(f"--resume: {', '.join(changed)} differ from the saved run; only "
                         f"{', '.join(RESUMABLE_CHANGES)} may change")
    return saved


@contextlib.contextmanager
def _deterministic(device: torch.device) -> Iterator[None]:
    """Deterministic kernels for the block (warn-only on CUDA, where some have none), then restore."""
    before = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled())
    cudnn = (torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic)
    torch.use_deterministic_algorithms(True, warn_only=device.type != "cpu")
    torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = False, True
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before[0], warn_only=before[1])
        torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = cudnn


def _versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    try:
        gruow = version("gruow")
    except PackageNotFoundError:
        gruow = "unknown"
    return {"gruow": gruow, "torch": str(torch.__version__), "numpy": str(np.__version__), "pandas": str(pd.__version__),
            "python": platform.python_version()}

