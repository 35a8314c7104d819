"""Test helpers shared by every test module.

Real candles live in ``../shared/data`` beside the project (env ``GRUOW_SHARED_DATA`` overrides).
Tests reach them only through :func:`shared_file` / the ``shared_data`` fixture and are skipped,
with the reason, only when the folder is absent.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def shared_data_dir() -> Path:
    """The folder of real candle files: ``$GRUOW_SHARED_DATA`` or ``<repo>/../shared/data``."""
    env = os.environ.get("GRUOW_SHARED_DATA")
    return Path(env) if env else REPO.parent / "shared" / "data"


def shared_file(name: str) -> Path:
    """Path of one real data file; skips the calling test if the shared folder is absent."""
    folder = shared_data_dir()
    if not folder.is_dir():
        pytest.skip(f"real data folder {folder} is absent (set GRUOW_SHARED_DATA)")
    path = folder / name
    if not path.exists():
        pytest.skip(f"real data file {path} is absent")
    return path


@pytest.fixture
def shared_data() -> Path:
    folder = shared_data_dir()
    if not folder.is_dir():
        pytest.skip(f"real data folder {folder} is absent (set GRUOW_SHARED_DATA)")
    return folder


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    """An empty GRU-ow home folder, also set as $GRUOW_HOME for CLI calls."""
    h = tmp_path / "home"
    monkeypatch.setenv("GRUOW_HOME", str(h))
    return h


def run_cli(args, capsys, monkeypatch):
    """Run the ``gruow`` console entry point in-process; return (exit code, stdout, stderr)."""
    from gruow.cli import main

    monkeypatch.setattr(sys, "argv", ["gruow", *map(str, args)])
    try:
        main()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    out, err = capsys.readouterr()
    return code, out, err
