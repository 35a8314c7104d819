"""Read candle files in the formats people have, without renaming anything.

Formats are detected from the content, not the file name:

- CSV (or ``;``/tab separated, optionally .gz/.zip) **with a header**: the common column names
  (``open``/``o``/``Open``/``open_price``..., ``timestamp``/``date``/``datetime``/``time``...)
  including the original GRU-ow layout
  ``closing_price,date,highest_price,lowest_price,open_price,utc_timestamp,volume``
  (``utc_timestamp``, epoch ms, is preferred over the naive ``date``);
- Binance kline CSV **without a header** (12 columns, open time first, in ms or, since 2025,
  in µs);
- ccxt OHLCV JSON ``[[ms, open, high, low, close, volume], ...]`` (or a list of records with
  named fields);
- Parquet written by this project (or any Parquet with named OHLCV columns).

Epoch timestamps are read in s, ms, µs or ns by magnitude; a field documented as milliseconds
(ccxt JSON, ``utc_timestamp``, Binance open time) that holds seconds-looking values is refused,
since reading it either way could be wrong. Text times must be ISO-8601; a naive one is UTC,
offsets are honoured.
"""
from __future__ import annotations

import json
import logging
import lzma
import re
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pandas as pd

from ._errors import GruowError
from ._schema import COLUMNS
from ._store import normalize_exchange, normalize_symbol
from ._validate import validate

log = logging.getLogger(__name__)

# header aliases after normalisation (lower case, runs of non-alphanumerics -> "_");
# time columns in order of preference
TIME_ALIASES = ["utc_timestamp", "timestamp", "open_time", "opentime", "timestamp_utc", "datetime",
                "date_time", "time", "date", "unix", "ts", "t"]
PRICE_ALIASES = {
    "open": ["open", "o", "open_price", "opening_price", "price_open"],
    "high": ["high", "h", "high_price", "highest_price", "price_high"],
    "low": ["low", "l", "low_price", "lowest_price", "price_low"],
    "close": ["close", "c", "close_price", "closing_price", "price_close"],
    "volume": ["volume", "v", "vol", "base_volume", "volume_base"],
}
# time columns whose documented unit is milliseconds (µs allowed where Binance uses it)
_MS_FIELDS = {"utc_timestamp": "ms", "open_time": "ms_or_us", "opentime": "ms_or_us"}

_UNIT_LIMITS = [(1e11, "s", 10**9), (1e14, "ms", 10**6), (1e17, "us", 10**3), (float("inf"), "ns", 1)]
_UNIT_NAMES = {"s": "seconds", "ms": "milliseconds", "us": "microseconds", "ns": "nanoseconds"}
_EARLIEST = pd.Timestamp("1990-01-01", tz="UTC")


def read_candles(
    path,
    *,
    symbol: str = "ETH/USDC",
    exchange: str = "unknown",
    timeframe: str | None = None,
    fill_gaps: bool = False,
) -> pd.DataFrame:
    """Read a candle file in any supported format and return validated candles in the schema.

    ``symbol``/``exchange`` label the candles (``df.attrs``); ``timeframe`` ``None``/``"auto"``
    is inferred from the spacing, a given one is checked against it; ``fill_gaps`` fills missing
    candles flat at the previous close with volume 0 (default: gaps stay gaps). The validation
    report, as a dict, is in ``df.attrs["report"]`` (see :class:`data.ValidationReport`), and
    ``df.attrs["format"]`` names the detected format. Raises :class:`GruowError` for a missing
    file, an unknown layout, a non-numeric price, an unreadable or implausible time, or
    seconds where milliseconds are expected.
    """
    path = Path(path)
    if not path.exists():
        raise GruowError(f"{path}: file not found")
    if not path.is_file():
        raise GruowError(f"{path}: is not a file")
    symbol = normalize_symbol(symbol)
    exchange = normalize_exchange(exchange)
    try:
        fmt = detect_format(path)
        raw, rows, row_kind = _READERS[fmt](path)
    except (EOFError, zipfile.BadZipFile, zlib.error, lzma.LZMAError, OSError) as exc:
        if not _compressed(path):
            raise
        # gzip's EOFError would otherwise reach click, which prints only "Aborted!"
        raise GruowError(f"{path}: damaged or truncated {path.suffix} file ({type(exc).__name__}: {exc}); "
                         "download or unpack it again") from None
    raw.attrs = {"exchange": exchange, "symbol": symbol}
    candles, report = validate(raw, timeframe=timeframe, fill_gaps=fill_gaps, rows=rows, row_kind=row_kind,
                               source=str(path))
    candles.attrs["format"] = fmt
    candles.attrs["source"] = str(path)
    log.info("%s: read %d candles (%s, %s)", path, len(candles), fmt, report.timeframe)
    return candles


