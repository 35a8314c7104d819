"""The synthetic minute-candle generator: determinism, schema, candle invariants, and statistics
within stated tolerances of the figures measured on the real files (data/SYNTHETIC.md)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import data.synthetic as syn
from data import GruowError, check_schema, read_candles, segments, synthetic_candles
from data._calibrate import (
    CALIBRATION_FILES,
    calibrate,
    candle_stats,
    fit_garch_t,
    minute_returns,
    pooled,
)

from conftest import shared_file

MONTH = 30 * 1440


@pytest.fixture(scope="module")
def months() -> list[pd.DataFrame]:
    return [synthetic_candles(MONTH, seed=s) for s in range(3)]


def test_same_seed_gives_bit_identical_frames():
    a = synthetic_candles(3000, seed=7)
    b = synthetic_candles(3000, seed=7)
    c = synthetic_candles(3000, seed=np.random.default_rng(7))
    assert a.to_numpy().tobytes() == b.to_numpy().tobytes() == c.to_numpy().tobytes()
    assert a.index.equals(b.index) and a.attrs == b.attrs
    d = synthetic_candles(3000, seed=8)
    assert not np.array_equal(a["close"].to_numpy(), d["close"].to_numpy())


def test_schema_and_candle_invariants(months):
    df = months[0]
    check_schema(df)
    assert len(df) == MONTH
    assert df.dtypes.tolist() == [np.float64] * 5
    assert df.attrs["exchange"] == "synthetic" and df.attrs["synthetic"] is True
    assert df.attrs["symbol"] == "ETH/USDC" and df.attrs["timeframe"] == "1m" and df.attrs["seed"] == 0
    assert df.index[0] == pd.Timestamp("2024-01-01", tz="UTC")
    assert segments(df) == [(0, MONTH)]  # no gaps
    o, h, lo, c, v = (df[k].to_numpy() for k in ("open", "high", "low", "close", "volume"))
    assert (h >= np.maximum(o, c)).all() and (lo <= np.minimum(o, c)).all()
    assert (lo > 0).all() and (v > 0).all()
    assert (h > lo).mean() > 0.95  # real candles have a range; a bridge draw of 0 is rare
    np.testing.assert_array_equal(o[1:], c[:-1])  # open = previous close
    np.testing.assert_array_equal(np.round(c, 2), c)  # on the 0.01 tick
    assert o[0] == 2500.0


def test_options_are_honoured():
    df = synthetic_candles(100, seed=1, start="2025-07-21T09:22", price=3777.0, symbol="ETH/USDT")
    assert df.index[0] == pd.Timestamp("2025-07-21 09:22", tz="UTC")
    assert df.index[-1] == pd.Timestamp("2025-07-21 09:22", tz="UTC") + pd.Timedelta(minutes=99)
    assert df["open"].iloc[0] == 3777.0
    assert df.attrs["symbol"] == "ETH/USDT"
    # a price path, not a constant: 100 minutes of ~0.09 % moves
    assert df["close"].nunique() > 50


@pytest.mark.parametrize(
    "kwargs, words",
    [
        ({"n_minutes": 1}, "n_minutes"),
        ({"n_minutes": 10.5}, "n_minutes"),
        ({"n_minutes": True}, "n_minutes"),
        ({"price": -1.0}, "price"),
        ({"price": float("nan")}, "price"),
        ({"start": "2024-01-01T00:00:30"}, "whole minute"),
        ({"start": "yesterday-ish"}, "start"),
    ],
)
def test_bad_arguments_raise_user_errors(kwargs, words):
    args = {"n_minutes": 100, **kwargs}
    with pytest.raises(GruowError, match=words):
        synthetic_candles(args.pop("n_minutes"), **args)


def test_statistics_within_tolerance_of_calibration(months):
    for df in months:
        st = candle_stats(df)
        # return scale: the sample std of a month sits within 30 % of the calibrated 9.4e-4
        assert 0.7 * syn.RETURN_STD < st["std"] < 1.3 * syn.RETURN_STD, st["std"]
        # fat tails: excess kurtosis well above a Gaussian's 0 (real files: 3.4 .. 117)
        assert st["excess_kurtosis"] > 3, st["excess_kurtosis"]
        # volatility clustering: |r| autocorrelated at 1 minute and still at 1 hour
        # (real files: 0.15 .. 0.43 at lag 1, 0.06 .. 0.27 at lag 60; i.i.d. returns give ~0)
        assert 0.15 < st["acf_abs"][1] < 0.45, st["acf_abs"]
        assert 0.05 < st["acf_abs"][60] < 0.30, st["acf_abs"]
        # returns themselves nearly uncorrelated (real: -0.033 .. +0.028)
        assert abs(st["acf_r1"]) < 0.06, st["acf_r1"]
        # candle shape: range over |body| near the real median 1.70
        assert abs(st["range_body"] - 1.70) < 0.08, st["range_body"]
        # volume goes with |r| (real: 0.19 .. 0.60)
        assert 0.3 < st["corr_vol_absr"] < 0.75, st["corr_vol_absr"]
        # the intraday volume pattern follows the calibrated one (US-session peak at 13-16 UTC)
        target = np.exp(syn.LOG_VOLUME_HOUR)
        assert np.corrcoef(st["vol_hour"], target)[0, 1] > 0.6
        assert np.corrcoef(st["absr_hour"], syn.ABS_RETURN_HOUR)[0, 1] > 0.5


def test_garch_parameters_are_recovered_by_a_fit(months):
    df = months[0]
    r, rows = minute_returns(df)
    e = r / syn.ABS_RETURN_HOUR[df.index.hour.to_numpy()[rows]]
    fit = fit_garch_t(e)
    assert abs((fit.alpha + fit.beta) - (syn.GARCH_ALPHA + syn.GARCH_BETA)) < 0.004
    assert abs(fit.alpha - syn.GARCH_ALPHA) < 0.01
    assert abs(fit.nu - syn.STUDENT_NU) < 1.0


def test_generated_profiles_correlate_with_the_real_files(months):
    real = [candle_stats(read_candles(shared_file(name))) for name in CALIBRATION_FILES]
    real_vol = np.mean([s["vol_hour"] for s in real], axis=0)
    real_absr = np.mean([s["absr_hour"] for s in real], axis=0)
    for df in months:
        st = candle_stats(df)
        assert np.corrcoef(st["vol_hour"], real_vol)[0, 1] > 0.6
        assert np.corrcoef(st["absr_hour"], real_absr)[0, 1] > 0.5
    # and the real months agree among themselves about the session peak: 13-16 UTC is busiest
    busiest = np.argsort(real_vol)[-3:]
    assert set(busiest) <= {13, 14, 15, 16}


def test_calibration_constants_are_what_the_real_files_measure():
    cals = [calibrate(read_candles(shared_file(name)), name) for name in CALIBRATION_FILES]
    p = pooled(cals)
    assert p["std"] == pytest.approx(syn.RETURN_STD, rel=1e-3)
    assert p["acf_r1"] == pytest.approx(syn.RETURN_AR1, abs=1e-4)
    assert p["alpha"] == pytest.approx(syn.GARCH_ALPHA, abs=2e-4)
    assert p["beta"] == pytest.approx(syn.GARCH_BETA, abs=2e-4)
    assert p["nu"] == pytest.approx(syn.STUDENT_NU, abs=0.01)
    np.testing.assert_allclose(p["absr_hour"], syn.ABS_RETURN_HOUR, atol=1e-4)
    np.testing.assert_allclose(p["log_volume_hour"], syn.LOG_VOLUME_HOUR, atol=1e-4)
    assert p["log_volume_level"] == pytest.approx(syn.LOG_VOLUME_LEVEL, abs=1e-3)
    assert p["volume_a"] == pytest.approx(syn.VOLUME_ON_LOG_STD, abs=1e-3)
    assert p["volume_b"] == pytest.approx(syn.VOLUME_ON_LOG_ABS_Z, abs=1e-3)
    assert p["volume_phi"] == pytest.approx(syn.VOLUME_NOISE_AR1, abs=1e-3)
    assert p["volume_sigma"] == pytest.approx(syn.VOLUME_NOISE_STD, abs=1e-3)
