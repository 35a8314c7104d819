"""Download candles from an exchange with ccxt into the candle store, resumably.

``download(store, exchange="binance", symbol="ETH/USDC", start="2025-07-01")`` first asks the
store which parts of ``[start, end)`` it lacks (before its first candle there, holes between
candles, after its last one), then pages through the exchange's OHLCV endpoint over each of
those parts only, with ``since = last_open + timeframe``, writing each page to the store as it
arrives (an interruption keeps what was fetched). Run again, it fetches only what is still
missing: candles the store holds are never requested again, beyond the overlap of a page.
A candle still forming on the exchange (open + timeframe > exchange server time) is dropped by
time, never by position. Network trouble is retried with exponential backoff, then reported as a
one-line :class:`~data.GruowError`; answers that will not change on a retry (HTTP 4xx other
than 408/418/425/429, 501, 505) fail at once. ``exchange_url`` points the real ccxt binance client
at a compatible host such as :class:`data.ReplayServer`.

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
    to the real exchange; such a host speaks Binance's API, so ``url`` needs ``binance``. For ``binance`` only spot markets are loaded (no futures/options calls)
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
    """Send every API request of ``ex`` to ``url`` (a Binance-compatible host; ``ex`` binance)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise GruowError(f"--exchange-url {url!r} must look like http://127.0.0.1:8765")
    if ex.id != "binance":
        # the replay server (and any host --exchange-url is for) speaks Binance's spot API; another
        # client's requests would only get "501 Unsupported method" or 404 answers
        raise GruowError(f"--exchange-url serves Binance's API (gruow replay-server); use it with --exchange "
                         f"binance, not {ex.id}")
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


# HTTP answers a retry cannot change: the request itself is wrong, refused or not implemented
# (408 request timeout, 418/429 rate limits and 425 too early are worth waiting for)
_RETRYABLE_4XX = {408, 418, 425, 429}


def _permanent(status: int | None) -> bool:
    return status is not None and ((400 <= status < 500 and status not in _RETRYABLE_4XX) or status in (501, 505))


class _Retry:
    """Call ccxt methods, retrying network trouble with exponential backoff.

    ccxt's NetworkError family (RequestTimeout, RateLimitExceeded, DDoSProtection,
    ExchangeNotAvailable, ...) is retried ``max_retries`` times, waiting ``delay * 2**attempt``
    seconds (at least the server's Retry-After, at most 60 s); then, and for any other ccxt
    error, a GruowError names the exchange and the error. ccxt maps some answers that will not
    change (e.g. HTTP 404, 501) to ExchangeNotAvailable too: those, by their HTTP status, fail at
    once.
    """

    def __init__(self, ex, max_retries: int, delay: float) -> None:
        self.ex, self.max_retries, self.delay = ex, max_retries, delay
        self.retries = 0
        self._status = _status_recorder(ex)

    def __call__(self, fn, *args, **kwargs):
        ccxt = _ccxt()
        for attempt in range(self.max_retries + 1):
            self._status[0] = None
            try:
                return fn(*args, **kwargs)
            except ccxt.NetworkError as exc:
                status = self._status[0]
                if _permanent(status):
                    raise GruowError(f"{self.ex.id}: HTTP {status} ({type(exc).__name__}), not retried since "
                                     f"the answer will not change: {_short(exc)}") from None
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


def _status_recorder(ex) -> list:
    """A one-item list that holds the HTTP status of ``ex``'s latest answer (None: no answer).

    ccxt passes every answer through ``on_rest_response`` before mapping its status to an
    exception; the hook is installed once per client.
    """
    box = getattr(ex, "_gruow_http_status", None)
    if box is None:
        box = [None]
        inner = ex.on_rest_response

        def on_rest_response(code, *args, **kwargs):
            box[0] = int(code) if code is not None else None
            return inner(code, *args, **kwargs)

        ex.on_rest_response = on_rest_response
        ex._gruow_http_status = box
    return box


def _short(exc: BaseException, n: int = 200) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= n else text[: n - 3] + "..."


def _retry_after(ex) -> float:
    headers = getattr(ex, "last_response_headers", None) or {}
    try:
        return float(headers.get("Retry-After", 0) or 0)
    except (TypeError, ValueError):
        return 0.0


