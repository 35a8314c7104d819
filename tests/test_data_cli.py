"""`gruow data import` / `gruow data info`: acceptance figures on the real files and bad inputs."""
import json
import subprocess
import sys

import pytest

from conftest import run_cli as gruow, shared_file

HYPERLIQUID = "eth_usdc_1m_hyperliquid_2025-07-21.csv"
SEED = "gru_ow_eth_usdt_5m_seed_format.csv"


def files_under(path):
    return sorted(p for p in path.rglob("*") if p.is_file()) if path.exists() else []


def test_import_and_info_hyperliquid(home, capsys, monkeypatch):
    code, out, _ = gruow(["data", "import", shared_file(HYPERLIQUID), "--symbol", "ETH/USDC", "--exchange",
                          "hyperliquid", "--json"], capsys, monkeypatch)
    assert code == 0
    doc = json.loads(out)
    assert doc["report"]["rows_out"] == 6922 and doc["stored"]["added"] == 6922
    code, out, _ = gruow(["data", "info", "--json"], capsys, monkeypatch)
    assert code == 0
    (s,) = json.loads(out)
    assert (s["exchange"], s["symbol"], s["timeframe"], s["rows"], s["missing"]) == ("hyperliquid", "ETH/USDC", "1m", 6922, 0)
    assert s["first"] == "2025-07-21T09:22:00+00:00" and s["last"] == "2025-07-26T04:43:00+00:00"
    assert (home / "data" / "hyperliquid" / "ETH-USDC" / "1m" / "2025-07.parquet").exists()


def test_seed_format_imports_as_5m_and_twice_changes_nothing(home, capsys, monkeypatch):
    args = ["data", "import", shared_file(SEED), "--symbol", "ETH/USDT"]
    code, out, _ = gruow(args, capsys, monkeypatch)
    assert code == 0
    assert "38,083 / 38,083" in out and "24 missing in 1 gap(s)" in out and "2h 05m between candles" in out
    code, info1, _ = gruow(["data", "info", "--json", "--symbol", "eth-usdt"], capsys, monkeypatch)
    (s,) = json.loads(info1)
    assert (s["timeframe"], s["rows"], s["missing"], s["longest_gap"]) == ("5m", 38083, 24, "P0DT2H5M0S")
    assert s["longest_gap_start"] == "2021-09-29T07:00:00+00:00"
    stamps = {p: p.stat().st_mtime_ns for p in files_under(home / "data")}
    code, out, _ = gruow([*args, "--json"], capsys, monkeypatch)
    assert code == 0 and json.loads(out)["stored"]["added"] == 0 and json.loads(out)["stored"]["files"] == []
    code, info2, _ = gruow(["data", "info", "--json", "--symbol", "eth-usdt"], capsys, monkeypatch)
    assert info2 == info1
    assert {p: p.stat().st_mtime_ns for p in files_under(home / "data")} == stamps


def test_info_table_and_empty_store(home, capsys, monkeypatch):
    code, out, _ = gruow(["data", "info"], capsys, monkeypatch)
    assert code == 0 and "no stored candles" in out
    assert not (home / "data").exists()


def test_fill_gaps_recorded_and_shown(home, tmp_path, capsys, monkeypatch):
    p = tmp_path / "g.csv"
    p.write_text("timestamp,open,high,low,close,volume\n2025-01-01T00:00Z,1,2,0.5,1.5,1\n"
                 "2025-01-01T00:01Z,1,2,0.5,1.5,1\n2025-01-01T00:04Z,2,3,1.5,2.5,1\n")
    code, out, _ = gruow(["data", "import", p, "--symbol", "ETH/USDC", "--fill-gaps"], capsys, monkeypatch)
    assert code == 0 and "2 (flat, volume 0)" in out
    code, out, _ = gruow(["data", "info", "--json"], capsys, monkeypatch)
    (s,) = json.loads(out)
    assert s["rows"] == 5 and s["missing"] == 0
    assert s["repairs"][0]["rule"].startswith("missing candle: filled") and s["repairs"][0]["count"] == 2


@pytest.mark.parametrize("name,text,message", [
    ("missing.csv", None, "missing.csv: file not found"),
    ("noprice.csv", "timestamp,foo,bar\n2025-01-01T00:00Z,1,2\n", "no price columns open/high/low/close found"),
    ("nonnum.csv", "timestamp,open,high,low,close,volume\n2025-01-01T00:00Z,1,2,0.5,1.5,1\n2025-01-01T00:01Z,1,2,0.5,n/a?,1\n",
     "nonnum.csv line 3: close 'n/a?' is not a number"),
    ("seconds.json", json.dumps([[1735689600, 1, 2, 0.5, 1.5, 1], [1735689660, 1, 2, 0.5, 1.5, 1]]),
     "seconds.json item 1: timestamp 1735689600 looks like seconds since 1970 but this field holds milliseconds"),
])
def test_bad_imports_one_line_exit_2_nothing_written(home, tmp_path, capsys, monkeypatch, name, text, message):
    p = tmp_path / name
    if text is not None:
        p.write_text(text)
    code, out, err = gruow(["data", "import", p, "--symbol", "ETH/USDC"], capsys, monkeypatch)
    assert code == 2 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0]
    assert "Traceback" not in err
    assert files_under(home) == []


