"""Tests of freqtrade_metastrategy.regime: rule, boundaries, validation, scalar/vector agreement."""

from __future__ import annotations

import math
import subprocess
import sys
from collections.abc import Callable
from dataclasses import FrozenInstanceError, replace
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from freqtrade_metastrategy.errors import ConfigError
from freqtrade_metastrategy.indicators import FEATURE_COLUMNS, compute_regime_features
from freqtrade_metastrategy.regime import (
    REGIMES,
    MarketContext,
    MarketRegime,
    RegimeDetectionResult,
    RegimeDetector,
    RegimeThresholds,
    add_regime_columns,
    classify_regimes,
    regime_from_code,
)

DEFAULTS = RegimeThresholds()
SPLIT = DEFAULTS.range_split_atr_pct
ADDED_COLUMNS = (*FEATURE_COLUMNS, "regime", "regime_confidence")


def ctx(
    atr_pct: float | None = 0.01,
    adx: float | None = 15.0,
    trend_strength: float | None = 0.1,
    volume_24h: float | None = 30e6,
    depth_5bps: float | None = None,
    spread_bps: float | None = None,
) -> MarketContext:
    return MarketContext(
        symbol="TEST/USDT",
        timeframe="1h",
        current_price=100.0,
        atr=None if atr_pct is None else 100.0 * atr_pct,
        atr_pct=atr_pct,
        adx=adx,
        trend_strength=trend_strength,
        volume_24h=volume_24h,
        depth_5bps=depth_5bps,
        spread_bps=spread_bps,
    )


def vectorised(
    context: MarketContext, thresholds: RegimeThresholds = DEFAULTS
) -> tuple[MarketRegime, float]:
    """Classify one context through the vectorised path (as 1-element arrays)."""

    def arr(value: float | None) -> np.ndarray:
        return np.array([np.nan if value is None else value], dtype=np.float64)

    codes, conf = classify_regimes(
        arr(context.adx),
        arr(context.atr_pct),
        arr(context.trend_strength),
        arr(context.volume_24h),
        thresholds,
        depth_5bps=arr(context.depth_5bps),
        spread_bps=arr(context.spread_bps),
    )
    assert codes.dtype == np.int8 and conf.dtype == np.float64
    return REGIMES[int(codes[0])], float(conf[0])


def detect_both(
    context: MarketContext, thresholds: RegimeThresholds = DEFAULTS
) -> RegimeDetectionResult:
    """Scalar result, after checking the vectorised path agrees with it."""
    result = RegimeDetector(thresholds).detect_regime(context)
    regime, confidence = vectorised(context, thresholds)
    assert regime is result.regime
    assert confidence == pytest.approx(result.confidence, abs=1e-12, rel=0)
    assert 0.0 <= result.confidence <= 1.0
    return result


def up(x: float) -> float:
    return math.nextafter(x, math.inf)


def down(x: float) -> float:
    return math.nextafter(x, -math.inf)


# --------------------------------------------------------------------------------------------
# Enum and data classes
# --------------------------------------------------------------------------------------------


def test_regime_codes_are_stable() -> None:
    assert [r.value for r in REGIMES] == [
        "trend_up",
        "trend_down",
        "range_low_vol",
        "range_high_vol",
        "high_volatility",
        "illiquid",
        "unknown",
    ]
    for code, regime in enumerate(REGIMES):
        assert regime.code == code
        assert regime_from_code(code) is regime
    assert isinstance(MarketRegime.TREND_UP, str)
    assert MarketRegime("trend_up") is MarketRegime.TREND_UP
    assert [r == r.value for r in REGIMES] == [True] * len(REGIMES)
    assert f"{MarketRegime.TREND_UP}" == str(MarketRegime.TREND_UP) == "trend_up"


def test_dataclasses_are_frozen() -> None:
    context = ctx()
    with pytest.raises(FrozenInstanceError):
        context.adx = 1.0  # type: ignore[misc]
    with pytest.raises(FrozenInstanceError):
        DEFAULTS.trend_adx_threshold = 1.0  # type: ignore[misc]
    result = RegimeDetector().detect_regime(context)
    with pytest.raises(FrozenInstanceError):
        result.regime = MarketRegime.UNKNOWN  # type: ignore[misc]


