"""Validation and repair of raw candles, reported row by row, never silent.

:func:`validate` turns a raw frame (any order, duplicates, NaNs, impossible rows) into candles in
the schema of ``data._schema`` and a :class:`ValidationReport` saying what it found and did.
The rules, applied in this order, each row getting at most one rejection rule:

====================================  ===========================================================
found                                 done
====================================  ===========================================================
missing timestamp                     row rejected
NaN, empty or infinite value          row rejected (a price or volume we do not know is not 0)
price <= 0                            row rejected
negative volume                       row rejected
high below low                        repaired: high and low swapped
open or close outside [low, high]     repaired: high/low widened to include open and close
rows out of time order                sorted (stable, so file order breaks ties)
duplicate timestamps                  the last row in file order kept, the others counted
open time off the timeframe's grid    row rejected (e.g. 09:22:30 among whole minutes)
missing candles (gaps)                kept as gaps and counted; with ``fill_gaps=True`` filled
                                      with flat zero-volume candles at the previous close
====================================  ===========================================================

Row numbers in the report are the ones a user can find in the source: 1-based file lines for
CSV (the header is line 1), 1-based items for JSON, 1-based rows otherwise.
"""
from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from typing import Sequence

import numpy as np
import pandas as pd

from ._errors import GruowError
from ._schema import COLUMNS, PRICE_COLUMNS
from ._time import seconds_to_timeframe, timeframe_seconds

log = logging.getLogger(__name__)

# rule texts: they appear in reports, the store's sidecar and `gruow data info`
RULE_NO_TIME = "missing timestamp: rejected"
RULE_NAN = "NaN, empty or infinite value: rejected"
RULE_NONPOSITIVE = "price <= 0: rejected"
RULE_NEG_VOLUME = "negative volume: rejected"
RULE_OFF_GRID = "open time off the timeframe grid: rejected"
RULE_SWAP = "high below low: swapped high and low"
RULE_WIDEN = "open/close outside high-low: widened high/low to include them"
RULE_UNSORTED = "rows out of time order: sorted"
RULE_DUPLICATE = "duplicate timestamp: kept the last row"
RULE_FILLED = "missing candle: filled flat at the previous close, volume 0"

_NS = 1_000_000_000


@dataclass
class ValidationReport:
    """What :func:`validate` found and did. Counts are rows; times are UTC candle open times.

    ``repaired`` and ``rejected`` list one ``{"row", "timestamp", "rule"}`` dict per affected
    row (``row`` as the user finds it in ``source``, see ``row_kind``). ``gaps`` counts missing
    candles; ``longest_gap`` is the spacing between the open times of the two candles around
    the longest gap (so 24 missing 5m candles make a 2h05m gap), ``longest_gap_start`` the open
    time of its first missing candle and ``longest_gap_candles`` how many are missing there.
    ``gaps`` and the longest gap are measured before any filling; ``filled`` says how many
    candles ``fill_gaps`` inserted.
    """

    source: str | None = None
    row_kind: str = "row"
    timeframe: str | None = None
    rows_in: int = 0
    rows_out: int = 0
    first: pd.Timestamp | None = None
    last: pd.Timestamp | None = None
    unsorted: int = 0
    duplicates: int = 0
    nan_rows: int = 0
    nonpositive_rows: int = 0
    negative_volume_rows: int = 0
    off_grid_rows: int = 0
    repaired: list[dict] = field(default_factory=list)
    rejected: list[dict] = field(default_factory=list)
    gaps: int = 0
    gap_runs: int = 0
    longest_gap: pd.Timedelta = field(default_factory=lambda: pd.Timedelta(0))
    longest_gap_start: pd.Timestamp | None = None
    longest_gap_candles: int = 0
    filled: int = 0

    def rule_counts(self) -> dict[str, int]:
        """``{rule text: rows}`` for every rule that fired (sorting, duplicates and fills too)."""
        counts: dict[str, int] = {}
        for entry in self.rejected + self.repaired:
            counts[entry["rule"]] = counts.get(entry["rule"], 0) + 1
        for rule, n in ((RULE_UNSORTED, self.unsorted), (RULE_DUPLICATE, self.duplicates), (RULE_FILLED, self.filled)):
            if n:
                counts[rule] = n
        return counts

    @property
    def clean(self) -> bool:
        """True when nothing was rejected, repaired, sorted, de-duplicated or filled."""
        return not self.rule_counts()

    def to_dict(self, limit: int | None = None) -> dict:
        """A JSON-ready dict (times as ISO-8601 strings). ``limit`` caps the row lists; the
        counts (``repaired_count``, ``rejected_count``, ``rules``) always cover every row."""
        d = asdict(self)
        d["repaired_count"] = len(self.repaired)
        d["rejected_count"] = len(self.rejected)
        d["rules"] = self.rule_counts()
        if limit is not None:
            d["repaired"] = d["repaired"][:limit]
            d["rejected"] = d["rejected"][:limit]
        for key in ("first", "last", "longest_gap_start"):
            d[key] = None if d[key] is None else d[key].isoformat()
        d["longest_gap"] = self.longest_gap.isoformat()
        d["longest_gap_s"] = self.longest_gap.total_seconds()
        return d


