"""The paper trader's live candle feed: closed candles from an exchange through ccxt, with retries.

:class:`Retrier` calls ccxt methods and retries network trouble — ``NetworkError`` and its
subclasses ``RequestTimeout``, ``RateLimitExceeded`` (429), ``DDoSProtection``,
``ExchangeNotAvailable`` (5xx), dropped connections — with exponential backoff (at least the
server's ``Retry-After``), logging every retry. A live trader does not give up on an outage: it
keeps retrying, at most ``max_delay`` apart, until the call succeeds or a stop is requested
(``give_up_after`` bounds this at start-up only).
Other ccxt errors (bad symbol, authentication, ...) are not retried.

:meth:`LiveCandles.closed` returns the candles that are CLOSED on the exchange's clock:

- the server time is read FIRST, then the klines; a candle counts as closed only if
  ``open + timeframe <= server time`` — the forming candle is never used (reading the time after
  the klines could pass off a candle that was still forming when it was sent as closed);
- duplicated candles (same open time) are ignored; candles before ``since`` are dropped;
- a hole (a missing candle followed by later ones) is refetched ``gap_retries`` times, the
  answers merged; a candle still missing after that is recorded as a gap and the feed moves on
  (the strategy then sees the gap exactly as a backtest over gapped data would: the forecaster
  needs 128 gap-free candles, an order fills at the next candle that exists).
"""
from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from typing import Callable

log = logging.getLogger(__name__)


class StopRequested(Exception):
    """Raised inside a retry wait when the trader was asked to stop."""


def _ccxt():
    import ccxt

    return ccxt


def _short(exc: BaseException, n: int = 160) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= n else text[: n - 3] + "..."


