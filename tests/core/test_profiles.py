"""Profiles: built-in values, validation of user profiles, immutability, rescaling."""

from __future__ import annotations

import dataclasses

import pytest

from freqtrade_metastrategy.errors import ConfigError
from freqtrade_metastrategy.profiles import (
    BUILTIN_PROFILES,
    DEFAULT_STRATEGY,
    ProfileRegistry,
    StrategyID,
    get_default_strategy,
    get_strategy_profile,
)

# The table of DEVELOPERS.md: SL, TP1, TP2, TP3 in R.
EXPECTED_R = {
    "defensive": (1.0, 1.5, 2.5, 4.0),
    "moderate": (1.0, 2.0, 3.5, 5.5),
    "moderate_aggressive": (1.0, 2.5, 4.0, 6.0),
    "balanced_aggressive": (1.5, 4.0, 6.0, 10.0),
    "ultra_aggressive": (1.0, 3.0, 5.0, 8.0),
    "scalp": (0.8, 1.2, 1.8, 2.5),
    "trend_rider": (2.0, 5.0, 8.0, 12.0),
}


@pytest.mark.parametrize("sid", list(StrategyID))
def test_builtin_r_levels_match_the_table(sid: StrategyID) -> None:
    p = get_strategy_profile(sid)
    assert (p.r_sl, p.r_tp1, p.r_tp2, p.r_tp3) == EXPECTED_R[sid.value]
    assert sum(p.partial_fractions) == pytest.approx(1.0, abs=1e-12)
    assert (p.breakeven_after_tp, p.breakeven_offset_r) == (1, 0.0)  # breakeven after TP1
    assert p.trail_after_tp == 2  # trailing after TP2


def test_seven_builtins_and_default() -> None:
    assert set(BUILTIN_PROFILES) == set(EXPECTED_R)
    assert DEFAULT_STRATEGY == "ultra_aggressive"
    assert get_default_strategy().strategy_id == StrategyID.ULTRA_AGGRESSIVE


def test_lookup_by_string_and_enum_is_the_same_object() -> None:
    assert get_strategy_profile("SCALP") is get_strategy_profile(StrategyID.SCALP)
    with pytest.raises(ConfigError, match="unknown profile 'nope'"):
        get_strategy_profile("nope")


def test_to_tpsl_config_keys() -> None:
    cfg = get_strategy_profile("trend_rider").to_tpsl_config()
    assert cfg["atr_mult_sl"] == 2.0
    assert (cfg["atr_mult_tp1"], cfg["atr_mult_tp2"], cfg["atr_mult_tp3"]) == (5.0, 8.0, 12.0)
    assert cfg["trail_dist_mult"] == 1.5
    assert (cfg["partial_close_tp1"], cfg["partial_close_tp2"], cfg["partial_close_tp3"]) == (
        0.3, 0.3, 0.4,
    )


def test_profiles_are_immutable() -> None:
    p = get_strategy_profile("moderate")
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.r_sl = 3.0  # type: ignore[misc]


def test_scaled_keeps_fractions_and_validates() -> None:
    p = get_strategy_profile("moderate").scaled(0.5)
    assert (p.r_sl, p.r_tp1, p.r_tp3) == (0.5, 1.0, 2.75)
    assert p.partial_fractions == (0.5, 0.3, 0.2)
    with pytest.raises(ConfigError, match="factor"):
        get_strategy_profile("moderate").scaled(0.0)


def test_user_profile_from_config_without_code() -> None:
    reg = ProfileRegistry.from_config(
        {
            "swing": {
                "r_sl": 1.5, "r_tp1": 2, "r_tp2": 4, "r_tp3": 7,
                "partial_close_tp1": 0.4, "partial_close_tp2": 0.4, "partial_close_tp3": 0.2,
                "aggressiveness": "medium", "suitable_for_ranging": False,
            },
            "defensive": {"r_tp3": 4.5},
        }
    )
    assert len(reg) == 8
    swing = reg["swing"]
    assert swing.tp_levels == (2.0, 4.0, 7.0) and isinstance(swing.r_tp1, float)
    assert swing.breakeven_after_tp == 1 and swing.trail_after_tp == 2
    assert reg["defensive"].r_tp3 == 4.5
    assert BUILTIN_PROFILES["defensive"].r_tp3 == 4.0  # built-ins untouched


def test_user_profile_based_on_another() -> None:
    reg = ProfileRegistry.from_config({"wide_scalp": {"base": "scalp", "r_sl": 1.0}})
    assert reg["wide_scalp"].r_tp1 == 1.2 and reg["wide_scalp"].r_sl == 1.0
    assert reg["wide_scalp"].name == "wide_scalp"


@pytest.mark.parametrize(
    ("spec", "field", "message"),
    [
        ({"base": "moderate", "r_sl": 0}, "r_sl", "must be > 0"),
        ({"base": "moderate", "r_sl": -1.0}, "r_sl", "must be > 0"),
        ({"base": "moderate", "r_tp2": 1.5}, "r_tp2", "must be > r_tp1"),
        ({"base": "moderate", "r_tp3": 3.5}, "r_tp3", "must be > r_tp2"),
        ({"base": "moderate", "partial_close_tp1": 0.0}, "partial_close_tp1", "in \\(0, 1\\]"),
        ({"base": "moderate", "partial_close_tp2": 1.5}, "partial_close_tp2", "in \\(0, 1\\]"),
        ({"base": "moderate", "partial_close_tp1": 0.6}, "partial_close_tp3", "sum to 1"),
        ({"base": "moderate", "r_tp5": 9.0}, "r_tp5", "unknown field"),
        ({"base": "moderate", "r_sl": float("nan")}, "r_sl", "finite number"),
        ({"base": "moderate", "r_sl": "1"}, "r_sl", "finite number"),
        ({"base": "moderate", "trail_after_tp": 3}, "trail_after_tp", "0 \\(never\\)"),
        ({"base": "moderate", "breakeven_after_tp": 1.0}, "breakeven_after_tp", "0 \\(never\\)"),
        ({"base": "moderate", "breakeven_offset_r": 2.0}, "breakeven_offset_r", "r_tp1"),
        ({"base": "moderate", "trail_distance_r": 0.0}, "trail_distance_r", "must be > 0"),
        ({"base": "moderate", "aggressiveness": "wild"}, "aggressiveness", "must be one of"),
        ({"base": "nope"}, "base", "unknown profile"),
        ({"r_sl": 1.0, "r_tp1": 2.0, "r_tp2": 3.0}, "r_tp3", "required for a new profile"),
    ],
)
def test_invalid_profiles_name_profile_and_field(
    spec: dict[str, object], field: str, message: str
) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        ProfileRegistry.from_config({"bad_plan": spec})
    assert info.value.field == f"metastrategy.profiles.bad_plan.{field}"


def test_invalid_profile_id_is_rejected() -> None:
    with pytest.raises(ConfigError, match="profile id"):
        ProfileRegistry.from_config({"Bad Plan!": {"base": "moderate"}})


def test_require_names_the_field() -> None:
    with pytest.raises(ConfigError) as info:
        ProfileRegistry().require("ghost", "metastrategy.default_strategy")
    assert info.value.field == "metastrategy.default_strategy"
    assert "ultra_aggressive" in str(info.value)
