"""Selector: heuristics, pooling, convergence, determinism, exactly-once, reporting."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest

from freqtrade_metastrategy.errors import ConfigError, MetaStrategyError
from freqtrade_metastrategy.heuristics import DEFAULT_HEURISTIC, REGIME_NAMES
from freqtrade_metastrategy.profiles import ProfileRegistry, StrategyID
from freqtrade_metastrategy.selector import MetaStrategySelector, SelectorConfig
from freqtrade_metastrategy.store.base import MemoryStore

# True mean R per profile in the simulated trend regime: "moderate" is clearly best.
TRUE_MEANS = {
    "defensive": 0.2,
    "moderate": 1.5,
    "moderate_aggressive": 0.4,
    "balanced_aggressive": 0.0,
    "ultra_aggressive": 0.5,
    "trend_rider": -0.2,
    "scalp": 0.1,
}


def simulate(
    sel: MetaStrategySelector, trades: int, seed: int, noise: float = 0.5
) -> list[tuple[str, bool]]:
    """``trades`` decisions in one context, each rewarded N(true mean, noise) R."""
    env = random.Random(seed)
    out = []
    for i in range(trades):
        d = sel.choose_strategy("BTC/USDT", "trend_up")
        reward = env.gauss(TRUE_MEANS[d.strategy_id], noise)
        sel.update_reward("BTC/USDT", "trend_up", d.strategy_id, reward, trade_id=i)
        out.append((d.strategy_id, d.is_exploration))
    return out


@pytest.mark.parametrize("policy", ["epsilon_greedy", "ucb1", "thompson"])
def test_converges_to_the_clearly_best_profile(policy: str) -> None:
    """Over 500 trades the greedy choice settles on the best profile, on each of 10 seeds.

    "Clearly best": a 1 R gap with 0.5 R noise. (With 1 R noise the seeds' EMA, alpha=0.2,
    remembers about 9 trades and epsilon-greedy's greedy share dips to ~0.8 on some seeds:
    that is the learner's own variance, measured by the evaluation report, not a defect.)
    """
    shares = []
    for seed in range(1, 11):
        sel = MetaStrategySelector(seed=seed, policy=policy)
        last = simulate(sel, 500, seed=100 + seed)[-100:]
        share = sum(arm == "moderate" for arm, _ in last) / 100
        greedy = [arm for arm, explored in last if not explored]
        assert sum(arm == "moderate" for arm in greedy) / len(greedy) >= 0.95, (policy, seed)
        assert share >= 0.85, (policy, seed, share)  # epsilon-greedy explores 10% on purpose
        shares.append(share)
    assert sum(shares) / len(shares) >= 0.9


def test_random_policy_does_not_converge() -> None:
    """The convergence test above can fail: a non-learning policy does."""
    sel = MetaStrategySelector(seed=1, policy="random")
    last = simulate(sel, 500, seed=101)[-100:]
    assert sum(arm == "moderate" for arm, _ in last) / 100 < 0.5


def test_decay_epsilon_converges_harder() -> None:
    sel = MetaStrategySelector(seed=4, epsilon=0.3, epsilon_decay=0.01, min_epsilon=0.01)
    last = simulate(sel, 500, seed=7)[-100:]
    assert sum(arm == "moderate" for arm, _ in last) >= 95


@pytest.mark.parametrize("policy", ["epsilon_greedy", "ucb1", "thompson", "random"])
def test_same_seed_and_rewards_give_same_decisions(policy: str) -> None:
    runs = [simulate(MetaStrategySelector(seed=9, policy=policy), 200, seed=5) for _ in range(2)]
    assert runs[0] == runs[1]


def test_different_seeds_differ() -> None:
    a = simulate(MetaStrategySelector(seed=1), 200, seed=5)
    b = simulate(MetaStrategySelector(seed=2), 200, seed=5)
    assert a != b


@pytest.mark.parametrize("regime", REGIME_NAMES)
def test_heuristic_per_regime_before_data(regime: str) -> None:
    sel = MetaStrategySelector(seed=0, epsilon=0.0)
    d = sel.choose_strategy("ETH/USDT", regime)
    assert d.strategy_id == DEFAULT_HEURISTIC[regime]
    assert d.is_heuristic and not d.is_exploration
    assert d.strategy_id in d.candidates
    assert d.probability == 1.0 and d.confidence == 0.5


def test_candidate_sets() -> None:
    sel = MetaStrategySelector()
    assert "scalp" not in sel.candidates_for("trend_up")
    assert set(sel.candidates_for("range_low_vol")) == {"defensive", "moderate", "scalp"}
    assert set(sel.candidates_for("illiquid")) == {"defensive", "moderate", "scalp"}
    assert "trend_rider" not in sel.candidates_for("range_high_vol")
    assert len(sel.candidates_for("unknown")) == 7


def test_min_samples_gates_the_cell() -> None:
    sel = MetaStrategySelector(seed=0, epsilon=0.0, min_samples=5, pool_across_symbols=False)
    for i in range(4):
        sel.update_reward("SOL/USDT", "range_low_vol", "moderate", 3.0, trade_id=i)
    assert sel.choose_strategy("SOL/USDT", "range_low_vol").strategy_id == "scalp"  # heuristic
    sel.update_reward("SOL/USDT", "range_low_vol", "moderate", 3.0, trade_id=4)
    d = sel.choose_strategy("SOL/USDT", "range_low_vol")
    assert d.strategy_id == "moderate" and not d.is_heuristic
    assert d.q_values["moderate"] == pytest.approx(3.0)
    assert d.q_values["scalp"] is None


def test_sparse_cell_reads_the_regime_pool() -> None:
    sel = MetaStrategySelector(seed=0, epsilon=0.0, min_samples=5)
    for i in range(3):
        sel.update_reward("BTC/USDT", "trend_down", "trend_rider", 4.0, trade_id=f"b{i}")
        sel.update_reward("ETH/USDT", "trend_down", "trend_rider", 2.0, trade_id=f"e{i}")
    d = sel.choose_strategy("XRP/USDT", "trend_down")  # XRP has no data of its own
    assert d.strategy_id == "trend_rider"
    assert "pooled over symbols" in d.reasoning
    assert d.q_values["trend_rider"] == pytest.approx(3.0)
    # Pooling off: no cell has 5 samples, so the heuristic decides.
    off = MetaStrategySelector(seed=0, epsilon=0.0, min_samples=5, pool_across_symbols=False,
                               store=sel.store)
    assert off.choose_strategy("XRP/USDT", "trend_down").strategy_id == "ultra_aggressive"


def test_own_cell_wins_over_pool_once_it_has_min_samples() -> None:
    sel = MetaStrategySelector(seed=0, epsilon=0.0, min_samples=2)
    for i in range(10):
        sel.update_reward("BTC/USDT", "trend_up", "trend_rider", 5.0, trade_id=f"b{i}")
    sel.update_reward("ETH/USDT", "trend_up", "trend_rider", -1.0, trade_id="e0")
    sel.update_reward("ETH/USDT", "trend_up", "trend_rider", -1.0, trade_id="e1")
    sel.update_reward("ETH/USDT", "trend_up", "moderate", 0.5, trade_id="e2")
    sel.update_reward("ETH/USDT", "trend_up", "moderate", 0.5, trade_id="e3")
    assert sel.choose_strategy("ETH/USDT", "trend_up").strategy_id == "moderate"


def test_exactly_once_and_metrics() -> None:
    sel = MetaStrategySelector(seed=0)
    t = datetime(2024, 3, 1, 12, tzinfo=UTC)
    assert sel.update_reward("BTC/USDT", "trend_up", StrategyID.SCALP, 1.0, trade_id=5, at=t)
    assert not sel.update_reward("BTC/USDT", "trend_up", "scalp", 7.0, trade_id=5, at=t)
    assert not sel.update_reward("BTC/USDT", "trend_up", "scalp", 7.0, trade_id="5", at=t)
    e = sel.store.get("BTC/USDT", "trend_up", "scalp")
    assert e is not None and e.count == 1 and e.total_r == 1.0 and e.last_update == t
    m = sel.get_metrics()
    assert m["total_updates"] == 1 and m["duplicate_updates"] == 2 and m["q_entries"] == 1


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), "abc"])
def test_non_finite_reward_rejected_and_nothing_written(bad: object) -> None:
    sel = MetaStrategySelector()
    with pytest.raises(MetaStrategyError, match="reward"):
        sel.update_reward("BTC/USDT", "trend_up", "scalp", bad, trade_id=1)  # type: ignore[arg-type]
    assert sel.store.is_empty()
    assert sel.update_reward("BTC/USDT", "trend_up", "scalp", 1.0, trade_id=1)


def test_probability_is_recorded_in_the_ledger() -> None:
    sel = MetaStrategySelector(seed=3)
    d = sel.choose_strategy("BTC/USDT", "trend_up")
    sel.update_reward("BTC/USDT", "trend_up", d.strategy_id, 0.5, trade_id=1,
                      probability=d.probability)
    assert sel.store.ledger()[0].probability == d.probability


def test_performance_summary() -> None:
    sel = MetaStrategySelector(seed=0)
    assert sel.get_performance_summary() == {"message": "No data yet"}
    simulate(sel, 60, seed=1)
    s = sel.get_performance_summary()
    assert s["total_rewards"] == 60 and s["total_decisions"] == 60
    assert s["best_strategies"][0]["ema_reward"] >= s["best_strategies"][-1]["ema_reward"]
    assert s["best_per_cell"][0]["symbol"] == "BTC/USDT"
    assert sel.get_performance_summary(symbol="ETH/USDT") == {"message": "No data yet"}


def test_user_profiles_take_part() -> None:
    reg = ProfileRegistry.from_config({"my_trend": {"base": "moderate"}})
    sel = MetaStrategySelector(profiles=reg, heuristic={"trend_up": "my_trend"}, epsilon=0.0)
    assert sel.choose_strategy("BTC/USDT", "trend_up").strategy_id == "my_trend"


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"epsilon": -0.1}, "metastrategy.epsilon"),
        ({"alpha": 0.0}, "metastrategy.alpha"),
        ({"alpha": 1.5}, "metastrategy.alpha"),
        ({"min_samples": 0}, "metastrategy.min_samples"),
        ({"seed": "x"}, "metastrategy.seed"),
        ({"policy": "greedy"}, "metastrategy.policy"),
        ({"heuristic": {"sideways": "scalp"}}, "metastrategy.heuristic.sideways"),
        ({"heuristic": {"trend_up": "ghost"}}, "metastrategy.heuristic.trend_up"),
        ({"default_strategy": "ghost"}, "metastrategy.default_strategy"),
    ],
)
def test_bad_settings_name_the_key(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(ConfigError) as info:
        MetaStrategySelector(**kwargs)  # type: ignore[arg-type]
    assert info.value.field == field


def test_config_from_dict_rejects_unknown_keys() -> None:
    cfg = SelectorConfig.from_dict({"epsilon": 0.2, "policy": "ucb1"})
    assert cfg.epsilon == 0.2 and cfg.build_policy().name == "ucb1"
    with pytest.raises(ConfigError, match="unknown key") as info:
        SelectorConfig.from_dict({"epsilonn": 0.2})
    assert info.value.field == "metastrategy.epsilonn"


def test_store_is_shared_not_copied() -> None:
    store = MemoryStore()
    a = MetaStrategySelector(store=store)
    a.update_reward("BTC/USDT", "trend_up", "scalp", 1.0, trade_id=1)
    b = MetaStrategySelector(store=store)
    assert not b.update_reward("BTC/USDT", "trend_up", "scalp", 1.0, trade_id=1)
