"""Training, checkpoints, batch inference, evaluation and the CLI of the forecaster.

Models here are tiny (hidden 8–16, a few epochs) so the whole module runs in well under a minute
on 2 cores; what is asserted does not depend on the model being good, except for the noisy sine,
which a working loop must learn.
"""
from __future__ import annotations

import importlib
import json
import logging
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from conftest import shared_file
from data import GruowError, make_candles, read_candles
from forecaster import (
    FORECAST_COLUMNS,
    Checkpoint,
    GRUForecaster,
    TrainConfig,
    evaluate,
    forecast,
    load_checkpoint,
    train,
    wilson_interval,
)

TINY = dict(hidden=8, max_epochs=2, samples_per_epoch=512, batch_size=128, seed=0)


def candles_from_close(close, volume=None, start="2024-01-01", seed=0) -> pd.DataFrame:
    """1-minute candles: open = previous close, random small wicks, volume 1 unless given."""
    close = np.asarray(close, dtype=float)
    rng = np.random.default_rng(seed)
    open_ = np.concatenate([[close[0]], close[:-1]])
    wick = np.abs(rng.normal(0, 2e-4, len(close)))
    high, low = np.maximum(open_, close) * (1 + wick), np.minimum(open_, close) * (1 - wick)
    vol = np.ones(len(close)) if volume is None else np.asarray(volume, dtype=float)
    idx = pd.date_range(start, periods=len(close), freq="1min", tz="UTC")
    df = pd.DataFrame({"open": open_, "high": high, "low": low, "close": close, "volume": vol}, index=idx)
    return make_candles(df, exchange="test", symbol="ETH/USDC", timeframe="1m")


def random_walk(n: int, seed: int, start="2024-01-01") -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return candles_from_close(2000 * np.exp(np.cumsum(rng.normal(0, 1e-3, n))), rng.lognormal(3, 1, n),
                              start=start, seed=seed)


@pytest.fixture(scope="module")
def real() -> pd.DataFrame:
    return read_candles(shared_file("eth_usdc_1m_hyperliquid_2025-07-21.csv"), symbol="ETH/USDC",
                        exchange="hyperliquid")


@pytest.fixture(scope="module")
def tiny(real, tmp_path_factory) -> Checkpoint:
    """A tiny model trained on the first 2,000 real ETH/USDC candles."""
    path = tmp_path_factory.mktemp("models") / "tiny.pt"
    return train(real.iloc[:2000], TrainConfig(**TINY), path, progress=False)


# ---------------------------------------------------------------- no lookahead in inference
@pytest.mark.parametrize("batch_size", [None, 4096, 97])
def test_changing_candles_after_t_leaves_forecasts_up_to_t_unchanged(tiny, real, batch_size):
    df = real.iloc[2000:3000]
    t = df.index[600]
    before = forecast(tiny, df, batch_size=batch_size, progress=False)
    changed = df.copy()
    rng = np.random.default_rng(1)
    changed.loc[changed.index > t] *= rng.uniform(0.9, 1.1, size=(int((df.index > t).sum()), 5))
    after = forecast(tiny, changed, batch_size=batch_size, progress=False)
    early = before.index <= t
    assert np.array_equal(before[early].to_numpy(), after[early].to_numpy())  # bit for bit
    assert not np.allclose(before[~early].to_numpy(), after[~early].to_numpy())  # later rows did move
    # and candles after t are not even needed: forecasting the prefix gives the same rows
    prefix = forecast(tiny, df.loc[:t], batch_size=batch_size, progress=False)
    np.testing.assert_allclose(prefix.to_numpy(), before[early].to_numpy(), rtol=1e-12)