def _holes(held: np.ndarray, start_ms: int, end_ms: int | None, tf_ms: int) -> list[tuple[int, int | None]]:
    """The parts of ``[start, end)`` without a stored candle: ``[(first open, exclusive end), ...]``.

    ``held``: the sorted open times (ms) stored in the range. A part is before the first held
    candle (if a whole candle fits), between two held candles more than one timeframe apart, or
    after the last one (exclusive end ``end``, None = open-ended). No held candle: the whole range.
    """
    if len(held) == 0:
        return [(start_ms, end_ms)]
    out: list[tuple[int, int | None]] = []
    if int(held[0]) - start_ms >= tf_ms:
        out.append((start_ms, int(held[0])))
    for i in np.flatnonzero(np.diff(held) >= 2 * tf_ms):
        out.append((int(held[i]) + tf_ms, int(held[i + 1])))
    tail = int(held[-1]) + tf_ms
    if end_ms is None or end_ms > tail:
        out.append((tail, end_ms))
    return out


def _count(a: int, b: int, tf_ms: int, anchor: int) -> int:
    """Candle opens in ``[a, b)`` on the grid of ``anchor`` (one open time of the series)."""
    return max(0, -((anchor - b) // tf_ms) - (-((anchor - a) // tf_ms)))


def _progress(enabled: bool):
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    console = Console(stderr=True)
    return Progress(
        TextColumn("[bold]download[/] {task.description}"), BarColumn(), MofNCompleteColumn(),
        TimeRemainingColumn(), console=console, transient=False,
        disable=not (enabled and console.is_terminal),
    )


MAX_RETRIES = 20


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
    """Fetch the ``[start, end)`` candles of ``symbol`` that ``store`` lacks; return a report.

    - ``exchange``: a ccxt id (``"binance"``) or a ccxt client from :func:`make_exchange`;
      ``exchange_url`` points a new binance client at a compatible host (see :func:`make_exchange`).
    - ``start``/``end``: ISO dates/datetimes (naive = UTC), Timestamps or epoch milliseconds
      (seconds are refused); ``end=None`` means up to the last closed candle.
    - ``limit``: candles per request, 1 up to the exchange's documented maximum (default: that
      maximum; the exchange may answer fewer, which is fine: paging continues from the last
      candle received). A request never asks for more candles than the part it fills holds.
    - ``max_retries``: 0..20 retries of a failing request; ``retry_delay``: first backoff, s.
    - Fills every part of the range the store lacks (before, between and after its candles) and
      only those; writes every page to ``store`` at once.
    - Drops candles still forming (open + timeframe > exchange server time) and candles outside
      the part being filled. Candles the exchange does not have stay missing and are reported,
      never invented; a later run asks for them again (one request per gap).

    Report keys: exchange, symbol, timeframe, start, end, resumed_from (first candle asked for
    when the store already held some of the range, else None), ranges (the parts fetched:
    ``[{start, end, candles, pages, added}]``, end None = up to now, candles = how many the part
    can hold), fetched (rows received), added (new candles stored), pages, dropped_forming,
    duplicates, invalid (rows with empty fields, dropped), gaps (what the store still lacks in the
    range afterwards: ``[{after, before, missing}]``, after/before the stored candles around the
    gap or None at the range's edges), missing (candles still missing in total), first, last
    (first/last candle written), retries, stopped (why the last part's paging stopped: ``end``,
    ``now`` or ``no-new-data``). A failure after some pages raises GruowError saying how far the
    store got.
    """
    if isinstance(max_retries, bool) or not isinstance(max_retries, (int, np.integer)) \
            or not 0 <= max_retries <= MAX_RETRIES:
        raise GruowError(f"--retries {max_retries} must be a whole number from 0 to {MAX_RETRIES}")
    if not (isinstance(retry_delay, (int, float)) and math.isfinite(retry_delay) and retry_delay >= 0):
        raise GruowError(f"retry_delay {retry_delay} must be 0 or more seconds")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, (int, np.integer)) or limit < 1):
        raise GruowError(f"--limit {limit} must be a positive number of candles per request")
    start_ts = parse_since(start, "--start")
    end_ts = parse_since(end, "--end") if end is not None else None
    check_range(start_ts, end_ts)
    tf_ms = timeframe_seconds(timeframe) * 1000

    if isinstance(exchange, str):
        ex = make_exchange(exchange, exchange_url)
    else:
        ex = exchange
        if exchange_url:
            _point_at(ex, exchange_url)
    call = _Retry(ex, int(max_retries), float(retry_delay))
    call(ex.load_markets)
    sym = normalize_symbol(ex, symbol)
    if getattr(ex, "timeframes", None) and timeframe not in ex.timeframes:
        raise GruowError(
            f"--timeframe {timeframe!r} is not offered by {ex.id}; use one of {', '.join(ex.timeframes)}"
        )
    max_limit = ((getattr(ex, "features", None) or {}).get("spot") or {}).get("fetchOHLCV", {}).get("limit")
    if limit is not None and max_limit and limit > max_limit:
        raise GruowError(f"--limit {limit} is more than {ex.id} answers per request; use 1 to {max_limit}")
    limit = int(limit) if limit is not None else max_limit
    server_ms = call(ex.fetch_time) if ex.has.get("fetchTime") else ex.milliseconds()
    start_ms = _ms(start_ts)
    end_ms = _ms(end_ts) if end_ts is not None else None

    held = store.open_times(ex.id, sym, timeframe, start_ts, end_ts) // 1_000_000
    anchor = int(held[0]) if len(held) else 0  # a time on the candle grid (epoch: whole minutes, ...)
    todo = _holes(held, start_ms, end_ms, tf_ms)
    if todo and todo[-1][1] is None and todo[-1][0] + tf_ms > server_ms:
        todo = todo[:-1]  # the candle after the store's last is not closed yet: nothing to ask for
    report: dict[str, Any] = {
        "exchange": ex.id, "symbol": sym, "timeframe": timeframe, "start": start_ts, "end": end_ts,
        "resumed_from": _ts(todo[0][0]) if todo and len(held) else None, "ranges": [], "fetched": 0,
        "added": 0, "pages": 0, "dropped_forming": 0, "duplicates": 0, "invalid": 0, "gaps": [],
        "missing": 0, "first": None, "last": None, "retries": 0, "stopped": "end",
    }
    if len(held):
        log.info("%s %s %s: the store holds %d candle(s) of the range; fetching %d missing part(s)",
                 ex.id, sym, timeframe, len(held), len(todo))
    # the end of the closed candles (exclusive) as the exchange's clock says at the start
    closed_end = server_ms - tf_ms + 1
    sizes = [_count(a, min(b, closed_end) if b is not None else closed_end, tf_ms, anchor) for a, b in todo]

    with _progress(progress) as bar:
        task = bar.add_task(f"{ex.id} {sym} {timeframe}", total=sum(sizes))
        try:
            for (a, b), size in zip(todo, sizes):
                part = {"start": _ts(a), "end": _ts(b), "candles": size, "pages": 0, "added": 0}
                report["ranges"].append(part)
                log.info("%s %s %s: fetching %s%s", ex.id, sym, timeframe, _ts(a).isoformat(),
                         f" -> {_ts(b).isoformat()} ({size} candle(s))" if b is not None else " -> now")
                server_ms, at_now = _fill(call, ex, sym, timeframe, store, a, b, tf_ms, limit, anchor,
                                          server_ms, report, part, lambda n: bar.update(task, advance=n))
                if at_now:  # candles after this one are still forming: later parts cannot exist
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
    _still_missing(report, store, ex.id, sym, timeframe, start_ms, end_ms, tf_ms, server_ms)
    log.info("%s %s %s: %d candles added in %d page(s) over %d part(s), %d forming dropped, %d missing",
             ex.id, sym, timeframe, report["added"], report["pages"], len(report["ranges"]),
             report["dropped_forming"], report["missing"])
    return report


