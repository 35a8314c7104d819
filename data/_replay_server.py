"""A market-replay exchange: stored candles served over Binance's public spot REST API.

:class:`ReplayServer` is a small threaded HTTP server on 127.0.0.1 that answers the endpoints
ccxt's ``binance`` client calls for public market data, so the real ccxt client (pointed at it
with ``data.make_exchange("binance", url=server.url)``) downloads, polls and paper-trades against
stored history as if it were live::

    with ReplayServer(candles, start="2025-07-22T00:00Z", speed=60) as srv:
        ex = make_exchange("binance", url=srv.url)
        ex.fetch_ohlcv("ETH/USDC", "1m", limit=5)

Endpoints (paths under ``/api/v3``): ``ping``, ``time``, ``exchangeInfo`` (the replayed market
plus a handful of real spot symbols, so symbol suggestions can be exercised), ``klines``
(``symbol interval startTime endTime limit``; limit default 500, max 1000; rows in Binance's
12-field format with prices as strings), ``ticker/24hr`` and ``ticker/price``.

Time: a virtual clock ``clock = start + real_elapsed * speed``. A candle whose open + timeframe is
at or before the clock is final; the candle whose period contains the clock is returned as
still forming (its open, and its high/low/close/volume moved a fraction ``elapsed / timeframe`` of
the way from the open toward the stored values); later candles do not exist yet. ``speed=0`` is
the fixed-clock mode for tests (move it with :meth:`ReplayServer.set_clock`).

Faults (:class:`Faults`, spec ``"timeout=0.05,429=0.05,500=0.05,drop=0.05,missing=0.02,
duplicate=0.02,seed=1"``): each request draws once and may hang past the client's timeout, answer
429 with ``Retry-After``, answer a 5xx with an HTML body (as a CDN would), or drop the connection
without an answer; a kline answer of two or more rows may lose one candle or carry one twice.
``fail_after=K`` answers every kline request after the K-th successful one with 503 (an outage
mid-download). Every request is logged in :attr:`ReplayServer.requests`.
"""
from __future__ import annotations

import sys
import json
import logging
import random
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import numpy as np
import pandas as pd

from ._errors import GruowError
from ._schema import candles_meta
from ._time import timeframe_seconds, to_utc

log = logging.getLogger(__name__)

MAX_LIMIT = 1000  # Binance spot klines: at most 1000 rows per request
DEFAULT_LIMIT = 500

# Real Binance spot symbols listed beside the replayed one (base, quote).
_OTHER_MARKETS = [
    ("ETH", "USDT"), ("ETH", "USDC"), ("ETH", "BTC"), ("ETH", "FDUSD"), ("ETH", "EUR"),
    ("BTC", "USDT"), ("BTC", "USDC"), ("SOL", "USDT"), ("SOL", "USDC"), ("LINK", "ETH"),
    ("XRP", "USDT"), ("BNB", "USDT"),
]
_BINANCE_INTERVALS = {
    "1s", "1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "8h", "12h", "1d", "3d", "1w",
}
_5XX_BODY = "<html><head><title>{code} Server Error</title></head><body><h1>{code}</h1></body></html>"