def test_forecast_rows_columns_and_gaps(tiny, real):
    df = real.iloc[2000:2600].drop(real.index[2300])  # a gap: runs of 300 and 299 candles
    fc = forecast(tiny, df, progress=False)
    assert list(fc.columns) == FORECAST_COLUMNS and len(FORECAST_COLUMNS) == 33
    assert fc.index.name == "timestamp" and str(fc.index.tz) == "UTC"
    assert len(fc) == (300 - 127) + (299 - 127)
    # first row of each segment is its 128th candle; ref_close is the close of candle t
    assert fc.index[0] == df.index[127] and fc.index[300 - 127] == df.index[300 + 127]
    np.testing.assert_array_equal(fc["ref_close"].to_numpy(), df.loc[fc.index, "close"].to_numpy())
    assert fc.attrs["checkpoint"] == tiny.hash and fc.attrs["symbol"] == "ETH/USDC"
    prices = fc.drop(columns="ref_close").to_numpy()
    assert np.isfinite(prices).all() and (np.abs(prices / fc[["ref_close"]].to_numpy() - 1) < 0.05).all()


def test_forecast_refuses_too_short_or_wrong_timeframe(tiny, real):
    with pytest.raises(GruowError, match="128 consecutive candles"):
        forecast(tiny, real.iloc[:127], progress=False)
    five = real.iloc[:400:5].copy()
    five.attrs = {**real.attrs, "timeframe": "5m"}
    with pytest.raises(GruowError, match="trained on 1m"):
        forecast(tiny, five, progress=False)


def test_forecast_cache_second_call_does_not_run_the_model(tiny, real, tmp_path, monkeypatch):
    df = real.iloc[2000:2500]
    first = forecast(tiny, df, cache_dir=tmp_path, progress=False)
    files = list(tmp_path.glob("forecast-*.parquet"))
    assert len(files) == 1 and tiny.hash[:16] in files[0].name

    def boom(*args, **kwargs):
        raise AssertionError("the model ran although the forecast was cached")

    monkeypatch.setattr(tiny.model, "forward", boom)
    second = forecast(tiny, df, cache_dir=tmp_path, progress=False)
    pd.testing.assert_frame_equal(first, second)
    assert second.attrs["checkpoint"] == tiny.hash
    with pytest.raises(AssertionError, match="cached"):  # other candles: other key, recomputed
        forecast(tiny, real.iloc[2000:2400], cache_dir=tmp_path, progress=False)


# ---------------------------------------------------------------- checkpoints
def test_checkpoint_round_trip_is_bit_identical(tiny, real):
    loaded = load_checkpoint(tiny.path)
    assert loaded.hash == tiny.hash and len(tiny.hash) == 64
    for k, v in tiny.model.state_dict().items():
        assert torch.equal(v, loaded.model.state_dict()[k])
    df = real.iloc[3000:4000]
    assert np.array_equal(forecast(tiny, df, progress=False).to_numpy(), forecast(loaded, df, progress=False).to_numpy())
    # the file is self-describing and loads without unpickling code
    raw = torch.load(tiny.path, weights_only=True)
    d = raw["data"]
    assert (d["symbol"], d["exchange"], d["timeframe"], d["rows"]) == ("ETH/USDC", "hyperliquid", "1m", 2000)
    assert d["start"] == real.index[0].isoformat() and len(d["sha256"]) == 64
    assert raw["lookback"] == 128 and raw["horizon"] == 8 and raw["features"]["inputs"][3] == "log(close_j/close_e)"
    assert raw["train_config"]["hidden"] == 8 and raw["model_config"]["hidden"] == 8
    assert set(raw["versions"]) >= {"torch", "numpy", "pandas", "python"}
    assert len(raw["history"]) == 2 and raw["metrics"]["val"]["windows"] == d["splits"]["val"]["windows"]
    assert raw["resume"]["optimizer"]["state"]  # resumable
    assert not loaded.model.training


