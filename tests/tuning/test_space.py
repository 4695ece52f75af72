"""The search space: which parameters act on which policy, range overrides, and what values mean."""

from __future__ import annotations

import itertools

import pytest

from freqtrade_metastrategy.config import MetaStrategyConfig
from freqtrade_metastrategy.errors import ConfigError
from freqtrade_metastrategy.hyper import MetaHyperMixin
from freqtrade_metastrategy.tuning.space import (
    ORDERED,
    PARAMETERS,
    SPACES,
    configured_value,
    search_space,
)

REGIME = ("regime_trend_adx", "regime_trend_strength", "regime_low_vol_atr_pct",
          "regime_high_vol_atr_pct", "regime_extreme_vol_atr_pct", "regime_illiquid_volume_musd")


def cfg(**section: object) -> MetaStrategyConfig:
    return MetaStrategyConfig.from_dict(section)


@pytest.mark.parametrize(("section", "policy_params"), [
    ({}, ("fullinfo_half_life", "fullinfo_min_signals", "fullinfo_stand_aside_margin")),
    ({"stand_aside": False}, ("fullinfo_half_life", "fullinfo_min_signals")),
    ({"estimator": "ema"}, ("fullinfo_alpha", "fullinfo_min_signals",
                            "fullinfo_stand_aside_margin")),
    ({"estimator": "mean"}, ("fullinfo_min_signals", "fullinfo_stand_aside_margin")),
    ({"policy": "contextual_ridge"},
     ("fullinfo_half_life", "fullinfo_min_signals", "fullinfo_stand_aside_margin",
      "fullinfo_switch_margin", "fullinfo_ridge_lambda")),
    ({"policy": "epsilon_greedy"}, ("learner_epsilon", "learner_alpha", "learner_min_samples")),
    ({"policy": "ucb1"}, ("learner_alpha", "learner_min_samples")),
    ({"policy": "epsilon_greedy", "policy_params": {"epsilon": 0.05}},
     ("learner_alpha", "learner_min_samples")),
])
def test_the_space_holds_what_acts_on_the_policy(section: dict[str, object],
                                                 policy_params: tuple[str, ...]) -> None:
    assert search_space(cfg(**section)).names == (*REGIME, *policy_params)


def test_spaces_select_and_every_parameter_is_freqtrades_hyperopt_parameter() -> None:
    assert search_space(cfg(), spaces=("regime",)).names == REGIME
    assert search_space(cfg(), spaces=("fullinfo",)).names[0] == "fullinfo_half_life"
    for name, p in PARAMETERS.items():
        ft = getattr(MetaHyperMixin, name)
        assert (ft.space, float(ft.low), float(ft.high)) == (p.space, p.low, p.high), name
        assert float(ft.value) == p.default, name
        assert getattr(ft, "decimals", None) == p.decimals, name
    assert set(SPACES) == {p.space for p in PARAMETERS.values()}


def test_defaults_are_the_configured_values() -> None:
    c = cfg(thresholds={"trend_adx_threshold": 30.0, "illiquid_volume_threshold": 5e6},
            half_life=400, min_signals=50, stand_aside_margin=0.1)
    d = search_space(c).defaults()
    assert d["regime_trend_adx"] == 30.0
    assert d["regime_illiquid_volume_musd"] == 5.0
    assert (d["fullinfo_half_life"], d["fullinfo_min_signals"],
            d["fullinfo_stand_aside_margin"]) == (400.0, 50.0, 0.1)
    assert configured_value(cfg(policy="epsilon_greedy", epsilon=0.2), "learner_epsilon") == 0.2


def test_apply_maps_values_to_the_settings() -> None:
    space = search_space(cfg(policy="contextual_ridge"))
    s = space.apply({"regime_illiquid_volume_musd": 3.04, "regime_trend_adx": 27.26,
                     "fullinfo_min_signals": 99.6, "fullinfo_ridge_lambda": 10,
                     "fullinfo_switch_margin": 0.123})
    assert s.thresholds.illiquid_volume_threshold == pytest.approx(3.0e6)
    assert s.thresholds.trend_adx_threshold == 27.3  # the parameter's grid (1 decimal)
    assert s.full_info is not None
    assert s.full_info.min_signals == 100 and isinstance(s.full_info.min_signals, int)
    assert s.full_info.ridge_lambda == 10
    assert s.full_info.switch_margin == 0.12
    assert s.full_info.policy == "contextual_ridge"
    assert s.thresholds.high_vol_atr_pct_threshold == 0.04  # untouched: the base config's


