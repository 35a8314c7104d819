"""Paper trading: the backtest's strategy, live, on an exchange's closed candles, with simulated fills.

``run_paper(home, "eth", PaperSettings(model=..., ...), exchange_url=...)`` runs a session whose
state lives in ``HOME/paper/<NAME>/`` (``state.sqlite``, ``paper.log``, and the exported
``trades.csv`` / ``equity.csv``). What it does, candle by candle:

1. **Bootstrap** (first start only): the last ``128 + 7`` closed candles, from the candle store
   (``HOME/data``) first, then the exchange. The rules decide at the close of the last of them
   (call it ``B``), exactly as a backtest whose range starts at ``B + 1 candle`` does with its
   128 warm-up candles; the session's first processed candle is ``B + 1``.
2. **Each poll**: the exchange's time, then every candle closed since the last processed one
   (:class:`backtests._paper_feed.LiveCandles`: never a forming candle; duplicates ignored; a
   hole refetched, then recorded as a gap). Candles missed while the trader was down are caught
   up in order, each decided as if live (the documented policy: a restart replays what it
   missed, so the session equals an uninterrupted one).
3. **Each candle** (``strategies.BarRunner``, the backtest benchmark's own runner): the order
   decided at the previous close fills at this candle's OPEN with the backtest's fee, slippage and
   backtrader-identical arithmetic; then the same rules object the backtest uses
   (``GRURules.decide``) decides at the CLOSE from the forecast of the 128 candles ending here.
   Forecasts of a catch-up are computed in one batch; at least 8 windows go through the model per
   call, because torch computes a lone window along another code path whose last bits differ from
   the backtest's batch (with two or more, a window's forecast has the same bits in any batch).
4. **One SQLite transaction** per candle stores the candle, its fills, equity, the account, the
   rules' trade state, the pending order, the kill switch and the buy-and-hold benchmark
   (``backtests._paper_state``). A ``kill -9`` at any moment loses at most the candle in progress,
   which the restart processes again: no fill lost, none duplicated.

**Kill switch**: when equity falls ``max_drawdown`` below its peak (since the start), or
``daily_loss_limit`` below the equity at the start of the UTC day, the position is closed at the
next open and no new entry is made — for good after a drawdown trip, until the next UTC day after
a daily-loss trip. Both are fractions (defaults 0.25 and 0.10); None disables them. The backtest
has no kill switch: a session equals a backtest only while the switch has not tripped.

**Starting**: until the first poll succeeds, an exchange that does not answer for ``STARTUP_S``
seconds is an error ("cannot reach ..."); a failed first start removes the session folder (it
holds nothing yet). Once running, the trader retries patiently. Resuming with another
``exchange_url`` is allowed (it is where candles come from, not part of the session's settings)
and logged as a WARNING naming both hosts. When the exchange's clock runs on but no new candle
comes (e.g. past a replay's end), the trader logs "no new candles from the exchange for N
minute(s)" (1, 2, 4, 8 ... minutes) and its health reports ``no_new_candles_min``. Per-candle
progress is logged at DEBUG, with one INFO summary at most per minute or 1000 candles.

**Stopping**: ``request_stop`` (``gruow paper stop``) writes a stop file; SIGTERM/SIGINT set the
same flag. The trader finishes the candle in progress, exports ``trades.csv``/``equity.csv`` and
exits. A second SIGINT aborts at once (the open transaction is rolled back).

**Keys**: ``sandbox=True`` uses the exchange's testnet (ccxt's sandbox mode) with keys from the
environment (``GRUOW_API_KEY``, ``GRUOW_API_SECRET``, ``GRUOW_API_PASSWORD``). Fills stay simulated;
the keys are only used to check the testnet account once. They are never stored, printed or logged:
while a session runs, every log handler masks them (ccxt logs request headers at DEBUG).
"""
from __future__ import annotations

import contextlib
import fcntl
import shutil
import logging
import math
import os
import signal
import threading
import time
from collections import deque
from dataclasses import asdict, dataclass, fields, replace
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from data import GruowError, make_candles, timeframe_seconds
from strategies import BarRunner, BuyHoldParams, Intent, TradeState, make_rules, params_dict

from ._paper_feed import LiveCandles, Retrier, StopRequested
from ._paper_state import LOCK_FILE, LOG_FILE, STATE_FILE, STOP_FILE, PaperState, lock_pid, ms_to_ts, session_dir
from ._runner import WARMUP

log = logging.getLogger(__name__)

MIN_WINDOWS = 8  # windows per model call (see the module docstring)
BOOTSTRAP = WARMUP + MIN_WINDOWS - 1
CHUNK = 512  # candles per forecast batch during a catch-up
SECRET_ENV = {"apiKey": "GRUOW_API_KEY", "secret": "GRUOW_API_SECRET", "password": "GRUOW_API_PASSWORD"}
_DAY_MS = 86_400_000
STARTUP_S = 5.0  # seconds of failed requests before a session's first poll gives up on an unreachable exchange
SUMMARY_S, SUMMARY_N = 60.0, 1000  # at most one INFO "processed" line per minute or per this many candles