def gap_stats(times_ns: np.ndarray, step_ns: int) -> dict:
    """Gaps in sorted, unique open times (int64 ns since epoch) for candles ``step_ns`` apart.

    Returns ``missing`` (candles), ``runs`` (number of gaps), ``longest_gap`` (Timedelta between
    the open times around the longest gap), ``longest_gap_start`` (open time of its first
    missing candle, or None) and ``longest_gap_candles``.
    """
    out = {"missing": 0, "runs": 0, "longest_gap": pd.Timedelta(0), "longest_gap_start": None, "longest_gap_candles": 0}
    if len(times_ns) < 2:
        return out
    d = np.diff(times_ns)
    missing = d // step_ns - 1
    gap = missing > 0
    if not gap.any():
        return out
    k = int(np.argmax(d))
    out.update(
        missing=int(missing[gap].sum()),
        runs=int(gap.sum()),
        longest_gap=pd.Timedelta(int(d[k]), unit="ns"),
        longest_gap_start=pd.Timestamp(int(times_ns[k] + step_ns), unit="ns", tz="UTC"),
        longest_gap_candles=int(missing[k]),
    )
    return out


def _mode(values: np.ndarray) -> int:
    uniq, counts = np.unique(values, return_counts=True)
    return int(uniq[np.argmax(counts)])