def test_module_never_imports_freqtrade() -> None:
    code = (
        "import sys, freqtrade_metastrategy.regime, freqtrade_metastrategy.indicators\n"
        "bad = [m for m in sys.modules if m == 'freqtrade' or m.startswith('freqtrade.')]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# --------------------------------------------------------------------------------------------
# The original's four examples
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("context", "expected"),
    [
        pytest.param(ctx(0.005, 35.0, 0.6, 50e6), MarketRegime.TREND_UP, id="btc-trend-up"),
        pytest.param(ctx(0.01, 15.0, 0.1, 30e6), MarketRegime.RANGE_LOW_VOL, id="range"),
        pytest.param(ctx(0.08, 30.0, 0.5, 20e6), MarketRegime.HIGH_VOLATILITY, id="volatile-alt"),
        pytest.param(ctx(0.02, 20.0, 0.2, 1.2e6), MarketRegime.ILLIQUID, id="illiquid-coin"),
    ],
)
def test_original_examples(context: MarketContext, expected: MarketRegime) -> None:
    assert detect_both(context).regime is expected


def test_btc_trend_up_reasoning_and_confidence() -> None:
    result = detect_both(ctx(0.005, 35.0, 0.6, 50e6))
    assert result.reasoning == "Trending UP: ADX=35.0, trend_strength=0.60, ATR=0.50%"
    # 0.5 + 0.25 * (35 - 25) / 25 + 0.25 * (0.6 - 0.3) / (1 - 0.3)
    assert result.confidence == pytest.approx(0.5 + 0.25 * 0.4 + 0.25 * 0.3 / 0.7, abs=1e-15)
    assert result.features == {
        "atr_pct": 0.005,
        "adx": 35.0,
        "trend_strength": 0.6,
        "volume_24h": 50e6,
        "depth_5bps": pytest.approx(math.nan, nan_ok=True),
        "spread_bps": pytest.approx(math.nan, nan_ok=True),
    }


@pytest.mark.parametrize(
    ("context", "reasoning"),
    [
        (ctx(0.005, 35.0, -0.6, 50e6), "Trending DOWN: ADX=35.0, trend_strength=-0.60, ATR=0.50%"),
        (ctx(0.02, 20.0, 0.2, 1.2e6), "Illiquid: volume_24h=$1.2M < $2.0M"),
        (
            ctx(0.02, 20.0, 0.2, 1.2e6, depth_5bps=30_000.0, spread_bps=25.0),
            "Illiquid: volume_24h=$1.2M < $2.0M, depth_5bps=$30.0K < $50.0K, "
            "spread=25.0bps > 10.0bps",
        ),
        (ctx(0.071, 30.0, 0.5, 20e6), "Extreme volatility: ATR=7.10% > 6.00%"),
        (
            ctx(0.01, 15.0, 0.1, 30e6),
            "Ranging LOW VOL: ADX=15.0, trend_strength=0.10, ATR=1.00% < 1.50%",
        ),
        (
            ctx(0.05, 15.0, 0.1, 30e6),
            "Ranging HIGH VOL: ADX=15.0, trend_strength=0.10, ATR=5.00% > 4.00%",
        ),
        (
            ctx(0.02, 15.0, 0.1, 30e6),
            "Ranging LOW VOL: ADX=15.0, trend_strength=0.10, ATR=2.00% < split 2.45% "
            "(mid band 1.50%-4.00%)",
        ),
        (ctx(0.01, None, 0.1, 30e6), "Unknown: missing or non-finite inputs (adx)"),
        (ctx(-0.01, 15.0, 0.1, 30e6), "Unknown: negative inputs (atr_pct=-0.01)"),
    ],
)
def test_reasoning_lines(context: MarketContext, reasoning: str) -> None:
    result = detect_both(context)
    assert result.reasoning == reasoning
    assert "\n" not in result.reasoning


# --------------------------------------------------------------------------------------------
# Boundaries (strict inequalities) and the mid-band split
# --------------------------------------------------------------------------------------------