# ---------------------------------------------------------------------------------------- settings
@dataclass(frozen=True)
class PaperSettings:
    """What a session IS; fixed at its first start (a restart must not change it).

    ``model``: checkpoint path (needed for ``strategy="gru"``); ``params``: the strategy's
    parameters (dict or None = defaults); ``cash`` quote currency; ``fee`` fraction per fill;
    ``slippage_bps`` basis points against each fill; ``max_drawdown`` / ``daily_loss_limit``
    fractions for the kill switch (None = off); ``sandbox``: the exchange's testnet.
    """

    exchange: str = "binance"
    symbol: str = "ETH/USDC"
    timeframe: str = "1m"
    strategy: str = "gru"
    model: str | None = None
    params: dict | None = None
    cash: float = 10_000.0
    fee: float = 0.001
    slippage_bps: float = 0.0
    max_drawdown: float | None = 0.25
    daily_loss_limit: float | None = 0.10
    sandbox: bool = False

    def check(self) -> "PaperSettings":
        """Validated copy with ``params`` resolved to the rules' full parameter dict."""
        if not (self.cash > 0 and math.isfinite(self.cash)):
            raise GruowError(f"--cash {self.cash} must be a positive amount of quote currency")
        timeframe_seconds(self.timeframe)
        for opt, v in (("--max-drawdown", self.max_drawdown), ("--daily-loss-limit", self.daily_loss_limit)):
            if v is not None and not (0.0 < v < 1.0):
                raise GruowError(f"{opt} {v} must be a fraction in (0, 1) (0.2 = 20 %), or off")
        if self.strategy == "gru" and not self.model:
            raise GruowError("--strategy gru needs a model: pass --model NAME (see `gruow train`)")
        rules = make_rules(self.strategy, self.params, fee=self.fee, slippage_bps=self.slippage_bps)
        model = str(Path(self.model).expanduser().resolve()) if self.model else None
        return replace(self, params=params_dict(rules), model=model)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "PaperSettings":
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


def resolve_settings(stored: dict | None, given: dict, *, explicit: bool = False) -> PaperSettings:
    """Settings of a session from the ``given`` fields.

    ``explicit=False`` (the CLI): a None field was not given — a new session takes the default, an
    existing one its stored value. ``explicit=True`` (a whole :class:`PaperSettings`): every field
    counts, None included. A kill-switch limit of 0 means off (None). For an existing session every
    given field must equal the stored one (a session's settings are fixed at its first start).
    """
    if not explicit:
        given = {k: v for k, v in given.items() if v is not None}
    for key in ("max_drawdown", "daily_loss_limit"):
        if key in given and given[key] == 0:
            given[key] = None
    if stored is None:
        return PaperSettings(**given).check()
    base = PaperSettings.from_dict(stored)
    if "params" in given:
        extra = {k: v for k, v in (given["params"] or {}).items() if v is not None}
        merged = extra if explicit else {**(base.params or {}), **extra}
        given["params"] = params_dict(make_rules(base.strategy, merged, fee=base.fee, slippage_bps=base.slippage_bps))
    for key, value in given.items():
        have = getattr(base, key)
        if key == "model" and value is not None:
            value = str(Path(value).expanduser().resolve())  # the file's content is checked by hash at load
        if _differs(have, value):
            raise GruowError(
                f"--{key.replace('_', '-')} {value!r} differs from this session's {have!r}; a session's settings are "
                "fixed at its first start: leave the option out to resume, or start a new --state NAME"
            )
    return base


def _differs(a, b) -> bool:
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() != b.keys() or any(_differs(a[k], b[k]) for k in a)
    if isinstance(a, float) or isinstance(b, float):
        try:
            return not (float(a) == float(b) or (math.isnan(float(a)) and math.isnan(float(b))))
        except (TypeError, ValueError):
            return True
    return a != b


# ---------------------------------------------------------------------------------------- kill switch
@dataclass
class KillSwitch:
    """Stops entries and closes the position on a drawdown or a daily loss (fractions; None = off).

    :meth:`update` runs at every candle close with the marked equity. ``peak`` is the highest
    equity since the start (starting cash included); ``day_start`` the equity at the close of the
    previous UTC day's last candle (the starting cash on the first day). A drawdown trip halts for
    good; a daily-loss trip until the first candle of the next UTC day.
    """

    max_drawdown: float | None
    daily_loss_limit: float | None
    peak: float
    day_start: float
    last_equity: float
    day: int | None = None
    halted: str | None = None
    halt_until: int | None = None  # ms; None with ``halted`` = for good

    def active(self, ts: int) -> bool:
        """Whether trading is halted for the candle opening at ``ts`` (clears an expired daily halt)."""
        if self.halted and self.halt_until is not None and ts >= self.halt_until:
            log.warning("kill switch: the daily loss halt ends at %s; trading resumes", ms_to_ts(ts).isoformat())
            self.halted, self.halt_until = None, None
        return self.halted is not None

    def update(self, ts: int, equity: float) -> dict | None:
        """Account for the close of the candle opening at ``ts``; returns a trip's details or None."""
        day = ts // _DAY_MS
        if day != self.day:
            if self.day is not None:
                self.day_start = self.last_equity
            self.day = day
        self.last_equity = equity
        self.peak = max(self.peak, equity)
        if self.halted == "max_drawdown":
            return None
        drawdown = equity / self.peak - 1.0
        if self.max_drawdown is not None and drawdown <= -self.max_drawdown:
            self.halted, self.halt_until = "max_drawdown", None
            return {"reason": "max_drawdown", "equity": equity, "peak": self.peak, "drawdown": drawdown,
                    "limit": self.max_drawdown}
        day_loss = equity / self.day_start - 1.0
        if self.halted is None and self.daily_loss_limit is not None and day_loss <= -self.daily_loss_limit:
            self.halted, self.halt_until = "daily_loss", (day + 1) * _DAY_MS
            return {"reason": "daily_loss", "equity": equity, "day_start": self.day_start, "loss": day_loss,
                    "limit": self.daily_loss_limit, "until": ms_to_ts(self.halt_until).isoformat()}
        return None


