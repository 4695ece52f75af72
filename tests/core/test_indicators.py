"""Tests of freqtrade_metastrategy.indicators: feature definitions, 24 h window, no lookahead."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import talib

from freqtrade_metastrategy.errors import ConfigError, MetaStrategyError
from freqtrade_metastrategy.indicators import (
    FEATURE_COLUMNS,
    candles_per_24h,
    compute_regime_features,
    timeframe_to_seconds,
)


def random_walk(n: int = 600, seed: int = 1, freq: str = "h") -> pd.DataFrame:
    """Seeded OHLCV random walk, volume in the base asset."""
    rng = np.random.default_rng(seed)
    close = 50.0 * np.exp(np.cumsum(0.01 * rng.standard_normal(n)))
    open_ = np.concatenate([[50.0], close[:-1]])
    high = np.maximum(open_, close) * (1.0 + 0.005 * rng.random(n))
    low = np.minimum(open_, close) * (1.0 - 0.005 * rng.random(n))
    volume = rng.lognormal(8.0, 0.5, n)
    index = pd.date_range("2024-01-01", periods=n, freq=freq, tz="UTC")
    return pd.DataFrame(
        {"open": open_, "high": high, "low": low, "close": close, "volume": volume}, index=index
    )


@pytest.mark.parametrize(
    ("timeframe", "seconds", "window"),
    [
        ("1m", 60, 1440),
        ("5m", 300, 288),
        ("15m", 900, 96),
        ("30m", 1800, 48),
        ("1h", 3600, 24),
        ("4h", 14400, 6),
        ("7h", 25200, 3),  # 24/7 = 3.43 -> 3 candles (21 h, rescaled to 24 h)
        ("16h", 57600, 2),  # 1.5 rounds half up -> 2
        ("12h", 43200, 2),
        ("1d", 86400, 1),
        ("3d", 259200, 1),
        ("1w", 604800, 1),
        ("1M", 2592000, 1),
    ],
)
def test_timeframe_parsing_and_24h_window(timeframe: str, seconds: int, window: int) -> None:
    assert timeframe_to_seconds(timeframe) == seconds
    assert candles_per_24h(timeframe) == window


@pytest.mark.parametrize("bad", ["", "h", "0h", "1H", "1.5h", "1 h", "-1h", "60", None])
def test_bad_timeframe_raises_config_error(bad: str) -> None:
    with pytest.raises(ConfigError) as excinfo:
        candles_per_24h(bad)
    assert excinfo.value.field == "timeframe"
    with pytest.raises(ConfigError):
        compute_regime_features(random_walk(60), bad)


def test_features_match_their_definitions() -> None:
    df = random_walk()
    original = df.copy()
    f = compute_regime_features(df, "1h")
    pd.testing.assert_frame_equal(df, original)  # input untouched
    assert list(f.columns) == list(FEATURE_COLUMNS)
    assert f.index.equals(df.index)
    assert all(f[c].dtype == np.float64 for c in f.columns)

    h, lo, c, v = (df[k].to_numpy() for k in ("high", "low", "close", "volume"))
    atr = talib.ATR(h, lo, c, 14)
    ema_fast, ema_slow = talib.EMA(c, 20), talib.EMA(c, 50)
    np.testing.assert_array_equal(f["adx"], talib.ADX(h, lo, c, 14))
    np.testing.assert_array_equal(f["atr"], atr)
    np.testing.assert_array_equal(f["atr_pct"], atr / c)
    np.testing.assert_array_equal(f["ema_fast"], ema_fast)
    np.testing.assert_array_equal(f["ema_slow"], ema_slow)
    np.testing.assert_array_equal(
        f["trend_strength"], np.clip((ema_fast - ema_slow) / (2 * atr), -1, 1)
    )
    expected_volume = np.full(len(df), np.nan)
    for i in range(23, len(df)):
        expected_volume[i] = np.sum(v[i - 23 : i + 1] * c[i - 23 : i + 1])
    np.testing.assert_allclose(f["volume_24h"], expected_volume, rtol=1e-12)

    # warm-up lengths: ADX 2*14-1, slow EMA 50-1, 24 h volume 24-1
    assert f["adx"].isna().sum() == 27 and f["adx"].iloc[27:].notna().all()
    assert f["ema_slow"].isna().sum() == 49
    assert f["volume_24h"].isna().sum() == 23
    assert f["trend_strength"].abs().max() <= 1.0


def test_trend_strength_is_half_the_ema_gap_in_atrs() -> None:
    # Steady climb: every candle spans 2.0, so ATR = 2.0 and trend_strength = gap / 4.
    close = np.linspace(100.0, 106.0, 120)
    df = pd.DataFrame(
        {"open": close, "high": close + 1.0, "low": close - 1.0, "close": close, "volume": 1.0}
    )
    f = compute_regime_features(df, "1h").iloc[-1]
    assert f["atr"] == pytest.approx(2.0)
    assert f["trend_strength"] == pytest.approx((f["ema_fast"] - f["ema_slow"]) / 4.0)
    assert 0.0 < f["trend_strength"] < 1.0
    # Falling twice as steeply in a narrower candle: the gap exceeds 2 ATR -> clipped at -1.
    down = close[::-1].copy()
    df = pd.DataFrame(
        {"open": down, "high": down + 0.1, "low": down - 0.1, "close": down, "volume": 1.0}
    )
    assert compute_regime_features(df, "1h")["trend_strength"].iloc[-1] == -1.0


def test_flat_history_gives_nan_trend_strength() -> None:
    df = pd.DataFrame({k: np.full(80, 10.0) for k in ("open", "high", "low", "close", "volume")})
    f = compute_regime_features(df, "1h")
    assert (f["atr"].iloc[14:] == 0.0).all()
    assert f["trend_strength"].isna().all()  # 0 gap / 0 ATR is undefined -> regime unknown


@pytest.mark.parametrize(("timeframe", "scale"), [("1d", 1.0), ("3d", 1.0 / 3.0), ("7h", 24 / 21)])
def test_volume_24h_is_rescaled_to_exactly_24h(timeframe: str, scale: float) -> None:
    df = random_walk(100)
    window = candles_per_24h(timeframe)
    quote = (df["volume"] * df["close"]).rolling(window, min_periods=window).sum()
    f = compute_regime_features(df, timeframe)
    np.testing.assert_allclose(f["volume_24h"], quote * scale, rtol=1e-12)


@pytest.mark.parametrize("timeframe", ["5m", "1h", "1d"])
def test_no_lookahead(timeframe: str) -> None:
    df = random_walk(700, seed=5)
    full = compute_regime_features(df, timeframe)
    for cut in (1, 20, 49, 50, 333, 699):
        part = compute_regime_features(df.iloc[:cut], timeframe)
        for name in FEATURE_COLUMNS:
            assert np.array_equal(part[name], full[name].iloc[:cut], equal_nan=True), (cut, name)


def test_short_and_empty_frames_are_all_nan() -> None:
    f = compute_regime_features(random_walk(10), "1h")
    assert len(f) == 10 and f[["adx", "ema_slow", "volume_24h"]].isna().all().all()
    assert len(compute_regime_features(random_walk(0), "1h")) == 0


def test_missing_column_raises() -> None:
    with pytest.raises(MetaStrategyError, match=r"missing column\(s\) \['volume'\]"):
        compute_regime_features(random_walk(60).drop(columns="volume"), "1h")


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"adx_period": 1}, "adx_period"),
        ({"atr_period": 0}, "atr_period"),
        ({"ema_fast_period": 1.5}, "ema_fast_period"),
        ({"ema_fast_period": 50, "ema_slow_period": 50}, "ema_slow_period"),
        ({"ema_slow_period": True}, "ema_slow_period"),
    ],
)
def test_bad_periods_raise_config_error(kwargs: dict[str, int], field: str) -> None:
    with pytest.raises(ConfigError) as excinfo:
        compute_regime_features(random_walk(60), "1h", **kwargs)
    assert excinfo.value.field == field


def test_custom_periods() -> None:
    f = compute_regime_features(
        random_walk(200), "1h", adx_period=7, atr_period=5, ema_fast_period=5, ema_slow_period=10
    )
    assert f["adx"].isna().sum() == 13
    assert f["atr"].isna().sum() == 5
    assert f["ema_slow"].isna().sum() == 9