def detect_format(path: Path) -> str:
    """``"parquet"``, ``"json"``, ``"csv"`` (with a header) or ``"binance"`` (headerless klines)."""
    with open(path, "rb") as fh:
        head = fh.read(4096)
    if head[:4] == b"PAR1":
        return "parquet"
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if text[:1] in (b"[", b"{"):
        return "json"
    if not text and not _compressed(path):
        raise GruowError(f"{path}: the file is empty")
    first = _first_csv_row(path)
    if all(_is_number(f) for f in first):
        return "binance"
    return "csv"


def _compressed(path: Path) -> bool:
    return path.suffix.lower() in (".gz", ".zip", ".bz2", ".xz", ".zst")


def _first_csv_row(path: Path) -> list[str]:
    try:
        first = pd.read_csv(path, header=None, nrows=1, dtype=str, sep=_sep(path), encoding="utf-8-sig")
    except (pd.errors.EmptyDataError, UnicodeDecodeError, ValueError) as exc:
        raise GruowError(f"{path}: not a readable CSV, JSON or Parquet candle file ({exc})") from None
    return [str(v).strip() for v in first.iloc[0].tolist()]


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def _sep(path: Path) -> str:
    """The delimiter of the first line: the most frequent of , ; tab | (comma if none)."""
    with pd.io.common.get_handle(path, "r", compression="infer", encoding="utf-8-sig", errors="replace") as h:
        line = h.handle.readline()
    counts = {s: line.count(s) for s in (",", ";", "\t", "|")}
    sep = max(counts, key=counts.get)
    return sep if counts[sep] else ","


# ---------------------------------------------------------------- readers: path -> (raw, rows, kind)

def _read_header_csv(path: Path):
    try:
        df = pd.read_csv(path, sep=_sep(path), skip_blank_lines=False, encoding="utf-8-sig",
                         skipinitialspace=True)
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
        raise GruowError(f"{path}: cannot parse as CSV ({str(exc).splitlines()[0]})") from None
    rows = np.arange(2, len(df) + 2)  # line 1 is the header
    return _from_named_columns(df, path, rows, "line"), rows, "line"


def _read_binance(path: Path):
    try:
        df = pd.read_csv(path, header=None, sep=_sep(path), skip_blank_lines=False)
    except (pd.errors.ParserError, ValueError) as exc:
        raise GruowError(f"{path}: cannot parse as CSV ({str(exc).splitlines()[0]})") from None
    if df.shape[1] != 12:
        raise GruowError(
            f"{path}: has no header row and {df.shape[1]} columns; expected a header naming "
            "timestamp/open/high/low/close/volume, or a 12-column Binance kline file")
    rows = np.arange(1, len(df) + 1)
    df.columns = ["open time", *COLUMNS, "close time", "quote volume", "trades", "taker base", "taker quote", "ignore"]
    raw = _assemble(df, {"open_time": "open time", **{c: c for c in COLUMNS}}, "open_time", "ms_or_us", path, rows, "line")
    return raw, rows, "line"