def test_info_end_before_start(home, capsys, monkeypatch):
    code, _, err = gruow(["data", "info", "--start", "2025-02-01", "--end", "2025-01-01"], capsys, monkeypatch)
    assert code == 2 and err.strip().startswith("error: --end 2025-01-01T00:00:00+00:00 must be after --start")


def test_console_script_bad_symbol_and_missing_file(tmp_path):
    """The real `gruow` process: one error line, exit 2, no traceback."""
    env_home = tmp_path / "h"
    for args, message in (
        (["data", "import", str(tmp_path / "none.csv"), "--symbol", "ETH/USDC"], "none.csv: file not found"),
        (["data", "import", str(shared_file(HYPERLIQUID)), "--symbol", "ETH"], "--symbol 'ETH' must look like BASE/QUOTE"),
    ):
        r = subprocess.run([sys.executable, "-m", "gruow", *args, "--home", str(env_home)], capture_output=True, text=True)
        assert r.returncode == 2 and r.stdout == ""
        assert r.stderr.strip().splitlines() == [r.stderr.strip()] and message in r.stderr
        assert "Traceback" not in r.stderr
    assert not env_home.exists()


def test_sigterm_during_import_stores_nothing_and_says_so(tmp_path):
    """A real SIGTERM while the second month file is written: exit 130, the store unchanged."""
    home = tmp_path / "h"
    script = (
        "import os, signal, sys, pandas as pd\n"
        "real, n = pd.DataFrame.to_parquet, []\n"
        "def to_parquet(self, path, **kw):\n"
        "    n.append(path)\n"
        "    if len(n) == 2:\n"
        "        os.kill(os.getpid(), signal.SIGTERM)\n"
        "    return real(self, path, **kw)\n"
        "pd.DataFrame.to_parquet = to_parquet\n"
        "from gruow.cli import main\n"
        "sys.argv = ['gruow', *sys.argv[1:]]\n"
        "main()\n"
    )
    src = shared_file("eth_usdt_1m_binance_2025-06.csv")  # June and the first hours of July
    r = subprocess.run([sys.executable, "-c", script, "data", "import", str(src), "--symbol", "ETH/USDT",
                        "--exchange", "binance", "--home", str(home)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 130, r.stderr
    assert "nothing of this write was stored (1 prepared month file(s) discarded)" in r.stderr
    assert r.stderr.rstrip().endswith("interrupted")
    assert "Traceback" not in r.stderr
    assert [p.name for p in files_under(home)] in ([], [".lock"])  # no month, no series.json, no .tmp


@pytest.mark.parametrize("args", [
    ["data", "info"],
    ["data", "import", "ignored.csv", "--symbol", "ETH/USDC"],
    ["data", "download", "--symbol", "ETH/USDC", "--start", "2025-07-21", "--exchange-url", "http://127.0.0.1:9"],
    ["replay-server", "--port", "0"],
])
def test_home_that_is_a_file_is_refused_by_every_data_command(tmp_path, capsys, monkeypatch, args):
    f = tmp_path / "candles.csv"
    f.write_text("not a folder\n")
    code, out, err = gruow([*args, "--home", f], capsys, monkeypatch)
    assert code == 2 and err.strip().splitlines()[-1] == f"error: --home {f} is a file; it must be a folder (it is created if missing)"
    assert f.read_text() == "not a folder\n"


def test_import_prints_paths_whole_and_without_markup(home, tmp_path, capsys, monkeypatch):
    folder = tmp_path / "[raw] exports" / ("deep-folder-name-" * 4)
    folder.mkdir(parents=True)
    p = folder / "[2025] candles.csv"
    p.write_text("timestamp,open,high,low,close,volume\n2025-01-01T00:00Z,1,2,0.5,1.5,1\n"
                 "2025-01-01T00:01Z,1,2,0.5,1.5,1\n2025-01-01T00:02Z,1,0.5,2,1.5,1\n")
    code, out, _ = gruow(["data", "import", p, "--symbol", "ETH/USDC"], capsys, monkeypatch)
    assert code == 0 and f"import {p}\n" in out
    assert "(" + p.name + ")" in out  # the repair's source, "[2025]" kept
