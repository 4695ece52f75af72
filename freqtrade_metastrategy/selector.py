"""The selector: a contextual bandit that chooses a TP/SL profile per (symbol, regime).

A decision takes the regime's candidate profiles (:mod:`.heuristics`) and what the Q-table
knows about each (:meth:`MetaStrategySelector.profile_stats`: the ``min_samples`` / pooling
rule), and lets the configured policy (:mod:`.policies`) choose with the selector's own
``random.Random(seed)``: the same seed, calls and rewards give the same decisions. A trade's
reward updates its (symbol, regime, profile) cell once. The seeds' names stay as aliases:
``choose_strategy``, ``StrategyDecision`` with ``strategy_id`` / ``strategy_profile``, and the
``strategy_id`` argument of ``update_reward``.

>>> from freqtrade_metastrategy.store.base import MemoryStore
>>> sel = MetaStrategySelector(seed=42, store=MemoryStore())
>>> d = sel.choose_profile("BTC/USDT", "trend_up")
>>> d.profile_id, d.is_exploration, round(d.probability, 4), d.reasoning
('ultra_aggressive', False, 0.9167, 'heuristic (no profile has enough data)')
>>> sel.update_reward("BTC/USDT", "trend_up", d.profile_id, 2.5, trade_id=1)
True
>>> sel.update_reward("BTC/USDT", "trend_up", d.profile_id, 2.5, trade_id=1)
False

The seeds' names (same RNG, so the next decision):

>>> old = sel.choose_strategy("BTC/USDT", "trend_up")
>>> old.strategy_id == old.profile_id, old.strategy_profile is old.profile
(True, True)
>>> sel.update_reward("BTC/USDT", "trend_up", strategy_id=old.strategy_id, reward=1.0,
...                   trade_id=2)
True
>>> sel.update_reward("BTC/USDT", "trend_up", "scalp", 1.0, strategy_id="scalp", trade_id=3)
Traceback (most recent call last):
...
TypeError: update_reward(): give profile_id or strategy_id (its old name), not both
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime
from enum import Enum
from random import Random
from typing import Any, cast, overload

from freqtrade_metastrategy.errors import ConfigError
from freqtrade_metastrategy.fullinfo.learner import stand_aside_reason
from freqtrade_metastrategy.heuristics import (
    DEFAULT_HEURISTIC,
    REGIME_NAMES,
    candidates,
    check_heuristic,
    heuristic_choice,
)
from freqtrade_metastrategy.policies import NO_DATA, Policy, ProfileStats, make_policy
from freqtrade_metastrategy.profiles import DEFAULT_STRATEGY, ProfileRegistry, StrategyProfile
from freqtrade_metastrategy.qtable import check_alpha, check_reward, pool
from freqtrade_metastrategy.store.base import MemoryStore, QStore

logger = logging.getLogger(__name__)


def _name(value: object) -> str:
    """The string value of an enum member or a plain string."""
    return str(value.value) if isinstance(value, Enum) else str(value)


@dataclass(frozen=True)
class SelectorConfig:
    """Validated learner settings (the learning part of the ``metastrategy`` config section).

    ``policy_params`` are passed to the policy's constructor (e.g. ``{"c": 0.5}`` for UCB1);
    for ``epsilon_greedy`` the top-level ``epsilon``, ``epsilon_decay``, ``min_epsilon`` and
    ``exploit_min_q`` apply. ``exploit_min_q=0.40`` reproduces the seeds' rule of trusting the
    Q-values only when the best one is at least 0.40 R.
    """

    policy: str = "epsilon_greedy"
    epsilon: float = 0.10
    alpha: float = 0.20
    min_samples: int = 5
    seed: int | None = None
    epsilon_decay: float = 0.0
    min_epsilon: float = 0.0
    exploit_min_q: float | None = None
    pool_across_symbols: bool = True
    default_strategy: str = DEFAULT_STRATEGY
    heuristic: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_HEURISTIC))
    policy_params: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        p = "metastrategy"
        if isinstance(self.epsilon, bool) or not (
            isinstance(self.epsilon, int | float) and 0.0 <= self.epsilon <= 1.0
        ):
            raise ConfigError(f"{p}.epsilon", f"must be a number in [0, 1], got {self.epsilon!r}")
        try:
            check_alpha(self.alpha)
        except Exception:
            raise ConfigError(f"{p}.alpha", f"must be in (0, 1], got {self.alpha!r}") from None
        if isinstance(self.min_samples, bool) or not isinstance(self.min_samples, int) or (
            self.min_samples < 1
        ):
            raise ConfigError(f"{p}.min_samples", f"must be an integer >= 1, got "
                              f"{self.min_samples!r}")
        if self.seed is not None and (
            isinstance(self.seed, bool) or not isinstance(self.seed, int)
        ):
            raise ConfigError(f"{p}.seed", f"must be an integer or null, got {self.seed!r}")
        self._check_types(p)
        if not isinstance(self.pool_across_symbols, bool):
            raise ConfigError(f"{p}.pool_across_symbols", "must be true or false")
        check_heuristic(self.heuristic, prefix=p)
        # builds (and so validates) the policy and its parameters
        self.build_policy()

    def _check_types(self, p: str) -> None:
        """Types of the keys the policy constructors would otherwise reject without a name."""
        if not isinstance(self.policy, str):
            raise ConfigError(f"{p}.policy", f"must be a policy name, got {self.policy!r}")
        for name in ("epsilon_decay", "min_epsilon"):
            value = getattr(self, name)
            if not _is_number(value) or value < 0.0:
                raise ConfigError(f"{p}.{name}", f"must be a number >= 0, got {value!r}")
        if self.exploit_min_q is not None and not _is_number(self.exploit_min_q):
            raise ConfigError(f"{p}.exploit_min_q",
                              f"must be a finite number of R or null, got {self.exploit_min_q!r}")
        if not isinstance(self.policy_params, Mapping):
            raise ConfigError(f"{p}.policy_params",
                              f"must be an object {{name: value}}, got {self.policy_params!r}")
        if not isinstance(self.heuristic, Mapping):
            raise ConfigError(f"{p}.heuristic",
                              f"must be an object {{regime: profile}}, got {self.heuristic!r}")

    def build_policy(self) -> Policy:
        params = dict(self.policy_params)
        if self.policy == "epsilon_greedy":
            params.setdefault("epsilon", self.epsilon)
            params.setdefault("decay", self.epsilon_decay)
            params.setdefault("min_epsilon", self.min_epsilon)
            params.setdefault("exploit_min_q", self.exploit_min_q)
        return make_policy(self.policy, **params)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, prefix: str = "metastrategy") -> SelectorConfig:
        """Build from a config dict; unknown keys raise a ConfigError listing allowed ones."""
        allowed = {f.name for f in fields(cls)}
        for key in data:
            if key not in allowed:
                raise ConfigError(
                    f"{prefix}.{key}", f"unknown key; allowed: {', '.join(sorted(allowed))}"
                )
        return cls(**dict(data))


def _is_number(value: object) -> bool:
    """A finite int or float (``bool`` excluded)."""
    return (isinstance(value, int | float) and not isinstance(value, bool)
            and math.isfinite(value))


@dataclass(frozen=True)
class ProfileDecision:
    """The outcome of :meth:`MetaStrategySelector.choose_profile`.

    ``probability`` is the probability of this choice under the policy in this state (for
    off-policy evaluation); ``q_values`` the estimates the policy saw (``None`` = no data).
    ``strategy_id`` / ``strategy_profile`` are the seeds' names of ``profile_id`` / ``profile``
    (and ``strategy_id`` stays the key in :meth:`to_dict`).
    """

    symbol: str
    regime: str
    profile_id: str
    profile: StrategyProfile
    is_exploration: bool
    is_heuristic: bool
    probability: float
    confidence: float
    reasoning: str
    policy: str
    candidates: tuple[str, ...]
    q_values: Mapping[str, float | None]

    @property
    def strategy_id(self) -> str:
        """Alias of :attr:`profile_id` (the seeds' name)."""
        return self.profile_id

    @property
    def strategy_profile(self) -> StrategyProfile:
        """Alias of :attr:`profile` (the seeds' name)."""
        return self.profile

    def to_dict(self) -> dict[str, Any]:
        return {
            "symbol": self.symbol,
            "regime": self.regime,
            "strategy_id": self.profile_id,
            "is_exploration": self.is_exploration,
            "is_heuristic": self.is_heuristic,
            "probability": self.probability,
            "confidence": self.confidence,
            "reasoning": self.reasoning,
            "policy": self.policy,
            "candidates": list(self.candidates),
            "q_values": dict(self.q_values),
        }


def bandit_stand_aside(decision: ProfileDecision, margin: float | None) -> str | None:
    """A bandit's stand-aside (``"stand_aside": true`` with a bandit policy): only when it
    exploits (an exploration or a heuristic choice always trades, so the learner can learn
    its way back), and the chosen profile's estimate is below ``margin``; None to trade."""
    if margin is None or decision.is_exploration or decision.is_heuristic:
        return None
    q = decision.q_values.get(decision.profile_id)
    return None if q is None else stand_aside_reason(decision.profile_id, q, margin)


StrategyDecision = ProfileDecision
"""The seeds' name of :class:`ProfileDecision`."""


class MetaStrategySelector:
    """Chooses a TP/SL profile per (symbol, regime) and learns from realized R.

    :param epsilon: exploration probability of epsilon-greedy (seeds: 0.10).
    :param alpha: EMA weight of a new reward (seeds: 0.20, about a 9-trade memory).
    :param min_samples: rewards a cell (or pool) needs before its estimate is used.
    :param seed: seed of the selector's own RNG (``None``: not reproducible).
    :param store: where the Q-table lives (default: a fresh :class:`MemoryStore`).
    :param policy: ``epsilon_greedy`` (default), ``ucb1``, ``thompson`` or ``random``.
    :param profiles: the profile registry (default: the seven built-ins).
    :param config: a ready :class:`SelectorConfig` (then the keyword settings are ignored).
    :param log_level: level of the ``[RL UPDATE]`` lines (backtests pass DEBUG).
    :param kwargs: any other :class:`SelectorConfig` field.
    """

    def __init__(
        self,
        epsilon: float = 0.10,
        alpha: float = 0.20,
        min_samples: int = 5,
        seed: int | None = None,
        store: QStore | None = None,
        policy: str = "epsilon_greedy",
        profiles: ProfileRegistry | None = None,
        *,
        config: SelectorConfig | None = None,
        log_level: int = logging.INFO,
        **kwargs: Any,
    ) -> None:
        if config is None:
            config = SelectorConfig(
                policy=policy, epsilon=epsilon, alpha=alpha, min_samples=min_samples,
                seed=seed, **kwargs,
            )
        self.config = config
        self.log_level = log_level
        self.profiles = profiles if profiles is not None else ProfileRegistry()
        self.profiles.require(config.default_strategy, "metastrategy.default_strategy")
        for regime, profile_id in config.heuristic.items():
            self.profiles.require(profile_id, f"metastrategy.heuristic.{regime}")
        self.policy = config.build_policy()
        self.store: QStore = store if store is not None else MemoryStore()
        self.rng = Random(config.seed)
        self._candidates = {r: tuple(candidates(self.profiles, r)) for r in REGIME_NAMES}
        self.total_decisions = 0
        self.total_explorations = 0
        self.total_exploitations = 0
        self.total_heuristic = 0
        self.total_updates = 0
        self.duplicate_updates = 0

    # -- properties kept from the seeds ---------------------------------------------------
    @property
    def epsilon(self) -> float:
        return self.config.epsilon

    @property
    def alpha(self) -> float:
        return self.config.alpha

    @property
    def min_samples(self) -> int:
        return self.config.min_samples

    # -- decisions -------------------------------------------------------------------------
    def candidates_for(self, regime: object) -> tuple[str, ...]:
        r = _name(regime)
        return self._candidates.get(r) or tuple(candidates(self.profiles, r))

    def profile_stats(
        self, symbol: str, regime: str, profile_ids: tuple[str, ...]
    ) -> dict[str, ProfileStats]:
        """Per-profile estimates after the ``min_samples`` / pooling rule:

        1. the (symbol, regime) cell's own profiles, once the cell holds ``min_samples``
           rewards in total over the candidate profiles (the seeds' rule);
        2. otherwise, with ``pool_across_symbols`` (default on), the regime's statistics pooled
           over every symbol, once the pool holds ``min_samples`` rewards over the candidates
           (per profile: EMA = count-weighted mean of the symbols' EMAs; mean and variance
           over all pooled rewards);
        3. otherwise no data (:data:`~.policies.NO_DATA` for every candidate): the per-regime
           heuristic chooses (epsilon-greedy still explores with probability epsilon).

        Within the source chosen, a profile without rewards has no data; each policy says how
        it treats such profiles. Pooling only affects how a sparse cell is read. (Gating each
        *profile* on ``min_samples`` was rejected: epsilon-greedy then needs ``min_samples``
        random explorations of a profile before it can see it.)
        """
        n = self.config.min_samples
        cells = {pid: self.store.get(symbol, regime, pid) for pid in profile_ids}
        if sum(c.count for c in cells.values() if c is not None) >= n:
            return {
                pid: ProfileStats(c.count, c.ema_reward, c.avg_reward, c.variance, "cell")
                if c is not None and c.count else NO_DATA
                for pid, c in cells.items()
            }
        if self.config.pool_across_symbols:
            pooled = pool(self.store.iter_regime(regime))
            if sum(pooled[pid].count for pid in profile_ids if pid in pooled) >= n:
                return {
                    pid: ProfileStats(p.count, p.ema_reward, p.avg_reward, p.variance, "pool")
                    if (p := pooled.get(pid)) is not None else NO_DATA
                    for pid in profile_ids
                }
        return dict.fromkeys(profile_ids, NO_DATA)

    def choose_profile(
        self, symbol: str, regime: object, context: object = None
    ) -> ProfileDecision:
        """Choose a profile for ``symbol`` in ``regime`` (a MarketRegime or its value).

        ``context`` (a MarketContext) is accepted for compatibility with the seeds' API and
        is not used by the built-in policies.
        """
        r = _name(regime)
        profile_ids = self.candidates_for(r)
        stats = self.profile_stats(symbol, r, profile_ids)
        fallback = heuristic_choice(
            self.profiles, r, profile_ids, self.config.heuristic, self.config.default_strategy
        )
        pull = self.policy.pull(profile_ids, stats, self.rng, fallback=fallback)
        self.total_decisions += 1
        if pull.explored:
            self.total_explorations += 1
        elif pull.heuristic:
            self.total_heuristic += 1
        else:
            self.total_exploitations += 1
        chosen = stats[pull.profile_id]
        if pull.heuristic:
            confidence = 0.5
        elif pull.explored:
            confidence = 0.5 * pull.probability if math.isfinite(pull.probability) else 0.5
        else:
            confidence = min(0.95, 0.5 + 0.45 * chosen.count / (chosen.count + self.min_samples))
        reasoning = pull.reason
        if chosen.source == "pool" and not pull.explored:
            reasoning += " (pooled over symbols)"
        decision = ProfileDecision(
            symbol=symbol,
            regime=r,
            profile_id=pull.profile_id,
            profile=self.profiles[pull.profile_id],
            is_exploration=pull.explored,
            is_heuristic=pull.heuristic,
            probability=pull.probability,
            confidence=confidence,
            reasoning=reasoning,
            policy=self.policy.name,
            candidates=profile_ids,
            q_values={pid: (s.ema if s.known else None) for pid, s in stats.items()},
        )
        logger.debug("[STRATEGY] %s %s -> %s (%s)", symbol, r, pull.profile_id, reasoning)
        return decision

    def choose_strategy(
        self, symbol: str, regime: object, context: object = None
    ) -> ProfileDecision:
        """The seeds' name of :meth:`choose_profile`."""
        return self.choose_profile(symbol, regime, context)

    # -- learning ----------------------------------------------------------------------------
    @overload
    def update_reward(
        self, symbol: str, regime: object, profile_id: object, reward: float,
        trade_id: object = None, at: datetime | None = None, *,
        probability: float | None = None, closed_at: datetime | None = None,
    ) -> bool: ...

    @overload
    def update_reward(
        self, symbol: str, regime: object, *, strategy_id: object, reward: float,
        trade_id: object = None, at: datetime | None = None,
        probability: float | None = None, closed_at: datetime | None = None,
    ) -> bool: ...

    def update_reward(
        self,
        symbol: str,
        regime: object,
        profile_id: object = None,
        reward: float | None = None,
        trade_id: object = None,
        at: datetime | None = None,
        *,
        probability: float | None = None,
        closed_at: datetime | None = None,
        strategy_id: object = None,
    ) -> bool:
        """Record a trade's realized R for the profile ``profile_id`` (also accepted under the
        seeds' keyword ``strategy_id``). Returns False (a no-op) if ``trade_id`` was settled,
        or if the trade closed (``closed_at``) before the store's watermark.

        Raises :class:`~freqtrade_metastrategy.errors.MetaStrategyError` for a non-finite
        reward (nothing is written).
        """
        if strategy_id is not None:
            if profile_id is not None:
                raise TypeError("update_reward(): give profile_id or strategy_id (its old "
                                "name), not both")
            profile_id = strategy_id
        if profile_id is None:
            raise TypeError("update_reward() missing required argument: 'profile_id'")
        r = _name(regime)
        pid = _name(profile_id)
        value = check_reward(cast(float, reward))  # refuses None like any non-number
        entry = self.store.apply_reward(
            symbol, r, pid, value, alpha=self.alpha, trade_id=trade_id, at=at,
            probability=probability, closed_at=closed_at,
        )
        if entry is None:
            self.duplicate_updates += 1
            logger.log(self.log_level, "[RL UPDATE] %s %s %s: trade %s already settled (or "
                       "closed before the store's watermark), ignored", symbol, r, pid, trade_id)
            return False
        self.total_updates += 1
        logger.log(
            self.log_level,
            "[RL UPDATE] %s %s %s: R=%+.2f, EMA=%.2f, count=%d, WR=%.1f%%",
            symbol, r, pid, value, entry.ema_reward, entry.count, 100 * entry.win_rate,
        )
        return True

    # -- reporting ----------------------------------------------------------------------------
    def get_metrics(self) -> dict[str, Any]:
        """Counters of this selector instance (decisions are not persisted) and table size."""
        return {
            "policy": self.policy.name,
            "epsilon": self.epsilon,
            "alpha": self.alpha,
            "min_samples": self.min_samples,
            "total_decisions": self.total_decisions,
            "total_explorations": self.total_explorations,
            "total_exploitations": self.total_exploitations,
            "total_heuristic": self.total_heuristic,
            "exploration_rate": self.total_explorations / max(1, self.total_decisions),
            "total_updates": self.total_updates,
            "duplicate_updates": self.duplicate_updates,
            "q_entries": len(self.store.entries()),
        }

    def get_performance_summary(self, symbol: str | None = None) -> dict[str, Any]:
        """The seeds' summary: totals, top-10 cells by EMA, and the best profile per cell."""
        entries = self.store.entries(symbol=symbol)
        if not entries:
            return {"message": "No data yet"}
        best: dict[tuple[str, str], dict[str, Any]] = {}
        for e in entries:
            cur = best.get((e.symbol, e.regime))
            if cur is None or e.ema_reward > cur["ema_reward"]:
                best[(e.symbol, e.regime)] = {
                    "symbol": e.symbol, "regime": e.regime, "strategy": e.strategy,
                    "ema_reward": e.ema_reward, "count": e.count,
                }
        top = sorted(entries, key=lambda e: e.ema_reward, reverse=True)[:10]
        return {
            "total_entries": len(entries),
            "total_rewards": sum(e.count for e in entries),
            "total_r": sum(e.total_r for e in entries),
            "total_decisions": self.total_decisions,
            "total_updates": self.total_updates,
            "exploration_rate": self.total_explorations / max(1, self.total_decisions),
            "epsilon": self.epsilon,
            "alpha": self.alpha,
            "policy": self.policy.name,
            "best_strategies": [
                {"symbol": e.symbol, "regime": e.regime, "strategy": e.strategy,
                 "ema_reward": e.ema_reward, "count": e.count, "win_rate": e.win_rate,
                 "total_r": e.total_r}
                for e in top
            ],
            "best_per_cell": [best[k] for k in sorted(best)],
        }