def _read_json(path: Path):
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise GruowError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(data, list) or not data:
        raise GruowError(f"{path}: JSON must be a non-empty list of candles, ccxt style [[ms, o, h, l, c, v], ...]")
    rows = np.arange(1, len(data) + 1)
    if all(isinstance(x, dict) for x in data):
        return _from_named_columns(pd.DataFrame.from_records(data), path, rows, "item"), rows, "item"
    bad = next((i for i, x in enumerate(data) if not isinstance(x, list) or len(x) < 6), None)
    if bad is not None:
        raise GruowError(f"{path} item {bad + 1}: must be [timestamp_ms, open, high, low, close, volume], "
                         f"got {json.dumps(data[bad])[:80]}")
    df = pd.DataFrame([x[:6] for x in data], columns=["timestamp", *COLUMNS])
    raw = _assemble(df, {c: c for c in ["timestamp", *COLUMNS]}, "timestamp", "ms", path, rows, "item")
    return raw, rows, "item"


def _read_parquet(path: Path):
    try:
        df = pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises several types for corrupt files
        raise GruowError(f"{path}: cannot read Parquet ({exc})") from None
    if isinstance(df.index, pd.DatetimeIndex):
        df = df.reset_index(names="timestamp" if df.index.name is None else df.index.name)
    rows = np.arange(1, len(df) + 1)
    return _from_named_columns(df, path, rows, "row"), rows, "row"


_READERS = {"csv": _read_header_csv, "binance": _read_binance, "json": _read_json, "parquet": _read_parquet}


# ---------------------------------------------------------------- columns, numbers, times

def _norm(name) -> str:
    return re.sub(r"[^a-z0-9]+", "_", str(name).strip().lower()).strip("_")


def _from_named_columns(df: pd.DataFrame, path: Path, rows: np.ndarray, kind: str) -> pd.DataFrame:
    """Map a frame with named columns onto timestamp + OHLCV and parse it."""
    by_norm: dict[str, str] = {}
    for col in df.columns:
        by_norm.setdefault(_norm(col), col)
    got = ", ".join(map(str, df.columns))
    mapping: dict[str, str] = {}
    for target, aliases in PRICE_ALIASES.items():
        found = [by_norm[a] for a in aliases if a in by_norm]
        if len(found) > 1:
            raise GruowError(f"{path}: columns {', '.join(found)} all look like {target}; keep one")
        if found:
            mapping[target] = found[0]
    prices = [c for c in ("open", "high", "low", "close") if c not in mapping]
    if prices:
        raise GruowError(f"{path}: no price columns {'/'.join(prices)} found; the header must name open, high, "
                         f"low, close (or o/h/l/c, open_price, closing_price, ...); it has: {got}")
    if "volume" not in mapping:
        raise GruowError(f"{path}: no volume column (volume, vol or v, in the base currency); it has: {got}")
    time_key = next((a for a in TIME_ALIASES if a in by_norm), None)
    if time_key is None:
        raise GruowError(f"{path}: no time column (timestamp, date, datetime, time, utc_timestamp, open_time); "
                         f"it has: {got}")
    mapping["timestamp"] = by_norm[time_key]
    times = df[mapping["timestamp"]]
    if time_key == "time" and "date" in by_norm and _is_clock(times):
        times = df[by_norm["date"]].astype(str) + " " + times.astype(str)
        df = df.assign(**{mapping["timestamp"]: times})
    return _assemble(df, mapping, "timestamp", _MS_FIELDS.get(time_key, "any"), path, rows, kind)


def _is_clock(values: pd.Series) -> bool:
    first = values.dropna()
    return bool(len(first)) and re.fullmatch(r"\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?", str(first.iloc[0]).strip()) is not None


def _assemble(df, mapping, time_key, expect, path, rows, kind) -> pd.DataFrame:
    """Frame with a UTC DatetimeIndex (NaT where empty) and float64 OHLCV columns."""
    idx = _parse_times(df[mapping[time_key]], mapping[time_key], expect, path, rows, kind)
    data = {c: _numbers(df[mapping[c]], mapping[c], path, rows, kind) for c in COLUMNS}
    return pd.DataFrame(data, index=idx)


def _numbers(col: pd.Series, name, path, rows, kind) -> np.ndarray:
    if pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col):
        return col.to_numpy(dtype="float64", na_value=np.nan)
    text = col.astype(object)
    num = pd.to_numeric(col.astype(str).str.strip().replace({"": None}), errors="coerce")
    bad = num.isna().to_numpy() & col.notna().to_numpy() & (col.astype(str).str.strip() != "").to_numpy()
    if bad.any():
        p = int(np.flatnonzero(bad)[0])
        raise GruowError(f"{path} {kind} {rows[p]}: {name} {str(text.iloc[p])!r} is not a number")
    return num.to_numpy(dtype="float64", na_value=np.nan)


