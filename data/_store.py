"""The candle store: Parquet files per exchange/symbol/timeframe/month under ``HOME/data``.

Layout::

    HOME/data/<exchange>/<BASE-QUOTE>/<timeframe>/<YYYY-MM>.parquet   one file per UTC month
    HOME/data/<exchange>/<BASE-QUOTE>/<timeframe>/series.json         symbol + repairs applied

One file per month means appending a day rewrites one month, never a year. Writers of one
series take a lock file. Writes merge: rows with a timestamp already stored replace it only if
their values differ, so writing the same candles twice changes nothing (not even a file's
modification time).

A write is all or nothing: every changed month is first written to a temporary file beside it
(``.YYYY-MM.parquet.*.tmp``, fsynced), and only when all of them are complete are they renamed
into place in one short final step, ``series.json`` last. An exception or Ctrl-C/SIGTERM
before that step removes the temporary files and leaves the series exactly as it was; one
during the step finishes the renames first. The window that remains is a hard kill (SIGKILL,
power loss) during the renames themselves, a millisecond for dozens of months, which can leave
some months new and some old, never a half-written file. Temporary files a hard kill leaves
behind are removed by the next write of the series, under its lock.
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import pandas as pd

from ._errors import GruowError
from ._io import atomic_write_text
from ._schema import COLUMNS, candles_meta, check_schema
from ._time import check_range, timeframe_seconds, timeframe_to_timedelta
from ._validate import RULE_DUPLICATE, RULE_FILLED, RULE_UNSORTED, gap_stats

log = logging.getLogger(__name__)

SIDECAR = "series.json"
_MONTH_RE = re.compile(r"^(\d{4})-(\d{2})\.parquet$")
# temporary files of a write (ours, and data._io.atomic_path's for series.json)
_TMP_RE = re.compile(r"^\.(\d{4}-\d{2}\.parquet|series\.json)\..+\.tmp$")
# quote currencies tried, longest first, to split a symbol written without separator (ETHUSDC)
_QUOTES = sorted(["USDC", "USDT", "FDUSD", "BUSD", "TUSD", "DAI", "USD", "EUR", "GBP", "BTC", "ETH", "BNB"],
                 key=len, reverse=True)


def normalize_symbol(symbol: str) -> str:
    """``"eth-usdc"``, ``"ETH_USDC"``, ``"ETHUSDC"``, ``"ETH/USDC"`` → ``"ETH/USDC"`` (ccxt style).

    Without a market table a separator-less symbol is split on a known quote currency; a ccxt
    settle suffix (``ETH/USDC:USDC``) is kept. Raises :class:`GruowError` otherwise.
    """
    s = str(symbol).strip().upper()
    m = re.fullmatch(r"([A-Z0-9]+)\s*[/\-_ ]\s*([A-Z0-9]+)(:[A-Z0-9]+)?", s)
    if m:
        return f"{m[1]}/{m[2]}{m[3] or ''}"
    if re.fullmatch(r"[A-Z0-9]+", s):
        for quote in _QUOTES:
            if s.endswith(quote) and len(s) > len(quote):
                return f"{s[: -len(quote)]}/{quote}"
    raise GruowError(f"--symbol {symbol!r} must look like BASE/QUOTE, e.g. ETH/USDC")


def normalize_exchange(exchange: str) -> str:
    """Lower-case exchange name safe as a folder name (``"Binance"`` → ``"binance"``)."""
    e = str(exchange).strip().lower()
    if not re.fullmatch(r"[a-z0-9][a-z0-9_.\-]*", e):
        raise GruowError(f"--exchange {exchange!r} must be a plain name such as binance or hyperliquid")
    return e


def symbol_dirname(symbol: str) -> str:
    """Folder name of a symbol: ``ETH/USDC`` → ``ETH-USDC`` (``:`` settle suffix → ``_``)."""
    return normalize_symbol(symbol).replace("/", "-").replace(":", "_")


class CandleStore:
    """Read and write candles under ``root`` (= ``HOME/data``). Creates folders only on write."""

    def __init__(self, root: Path):
        self.root = Path(root)

    # ------------------------------------------------------------------ paths
    def series_dir(self, exchange: str, symbol: str, timeframe: str) -> Path:
        timeframe_seconds(timeframe)  # validates the string
        return self.root / normalize_exchange(exchange) / symbol_dirname(symbol) / timeframe

    def _month_files(self, folder: Path) -> list[tuple[int, Path]]:
        """``[(year*12 + month-1, path), ...]`` sorted by month."""
        if not folder.is_dir():
            return []
        out = []
        for p in folder.iterdir():
            m = _MONTH_RE.match(p.name)
            if m:
                out.append((int(m[1]) * 12 + int(m[2]) - 1, p))
        return sorted(out)

    def series(self, symbol: str | None = None) -> list[tuple[str, str, str]]:
        """Stored series as ``[(exchange, symbol, timeframe), ...]``, optionally for one symbol."""
        want = normalize_symbol(symbol) if symbol is not None else None
        found = []
        if not self.root.is_dir():
            return found
        for tf_dir in sorted(self.root.glob("*/*/*")):
            if not tf_dir.is_dir() or not self._month_files(tf_dir):
                continue
            sym = self._read_sidecar(tf_dir).get("symbol") or tf_dir.parent.name.replace("-", "/", 1)
            if want is None or sym == want:
                found.append((tf_dir.parent.parent.name, sym, tf_dir.name))
        return found

    # ------------------------------------------------------------------ write
    def write(self, candles: pd.DataFrame, *, progress: Callable[[int, int], None] | None = None) -> dict:
        """Merge ``candles`` (schema, validated) into the store; return what changed.

        Uses ``candles.attrs`` exchange/symbol/timeframe. Rows at new timestamps are added, rows
        at stored timestamps replace them when their values differ (counted as updated). Repairs
        listed in ``attrs["report"]`` are recorded in the series sidecar when data changed.
        ``progress(done, total)`` is called after each month is prepared. All or nothing: see
        the module docstring. Returns ``{"added", "updated", "unchanged", "files", "exchange",
        "symbol", "timeframe"}`` (files: paths rewritten).
        """
        check_schema(candles)
        meta = candles_meta(candles)
        exchange, symbol, tf = normalize_exchange(meta["exchange"]), normalize_symbol(meta["symbol"]), meta["timeframe"]
        values = candles[COLUMNS].to_numpy()
        if not np.isfinite(values).all():
            raise ValueError("candles hold NaN/inf values: validate them before storing")
        folder = self.series_dir(exchange, symbol, tf)
        result = {"added": 0, "updated": 0, "unchanged": 0, "files": [], "exchange": exchange, "symbol": symbol,
                  "timeframe": tf}
        if len(candles) == 0:
            return result
        idx = candles.index
        months = idx.year.to_numpy() * 12 + idx.month.to_numpy() - 1
        cuts = np.flatnonzero(np.diff(months)) + 1
        starts, stops = np.concatenate([[0], cuts]), np.concatenate([cuts, [len(candles)]])
        with self._lock(folder):
            _remove_stale_temps(folder)
            staged: list[tuple[Path, Path]] = []  # (complete temporary file, its final path)
            try:
                for i, (a, b) in enumerate(zip(starts, stops)):
                    month = int(months[a])
                    path = folder / f"{month // 12:04d}-{month % 12 + 1:02d}.parquet"
                    added, updated, tmp = self._stage_month(path, candles.iloc[a:b], exchange, symbol, tf)
                    result["added"] += added
                    result["updated"] += updated
                    result["unchanged"] += int(b - a) - added - updated
                    if tmp is not None:
                        staged.append((tmp, path))
                        result["files"].append(str(path))
                    if progress is not None:
                        progress(i + 1, len(starts))
            except BaseException as exc:
                for tmp, _ in staged:
                    tmp.unlink(missing_ok=True)
                if isinstance(exc, KeyboardInterrupt):
                    log.warning("interrupted while writing %s %s %s: nothing of this write was stored "
                                "(%d prepared month file(s) discarded)", exchange, symbol, tf, len(staged))
                raise
            try:
                _commit(staged)
            finally:  # after an interrupt too: _commit has then finished every rename
                self._update_sidecar(folder, exchange, symbol, tf, candles.attrs.get("report"),
                                     changed=bool(result["files"]))
        log.info("stored %s %s %s: %d added, %d updated, %d unchanged", exchange, symbol, tf,
                 result["added"], result["updated"], result["unchanged"])
        return result

    def _stage_month(self, path: Path, new: pd.DataFrame, exchange: str, symbol: str,
                     tf: str) -> tuple[int, int, Path | None]:
        """Merge ``new`` with the stored month into a complete temporary file beside ``path``.

        Returns (added, updated, the temporary file or None when nothing changes).
        """
        new = new[COLUMNS]
        if path.exists():
            old = _read_month(path)
            common = new.index.intersection(old.index)
            added = len(new) - len(common)
            updated = int((old.loc[common].to_numpy() != new.loc[common].to_numpy()).any(axis=1).sum())
            if not added and not updated:
                return 0, 0, None
            merged = pd.concat([old, new])
            merged = merged[~merged.index.duplicated(keep="last")].sort_index()
        else:
            added, updated, merged = len(new), 0, new.copy()
        merged.index = merged.index.as_unit("ns")
        merged.attrs = {"exchange": exchange, "symbol": symbol, "timeframe": tf}
        tmp = _temp_beside(path)
        try:
            merged.to_parquet(tmp, engine="pyarrow")
            with open(tmp, "rb") as fh:
                os.fsync(fh.fileno())
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return added, updated, tmp

    @contextlib.contextmanager
    def _lock(self, folder: Path) -> Iterator[None]:
        """An exclusive lock on one series while it is written (no-op where fcntl is missing)."""
        folder.mkdir(parents=True, exist_ok=True)
        try:
            import fcntl
        except ImportError:  # Windows: a single writer is assumed
            yield
            return
        with open(folder / ".lock", "a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def _read_sidecar(self, folder: Path) -> dict:
        p = folder / SIDECAR
        if not p.exists():
            return {}
        try:
            return json.loads(p.read_text(encoding="utf-8"))
        except json.JSONDecodeError:
            log.warning("%s is not valid JSON; ignoring it", p)
            return {}

    def _update_sidecar(self, folder: Path, exchange: str, symbol: str, tf: str, report: dict | None, changed: bool) -> None:
        side = self._read_sidecar(folder)
        fresh = not side
        side.update(exchange=exchange, symbol=symbol, timeframe=tf)
        side.setdefault("repairs", [])
        entries = _repair_entries(report) if changed and report else []
        side["repairs"].extend(entries)
        if fresh or entries:
            atomic_write_text(folder / SIDECAR, json.dumps(side, indent=2) + "\n")

    # ------------------------------------------------------------------ read
    def _pick_exchange(self, symbol: str, timeframe: str, exchange: str | None) -> str:
        if exchange is not None:
            exchange = normalize_exchange(exchange)
            if self._month_files(self.series_dir(exchange, symbol, timeframe)):
                return exchange
        have = self.series(symbol)
        same_tf = sorted(e for e, _, t in have if t == timeframe)
        if exchange is None and len(same_tf) == 1:
            return same_tf[0]
        if exchange is None and len(same_tf) > 1:
            raise GruowError(f"{symbol} {timeframe} is stored for several exchanges ({', '.join(same_tf)}); "
                             "pass --exchange")
        other = sorted({f"{e} {t}" for e, _, t in have})
        hint = f" (stored: {', '.join(other)})" if other else ""
        where = f" from {exchange}" if exchange else ""
        raise GruowError(f"no {symbol} {timeframe} candles{where} in {self.root}{hint}; "
                         "import them with `gruow data import` or `gruow data download`")

    def load(self, symbol: str, timeframe: str = "1m", start=None, end=None, exchange: str | None = None) -> pd.DataFrame:
        """Stored candles of one series for ``[start, end)`` (None = unbounded), in the schema.

        ``exchange`` None picks the only exchange holding ``symbol`` at ``timeframe`` (a
        :class:`GruowError` lists them if there are several). A range without candles gives an
        empty frame. Reads only the months the range touches.
        """
        s, e = check_range(start, end)
        symbol = normalize_symbol(symbol)
        exchange = self._pick_exchange(symbol, timeframe, exchange)
        files = self._month_files(self.series_dir(exchange, symbol, timeframe))
        lo = s.year * 12 + s.month - 1 if s is not None else None
        last = e - pd.Timedelta(1, "ns") if e is not None else None
        hi = last.year * 12 + last.month - 1 if last is not None else None
        paths = [p for m, p in files if (lo is None or m >= lo) and (hi is None or m <= hi)]
        if not paths:
            df = _empty()
        elif len(paths) == 1:
            df = _read_month(paths[0])
        else:
            df = pd.concat([_read_month(p) for p in paths])
        if s is not None or e is not None:
            t = df.index
            a = t.searchsorted(s) if s is not None else 0
            b = t.searchsorted(e) if e is not None else len(t)
            if a > 0 or b < len(t):
                df = df.iloc[a:b]
        df.attrs = {"exchange": exchange, "symbol": symbol, "timeframe": timeframe}
        return df

    def last_timestamp(self, exchange: str, symbol: str, timeframe: str) -> pd.Timestamp | None:
        """Open time of the newest stored candle of a series, or None."""
        files = self._month_files(self.series_dir(exchange, symbol, timeframe))
        if not files:
            return None
        t = _times(files[-1][1])
        return pd.Timestamp(int(t[-1]), unit="ns", tz="UTC") if len(t) else None

    def open_times(self, exchange: str, symbol: str, timeframe: str, start=None, end=None) -> np.ndarray:
        """Open times of the stored candles of one series in ``[start, end)`` (None = unbounded),
        sorted, as int64 ns since 1970 UTC; empty if none. Reads only the index column of the
        months the range touches (what a download needs to find the holes it must fill)."""
        s, e = check_range(start, end, allow_future=True)
        files = self._month_files(self.series_dir(exchange, symbol, timeframe))
        lo = s.year * 12 + s.month - 1 if s is not None else None
        last = e - pd.Timedelta(1, "ns") if e is not None else None
        hi = last.year * 12 + last.month - 1 if last is not None else None
        paths = [p for m, p in files if (lo is None or m >= lo) and (hi is None or m <= hi)]
        t = np.concatenate([_times(p) for p in paths]) if paths else np.array([], dtype=np.int64)
        if s is not None:
            t = t[t >= s.value]
        if e is not None:
            t = t[t < e.value]
        return t

    def info(self, symbol: str | None = None, *, start=None, end=None) -> list[dict]:
        """Per stored series: exchange, symbol, timeframe, first, last, rows, missing,
        longest_gap (Timedelta between the candles around it), longest_gap_start (first missing
        candle), longest_gap_candles, months, repairs (the sidecar's list). ``start``/``end``
        restrict the figures to ``[start, end)``."""
        s, e = check_range(start, end)
        out = []
        for exchange, sym, tf in self.series(symbol):
            folder = self.series_dir(exchange, sym, tf)
            files = self._month_files(folder)
            t = np.concatenate([_times(p) for _, p in files]) if files else np.array([], dtype=np.int64)
            if s is not None:
                t = t[t >= s.value]
            if e is not None:
                t = t[t < e.value]
            gaps = gap_stats(t, timeframe_to_timedelta(tf).value)
            out.append({
                "exchange": exchange,
                "symbol": sym,
                "timeframe": tf,
                "first": pd.Timestamp(int(t[0]), unit="ns", tz="UTC") if len(t) else None,
                "last": pd.Timestamp(int(t[-1]), unit="ns", tz="UTC") if len(t) else None,
                "rows": int(len(t)),
                "missing": gaps["missing"],
                "gap_runs": gaps["runs"],
                "longest_gap": gaps["longest_gap"],
                "longest_gap_start": gaps["longest_gap_start"],
                "longest_gap_candles": gaps["longest_gap_candles"],
                "months": len(files),
                "path": str(folder),
                "repairs": self._read_sidecar(folder).get("repairs", []),
            })
        return out


def _temp_beside(path: Path) -> Path:
    """A new empty temporary file ``.NAME.*.tmp`` beside ``path``, with the usual permissions."""
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(name, 0o666 & ~umask)  # mkstemp makes 0600; a month file is an ordinary file
    return Path(name)


def _commit(staged: list[tuple[Path, Path]]) -> None:
    """Rename every complete temporary file onto its month: the short final step of a write.

    An exception (Ctrl-C, SIGTERM) arriving during the loop is held until the remaining renames
    are done, so the series is never left half new, half old by an interrupt.
    """
    pending = list(staged)
    try:
        while pending:
            tmp, path = pending[0]
            os.replace(tmp, path)
            pending.pop(0)
    finally:
        if pending:  # only after an interrupt inside the loop
            log.warning("interrupted during the final step of a write; finishing its %d remaining "
                        "rename(s) first, so the write is complete", len(pending))
        for tmp, path in pending:
            if tmp.exists():
                os.replace(tmp, path)
    if staged:
        _fsync_dir(staged[0][1].parent)


def _fsync_dir(folder: Path) -> None:
    """Make the renames durable (a no-op where directories cannot be opened, e.g. Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _remove_stale_temps(folder: Path) -> None:
    """Delete temporary files a hard-killed writer left in ``folder``; call under its lock.

    Every writer holds the lock while its temporary files exist, so under the lock any found
    are stale: never complete parts of a write that could still be committed.
    """
    for p in folder.iterdir():
        if _TMP_RE.match(p.name):
            log.info("removing %s, left by an interrupted write", p)
            p.unlink(missing_ok=True)


def _times(path: Path) -> np.ndarray:
    """The open times stored in one month file, as int64 ns (reads the index column only)."""
    idx = _read_month(path, columns=[]).index
    return pd.DatetimeIndex(idx).as_unit("ns").asi8


def _read_month(path: Path, columns: list[str] | None = None) -> pd.DataFrame:
    """One stored month file; a damaged one (truncated, overwritten) is a GruowError naming it."""
    try:
        return pd.read_parquet(path, columns=columns)
    except (OSError, ValueError) as exc:  # pyarrow's ArrowInvalid is a ValueError
        raise GruowError(f"store file {path} is damaged and cannot be read ({exc}); delete it, then import "
                         "or download that month again") from None


def _empty() -> pd.DataFrame:
    idx = pd.DatetimeIndex([], tz="UTC", name="timestamp").as_unit("ns")
    return pd.DataFrame({c: pd.Series([], dtype="float64", index=idx) for c in COLUMNS}, index=idx)


def _repair_entries(report: dict) -> list[dict]:
    """Sidecar entries, one per rule that fired in an import: rule, count, first rows, source."""
    at = datetime.now(timezone.utc).replace(microsecond=0).isoformat()
    rows_by_rule: dict[str, list[int]] = {}
    for entry in report.get("rejected", []) + report.get("repaired", []):
        rows_by_rule.setdefault(entry["rule"], []).append(entry["row"])
    entries = []
    for rule, count in report.get("rules", {}).items():
        entry = {"rule": rule, "count": int(count), "source": report.get("source"), "at": at}
        if rule not in (RULE_UNSORTED, RULE_DUPLICATE, RULE_FILLED):
            entry["rows"] = rows_by_rule.get(rule, [])[:10]
            entry["row_kind"] = report.get("row_kind", "row")
        entries.append(entry)
    return entries
