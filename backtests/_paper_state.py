"""The paper trader's persistent state: one SQLite database per session, in WAL mode.

``HOME/paper/<NAME>/state.sqlite`` holds everything a restart needs, written in ONE transaction
per processed candle (``synchronous=FULL``: a commit is on disk before the next candle starts),
so a crash at any moment (even ``kill -9``) leaves the state of the last fully processed candle:

- ``meta``: the session's settings (JSON) and creation time — written once, at bootstrap;
- ``candles``: the warm-up candles and every processed candle (open time in epoch ms, OHLCV);
- ``fills``: one row per simulated fill (open time of the fill candle, signed size, price, fee,
  cash and position after, reason);
- ``equity``: per processed candle, equity/cash/position at its close and the buy-and-hold
  benchmark's equity;
- ``runner``: one row — the last processed candle, the count, and a JSON blob with the account,
  the rules' ``TradeState``, the pending order (decided at the last close, to fill at the next
  open), the benchmark's account and the kill switch;
- ``events``: gaps, kill-switch trips, starts and stops (for ``gruow paper status``);
- ``health``: one row rewritten at every poll (last poll, errors, retries) — not part of the
  trading state.

Floats are stored as SQLite REAL (IEEE doubles) and in the JSON blob with Python's shortest
round-trip repr, so a restored account has the very same bits.
"""
from __future__ import annotations

import fcntl
import json
import re
import sqlite3
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

import pandas as pd

from data import GruowError, atomic_path