@dataclass
class Faults:
    """Fault-injection rates, each a probability per request (0..1).

    ``timeout``: hang ``hang`` seconds before answering (past the client's timeout);
    ``http429``: answer 429 with ``Retry-After: retry_after``; ``http5xx``: ``{status: rate}``;
    ``drop``: close the connection without an answer; ``missing`` / ``duplicate``: remove one
    candle from, or repeat one candle in, a kline answer of two or more rows;
    ``fail_after``: after that many successful kline answers, every kline request gets 503.
    Draws come from ``random.Random(seed)``, so a run is reproducible for a given request order.
    """

    timeout: float = 0.0
    http429: float = 0.0
    http5xx: dict[int, float] = field(default_factory=dict)
    drop: float = 0.0
    missing: float = 0.0
    duplicate: float = 0.0
    seed: int | None = None
    hang: float = 15.0
    retry_after: float = 1.0
    fail_after: int | None = None

    @classmethod
    def parse(cls, spec: str | None) -> "Faults":
        """``"timeout=0.05,429=0.05,500=0.05,drop=0.05,missing=0.02,duplicate=0.02,seed=1"``.

        Extra keys: ``hang=SECONDS`` (default 15, past ccxt's default 10 s timeout),
        ``retry_after=SECONDS`` (default 1), ``fail_after=K``. Any 5xx status may be a key.
        """
        out = cls()
        if not spec or not spec.strip():
            return out
        for part in spec.split(","):
            part = part.strip()
            if not part:
                continue
            key, sep, value = part.partition("=")
            key = key.strip().lower()
            try:
                if not sep:
                    raise ValueError
                if key in ("seed", "fail_after"):
                    setattr(out, key, int(value))
                elif key in ("hang", "retry_after"):
                    setattr(out, key, float(value))
                else:
                    rate = float(value)
                    if not 0.0 <= rate <= 1.0:
                        raise ValueError
                    if key in ("timeout", "drop", "missing", "duplicate"):
                        setattr(out, key, rate)
                    elif key == "429":
                        out.http429 = rate
                    elif key.isdigit() and 500 <= int(key) <= 599:
                        out.http5xx[int(key)] = rate
                    else:
                        raise GruowError(
                            f"--faults: unknown fault {key!r}; use timeout, 429, 500..599, drop, "
                            "missing, duplicate, seed, hang, retry_after, fail_after"
                        )
            except ValueError:
                raise GruowError(
                    f"--faults: {part!r} must be KEY=VALUE with a rate between 0 and 1 "
                    "(seed/fail_after integers, hang/retry_after seconds)"
                ) from None
        if out.timeout + out.http429 + sum(out.http5xx.values()) + out.drop > 1.0:
            raise GruowError("--faults: timeout + 429 + 5xx + drop rates must add up to at most 1")
        return out

    @property
    def spec(self) -> str:
        """The spec string for these settings (rates that are zero left out)."""
        parts = [f"{k}={v:g}" for k, v in (("timeout", self.timeout), ("429", self.http429)) if v]
        parts += [f"{code}={r:g}" for code, r in sorted(self.http5xx.items()) if r]
        parts += [f"{k}={v:g}" for k, v in (("drop", self.drop), ("missing", self.missing),
                                             ("duplicate", self.duplicate)) if v]
        if self.fail_after is not None:
            parts.append(f"fail_after={self.fail_after}")
        if self.seed is not None:
            parts.append(f"seed={self.seed}")
        defaults = Faults()
        parts += [f"{k}={getattr(self, k):g}" for k in ("hang", "retry_after")
                  if getattr(self, k) != getattr(defaults, k)]
        return ",".join(parts)

    @property
    def any(self) -> bool:
        return bool(
            self.timeout or self.http429 or any(self.http5xx.values()) or self.drop
            or self.missing or self.duplicate or self.fail_after is not None
        )


def _iso(ms) -> str:
    return pd.Timestamp(int(ms), unit="ms", tz="UTC").isoformat()


def _num(x: float) -> str:
    # shortest decimal string that reads back to the same float, never in exponent form
    return np.format_float_positional(float(x), trim="-")