def _fill(call, ex, sym: str, timeframe: str, store, a: int, b: int | None, tf_ms: int, limit: int | None,
          anchor: int, server_ms: int, report: dict, part: dict, advance) -> tuple[int, bool]:
    """Page through one missing part ``[a, b)`` (b None: up to now) into the store.

    Returns (the exchange clock as last read, whether paging stopped at a forming candle).
    """
    since = a
    while b is None or since < b:
        ask = limit
        if b is not None:  # never ask for candles the store already holds after this part
            left = max(1, _count(since, b, tf_ms, anchor))
            ask = left if ask is None else min(ask, left)
        rows = call(ex.fetch_ohlcv, sym, timeframe, since, ask)
        report["pages"] += 1
        part["pages"] += 1
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
        if b is not None and (page.index >= b).any():  # reached what the store holds (or the end)
            page, done = page[page.index < b], True
        forming = page.index + tf_ms > server_ms
        if forming.any():
            server_ms = call(ex.fetch_time) if ex.has.get("fetchTime") else ex.milliseconds()
            forming = page.index + tf_ms > server_ms
            if forming.any():
                report["dropped_forming"] += int(forming.sum())
                page = page[~forming]
                report["stopped"] = "now"
                if len(page):
                    _store_page(store, page, ex.id, sym, timeframe, report, part, advance)
                return server_ms, True
        if len(page) == 0:
            report["stopped"] = "end" if done else "no-new-data"
            return server_ms, False
        _store_page(store, page, ex.id, sym, timeframe, report, part, advance)
        since = int(page.index[-1]) + tf_ms
        report["stopped"] = "end"
        if done:
            break
    return server_ms, False