def test_scaler_in_checkpoint_is_fitted_on_training_part_only(real, tmp_path):
    df = real.iloc[:2000]
    a = train(df, TrainConfig(**{**TINY, "max_epochs": 1}), tmp_path / "a.pt", progress=False)
    later = df.copy()
    later.iloc[1700:] *= 1.5  # only validation candles change (val_fraction 0.2 → rows 1600+)
    b = train(later, TrainConfig(**{**TINY, "max_epochs": 1}), tmp_path / "b.pt", progress=False)
    assert a.meta["scaler"] == b.meta["scaler"]
    for k, v in a.model.state_dict().items():  # training never saw the validation candles
        assert torch.equal(v, b.model.state_dict()[k])
    assert a.meta["history"][0]["val_loss"] != b.meta["history"][0]["val_loss"]


def test_load_checkpoint_rejects_other_files(tmp_path):
    bad = tmp_path / "x.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(GruowError, match="not a readable GRU-ow checkpoint"):
        load_checkpoint(bad)
    torch.save({"weights": torch.zeros(2)}, tmp_path / "y.pt")
    with pytest.raises(GruowError, match="not a GRU-ow forecaster checkpoint"):
        load_checkpoint(tmp_path / "y.pt")


# ---------------------------------------------------------------- the training loop
def test_same_seed_same_weights_and_val_loss(tmp_path):
    df = random_walk(1200, seed=5)
    runs = [train(df, TrainConfig(**TINY), tmp_path / f"{i}.pt", progress=False) for i in range(2)]
    other = train(df, TrainConfig(**{**TINY, "seed": 1}), tmp_path / "other.pt", progress=False)
    val = [[h["val_loss"] for h in r.meta["history"]] for r in (*runs, other)]
    assert val[0] == val[1]
    assert val[0] != val[2]
    for k, v in runs[0].model.state_dict().items():
        assert torch.equal(v, runs[1].model.state_dict()[k])


def test_resume_continues_exactly_where_it_stopped(tmp_path):
    df = random_walk(1200, seed=6)
    cfg = {**TINY, "max_epochs": 4, "patience": 10}
    straight = train(df, TrainConfig(**cfg), tmp_path / "straight.pt", progress=False)
    train(df, TrainConfig(**{**cfg, "max_epochs": 2}), tmp_path / "split.pt", progress=False)
    with pytest.raises(GruowError, match="already exists.*--resume"):
        train(df, TrainConfig(**cfg), tmp_path / "split.pt", progress=False)
    with pytest.raises(GruowError, match="seed differ"):
        train(df, TrainConfig(**{**cfg, "seed": 3}), tmp_path / "split.pt", resume=True, progress=False)
    with pytest.raises(GruowError, match="candles differ"):
        train(random_walk(1200, seed=7), TrainConfig(**cfg), tmp_path / "split.pt", resume=True, progress=False)
    resumed = train(df, TrainConfig(**cfg), tmp_path / "split.pt", resume=True, progress=False)
    assert [h["val_loss"] for h in resumed.meta["history"]] == [h["val_loss"] for h in straight.meta["history"]]
    for k, v in straight.model.state_dict().items():
        assert torch.equal(v, resumed.model.state_dict()[k])


def test_too_short_ranges_fail_clearly(tmp_path):
    with pytest.raises(GruowError, match=r"val part \(60 candles\) holds no window of 136"):
        train(random_walk(300, seed=1), TrainConfig(**TINY), tmp_path / "m.pt", progress=False)
    assert not (tmp_path / "m.pt").exists()


def noisy_sine(n: int, seed: int, start: str) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    j = np.arange(n) + 1000 * seed
    return candles_from_close(100 * np.exp(0.01 * np.sin(2 * np.pi * j / 40) + rng.normal(0, 5e-4, n)),
                              start=start, seed=seed)


def test_training_learns_a_noisy_sine_and_beats_persistence(tmp_path):
    cfg = TrainConfig(lookback=32, hidden=16, max_epochs=6, samples_per_epoch=None, batch_size=64, lr=1e-2,
                      patience=10)
    ckpt = train(noisy_sine(1500, 1, "2024-01-01"), cfg, tmp_path / "sine.pt", progress=False)
    history = ckpt.meta["history"]
    assert history[-1]["val_loss"] < 0.5 * history[0]["val_persistence_loss"]
    result = evaluate(ckpt, noisy_sine(600, 2, "2024-03-01"), progress=False)  # unseen
    for row in result["horizons"]:
        model, persistence = row["close"]["model"]["mae"], row["close"]["persistence"]["mae"]
        assert model < (0.8 if row["h"] == 1 else 0.5) * persistence, row
    assert result["summary"]["direction_accuracy"] > 0.8