class ReplayServer:
    """Serve ``candles`` (candle schema) as a Binance-compatible exchange on 127.0.0.1.

    ``symbol``: the unified symbol the candles are served as (market id without the slash,
    ``ETH/USDC`` -> ``ETHUSDC``). ``start``: the virtual clock at :meth:`start` (default: the first
    open plus up to 1000 candles, i.e. one full page of closed history). ``speed``: virtual
    seconds per real second (0 = fixed clock). ``faults``: a :class:`Faults` or its spec string.
    ``port``: 0 picks a free port. Use as a context manager or call :meth:`start` / :meth:`stop`.
    """

    def __init__(
        self,
        candles: pd.DataFrame,
        *,
        symbol: str = "ETH/USDC",
        start=None,
        speed: float = 60.0,
        faults: Faults | str | None = None,
        port: int = 0,
    ) -> None:
        if len(candles) == 0:
            raise GruowError("replay server: no candles to serve")
        if "/" not in symbol:
            raise GruowError(f"--symbol {symbol!r} must look like BASE/QUOTE, e.g. ETH/USDC")
        if speed < 0:
            raise GruowError(f"--speed {speed} must be 0 (fixed clock) or positive")
        self.symbol = symbol
        self.market_id = symbol.replace("/", "").upper()
        self.timeframe = candles_meta(candles)["timeframe"]
        self.tf_ms = timeframe_seconds(self.timeframe) * 1000
        self._t = candles.index.asi8 // 1_000_000  # open times, epoch ms
        self._ohlcv = candles[["open", "high", "low", "close", "volume"]].to_numpy(dtype="float64")
        if start is None:
            start_ms = int(self._t[min(len(self._t), MAX_LIMIT) - 1]) + self.tf_ms
        else:
            start_ms = to_utc(start, "--start").value // 1_000_000
        self.speed = float(speed)
        self.faults = faults if isinstance(faults, Faults) else Faults.parse(faults)
        self.requests: list[dict] = []
        self.fault_counts: dict[str, int] = {}
        self._lock = threading.Lock()
        self._rng = random.Random(self.faults.seed)
        self._kline_ok = 0
        self._anchor_virtual_ms = start_ms
        self._anchor_real = time.monotonic()
        self._port = port
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ---- life cycle -------------------------------------------------------------------------
    def start(self) -> "ReplayServer":
        """Bind 127.0.0.1:port, start serving in a background thread, start the clock."""
        if self._httpd is not None:
            return self
        handler = type("_Handler", (_Handler,), {"replay": self})
        try:
            self._httpd = _QuietServer(("127.0.0.1", self._port), handler)
        except OSError as exc:
            raise GruowError(f"--port {self._port}: cannot listen on 127.0.0.1 ({exc.strerror})") from None
        self._httpd.daemon_threads = True
        self._httpd.block_on_close = False
        with self._lock:
            self._anchor_real = time.monotonic()
        # a short poll interval makes stop() quick (tests start and stop many servers)
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="replay-server", daemon=True)
        self._thread.start()
        log.info(
            "replay server: %s %s, %d candles %s -> %s, clock %s, speed %gx%s; use --exchange-url %s",
            self.symbol, self.timeframe, len(self._t), _iso(self._t[0]), _iso(self._t[-1]),
            self.clock.isoformat(), self.speed, f", faults {self.faults.spec}" if self.faults.any else "",
            self.url,
        )
        return self

    def stop(self) -> None:
        """Stop serving and free the port (hung fault-injected answers are abandoned)."""
        if self._httpd is None:
            return
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)
        self._httpd = None
        self._thread = None

    def serve_forever(self) -> None:
        """Start and block until KeyboardInterrupt (the CLI's mode), then stop."""
        self.start()
        try:
            while True:
                time.sleep(3600)
        finally:
            self.stop()

    def __enter__(self) -> "ReplayServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("replay server is not started")
        return self._httpd.server_address[1]

    @property
    def url(self) -> str:
        """Base URL for ``make_exchange(..., url=...)`` / ``--exchange-url``."""
        return f"http://127.0.0.1:{self.port}"

    # ---- clock ------------------------------------------------------------------------------
    def clock_ms(self) -> int:
        """The virtual clock, epoch milliseconds."""
        with self._lock:
            elapsed = time.monotonic() - self._anchor_real
            return int(self._anchor_virtual_ms + elapsed * self.speed * 1000)

    @property
    def clock(self) -> pd.Timestamp:
        return pd.Timestamp(self.clock_ms(), unit="ms", tz="UTC")

    def set_clock(self, ts) -> None:
        """Set the virtual clock to ``ts`` now (it runs on from there at ``speed``)."""
        ms = to_utc(ts, "clock").value // 1_000_000
        with self._lock:
            self._anchor_virtual_ms = ms
            self._anchor_real = time.monotonic()

    # ---- request log ------------------------------------------------------------------------
    @property
    def kline_requests(self) -> int:
        """How many kline requests arrived (answered or faulted)."""
        with self._lock:
            return sum(1 for r in self.requests if r["endpoint"] == "klines")

    def _log(self, entry: dict) -> None:
        with self._lock:
            self.requests.append(entry)
            if entry.get("fault"):
                self.fault_counts[entry["fault"]] = self.fault_counts.get(entry["fault"], 0) + 1

    # ---- market data ------------------------------------------------------------------------
    def _rows(self, lo: int, hi: int, now_ms: int) -> list[list]:
        """Kline rows for candle indices [lo, hi); the one containing ``now_ms`` is forming."""
        rows = []
        for i in range(lo, hi):
            t = int(self._t[i])
            o, h, l, c, v = self._ohlcv[i]
            frac = (now_ms - t) / self.tf_ms
            if frac < 1.0:  # forming: move a fraction of the way from the open
                h, l, c, v = (round(x, 8) for x in (o + frac * (h - o), o + frac * (l - o),
                                                    o + frac * (c - o), frac * v))
            quote = v * (o + h + l + c) / 4.0
            rows.append([
                t, _num(o), _num(h), _num(l), _num(c), _num(v), t + self.tf_ms - 1,
                _num(round(quote, 8)), max(1, int(v * 10)), _num(round(v / 2, 8)),
                _num(round(quote / 2, 8)), "0",
            ])
        return rows

    def klines(self, params: dict, now_ms: int) -> tuple[int, object]:
        """Binance ``GET /api/v3/klines`` semantics on the virtual clock: (status, body)."""
        symbol, interval = params.get("symbol"), params.get("interval")
        for name, value in (("symbol", symbol), ("interval", interval)):
            if not value:
                return 400, {"code": -1102, "msg": f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed."}
        if symbol.upper() not in self._market_ids():
            return 400, {"code": -1121, "msg": "Invalid symbol."}
        if interval not in _BINANCE_INTERVALS:
            return 400, {"code": -1120, "msg": "Invalid interval."}
        try:
            limit = int(params.get("limit", DEFAULT_LIMIT))
            start = int(params["startTime"]) if "startTime" in params else None
            end = int(params["endTime"]) if "endTime" in params else None
        except ValueError:
            return 400, {"code": -1100, "msg": "Illegal characters found in a parameter."}
        if not 1 <= limit <= MAX_LIMIT:
            return 400, {"code": -1130, "msg": "Data sent for parameter 'limit' is not valid."}
        if symbol.upper() != self.market_id:
            return 200, []  # a listed market without replay data
        if interval != self.timeframe:
            # only the stored timeframe is replayed; say so rather than invent candles
            return 400, {"code": -1120, "msg": f"Invalid interval: this replay serves {self.timeframe} only."}
        # candles that exist on the virtual clock: open <= now (the last may be forming)
        upto = now_ms if end is None else min(end, now_ms)
        hi = int(np.searchsorted(self._t, upto, side="right"))
        if start is not None:
            lo = int(np.searchsorted(self._t, start, side="left"))
            hi = min(hi, lo + limit)
        else:
            lo = max(0, hi - limit)
        end_ms = int(self._t[-1]) + self.tf_ms
        if now_ms >= end_ms + self.tf_ms and not getattr(self, "_end_logged", False):
            self._end_logged = True  # once: past the data the clock runs on, but no candle comes
            log.warning("end of data at %s: the replay has no candles after it; answering [] from now on",
                        _iso(end_ms))
        return 200, self._rows(lo, max(lo, hi), now_ms)

    def ticker_24hr(self, symbol: str, now_ms: int) -> dict:
        lo = int(np.searchsorted(self._t, now_ms - 86_400_000, side="right"))
        hi = int(np.searchsorted(self._t, now_ms, side="right"))
        rows = self._rows(lo, hi, now_ms) if hi > lo else []
        if rows:
            first, last = rows[0], rows[-1]
            o, c = float(first[1]), float(last[4])
            high = max(float(r[2]) for r in rows)
            low = min(float(r[3]) for r in rows)
            vol = sum(float(r[5]) for r in rows)
            qvol = sum(float(r[7]) for r in rows)
        else:
            o = c = high = low = vol = qvol = 0.0
        return {
            "symbol": symbol, "priceChange": _num(c - o),
            "priceChangePercent": _num(round((c / o - 1) * 100, 3) if o else 0.0),
            "weightedAvgPrice": _num(round(qvol / vol, 8) if vol else c),
            "prevClosePrice": _num(o), "lastPrice": _num(c), "lastQty": "0.0001",
            "bidPrice": _num(c), "bidQty": "1", "askPrice": _num(c), "askQty": "1",
            "openPrice": _num(o), "highPrice": _num(high), "lowPrice": _num(low),
            "volume": _num(round(vol, 8)), "quoteVolume": _num(round(qvol, 8)),
            "openTime": now_ms - 86_400_000, "closeTime": now_ms,
            "firstId": 1, "lastId": max(1, len(rows)), "count": len(rows),
        }

    def _market_ids(self) -> dict[str, tuple[str, str]]:
        base, quote = self.symbol.upper().split("/", 1)
        ids = {f"{b}{q}": (b, q) for b, q in _OTHER_MARKETS}
        ids[self.market_id] = (base, quote)
        return ids

    def exchange_info(self, now_ms: int, only: str | None = None) -> dict:
        symbols = []
        for mid, (base, quote) in self._market_ids().items():
            if only and mid != only.upper():
                continue
            symbols.append({
                "symbol": mid, "status": "TRADING", "baseAsset": base, "baseAssetPrecision": 8,
                "quoteAsset": quote, "quotePrecision": 8, "quoteAssetPrecision": 8,
                "baseCommissionPrecision": 8, "quoteCommissionPrecision": 8,
                "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET", "STOP_LOSS_LIMIT", "TAKE_PROFIT_LIMIT"],
                "icebergAllowed": True, "ocoAllowed": True, "quoteOrderQtyMarketAllowed": True,
                "allowTrailingStop": True, "cancelReplaceAllowed": True,
                "isSpotTradingAllowed": True, "isMarginTradingAllowed": False,
                "filters": [
                    {"filterType": "PRICE_FILTER", "minPrice": "0.01000000", "maxPrice": "1000000.00000000", "tickSize": "0.01000000"},
                    {"filterType": "LOT_SIZE", "minQty": "0.00010000", "maxQty": "9000.00000000", "stepSize": "0.00010000"},
                    {"filterType": "NOTIONAL", "minNotional": "5.00000000", "applyMinToMarket": True,
                     "maxNotional": "9000000.00000000", "applyMaxToMarket": False, "avgPriceMins": 5},
                ],
                "permissions": [], "permissionSets": [["SPOT"]],
                "defaultSelfTradePreventionMode": "EXPIRE_MAKER",
                "allowedSelfTradePreventionModes": ["EXPIRE_TAKER", "EXPIRE_MAKER", "EXPIRE_BOTH"],
            })
        return {
            "timezone": "UTC", "serverTime": now_ms,
            "rateLimits": [
                {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 6000},
                {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 100},
                {"rateLimitType": "RAW_REQUESTS", "interval": "MINUTE", "intervalNum": 5, "limit": 61000},
            ],
            "exchangeFilters": [], "symbols": symbols,
        }

    # ---- faults -----------------------------------------------------------------------------
    def _draw_fault(self, endpoint: str) -> str | None:
        f = self.faults
        with self._lock:
            if endpoint == "klines" and f.fail_after is not None and self._kline_ok >= f.fail_after:
                return "outage"
            u = self._rng.random()
        for name, rate in (("timeout", f.timeout), ("429", f.http429),
                           *((str(code), r) for code, r in sorted(f.http5xx.items())), ("drop", f.drop)):
            if u < rate:
                return name
            u -= rate
        return None

    def _mangle(self, rows: list[list]) -> tuple[list[list], str | None]:
        """Maybe drop or repeat one candle of a kline answer (fault injection)."""
        f = self.faults
        if len(rows) < 2 or not (f.missing or f.duplicate):
            return rows, None
        with self._lock:
            u, pos = self._rng.random(), self._rng.randrange(len(rows))
        if u < f.missing:
            return rows[:pos] + rows[pos + 1:], "missing"
        if u < f.missing + f.duplicate:
            return rows[:pos + 1] + rows[pos:], "duplicate"
        return rows, None

    def handle(self, path: str, params: dict) -> tuple[int, object, dict, str | None]:
        """Answer one request: (status, body (JSON-able or text), extra headers, fault name)."""
        now_ms = self.clock_ms()
        endpoint = path.rsplit("/api/v3/", 1)[-1] if "/api/v3/" in path else path
        fault = self._draw_fault(endpoint)
        if fault == "outage":
            return 503, _5XX_BODY.format(code=503), {}, fault
        if fault in ("timeout", "drop"):
            return 0, None, {}, fault
        if fault == "429":
            body = {"code": -1003, "msg": "Too many requests; current limit of IP is 6000 requests per minute."}
            return 429, body, {"Retry-After": _num(self.faults.retry_after)}, fault
        if fault is not None:
            return int(fault), _5XX_BODY.format(code=fault), {}, fault
        if endpoint == "ping":
            return 200, {}, {}, None
        if endpoint == "time":
            return 200, {"serverTime": now_ms}, {}, None
        if endpoint == "exchangeInfo":
            return 200, self.exchange_info(now_ms, params.get("symbol")), {}, None
        if endpoint == "klines":
            status, body = self.klines(params, now_ms)
            if status == 200:
                body, fault = self._mangle(body)
                with self._lock:
                    self._kline_ok += 1
            return status, body, {}, fault
        if endpoint in ("ticker/24hr", "ticker/price"):
            symbol = (params.get("symbol") or self.market_id).upper()
            if symbol not in self._market_ids():
                return 400, {"code": -1121, "msg": "Invalid symbol."}, {}, None
            ticker = self.ticker_24hr(symbol, now_ms) if symbol == self.market_id else self._empty_ticker(symbol, now_ms)
            if endpoint == "ticker/price":
                return 200, {"symbol": symbol, "price": ticker["lastPrice"]}, {}, None
            return 200, ticker, {}, None
        return 404, {"code": -1, "msg": f"replay server: no endpoint {path}"}, {}, None

    def _empty_ticker(self, symbol: str, now_ms: int) -> dict:
        t = self.ticker_24hr(symbol, 0)
        t["openTime"], t["closeTime"] = now_ms - 86_400_000, now_ms
        return t


