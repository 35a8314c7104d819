"""``gruow demo`` end to end on a short configuration: files exist, everything says SYNTHETIC,
the model never saw the backtested candles, and a bad option leaves nothing behind."""
from __future__ import annotations

import json
import logging
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from data import GruowError
from forecaster import load_checkpoint
from gruow._cli_demo import run_demo
from gruow.cli import app

SHORT = {"minutes": 1500, "epochs": 1, "hidden": 8, "samples_per_epoch": 256, "progress": False}


def test_demo_writes_a_synthetic_tearsheet_and_never_trains_on_the_backtest(home, caplog):
    # a previous demo's model (here: junk) is replaced by the freshly trained one, and the log says so
    (home / "models").mkdir(parents=True)
    (home / "models" / "synthetic-demo-seed0.pt").write_bytes(b"previous")
    # fee 0 so that even this tiny model trades and the fills can be checked against the split
    with caplog.at_level(logging.INFO):
        r = run_demo(home, fee=0.0, **SHORT)
    s = r.summary
    # the log names final paths only, never the temporary folders the results are assembled in
    assert ".tmp" not in caplog.text, caplog.text
    assert f"backtest written to {r.gru_dir}" in caplog.text and f"demo written to {r.out_dir}" in caplog.text
    assert "replacing the previous demo model" in caplog.text
    assert not [p for p in (home / "models").iterdir() if p.name != "synthetic-demo-seed0.pt"]
    # one decision per backtested minute: closes from the one before the split to the second-to-last
    assert s["forecasts"]["decisions"] == s["backtest"]["minutes"] == 450
    assert s["model"]["rebuilt"].startswith("trained afresh by every demo run")
    assert r.out_dir.parent == home / "backtests" and r.out_dir.name.startswith("synthetic-demo-")
    assert r.tearsheet.is_file() and r.tearsheet.stat().st_size > 10_000
    assert "SYNTHETIC DATA" in r.tearsheet.read_text(encoding="utf-8")
    assert r.model_path == home / "models" / "synthetic-demo-seed0.pt"
    assert (r.out_dir / "summary.md").read_text(encoding="utf-8").startswith("# GRU-ow demo — SYNTHETIC DATA")
    on_disk = json.loads((r.out_dir / "summary.json").read_text(encoding="utf-8"))
    assert on_disk["synthetic"] is True and "SYNTHETIC" in on_disk["notice"]
    for run in (r.gru_dir, r.buyhold_dir):
        metrics = json.loads((run / "metrics.json").read_text(encoding="utf-8"))
        config = json.loads((run / "config.json").read_text(encoding="utf-8"))
        assert metrics["synthetic"] is True and config["synthetic"] is True
        assert config["data"]["synthetic"] is True and config["data"]["exchange"] == "synthetic"
        assert config["fee"] == 0.0
    # 1500 minutes: the first 1050 train (with their last 20 % as validation), the last 450 backtest
    split = pd.Timestamp("2024-01-01", tz="UTC") + pd.Timedelta(minutes=1050)
    assert pd.Timestamp(s["backtest"]["start"]) == split and s["backtest"]["minutes"] == 450
    ckpt = load_checkpoint(r.model_path)
    assert pd.Timestamp(ckpt.meta["data"]["end"]) == split  # the model's data stop where the backtest starts
    assert ckpt.meta["data"]["rows"] == 1050
    equity = pd.read_csv(r.gru_dir / "equity.csv", index_col="timestamp", parse_dates=True)
    assert equity.index[0] == split and len(equity) == 450
    trades = pd.read_csv(r.gru_dir / "trades.csv", parse_dates=["time"])
    assert s["gru"]["n_trades"] > 0 and (trades["time"] >= split).all()
    bh = json.loads((r.buyhold_dir / "metrics.json").read_text(encoding="utf-8"))
    assert s["buyhold"]["total_return"] == bh["total_return"] == pytest.approx(
        json.loads((r.gru_dir / "metrics.json").read_text(encoding="utf-8"))["benchmark_total_return"])
    assert not list((home / "backtests").glob(".*tmp"))  # no half-built folder left behind


def test_demo_command_prints_one_json_document(home):
    res = CliRunner().invoke(app, ["demo", "--home", str(home), "--minutes", "1500", "--epochs", "1", "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["synthetic"] is True and doc["candles"]["exchange"] == "synthetic"
    assert doc["backtest"]["fee"] == 0.001 and doc["model"]["epochs_run"] == 1
    assert Path(doc["gru"]["tearsheet"]).is_file() and Path(doc["model"]["path"]).name == "synthetic-demo-seed0.pt"
    assert "SYNTHETIC DATA" in res.stderr  # the banner, kept off stdout in --json mode


def test_demo_refuses_too_few_minutes_and_writes_nothing(home):
    with pytest.raises(GruowError, match="--minutes 500 must be a whole number >= 1000"):
        run_demo(home, minutes=500, progress=False)
    assert not (home / "backtests").exists() or not any((home / "backtests").iterdir())
    assert not (home / "models" / "synthetic-demo-seed0.pt").exists()


def test_demo_command_prints_paths_whole_and_says_the_model_is_rebuilt(home):
    res = CliRunner().invoke(app, ["demo", "--home", str(home), "--minutes", "1500", "--epochs", "1"])
    assert res.exit_code == 0, res.output
    lines = res.stdout.splitlines()
    tear = next(line for line in lines if line.startswith("tear sheet:"))
    assert Path(tear.split(":", 1)[1].strip()).is_file()  # the whole path on one line, however long
    model = next(line for line in lines if line.startswith("model:"))
    assert str(home / "models" / "synthetic-demo-seed0.pt") in model and "rebuilt on every demo run" in model


def test_demo_refuses_a_negative_seed_before_anything(home):
    res = CliRunner().invoke(app, ["demo", "--home", str(home), "--seed", "-1"])
    assert isinstance(res.exception, GruowError) and "--seed -1 must be a whole number from 0" in str(res.exception)
    assert "GRU-ow demo" not in res.output and not home.exists()  # no banner, nothing written
    with pytest.raises(GruowError, match="--seed -1"):
        run_demo(home, seed=-1, progress=False)