# ---------------------------------------------------------------- evaluation
def test_wilson_interval_known_values():
    lo, hi = wilson_interval(50, 100)
    assert lo == pytest.approx(0.40383, abs=1e-5) and hi == pytest.approx(0.59617, abs=1e-5)
    lo, hi = wilson_interval(0, 10)
    assert lo == pytest.approx(0.0, abs=1e-12) and hi == pytest.approx(0.27753, abs=1e-5)


def test_evaluate_baselines_known_answers(tiny):
    # a steady ramp: drift extrapolates it exactly, persistence misses by c_t·(e^{0.001h} − 1)
    n = 400
    close = 2000 * np.exp(0.001 * np.arange(n))
    df = candles_from_close(close, start="2030-01-01")
    result = evaluate(tiny, df, progress=False)
    assert result["windows"] == n - 135 and not result["overlaps_training"]
    ends = np.arange(127, n - 8)
    for row in result["horizons"]:
        h = row["h"]
        assert row["close"]["drift"]["mae"] == pytest.approx(0.0, abs=1e-7)
        assert row["close"]["persistence"]["mae"] == pytest.approx(np.mean(close[ends] * (np.exp(0.001 * h) - 1)), rel=1e-9)
        assert row["direction"]["drift"]["accuracy"] == 1.0 and row["direction"]["drift"]["n"] == n - 135
        rng = df["high"].to_numpy() - df["low"].to_numpy()
        trailing = np.array([rng[e - 127:e + 1].mean() for e in ends])
        assert row["range"]["trailing"]["mae"] == pytest.approx(np.mean(np.abs(trailing - rng[ends + h])), rel=1e-9)
        assert row["range"]["mean_actual"] == pytest.approx(rng[ends + h].mean(), rel=1e-12)


def test_evaluate_writes_report_and_warns_on_training_overlap(tiny, real, tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="forecaster"):
        result = evaluate(tiny, real.iloc[1500:2500], out_dir=tmp_path / "eval", progress=False)
    assert result["overlaps_training"] and "overlaps" in caplog.text
    saved = json.loads((tmp_path / "eval" / "evaluation.json").read_text())
    assert saved["windows"] == 1000 - 135 and len(saved["horizons"]) == 8
    assert saved["horizons"][0]["close"]["persistence"]["mae"] == pytest.approx(
        result["horizons"][0]["close"]["persistence"]["mae"])
    for name in ("loss_curves.png", "forecast.png"):
        assert (tmp_path / "eval" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="forecaster"):
        assert not evaluate(tiny, real.iloc[4000:5000], progress=False)["overlaps_training"]
    assert "overlaps" not in caplog.text