def _parse_times(col: pd.Series, name, expect: str, path, rows, kind) -> pd.DatetimeIndex:
    """Open times -> tz-aware UTC DatetimeIndex (ns); NaT where the cell is empty."""
    if isinstance(col.dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_dtype(col):
        idx = pd.DatetimeIndex(col)
        idx = idx.tz_localize("UTC") if idx.tz is None else idx.tz_convert("UTC")
        return _check_plausible(idx.as_unit("ns"), name, path, rows, kind)
    if pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col):
        return _epoch(col, name, expect, path, rows, kind)
    text = col.astype(str).str.strip()
    empty = col.isna().to_numpy() | (text == "").to_numpy()
    first = text[~empty].iloc[0] if (~empty).any() else ""
    if _is_number(first):  # epoch numbers written as text (quoted, or beside empty cells)
        num = pd.to_numeric(text.where(~empty), errors="coerce")
        if not num.isna().to_numpy()[~empty].any():
            return _epoch(num, name, expect, path, rows, kind)
    parsed = pd.to_datetime(text.where(~empty), utc=True, format="ISO8601", errors="coerce")
    bad = parsed.isna().to_numpy() & ~empty
    if bad.any():
        p = int(np.flatnonzero(bad)[0])
        raise GruowError(f"{path} {kind} {rows[p]}: {name} {text.iloc[p]!r} is not an ISO-8601 time "
                         "(e.g. 2025-07-21T09:22:00Z) or an epoch number")
    return _check_plausible(pd.DatetimeIndex(parsed).as_unit("ns"), name, path, rows, kind)


def _epoch(values: pd.Series, name, expect: str, path, rows, kind) -> pd.DatetimeIndex:
    """Epoch numbers -> UTC times, the unit (s/ms/µs/ns) read per value from its magnitude."""
    raw = values.to_numpy(dtype="float64", na_value=np.nan)
    ok = ~np.isnan(raw)
    ns = np.full(len(raw), np.iinfo(np.int64).min, dtype=np.int64)  # NaT
    mag = np.abs(raw)
    lower = 0.0
    allowed = {"ms": {"ms"}, "ms_or_us": {"ms", "us"}}.get(expect)
    exact = values.to_numpy(dtype="int64", na_value=0) if pd.api.types.is_integer_dtype(values) else None
    for upper, unit, factor in _UNIT_LIMITS:
        sel = ok & (mag >= lower) & (mag < upper)
        lower = upper
        if not sel.any():
            continue
        if allowed is not None and unit not in allowed:
            p = int(np.flatnonzero(sel)[0])
            want = " or ".join(_UNIT_NAMES[u] for u in sorted(allowed))
            raise GruowError(
                f"{path} {kind} {rows[p]}: {name} {values.iloc[p]} looks like {_UNIT_NAMES[unit]} since 1970 but this "
                f"field holds {want}; convert the file (e.g. multiply by 1000) rather than guess")
        ns[sel] = exact[sel] * factor if exact is not None else np.round(raw[sel] * factor).astype(np.int64)
    idx = pd.DatetimeIndex(pd.to_datetime(ns, unit="ns", utc=True))
    return _check_plausible(idx, name, path, rows, kind)


def _check_plausible(idx: pd.DatetimeIndex, name, path, rows, kind) -> pd.DatetimeIndex:
    latest = pd.Timestamp.now(tz="UTC") + pd.Timedelta(days=2)
    bad = ~np.asarray(idx.isna()) & ((idx < _EARLIEST) | (idx > latest))
    if bad.any():
        p = int(np.flatnonzero(bad)[0])
        raise GruowError(f"{path} {kind} {rows[p]}: {name} reads as {idx[p].isoformat()}, not a plausible candle "
                         f"time (must lie between {_EARLIEST.date()} and now)")
    return idx

