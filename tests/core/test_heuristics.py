"""Heuristics: candidates per regime from the suitability flags, the heuristic table."""

from __future__ import annotations

from dataclasses import replace

import pytest

from freqtrade_metastrategy.errors import ConfigError
from freqtrade_metastrategy.heuristics import (
    DEFAULT_HEURISTIC,
    REGIME_NAMES,
    candidates,
    check_heuristic,
    heuristic_choice,
)
from freqtrade_metastrategy.profiles import (
    BUILTIN_PROFILES,
    AggressivenessLevel,
    ProfileRegistry,
    StrategyProfile,
)
from freqtrade_metastrategy.regime import MarketRegime
from freqtrade_metastrategy.selector import MetaStrategySelector, SelectorConfig

A = AggressivenessLevel


def profile(pid: str, aggressiveness: AggressivenessLevel = A.MEDIUM, *, rr: float = 1.5,
            trending: bool = False, ranging: bool = False, high_vol: bool = False,
            low_vol: bool = False) -> StrategyProfile:
    return replace(BUILTIN_PROFILES["moderate"], strategy_id=pid, name=pid,
                   aggressiveness=aggressiveness, expected_risk_reward=rr,
                   suitable_for_trending=trending, suitable_for_ranging=ranging,
                   suitable_for_high_vol=high_vol, suitable_for_low_vol=low_vol)


# One flag combination per profile, so each regime's rule picks a known set.
FLAGGED = ProfileRegistry({p.strategy_id: p for p in (
    profile("trend_only", A.HIGH, trending=True),
    profile("quiet_range", ranging=True, low_vol=True),
    profile("wild_range", ranging=True, high_vol=True),
    profile("vol_only", A.HIGH, high_vol=True),
    profile("cautious", A.LOW),
    profile("very_cautious", A.VERY_LOW, rr=3.0),
)})


def test_regime_names_are_the_market_regimes() -> None:
    assert tuple(r.value for r in MarketRegime) == REGIME_NAMES


@pytest.mark.parametrize(
    ("regime", "expected"),
    [
        (MarketRegime.TREND_UP, ["trend_only"]),
        (MarketRegime.TREND_DOWN, ["trend_only"]),
        (MarketRegime.RANGE_LOW_VOL, ["quiet_range"]),
        (MarketRegime.RANGE_HIGH_VOL, ["wild_range"]),
        (MarketRegime.HIGH_VOLATILITY, ["wild_range", "vol_only"]),
        (MarketRegime.ILLIQUID, ["cautious", "very_cautious"]),
        (MarketRegime.UNKNOWN, list(FLAGGED)),
    ],
)
def test_candidates_follow_the_suitability_flags(regime: MarketRegime,
                                                 expected: list[str]) -> None:
    assert candidates(FLAGGED, regime.value) == expected
    assert candidates(FLAGGED, regime) == expected  # a member is its value


def test_no_match_or_a_name_outside_the_regimes_gives_every_profile() -> None:
    only_cautious = ProfileRegistry({"cautious": FLAGGED["cautious"]})
    assert candidates(only_cautious, "trend_up") == ["cautious"]
    assert candidates(FLAGGED, "sideways") == list(FLAGGED)
    assert candidates(FLAGGED, "TREND_UP") == list(FLAGGED)  # exact names only


def test_builtin_candidates() -> None:
    reg = ProfileRegistry()
    assert candidates(reg, "range_low_vol") == ["defensive", "moderate", "scalp"]
    assert candidates(reg, "illiquid") == ["defensive", "moderate", "scalp"]
    assert "scalp" not in candidates(reg, "trend_up")
    assert "trend_rider" not in candidates(reg, "range_high_vol")


def test_default_table_covers_every_regime_with_one_of_its_candidates() -> None:
    reg = ProfileRegistry()
    assert set(DEFAULT_HEURISTIC) == set(REGIME_NAMES)
    for regime, pid in DEFAULT_HEURISTIC.items():
        assert pid in candidates(reg, regime), regime
        cands = candidates(reg, regime)
        assert heuristic_choice(reg, regime, cands, DEFAULT_HEURISTIC, "moderate") == pid
    assert SelectorConfig().heuristic == DEFAULT_HEURISTIC


def test_custom_table_default_and_non_candidate_fallback() -> None:
    table = {"illiquid": "cautious", "trend_up": "cautious"}
    illiquid = candidates(FLAGGED, "illiquid")
    assert heuristic_choice(FLAGGED, "illiquid", illiquid, table, "very_cautious") == "cautious"
    # a regime the table leaves out: the default profile
    assert heuristic_choice(FLAGGED, "unknown", list(FLAGGED), table, "vol_only") == "vol_only"
    # the table's profile is not a candidate: the highest expected_risk_reward
    assert heuristic_choice(FLAGGED, "trend_up", ["trend_only"], table, "x") == "trend_only"
    both = ["cautious", "very_cautious"]
    assert heuristic_choice(FLAGGED, "range_low_vol", both, table, "wild_range") == (
        "very_cautious")


def test_custom_table_reaches_the_selector() -> None:
    sel = MetaStrategySelector(seed=0, epsilon=0.0,
                               heuristic={"range_low_vol": "moderate"},
                               default_strategy="defensive")
    d = sel.choose_profile("BTC/USDT", "range_low_vol")
    assert (d.profile_id, d.is_heuristic) == ("moderate", True)
    # a regime the custom table leaves out: default_strategy
    assert sel.choose_profile("BTC/USDT", "illiquid").profile_id == "defensive"


@pytest.mark.parametrize("bad", ["sideways", "TREND_UP", "trend"])
def test_unknown_regime_in_the_table_is_refused_naming_the_key(bad: str) -> None:
    with pytest.raises(ConfigError) as info:
        check_heuristic({"trend_up": "scalp", bad: "scalp"})
    assert info.value.field == f"metastrategy.heuristic.{bad}"
    assert "unknown regime" in info.value.message
    assert all(name in info.value.message for name in REGIME_NAMES)
    with pytest.raises(ConfigError) as info:
        SelectorConfig(heuristic={bad: "scalp"})
    assert info.value.field == f"metastrategy.heuristic.{bad}"
    with pytest.raises(ConfigError) as info:
        check_heuristic({bad: "scalp"}, prefix="ms")
    assert info.value.field == f"ms.heuristic.{bad}"


def test_every_regime_name_is_accepted() -> None:
    check_heuristic(dict.fromkeys(MarketRegime, "scalp"))
    check_heuristic(dict.fromkeys(REGIME_NAMES, "scalp"))
