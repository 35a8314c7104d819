"""Where the benchmarks find the real candle files: ``$GRUOW_SHARED_DATA`` or ``<repo>/../shared/data``
(the same rule as ``tests/conftest.py``)."""
from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def shared_data_dir() -> Path:
    env = os.environ.get("GRUOW_SHARED_DATA")
    return Path(env) if env else REPO.parent / "shared" / "data"
