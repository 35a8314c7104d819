"""`gruow backtest` and `gruow report`, end to end through the real CLI entry point."""
import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from gruow.cli import main

from conftest import shared_file

HYPERLIQUID = "eth_usdc_1m_hyperliquid_2025-07-21.csv"


def gruow(capsys, monkeypatch, *args) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "argv", ["gruow", *args])
    code = 0
    try:
        main()
    except SystemExit as exc:
        code = exc.code or 0
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    from data import read_candles
    from forecaster import TrainConfig, train

    c = read_candles(shared_file(HYPERLIQUID), symbol="ETH/USDC", exchange="hyperliquid").iloc[:1_500]
    path = tmp_path_factory.mktemp("models") / "tiny.pt"
    train(c, TrainConfig(hidden=8, max_epochs=1, samples_per_epoch=256, batch_size=128, seed=0, patience=1), path,
          progress=False)
    return path


def test_backtest_from_the_store_prints_strategy_vs_buy_and_hold(home, capsys, monkeypatch):
    code, _, err = gruow(capsys, monkeypatch, "data", "import", str(shared_file(HYPERLIQUID)), "--symbol", "ETH/USDC",
                         "--exchange", "hyperliquid", "--json")
    assert code == 0, err
    code, out, err = gruow(capsys, monkeypatch, "backtest", "--symbol", "ETH/USDC", "--strategy", "sma",
                           "--start", "2025-07-25T12:00", "--end", "2025-07-26T00:00", "--fee", "0.0005")
    assert code == 0, err
    for label in ("sma vs buy & hold", "total return", "Sharpe", "max drawdown", "trades", "fees paid",
                  "tear sheet:", "hyperliquid ETH/USDC 1m, 2025-07-25 12:00 → 2025-07-26 00:00 UTC, fee 0.05 %"):
        assert label in out
    run_dir = next((home / "backtests").iterdir())
    cfg = json.loads((run_dir / "config.json").read_text())
    assert (cfg["start"], cfg["end"]) == ("2025-07-25T12:00:00+00:00", "2025-07-26T00:00:00+00:00")
    assert cfg["warmup_candles"] == 128 and cfg["fee"] == 0.0005
    assert cfg["data"]["source"].startswith("store:")
    assert (run_dir / "tearsheet.html").is_file()
    # --no-tearsheet leaves it out; `gruow report` builds it later
    code, out, err = gruow(capsys, monkeypatch, "backtest", "--symbol", "ETH/USDC", "--strategy", "buyhold",
                           "--start", "2025-07-25T12:00", "--end", "2025-07-27", "--no-tearsheet")
    assert code == 0, err
    quick = next(p for p in (home / "backtests").iterdir() if "-buyhold-" in p.name)
    assert not (quick / "tearsheet.html").exists() and "gruow report" in out
    code, out, err = gruow(capsys, monkeypatch, "report", str(quick))
    assert code == 0, err
    assert (quick / "tearsheet.html").is_file() and "tear sheet:" in out


def test_gru_backtest_with_a_model_name_and_json(home, tiny_model, capsys, monkeypatch):
    (home / "models").mkdir(parents=True)
    (home / "models" / "tiny.pt").write_bytes(tiny_model.read_bytes())
    args = ["backtest", "--data", str(shared_file(HYPERLIQUID)), "--exchange", "hyperliquid", "--symbol",
            "ETH/USDC", "--model", "tiny", "--start", "2025-07-26T00:00", "--end", "2025-07-27", "--fee", "0",
            "--horizon", "4", "--json"]
    code, out, err = gruow(capsys, monkeypatch, *args)
    assert code == 0, err
    doc = json.loads(out)  # stdout holds exactly one JSON document
    m = doc["metrics"]
    assert m["n_trades"] > 0 and doc["config"]["params"]["horizon"] == 4
    assert doc["config"]["model"]["hash"] == hashlib.sha256(tiny_model.read_bytes()).hexdigest()
    assert sorted(p.name for p in (home / "cache").iterdir())[0].startswith("forecast-")  # cached for next time
    code, out2, err = gruow(capsys, monkeypatch, *args)
    assert code == 0, err
    assert json.loads(out2)["metrics"] == m  # the cached forecasts give the same run


