"""Seeded SYNTHETIC ETH minute candles, calibrated on real 1-minute ETH files.

The project cannot ship real exchange data, so the offline demo (``gruow demo``) and quick
experiments use candles made here::

    from data import synthetic_candles
    df = synthetic_candles(14_400, seed=0)        # 10 days of 1-minute candles, candle schema

The frame is marked: ``df.attrs["exchange"] == "synthetic"`` and ``df.attrs["synthetic"] is True``.
They are NOT market data; nothing learnt or earned on them says anything about ETH.

The model (parameters measured by ``python -m data._calibrate`` on four real files, figures and
sources in ``data/SYNTHETIC.md``):

- returns: ``r[t] = phi * r[t-1] + scale * H[hour(t)] * e[t]``, where ``e`` is GARCH(1,1) with
  unit-variance Student-t innovations (fat tails, volatility clustering) and ``H`` the mean |r|
  by UTC hour relative to the day (the intraday volatility pattern);
- candles: open = previous close, close = open * exp(r); high and low are drawn as the maximum
  and minimum of a Brownian bridge from open to close with the minute's conditional volatility,
  so that ``low <= min(open, close) <= max(open, close) <= high`` always; prices on a 0.01 tick;
- volume (ETH): ``log v = level + V[hour] + a * log s[t] + b * log(1 + |z[t]|) + u[t]`` (centred),
  ``s`` the GARCH conditional std, ``z`` the innovation, ``u`` AR(1) noise: the intraday volume
  pattern, volume following the volatility regime and spiking with large moves.

Deterministic: the same seed (or a Generator in the same state) gives bit-identical frames.
"""
from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from ._errors import GruowError
from ._schema import make_candles
from ._time import to_utc

log = logging.getLogger(__name__)

# --- calibration (see data/SYNTHETIC.md; pooled over the four real files by data._calibrate) ---
#: std of 1-minute log returns (median of the four files)
RETURN_STD = 9.44e-4
#: lag-1 autocorrelation of 1-minute returns (median)
RETURN_AR1 = 0.0229
#: GARCH(1,1) on hour-deseasonalised returns (medians of the per-file ML fits)
GARCH_ALPHA = 0.0567
GARCH_BETA = 0.9390
#: Student-t degrees of freedom of the GARCH innovations (median)
STUDENT_NU = 4.85
#: mean |r| by UTC hour 00..23 relative to the daily mean (mean of the four files' profiles)
ABS_RETURN_HOUR = np.array([
    1.0757, 1.0086, 0.9346, 0.8392, 0.8086, 0.8606, 0.8044, 0.8991, 0.9101, 0.8803, 0.8422, 0.8338,
    0.9904, 1.3156, 1.3677, 1.2321, 1.2207, 1.1370, 1.0151, 1.0279, 1.0314, 1.0231, 1.0246, 0.9172,
])
#: mean log volume (log ETH per minute, median) and its UTC-hour offsets 00..23 (mean profile)
LOG_VOLUME_LEVEL = 4.983
LOG_VOLUME_HOUR = np.array([
    -0.0646, -0.1508, -0.1872, -0.1973, -0.3032, -0.1734, -0.1008, 0.0173, 0.0087, -0.0176,
    -0.0273, -0.0711, 0.1548, 0.4890, 0.6436, 0.4857, 0.3430, 0.1248, -0.0859, -0.0733,
    -0.0673, -0.3243, -0.2008, -0.2218,
])
#: log volume regression on the centred log conditional std (a) and log(1 + |innovation|) (b)
#: (medians; log(1 + |z|) rather than |z| so that a fat-tailed z cannot make absurd volumes)
VOLUME_ON_LOG_STD = 1.406
VOLUME_ON_LOG_ABS_Z = 0.964
#: AR(1) coefficient and innovation std of the log-volume residual (medians)
VOLUME_NOISE_AR1 = 0.354
VOLUME_NOISE_STD = 0.752
#: intra-minute path std relative to the minute's return std; chosen so that the generator's
#: mean log(high/low) / mean |log(close/open)| matches the real median 1.70
RANGE_SCALE = 0.70
TICK_DECIMALS = 2  # 0.01 quote-currency tick