TREND = {"adx": 35.0, "trend_strength": 0.6}


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        # ADX: trend needs adx > 25 strictly
        ({"adx": 25.0, "trend_strength": 0.6}, MarketRegime.RANGE_LOW_VOL),
        ({"adx": up(25.0), "trend_strength": 0.6}, MarketRegime.TREND_UP),
        # trend strength: |ts| > 0.3 strictly, sign picks the direction
        ({"adx": 35.0, "trend_strength": 0.3}, MarketRegime.RANGE_LOW_VOL),
        ({"adx": 35.0, "trend_strength": -0.3}, MarketRegime.RANGE_LOW_VOL),
        ({"adx": 35.0, "trend_strength": up(0.3)}, MarketRegime.TREND_UP),
        ({"adx": 35.0, "trend_strength": -up(0.3)}, MarketRegime.TREND_DOWN),
        # extreme volatility: atr_pct > 0.06 strictly, and it beats a trend
        ({"atr_pct": 0.06, **TREND}, MarketRegime.TREND_UP),
        ({"atr_pct": up(0.06), **TREND}, MarketRegime.HIGH_VOLATILITY),
        ({"atr_pct": 0.06, "adx": 15.0}, MarketRegime.RANGE_HIGH_VOL),
        # illiquid volume: volume_24h < 2M strictly, and it beats extreme volatility
        ({"volume_24h": 2e6, "atr_pct": 0.07}, MarketRegime.HIGH_VOLATILITY),
        ({"volume_24h": down(2e6), "atr_pct": 0.07}, MarketRegime.ILLIQUID),
        ({"volume_24h": 0.0}, MarketRegime.ILLIQUID),
        # depth: < 50k strictly; spread: > 10 bps strictly
        ({"depth_5bps": 50_000.0, **TREND}, MarketRegime.TREND_UP),
        ({"depth_5bps": down(50_000.0), **TREND}, MarketRegime.ILLIQUID),
        ({"spread_bps": 10.0, **TREND}, MarketRegime.TREND_UP),
        ({"spread_bps": up(10.0), **TREND}, MarketRegime.ILLIQUID),
        # range: > high is high-vol, < low is low-vol
        ({"atr_pct": up(0.04)}, MarketRegime.RANGE_HIGH_VOL),
        ({"atr_pct": down(0.015)}, MarketRegime.RANGE_LOW_VOL),
        ({"atr_pct": 0.0}, MarketRegime.RANGE_LOW_VOL),
        # the mid band [low, high] is split at sqrt(low * high), >= split is high-vol
        ({"atr_pct": 0.04}, MarketRegime.RANGE_HIGH_VOL),
        ({"atr_pct": 0.015}, MarketRegime.RANGE_LOW_VOL),
        ({"atr_pct": SPLIT}, MarketRegime.RANGE_HIGH_VOL),
        ({"atr_pct": down(SPLIT)}, MarketRegime.RANGE_LOW_VOL),
    ],
)
def test_boundaries(kwargs: dict[str, float], expected: MarketRegime) -> None:
    assert detect_both(ctx(**kwargs)).regime is expected


def test_mid_band_split_value() -> None:
    assert pytest.approx(math.sqrt(0.015 * 0.04), rel=1e-15) == SPLIT
    assert pytest.approx(0.0244949, abs=1e-7) == SPLIT
    assert DEFAULTS.low_vol_atr_pct_threshold < SPLIT < DEFAULTS.high_vol_atr_pct_threshold


@pytest.mark.parametrize(
    ("atr_pct", "expected_confidence"),
    [
        (0.001, 1.0),  # below the band
        (down(0.015), 1.0),
        (0.015, 1.0),  # band edges: 0.5 + 0.5 * 1
        (0.04, 1.0),
        (up(0.04), 1.0),  # above the band
        (SPLIT, 0.5),  # the split itself
        ((0.015 + SPLIT) / 2, 0.75),  # half way between low and the split
        ((SPLIT + 0.04) / 2, 0.75),  # half way between the split and high
    ],
)
def test_range_confidence_is_lowest_at_the_split(
    atr_pct: float, expected_confidence: float
) -> None:
    result = detect_both(ctx(atr_pct=atr_pct))
    assert result.confidence == pytest.approx(expected_confidence, abs=1e-12)


def test_both_band_thresholds_move_the_split() -> None:
    atr_pct = 0.022  # low-vol range with the defaults (split 2.45%)
    assert detect_both(ctx(atr_pct=atr_pct)).regime is MarketRegime.RANGE_LOW_VOL
    lower_high = RegimeThresholds(high_vol_atr_pct_threshold=0.03)  # split 2.12%
    assert detect_both(ctx(atr_pct=atr_pct), lower_high).regime is MarketRegime.RANGE_HIGH_VOL
    lower_low = RegimeThresholds(low_vol_atr_pct_threshold=0.01)  # split 2.0%
    assert detect_both(ctx(atr_pct=atr_pct), lower_low).regime is MarketRegime.RANGE_HIGH_VOL


