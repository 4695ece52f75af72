"""Policies: choices, reported probabilities, parameter validation."""

from __future__ import annotations

from collections import Counter
from random import Random

import pytest

from freqtrade_metastrategy.errors import ConfigError
from freqtrade_metastrategy.policies import (
    POLICIES,
    UCB1,
    EpsilonGreedy,
    GaussianThompson,
    ProfileStats,
    UniformRandom,
    make_policy,
)

ARMS = ["a", "b", "c", "d"]
STATS = {
    "a": ProfileStats(count=10, ema=0.2, mean=0.1, variance=1.0, source="cell"),
    "b": ProfileStats(count=10, ema=1.0, mean=0.9, variance=1.0, source="cell"),
    "c": ProfileStats(count=10, ema=0.6, mean=0.8, variance=1.0, source="cell"),
    "d": ProfileStats(count=10, ema=-0.5, mean=-0.4, variance=1.0, source="cell"),
}


def empirical(policy: object, stats: dict[str, ProfileStats], n: int = 20_000) -> tuple[
    Counter[str], dict[str, float]
]:
    rng = Random(7)
    counts: Counter[str] = Counter()
    reported: dict[str, float] = {}
    for _ in range(n):
        pull = policy.pull(ARMS, stats, rng, fallback="a")  # type: ignore[attr-defined]
        counts[pull.profile_id] += 1
        reported.setdefault(pull.profile_id, pull.probability)
    return counts, reported


@pytest.mark.parametrize("epsilon", [0.0, 0.1, 0.5, 1.0])
def test_epsilon_greedy_reported_probability_matches_frequency(epsilon: float) -> None:
    counts, reported = empirical(EpsilonGreedy(epsilon), STATS)
    for arm, n in counts.items():
        assert n / 20_000 == pytest.approx(reported[arm], abs=0.012)
    assert reported.get("b", 0) == pytest.approx(epsilon / 4 + 1 - epsilon)


def test_epsilon_greedy_value_mean_vs_ema() -> None:
    rng = Random(0)
    assert EpsilonGreedy(0.0).pull(ARMS, STATS, rng, fallback="a").profile_id == "b"
    stats = dict(STATS, c=ProfileStats(count=10, ema=0.6, mean=1.5, variance=1.0))
    pull = EpsilonGreedy(0.0, value="mean").pull(ARMS, stats, rng, fallback="a")
    assert pull.profile_id == "c"


def test_epsilon_greedy_without_data_uses_fallback_and_still_explores() -> None:
    rng = Random(1)
    pulls = [EpsilonGreedy(0.2).pull(ARMS, {}, rng, fallback="c") for _ in range(2000)]
    greedy = [p for p in pulls if not p.explored]
    assert all(p.profile_id == "c" and p.heuristic for p in greedy)
    assert 0.15 < sum(p.explored for p in pulls) / 2000 < 0.25


def test_unknown_arms_valued_at_zero_beat_negative_known_arms() -> None:
    stats = {"a": ProfileStats(count=8, ema=-0.3, mean=-0.3)}
    pull = EpsilonGreedy(0.0).pull(["a", "b"], stats, Random(0), fallback="a")
    assert pull.profile_id == "b" and not pull.heuristic


def test_seeds_exploit_min_q_falls_back_to_heuristic() -> None:
    stats = {"a": ProfileStats(count=8, ema=0.3), "b": ProfileStats(count=8, ema=0.35)}
    pull = EpsilonGreedy(0.0, exploit_min_q=0.40).pull(["a", "b"], stats, Random(0),
                                                       fallback="a")
    assert pull.profile_id == "a" and pull.heuristic
    pull = EpsilonGreedy(0.0).pull(["a", "b"], stats, Random(0), fallback="a")
    assert pull.profile_id == "b" and not pull.heuristic


def test_epsilon_decay_uses_persisted_experience() -> None:
    p = EpsilonGreedy(0.5, decay=0.1, min_epsilon=0.05)
    assert p.current_epsilon(0) == 0.5
    assert p.current_epsilon(1000) == 0.05
    big = {a: ProfileStats(count=500, ema=s.ema, mean=s.mean) for a, s in STATS.items()}
    _, reported = empirical(p, big, n=5000)
    assert reported["b"] == pytest.approx(0.05 / 4 + 0.95)


