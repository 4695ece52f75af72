"""The metastrategy config section: defaults, validation, cross-checks."""

from __future__ import annotations

from typing import Any

import pytest

from freqtrade_metastrategy.config import DEFAULT_SEED, MetaStrategyConfig
from freqtrade_metastrategy.errors import ConfigError


def test_defaults_are_the_seeds() -> None:
    cfg = MetaStrategyConfig.from_freqtrade_config({})
    sel = cfg.selector
    assert (sel.policy, sel.epsilon, sel.alpha, sel.min_samples) == ("epsilon_greedy", 0.1,
                                                                      0.2, 5)
    assert sel.seed == DEFAULT_SEED and sel.default_strategy == "ultra_aggressive"
    assert cfg.enabled and cfg.block_illiquid and cfg.store_url is None
    assert cfg.thresholds.trend_adx_threshold == 25.0
    assert len(cfg.profiles) == 7


def test_full_section() -> None:
    cfg = MetaStrategyConfig.from_dict({
        "enabled": False, "policy": "thompson", "seed": None, "block_illiquid": False,
        "store_url": "sqlite:////tmp/x.sqlite", "pretrained": "q.json",
        "thresholds": {"low_vol_atr_pct_threshold": 0.01},
        "profiles": {"swing": {"base": "moderate", "r_sl": 1.5}},
        "default_strategy": "swing", "heuristic": {"trend_up": "swing"},
        "policy_params": {"prior_var": 2.0},
    })
    assert not cfg.enabled and cfg.selector.seed is None
    assert cfg.selector.build_policy().name == "thompson"
    assert cfg.profiles["swing"].r_sl == 1.5


@pytest.mark.parametrize(
    ("section", "field"),
    [
        ({"enabeld": True}, "metastrategy.enabeld"),
        ({"enabled": "yes"}, "metastrategy.enabled"),
        ({"block_illiquid": 1}, "metastrategy.block_illiquid"),
        ({"store_url": ""}, "metastrategy.store_url"),
        ({"epsilon": 1.2}, "metastrategy.epsilon"),
        ({"min_samples": 0}, "metastrategy.min_samples"),
        ({"policy": "softmax"}, "metastrategy.policy"),
        ({"thresholds": {"adx": 20}}, "metastrategy.thresholds.adx"),
        ({"thresholds": []}, "metastrategy.thresholds"),
        ({"profiles": {"scalp": {"r_tp1": 5.0}}}, "metastrategy.profiles.scalp.r_tp2"),
        ({"default_strategy": "ghost"}, "metastrategy.default_strategy"),
        ({"heuristic": {"trend_up": "ghost"}}, "metastrategy.heuristic.trend_up"),
        ({"reward_unit": "usd"}, "metastrategy.reward_unit"),
        ({"exploit_min_q": "x"}, "metastrategy.exploit_min_q"),
        ({"exploit_min_q": True}, "metastrategy.exploit_min_q"),
        ({"epsilon_decay": "x"}, "metastrategy.epsilon_decay"),
        ({"min_epsilon": -0.1}, "metastrategy.min_epsilon"),
        ({"policy_params": [1]}, "metastrategy.policy_params"),
        ({"policy_params": {"c": 1}, "policy": "epsilon_greedy"}, "metastrategy.policy_params"),
        ({"heuristic": ["scalp"]}, "metastrategy.heuristic"),
        ({"policy": 3}, "metastrategy.policy"),
        ({"policy_params": {"exploit_min_q": "0.4"}}, "metastrategy.policy_params.exploit_min_q"),
        ({"policy": "thompson", "policy_params": {"prior_mean": "abc"}},
         "metastrategy.policy_params.prior_mean"),
        ({"policy": "thompson", "policy_params": {"propensity_samples": 2.7}},
         "metastrategy.policy_params.propensity_samples"),
    ],
)
def test_errors_name_the_key(section: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigError) as info:
        MetaStrategyConfig.from_dict(section)
    assert info.value.field == field


def test_section_must_be_an_object() -> None:
    with pytest.raises(ConfigError, match="must be an object"):
        MetaStrategyConfig.from_dict([])  # type: ignore[arg-type]
