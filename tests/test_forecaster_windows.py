"""Windows, targets, splits and the scaler of the forecaster — no training here.

Leakage tests are written as checks that take a target builder, so the same check is run on
GRU-ow's builder (must pass) and on a replica of the ORIGINAL GRU-ow loader's indexing, which
started the targets one candle late (``r_begin = s_end + 1``, i.e. rows i+129 … i+136 for the
window i … i+127) — the check must catch that.
"""
from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import shared_file
from data import GruowError, make_candles, read_candles, segments
from forecaster._features import (
    Scaler,
    candle_arrays,
    clip_runs,
    input_rows,
    raw_inputs,
    raw_targets,
    require_windows,
    split_rows,
    target_rows,
    window_ends,
)

L, H = 128, 8
STEP = 0.001  # log-price step per candle of the "ramp" series below


def candles_from_close(close, volume=None, start="2024-01-01", freq="1min") -> pd.DataFrame:
    """Candles whose open is the previous close, with fixed small wicks."""
    close = np.asarray(close, dtype=float)
    open_ = np.concatenate([[close[0]], close[:-1]])
    high, low = np.maximum(open_, close) * 1.0002, np.minimum(open_, close) * 0.9998
    vol = np.ones(len(close)) if volume is None else np.asarray(volume, dtype=float)
    idx = pd.date_range(start, periods=len(close), freq=freq, tz="UTC")
    df = pd.DataFrame({"open": open_, "high": high, "low": low, "close": close, "volume": vol}, index=idx)
    return make_candles(df, exchange="test", symbol="ETH/USDC", timeframe="1m")


def ramp(n: int, start="2024-01-01") -> pd.DataFrame:
    """log close of row j is log(100) + STEP·j: a target's value names the row it came from."""
    return candles_from_close(100 * np.exp(STEP * np.arange(n)), start=start)


def ends_of(df, horizon=H):
    return window_ends(segments(df), L, horizon)


# ---------------------------------------------------------------- window counts and gaps
@pytest.mark.parametrize("n, windows", [(135, 0), (136, 1), (137, 2), (1000, 865)])
def test_window_count_is_n_minus_135(n, windows):
    ends = ends_of(ramp(n))
    assert len(ends) == windows
    if windows:
        assert ends[0] == L - 1 and ends[-1] == n - H - 1


def test_135_candles_give_a_clear_error():
    with pytest.raises(GruowError, match=r"136 consecutive candles.*longest run here is 135"):
        require_windows(segments(ramp(135)), L, H, "evaluation")
    assert len(require_windows(segments(ramp(136)), L, H, "evaluation")) == 1


def test_forecast_windows_need_only_the_lookback():
    assert len(window_ends(segments(ramp(128)), L, 0)) == 1
    assert len(window_ends(segments(ramp(127)), L, 0)) == 0


def test_a_gap_splits_segments_and_no_window_spans_it():
    df = ramp(400)
    df = df.drop(df.index[200])  # one missing minute: runs of 200 and 199 candles
    runs = segments(df)
    assert runs == [(0, 200), (200, 399)]
    ends = window_ends(runs, L, H)
    assert len(ends) == (200 - 135) + (199 - 135)
    rows = np.concatenate([input_rows(ends, L).numpy(), target_rows(ends, H).numpy()], axis=1)
    spans = df.index.asi8[rows[:, -1]] - df.index.asi8[rows[:, 0]]
    assert (spans == pd.Timedelta(minutes=L + H - 1).value).all()


# ---------------------------------------------------------------- alignment: targets strictly after inputs
def original_loader_targets(base: torch.Tensor, ends: torch.Tensor, horizon: int) -> torch.Tensor:
    """The original GRU-ow indexing: window i..i+127, targets from r_begin = s_end + 1 = i+129."""
    start = ends - (L - 1)  # s_begin = i
    s_end = start + L
    rows = (s_end + 1)[:, None] + torch.arange(horizon)
    return base[rows][..., :4] - base[ends, 3][:, None, None]


def check_targets_follow_inputs(build) -> None:
    """Target h of the window ending at row e must be row e+h: on the ramp its log close ratio is h·STEP."""
    df = ramp(300)
    ends = torch.from_numpy(ends_of(df))[:-1]  # the original loader reads one candle further
    y = build(torch.from_numpy(candle_arrays(df)), ends, H)
    expected = STEP * torch.arange(1, H + 1, dtype=torch.float64)
    np.testing.assert_allclose(y[..., 3].numpy(), expected.expand(len(ends), H).numpy(), rtol=0, atol=1e-12)
    # open_{e+h} = close_{e+h-1}: the first target's open is the decision candle's own close
    np.testing.assert_allclose(y[:, 0, 0].numpy(), 0.0, atol=1e-12)


@pytest.mark.parametrize("builder, catches", [(raw_targets, False), (original_loader_targets, True)],
                         ids=["gruow", "original-off-by-one"])
def test_targets_are_the_next_8_candles(builder, catches):
    if catches:
        with pytest.raises(AssertionError):
            check_targets_follow_inputs(builder)
    else:
        check_targets_follow_inputs(builder)