@pytest.mark.parametrize(
    ("context", "expected"),
    [
        (ctx(0.07, 30.0, 0.5, 20e6), 0.5 + 0.5 * (0.01 / 0.06)),  # high volatility
        (ctx(0.2, 30.0, 0.5, 20e6), 1.0),  # saturates at 2x extreme
        (ctx(0.01, 60.0, 1.0, 20e6), 1.0),  # strongest trend
        (ctx(0.01, up(25.0), -up(0.3), 20e6), 0.5),  # weakest trend
        (ctx(0.01, 15.0, 0.1, 1e6), 0.8),  # one illiquidity signal
        (ctx(0.01, 15.0, 0.1, 1e6, spread_bps=11.0), 0.9),  # two
        (ctx(0.01, 15.0, 0.1, 1e6, depth_5bps=1.0, spread_bps=11.0), 1.0),  # three
        (ctx(0.01, 15.0, 0.1, None), 0.0),  # unknown
    ],
)
def test_confidence_formulas(context: MarketContext, expected: float) -> None:
    assert detect_both(context).confidence == pytest.approx(expected, abs=1e-12)


# --------------------------------------------------------------------------------------------
# Missing / non-finite / negative inputs -> UNKNOWN, never an exception
# --------------------------------------------------------------------------------------------

BAD_VALUES = [None, math.nan, math.inf, -math.inf]


@pytest.mark.parametrize("field", ["atr_pct", "adx", "trend_strength", "volume_24h"])
@pytest.mark.parametrize("bad", BAD_VALUES, ids=repr)
def test_missing_or_non_finite_input_is_unknown(field: str, bad: float | None) -> None:
    result = detect_both(ctx(**{field: bad}))
    assert result.regime is MarketRegime.UNKNOWN
    assert result.confidence == 0.0
    assert result.reasoning == f"Unknown: missing or non-finite inputs ({field})"


@pytest.mark.parametrize("field", ["atr_pct", "volume_24h"])
def test_negative_atr_or_volume_is_unknown(field: str) -> None:
    assert detect_both(ctx(**{field: -1e-9})).regime is MarketRegime.UNKNOWN
    assert detect_both(ctx(**{field: -0.0})).regime is not MarketRegime.UNKNOWN


@pytest.mark.parametrize("bad", BAD_VALUES, ids=repr)
def test_missing_depth_or_spread_is_ignored(bad: float | None) -> None:
    assert detect_both(ctx(depth_5bps=bad, spread_bps=bad, **TREND)).regime is (
        MarketRegime.TREND_UP
    )


def test_garbage_input_is_unknown_not_an_exception() -> None:
    context = ctx(adx="high")  # type: ignore[arg-type]
    assert RegimeDetector().detect_regime(context).regime is MarketRegime.UNKNOWN


def test_vectorised_unknown_on_nan_inf_none_arrays() -> None:
    codes, conf = classify_regimes(
        np.array([np.nan, 35.0, 35.0, 35.0, None, 35.0], dtype=object),
        [0.01, np.inf, 0.01, 0.01, 0.01, -0.01],
        [0.6, 0.6, -np.inf, 0.6, 0.6, 0.6],
        [30e6, 30e6, 30e6, np.nan, 30e6, 30e6],
        DEFAULTS,
    )
    assert [REGIMES[c] for c in codes] == [MarketRegime.UNKNOWN] * 6
    assert conf.tolist() == [0.0] * 6


def test_vectorised_broadcasts_scalars_and_accepts_default_thresholds() -> None:
    codes, conf = classify_regimes([35.0, 15.0], 0.01, 0.6, 30e6, None, spread_bps=20.0)
    assert [REGIMES[c] for c in codes] == [MarketRegime.ILLIQUID] * 2
    assert codes.shape == conf.shape == (2,)