def validate(
    candles: pd.DataFrame,
    *,
    timeframe: str | None = None,
    fill_gaps: bool = False,
    rows: Sequence[int] | np.ndarray | None = None,
    row_kind: str = "row",
    source: str | None = None,
) -> tuple[pd.DataFrame, ValidationReport]:
    """Check and repair raw candles; return ``(candles in the schema, report)``.

    ``candles``: a DatetimeIndex (or a ``timestamp`` column) of open times (naive = UTC; NaT
    allowed, it is rejected) and float columns ``open high low close volume``, in any order.
    ``timeframe``: ``None``/``"auto"`` infers it from the most common spacing; a given one
    must be the spacing of some neighbouring candles and not coarser than the most common one. ``rows``: the row number of each input row as the user finds it in
    ``source`` (default 1..n). Metadata in ``candles.attrs`` is kept; ``timeframe`` and
    ``report`` (``report.to_dict(limit=20)``) are set on the result. Raises :class:`GruowError`
    when no valid candle remains or the timeframe cannot be inferred or does not match.
    """
    where = source or "candles"
    df = candles
    if not isinstance(df.index, pd.DatetimeIndex):
        if "timestamp" not in df.columns:
            raise GruowError(f"{where}: candles need a DatetimeIndex or a 'timestamp' column")
        df = df.set_index("timestamp")
    missing_cols = [c for c in COLUMNS if c not in df.columns]
    if missing_cols:
        raise GruowError(f"{where}: missing column(s) {', '.join(missing_cols)}")
    n = len(df)
    report = ValidationReport(source=source, row_kind=row_kind, rows_in=n)
    rows = np.arange(1, n + 1) if rows is None else np.asarray(rows, dtype=np.int64)
    if len(rows) != n:
        raise ValueError("rows must give one row number per input row")
    if n == 0:
        raise GruowError(f"{where}: holds no candles")

    idx = pd.DatetimeIndex(df.index)
    idx = idx.tz_localize("UTC") if idx.tz is None else idx.tz_convert("UTC")
    nat = np.asarray(idx.isna())
    t = idx.as_unit("ns").asi8.copy()
    try:
        vals = df[COLUMNS].to_numpy(dtype="float64", copy=True)
    except (TypeError, ValueError) as exc:
        raise GruowError(f"{where}: price/volume columns must be numbers ({exc})") from None

    # --- rejections: one rule per row, first match wins
    nonfinite = ~np.isfinite(vals).all(axis=1) & ~nat
    nonpos = (vals[:, :4] <= 0).any(axis=1) & ~nat & ~nonfinite
    negvol = (vals[:, 4] < 0) & ~nat & ~nonfinite & ~nonpos
    rejected: list[tuple[int, int, str]] = []  # (position, row, rule)
    for mask, rule in ((nat, RULE_NO_TIME), (nonfinite, RULE_NAN), (nonpos, RULE_NONPOSITIVE), (negvol, RULE_NEG_VOLUME)):
        rejected += [(int(p), int(rows[p]), rule) for p in np.flatnonzero(mask)]
    report.nan_rows = int(nonfinite.sum())
    report.nonpositive_rows = int(nonpos.sum())
    report.negative_volume_rows = int(negvol.sum())
    keep = ~(nat | nonfinite | nonpos | negvol)

    # --- repairs of impossible but recoverable rows
    o, h, l, c = (vals[:, i] for i in range(4))
    repaired: list[tuple[int, int, str]] = []
    swap = keep & (h < l)
    if swap.any():
        h[swap], l[swap] = l[swap].copy(), h[swap].copy()
        repaired += [(int(p), int(rows[p]), RULE_SWAP) for p in np.flatnonzero(swap)]
    hi = np.maximum(o, c)
    lo = np.minimum(o, c)
    widen = keep & ~swap & ((hi > h) | (lo < l))
    swapped_widen = swap & ((hi > h) | (lo < l))
    if widen.any() or swapped_widen.any():
        repaired += [(int(p), int(rows[p]), RULE_WIDEN) for p in np.flatnonzero(widen | swapped_widen)]
    np.maximum(h, hi, out=h, where=keep)
    np.minimum(l, lo, out=l, where=keep)

    # --- order and duplicates (among the kept rows, file order breaking ties)
    pos = np.flatnonzero(keep)
    tk = t[pos]
    report.unsorted = int((np.diff(tk) < 0).sum())
    order = np.argsort(tk, kind="stable")
    pos, tk = pos[order], tk[order]
    last_of_run = np.ones(len(tk), dtype=bool)
    last_of_run[:-1] = tk[1:] != tk[:-1]
    report.duplicates = int((~last_of_run).sum())
    pos, tk = pos[last_of_run], tk[last_of_run]
    if len(tk) == 0:
        raise GruowError(f"{where}: no valid candle left after rejecting {len(rejected)} row(s), e.g. "
                         f"{row_kind} {rejected[0][1]}: {rejected[0][2]}")

    # --- timeframe: inferred from the most common spacing, checked against the given one
    given = None if timeframe in (None, "", "auto") else timeframe
    step_s = timeframe_seconds(given) if given else None
    if len(tk) >= 2:
        spacing_ns = _mode(np.diff(tk))
        if spacing_ns % _NS:
            raise GruowError(f"{where}: candles are {spacing_ns / _NS:g} s apart; a timeframe must be whole seconds")
        inferred = seconds_to_timeframe(spacing_ns // _NS)
        # a given timeframe must show in the data (two neighbours that far apart) and not be
        # coarser than its usual spacing; sparse data (mostly gaps) may still be declared
        if given and (spacing_ns < step_s * _NS or not (np.diff(tk) == step_s * _NS).any()):
            raise GruowError(f"{where}: candles are {inferred} apart but --timeframe {given} was given; "
                             f"pass --timeframe {inferred} (or auto), or resample after import")
        if not given:
            step_s = timeframe_seconds(inferred)
    elif not given:
        raise GruowError(f"{where}: a single candle cannot show its timeframe; pass --timeframe (e.g. 1m)")
    tf = seconds_to_timeframe(step_s)
    step_ns = step_s * _NS
    report.timeframe = tf

    # --- grid: open times share one phase modulo the timeframe (whole minutes for 1m)
    phase = tk % step_ns
    off = phase != _mode(phase)
    if off.any():
        rejected += [(int(p), int(rows[p]), RULE_OFF_GRID) for p in pos[off]]
        report.off_grid_rows = int(off.sum())
        pos, tk = pos[~off], tk[~off]

    report.rejected = [{"row": r, "timestamp": _iso(t[p]), "rule": rule} for p, r, rule in sorted(rejected, key=lambda x: x[1])]
    report.repaired = [{"row": r, "timestamp": _iso(t[p]), "rule": rule} for p, r, rule in sorted(repaired, key=lambda x: x[1])]

    gaps = gap_stats(tk, step_ns)
    report.gaps, report.gap_runs = gaps["missing"], gaps["runs"]
    report.longest_gap = gaps["longest_gap"]
    report.longest_gap_start = gaps["longest_gap_start"]
    report.longest_gap_candles = gaps["longest_gap_candles"]

    out = pd.DataFrame(vals[pos], columns=COLUMNS, index=pd.DatetimeIndex(pd.to_datetime(tk, unit="ns", utc=True), name="timestamp"))
    if fill_gaps and report.gaps:
        out = _fill(out, step_ns)
        report.filled = report.gaps
    report.rows_out = len(out)
    report.first, report.last = out.index[0], out.index[-1]
    out.attrs = {**{k: v for k, v in candles.attrs.items() if k != "report"}, "timeframe": tf, "report": report.to_dict(limit=20)}
    _log_report(report)
    return out, report


def _fill(df: pd.DataFrame, step_ns: int) -> pd.DataFrame:
    """Insert flat zero-volume candles at the previous close into every gap."""
    t = df.index.asi8
    grid = pd.DatetimeIndex(pd.to_datetime(np.arange(t[0], t[-1] + 1, step_ns), unit="ns", utc=True), name="timestamp")
    full = df.reindex(grid)
    new = full["close"].isna().to_numpy()
    prev_close = full["close"].ffill()
    for col in PRICE_COLUMNS:
        full[col] = full[col].where(~new, prev_close)
    full["volume"] = full["volume"].fillna(0.0)
    return full


def _iso(ns: int) -> str | None:
    if ns == np.iinfo(np.int64).min:  # NaT
        return None
    return pd.Timestamp(int(ns), unit="ns", tz="UTC").isoformat()


def _log_report(r: ValidationReport) -> None:
    where = r.source or "candles"
    for rule, count in r.rule_counts().items():
        (log.info if rule == RULE_FILLED else log.warning)("%s: %s (%d row%s)", where, rule, count, "" if count == 1 else "s")
    if r.gaps and not r.filled:
        log.info("%s: %d missing candle(s) kept as gaps, longest %s from %s", where, r.gaps,
                 r.longest_gap, r.longest_gap_start)
