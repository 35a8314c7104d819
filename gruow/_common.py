"""Shared CLI plumbing: the user-data home, options every command shares, output helpers.

Conventions for every command:
- user files live under a home folder: ``--home DIR``, env ``GRUOW_HOME``, default ``./user_data``
  with sub-folders ``data/ models/ backtests/ paper/``;
- ``--json`` prints exactly one JSON document on stdout and nothing else there; without it a
  rich table goes to stdout; progress bars and logs go to stderr;
- user mistakes raise ``data.GruowError`` and are printed as one ``error: ...`` line, exit 2.
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import pandas as pd
import typer
from rich.console import Console

from data import GruowError

# stdout for tables/JSON, stderr for progress bars, logs and errors
out_console = Console()
err_console = Console(stderr=True)

HomeOpt = Annotated[
    Path,
    typer.Option(
        "--home",
        envvar="GRUOW_HOME",
        help="User-data folder (data/, models/, backtests/, paper/). Env GRUOW_HOME.",
        show_default=True,
    ),
]
DEFAULT_HOME = Path("user_data")
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout instead of a table.")]
TIME_HELP = "ISO date or datetime; naive means UTC. Ranges are half-open [start, end)."


@dataclass(frozen=True)
class Home:
    """The user-data folder layout. Sub-folders are created on first use."""

    root: Path

    def _sub(self, name: str) -> Path:
        p = self.root / name
        p.mkdir(parents=True, exist_ok=True)
        return p

    @property
    def data(self) -> Path:
        return self._sub("data")

    @property
    def models(self) -> Path:
        return self._sub("models")

    @property
    def backtests(self) -> Path:
        return self._sub("backtests")

    @property
    def paper(self) -> Path:
        return self._sub("paper")


def resolve_home(home: Path | None) -> Home:
    """The home folder from ``--home``, else ``$GRUOW_HOME``, else ``./user_data``.

    Raises GruowError when that path exists and is not a folder.
    """
    source = "--home"
    if home is None:
        env = os.environ.get("GRUOW_HOME")
        home, source = (Path(env), "GRUOW_HOME") if env else (DEFAULT_HOME, "the default home")
    home = Path(home).expanduser()
    if home.exists() and not home.is_dir():
        raise GruowError(f"{source} {home} is a file; it must be a folder (it is created if missing)")
    for parent in home.parents:
        if parent.exists():
            if not parent.is_dir():
                raise GruowError(f"{source} {home} lies under the file {parent}; it must be a folder path")
            break
    return Home(home)


def say(text: str) -> None:
    """Print one line on stdout as is: no rich markup, no highlighting, never wrapped.

    For lines that hold file paths, which must stay copy-pasteable when stdout is not a terminal.
    """
    out_console.print(text, soft_wrap=True, markup=False, highlight=False)


def _default(obj: Any):
    if isinstance(obj, (pd.Timestamp, datetime)):
        return obj.isoformat()
    if isinstance(obj, pd.Timedelta):
        return obj.isoformat()
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        v = float(obj)
        return None if math.isnan(v) else v
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"not JSON serializable: {type(obj).__name__}")


def to_json(obj: Any) -> str:
    """JSON text for reports: Timestamps as ISO-8601, numpy scalars as numbers, NaN as null."""
    def clean(o):
        if isinstance(o, float) and (math.isnan(o) or math.isinf(o)):
            return None
        if isinstance(o, dict):
            return {str(k): clean(v) for k, v in o.items()}
        if isinstance(o, (list, tuple)):
            return [clean(v) for v in o]
        return o
    return json.dumps(clean(obj), default=_default, indent=2)


def emit_json(obj: Any) -> None:
    """Print one JSON document on stdout (and nothing else)."""
    typer.echo(to_json(obj))