# --------------------------------------------------------------------------------------------
# Threshold validation
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "field", "fragment"),
    [
        ({"trend_adx_threshold": 0.0}, "trend_adx_threshold", "(0, 100)"),
        ({"trend_adx_threshold": 100.0}, "trend_adx_threshold", "(0, 100)"),
        ({"trend_strength_threshold": 0.0}, "trend_strength_threshold", "(0, 1)"),
        ({"trend_strength_threshold": 1.0}, "trend_strength_threshold", "(0, 1)"),
        ({"low_vol_atr_pct_threshold": 0.0}, "low_vol_atr_pct_threshold", "> 0"),
        ({"high_vol_atr_pct_threshold": 0.015}, "high_vol_atr_pct_threshold", "greater than"),
        ({"extreme_vol_atr_pct_threshold": 0.04}, "extreme_vol_atr_pct_threshold", "greater"),
        ({"high_vol_atr_pct_threshold": 4.0}, "extreme_vol_atr_pct_threshold", "fractions"),
        ({"illiquid_volume_threshold": -1.0}, "illiquid_volume_threshold", ">= 0"),
        ({"illiquid_depth_threshold": -1.0}, "illiquid_depth_threshold", ">= 0"),
        ({"illiquid_spread_threshold": -1.0}, "illiquid_spread_threshold", ">= 0"),
        ({"trend_adx_threshold": math.nan}, "trend_adx_threshold", "finite"),
        ({"illiquid_volume_threshold": math.inf}, "illiquid_volume_threshold", "finite"),
        ({"trend_adx_threshold": "25"}, "trend_adx_threshold", "must be a number"),
        ({"trend_adx_threshold": True}, "trend_adx_threshold", "must be a number"),
        ({"illiquid_spread_threshold": None}, "illiquid_spread_threshold", "must be a number"),
    ],
)
def test_threshold_validation_names_the_field(
    kwargs: dict[str, Any], field: str, fragment: str
) -> None:
    with pytest.raises(ConfigError) as excinfo:
        RegimeThresholds(**kwargs)
    assert excinfo.value.field == field
    assert str(excinfo.value).startswith(f"{field}: ")
    assert fragment in excinfo.value.message

    with pytest.raises(ConfigError) as excinfo:
        RegimeThresholds.from_dict(kwargs)
    assert excinfo.value.field == f"metastrategy.thresholds.{field}"

    with pytest.raises(ConfigError) as excinfo:
        RegimeDetector(**kwargs)
    assert excinfo.value.field == field


def test_thresholds_coerce_ints_to_float_and_round_trip() -> None:
    t = RegimeThresholds(trend_adx_threshold=30, illiquid_volume_threshold=0)
    assert t.trend_adx_threshold == 30.0 and isinstance(t.trend_adx_threshold, float)
    assert isinstance(t.illiquid_volume_threshold, float)
    assert RegimeThresholds.from_dict(t.to_dict()) == t
    assert set(t.to_dict()) == set(RegimeThresholds.field_names())
    assert RegimeThresholds.from_dict({}) == DEFAULTS


def test_from_dict_rejects_unknown_keys_listing_allowed_ones() -> None:
    with pytest.raises(ConfigError) as excinfo:
        RegimeThresholds.from_dict({"trend_adx_treshold": 20.0}, prefix="cfg.regime")
    assert excinfo.value.field == "cfg.regime.trend_adx_treshold"
    assert "did you mean 'trend_adx_threshold'" in excinfo.value.message
    for name in RegimeThresholds.field_names():
        assert name in excinfo.value.message


def test_from_dict_rejects_non_mapping() -> None:
    with pytest.raises(ConfigError) as excinfo:
        RegimeThresholds.from_dict([("trend_adx_threshold", 20.0)])  # type: ignore[arg-type]
    assert excinfo.value.field == "metastrategy.thresholds"


def test_detector_overrides_replace_fields_of_given_thresholds() -> None:
    base = RegimeThresholds(trend_adx_threshold=30.0)
    detector = RegimeDetector(base, illiquid_volume_threshold=0.0)
    assert detector.thresholds == replace(base, illiquid_volume_threshold=0.0)
    assert RegimeDetector().thresholds == DEFAULTS
    with pytest.raises(ConfigError) as excinfo:
        RegimeDetector(base, low_vol_atr_pct_threshold=0.05)
    assert excinfo.value.field == "high_vol_atr_pct_threshold"


# --------------------------------------------------------------------------------------------
# Property test: scalar and vectorised paths agree on everything
# --------------------------------------------------------------------------------------------


