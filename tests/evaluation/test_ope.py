"""Off-policy evaluation: unbiasedness, variance, coverage, propensity errors, ledger logs."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import pytest

from freqtrade_metastrategy.evaluation.ope import (
    OPEError,
    drop_missing_probability,
    log_from_ledger,
    log_from_replay,
    mapping_target,
    off_policy_evaluate,
    static_target,
    uniform_target,
)
from freqtrade_metastrategy.evaluation.outcomes import synthetic_outcomes
from freqtrade_metastrategy.evaluation.replay import replay
from freqtrade_metastrategy.evaluation.specs import (
    FixedProfileSpec,
    LearnerSpec,
    UniformRandomSpec,
)
from freqtrade_metastrategy.selector import MetaStrategySelector, SelectorConfig
from freqtrade_metastrategy.store.base import MemoryStore

ACTIONS = ("a", "b", "c")
MU = {"trend_up": {"a": 2.0, "b": 1.0, "c": 3.0},
      "range_low_vol": {"a": 1.5, "b": 2.5, "c": 0.5}}
P_TREND = 0.6
TARGET = {"trend_up": "c", "range_low_vol": "b"}
TRUE_VALUE = P_TREND * MU["trend_up"]["c"] + (1 - P_TREND) * MU["range_low_vol"]["b"]


def bandit_log(n: int, seed: int, noise: float = 1.0) -> pd.DataFrame:
    """Uniform logging over three actions; reward = MU[regime][action] + N(0, noise)."""
    rng = np.random.default_rng(seed)
    regimes = np.where(rng.random(n) < P_TREND, "trend_up", "range_low_vol")
    acts = np.array(ACTIONS)[rng.integers(3, size=n)]
    means = np.array([MU[r][a] for r, a in zip(regimes, acts, strict=True)])
    return pd.DataFrame({
        "pair": np.where(rng.random(n) < 0.5, "BTC/USDT", "ETH/USDT"),
        "regime": regimes, "action": acts, "probability": 1 / 3,
        "reward": means + rng.normal(0, noise, n),
        "time": pd.Timestamp("2024-01-01", tz="UTC") + pd.to_timedelta(np.arange(n), "h"),
    })


def run_many(seeds: int = 200, n: int = 300) -> dict[str, np.ndarray]:
    out: dict[str, list[float]] = {k: [] for k in
                                   ("ips", "snips", "dr", "ips_se", "dr_se", "snips_se")}
    target = mapping_target(TARGET)
    for seed in range(seeds):
        res = off_policy_evaluate(bandit_log(n, seed), target)
        for k in ("ips", "snips", "dr"):
            est = getattr(res, k)
            out[k].append(est.value)
            out[f"{k}_se"].append(est.se)
    return {k: np.array(v) for k, v in out.items()}


@pytest.fixture(scope="module")
def many() -> dict[str, np.ndarray]:
    return run_many()


def test_ips_and_dr_are_unbiased(many: dict[str, np.ndarray]) -> None:
    for k in ("ips", "snips", "dr"):
        values = many[k]
        tol = 4 * values.std(ddof=1) / np.sqrt(len(values))
        assert abs(values.mean() - TRUE_VALUE) < tol, k


def test_dr_has_lower_variance_than_ips(many: dict[str, np.ndarray]) -> None:
    assert many["dr"].var() < 0.6 * many["ips"].var()
    assert many["snips"].var() < many["ips"].var()
    # the reported SEs match the spread across seeds
    for k in ("ips", "dr"):
        assert many[f"{k}_se"].mean() == pytest.approx(many[k].std(ddof=1), rel=0.2)


def test_confidence_interval_coverage(many: dict[str, np.ndarray]) -> None:
    for k in ("ips", "snips", "dr"):
        covered = np.abs(many[k] - TRUE_VALUE) <= 1.96 * many[f"{k}_se"]
        assert 0.88 <= covered.mean() <= 0.99, (k, covered.mean())


def test_exact_answers_on_a_tiny_log() -> None:
    log = pd.DataFrame({"pair": "A", "regime": ["trend_up"] * 4, "action": ["x", "y", "x", "y"],
                        "probability": [0.25, 0.75, 0.25, 0.75], "reward": [1.0, 0.0, 3.0, 2.0]})
    res = off_policy_evaluate(log, static_target("x"), cross_fit=1)
    assert res.ips.value == pytest.approx((4 * 1 + 4 * 3) / 4)
    assert res.snips.value == pytest.approx(2.0)
    assert res.dm.value == pytest.approx(2.0)  # cell mean of x
    assert res.dr.value == pytest.approx(2.0 + (4 * (1 - 2) + 4 * (3 - 2)) / 4)
    assert res.logged.value == pytest.approx(1.5)
    assert res.match_rate == 0.5
    assert res.max_weight == 4.0 and res.mean_weight == pytest.approx(2.0)
    assert res.ess == pytest.approx(2.0)
    assert "in-sample" in res.reward_model
    lo, hi = res.ips.ci()
    assert lo < res.ips.value < hi
    assert list(res.table().index) == ["ips", "snips", "dm", "dr", "logged"]


def test_logging_target_equals_on_policy_mean() -> None:
    log = bandit_log(500, 3)
    res = off_policy_evaluate(log, uniform_target(ACTIONS))
    assert res.ips.value == pytest.approx(log["reward"].mean())
    assert res.snips.value == pytest.approx(log["reward"].mean())
    assert res.ess == pytest.approx(500)


def test_user_reward_model_and_cross_fitting() -> None:
    log = bandit_log(400, 8)
    exact = off_policy_evaluate(log, mapping_target(TARGET),
                                reward_model=lambda ctx, a: MU[ctx["regime"]][a])
    assert exact.reward_model == "user reward model"
    assert exact.dm.value == pytest.approx(
        np.mean([MU[r][TARGET[r]] for r in log["regime"]]))
    cross = off_policy_evaluate(log, mapping_target(TARGET), cross_fit=4)
    plain = off_policy_evaluate(log, mapping_target(TARGET), cross_fit=1)
    assert "4-fold" in cross.reward_model
    assert abs(cross.dr.value - TRUE_VALUE) < 4 * cross.dr.se
    assert abs(plain.dr.value - TRUE_VALUE) < 4 * plain.dr.se
    # model keyed by pair and regime, too
    both = off_policy_evaluate(log, mapping_target(TARGET), model_keys=("pair", "regime"))
    assert np.isfinite(both.dr.value)


def test_clustered_standard_errors() -> None:
    log = bandit_log(600, 4)
    # a common shock per week (same for every action): IPS terms correlate within a week
    week = (np.arange(600) // 168).astype(int)
    shock = np.random.default_rng(1).normal(0, 3.0, week.max() + 1)[week]
    log["reward"] = log["reward"] + shock
    res = off_policy_evaluate(log, mapping_target(TARGET), cluster="week")
    assert res.ips.n_clusters == 4
    assert np.isfinite(res.ips.se_clustered)
    assert res.ips.ci(clustered=True) != res.ips.ci()
    with pytest.raises(OPEError, match="needs a 'when' column"):
        off_policy_evaluate(log, mapping_target(TARGET), cluster="week", time="when")


@pytest.mark.parametrize(("probability", "message"), [
    (None, "missing"),
    (np.nan, "missing"),
    ("n/a", "missing"),
    (0.0, "outside"),
    (1.5, "outside"),
])
def test_bad_propensities_are_refused(probability: Any, message: str) -> None:
    log = bandit_log(20, 0)
    log["probability"] = log["probability"].astype(object)
    log.loc[7, "probability"] = probability
    with pytest.raises(OPEError, match=message) as err:
        off_policy_evaluate(log, static_target("a"))
    assert "row 7" in str(err.value)


def test_bad_inputs_are_refused() -> None:
    log = bandit_log(20, 0)
    with pytest.raises(OPEError, match="missing column"):
        off_policy_evaluate(log.drop(columns="probability"), static_target("a"))
    with pytest.raises(OPEError, match="no rows"):
        off_policy_evaluate(log.iloc[:0], static_target("a"))

    def bad_target(_: Mapping[str, Any]) -> Mapping[str, float]:
        return {"a": 0.5, "b": 0.4}

    with pytest.raises(OPEError, match="sum to"):
        off_policy_evaluate(log, bad_target)
    with pytest.raises(OPEError, match="no action"):
        off_policy_evaluate(log, mapping_target({"trend_up": "a"}))
    with pytest.raises(OPEError, match="cross_fit"):
        off_policy_evaluate(log, static_target("a"), cross_fit=0)
    bad = log.assign(reward=log["reward"].where(log.index != 2))
    with pytest.raises(OPEError, match="row 2"):
        off_policy_evaluate(bad, static_target("a"))
    # a target that never takes a logged action: SNIPS undefined, IPS 0
    none = off_policy_evaluate(log, static_target("zzz"))
    assert none.ips.value == 0.0 and np.isnan(none.snips.value) and none.match_rate == 0.0


def test_ledger_log_round_trip() -> None:
    store = MemoryStore()
    sel = MetaStrategySelector(config=SelectorConfig(seed=1, min_samples=1), store=store)
    rng = np.random.default_rng(0)
    t0 = pd.Timestamp("2024-01-01", tz="UTC").to_pydatetime()
    for i in range(60):
        d = sel.choose_strategy("BTC/USDT", "range_low_vol")
        sel.update_reward("BTC/USDT", "range_low_vol", d.strategy_id, float(rng.normal()),
                          trade_id=i, at=t0 + pd.Timedelta(hours=i), probability=d.probability)
    log = log_from_ledger(store.ledger())
    assert list(log.columns) == ["trade_id", "pair", "regime", "action", "probability",
                                 "reward", "time"]
    assert len(log) == 60 and str(log["time"].dt.tz) == "UTC"
    res = off_policy_evaluate(log, static_target("scalp"), cluster="week")
    assert res.n == 60 and np.isfinite(res.ips.value)
    # a ledger written without propensities cannot be used
    bare = MemoryStore()
    bare.apply_reward("BTC/USDT", "range_low_vol", "scalp", 1.0, alpha=0.2, trade_id=1)
    with pytest.raises(OPEError, match="row 0: logging probability"):
        off_policy_evaluate(log_from_ledger(bare.ledger()), static_target("scalp"))


def test_ledger_rows_without_probability_are_left_out() -> None:
    """Adopted trades (no frozen decision data) are settled without a probability."""
    logged, mixed = MemoryStore(), MemoryStore()
    t0 = pd.Timestamp("2024-01-01", tz="UTC").to_pydatetime()
    log = bandit_log(40, 5)
    columns = [log[c] for c in ("pair", "regime", "action", "reward", "probability")]
    for i, (pair, regime, action, reward, prob) in enumerate(zip(*columns, strict=True)):
        at = t0 + pd.Timedelta(hours=i)
        args = (str(pair), str(regime), str(action), float(reward))
        for store in (logged, mixed):
            store.apply_reward(*args, alpha=0.2, trade_id=i, at=at, probability=float(prob))
        if i % 4 == 0:
            mixed.apply_reward(*args, alpha=0.2, trade_id=f"adopted-{i}", at=at)
    kept, skipped = drop_missing_probability(log_from_ledger(mixed.ledger()))
    assert skipped == 10 and len(kept) == 40 and list(kept.index) == list(range(40))
    target = mapping_target(TARGET)
    got = off_policy_evaluate(kept, target, cluster="week")
    want = off_policy_evaluate(log_from_ledger(logged.ledger()), target, cluster="week")
    assert got == want
    # nothing but adopted trades: nothing left to evaluate
    bare = MemoryStore()
    bare.apply_reward("BTC/USDT", "range_low_vol", "scalp", 1.0, alpha=0.2, trade_id=1)
    kept, skipped = drop_missing_probability(log_from_ledger(bare.ledger()))
    assert kept.empty and skipped == 1
    # only missing values are left out; impossible ones are still refused
    zero = log.assign(probability=[0.0] + [1 / 3] * 39)
    assert drop_missing_probability(zero)[1] == 0


def test_ope_on_a_replayed_log_matches_full_information() -> None:
    df = synthetic_outcomes(n=1500, seed=6, spacing="2h")
    res = replay(df, [UniformRandomSpec(), FixedProfileSpec("moderate"),
                      LearnerSpec("eps", SelectorConfig(epsilon=0.3))], seed=2)
    truth = res.rewards("static:moderate").mean()
    for logger in ("random", "eps"):
        ope = off_policy_evaluate(log_from_replay(res, logger), static_target("moderate"))
        for est in (ope.ips, ope.dr):
            assert abs(est.value - truth) < 4 * est.se, (logger, est)
    with pytest.raises(OPEError, match="unknown policy"):
        log_from_replay(res, "nope")
