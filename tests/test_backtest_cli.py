"""`gruow backtest` and `gruow report`, end to end through the real CLI entry point."""
import hashlib
import json
import sys

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
                           "--start", "2025-07-25T12:00", "--no-tearsheet")
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
            "ETH/USDC", "--model", "tiny", "--start", "2025-07-26T00:00", "--fee", "0", "--horizon", "4", "--json"]
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
        (["--strategy", "buyhold", "--start", "2030-01-01"], "in the future"),
        (["--strategy", "buyhold", "--start", "2025-08-01", "--end", "2025-08-02"], "select 0 candle(s)"),
    ],
)
def test_user_mistakes_are_one_line_errors(home, capsys, monkeypatch, args, message):
    code, out, err = gruow(capsys, monkeypatch, "backtest", "--data", str(shared_file(HYPERLIQUID)), *args)
    assert code == 2 and message in " ".join(err.split())
    assert "Traceback" not in err and out == ""
    assert not (home / "backtests").exists() or not any((home / "backtests").iterdir())
