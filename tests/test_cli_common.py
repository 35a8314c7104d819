"""The CLI conventions every command shares: errors, --json, --home, signals, --version."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from data import GruowError
from gruow._common import resolve_home


def gruow(*args, env=None, **kw):
    return subprocess.run([sys.executable, "-m", "gruow", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, **kw)


def test_error_is_one_line_and_keeps_square_brackets(tmp_path):
    bad = tmp_path / "x.json"
    bad.write_text("[]")
    r = gruow("data", "import", str(bad), "--symbol", "ETH/USDC", "--home", str(tmp_path / "h"))
    assert r.returncode == 2
    assert "Traceback" not in r.stderr
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert "[[ms, o, h, l, c, v], ...]" in r.stderr  # not eaten as rich markup


def test_json_error_gives_a_json_document_on_stdout(tmp_path):
    r = gruow("data", "info", "--start", "2025-02-01", "--end", "2025-01-01", "--json", "--home", str(tmp_path))
    assert r.returncode == 2
    doc = json.loads(r.stdout)
    assert doc["exit_code"] == 2 and "--end" in doc["error"]


def test_home_that_is_a_file_is_refused(tmp_path):
    f = tmp_path / "file.csv"
    f.write_text("x")
    with pytest.raises(GruowError, match="is a file"):
        resolve_home(f)
    with pytest.raises(GruowError, match="under the file"):
        resolve_home(f / "sub")
    r = gruow("data", "info", "--home", str(f))
    assert r.returncode == 2 and "is a file" in r.stderr
    assert resolve_home(tmp_path / "new").root == tmp_path / "new"


def test_home_from_env_and_default(tmp_path, monkeypatch):
    monkeypatch.setenv("GRUOW_HOME", str(tmp_path / "envhome"))
    assert resolve_home(None).root == tmp_path / "envhome"
    monkeypatch.delenv("GRUOW_HOME")
    assert str(resolve_home(None).root) == "user_data"


def test_version():
    r = gruow("--version")
    assert r.returncode == 0 and r.stdout.startswith("gruow ")


def test_sigterm_runs_cleanup_like_ctrl_c(tmp_path):
    # a replay server runs until stopped; SIGTERM must end it through the KeyboardInterrupt path
    from conftest import shared_file

    csv = shared_file("eth_usdc_1m_hyperliquid_2025-07-21.csv")
    p = subprocess.Popen([sys.executable, "-m", "gruow", "replay-server", "--data", str(csv), "--port", "0"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(3)
    p.send_signal(signal.SIGTERM)
    out, err = p.communicate(timeout=20)
    assert "Traceback" not in err
    assert p.returncode in (0, 130)