def test_apply_refuses_values_out_of_range_and_unknown_names() -> None:
    space = search_space(cfg())
    with pytest.raises(ConfigError, match=r"regime_trend_adx.*outside its range 15\.\.40"):
        space.apply({"regime_trend_adx": 50.0})
    with pytest.raises(ConfigError, match=r"nope.*unknown parameter"):
        space.apply({"nope": 1.0})


def test_every_corner_of_the_box_is_a_valid_setting() -> None:
    """The ordered ATR% ranges never cross, so every corner of the default box applies."""
    space = search_space(cfg(policy="contextual_ridge"))
    for corner in itertools.product((0, 1), repeat=len(space.parameters)):
        space.apply({p.name: (p.low, p.high)[c]
                     for p, c in zip(space.parameters, corner, strict=True)})
    for lo, hi in ORDERED:
        assert PARAMETERS[lo].high < PARAMETERS[hi].low


@pytest.mark.parametrize("name", list(PARAMETERS))
def test_sampling_around_the_range_gives_every_grid_point_a_whole_step(name: str) -> None:
    """``tune`` samples over [low - step/2, high + step/2): each grid point, the ends too,
    collects the values within half a step of it, and nothing leaves the range."""
    p = PARAMETERS[name]
    h = p.step / 2
    eps = p.step * 1e-6
    assert p.sampled(p.low - h) == p.low and p.sampled(p.low + h - eps) == p.low
    assert p.sampled(p.low + h + eps) == p.snap(p.low + p.step)
    assert p.sampled(p.high + h - eps) == p.high and p.sampled(p.high - h + eps) == p.high
    assert p.sampled(p.high - h - eps) == p.snap(p.high - p.step)
    for raw in (p.low - 10 * h, p.high + 10 * h):
        assert p.low <= p.sampled(raw) <= p.high


@pytest.mark.parametrize(("overrides", "message"), [
    ({"regime_low_vol_atr_pct": (0.01, 0.03)},
     "--param regime_low_vol_atr_pct=0.01:0.03: overlaps regime_high_vol_atr_pct"),
    ({"regime_high_vol_atr_pct": (0.05, 0.07)},
     "--param regime_high_vol_atr_pct=0.05:0.07: overlaps regime_extreme_vol_atr_pct"),
    ({"regime_high_vol_atr_pct": (0.01, 0.03)},
     "--param regime_high_vol_atr_pct=0.01:0.03: overlaps regime_low_vol_atr_pct"),
    ({"regime_nope": (1, 2)}, "--param regime_nope: unknown parameter"),
    ({"regime_trend_adx": (30, 20)}, "needs LOW < HIGH"),
    ({"fullinfo_half_life": (0, 100)}, "log scale: LOW must be > 0"),
    ({"fullinfo_min_signals": (10.5, 100)}, "integer parameter"),
    ({"learner_epsilon": (0.0, 0.2)}, "has no effect on metastrategy.policy"),
    ({"fullinfo_ridge_lambda": (1, 10)}, "has no effect on metastrategy.policy"),
])
def test_bad_overrides_name_the_parameter_and_the_fix(
        overrides: dict[str, tuple[float, float]], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(".", r"\.")):
        search_space(cfg(), overrides=overrides)


def test_an_epsilon_set_in_policy_params_is_not_searched() -> None:
    section = cfg(policy="epsilon_greedy", policy_params={"epsilon": 0.05})
    with pytest.raises(ConfigError, match=r"--param learner_epsilon: has no effect on "
                       r"metastrategy\.policy 'epsilon_greedy' with this config \(its "
                       r"estimator, stand_aside, policy_params\); remove it"):
        search_space(section, overrides={"learner_epsilon": (0.0, 0.2)})


def test_an_override_outside_the_searched_spaces_and_an_unknown_space() -> None:
    with pytest.raises(ConfigError, match="is in space 'fullinfo', not searched"):
        search_space(cfg(), overrides={"fullinfo_half_life": (100, 200)}, spaces=("regime",))
    with pytest.raises(ConfigError, match="--spaces buy: unknown space"):
        search_space(cfg(), spaces=("buy",))


def test_a_narrower_range_is_kept_and_signed() -> None:
    space = search_space(cfg(), overrides={"regime_trend_adx": (20, 30)})
    p = dict(zip(space.names, space.parameters, strict=True))["regime_trend_adx"]
    assert (p.low, p.high) == (20.0, 30.0)
    assert space.signature()["regime_trend_adx"]["low"] == 20.0
    assert space.signature() != search_space(cfg()).signature()