# the files of a session folder HOME/paper/<NAME>/
STATE_FILE = "state.sqlite"
STOP_FILE = "stop"  # written by `gruow paper stop`; the trader stops when it sees it
LOCK_FILE = "trader.lock"  # flock-ed by the running trader, holds its pid
LOG_FILE = "paper.log"
SCHEMA_VERSION = 1
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]*")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS candles (
    ts INTEGER PRIMARY KEY, open REAL NOT NULL, high REAL NOT NULL, low REAL NOT NULL,
    close REAL NOT NULL, volume REAL NOT NULL, warmup INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS fills (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, ts INTEGER NOT NULL, size REAL NOT NULL,
    price REAL NOT NULL, fee REAL NOT NULL, cash_after REAL NOT NULL,
    position_after REAL NOT NULL, reason TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS equity (
    ts INTEGER PRIMARY KEY, close REAL NOT NULL, cash REAL NOT NULL, position REAL NOT NULL,
    equity REAL NOT NULL, benchmark_equity REAL NOT NULL);
CREATE TABLE IF NOT EXISTS runner (
    id INTEGER PRIMARY KEY CHECK (id = 1), last_ts INTEGER NOT NULL, processed INTEGER NOT NULL,
    blob TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, wall TEXT NOT NULL, candle_ts INTEGER, kind TEXT NOT NULL,
    detail TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS health (id INTEGER PRIMARY KEY CHECK (id = 1), blob TEXT NOT NULL);
"""


def _now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def ms_to_ts(ms: int) -> pd.Timestamp:
    """Epoch milliseconds -> tz-aware UTC Timestamp."""
    return pd.Timestamp(int(ms), unit="ms", tz="UTC")


def session_dir(home, name: str, option: str = "--state") -> Path:
    """``HOME/paper/<name>``; ``name`` must be a plain file name (errors name ``option``)."""
    if not _NAME_RE.fullmatch(str(name)):
        raise GruowError(f"{option} {name!r} must be a plain name of letters, digits, '.', '_' or '-'")
    return Path(home) / "paper" / str(name)


def lock_pid(path: Path) -> int | None:
    """The pid written in a lock file, or None."""
    try:
        return int(Path(path).read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def running_pid(folder: Path) -> int | None:
    """The pid of the trader holding the session's lock (-1 if unreadable), or None when none runs."""
    path = Path(folder) / LOCK_FILE
    if not path.exists():
        return None
    with open(path, "a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return lock_pid(path) or -1
        fcntl.flock(fh, fcntl.LOCK_UN)
    return None


class PaperState:
    """Read and write one session's database. Open with :meth:`open`; use as a context manager.

    Writers (the trader) call :meth:`bootstrap` once and :meth:`commit_candle` per candle;
    readers (``status``, reports) only ``SELECT`` — WAL lets them read while the trader writes.
    """

    def __init__(self, conn: sqlite3.Connection, path: Path):
        self.conn = conn
        self.path = path

    @classmethod
    def open(cls, folder: Path, *, create: bool = True) -> "PaperState":
        folder = Path(folder)
        path = folder / STATE_FILE
        if create:
            folder.mkdir(parents=True, exist_ok=True)
            if not path.is_file():
                cls._create(path)
        elif not path.is_file():
            raise FileNotFoundError(path)
        # autocommit mode: transactions are opened explicitly with BEGIN IMMEDIATE
        conn = sqlite3.connect(path, isolation_level=None, timeout=30.0)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        if create:
            conn.executescript(_SCHEMA)
        return cls(conn, path)

    @staticmethod
    def _create(path: Path) -> None:
        """Make the file with its tables beside ``path`` and rename it into place, so a reader
        (``paper status``) never opens a state file that has no tables yet."""
        with atomic_path(path) as tmp:
            conn = sqlite3.connect(tmp)
            try:
                conn.executescript(_SCHEMA)
                conn.commit()
            finally:
                conn.close()

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> "PaperState":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE`` ... ``COMMIT``; rolled back on any exception (nothing half-written)."""
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.conn
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    # ------------------------------------------------------------------ reads
    def meta(self) -> dict:
        return {k: json.loads(v) for k, v in self.conn.execute("SELECT key, value FROM meta")}

    def initialized(self) -> bool:
        """Whether the tables exist (a reader may open the file while the trader creates it)."""
        q = "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name IN ('meta', 'runner', 'health')"
        return self.conn.execute(q).fetchone()[0] == 3

    def started(self) -> bool:
        return self.conn.execute("SELECT 1 FROM runner WHERE id = 1").fetchone() is not None

    def runner(self) -> tuple[int, int, dict] | None:
        """(last processed candle open ms, candles processed, blob) or None before bootstrap."""
        row = self.conn.execute("SELECT last_ts, processed, blob FROM runner WHERE id = 1").fetchone()
        return None if row is None else (int(row[0]), int(row[1]), json.loads(row[2]))

    def recent_candles(self, n: int) -> list[tuple]:
        """The last ``n`` stored candles (warm-up and processed), oldest first: (ts, o, h, l, c, v)."""
        rows = self.conn.execute(
            "SELECT ts, open, high, low, close, volume FROM candles ORDER BY ts DESC LIMIT ?", (int(n),)
        ).fetchall()
        return rows[::-1]

    def fills(self) -> pd.DataFrame:
        df = pd.read_sql_query(
            "SELECT ts, size, price, fee, cash_after, position_after, reason FROM fills ORDER BY seq", self.conn
        )
        df.insert(0, "time", pd.to_datetime(df.pop("ts"), unit="ms", utc=True))
        return df

    def equity(self) -> pd.DataFrame:
        df = pd.read_sql_query(
            "SELECT ts, close, cash, position, equity, benchmark_equity FROM equity ORDER BY ts", self.conn
        )
        idx = pd.DatetimeIndex(pd.to_datetime(df.pop("ts"), unit="ms", utc=True), name="timestamp")
        df.index = idx
        return df

    def candles(self, *, warmup: bool = True) -> pd.DataFrame:
        where = "" if warmup else " WHERE warmup = 0"
        df = pd.read_sql_query(f"SELECT ts, open, high, low, close, volume FROM candles{where} ORDER BY ts", self.conn)
        df.index = pd.DatetimeIndex(pd.to_datetime(df.pop("ts"), unit="ms", utc=True), name="timestamp")
        return df

    def events(self, kind: str | None = None) -> list[dict]:
        q = "SELECT seq, wall, candle_ts, kind, detail FROM events"
        rows = self.conn.execute(q + (" WHERE kind = ?" if kind else "") + " ORDER BY seq", (kind,) if kind else ())
        return [
            {"wall": w, "candle": ms_to_ts(c) if c is not None else None, "kind": k, "detail": json.loads(d)}
            for _, w, c, k, d in rows
        ]

    def count(self, table: str) -> int:
        assert table in ("fills", "equity", "candles", "events")
        return int(self.conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])

    def health(self) -> dict:
        row = self.conn.execute("SELECT blob FROM health WHERE id = 1").fetchone()
        return json.loads(row[0]) if row else {}

    # ------------------------------------------------------------------ writes
    def bootstrap(self, meta: dict, warmup: list[tuple], last_ts: int, blob: dict, event: dict) -> None:
        """Write settings, warm-up candles and the initial runner row in one transaction."""
        with self.transaction() as c:
            c.executemany("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                          [(k, json.dumps(v)) for k, v in meta.items()])
            c.executemany("INSERT OR REPLACE INTO candles (ts, open, high, low, close, volume, warmup) "
                          "VALUES (?, ?, ?, ?, ?, ?, 1)", warmup)
            c.execute("INSERT INTO runner (id, last_ts, processed, blob) VALUES (1, ?, 0, ?)",
                      (int(last_ts), json.dumps(blob)))
            self._event(c, last_ts, "bootstrap", event)

    def commit_candle(
        self,
        candle: tuple,
        fills: list[tuple],
        equity_row: tuple,
        processed: int,
        blob: dict,
        events: list[tuple[str, dict]] = (),
    ) -> None:
        """Everything one processed candle changes, in one transaction.

        ``candle``: (ts, o, h, l, c, v); ``fills``: (ts, size, price, fee, cash_after, position_after,
        reason) each; ``equity_row``: (ts, close, cash, position, equity, benchmark_equity).
        """
        ts = int(candle[0])
        with self.transaction() as c:
            c.execute("INSERT OR REPLACE INTO candles (ts, open, high, low, close, volume, warmup) "
                      "VALUES (?, ?, ?, ?, ?, ?, 0)", candle)
            if fills:
                c.executemany("INSERT INTO fills (ts, size, price, fee, cash_after, position_after, reason) "
                              "VALUES (?, ?, ?, ?, ?, ?, ?)", fills)
            c.execute("INSERT INTO equity (ts, close, cash, position, equity, benchmark_equity) "
                      "VALUES (?, ?, ?, ?, ?, ?)", equity_row)
            c.execute("UPDATE runner SET last_ts = ?, processed = ?, blob = ? WHERE id = 1",
                      (ts, int(processed), json.dumps(blob)))
            for kind, detail in events:
                self._event(c, ts, kind, detail)

    def add_event(self, kind: str, detail: dict, candle_ts: int | None = None) -> None:
        with self.transaction() as c:
            self._event(c, candle_ts, kind, detail)

    def set_health(self, health: dict) -> None:
        self.conn.execute("INSERT OR REPLACE INTO health (id, blob) VALUES (1, ?)", (json.dumps(health),))

    @staticmethod
    def _event(c: sqlite3.Connection, candle_ts: int | None, kind: str, detail: dict) -> None:
        c.execute("INSERT INTO events (wall, candle_ts, kind, detail) VALUES (?, ?, ?, ?)",
                  (_now_iso(), None if candle_ts is None else int(candle_ts), kind, json.dumps(detail, default=str)))