# ---------------------------------------------------------------------------------------- secrets
def env_secrets() -> dict:
    """ccxt credential fields from the environment (``GRUOW_API_KEY`` ...), empty ones left out."""
    return {k: os.environ[v] for k, v in SECRET_ENV.items() if os.environ.get(v)}


class RedactFilter(logging.Filter):
    """A handler filter that replaces every occurrence of the given secrets by ``***``."""

    def __init__(self, secrets) -> None:
        super().__init__()
        self.secrets = sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True)

    def redact(self, text: str) -> str:
        for s in self.secrets:
            text = text.replace(s, "***")
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.secrets:
            return True
        try:
            msg = record.getMessage()
        except Exception:  # a broken format string: keep the raw parts, masked
            msg = f"{record.msg} {record.args}"
        record.msg, record.args = self.redact(msg), ()
        if record.exc_info:
            record.exc_text = self.redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        return True


# ---------------------------------------------------------------------------------------- runner state
def _runner_blob(r: BarRunner) -> dict:
    b = r.broker
    return {
        "cash": b.cash, "position": b.position, "entry_price": b.entry_price, "state": asdict(r.state),
        "pending": None if r.pending is None else {"intent": asdict(r.pending[0]), "created": r.pending[1]},
        "rejected": r.rejected,
    }


def _runner_from(rules, cash0: float, blob: dict | None) -> BarRunner:
    r = BarRunner(rules, cash0)
    if blob is not None:
        r.broker.cash = blob["cash"]
        r.broker.position = blob["position"]
        r.broker.entry_price = blob["entry_price"]
        r.state = TradeState(**blob["state"])
        p = blob["pending"]
        r.pending = None if p is None else (Intent(**p["intent"]), p["created"])
        r.rejected = int(blob["rejected"])
    return r


