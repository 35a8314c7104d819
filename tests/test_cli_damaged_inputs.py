"""Damaged files, paths through files, empty exchange answers: one-line errors, nothing written.

Found in a new-user trial: each of these printed a traceback, a bare "Aborted." or nothing.
"""
from __future__ import annotations

import gzip
import io
import subprocess
import sys
import zipfile

import numpy as np
import pandas as pd
import pytest

from conftest import REPO, run_cli as gruow, shared_file
from data import CandleStore, GruowError, ReplayServer, download, make_exchange, read_candles


def csv_text(n: int = 300) -> str:
    t = pd.date_range("2025-07-21T09:22Z", periods=n, freq="1min")
    close = 3000 + np.arange(n, dtype=float)
    df = pd.DataFrame({"timestamp": t.strftime("%Y-%m-%dT%H:%M:%SZ"), "open": close - 0.5, "high": close + 1,
                       "low": close - 1, "close": close, "volume": 1.0})
    return df.to_csv(index=False)


@pytest.mark.parametrize("kind", ["gz", "zip"])
def test_a_truncated_archive_is_a_one_line_error_naming_the_file(tmp_path, capsys, monkeypatch, kind):
    raw = csv_text().encode()
    if kind == "gz":
        whole = gzip.compress(raw)
    else:
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
            z.writestr("candles.csv", raw)
        whole = buf.getvalue()
    path = tmp_path / f"candles.csv.{kind}"
    path.write_bytes(whole[: len(whole) // 2])
    home = tmp_path / "home"
    code, out, err = gruow(["data", "import", path, "--symbol", "ETH/USDC", "--home", home], capsys, monkeypatch)
    assert code == 2
    assert f"error: {path}: damaged or truncated .{kind} file" in err
    assert "Traceback" not in err and "Aborted" not in err
    assert not list((home / "data").rglob("*.parquet"))
    # the whole file still imports: the check is on damage, not on the format
    good = tmp_path / f"good.csv.{kind}"
    good.write_bytes(whole)
    assert len(read_candles(good)) == 300


def test_a_damaged_store_month_is_named_by_every_command_that_reads_it(tmp_path, capsys, monkeypatch):
    src = tmp_path / "c.csv"
    src.write_text(csv_text())
    home = tmp_path / "home"
    assert gruow(["data", "import", src, "--symbol", "ETH/USDC", "--exchange", "x", "--home", home],
                 capsys, monkeypatch)[0] == 0
    month = home / "data" / "x" / "ETH-USDC" / "1m" / "2025-07.parquet"
    month.write_bytes(month.read_bytes()[:100])
    for args in (["data", "info"], ["data", "import", src, "--symbol", "ETH/USDC", "--exchange", "x"]):
        code, out, err = gruow([*args, "--home", home], capsys, monkeypatch)
        assert code == 2, err
        assert f"store file {month} is damaged and cannot be read" in err and "delete it" in err
        assert "Traceback" not in err
    with pytest.raises(GruowError, match="is damaged"):
        CandleStore(home / "data").load("ETH/USDC", "1m", exchange="x")


def test_an_output_path_through_a_file_is_a_one_line_error(tmp_path, capsys, monkeypatch):
    src = tmp_path / "c.csv"
    src.write_text(csv_text(40))
    blocker = tmp_path / "afile"
    blocker.write_text("not a folder")
    # --home given as a file is refused up front; here a file sits where store sub-folders go
    code, out, err = gruow(["data", "import", src, "--symbol", "ETH/USDC", "--exchange", "afile",
                            "--home", tmp_path / "h"], capsys, monkeypatch)
    assert code == 0
    (tmp_path / "h" / "backtests").write_text("in the way")
    code, out, err = gruow(["backtest", "--symbol", "ETH/USDC", "--exchange", "afile", "--strategy", "buyhold",
                            "--start", "2025-07-21T09:40", "--end", "2025-07-21T10:00", "--home", tmp_path / "h"],
                           capsys, monkeypatch)
    assert code == 2, err
    assert "a file stands where a folder must be" in err and "Traceback" not in err
    # train checks --out before it trains, not after
    code, out, err = gruow(["train", "--data", src, "--symbol", "ETH/USDC", "--out", blocker / "m.pt",
                            "--home", tmp_path / "h"], capsys, monkeypatch)
    assert code == 2 and f"{blocker}: a file stands where a folder must be" in err
    assert "training on" not in err


def test_an_empty_kline_answer_for_a_listed_market_is_a_reported_gap(tmp_path):
    """The replay lists BTC/USDT (a real Binance symbol) but has no candles for it: it answers []."""
    candles = read_candles(shared_file("eth_usdc_1m_hyperliquid_2025-07-21.csv"), symbol="ETH/USDC",
                           exchange="hyperliquid")
    store = CandleStore(tmp_path / "data")
    with ReplayServer(candles, symbol="ETH/USDC", start="2025-07-24", speed=0) as srv:
        report = download(store, exchange=make_exchange("binance", url=srv.url), symbol="BTC/USDT",
                          start="2025-07-23T20:00", end="2025-07-23T21:00", progress=False, retry_delay=0.01)
    assert report["added"] == 0 and report["missing"] == 60
    assert store.info("BTC/USDT") == []


def test_a_negative_rate_limit_is_refused_before_a_session_folder_exists(tmp_path):
    from backtests import PaperSettings, run_paper

    with pytest.raises(GruowError, match="--rate-limit-ms -5 must be between 0 and 60000"):
        run_paper(tmp_path, "s", PaperSettings(strategy="buyhold"), exchange_url="http://127.0.0.1:9",
                  max_candles=1, rate_limit_ms=-5)
    assert not (tmp_path / "paper" / "s").exists()


def test_ctrl_c_says_interrupted_and_leaves_no_run_folder(tmp_path):
    """SIGINT while a backtest runs: typer exits 130 on its own; the CLI still says so."""
    src = shared_file("eth_usdt_1m_binance_2025-06.csv")
    home = tmp_path / "h"
    script = (
        "import os, signal, sys\n"
        "import backtests\n"
        "real = backtests.run_backtest\n"
        "def run_backtest(*a, **kw):\n"
        "    os.kill(os.getpid(), signal.SIGINT)  # a Ctrl-C as the run starts\n"
        "    return real(*a, **kw)\n"
        "backtests.run_backtest = run_backtest\n"
        "from gruow.cli import main\n"
        "sys.argv = ['gruow', *sys.argv[1:]]\n"
        "main()\n"
    )
    r = subprocess.run([sys.executable, "-c", script, "backtest", "--data", str(src), "--symbol", "ETH/USDT",
                        "--strategy", "buyhold", "--start", "2025-06-10", "--end", "2025-06-11",
                        "--home", str(home)], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert r.returncode == 130, r.stderr
    assert "interrupted" in r.stderr and "Traceback" not in r.stderr
    assert not (home / "backtests").exists() or not any((home / "backtests").iterdir())