# ---------------------------------------------------------------- CLI
def test_cli_train_then_evaluate(tmp_path, home):
    from gruow.cli import app

    csv = tmp_path / "walk.csv"
    df = random_walk(900, seed=2)
    df.reset_index().assign(timestamp=lambda d: d["timestamp"].dt.strftime("%Y-%m-%dT%H:%M:%SZ")).to_csv(csv, index=False)
    runner = CliRunner()
    args = ["train", "--data", str(csv), "--symbol", "ETH/USDC", "--start", "2024-01-01", "--end", "2024-01-01T12:00",
            "--out", "walk", "--epochs", "1", "--hidden", "8"]
    r = runner.invoke(app, args)
    assert r.exit_code == 0, r.output
    # one unwrapped line however long the path (stdout is not a terminal here: rich would wrap at 80)
    assert len(str(home)) > 60 and f"checkpoint written to {home / 'models' / 'walk.pt'}\n" in r.output
    ckpt = load_checkpoint(home / "models" / "walk.pt")
    assert ckpt.meta["data"]["rows"] == 720 and ckpt.meta["data"]["end"] == "2024-01-01T12:00:00+00:00"

    r = runner.invoke(app, args)  # same --out again without --resume
    assert isinstance(r.exception, GruowError) and "--resume" in str(r.exception)

    r = runner.invoke(app, ["evaluate", "walk", "--data", str(csv), "--start", "2024-01-01T12:00", "--json"])
    assert r.exit_code == 0, r.output
    result = json.loads(r.stdout)
    assert result["windows"] == 180 - 135 and result["model"]["name"] == "walk"
    assert (home / "models" / "walk-eval" / "evaluation.json").is_file()
    r = runner.invoke(app, ["evaluate", "walk", "--data", str(csv), "--start", "2024-01-01T12:00"])
    assert r.exit_code == 0 and re.search(r"close: MAE and RMSE", r.output)
    assert f"wrote {home / 'models' / 'walk-eval' / 'evaluation.json'}\n" in r.output
    assert "unfinished" not in r.output  # a finished run: no warning

    r = runner.invoke(app, ["evaluate", "nope"])
    assert isinstance(r.exception, GruowError) and "walk" in str(r.exception)


def test_cli_reads_the_store_without_data(real, home):
    from data import CandleStore
    from gruow.cli import app

    CandleStore(home / "data").write(real.iloc[:1500])
    runner = CliRunner()
    r = runner.invoke(app, ["train", "--symbol", "ETH/USDC", "--start", real.index[0].isoformat(), "--end",
                            real.index[1200].isoformat(), "--out", "stored", "--epochs", "1", "--hidden", "8", "--json"])
    assert r.exit_code == 0, r.output
    report = json.loads(r.stdout)
    # snake_case keys and a structured identity of the candles, as `gruow evaluate` reports them
    assert all(re.fullmatch(r"[a-z0-9_]+", k) for k in report), list(report)
    d = report["data"]
    assert (d["symbol"], d["exchange"], d["timeframe"], d["rows"]) == ("ETH/USDC", "hyperliquid", "1m", 1200)
    assert (d["start"], d["end"]) == (real.index[0].isoformat(), real.index[1200].isoformat())
    assert d["sha256"] == load_checkpoint(home / "models" / "stored.pt").meta["data"]["sha256"]
    assert report["train_windows"] > 0 and report["epochs"] == 1 and report["finished"] is True
    assert report["name"] == "stored" and report["checkpoint"] == str(home / "models" / "stored.pt")
    r = runner.invoke(app, ["evaluate", "stored", "--start", real.index[1200].isoformat(), "--json"])
    assert r.exit_code == 0, r.output
    result = json.loads(r.stdout)
    assert result["windows"] == 300 - 135 and not result["overlaps_training"]
    assert result["data"]["exchange"] == "hyperliquid"
    assert set(d) == set(result["data"])  # train and evaluate describe data with the same keys


def test_model_module_shapes():
    m = GRUForecaster(hidden=4, layers=2, dropout=0.1)
    assert m(torch.zeros(3, 128, 5)).shape == (3, 8, 4)
    assert GRUForecaster(**m.config()).config() == m.config()


# ---------------------------------------------------------------- unfinished runs, interrupts, bounds
def _interrupt_on_save(mp: pytest.MonkeyPatch, n: int) -> None:
    """Make the ``n``-th checkpoint write of ``train`` raise KeyboardInterrupt (Ctrl-C mid-save)."""
    train_module = importlib.import_module("forecaster.train")  # `forecaster.train` is also the function

    calls = {"n": 0}
    real_save = train_module.save_state

    def save(path, state):
        calls["n"] += 1
        if calls["n"] == n:
            raise KeyboardInterrupt
        return real_save(path, state)

    mp.setattr(train_module, "save_state", save)