@dataclass
class Retrier:
    """Retry ccxt calls on network trouble with exponential backoff (see the module docstring).

    ``base_delay * 2**k`` seconds before the k-th retry (k from 0), capped at ``max_delay``, and
    at least the ``Retry-After`` of a 429. ``max_attempts`` None = keep trying; ``give_up_after``
    seconds: re-raise rather than wait past that long since a call's first failure (None = never;
    the trader's start-up uses it to report an unreachable exchange at once). ``should_stop()``
    is checked while waiting (a stop raises :class:`StopRequested`). ``redact`` cleans error
    text before it is logged; ``on_retry()`` is called before each wait (the trader records its
    health there). ``counts`` tallies retries by error class; ``retries`` in total; ``consecutive``
    failures since the last success; ``last_error`` the last one's class and message.
    """

    exchange_id: str
    base_delay: float = 1.0
    max_delay: float = 60.0
    max_attempts: int | None = None
    give_up_after: float | None = None
    should_stop: Callable[[], bool] = lambda: False
    redact: Callable[[str], str] = lambda s: s
    on_retry: Callable[[], None] | None = None
    counts: dict = field(default_factory=dict)
    retries: int = 0
    last_error: str | None = None
    consecutive: int = 0

    def __call__(self, fn, *args, **kwargs):
        ccxt = _ccxt()
        attempt = 0
        first_failure = None
        while True:
            try:
                result = fn(*args, **kwargs)
                self.consecutive = 0
                return result
            except ccxt.NetworkError as exc:
                attempt += 1
                first_failure = time.monotonic() if first_failure is None else first_failure
                name = type(exc).__name__
                self.counts[name] = self.counts.get(name, 0) + 1
                self.retries += 1
                self.consecutive += 1
                self.last_error = self.redact(f"{name}: {_short(exc)}")
                if self.max_attempts is not None and attempt >= self.max_attempts:
                    raise
                wait = min(self.max_delay, self.base_delay * 2 ** min(attempt - 1, 30))
                if isinstance(exc, (ccxt.DDoSProtection, ccxt.RateLimitExceeded)):  # 429/418: honour Retry-After
                    wait = max(wait, min(self.max_delay, _retry_after(getattr(fn, "__self__", None))))
                if self.give_up_after is not None and time.monotonic() - first_failure + wait > self.give_up_after:
                    raise
                level = logging.WARNING if self.consecutive < 20 else logging.ERROR
                log.log(level, "%s: %s on %s (%s); retry %d in %.2f s", self.exchange_id, name,
                        getattr(fn, "__name__", "call"), self.redact(_short(exc, 100)), attempt, wait)
                if self.on_retry is not None:
                    self.on_retry()
                self._wait(wait)

    def _wait(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while True:
            if self.should_stop():
                raise StopRequested()
            left = end - time.monotonic()
            if left <= 0:
                return
            time.sleep(min(left, 0.1))


def _retry_after(ex) -> float:
    headers = getattr(ex, "last_response_headers", None) or {}
    try:
        return float(headers.get("Retry-After", 0) or 0)
    except (TypeError, ValueError, AttributeError):
        return 0.0


@dataclass
class FetchResult:
    """Closed candles after ``since``: ``candles`` [(ts_ms, o, h, l, c, v), ...] ascending; ``gaps``
    [(first missing ts, candles missing)]; counts of ``duplicates``, ``dropped_forming``,
    ``refetches`` (requests repeated because of a hole) and ``invalid`` rows."""

    candles: list[tuple] = field(default_factory=list)
    gaps: list[tuple[int, int]] = field(default_factory=list)
    duplicates: int = 0
    dropped_forming: int = 0
    refetches: int = 0
    invalid: int = 0
    requests: int = 0


class LiveCandles:
    """Closed candles of one market from a ccxt client (public endpoints only).

    ``exchange``: a ccxt client (e.g. ``data.make_exchange("binance", url=...)``), markets loaded;
    ``symbol``: its unified symbol; ``retry``: a :class:`Retrier`; ``page_limit``: candles per
    request (Binance: 1000); ``gap_retries``: refetches of a hole before it is recorded as a gap.
    """

    def __init__(self, exchange, symbol: str, timeframe: str, retry: Retrier, *, page_limit: int = 1000,
                 gap_retries: int = 3):
        from data import timeframe_seconds

        self.ex = exchange
        self.symbol = symbol
        self.timeframe = timeframe
        self.tf_ms = timeframe_seconds(timeframe) * 1000
        self.retry = retry
        self.page_limit = int(page_limit)
        self.gap_retries = int(gap_retries)

    def server_ms(self) -> int:
        """The exchange's clock in epoch ms (``fetch_time``; the local clock if it has none)."""
        if self.ex.has.get("fetchTime"):
            return int(self.retry(self.ex.fetch_time))
        return int(self.ex.milliseconds())

    def _page(self, since: int, now_ms: int, out: FetchResult) -> dict[int, tuple]:
        # ask for what can be closed (+ the forming one): a small limit is cheap on rate-limit weight
        limit = int(min(self.page_limit, max(2, (now_ms - since) // self.tf_ms + 1)))
        rows = self.retry(self.ex.fetch_ohlcv, self.symbol, self.timeframe, since, limit)
        out.requests += 1
        got: dict[int, tuple] = {}
        for r in rows or []:
            if not r or r[0] is None:
                out.invalid += 1
                continue
            ts = int(r[0])
            if ts < since:
                continue
            if ts + self.tf_ms > now_ms:
                out.dropped_forming += 1
                continue
            try:
                vals = tuple(float(x) for x in r[1:6])
            except (TypeError, ValueError):
                out.invalid += 1
                continue
            if len(vals) < 5 or not all(math.isfinite(v) for v in vals) or min(vals[:4]) <= 0:
                out.invalid += 1  # treated as missing: refetched, then a gap
                continue
            if ts in got:
                out.duplicates += 1
            got[ts] = (ts, *vals)
        return got

    def closed(self, since: int, now_ms: int) -> FetchResult:
        """All candles with ``since <= open`` that are closed at ``now_ms`` (server time read
        before this call), in order, paging as needed; see the module docstring for holes."""
        out = FetchResult()
        cursor = int(since)
        while True:
            got = self._page(cursor, now_ms, out)
            if not got:
                break
            tries = 0
            while self._holes(cursor, got) and tries < self.gap_retries:
                tries += 1
                out.refetches += 1
                log.info("%s %s: %d candle(s) missing after %s; refetching (%d/%d)", self.ex.id, self.symbol,
                         sum(m for _, m in self._holes(cursor, got)), _iso(cursor - self.tf_ms), tries,
                         self.gap_retries)
                more = self._page(cursor, now_ms, out)
                if more:
                    limit = max(got)  # merge only inside the span already seen (a page may end elsewhere)
                    got.update({t: c for t, c in more.items() if t <= limit})
            for first, missing in self._holes(cursor, got):
                out.gaps.append((first, missing))
                log.warning("%s %s: %d candle(s) from %s still missing after %d refetches; recorded as a gap",
                            self.ex.id, self.symbol, missing, _iso(first), self.gap_retries)
            page = [got[t] for t in sorted(got)]
            out.candles.extend(page)
            last = page[-1][0]
            cursor = last + self.tf_ms
            if cursor + self.tf_ms > now_ms:  # the next candle is not closed yet
                break
        return out

    def _holes(self, cursor: int, got: dict[int, tuple]) -> list[tuple[int, int]]:
        """[(first missing open, count)] between ``cursor`` and the last candle received."""
        holes = []
        expect = cursor
        for t in sorted(got):
            if t > expect:
                holes.append((expect, (t - expect) // self.tf_ms))
            expect = t + self.tf_ms
        return holes


def _iso(ms: int) -> str:
    import pandas as pd

    return pd.Timestamp(int(ms), unit="ms", tz="UTC").isoformat()