@st.composite
def thresholds_strategy(draw: st.DrawFn) -> RegimeThresholds:
    """Any valid thresholds: realistic ones three times out of four, else any valid floats."""
    if draw(st.integers(0, 3)) < 3:
        atr_pct = st.floats(1e-4, 0.5)
        volume, depth, spread = st.floats(0, 1e8), st.floats(0, 1e6), st.floats(0, 100)
    else:
        atr_pct = st.floats(min_value=0.0, exclude_min=True, allow_infinity=False)
        volume = depth = spread = st.floats(min_value=0.0, allow_infinity=False)
    low, high, extreme = sorted(draw(st.lists(atr_pct, min_size=3, max_size=3, unique=True)))
    return RegimeThresholds(
        trend_adx_threshold=draw(st.floats(0.0, 100.0, exclude_min=True, exclude_max=True)),
        trend_strength_threshold=draw(st.floats(0.0, 1.0, exclude_min=True, exclude_max=True)),
        low_vol_atr_pct_threshold=low,
        high_vol_atr_pct_threshold=high,
        extreme_vol_atr_pct_threshold=extreme,
        illiquid_volume_threshold=draw(volume),
        illiquid_depth_threshold=draw(depth),
        illiquid_spread_threshold=draw(spread),
    )


MISSING = st.sampled_from([None, math.nan, math.inf, -math.inf])


@st.composite
def feature(
    draw: st.DrawFn,
    plausible: st.SearchStrategy[float],
    specials: list[float],
    *,
    optional: bool = False,
) -> float | None:
    """Mostly plausible values, often a threshold or its float neighbours (or its negation),
    now and then missing (None, NaN, +-inf) or any float at all. ``optional`` features (depth,
    spread) are None half of the time, as in backtests."""
    roll = draw(st.integers(0, 99))
    if optional:
        if roll < 50:
            return None
        roll = 2 * (roll - 50)
    if roll < 60:
        return draw(plausible)
    if roll < 85:
        return draw(st.sampled_from([v for x in specials for v in (x, up(x), down(x), -x)]))
    if roll < 93:
        return draw(MISSING)
    return draw(st.floats())


def between(lo: float, hi: float) -> st.SearchStrategy[float]:
    return st.floats(min_value=lo, max_value=hi)


@st.composite
def cases(draw: st.DrawFn) -> tuple[RegimeThresholds, list[MarketContext], bool, bool]:
    t = draw(thresholds_strategy())
    low = t.low_vol_atr_pct_threshold
    high = t.high_vol_atr_pct_threshold
    extreme = t.extreme_vol_atr_pct_threshold
    split = t.range_split_atr_pct
    big = sys.float_info.max  # keeps the upper bounds finite
    atr_pct = feature(
        st.one_of(between(low, high), between(0.0, min(3.0 * extreme, big))),
        [0.0, low, split, high, extreme],
    )
    adx = feature(between(0.0, 100.0), [t.trend_adx_threshold])
    trend_strength = feature(between(-1.0, 1.0), [0.0, t.trend_strength_threshold])
    volume = t.illiquid_volume_threshold
    volume_24h = feature(between(0.0, min(10.0 * volume + 1.0, big)), [0.0, volume])
    depth = t.illiquid_depth_threshold
    depth_5bps = feature(between(0.0, min(10.0 * depth + 1.0, big)), [depth], optional=True)
    spread = t.illiquid_spread_threshold
    spread_bps = feature(between(0.0, min(1.1 * spread + 1.0, big)), [spread], optional=True)
    row = st.builds(
        ctx,
        atr_pct=atr_pct,
        adx=adx,
        trend_strength=trend_strength,
        volume_24h=volume_24h,
        depth_5bps=depth_5bps,
        spread_bps=spread_bps,
    )
    contexts = draw(st.lists(row, min_size=1, max_size=25))
    return t, contexts, draw(st.booleans()), draw(st.booleans())


def column(contexts: list[MarketContext], name: str) -> np.ndarray:
    values = [getattr(c, name) for c in contexts]
    return np.array([np.nan if v is None else v for v in values], dtype=np.float64)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases())
