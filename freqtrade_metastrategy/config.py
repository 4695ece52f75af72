"""The ``metastrategy`` section of a Freqtrade config, validated once at start-up.

Every key is optional; the default policy is the evidence's (``walk_forward_static``, see
``policy``), the seeds' learner is ``"policy": "epsilon_greedy"``. A wrong value raises
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
freeze_learner (false)
    full-information policies: decide from the learner's state (``pretrained``, or the live
    store's) and learn nothing more.
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
policy ("walk_forward_static")
    a full-information policy (``walk_forward_static``, the default, or ``contextual_ridge``:
    every signal's simulated outcome under every profile, :mod:`freqtrade_metastrategy.fullinfo`)
    or a bandit (``epsilon_greedy``: the seeds' learner; ``ucb1``, ``thompson``, ``random``:
    the chosen profile's real reward only).
estimator ("discounted"), half_life (1000), ridge_lambda (100), min_signals (200),
switch_margin (0.05), stand_aside (true), stand_aside_margin (0.0)
    the full-information policy's settings (:class:`~.fullinfo.FullInfoConfig`;
    ``alpha`` is its EMA weight, ``default_strategy`` its warm-up profile); with a bandit
    policy they are checked but not used, so ``"policy": "epsilon_greedy"`` alone switches
    a config back to the seeds' learner. A bandit stands aside only with an explicit
    ``"stand_aside": true`` (when it exploits and the chosen cell's EMA is below
    ``stand_aside_margin``).
epsilon, alpha, min_samples, seed (42), epsilon_decay, min_epsilon, exploit_min_q,
pool_across_symbols, default_strategy, heuristic, policy_params
    the bandit learner (:class:`~freqtrade_metastrategy.selector.SelectorConfig`; with a
    full-information policy it still holds the real trades' rewards). ``seed`` defaults to
    42 so two backtests of the same config give identical results; ``null`` = unseeded.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from freqtrade_metastrategy.errors import ConfigError
from freqtrade_metastrategy.fullinfo import FULL_INFO_POLICIES, FullInfoConfig
from freqtrade_metastrategy.profiles import ProfileRegistry
from freqtrade_metastrategy.regime import RegimeThresholds
from freqtrade_metastrategy.selector import SelectorConfig
from freqtrade_metastrategy.trade_math import REWARD_UNITS

SECTION = "metastrategy"
DEFAULT_SEED = 42
#: The default ``policy`` (the out-of-sample evidence's choice; the seeds' bandit is
#: ``"epsilon_greedy"``, one setting away).
DEFAULT_POLICY = "walk_forward_static"
_OWN_KEYS = ("enabled", "block_illiquid", "store_url", "pretrained", "backtest_qtable_file",
             "thresholds", "profiles", "reward_unit", "leader_pair", "freeze_learner")
_SELECTOR_KEYS = tuple(f.name for f in fields(SelectorConfig))
#: Keys of the full-information policies (``policy``: walk_forward_static, contextual_ridge).
_FULL_INFO_KEYS = ("estimator", "half_life", "ridge_lambda", "min_signals", "switch_margin",
                   "stand_aside", "stand_aside_margin")


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
    freeze_learner: bool = False
    reward_unit: str = "r_atr"
    thresholds: RegimeThresholds = field(default_factory=RegimeThresholds)
    profiles: ProfileRegistry = field(default_factory=ProfileRegistry)
    selector: SelectorConfig = field(default_factory=lambda: SelectorConfig(seed=DEFAULT_SEED))
    #: the full-information policy, when ``policy`` names one (else the bandit ``selector``)
    full_info: FullInfoConfig | None = None
    #: a bandit policy's stand-aside margin (R) when ``stand_aside`` is set true explicitly
    #: with it (a bandit never stands aside by default: the seeds' learner stays exact)
    bandit_stand_aside: float | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> MetaStrategyConfig:
        data = {} if data is None else data
        if not isinstance(data, Mapping):
            raise ConfigError(SECTION, f"must be an object, got {type(data).__name__}")
        allowed = (*_OWN_KEYS, *_SELECTOR_KEYS, *_FULL_INFO_KEYS)
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
        selector_values.setdefault("policy", DEFAULT_POLICY)
        full_info = None
        fi_values = {k: data[k] for k in _FULL_INFO_KEYS if k in data}
        if selector_values.get("policy") in FULL_INFO_POLICIES:
            fi_values["policy"] = selector_values.pop("policy")
            for key, fi_key in (("alpha", "alpha"), ("default_strategy", "default_profile")):
                if key in selector_values:
                    fi_values[fi_key] = selector_values[key]
            full_info = FullInfoConfig.from_dict(fi_values, prefix=SECTION)
        bandit_aside = None
        if full_info is None and fi_values:
            # a bandit policy: the full-information keys do not apply (but for an explicit
            # stand_aside), and a wrong value is still refused
            checked = FullInfoConfig.from_dict(fi_values, prefix=SECTION)
            if data.get("stand_aside") is True:
                bandit_aside = checked.stand_aside_margin
        cfg = cls(
            enabled=_bool(data, "enabled", True),
            block_illiquid=_bool(data, "block_illiquid", True),
            store_url=_opt_str(data, "store_url"),
            pretrained=_opt_str(data, "pretrained"),
            backtest_qtable_file=_opt_str(data, "backtest_qtable_file"),
            leader_pair=_opt_str(data, "leader_pair"),
            freeze_learner=_bool(data, "freeze_learner", False),
            reward_unit=reward_unit,
            thresholds=RegimeThresholds.from_dict(thresholds, prefix=f"{SECTION}.thresholds"),
            profiles=ProfileRegistry.from_config(data.get("profiles")),
            selector=SelectorConfig.from_dict(selector_values, prefix=SECTION),
            full_info=full_info,
            bandit_stand_aside=bandit_aside,
        )
        # Cross-checks that need both the profiles and the learner settings.
        cfg.profiles.require(cfg.selector.default_strategy, f"{SECTION}.default_strategy")
        for regime, sid in cfg.selector.heuristic.items():
            cfg.profiles.require(sid, f"{SECTION}.heuristic.{regime}")
        return cfg

    def learner_meta(self, timeframe: str, fee: float) -> dict[str, Any]:
        """What a full-information learner's outcomes depend on beyond its own settings: the
        reward unit, every profile's parameters, the timeframe, the fee per fill (stored with
        the learner and checked when it is loaded)."""
        return {"reward_unit": self.reward_unit, "timeframe": str(timeframe),
                "fee": float(fee),
                "profiles": {p: self.profiles[p].to_dict() for p in self.profiles}}

    @classmethod
    def from_freqtrade_config(cls, config: Mapping[str, Any]) -> MetaStrategyConfig:
        """Read and validate ``config["metastrategy"]`` (absent = all defaults)."""
        return cls.from_dict(config.get(SECTION))