# ---------------------------------------------------------------------------------------- the trader
class PaperTrader:
    """One paper-trading session; see the module docstring. Build it and call :meth:`run`.

    ``folder``: the session folder (``HOME/paper/<NAME>``); ``settings``: resolved with
    :func:`resolve_settings`; ``data_dir``: the candle store (``HOME/data``) used first at
    bootstrap; ``exchange_url``: send every request to this host (e.g. a ``data.ReplayServer``);
    ``max_candles``: stop when the session has processed this many candles (counted across
    restarts); ``poll_interval``: seconds between polls (None = until the next candle should have
    closed, by the exchange's clock); ``retry_delay``/``max_retry_delay``: backoff of retries;
    ``timeout_ms``: per-request timeout; ``rate_limit_ms``: ccxt's minimum spacing of requests
    (default: the exchange's own; a local replay server needs none); ``progress``: a progress bar
    on long catch-ups.
    """

    def __init__(
        self,
        folder: str | os.PathLike,
        settings: PaperSettings,
        *,
        data_dir: str | os.PathLike | None = None,
        exchange_url: str | None = None,
        max_candles: int | None = None,
        poll_interval: float | None = None,
        retry_delay: float = 1.0,
        max_retry_delay: float = 60.0,
        timeout_ms: int = 10_000,
        rate_limit_ms: float | None = None,
        gap_retries: int = 3,
        progress: bool = False,
        name: str | None = None,
    ) -> None:
        if max_candles is not None and int(max_candles) < 1:
            raise GruowError(f"--max-candles {max_candles} must be a positive number of candles")
        if poll_interval is not None and not poll_interval > 0:
            raise GruowError(f"--poll-interval {poll_interval} must be a positive number of seconds")
        if rate_limit_ms is not None and not 0 <= rate_limit_ms <= 60_000:
            raise GruowError(f"--rate-limit-ms {rate_limit_ms} must be between 0 and 60000 milliseconds")
        self.folder = Path(folder)
        self.name = name or self.folder.name
        self.s = settings
        self.data_dir = Path(data_dir) if data_dir is not None else None
        self.exchange_url = exchange_url
        self.max_candles = int(max_candles) if max_candles is not None else None
        self.poll_interval = poll_interval
        self.retry_delay, self.max_retry_delay = float(retry_delay), float(max_retry_delay)
        self.timeout_ms = int(timeout_ms)
        self.rate_limit_ms = rate_limit_ms
        self.gap_retries = int(gap_retries)
        self.progress = progress
        self.tf_ms = timeframe_seconds(settings.timeframe) * 1000
        self.stop_reason: str | None = None
        self._secrets = env_secrets() if settings.sandbox else {}
        self._redact = RedactFilter(self._secrets.values())
        self._clock0: tuple[float, int] | None = None
        self._clock_rate = 1.0
        self._clock_known = False  # until measured, poll quickly (a replay server may run 600x)
        self._info_at: tuple[float, int] | None = None  # (monotonic, processed) of the last INFO summary
        self._stale_ms: int | None = None  # exchange time without a new candle past the last one's close
        self._stale_logged = 0

    # ---- public -------------------------------------------------------------------------------
    def run(self) -> dict:
        """Run until stopped, ``max_candles`` reached, or a fatal error; returns :func:`paper_status`."""
        self.folder.mkdir(parents=True, exist_ok=True)
        started = True
        try:
            with self._lock(), self._logging(), self._signal_handlers():
                (self.folder / STOP_FILE).unlink(missing_ok=True)  # a stop file from before this start
                self.state = PaperState.open(self.folder)
                try:
                    self._run()
                except StopRequested:  # asked to stop while waiting for the exchange
                    pass
                except BaseException as exc:
                    self.stop_reason = self.stop_reason or f"error: {type(exc).__name__}: {self._redact.redact(str(exc))}"
                    raise
                finally:
                    started = self.state.started()
                    if started:
                        self.state.add_event("stop", {"reason": self.stop_reason or "stopped", "pid": os.getpid()})
                    self.state.close()
                    (self.folder / STOP_FILE).unlink(missing_ok=True)
        finally:
            if not started:  # a failed first start leaves no empty session behind (it holds nothing)
                shutil.rmtree(self.folder, ignore_errors=True)
        if not started:  # stopped before the bootstrap finished
            return {"name": self.name, "folder": str(self.folder), "running": False, "pid": None,
                    "settings": self.s.to_dict(), "created": None, "health": "not started", "processed": 0}
        from ._paper_report import export_session, paper_status_dir

        export_session(self.folder)
        return paper_status_dir(self.folder)

    # ---- set-up -------------------------------------------------------------------------------
    def _run(self) -> None:
        s = self.s
        self.rules = make_rules(s.strategy, s.params, fee=s.fee, slippage_bps=s.slippage_bps)
        bh_params = self.rules.params if s.strategy == "buyhold" else BuyHoldParams()  # as the backtest
        self.bench_rules = make_rules("buyhold", bh_params, fee=s.fee, slippage_bps=s.slippage_bps)
        self.ckpt = self._load_model()
        self.context = BOOTSTRAP + (getattr(self.rules.params, "slow", 0) or 0)
        # until the first poll succeeds, give up after STARTUP_S seconds of failures: an unreachable exchange
        # at start is a user mistake (wrong --exchange-url, no network), reported at once; once running,
        # retry forever
        self.retry = Retrier(s.exchange, base_delay=self.retry_delay, max_delay=self.max_retry_delay,
                             give_up_after=STARTUP_S, should_stop=self._should_stop, redact=self._redact.redact,
                             on_retry=lambda: self._health(None))
        self.ex = self._client()
        import ccxt

        try:
            self._start()
        except ccxt.NetworkError as exc:
            where = self.exchange_url or s.exchange
            raise GruowError(f"cannot reach {where} ({s.exchange}): {type(exc).__name__}: "
                             f"{self._redact.redact(' '.join(str(exc).split())[:200])}"
                             f" — check --exchange-url / the network") from None
        self._loop()

    def _start(self) -> None:
        """Markets, bootstrap or restore, and the first poll (with bounded retries)."""
        s = self.s
        self.retry(self.ex.load_markets)
        from data import normalize_symbol

        symbol = normalize_symbol(self.ex, s.symbol)
        self.feed = LiveCandles(self.ex, symbol, s.timeframe, self.retry, gap_retries=self.gap_retries)
        if self._secrets:
            self._check_keys()
        if not self.state.started():
            self._bootstrap()
        self._restore()
        starts = self.state.events("start")
        if starts and starts[-1]["detail"].get("exchange_url") != self.exchange_url:
            # documented choice: the host is where candles come from, not what the session is; a move
            # (another replay server, a mirror) is allowed but said loudly
            log.warning("paper %s: --exchange-url is now %s; the session last ran against %s", self.name,
                        self.exchange_url or "(the exchange's own)",
                        starts[-1]["detail"].get("exchange_url") or "(the exchange's own)")
        self.state.add_event("start", {"pid": os.getpid(), "exchange_url": self.exchange_url,
                                       "processed": self.processed})
        log.info("paper %s: %s %s %s, %s strategy, %d candle(s) processed so far, last %s", self.name,
                 s.exchange, symbol, s.timeframe, s.strategy, self.processed, ms_to_ts(self.last_ts).isoformat())
        self._poll()
        self.retry.give_up_after = None

    def _load_model(self):
        if self.s.strategy != "gru":
            return None
        from forecaster import load_checkpoint

        path = Path(self.s.model)
        if not path.is_file():
            raise GruowError(f"--model {path}: the checkpoint this session uses is missing")
        ckpt = load_checkpoint(path)
        stored = self.state.meta().get("model_hash")
        if stored is not None and stored != ckpt.hash:
            raise GruowError(f"--model {path} changed since this session started (sha256 {ckpt.hash[:12]} != "
                             f"{stored[:12]}); restore it or start a new --state NAME")
        if ckpt.timeframe != self.s.timeframe:
            raise GruowError(f"--model {path} was trained on {ckpt.timeframe} candles, the session trades "
                             f"{self.s.timeframe}")
        if ckpt.lookback > WARMUP:
            raise GruowError(f"--model {path} needs {ckpt.lookback} candles per window; paper trading supports "
                             f"up to {WARMUP}")
        return ckpt

    def _client(self):
        from data import make_exchange

        ex = make_exchange(self.s.exchange, None, timeout_ms=self.timeout_ms)
        if self.rate_limit_ms is not None:  # e.g. a local replay server, which has no rate limit
            ex.rateLimit = float(self.rate_limit_ms)
        if self.s.sandbox:
            for k, v in self._secrets.items():
                setattr(ex, k, v)
            try:
                ex.set_sandbox_mode(True)
            except Exception as exc:  # ccxt.NotSupported: no testnet URLs for this exchange
                raise GruowError(f"--sandbox: {ex.id} has no testnet in ccxt ({type(exc).__name__})") from None
            if not self._secrets:
                log.warning("--sandbox without keys in %s / %s: public market data only",
                            SECRET_ENV["apiKey"], SECRET_ENV["secret"])
        if self.exchange_url:
            from data._download import _point_at  # after sandbox mode, which swaps the URLs

            _point_at(ex, self.exchange_url)
        return ex

    def _check_keys(self) -> None:
        """One authenticated call on the testnet; fills stay simulated whatever it says."""
        import ccxt

        try:
            bal = Retrier(self.s.exchange, base_delay=self.retry_delay, max_attempts=3, should_stop=self._should_stop,
                          redact=self._redact.redact)(self.ex.fetch_balance)
            log.info("sandbox: testnet account reachable (%d asset(s))", len(bal.get("total") or {}))
        except ccxt.AuthenticationError as exc:
            raise GruowError(f"--sandbox: {self.ex.id} rejected the API key from {SECRET_ENV['apiKey']} "
                             f"({type(exc).__name__})") from None
        except (ccxt.BaseError, StopRequested) as exc:
            log.warning("sandbox: could not check the testnet account (%s); continuing with public data",
                        type(exc).__name__)

    # ---- bootstrap and restore ----------------------------------------------------------------
    def _bootstrap(self) -> None:
        s, tf = self.s, self.tf_ms
        now = self.feed.server_ms()
        last_closed = (now // tf) * tf - tf
        since = last_closed - (BOOTSTRAP - 1) * tf
        have: dict[int, tuple] = {}
        for c in self._stored(since, last_closed):
            have[c[0]] = c
        fetch_from = since
        while fetch_from in have:
            fetch_from += tf
        if fetch_from <= last_closed:
            got = self.feed.closed(fetch_from, now)
            have.update({c[0]: c for c in got.candles if c[0] <= last_closed})
        warm = [have[t] for t in sorted(have) if since <= t <= last_closed]
        if len(warm) < BOOTSTRAP:
            if not have:
                why = "neither the store nor the exchange has any: is it the right market (a replay server serves one symbol)?"
            elif max(have) < last_closed:
                why = (f"the newest candle there opens at {ms_to_ts(max(have)).isoformat()}, before the exchange clock's "
                       f"last closed one ({ms_to_ts(last_closed).isoformat()}): the data end there (a replay server "
                       "run past the end of its candles?)")
            else:
                why = "wait until that many have closed, or import them into the store first"
            raise GruowError(f"{s.exchange} {s.symbol}: only {len(warm)} closed {s.timeframe} candle(s) before "
                             f"{ms_to_ts(last_closed + tf).isoformat()}; paper trading needs the last {BOOTSTRAP}; "
                             + why)
        frame = self._frame(warm)
        sig = self._signals(frame, 1)[0]
        runner = BarRunner(self.rules, s.cash)
        bench = BarRunner(self.bench_rules, s.cash)
        b = warm[-1]
        # the backtest's first decision: at the close of the last warm-up candle, equity = cash
        runner.on_bar(-1, b[1], b[4], sig, True)
        bench.on_bar(-1, b[1], b[4], (), True)
        kill = KillSwitch(s.max_drawdown, s.daily_loss_limit, s.cash, s.cash, s.cash)
        blob = {"runner": _runner_blob(runner), "bench": _runner_blob(bench), "kill": asdict(kill),
                "gaps": 0}
        meta = {"settings": s.to_dict(), "created": _now_iso(), "schema": 1, "name": self.name,
                "model_hash": self.ckpt.hash if self.ckpt is not None else None, "start": b[0] + tf}
        self.state.bootstrap(meta, warm, b[0], blob, {"warmup": len(warm), "first": ms_to_ts(warm[0][0]).isoformat(),
                                                       "last": ms_to_ts(b[0]).isoformat()})
        log.info("bootstrap: %d closed candles %s -> %s; first decision taken at the close of the last",
                 len(warm), ms_to_ts(warm[0][0]).isoformat(), ms_to_ts(b[0]).isoformat())

    def _stored(self, since: int, last: int) -> list[tuple]:
        """Candles of the bootstrap range from the candle store, if it holds any."""
        if self.data_dir is None:
            return []
        from data import CandleStore

        try:
            df = CandleStore(self.data_dir).load(self.s.symbol, self.s.timeframe, ms_to_ts(since),
                                                 ms_to_ts(last + self.tf_ms), exchange=self.s.exchange)
        except GruowError:
            return []
        if len(df):
            log.info("bootstrap: %d candle(s) from the store %s", len(df), self.data_dir)
        t = (df.index.as_unit("ms").asi8).tolist()
        return [(int(ts), *map(float, row)) for ts, row in zip(t, df[["open", "high", "low", "close", "volume"]]
                                                                .to_numpy(np.float64).tolist())]

    def _restore(self) -> None:
        s = self.s
        self.last_ts, self.processed, blob = self.state.runner()
        self.runner = _runner_from(self.rules, s.cash, blob["runner"])
        self.bench = _runner_from(self.bench_rules, s.cash, blob["bench"])
        self.kill = KillSwitch(**blob["kill"])
        self.gaps = int(blob.get("gaps", 0))
        self.history = deque((tuple(c) for c in self.state.recent_candles(self.context)), maxlen=self.context)
        self._last_equity = self.runner.broker.value(self.history[-1][4])

    # ---- the loop -----------------------------------------------------------------------------
    def _loop(self) -> None:
        while True:
            if self._done():
                return
            self._sleep(self._next_wait(self._server_now))
            if self._done():
                return
            self._poll()

    def _poll(self) -> None:
        """Read the exchange's clock, process every newly closed candle, record the feed's health."""
        if self._done():
            return
        now = self.feed.server_ms()
        self._note_clock(now)
        if not self._clock_known and self.poll_interval is None:  # a second sample a moment later gives the exchange clock's rate
            time.sleep(0.25)
            now = self.feed.server_ms()
            self._note_clock(now)
        got = self.feed.closed(self.last_ts + self.tf_ms, now)
        if got.duplicates or got.refetches or got.dropped_forming > 1:
            log.debug("poll: %d duplicate(s) ignored, %d refetch(es), %d forming dropped", got.duplicates,
                      got.refetches, got.dropped_forming)
        if got.candles:
            self._process(got.candles)
        self._note_stale(now, bool(got.candles))
        self._health(now)

    def _note_stale(self, now: int, got_any: bool) -> None:
        """Say when the exchange's clock runs on but no new candle comes (e.g. past a replay's end)."""
        closed_since = (now - self.last_ts - self.tf_ms) // self.tf_ms  # candles that should have closed
        if got_any or closed_since < 2:
            if self._stale_ms is not None and got_any:
                log.info("paper %s: candles arrive again (%s)", self.name, ms_to_ts(self.last_ts).isoformat())
            self._stale_ms, self._stale_logged = None, 0
            return
        self._stale_ms = now - self.last_ts - self.tf_ms
        minutes = self._stale_ms // 60_000
        if minutes >= max(1, 2 * self._stale_logged):  # 1, 2, 4, 8 ... minutes: not one line per poll
            self._stale_logged = max(1, minutes)
            log.warning("paper %s: no new candles from the exchange for %d minute(s) (last closed candle %s, "
                        "exchange clock %s); still polling", self.name, minutes, ms_to_ts(self.last_ts).isoformat(),
                        ms_to_ts(now).isoformat())

    def _done(self) -> bool:
        if self._should_stop():
            return True
        if self.max_candles is not None and self.processed >= self.max_candles:
            self.stop_reason = self.stop_reason or f"max_candles ({self.max_candles})"
            return True
        return False

    def _process(self, candles: list[tuple]) -> None:
        n = len(candles)
        bar = _progress(self.progress and n > 60, n, f"paper {self.name}: catching up")
        done = 0
        with bar as prog:
            task = prog.add_task("candles", total=n) if prog is not None else None
            for i0 in range(0, n, CHUNK):
                chunk = candles[i0:i0 + CHUNK]
                sigs = self._signals(self._frame(list(self.history) + chunk), len(chunk))
                for candle, sig in zip(chunk, sigs):
                    if self._done():
                        break
                    self._step(candle, sig)
                    done += 1
                    if task is not None:
                        prog.advance(task)
                if done < i0 + len(chunk):
                    break
        if not done:
            return
        eq = self._last_equity
        mono = time.monotonic()
        # one INFO summary at most per SUMMARY_S seconds or SUMMARY_N candles; the rest at DEBUG
        summary = (self._info_at is None or mono - self._info_at[0] >= SUMMARY_S
                   or self.processed - self._info_at[1] >= SUMMARY_N)
        if summary:
            self._info_at = (mono, self.processed)
        log.log(logging.INFO if summary else logging.DEBUG, "processed %d candle(s) up to %s: equity %.2f (%+.2f %%), position %.8g %s", done,
                 ms_to_ts(self.last_ts).isoformat(), eq, 100 * (eq / self.s.cash - 1), self.runner.broker.position,
                 self.s.symbol.split("/")[0])

    def _step(self, candle: tuple, sig) -> None:
        """Fill, mark, decide and persist one closed candle (the backtest's bar order)."""
        ts, o, _, _, c, _ = candle
        r, b, k = self.runner, self.bench, self.kill
        events = []
        if ts != self.last_ts + self.tf_ms:
            missing = (ts - self.last_ts) // self.tf_ms - 1
            self.gaps += 1
            events.append(("gap", {"after": ms_to_ts(self.last_ts).isoformat(), "missing": int(missing)}))
        was_halted = k.halted
        halted = k.active(ts)
        if was_halted and not halted:
            events.append(("resume", {"after": was_halted}))
        equity = r.on_bar(self.processed, o, c, sig, not halted)
        bench_equity = b.on_bar(self.processed, o, c, (), True)
        b.fills.clear()
        trip = k.update(ts, equity)
        if trip is not None:
            events.append(("kill_switch", trip))
            log.warning("kill switch at %s: %s (equity %.2f); closing the position, no new entries%s",
                        ms_to_ts(ts).isoformat(), trip["reason"], equity,
                        f" until {trip['until']}" if trip.get("until") else "")
        if k.halted is not None:
            pos = r.broker.position
            r.pending = (Intent(-pos, "kill_switch"), c) if pos else None
        fills = [(ts, f.size, f.price, f.fee, f.cash_after, f.position_after, f.reason) for f in r.fills]
        r.fills.clear()
        for f in fills:
            log.info("fill %s: %s %.8g @ %.6g, fee %.6g (%s); cash %.2f, position %.8g", ms_to_ts(ts).isoformat(),
                     "buy" if f[1] > 0 else "sell", abs(f[1]), f[2], f[3], f[6], f[4], f[5])
        blob = {"runner": _runner_blob(r), "bench": _runner_blob(b), "kill": asdict(k), "gaps": self.gaps}
        self.state.commit_candle(candle, fills, (ts, c, r.broker.cash, r.broker.position, equity, bench_equity),
                                 self.processed + 1, blob, events)
        self.processed += 1
        self.last_ts = ts
        self._last_equity = equity
        self.history.append(candle)

    # ---- forecasts and signals ----------------------------------------------------------------
    def _frame(self, rows: list[tuple]) -> pd.DataFrame:
        arr = np.asarray([r[1:6] for r in rows], dtype=np.float64)
        idx = pd.to_datetime(np.asarray([r[0] for r in rows], dtype=np.int64), unit="ms", utc=True)
        df = pd.DataFrame(arr, index=idx, columns=["open", "high", "low", "close", "volume"])
        return make_candles(df, exchange=self.s.exchange, symbol=self.s.symbol, timeframe=self.s.timeframe)

    def _signals(self, frame: pd.DataFrame, n: int) -> list[tuple]:
        """The rules' signal rows of the last ``n`` candles of ``frame`` (earlier rows are context)."""
        forecasts = None
        if self.ckpt is not None:
            from forecaster import forecast, forecast_columns

            try:
                forecasts = forecast(self.ckpt, frame, progress=False)
            except GruowError:  # no 128 gap-free candles yet (after a gap): no forecast, as in a backtest
                forecasts = pd.DataFrame(columns=forecast_columns(self.ckpt.horizon),
                                         index=pd.DatetimeIndex([], tz="UTC", name="timestamp"), dtype=np.float64)
        sig = self.rules.signals(frame, forecasts)
        cols = self.rules.columns
        if not cols:
            return [()] * n
        tail = sig.iloc[len(sig) - n:]
        return list(zip(*(tail[c].to_numpy(np.float64).tolist() for c in cols)))

    # ---- timing, stopping, health ---------------------------------------------------------------
    def _note_clock(self, now: int) -> None:
        mono = time.monotonic()
        if self._clock0 is None:
            self._clock0 = (mono, now)
            return
        dt = mono - self._clock0[0]
        if dt >= 0.2:  # the exchange's clock has millisecond resolution: 0.2 s gives its rate well enough
            self._clock_rate = min(max((now - self._clock0[1]) / (dt * 1000.0), 1.0), 1e6)
            self._clock_known = True
        if dt > 60.0:  # a sliding anchor follows a replay server whose speed changes
            self._clock0 = (mono, now)

    def _next_wait(self, now: int) -> float:
        if self.poll_interval is not None:
            return self.poll_interval
        next_close = self.last_ts + 2 * self.tf_ms
        if self._stale_ms is not None:  # the exchange lags its clock: wait for its next candle boundary
            next_close = (now // self.tf_ms + 1) * self.tf_ms
        virtual_s = max(0, next_close - now) / 1000.0 + 1.0  # a second of grace for the exchange
        return min(max(virtual_s / self._clock_rate, 0.05), self.tf_ms / 1000.0)

    def _sleep(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while not self._should_stop():
            left = end - time.monotonic()
            if left <= 0:
                return
            time.sleep(min(left, 0.1))

    def _should_stop(self) -> bool:
        if self.stop_reason is None and (self.folder / STOP_FILE).exists():
            self.stop_reason = "stop requested (gruow paper stop)"
            log.info("paper %s: stop requested; stopping", self.name)
        return self.stop_reason is not None and not self.stop_reason.startswith("max_candles")

    def _health(self, now: int | None) -> None:
        """Record the feed's health (after each poll, and before each retry wait with ``now`` None)."""
        if now is not None:
            self._server_now = now
            self._last_poll = _now_iso()
        now = getattr(self, "_server_now", None)
        last = getattr(self, "last_ts", None)
        self.state.set_health({
            "pid": os.getpid(), "last_poll": getattr(self, "_last_poll", None),
            "server_time": ms_to_ts(now).isoformat() if now is not None else None,
            # closed candles not yet processed when the exchange's clock was read
            "behind": (max(0, (now - last - self.tf_ms) // self.tf_ms) if now is not None and last is not None
                       and self._stale_ms is None else 0 if self._stale_ms is not None else None),
            "no_new_candles_min": None if self._stale_ms is None else self._stale_ms // 60_000,
            "retries": self.retry.retries, "retries_by_error": self.retry.counts,
            "consecutive_failures": self.retry.consecutive, "last_error": self.retry.last_error,
        })

    @contextlib.contextmanager
    def _lock(self):
        path = self.folder / LOCK_FILE
        fh = open(path, "a+")
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.close()
            pid = lock_pid(path)
            raise GruowError(f"paper session {self.name!r} is already running (pid {pid}); stop it with "
                             f"`gruow paper stop --state {self.name}`") from None
        try:
            fh.seek(0)
            fh.truncate()
            fh.write(f"{os.getpid()}\n")
            fh.flush()
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
            fh.close()

    @contextlib.contextmanager
    def _logging(self):
        """The session log file, and secret masking on every handler, while the session runs."""
        handler = logging.FileHandler(self.folder / LOG_FILE, encoding="utf-8")
        handler.setLevel(logging.INFO)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root = logging.getLogger()
        root.addHandler(handler)
        masked = list(root.handlers)
        for h in masked:
            h.addFilter(self._redact)
        try:
            yield
        finally:
            for h in masked:
                h.removeFilter(self._redact)
            root.removeHandler(handler)
            handler.close()

    @contextlib.contextmanager
    def _signal_handlers(self):
        """SIGTERM/SIGINT: finish the candle in progress, then stop (a second SIGINT aborts at once;
        the open transaction is rolled back)."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def on_signal(signum, frame):
            if self.stop_reason is not None and signum == signal.SIGINT:
                raise KeyboardInterrupt
            self.stop_reason = f"signal {signal.Signals(signum).name}"
            log.warning("paper %s: %s received; stopping after the current candle", self.name,
                        signal.Signals(signum).name)

        old = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            yield
        finally:
            for sig, h in old.items():
                signal.signal(sig, h)


def _now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _progress(enabled: bool, total: int, label: str):
    """A rich progress bar on stderr (a null context giving None when disabled or not a terminal)."""
    from rich.console import Console

    console = Console(stderr=True)
    if not (enabled and console.is_terminal):
        return contextlib.nullcontext(None)
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    return Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                    console=console, transient=True)


# ---------------------------------------------------------------------------------------- entry points
def run_paper(
    home: str | os.PathLike,
    name: str,
    settings: PaperSettings | dict | None = None,
    **options,
) -> dict:
    """Start or resume the paper session ``HOME/paper/<name>`` and run it; returns its status.

    ``settings``: a :class:`PaperSettings` or a dict of its fields (None fields = stored or default);
    for a new session they are validated and stored; for an existing one any given field must equal
    the stored one. ``options``: see :class:`PaperTrader` (``exchange_url``, ``max_candles``,
    ``poll_interval``, ``retry_delay``, ``max_retry_delay``, ``timeout_ms``, ``gap_retries``,
    ``progress``). The candle store ``HOME/data`` is read first at bootstrap.
    """
    folder = session_dir(home, name)
    explicit = isinstance(settings, PaperSettings)
    given = settings.to_dict() if explicit else dict(settings or {})
    stored = None
    if (folder / STATE_FILE).is_file():
        with PaperState.open(folder) as st:
            stored = st.meta().get("settings") if st.started() else None
    resolved = resolve_settings(stored, given, explicit=explicit)
    options.setdefault("data_dir", Path(home) / "data")
    return PaperTrader(folder, resolved, name=name, **options).run()