def test_scalar_and_vectorised_paths_agree(
    case: tuple[RegimeThresholds, list[MarketContext], bool, bool],
) -> None:
    thresholds, contexts, pass_depth, pass_spread = case
    codes, confidence = classify_regimes(
        column(contexts, "adx"),
        column(contexts, "atr_pct"),
        column(contexts, "trend_strength"),
        column(contexts, "volume_24h"),
        thresholds,
        depth_5bps=column(contexts, "depth_5bps") if pass_depth else None,
        spread_bps=column(contexts, "spread_bps") if pass_spread else None,
    )
    detector = RegimeDetector(thresholds)
    for i, context in enumerate(contexts):
        if not pass_depth:
            context = replace(context, depth_5bps=None)
        if not pass_spread:
            context = replace(context, spread_bps=None)
        expected = detector.detect_regime(context)
        event(expected.regime.value)
        assert REGIMES[codes[i]] is expected.regime, (i, context, expected)
        assert abs(confidence[i] - expected.confidence) <= 1e-12, (i, context, expected)
        assert 0.0 <= expected.confidence <= 1.0


# --------------------------------------------------------------------------------------------
# Whole frames: a synthetic market with distinct phases
# --------------------------------------------------------------------------------------------


def synthetic_ohlcv(seed: int = 7) -> pd.DataFrame:
    """3000 hourly candles: seeded random walk through ranging, trending, volatile and
    illiquid phases. ``volume`` is in the base asset, as Freqtrade stores it."""
    rng = np.random.default_rng(seed)
    # (candles, drift per candle, volatility per candle, quote volume per candle)
    phases = [
        (500, 0.0, 0.003, 3e6),  # quiet range
        (400, 0.003, 0.004, 3e6),  # trend up
        (400, 0.0, 0.02, 3e6),  # choppy, wide range
        (400, -0.003, 0.004, 3e6),  # trend down
        (200, 0.0, 0.06, 6e6),  # high-volatility burst
        (300, 0.0, 0.004, 3e4),  # illiquid lull
        (800, 0.0, 0.003, 3e6),  # quiet range again
    ]
    drift = np.concatenate([np.full(n, d) for n, d, _, _ in phases])
    sigma = np.concatenate([np.full(n, s) for n, _, s, _ in phases])
    quote = np.concatenate([np.full(n, q) for n, _, _, q in phases])
    n = len(drift)
    close = 100.0 * np.exp(np.cumsum(drift + sigma * rng.standard_normal(n)))
    open_ = np.concatenate([[100.0], close[:-1]])
    high = np.maximum(open_, close) * np.exp(0.5 * sigma * np.abs(rng.standard_normal(n)))
    low = np.minimum(open_, close) * np.exp(-0.5 * sigma * np.abs(rng.standard_normal(n)))
    volume = quote / close * rng.lognormal(0.0, 0.3, n)
    return pd.DataFrame(
        {
            "date": pd.date_range("2024-01-01", periods=n, freq="h", tz="UTC"),
            "open": open_,
            "high": high,
            "low": low,
            "close": close,
            "volume": volume,
        }
    )


@pytest.fixture(scope="module")
def market() -> pd.DataFrame:
    return synthetic_ohlcv()


def context_from_row(row: dict[Any, Any]) -> MarketContext:
    """The context the live strategy would build from one dataframe row."""

    def get(name: str) -> float | None:
        value = row.get(name)
        return None if value is None or pd.isna(value) else float(value)

    return MarketContext(
        symbol="SYN/USDT",
        timeframe="1h",
        current_price=get("close"),
        atr=get("atr"),
        atr_pct=get("atr_pct"),
        adx=get("adx"),
        trend_strength=get("trend_strength"),
        volume_24h=get("volume_24h"),
        depth_5bps=get("depth_5bps"),
        spread_bps=get("spread_bps"),
    )


def assert_rows_match_scalar(df: pd.DataFrame, thresholds: RegimeThresholds) -> None:
    detector = RegimeDetector(thresholds)
    for row in df.to_dict("records"):
        expected = detector.detect_regime(context_from_row(row))
        assert row["regime"] == expected.regime.value, (row, expected)
        assert abs(row["regime_confidence"] - expected.confidence) <= 1e-12, (row, expected)


def test_add_regime_columns_matches_scalar_detector_row_by_row(market: pd.DataFrame) -> None:
    df = market.copy()
    out = add_regime_columns(df, "1h")
    assert out is df  # modified in place and returned, Freqtrade style
    assert set(ADDED_COLUMNS) <= set(out.columns)
    counts = out["regime"].value_counts()
    assert len(counts) >= 4, counts  # the frame exercises the classifier meaningfully
    for regime in ("trend_up", "trend_down", "range_low_vol", "high_volatility", "illiquid"):
        assert counts.get(regime, 0) > 50, counts
    assert set(out["regime"]) <= {r.value for r in REGIMES}
    assert out["regime_confidence"].between(0.0, 1.0).all()
    assert (out["regime"].iloc[:27] == "unknown").all()  # ADX warm-up
    assert_rows_match_scalar(out, DEFAULTS)


