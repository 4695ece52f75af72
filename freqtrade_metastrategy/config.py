"""The ``metastrategy`` section of a Freqtrade config, validated once at start-up.

Every key is optional; defaults are the seeds' settings. A wrong value raises
:class:`~freqtrade_metastrategy.errors.ConfigError` naming the key and what is allowed:

>>> cfg = MetaStrategyConfig.from_dict({"epsilon": 0.2, "thresholds": {"trend_adx_threshold": 30}})
>>> cfg.selector.epsilon, cfg.thresholds.trend_adx_threshold, cfg.selector.seed
(0.2, 30.0, 42)
>>> MetaStrategyConfig.from_dict({"policy": "softmax"})
Traceback (most recent call last):
...
freqtrade_metastrategy.errors.ConfigError: metastrategy.policy: unknown policy 'softmax'; ...

Keys
----
enabled (true)
    false: every trade uses ``default_strategy``; realized R is still recorded.
block_illiquid (true)
    refuse new entries whose signal candle is ``illiquid``.
store_url (null)
    SQLAlchemy URL of the live Q-table; null = ``<user_data_dir>/metastrategy.sqlite``.
    Only live and dry-run use it: backtests and hyperopt learn in memory.
pretrained (null)
    an exported Q-table (``freqtrade-metastrategy export``) that backtests and hyperopt
    epochs start from instead of an empty table.
reward_unit ("r_atr")
    what the learner optimises: ``r_atr`` (net profit / (amount x 1R), the seeds' R),
    ``r_risk`` (R per unit of stop distance: ``r_atr / r_sl``) or ``ret_pct`` (net profit as a
    percent of the position's entry value: what a fixed-stake wallet sees at 1x). The same
    definitions as the evaluation report's units.
leader_pair (null)
    the market leader whose trend, volatility and 24 h return are context features of every
    signal; null = ``BTC/<stake currency>``.
backtest_qtable_file (null)
    where a backtest writes its learned table; null =
    ``<user_data_dir>/backtest_results/metastrategy_qtable.json``.
thresholds
    regime thresholds (:class:`~freqtrade_metastrategy.regime.RegimeThresholds` fields).
profiles
    profile overrides and user profiles (:meth:`ProfileRegistry.from_config`).
policy, epsilon, alpha, min_samples, seed (42), epsilon_decay, min_epsilon, exploit_min_q,
pool_across_symbols, default_strategy, heuristic, policy_params
    the learner (:class:`~freqtrade_metastrategy.selector.SelectorConfig`). ``seed`` defaults to
    42 so two backtests of the same config give identical results; ``null`` = unseeded.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from freqtrade_metastrategy.errors import ConfigError
from freqtrade_metastrategy.profiles import ProfileRegistry
from freqtrade_metastrategy.regime import RegimeThresholds
from freqtrade_metastrategy.selector import SelectorConfig
from freqtrade_metastrategy.trade_math import REWARD_UNITS

SECTION = "metastrategy"
DEFAULT_SEED = 42
_OWN_KEYS = ("enabled", "block_illiquid", "store_url", "pretrained", "backtest_qtable_file",
             "thresholds", "profiles", "reward_unit", "leader_pair")
_SELECTOR_KEYS = tuple(f.name for f in fields(SelectorConfig))


def _bool(data: Mapping[str, Any], key: str, default: bool) -> bool:
    value = data.get(key, default)
    if not isinstance(value, bool):
        raise ConfigError(f"{SECTION}.{key}", f"must be true or false, got {value!r}")
    return value


def _opt_str(data: Mapping[str, Any], key: str) -> str | None:
    value = data.get(key)
    if value is not None and (not isinstance(value, str) or not value.strip()):
        raise ConfigError(f"{SECTION}.{key}", f"must be a non-empty string or null, got {value!r}")
    return value


@dataclass(frozen=True)
class MetaStrategyConfig:
    """The validated ``metastrategy`` section."""

    enabled: bool = True
    block_illiquid: bool = True
    store_url: str | None = None
    pretrained: str | None = None
    backtest_qtable_file: str | None = None
    leader_pair: str | None = None
    reward_unit: str = "r_atr"
    thresholds: RegimeThresholds = field(default_factory=RegimeThresholds)
    profiles: ProfileRegistry = field(default_factory=ProfileRegistry)
    selector: SelectorConfig = field(default_factory=lambda: SelectorConfig(seed=DEFAULT_SEED))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> MetaStrategyConfig:
        data = {} if data is None else data
        if not isinstance(data, Mapping):
            raise ConfigError(SECTION, f"must be an object, got {type(data).__name__}")
        allowed = (*_OWN_KEYS, *_SELECTOR_KEYS)
        for key in data:
            if key not in allowed:
                raise ConfigError(
                    f"{SECTION}.{key}", f"unknown key; allowed: {', '.join(sorted(allowed))}"
                )
        thresholds = data.get("thresholds")
        thresholds = {} if thresholds is None else thresholds
        if not isinstance(thresholds, Mapping):
            raise ConfigError(f"{SECTION}.thresholds", "must be an object {name: value}")
        reward_unit = data.get("reward_unit", "r_atr")
        if reward_unit not in REWARD_UNITS:
            raise ConfigError(f"{SECTION}.reward_unit",
                              f"must be one of {', '.join(REWARD_UNITS)}, got {reward_unit!r}")
        selector_values = {k: data[k] for k in _SELECTOR_KEYS if k in data}
        selector_values.setdefault("seed", DEFAULT_SEED)
        cfg = cls(
            enabled=_bool(data, "enabled", True),
            block_illiquid=_bool(data, "block_illiquid", True),
            store_url=_opt_str(data, "store_url"),
            pretrained=_opt_str(data, "pretrained"),
            backtest_qtable_file=_opt_str(data, "backtest_qtable_file"),
            leader_pair=_opt_str(data, "leader_pair"),
            reward_unit=reward_unit,
            thresholds=RegimeThresholds.from_dict(thresholds, prefix=f"{SECTION}.thresholds"),
            profiles=ProfileRegistry.from_config(data.get("profiles")),
            selector=SelectorConfig.from_dict(selector_values, prefix=SECTION),
        )
        # Cross-checks that need both the profiles and the learner settings.
        cfg.profiles.require(cfg.selector.default_strategy, f"{SECTION}.default_strategy")
        for regime, sid in cfg.selector.heuristic.items():
            cfg.profiles.require(sid, f"{SECTION}.heuristic.{regime}")
        return cfg

    @classmethod
    def from_freqtrade_config(cls, config: Mapping[str, Any]) -> MetaStrategyConfig:
        """Read and validate ``config["metastrategy"]`` (absent = all defaults)."""
        return cls.from_dict(config.get(SECTION))