def _store_page(store, page: pd.DataFrame, exchange_id: str, sym: str, timeframe: str, report: dict,
                part: dict, advance) -> None:
    frame = make_candles(
        pd.DataFrame(page.to_numpy(), index=pd.to_datetime(page.index, unit="ms", utc=True),
                     columns=["open", "high", "low", "close", "volume"]),
        exchange=exchange_id, symbol=sym, timeframe=timeframe,
    )
    written = store.write(frame)
    added = _added(written, len(frame))
    report["added"] += added
    part["added"] += added
    if report["first"] is None:
        report["first"] = frame.index[0]
    report["last"] = frame.index[-1]
    advance(len(frame))
    log.debug("page %d: %d candles up to %s", report["pages"], len(frame), frame.index[-1])


def _still_missing(report: dict, store, exchange_id: str, sym: str, timeframe: str, start_ms: int,
                   end_ms: int | None, tf_ms: int, server_ms: int) -> None:
    """Fill ``report["gaps"]``/``["missing"]``: what the store lacks in the range after the download.

    The range ends at ``end`` or, before that, at the last candle closed on the exchange's clock.
    """
    bound = server_ms - tf_ms + 1
    if end_ms is not None:
        bound = min(bound, end_ms)
    if bound <= start_ms:
        return
    held = store.open_times(exchange_id, sym, timeframe, _ts(start_ms), _ts(bound)) // 1_000_000
    anchor = int(held[0]) if len(held) else 0
    for a, b in _holes(held, start_ms, bound, tf_ms):
        n = _count(a, b, tf_ms, anchor)
        if n == 0:
            continue
        after = _ts(a - tf_ms) if a != start_ms else None
        before = _ts(b) if b != bound else None
        report["gaps"].append({"after": after, "before": before, "missing": n})
    report["missing"] = sum(g["missing"] for g in report["gaps"])
    for g in report["gaps"][:5]:
        log.warning("still missing: %d %s candle(s) %s that %s did not send (kept as a gap; the next run asks "
                    "again)", g["missing"], timeframe, f"after {g['after'].isoformat()}" if g["after"] is not None
                    else f"from {_ts(start_ms).isoformat()}", exchange_id)
    if len(report["gaps"]) > 5:
        log.warning("... and %d more gap(s)", len(report["gaps"]) - 5)


def _page_frame(rows: list) -> pd.DataFrame:
    """ccxt OHLCV rows -> frame indexed by open time (ms), sorted, duplicates dropped (last kept)."""
    rows = [r for r in rows if r and r[0] is not None]
    if not rows:
        # float columns, as a full page has: an empty page must pass the same numeric checks
        return pd.DataFrame(np.empty((0, 5)), columns=["open", "high", "low", "close", "volume"],
                            index=pd.Index([], dtype="int64"))
    arr = np.asarray([[np.nan if x is None else x for x in r[:6]] for r in rows], dtype="float64")
    df = pd.DataFrame(arr[:, 1:], index=arr[:, 0].astype("int64"),
                      columns=["open", "high", "low", "close", "volume"])
    df = df[~df.index.duplicated(keep="last")]
    return df.sort_index()


def _added(written, default: int) -> int:
    """New candles from ``CandleStore.write``'s report (falls back to the page size)."""
    if isinstance(written, dict):
        for key in ("added", "new", "rows_added"):
            if key in written:
                return int(written[key])
    return default