def test_add_regime_columns_uses_depth_and_spread_columns(market: pd.DataFrame) -> None:
    df = market.iloc[:800].copy()
    rng = np.random.default_rng(3)
    df["depth_5bps"] = np.where(rng.random(len(df)) < 0.1, 10_000.0, np.nan)
    df["spread_bps"] = np.where(rng.random(len(df)) < 0.1, 30.0, 1.0)
    plain = add_regime_columns(df.drop(columns=["depth_5bps", "spread_bps"]), "1h")
    add_regime_columns(df, "1h")
    assert (df["regime"] == "illiquid").sum() > (plain["regime"] == "illiquid").sum()
    assert_rows_match_scalar(df, DEFAULTS)


def test_classify_on_precomputed_features_equals_add_regime_columns(market: pd.DataFrame) -> None:
    t = RegimeThresholds(trend_adx_threshold=30.0, high_vol_atr_pct_threshold=0.03)
    features = compute_regime_features(market, "1h")
    codes, conf = classify_regimes(
        features["adx"].to_numpy(),
        features["atr_pct"].to_numpy(),
        features["trend_strength"].to_numpy(),
        features["volume_24h"].to_numpy(),
        t,
    )
    full = add_regime_columns(market.copy(), "1h", t)
    assert [REGIMES[c].value for c in codes] == full["regime"].tolist()
    assert np.array_equal(conf, full["regime_confidence"].to_numpy())


def _same(a: pd.Series, b: pd.Series) -> bool:
    """Exact, NaN-aware equality of two columns (values only)."""
    if a.dtype.kind == "f" or b.dtype.kind == "f":
        return bool(np.array_equal(a.to_numpy(), b.to_numpy(), equal_nan=True))
    return a.tolist() == b.tolist()


@pytest.mark.parametrize("cut", [30, 60, 500, 1234, 1850, 2200, 2999])
def test_no_lookahead(market: pd.DataFrame, cut: int) -> None:
    full = add_regime_columns(market.copy(), "1h")
    part = add_regime_columns(market.iloc[:cut].copy(), "1h")
    for name in ADDED_COLUMNS:
        assert _same(part[name], full[name].iloc[:cut]), name


@pytest.mark.parametrize(
    ("change", "check"),
    [
        ({"trend_adx_threshold": 40.0}, lambda a, b: b["trend_up"] < a["trend_up"]),
        ({"trend_strength_threshold": 0.6}, lambda a, b: b["trend_down"] < a["trend_down"]),
        ({"illiquid_volume_threshold": 0.0}, lambda a, b: b["illiquid"] == 0 < a["illiquid"]),
        (
            {"extreme_vol_atr_pct_threshold": 0.2},
            lambda a, b: b["high_volatility"] < a["high_volatility"],
        ),
        (
            {"low_vol_atr_pct_threshold": 0.001, "high_vol_atr_pct_threshold": 0.005},
            lambda a, b: b["range_high_vol"] > a["range_high_vol"],
        ),
    ],
)
def test_threshold_change_changes_regime_mix(
    market: pd.DataFrame,
    change: dict[str, float],
    check: Callable[[dict[str, int], dict[str, int]], bool],
) -> None:
    features = compute_regime_features(market, "1h")
    adx, atr_pct, trend_strength, volume_24h = (
        features[c].to_numpy() for c in ("adx", "atr_pct", "trend_strength", "volume_24h")
    )

    def mix(t: RegimeThresholds) -> dict[str, int]:
        codes, _ = classify_regimes(adx, atr_pct, trend_strength, volume_24h, t)
        counts = np.bincount(codes, minlength=len(REGIMES))
        return {r.value: int(n) for r, n in zip(REGIMES, counts, strict=True)}

    before = mix(DEFAULTS)
    after = mix(RegimeThresholds.from_dict(change))
    assert check(before, after), (before, after)
    assert sum(after.values()) == sum(before.values()) == len(market)
