"""Download candles from an exchange with ccxt into the candle store, resumably.

``download(store, exchange="binance", symbol="ETH/USDC", start="2025-07-01")`` pages through the
exchange's OHLCV endpoint with ``since = last_open + timeframe``, writes each page to the store as
it arrives (an interruption keeps what was fetched) and, run again, fetches only what is missing.
A candle still forming on the exchange (open + timeframe > exchange server time) is dropped by
time, never by position. Network trouble is retried with exponential backoff, then reported as a
one-line :class:`~data.GruowError`. ``exchange_url`` points the real ccxt client at a compatible
host such as :class:`data.ReplayServer`.

ccxt is imported lazily: importing ``data`` stays fast for commands that never download.
"""
from __future__ import annotations

import difflib
import logging
import math
import re
import time
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import pandas as pd

from ._errors import GruowError
from ._schema import make_candles
from ._time import check_range, timeframe_seconds, to_utc

log = logging.getLogger(__name__)

MAX_BACKOFF_S = 60.0


def _ccxt():
    import ccxt  # slow to import; only download/paper need it

    return ccxt


def _ms(ts: pd.Timestamp) -> int:
    return int(ts.value // 1_000_000)


def _ts(ms: int | None) -> pd.Timestamp | None:
    return None if ms is None else pd.Timestamp(int(ms), unit="ms", tz="UTC")


def parse_since(value, option: str = "--start") -> pd.Timestamp:
    """A download bound: an ISO date/datetime (naive = UTC), a Timestamp, or epoch MILLISECONDS.

    An integer below 1e11 is refused: as milliseconds it would be March 1973, so it is almost
    surely seconds. An 8-digit string is read as a date (``20250721``).
    """
    if isinstance(value, bool):
        raise GruowError(f"{option} {value!r} must be an ISO date or epoch milliseconds")
    text = value.strip() if isinstance(value, str) else None
    if isinstance(value, (int, np.integer)) or (text and text.isdigit() and len(text) != 8):
        n = int(value)
        if n < 100_000_000_000:
            raise GruowError(
                f"{option} {n} looks like seconds since 1970; give epoch milliseconds "
                f"({n * 1000}) or an ISO date such as 2025-07-21T09:22"
            )
        return pd.Timestamp(n, unit="ms", tz="UTC")
    return to_utc(value, option)


def make_exchange(exchange_id: str, url: str | None = None, *, timeout_ms: int | None = None):
    """A ccxt client for ``exchange_id`` with rate limiting on, for public market data.

    ``url`` (e.g. ``http://127.0.0.1:8765``) replaces the scheme and host of every API URL of the
    client, so all its requests go to that compatible host (a :class:`data.ReplayServer`) and none
    to the real exchange. For ``binance`` only spot markets are loaded (no futures/options calls)
    and the private currency endpoint is skipped. ``timeout_ms``: per-request timeout (ccxt's
    default is 10 000 ms).
    """
    ccxt = _ccxt()
    exchange_id = str(exchange_id).strip().lower()
    if exchange_id not in ccxt.exchanges:
        close = difflib.get_close_matches(exchange_id, ccxt.exchanges, n=5, cutoff=0.6)
        hint = f"; close matches: {', '.join(close)}" if close else "; see ccxt.exchanges for the list"
        raise GruowError(f"--exchange {exchange_id!r} is not an exchange ccxt knows{hint}")
    config: dict[str, Any] = {"enableRateLimit": True}
    if timeout_ms is not None:
        config["timeout"] = int(timeout_ms)
    if exchange_id == "binance":
        config["options"] = {"fetchMarkets": {"types": ["spot"]}, "fetchCurrencies": False}
    ex = getattr(ccxt, exchange_id)(config)
    if url:
        _point_at(ex, url)
    return ex


def _point_at(ex, url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise GruowError(f"--exchange-url {url!r} must look like http://127.0.0.1:8765")
    base = url.rstrip("/")

    def rebase(entry):
        if isinstance(entry, dict):
            return {k: rebase(v) for k, v in entry.items()}
        if isinstance(entry, str):
            return base + urlsplit(entry).path
        return entry

    ex.urls["api"] = rebase(ex.urls["api"])
    log.info("%s: requests go to %s", ex.id, base)


def _key(text: str) -> str:
    return re.sub(r"[^A-Z0-9]", "", str(text).upper())


def normalize_symbol(exchange, text: str) -> str:
    """The exchange's unified symbol for ``text``: ``ETHUSDC``, ``eth-usdc``, ``eth_usdc`` or
    ``ETH/USDC`` -> ``ETH/USDC``, looked up in the exchange's market table (spot preferred).

    Loads the markets if needed. An unknown symbol raises GruowError listing close matches.
    """
    markets = exchange.markets or exchange.load_markets()
    raw = str(text).strip()
    if raw in markets:
        return raw
    by_key: dict[str, list[str]] = {}
    for sym, market in markets.items():
        for k in {_key(sym), _key(market.get("id") or "")}:
            by_key.setdefault(k, []).append(sym)
    hits = by_key.get(_key(raw), [])
    if hits:
        # a spot market first, then the shortest symbol (ETH/USDC before ETH/USDC:USDC)
        return sorted(set(hits), key=lambda s: (not markets[s].get("spot", False), len(s), s))[0]
    close_keys = difflib.get_close_matches(_key(raw), list(by_key), n=5, cutoff=0.6)
    close = []
    for k in close_keys:
        best = sorted(by_key[k], key=lambda s: (not markets[s].get("spot", False), len(s), s))[0]
        if best not in close:
            close.append(best)
    hint = f"; close matches: {', '.join(close)}" if close else f" (it lists {len(markets)} markets)"
    raise GruowError(f"--symbol {raw!r} is not a market on {exchange.id}{hint}")


class _Retry:
    """Call ccxt methods, retrying network trouble with exponential backoff.

    ccxt's NetworkError family (RequestTimeout, RateLimitExceeded, DDoSProtection,
    ExchangeNotAvailable, ...) is retried ``max_retries`` times, waiting ``delay * 2**attempt``
    seconds (at least the server's Retry-After, at most 60 s); then, and for any other ccxt
    error, a GruowError names the exchange and the error.
    """

    def __init__(self, ex, max_retries: int, delay: float) -> None:
        self.ex, self.max_retries, self.delay = ex, max_retries, delay
        self.retries = 0

    def __call__(self, fn, *args, **kwargs):
        ccxt = _ccxt()
        for attempt in range(self.max_retries + 1):
            try:
                return fn(*args, **kwargs)
            except ccxt.NetworkError as exc:
                if attempt == self.max_retries:
                    raise GruowError(
                        f"{self.ex.id}: {type(exc).__name__} persisted after {attempt + 1} "
                        f"attempt(s): {_short(exc)}"
                    ) from None
                wait = min(MAX_BACKOFF_S, self.delay * 2**attempt)
                if isinstance(exc, ccxt.DDoSProtection):  # 429/418: honour Retry-After
                    wait = max(wait, min(MAX_BACKOFF_S, _retry_after(self.ex)))
                self.retries += 1
                log.warning("%s: %s (%s); retry %d/%d in %.2f s", self.ex.id, type(exc).__name__,
                            _short(exc, 120), attempt + 1, self.max_retries, wait)
                time.sleep(wait)
            except ccxt.BaseError as exc:
                raise GruowError(f"{self.ex.id}: {type(exc).__name__}: {_short(exc)}") from None


def _short(exc: BaseException, n: int = 200) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= n else text[: n - 3] + "..."


def _retry_after(ex) -> float:
    headers = getattr(ex, "last_response_headers", None) or {}
    try:
        return float(headers.get("Retry-After", 0) or 0)
    except (TypeError, ValueError):
        return 0.0


def _resume_point(store, exchange_id: str, symbol: str, timeframe: str, start_ms: int,
                  end_ms: int | None, tf_ms: int) -> tuple[int, int | None]:
    """(since, last stored open before since or None): continue after what the store holds.

    The store's last candle decides when it lies in [start, end); when it lies after ``end`` the
    candles stored inside the range decide (none: fetch the whole range).
    """
    last = store.last_timestamp(exchange_id, symbol, timeframe)
    if last is None or _ms(last) < start_ms:
        return start_ms, None
    if end_ms is None or _ms(last) < end_ms:
        return _ms(last) + tf_ms, _ms(last)
    held = store.load(symbol, timeframe, start=_ts(start_ms), end=_ts(end_ms), exchange=exchange_id)
    if len(held) == 0:
        return start_ms, None
    last_in = _ms(held.index[-1])
    return last_in + tf_ms, last_in


def _progress(enabled: bool):
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    console = Console(stderr=True)
    return Progress(
        TextColumn("[bold]download[/] {task.description}"), BarColumn(), MofNCompleteColumn(),
        TimeRemainingColumn(), console=console, transient=False,
        disable=not (enabled and console.is_terminal),
    )


def download(
    store,
    *,
    exchange="binance",
    symbol: str,
    timeframe: str = "1m",
    start,
    end=None,
    limit: int | None = None,
    exchange_url: str | None = None,
    progress: bool = True,
    max_retries: int = 5,
    retry_delay: float = 1.0,
) -> dict:
    """Fetch ``[start, end)`` candles of ``symbol`` from ``exchange`` into ``store``; return a report.

    - ``exchange``: a ccxt id (``"binance"``) or a ccxt client from :func:`make_exchange`;
      ``exchange_url`` points a new client at a compatible host (see :func:`make_exchange`).
    - ``start``/``end``: ISO dates/datetimes (naive = UTC), Timestamps or epoch milliseconds
      (seconds are refused); ``end=None`` means up to the last closed candle.
    - ``limit``: candles per request (default: the exchange's documented maximum; the exchange
      may answer fewer, which is fine: paging continues from the last candle received).
    - Resumes after the last stored candle of the range; writes every page to ``store`` at once.
    - Drops candles still forming (open + timeframe > exchange server time) and candles outside
      the range. Gaps in the exchange's answer are reported, never filled.

    Report keys: exchange, symbol, timeframe, start, end, resumed_from, fetched (rows received),
    added (new candles stored), pages, dropped_forming, duplicates, invalid (rows with empty
    fields, dropped), gaps (``[{after, before, missing}]``), missing (candles missing in total),
    first, last, retries, stopped (why paging stopped: ``end``, ``now`` or ``no-new-data``).
    A failure after some pages raises GruowError saying how far the store got.
    """
    start_ts = parse_since(start, "--start")
    end_ts = parse_since(end, "--end") if end is not None else None
    check_range(start_ts, end_ts)
    tf_ms = timeframe_seconds(timeframe) * 1000
    if limit is not None and int(limit) < 1:
        raise GruowError(f"--limit {limit} must be a positive number of candles per request")

    if isinstance(exchange, str):
        ex = make_exchange(exchange, exchange_url)
    else:
        ex = exchange
        if exchange_url:
            _point_at(ex, exchange_url)
    call = _Retry(ex, max_retries, retry_delay)
    call(ex.load_markets)
    sym = normalize_symbol(ex, symbol)
    if getattr(ex, "timeframes", None) and timeframe not in ex.timeframes:
        raise GruowError(
            f"--timeframe {timeframe!r} is not offered by {ex.id}; use one of {', '.join(ex.timeframes)}"
        )
    if limit is None:
        limit = ((getattr(ex, "features", None) or {}).get("spot") or {}).get("fetchOHLCV", {}).get("limit")
    server_ms = call(ex.fetch_time) if ex.has.get("fetchTime") else ex.milliseconds()
    start_ms = _ms(start_ts)
    end_ms = _ms(end_ts) if end_ts is not None else None

    since, prev = _resume_point(store, ex.id, sym, timeframe, start_ms, end_ms, tf_ms)
    report: dict[str, Any] = {
        "exchange": ex.id, "symbol": sym, "timeframe": timeframe, "start": start_ts, "end": end_ts,
        "resumed_from": _ts(since) if prev is not None else None, "fetched": 0, "added": 0,
        "pages": 0, "dropped_forming": 0, "duplicates": 0, "invalid": 0, "gaps": [], "missing": 0,
        "first": None, "last": None, "retries": 0, "stopped": "end",
    }
    if prev is not None:
        log.info("%s %s %s: store holds candles up to %s; resuming from %s", ex.id, sym, timeframe,
                 _ts(prev).isoformat(), _ts(since).isoformat())
    stop_ms = end_ms if end_ms is not None else math.inf
    expected = max(0, (min(stop_ms, server_ms) - since) // tf_ms)

    with _progress(progress) as bar:
        task = bar.add_task(f"{ex.id} {sym} {timeframe}", total=expected)
        try:
            while since < stop_ms:
                rows = call(ex.fetch_ohlcv, sym, timeframe, since, limit)
                report["pages"] += 1
                report["fetched"] += len(rows)
                page = _page_frame(rows)
                report["duplicates"] += len(rows) - len(page)
                bad = ~np.isfinite(page.to_numpy()).all(axis=1)
                if bad.any():  # null fields from the exchange: a gap, not a guess
                    report["invalid"] += int(bad.sum())
                    log.warning("%s sent %d candle(s) with empty fields; dropped", ex.id, int(bad.sum()))
                    page = page[~bad]
                n_old = int((page.index < since).sum())
                report["duplicates"] += n_old
                page = page[page.index >= since]
                done = False
                if end_ms is not None and (page.index >= end_ms).any():
                    page, done = page[page.index < end_ms], True
                forming = page.index + tf_ms > server_ms
                if forming.any():
                    server_ms = call(ex.fetch_time) if ex.has.get("fetchTime") else ex.milliseconds()
                    forming = page.index + tf_ms > server_ms
                    if forming.any():
                        report["dropped_forming"] += int(forming.sum())
                        page, done = page[~forming], True
                        report["stopped"] = "now"
                if len(page) == 0:
                    if not done:
                        report["stopped"] = "no-new-data"
                    break
                _note_gaps(report, prev, page.index.to_numpy(), tf_ms)
                frame = make_candles(
                    pd.DataFrame(page.to_numpy(), index=pd.to_datetime(page.index, unit="ms", utc=True),
                                 columns=["open", "high", "low", "close", "volume"]),
                    exchange=ex.id, symbol=sym, timeframe=timeframe,
                )
                written = store.write(frame)
                report["added"] += _added(written, len(frame))
                prev = int(page.index[-1])
                if report["first"] is None:
                    report["first"] = frame.index[0]
                report["last"] = frame.index[-1]
                since = prev + tf_ms
                bar.update(task, advance=len(frame))
                log.debug("page %d: %d candles up to %s", report["pages"], len(frame), frame.index[-1])
                if done:
                    break
            bar.update(task, total=bar.tasks[0].completed)  # the exchange may hold fewer than expected
        except KeyboardInterrupt:
            log.warning("download interrupted; %d new candles up to %s are stored", report["added"],
                        report["last"])
            raise
        except GruowError as exc:
            if report["last"] is None:
                raise
            raise GruowError(f"{exc} ({report['added']} new candles up to {report['last'].isoformat()} "
                             "are stored; run the same command again to resume)") from None
    report["retries"] = call.retries
    report["missing"] = sum(g["missing"] for g in report["gaps"])
    log.info("%s %s %s: %d candles added in %d page(s), %d forming dropped, %d missing",
             ex.id, sym, timeframe, report["added"], report["pages"], report["dropped_forming"],
             report["missing"])
    return report


def _page_frame(rows: list) -> pd.DataFrame:
    """ccxt OHLCV rows -> frame indexed by open time (ms), sorted, duplicates dropped (last kept)."""
    rows = [r for r in rows if r and r[0] is not None]
    if not rows:
        return pd.DataFrame(columns=["open", "high", "low", "close", "volume"], index=pd.Index([], dtype="int64"))
    arr = np.asarray([[np.nan if x is None else x for x in r[:6]] for r in rows], dtype="float64")
    df = pd.DataFrame(arr[:, 1:], index=arr[:, 0].astype("int64"),
                      columns=["open", "high", "low", "close", "volume"])
    df = df[~df.index.duplicated(keep="last")]
    return df.sort_index()


def _note_gaps(report: dict, prev: int | None, opens: np.ndarray, tf_ms: int) -> None:
    seq = opens if prev is None else np.concatenate([[prev], opens])
    steps = np.diff(seq)
    for i in np.flatnonzero(steps > tf_ms):
        missing = int(steps[i] // tf_ms) - 1
        report["gaps"].append({"after": _ts(seq[i]), "before": _ts(seq[i + 1]), "missing": missing})
        log.warning("gap in %s's answer: %d candle(s) missing after %s (kept as a gap)",
                    report["exchange"], missing, _ts(seq[i]).isoformat())


def _added(written, default: int) -> int:
    """New candles from ``CandleStore.write``'s report (falls back to the page size)."""
    if isinstance(written, dict):
        for key in ("added", "new", "rows_added"):
            if key in written:
                return int(written[key])
    return default