def test_an_interrupted_run_is_unfinished_warns_in_evaluate_and_resumes_to_finished(tmp_path, caplog):
    df = random_walk(1200, seed=6)
    cfg = TrainConfig(**{**TINY, "max_epochs": 4, "patience": 10})
    path = tmp_path / "m.pt"
    with pytest.MonkeyPatch.context() as mp, pytest.raises(KeyboardInterrupt):
        _interrupt_on_save(mp, 3)  # epochs 1 and 2 saved; Ctrl-C while saving epoch 3
        train(df, cfg, path, progress=False)
    part = load_checkpoint(path)
    assert part.meta["stopped"] is None and part.epochs == 2
    assert part.finished is False and part.describe() == "unfinished run (epoch 2 of 4)"
    with caplog.at_level(logging.WARNING, logger="forecaster"):
        result = evaluate(part, random_walk(400, seed=8, start="2024-02-01"), progress=False)
    assert "model m is an unfinished run (epoch 2 of 4)" in caplog.text and "--resume" in caplog.text
    assert result["model"]["finished"] is False and result["model"]["status"] == "unfinished run (epoch 2 of 4)"

    done = train(df, cfg, path, resume=True, progress=False)
    assert done.finished and done.epochs == 4 and load_checkpoint(path).finished
    assert done.describe() == f"finished run (epoch 4 of 4, best epoch {done.meta['best_epoch']})"
    assert done.unfinished_warning() is None


def test_a_run_stopped_after_its_last_epoch_is_only_scored_on_resume(tmp_path):
    df = random_walk(1200, seed=6)
    cfg = TrainConfig(**{**TINY, "max_epochs": 1})
    path = tmp_path / "m.pt"

    def stop(*args, **kwargs):
        raise KeyboardInterrupt

    with pytest.MonkeyPatch.context() as mp, pytest.raises(KeyboardInterrupt):
        mp.setattr(importlib.import_module("forecaster.train"), "_scores", stop)
        train(df, cfg, path, progress=False)
    raw = torch.load(path, weights_only=True)
    assert raw["stopped"] == "max_epochs" and raw["metrics"] is None
    scored = train(df, cfg, path, resume=True, progress=False)
    assert scored.meta["metrics"]["val"]["windows"] > 0 and scored.meta["history"] == raw["history"]  # no new epoch

    # an unfinished run resumed with fewer epochs than it already holds: a clear error
    with pytest.MonkeyPatch.context() as mp, pytest.raises(KeyboardInterrupt):
        _interrupt_on_save(mp, 3)
        train(df, TrainConfig(**{**TINY, "max_epochs": 3, "patience": 10}), tmp_path / "u.pt", progress=False)
    with pytest.raises(GruowError, match="already holds 2 epochs; --epochs 1 must be larger"):
        train(df, TrainConfig(**{**TINY, "max_epochs": 1, "patience": 10}), tmp_path / "u.pt", resume=True,
              progress=False)


@pytest.mark.parametrize("option, value, message", [
    ("hidden", 100_000, "--hidden 100000 must be a whole number from 1 to 4,096"),
    ("hidden", 0, "--hidden 0 must be a whole number from 1 to 4,096"),
    ("layers", 9, "--layers 9 must be a whole number from 1 to 8"),
    ("dropout", 1.0, r"dropout 1.0 must be a number in \[0, 1\)"),
    ("dropout", -0.1, r"dropout -0.1 must be a number in \[0, 1\)"),
    ("max_epochs", 0, "--epochs 0 must be a whole number from 1"),
    ("batch_size", 0, "batch_size 0 must be a whole number from 1"),
    ("seed", -1, "--seed -1 must be a whole number from 0"),
    ("lr", float("nan"), r"lr nan must be a number in \(0, 10\]"),
    ("val_fraction", 0.0, r"--val-fraction 0.0 must be a number in \(0, 1\)"),
    ("test_fraction", 0.9, "--val-fraction 0.2 \\+ --test-fraction 0.9 must be below 1"),
])
def test_train_config_bounds_name_the_option(option, value, message):
    with pytest.raises(GruowError, match=message):
        TrainConfig(**{option: value})