def test_target_times_are_t_plus_h_and_after_every_input():
    df = ramp(300)
    ends = ends_of(df)
    t = df.index.asi8
    in_t, tg_t = t[input_rows(ends, L).numpy()], t[target_rows(ends, H).numpy()]
    assert (in_t[:, -1] == t[ends]).all()  # the last input IS the decision candle
    assert (tg_t.min(axis=1) > in_t.max(axis=1)).all()
    minute = pd.Timedelta(minutes=1).value
    assert (tg_t - t[ends][:, None] == minute * np.arange(1, H + 1)).all()


def test_input_features_known_values():
    df = ramp(200)
    ends = torch.from_numpy(ends_of(df)[:3])
    x = raw_inputs(torch.from_numpy(candle_arrays(df)), ends, L)
    assert x.shape == (3, L, 5)
    # log(close_j / close_e) for positions j = e-127 … e is STEP·(j - e)
    np.testing.assert_allclose(x[0, :, 3].numpy(), STEP * np.arange(-L + 1, 1), atol=1e-12)
    np.testing.assert_allclose(x[..., 4].numpy(), np.log(2.0), atol=1e-12)  # log1p(volume 1)


# ---------------------------------------------------------------- splits and scaler
def test_split_parts_share_no_candle():
    df = ramp(2000)
    parts = split_rows(len(df), 0.2, 0.1)
    assert parts == {"train": (0, 1400), "val": (1400, 1800), "test": (1800, 2000)}
    used = {}
    for name, (a, b) in parts.items():
        ends = window_ends(clip_runs(segments(df), a, b), L, H)
        rows = np.concatenate([input_rows(ends, L).numpy(), target_rows(ends, H).numpy()], axis=1)
        used[name] = set(rows.ravel().tolist())
        assert min(used[name]) >= a and max(used[name]) < b
    assert not (used["train"] & used["val"]) and not (used["val"] & used["test"])


def test_scaler_known_values_on_the_ramp():
    df = ramp(500)
    ends = torch.from_numpy(ends_of(df))
    s = Scaler.fit(torch.from_numpy(candle_arrays(df)), ends, L, H)
    # close feature over positions 0..127 is STEP·(p-127): mean -STEP·127/2, std STEP·sqrt((128²-1)/12)
    assert s.x_mean[3].item() == pytest.approx(-STEP * (L - 1) / 2, rel=1e-9)
    assert s.x_std[3].item() == pytest.approx(STEP * np.sqrt((L * L - 1) / 12), rel=1e-9)
    np.testing.assert_allclose(s.y_mean[:, 3].numpy(), STEP * np.arange(1, H + 1), rtol=1e-9)
    assert s.x_std[4].item() == 1.0  # constant volume: left unscaled instead of dividing by 0


def test_scaler_sees_training_rows_only():
    rng = np.random.default_rng(3)
    df = candles_from_close(100 * np.exp(np.cumsum(rng.normal(0, 1e-3, 1500))), volume=rng.uniform(1, 9, 1500))
    parts = split_rows(len(df), 0.3)
    a, b = parts["train"]
    ends = torch.from_numpy(window_ends(clip_runs(segments(df), a, b), L, H))

    def fit(frame):
        return Scaler.fit(torch.from_numpy(candle_arrays(frame)), ends, L, H).to_dict()

    before = fit(df)
    later = df.copy()
    later.iloc[b:] *= rng.uniform(0.5, 2.0, size=(len(df) - b, 5))  # change every validation candle
    assert fit(later) == before
    earlier = df.copy()
    earlier.iloc[b - 1, :] *= 1.05  # the last training candle is inside the last training target
    assert fit(earlier) != before


# ---------------------------------------------------------------- inverse transform
def test_inverse_transform_round_trip_on_real_candles():
    df = read_candles(shared_file("eth_usdc_1m_hyperliquid_2025-07-21.csv"), symbol="ETH/USDC",
                      exchange="hyperliquid").iloc[:3000]
    base = torch.from_numpy(candle_arrays(df))
    ends = torch.from_numpy(ends_of(df))
    scaler = Scaler.fit(base, ends[:2000], L, H)
    close = torch.from_numpy(df["close"].to_numpy(copy=True))
    future = df[["open", "high", "low", "close"]].to_numpy()[target_rows(ends, H).numpy()]
    scaled64 = (raw_targets(base, ends, H) - scaler.y_mean) / scaler.y_std
    np.testing.assert_allclose(scaler.to_prices(scaled64, close[ends]).numpy(), future, rtol=1e-12)
    # through the float32 tensors the model trains on: well below one price tick (0.1 on ~3600)
    prices32 = scaler.to_prices(scaler.targets(base, ends, H), close[ends]).numpy()
    assert np.abs(prices32 - future).max() < 1e-3


def test_non_positive_price_names_the_candle():
    df = ramp(200)
    df.iloc[50, 2] = 0.0
    with pytest.raises(GruowError, match=re.escape(df.index[50].isoformat())):
        candle_arrays(df)