def test_ucb1_tries_unknown_then_balances() -> None:
    stats = {"a": ProfileStats(count=5, mean=1.0)}
    pull = UCB1().pull(["a", "b", "c"], stats, Random(0), fallback="c")
    assert pull.profile_id == "c" and pull.explored and pull.probability == 1.0
    pull = UCB1().pull(["a", "b", "c"], {}, Random(0), fallback="b")
    assert pull.profile_id == "b" and pull.heuristic
    stats = {"a": ProfileStats(count=1000, mean=1.0), "b": ProfileStats(count=1000, mean=0.2)}
    assert UCB1().pull(["a", "b"], stats, Random(0), fallback="b").profile_id == "a"


def test_thompson_probability_estimate_tracks_frequency() -> None:
    stats = {
        "a": ProfileStats(count=3, mean=0.5, variance=1.0),
        "b": ProfileStats(count=3, mean=0.7, variance=1.0),
        "c": ProfileStats(count=3, mean=0.0, variance=1.0),
        "d": ProfileStats(count=3, mean=-2.0, variance=1.0),
    }
    policy = GaussianThompson(propensity_samples=400)
    rng = Random(11)
    pulls = [policy.pull(ARMS, stats, rng, fallback="a") for _ in range(3000)]
    freq = Counter(p.profile_id for p in pulls)
    for arm in ("a", "b", "c"):
        mean_reported = sum(p.probability for p in pulls if p.profile_id == arm) / freq[arm]
        assert mean_reported == pytest.approx(freq[arm] / 3000, abs=0.04)


def test_uniform_random_is_uniform() -> None:
    counts, reported = empirical(UniformRandom(), STATS)
    assert all(abs(n / 20_000 - 0.25) < 0.015 for n in counts.values())
    assert set(reported.values()) == {0.25}


@pytest.mark.parametrize("name", ["ucb1", "thompson"])
def test_without_data_the_heuristic_decides_and_the_rng_is_untouched(name: str) -> None:
    rng = Random(5)
    state = rng.getstate()
    stats = {"z": ProfileStats(count=9, mean=5.0)}  # data, but not for a candidate
    pull = make_policy(name).pull(ARMS, stats, rng, fallback="c")
    assert (pull.profile_id, pull.probability, pull.explored, pull.heuristic) == (
        "c", 1.0, False, True)
    assert rng.getstate() == state


def test_random_policy_ignores_whether_there_is_data() -> None:
    with_data = [UniformRandom().pull(ARMS, STATS, Random(3), fallback="a") for _ in range(3)]
    without = [UniformRandom().pull(ARMS, {}, Random(3), fallback="a") for _ in range(3)]
    assert with_data == without and not any(p.heuristic for p in without)


@pytest.mark.parametrize("name", sorted(POLICIES))
def test_fallback_must_be_a_candidate(name: str) -> None:
    with pytest.raises(ValueError, match="fallback profile 'x'"):
        make_policy(name).pull(ARMS, STATS, Random(0), fallback="x")


def test_same_seed_same_choices() -> None:
    for name in POLICIES:
        runs = []
        for _ in range(2):
            rng = Random(123)
            runs.append([make_policy(name).pull(ARMS, STATS, rng, fallback="a").profile_id
                         for _ in range(200)])
        assert runs[0] == runs[1], name


@pytest.mark.parametrize(
    ("name", "params", "field"),
    [
        ("epsilon_greedy", {"epsilon": 1.5}, "metastrategy.epsilon"),
        ("epsilon_greedy", {"decay": -1.0}, "metastrategy.epsilon_decay"),
        ("epsilon_greedy", {"epsilon": 0.1, "min_epsilon": 0.2}, "metastrategy.min_epsilon"),
        ("ucb1", {"c": -1.0}, "metastrategy.ucb_c"),
        ("thompson", {"prior_var": 0.0}, "metastrategy.thompson_prior_var"),
        ("ucb1", {"nope": 1}, "metastrategy.policy_params"),
        ("softmax", {}, "metastrategy.policy"),
    ],
)
def test_invalid_parameters_name_the_field(
    name: str, params: dict[str, float], field: str
) -> None:
    with pytest.raises(ConfigError) as info:
        make_policy(name, **params)
    assert info.value.field == field
