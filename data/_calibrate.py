"""Measure the statistics the synthetic generator is calibrated on, from real minute candles.

Run it to (re)produce the calibration table in ``data/SYNTHETIC.md``::

    python -m data._calibrate                 # real files from ../shared/data, generator beside them
    python -m data._calibrate --data DIR      # another folder of real files

It prints, per real file and for the generator (``data.synthetic``), the figures that matter
for a minute-candle forecaster and a backtest: return scale, fat tails, volatility clustering,
intraday seasonality of volume and volatility, the volume/|return| link and the candle shape.
It also fits the model the generator is built from (GARCH(1,1) with Student-t innovations on
hour-deseasonalised returns, and a log-volume regression) and prints the fitted parameters.

Plumbing for the calibration only: the library never calls it at run time. Needs ``scipy``.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

#: the real 1-minute ETH files the generator is calibrated on (in ``../shared/data``)
CALIBRATION_FILES = (
    "eth_usdt_1m_binance_2025-06.csv",
    "eth_usdt_1m_binance_2026-03.csv",
    "eth_usdt_1m_binance_2021-05.csv",
    "eth_usdc_1m_hyperliquid_2025-07-21.csv",
)
ACF_LAGS = (1, 5, 30, 60)


def acf(x: np.ndarray, lag: int) -> float:
    """Sample autocorrelation of ``x`` at ``lag`` (one mean and one variance for the whole series)."""
    x = np.asarray(x, dtype="float64")
    x = x - x.mean()
    den = float(x @ x)
    return float(x[:-lag] @ x[lag:] / den) if den > 0 else float("nan")


def minute_returns(df: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """1-minute close-to-close log returns and the row numbers they end at; returns never span a gap."""
    close = df["close"].to_numpy(dtype="float64")
    t = df.index.asi8
    ok = np.diff(t) == pd.Timedelta(minutes=1).value
    r = np.diff(np.log(close))
    rows = np.arange(1, len(df))
    return r[ok], rows[ok]


def hour_profile(values: np.ndarray, hours: np.ndarray) -> np.ndarray:
    """Mean of ``values`` by UTC hour (24 numbers) divided by the mean of those 24 means."""
    means = pd.Series(values).groupby(hours).mean().reindex(range(24)).to_numpy()
    return means / np.nanmean(means)


def candle_stats(df: pd.DataFrame) -> dict:
    """The calibration figures of one minute-candle frame (candle schema, 1-minute timeframe).

    Returns a dict: ``std`` (of 1-minute log returns), ``excess_kurtosis``, ``acf_r1`` (lag-1
    autocorrelation of returns), ``acf_abs`` / ``acf_sq`` (autocorrelation of |r| and r² at lags
    1, 5, 30, 60, as dicts), ``vol_hour`` / ``absr_hour`` (mean volume and mean |r| by UTC hour,
    relative to their daily mean, 24 values each), ``corr_vol_absr`` (Pearson correlation of
    volume and |r| in the same minute), ``range_body`` (mean log(high/low) over mean
    |log(close/open)|), ``mean_volume``, ``minutes``.
    """
    r, rows = minute_returns(df)
    absr = np.abs(r)
    vol = df["volume"].to_numpy(dtype="float64")
    hours = df.index.hour.to_numpy()
    o, h, lo, c = (df[k].to_numpy(dtype="float64") for k in ("open", "high", "low", "close"))
    return {
        "minutes": int(len(df)),
        "std": float(r.std()),
        "excess_kurtosis": float(pd.Series(r).kurt()),
        "acf_r1": acf(r, 1),
        "acf_abs": {k: acf(absr, k) for k in ACF_LAGS},
        "acf_sq": {k: acf(r * r, k) for k in ACF_LAGS},
        "vol_hour": hour_profile(vol, hours),
        "absr_hour": hour_profile(absr, hours[rows]),
        "corr_vol_absr": float(np.corrcoef(vol[rows], absr)[0, 1]),
        "range_body": float(np.log(h / lo).mean() / np.abs(np.log(c / o)).mean()),
        "mean_volume": float(vol.mean()),
    }


# --- the model fits ---------------------------------------------------------------------------


@dataclass(frozen=True)
class GarchFit:
    """GARCH(1,1) with unit-variance Student-t innovations, on returns scaled to unit variance:
    ``s2[t] = (1 - alpha - beta) + alpha * e[t-1]**2 + beta * s2[t-1]``, ``e[t] = sqrt(s2[t]) * z[t]``."""

    alpha: float
    beta: float
    nu: float


def _garch_unpack(q: np.ndarray) -> tuple[float, float, float]:
    # unconstrained -> alpha, beta > 0, alpha + beta < 1, nu > 2
    persistence = 1.0 / (1.0 + np.exp(-q[0]))
    share = 1.0 / (1.0 + np.exp(-q[1]))
    return float(share * persistence), float((1.0 - share) * persistence), 2.05 + float(np.exp(q[2]))


def garch_variance(e: np.ndarray, alpha: float, beta: float) -> np.ndarray:
    """Conditional variance path of unit-variance series ``e`` under GARCH(1,1), started at 1."""
    from scipy import signal

    e2 = np.asarray(e, dtype="float64") ** 2
    level = (1.0 - alpha - beta) / (1.0 - beta)
    y = signal.lfilter([0.0, alpha], [1.0, -beta], e2)  # alpha * e2[t-1] + beta * y[t-1]
    return level + y + beta ** np.arange(len(e2)) * (1.0 - level)


def fit_garch_t(e: np.ndarray) -> GarchFit:
    """Maximum-likelihood GARCH(1,1)-t fit (variance targeting) of ``e`` after scaling it to unit variance."""
    from scipy import optimize, special

    e = np.asarray(e, dtype="float64")
    e = (e - e.mean()) / e.std()
    e2 = e * e

    def nll(q):
        a, b, nu = _garch_unpack(q)
        s2 = garch_variance(e, a, b)
        const = special.gammaln((nu + 1) / 2) - special.gammaln(nu / 2) - 0.5 * np.log(np.pi * (nu - 2))
        ll = const - 0.5 * np.log(s2) - (nu + 1) / 2 * np.log1p(e2 / ((nu - 2) * s2))
        return -float(ll.mean())

    res = optimize.minimize(
        nll, np.array([3.0, -2.0, 0.5]), method="Nelder-Mead",
        options={"xatol": 1e-6, "fatol": 1e-10, "maxiter": 4000},
    )
    return GarchFit(*_garch_unpack(res.x))


@dataclass(frozen=True)
class VolumeFit:
    """``log v[t] = hour_mean[hour] + a * (log s[t] - mean) + b * (log(1 + |z[t]|) - mean) + u[t]``,
    ``u`` AR(1) with coefficient ``phi`` and innovation std ``sigma``; ``s`` is the GARCH
    conditional std and ``z = e / s`` the standardised return of the same minute."""

    level: float          # mean log volume (log ETH)
    hour: np.ndarray      # 24 hourly means of log volume minus ``level``
    a: float
    b: float
    phi: float
    sigma: float


def fit_volume(df: pd.DataFrame, e: np.ndarray, rows: np.ndarray, s2: np.ndarray) -> VolumeFit:
    """Least-squares fit of the log-volume model, given the GARCH path of the same returns."""
    vol = df["volume"].to_numpy(dtype="float64")[rows]
    hours = df.index.hour.to_numpy()[rows]
    keep = vol > 0
    logv, hours, s2, e = np.log(vol[keep]), hours[keep], s2[keep], e[keep]
    hour_mean = pd.Series(logv).groupby(hours).mean().reindex(range(24)).to_numpy()
    level = float(np.nanmean(hour_mean))
    y = logv - hour_mean[hours]
    logs = 0.5 * np.log(s2)
    absz = np.log1p(np.abs(e) / np.sqrt(s2))
    x = np.column_stack([logs - logs.mean(), absz - absz.mean()])
    (a, b), *_ = np.linalg.lstsq(x, y - y.mean(), rcond=None)
    u = y - y.mean() - x @ np.array([a, b])
    phi = acf(u, 1)
    return VolumeFit(level, hour_mean - level, float(a), float(b), phi, float(u.std() * np.sqrt(1 - phi * phi)))


@dataclass(frozen=True)
class Calibration:
    """Everything measured on one file: the descriptive figures and the fitted model."""

    name: str
    stats: dict
    garch: GarchFit
    volume: VolumeFit


def calibrate(df: pd.DataFrame, name: str = "") -> Calibration:
    """Measure ``candle_stats`` and fit the generator's model on one frame of 1-minute candles."""
    stats = candle_stats(df)
    r, rows = minute_returns(df)
    hours = df.index.hour.to_numpy()[rows]
    e = r / stats["absr_hour"][hours]  # remove the intraday volatility pattern before GARCH
    e = e - e.mean()
    scale = e.std()
    garch = fit_garch_t(e)
    s2 = garch_variance(e / scale, garch.alpha, garch.beta)
    return Calibration(name, stats, garch, fit_volume(df, e / scale, rows, s2))