class _QuietServer(ThreadingHTTPServer):
    """A client that hangs up mid-answer (a killed paper trader, a timed-out request) is normal
    here: log it at DEBUG instead of printing socketserver's traceback."""

    daemon_threads = True

    def handle_error(self, request, client_address):
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, TimeoutError)):
            log.debug("client %s went away: %s", client_address, exc)
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as ccxt's requests session expects
    # headers and body go out in two writes: with Nagle on, each answer on a kept-alive
    # connection waits ~40 ms for the client's delayed ACK
    disable_nagle_algorithm = True
    replay: ReplayServer  # set on the subclass made in ReplayServer.start

    def do_GET(self) -> None:  # noqa: N802 (http.server naming)
        parts = urlsplit(self.path)
        params = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        srv = self.replay
        status, body, headers, fault = srv.handle(parts.path, params)
        srv._log({
            "t": time.monotonic(), "path": parts.path,
            "endpoint": parts.path.rsplit("/api/v3/", 1)[-1], "params": params,
            "status": status, "fault": fault, "clock_ms": srv.clock_ms(),
        })
        if fault is not None:
            log.debug("fault %s on %s %s", fault, parts.path, params)
        if fault == "timeout":
            time.sleep(srv.faults.hang)  # the client gives up first; then answer into the void
            status, body, headers, _ = 503, _5XX_BODY.format(code=503), {}, None
        if fault == "drop":
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        if isinstance(body, str):
            payload, ctype = body.encode(), "text/html"
        else:
            payload, ctype = json.dumps(body, separators=(",", ":")).encode(), "application/json;charset=UTF-8"
        try:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(payload)))
            for k, v in headers.items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def log_message(self, format: str, *args) -> None:  # noqa: A002 (http.server signature)
        log.debug("%s %s", self.address_string(), format % args)