@pytest.mark.parametrize(
    "args, message",
    [
        (["--strategy", "gru"], "error: --strategy gru needs a model"),
        (["--strategy", "buyhold", "--fee", "0.2"], "error: --fee 0.2 must be a fraction"),
        (["--strategy", "gru", "--model", "nope"], "error: model 'nope' not found"),
        (["--strategy", "sma", "--stake", "1.5"], "error: --stake 1.5 must be a fraction of equity"),
        (["--strategy", "buyhold", "--start", "2030-01-01", "--end", "2030-01-02"], "in the future"),
        (["--strategy", "buyhold", "--start", "2025-08-01", "--end", "2025-08-02"], "select 0 candle(s)"),
    ],
)
def test_user_mistakes_are_one_line_errors(home, capsys, monkeypatch, args, message):
    if "--start" not in args:
        args = [*args, "--start", "2025-07-25T12:00", "--end", "2025-07-26"]
    code, out, err = gruow(capsys, monkeypatch, "backtest", "--data", str(shared_file(HYPERLIQUID)), *args)
    assert code == 2 and message in " ".join(err.split())
    assert "Traceback" not in err and out == ""
    assert not (home / "backtests").exists() or not any((home / "backtests").iterdir())


def test_start_and_end_are_required(home, capsys, monkeypatch):
    for args in (["--end", "2025-07-26"], ["--start", "2025-07-25"]):
        code, out, err = gruow(capsys, monkeypatch, "backtest", "--data", str(shared_file(HYPERLIQUID)),
                               "--strategy", "buyhold", *args)
        missing = "--start" if "--end" in args else "--end"
        assert code == 2 and f"Missing option '{missing}'" in err and out == ""


def test_no_stored_candles_names_the_users_start_and_end(home, capsys, monkeypatch):
    code, _, err = gruow(capsys, monkeypatch, "data", "import", str(shared_file(HYPERLIQUID)), "--symbol", "ETH/USDC",
                         "--exchange", "hyperliquid", "--json")
    assert code == 0, err
    code, out, err = gruow(capsys, monkeypatch, "backtest", "--symbol", "ETH/USDC", "--strategy", "buyhold",
                           "--start", "2025-08-01", "--end", "2025-08-02")
    msg = " ".join(err.split())
    assert code == 2 and out == ""
    # the user's range, not the warm-up-adjusted 2025-07-31T21:52
    assert "--start 2025-08-01T00:00:00+00:00 / --end 2025-08-02T00:00:00+00:00" in msg and "21:52" not in msg
    assert "the store holds ETH/USDC 1m from hyperliquid 2025-07-21T09:22:00+00:00 to 2025-07-26T04:43:00+00:00" in msg


def gapped_file(tmp_path, hole: str) -> str:
    """A CSV of 1-minute candles, 2025-03-01 00:00 .. 06:00 and again after a ``hole`` of no candles."""
    from data import make_candles

    a = pd.date_range("2025-03-01T00:00", "2025-03-01T06:00", freq="min", tz="UTC", inclusive="left")
    b = pd.date_range(a[-1] + pd.Timedelta("1min") + pd.Timedelta(hole), periods=300, freq="min", tz="UTC")
    idx = a.append(b)
    close = 3000.0 + np.arange(len(idx)) * 0.1
    df = pd.DataFrame({"open": close, "high": close + 1, "low": close - 1, "close": close, "volume": 1.0}, index=idx)
    path = tmp_path / f"gapped-{len(idx)}.csv"
    out = make_candles(df, exchange="test", symbol="ETH/USDC", timeframe="1m").reset_index()
    out.to_csv(path, index=False)
    return str(path)