# --- the report ------------------------------------------------------------------------------


def _row(label: str, values: list, fmt: str) -> str:
    return f"| {label} | " + " | ".join(fmt.format(v) for v in values) + " |"


def report(cals: list[Calibration]) -> str:
    """A markdown table, one column per calibration (real files, then the generator)."""
    names = [c.name for c in cals]
    s = [c.stats for c in cals]
    lines = [
        "| figure | " + " | ".join(names) + " |",
        "|---|" + "---|" * len(names),
        _row("minutes", [x["minutes"] for x in s], "{:,}"),
        _row("std of 1-min log return", [x["std"] for x in s], "{:.2e}"),
        _row("excess kurtosis of r", [x["excess_kurtosis"] for x in s], "{:.1f}"),
        _row("acf(r, 1)", [x["acf_r1"] for x in s], "{:+.3f}"),
    ]
    for k in ACF_LAGS:
        lines.append(_row(f"acf(\\|r\\|, {k})", [x["acf_abs"][k] for x in s], "{:.3f}"))
    for k in ACF_LAGS:
        lines.append(_row(f"acf(r², {k})", [x["acf_sq"][k] for x in s], "{:.3f}"))
    lines += [
        _row("GARCH alpha", [c.garch.alpha for c in cals], "{:.4f}"),
        _row("GARCH beta", [c.garch.beta for c in cals], "{:.4f}"),
        _row("GARCH alpha+beta", [c.garch.alpha + c.garch.beta for c in cals], "{:.4f}"),
        _row("Student-t nu", [c.garch.nu for c in cals], "{:.2f}"),
        _row("corr(volume, \\|r\\|)", [x["corr_vol_absr"] for x in s], "{:.3f}"),
        _row("mean volume (ETH/min)", [x["mean_volume"] for x in s], "{:.1f}"),
        _row("log-volume on log s (a)", [c.volume.a for c in cals], "{:.3f}"),
        _row("log-volume on log(1+\\|z\\|) (b)", [c.volume.b for c in cals], "{:.3f}"),
        _row("log-volume residual AR(1) phi", [c.volume.phi for c in cals], "{:.3f}"),
        _row("log-volume residual innovation std", [c.volume.sigma for c in cals], "{:.3f}"),
        _row("mean log(high/low) / mean \\|log(close/open)\\|", [x["range_body"] for x in s], "{:.2f}"),
    ]
    lines += ["", "Mean volume by UTC hour, relative to the daily mean:", "",
              "| hour | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for h in range(24):
        lines.append(_row(f"{h:02d}", [x["vol_hour"][h] for x in s], "{:.2f}"))
    lines += ["", "Mean \\|r\\| by UTC hour, relative to the daily mean:", "",
              "| hour | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for h in range(24):
        lines.append(_row(f"{h:02d}", [x["absr_hour"][h] for x in s], "{:.2f}"))
    real = [c for c in cals if not c.name.startswith("synthetic")]
    synth = [c for c in cals if c.name.startswith("synthetic")]
    if real and synth:
        lines += ["", "Correlation of the generator's hour profiles with each real file's:", ""]
        for sc in synth:
            for key in ("vol_hour", "absr_hour"):
                cors = [float(np.corrcoef(sc.stats[key], rc.stats[key])[0, 1]) for rc in real]
                lines.append(f"- {sc.name} {key}: " + ", ".join(
                    f"{rc.name} {v:.2f}" for rc, v in zip(real, cors)))
    return "\n".join(lines)


def pooled(cals: list[Calibration]) -> dict:
    """The generator's parameters from several real calibrations: medians of the scalars,
    means of the (normalised) hour profiles. This is what ``data.synthetic`` hard-codes."""
    med = lambda xs: float(np.median(xs))  # noqa: E731
    return {
        "std": med([c.stats["std"] for c in cals]),
        "acf_r1": med([c.stats["acf_r1"] for c in cals]),
        "alpha": med([c.garch.alpha for c in cals]),
        "beta": med([c.garch.beta for c in cals]),
        "nu": med([c.garch.nu for c in cals]),
        "absr_hour": np.mean([c.stats["absr_hour"] for c in cals], axis=0),
        "log_volume_level": med([c.volume.level for c in cals]),
        "log_volume_hour": np.mean([c.volume.hour for c in cals], axis=0),
        "volume_a": med([c.volume.a for c in cals]),
        "volume_b": med([c.volume.b for c in cals]),
        "volume_phi": med([c.volume.phi for c in cals]),
        "volume_sigma": med([c.volume.sigma for c in cals]),
        "range_body": med([c.stats["range_body"] for c in cals]),
    }


def main(argv: list[str] | None = None) -> int:
    from ._import import read_candles
    from .synthetic import synthetic_candles

    ap = argparse.ArgumentParser(prog="python -m data._calibrate", description=__doc__.splitlines()[0])
    default = os.environ.get("GRUOW_SHARED_DATA") or Path(__file__).resolve().parents[2] / "shared" / "data"
    ap.add_argument("--data", type=Path, default=Path(default),
                    help="folder holding the real files (default $GRUOW_SHARED_DATA or ../shared/data)")
    ap.add_argument("--seeds", type=int, default=2, help="generator seeds to show (30 days each)")
    args = ap.parse_args(argv)
    real = []
    for name in CALIBRATION_FILES:
        path = args.data / name
        if not path.exists():
            log.warning("skipping absent %s", path)
            continue
        real.append(calibrate(read_candles(path), name.removesuffix(".csv")))
    synth = [calibrate(synthetic_candles(43_200, seed=s), f"synthetic seed {s}") for s in range(args.seeds)]
    lines = [report(real + synth)]
    if real:
        lines.append("\nPooled parameters (median / mean over the real files):")
        for k, v in pooled(real).items():
            v = np.round(v, 4).tolist() if isinstance(v, np.ndarray) else round(v, 6)
            lines.append(f"  {k} = {v}")
        lines.append("\nGARCH fits:")
        lines.extend(f"  {c.name}: {asdict(c.garch)}" for c in real + synth)
    # the report is this script's output (stdout); diagnostics go through logging
    sys.stdout.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