def synthetic_candles(
    n_minutes: int = 14_400,
    *,
    seed: int | np.random.Generator = 0,
    start="2024-01-01",
    price: float = 2500.0,
    symbol: str = "ETH/USDC",
) -> pd.DataFrame:
    """``n_minutes`` consecutive SYNTHETIC 1-minute candles in the candle schema, without gaps.

    ``start`` is the first candle's open time (UTC; naive means UTC; on a whole minute),
    ``price`` the first open in quote currency. ``seed`` is an int or a ``numpy`` Generator;
    the same seed gives a bit-identical frame. attrs: ``exchange="synthetic"``,
    ``synthetic=True``, ``symbol``, ``timeframe="1m"``, ``seed`` (when an int was given).
    Fast: about 0.05 s for a month of minutes (one python loop for the GARCH recursion).
    """
    if isinstance(n_minutes, bool) or not isinstance(n_minutes, (int, np.integer)) or n_minutes < 2:
        raise GruowError(f"n_minutes {n_minutes!r} must be a whole number of minutes >= 2")
    if not (isinstance(price, (int, float, np.floating)) and np.isfinite(price) and price > 0):
        raise GruowError(f"price {price!r} must be a positive number (quote currency)")
    t0 = to_utc(start, "start")
    if t0 != t0.floor("1min"):
        raise GruowError(f"start {t0.isoformat()} must be on a whole minute (candle open time)")
    n = int(n_minutes)
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)

    # every random number is drawn here, in a fixed order, so a seed fixes the whole frame
    nu = STUDENT_NU
    z = rng.standard_t(nu, n) * np.sqrt((nu - 2.0) / nu)  # unit variance
    u_high = rng.random(n)
    u_low = rng.random(n)
    eta = rng.standard_normal(n + 1)

    index = pd.date_range(t0, periods=n, freq="1min", name="timestamp")
    hour_of = index.hour.to_numpy()
    season = ABS_RETURN_HOUR[hour_of]
    # scale so that the std of r matches RETURN_STD: var(r) = scale² E[H²] / (1 - phi²)
    scale = RETURN_STD * np.sqrt((1.0 - RETURN_AR1**2) / np.mean(ABS_RETURN_HOUR**2))

    s2, r, noise = _recursions(z, eta, season * scale)

    # candles from the log-price path: open = previous close
    log_close = np.log(price) + np.cumsum(r)
    log_open = np.concatenate([[np.log(price)], log_close[:-1]])
    # max / min of a Brownian bridge from 0 to r with std s: (r ± sqrt(r² - 2 s² ln U)) / 2
    s = RANGE_SCALE * scale * season * np.sqrt(s2)
    up = 0.5 * (r + np.sqrt(r * r - 2.0 * s * s * np.log1p(-u_high)))
    down = 0.5 * (r - np.sqrt(r * r - 2.0 * s * s * np.log1p(-u_low)))
    o = _tick(np.exp(log_open))
    c = _tick(np.exp(log_close))
    h = np.maximum(_tick(np.exp(log_open + up)), np.maximum(o, c))
    lo = np.minimum(_tick(np.exp(log_open + down)), np.minimum(o, c))

    log_s = 0.5 * np.log(s2)
    log_abs_z = np.log1p(np.abs(z))
    log_v = (LOG_VOLUME_LEVEL + LOG_VOLUME_HOUR[hour_of]
             + VOLUME_ON_LOG_STD * (log_s - log_s.mean())
             + VOLUME_ON_LOG_ABS_Z * (log_abs_z - log_abs_z.mean()) + noise)
    v = np.maximum(np.round(np.exp(log_v), 4), 1e-4)

    df = pd.DataFrame({"open": o, "high": h, "low": lo, "close": c, "volume": v}, index=index)
    extra = {"seed": int(seed)} if isinstance(seed, (int, np.integer)) else {}
    out = make_candles(df, exchange="synthetic", symbol=symbol, timeframe="1m", synthetic=True, **extra)
    log.debug("made %d synthetic minutes from %s (seed %s)", n, t0, extra.get("seed", "generator"))
    return out


def _recursions(z: np.ndarray, eta: np.ndarray, vol: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The sequential part, one pass: GARCH variance ``s2`` of the unit-variance innovations
    ``e = sqrt(s2) z``; returns ``r[t] = phi r[t-1] + vol[t] e[t]``; the AR(1) log-volume noise
    ``u[t] = phi_v u[t-1] + sigma_v eta[t+1]``, ``u[-1]`` drawn stationary from ``eta[0]``."""
    n = len(z)
    s2 = np.empty(n)
    r = np.empty(n)
    u = np.empty(n)
    a, b, phi = GARCH_ALPHA, GARCH_BETA, RETURN_AR1
    phi_v, sigma_v = VOLUME_NOISE_AR1, VOLUME_NOISE_STD
    omega = 1.0 - a - b  # unconditional variance 1
    var, prev_r = 1.0, 0.0
    prev_u = sigma_v * float(eta[0]) / np.sqrt(1.0 - phi_v * phi_v)  # u[-1], stationary
    # python floats: this loop runs ~10x faster than indexing numpy arrays element by element
    for i, (zi, vi, ei) in enumerate(zip(z.tolist(), vol.tolist(), eta[1:].tolist())):
        s2[i] = var
        e = var**0.5 * zi
        prev_r = phi * prev_r + vi * e
        r[i] = prev_r
        var = omega + a * e * e + b * var
        prev_u = phi_v * prev_u + sigma_v * ei
        u[i] = prev_u
    return s2, r, u


def _tick(p: np.ndarray) -> np.ndarray:
    """Prices on a 0.01 tick, like the real ETH/USDT and ETH/USDC quotes."""
    return np.round(p, TICK_DECIMALS)