def test_a_gap_longer_than_a_day_is_refused_unless_allowed(home, tmp_path, capsys, monkeypatch):
    args = ["backtest", "--data", gapped_file(tmp_path, "264D"), "--strategy", "buyhold", "--start", "2025-03-01T03:00",
            "--end", "2025-12-31", "--no-tearsheet"]
    code, out, err = gruow(capsys, monkeypatch, *args)
    msg = " ".join(err.split())
    assert code == 2 and out == "" and "Traceback" not in err
    assert ("error: --start 2025-03-01T03:00:00+00:00 / --end 2025-12-31T00:00:00+00:00 span a gap of 264 days "
            "00:00:00 without candles from 2025-03-01T06:00:00+00:00 to 2025-11-20T06:00:00+00:00") in msg
    assert "--allow-gaps" in msg
    assert not any((home / "backtests").iterdir())
    code, out, err = gruow(capsys, monkeypatch, *args, "--allow-gaps", "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["config"]["data"]["gaps"]["count"] == 1 and doc["config"]["data"]["gaps"]["missing"] == 264 * 1440
    assert "1 gap(s) in the candles (380160 missing)" in " ".join(err.split())


def test_in_sample_and_unfinished_models_are_flagged(home, tiny_model, capsys, monkeypatch):
    import torch

    (home / "models").mkdir(parents=True)
    (home / "models" / "tiny.pt").write_bytes(tiny_model.read_bytes())
    state = torch.load(tiny_model, weights_only=True)
    state["stopped"] = None  # what an interrupted `gruow train` leaves
    torch.save(state, home / "models" / "cut.pt")
    # the tiny model trained on the file's first 1500 candles: 2025-07-21T09:22 .. 2025-07-22T10:22
    base = ["backtest", "--data", str(shared_file(HYPERLIQUID)), "--exchange", "hyperliquid", "--symbol", "ETH/USDC",
            "--end", "2025-07-22T12:00", "--fee", "0", "--no-tearsheet", "--json"]
    code, out, err = gruow(capsys, monkeypatch, *base, "--model", "tiny", "--start", "2025-07-22T08:00")
    assert code == 0, err
    doc = json.loads(out)
    overlap = {"start": "2025-07-22T08:00:00+00:00", "end": "2025-07-22T10:22:00+00:00"}
    assert doc["metrics"]["in_sample"] is True and doc["metrics"]["training_overlap"] == overlap
    assert doc["config"]["in_sample"] is True and doc["config"]["training_overlap"] == overlap
    assert "overlaps model tiny's training range 2025-07-21T09:22:00+00:00 … 2025-07-22T10:22:00+00:00" in err
    assert "is an unfinished run" not in err
    run_dir = doc["run_dir"]
    on_disk = json.loads((Path(run_dir) / "metrics.json").read_text())
    assert on_disk["in_sample"] is True and on_disk["training_overlap"] == overlap
    code, out, err = gruow(capsys, monkeypatch, "report", run_dir)
    assert code == 0, err
    html = (Path(run_dir) / "tearsheet.html").read_text()
    assert "IN-SAMPLE — GRU-ow gru on ETH/USDC 1m" in html
    # after the training range: out of sample; an interrupted checkpoint is warned about
    code, out, err = gruow(capsys, monkeypatch, *base, "--model", "cut", "--start", "2025-07-22T10:22")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["metrics"]["in_sample"] is False and doc["config"]["model"]["finished"] is False
    assert "overlaps" not in err
    assert "model cut is an unfinished run (epoch 1 of 1)" in " ".join(err.split())


def test_report_refuses_a_damaged_run_folder_and_paths_never_wrap(tmp_path, capsys, monkeypatch):
    # a home whose path holds rich markup and is longer than any terminal line
    home = tmp_path / ("[bold]deep-" + "x" * 90) / "home"
    monkeypatch.setenv("GRUOW_HOME", str(home))
    code, out, err = gruow(capsys, monkeypatch, "backtest", "--data", str(shared_file(HYPERLIQUID)), "--strategy",
                           "buyhold", "--start", "2025-07-26T00:00", "--end", "2025-07-26T04:00", "--no-tearsheet")
    assert code == 0, err
    run_dir = next((home / "backtests").iterdir())
    assert f"results: {run_dir} (no tear sheet; `gruow report {run_dir}` builds it)\n" in out
    eq = (run_dir / "equity.csv").read_text().splitlines(keepends=True)
    (run_dir / "equity.csv").write_text("".join(eq[:4]))  # header + 3 rows of 240
    code, out, err = gruow(capsys, monkeypatch, "report", str(run_dir))
    assert code == 2 and out == "" and "Traceback" not in err
    assert "equity.csv: 3 row(s), but metrics.json says the run has 240 bars" in " ".join(err.split())
    assert not (run_dir / "tearsheet.html").exists()
    (run_dir / "equity.csv").write_text("".join(eq))
    code, out, err = gruow(capsys, monkeypatch, "report", str(run_dir))
    assert code == 0, err
    assert out == f"tear sheet: {run_dir / 'tearsheet.html'}\n"