def test_train_refuses_huge_models_with_a_one_line_error(tmp_path, home):
    from forecaster.train import _memory_errors
    from gruow.cli import app

    csv = tmp_path / "walk.csv"
    random_walk(400, seed=2).reset_index().to_csv(csv, index=False)
    r = CliRunner().invoke(app, ["train", "--data", str(csv), "--symbol", "ETH/USDC", "--out", "big", "--hidden",
                                 "100000"])
    assert isinstance(r.exception, GruowError) and "--hidden 100000 must be" in str(r.exception)
    assert not (home / "models" / "big.pt").exists()
    # within the bounds, an allocation failure still becomes a GruowError naming the options
    cfg = TrainConfig(hidden=4096, layers=8)
    with pytest.raises(GruowError, match="out of memory on cpu .* --hidden 4096, --layers 8"):
        with _memory_errors(cfg, torch.device("cpu")):
            raise RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory: "
                               "you tried to allocate 120000000000 bytes.")
    with pytest.raises(RuntimeError, match="shape mismatch"):  # other errors are not disguised
        with _memory_errors(cfg, torch.device("cpu")):
            raise RuntimeError("shape mismatch")


def test_model_names_never_reach_outside_home(tmp_path, home):
    from gruow._cli_forecast import out_model_path, resolve_model
    from gruow._common import Home

    h = Home(home)
    assert out_model_path(h, "eth-june_2.v1") == home / "models" / "eth-june_2.v1.pt"
    assert out_model_path(h, "runs/eth.pt") == Path("runs/eth.pt")  # an explicit .pt path is the user's call
    for bad in ("../../evil", "a/b", ".hidden", "..", "", "x y", "a\\b", ".pt"):
        with pytest.raises(GruowError, match="--out .* must be a model name"):
            out_model_path(h, bad)
    (tmp_path / "evil.pt").write_bytes(b"x")  # home/models/../../evil.pt exists
    for bad in ("../../evil", "models/../../evil", "/etc/passwd"):
        with pytest.raises(GruowError, match="must be a model name"):
            resolve_model(h, bad)
    (home / "models" / "ok.pt").write_bytes(b"x")
    assert resolve_model(h, "ok") == resolve_model(h, "ok.pt") == home / "models" / "ok.pt"
    assert resolve_model(h, str(tmp_path / "evil.pt")) == tmp_path / "evil.pt"


def test_cli_train_rejects_an_out_outside_home_and_reports_an_interrupt(tmp_path, home):
    from gruow.cli import app

    csv = tmp_path / "walk.csv"
    random_walk(900, seed=2).reset_index().to_csv(csv, index=False)
    runner = CliRunner()
    base = ["train", "--data", str(csv), "--symbol", "ETH/USDC", "--epochs", "3", "--hidden", "8"]
    r = runner.invoke(app, [*base, "--out", "../../evil"])
    assert isinstance(r.exception, GruowError) and "--out '../../evil' must be a model name" in str(r.exception)
    assert not list(tmp_path.rglob("evil*"))

    with pytest.MonkeyPatch.context() as mp:
        _interrupt_on_save(mp, 2)
        r = runner.invoke(app, [*base, "--out", "walk"])
    assert r.exit_code != 0
    said = " ".join(r.stderr.split())
    assert "interrupted after epoch 1 of 3" in said and "holds epoch 1" in said, said
    assert "rerun the same command with --resume to continue" in said

    r = runner.invoke(app, ["evaluate", "walk", "--data", str(csv), "--start", "2024-01-01T12:00"])
    assert r.exit_code == 0, r.output
    assert "unfinished run (epoch 1 of 3)" in " ".join(r.output.split())
    r = runner.invoke(app, [*base, "--out", "walk", "--resume", "--json"])
    assert r.exit_code == 0, r.output
    report = json.loads(r.stdout)
    assert report["finished"] is True and report["epochs"] == 3
