"""Causal replay: hindsight baselines with known answers, causality, delayed feedback."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import pytest

from freqtrade_metastrategy.errors import EvaluationError
from freqtrade_metastrategy.evaluation.hindsight import HINDSIGHT
from freqtrade_metastrategy.evaluation.metrics import compute_metrics
from freqtrade_metastrategy.evaluation.outcomes import OutcomeTable, synthetic_outcomes
from freqtrade_metastrategy.evaluation.replay import ReplayResult, replay
from freqtrade_metastrategy.evaluation.specs import (
    DEFAULT_LEARNERS,
    FixedProfileSpec,
    LearnerSpec,
    UniformRandomSpec,
    WalkForwardStaticSpec,
    default_policies,
)
from freqtrade_metastrategy.heuristics import candidates
from freqtrade_metastrategy.profiles import BUILTIN_PROFILES, ProfileRegistry
from freqtrade_metastrategy.selector import SelectorConfig

PROFILES = tuple(BUILTIN_PROFILES)
T0 = pd.Timestamp("2024-01-01", tz="UTC")


def build(
    regimes: Sequence[str],
    reward: Callable[[int, str, str], float],
    *,
    spacing: str = "1h",
    hold: Callable[[int, str], pd.Timedelta] | None = None,
    profiles: Sequence[str] = PROFILES,
    pairs: Sequence[str] = ("BTC/USDT",),
) -> pd.DataFrame:
    """One entry per regime in ``regimes``, ``spacing`` apart; ``reward(entry, regime,
    profile)`` in R (r_risk = -R so the units rank profiles oppositely, ret_pct = R/2)."""
    rows: list[dict[str, Any]] = []
    for e, regime in enumerate(regimes):
        sig = T0 + e * pd.Timedelta(spacing)
        for p in profiles:
            r = reward(e, regime, p)
            held = hold(e, p) if hold is not None else pd.Timedelta("30min")
            rows.append({
                "entry_id": e, "pair": pairs[e % len(pairs)], "side": "long",
                "signal_time": sig, "entry_time": sig, "regime": regime, "profile": p,
                "r_atr": r, "r_risk": -r, "ret_pct": r / 2, "exit_time": sig + held,
                "exit_reason": "x",
            })
    return pd.DataFrame(rows)


# trend entries: ultra best (2), range entries: scalp best (1.5); moderate steady.
TREND = {"ultra_aggressive": 2.0, "scalp": -1.0, "moderate": 0.5}
RANGE = {"ultra_aggressive": -1.0, "scalp": 1.5, "moderate": 0.6}


def known_reward(_: int, regime: str, profile: str) -> float:
    table = TREND if regime == "trend_up" else RANGE
    return table.get(profile, 0.5 if regime == "trend_up" else 0.0)


def known_table() -> pd.DataFrame:
    regimes = ["trend_up", "trend_up", "trend_up", "range_low_vol", "range_low_vol"] * 10
    return build(regimes, known_reward)


def decisions_until(res: ReplayResult, t: pd.Timestamp) -> dict[str, tuple[Any, ...]]:
    """Per causal policy: (entry ids, choices, probabilities) of decisions at or before t."""
    m = res.table.entries["signal_time"] <= t
    ids = tuple(res.table.entries.loc[m, "entry_id"])
    return {
        p: (ids, tuple(res.choice[p][m.to_numpy()]), tuple(res.probability[p][m.to_numpy()]))
        for p in res.policies if res.kinds[p] != "hindsight"
    }


# -- hindsight baselines -----------------------------------------------------------------------
def test_hindsight_baselines_known_answers() -> None:
    res = replay(known_table(), [FixedProfileSpec(p) for p in PROFILES])
    # totals: ultra 30*2 - 20 = 40, moderate 30*0.5 + 20*0.6 = 27, scalp -30 + 30 = 0
    assert res.info["best_static"]["profile"] == "ultra_aggressive"
    assert res.info["best_static"]["totals"]["moderate"] == pytest.approx(27.0)
    assert res.info["oracle_regime"]["mapping"] == {
        "trend_up": "ultra_aggressive", "range_low_vol": "scalp",
    }
    assert res.rewards("best_static").sum() == pytest.approx(40.0)
    assert res.rewards("oracle_regime").sum() == pytest.approx(30 * 2.0 + 20 * 1.5)
    assert res.rewards("oracle_trade").sum() == pytest.approx(90.0)
    assert res.rewards("static:moderate").sum() == pytest.approx(27.0)
    assert set(HINDSIGHT) <= set(res.policies)
    assert (res.seen["oracle_trade"] == -1).all()


def test_oracle_ordering_on_noisy_data() -> None:
    res = replay(synthetic_outcomes(n=150, seed=4), [FixedProfileSpec(p) for p in PROFILES])
    best = res.rewards("best_static").sum()
    assert best == pytest.approx(max(res.rewards(f"static:{p}").sum() for p in PROFILES))
    assert res.rewards("oracle_regime").sum() >= best
    assert (res.rewards("oracle_trade") >= res.rewards("oracle_regime")).all()
    reward = res.table.reward("r_atr")
    assert np.allclose(res.rewards("oracle_trade"), reward.max(axis=1))


def test_hindsight_uses_the_selected_unit() -> None:
    # r_risk = -r_atr: the best profile in R-risk is the worst in R-ATR
    res = replay(known_table(), [], unit="r_risk")
    assert res.info["best_static"]["profile"] == "scalp"  # r_atr total 0, all others worse
    assert res.info["oracle_regime"]["mapping"]["trend_up"] == "scalp"
    assert np.allclose(res.rewards("best_static", "r_atr"), -res.rewards("best_static"))


# -- static and random -------------------------------------------------------------------------
def test_static_and_random_policies() -> None:
    res = replay(known_table(), [FixedProfileSpec("moderate"), UniformRandomSpec()], seed=5)
    assert set(res.profiles_chosen("static:moderate")) == {"moderate"}
    assert (res.probability["static:moderate"] == 1.0).all()
    reg = ProfileRegistry()
    for regime, chosen, prob in zip(res.table.entries["regime"], res.profiles_chosen("random"),
                                    res.probability["random"], strict=True):
        cands = candidates(reg, regime)
        assert chosen in cands
        assert prob == pytest.approx(1 / len(cands))
    # trend_up has 6 candidates (not scalp), range_low_vol 3
    assert "scalp" not in set(res.profiles_chosen("random")[res.table.entries["regime"]
                                                            == "trend_up"])


def test_default_policies_and_names() -> None:
    names = [p.name for p in default_policies(PROFILES)]
    assert names[:7] == [f"static:{p}" for p in PROFILES]
    assert {"random", "walk_forward_static", *DEFAULT_LEARNERS} <= set(names)
    cfg = DEFAULT_LEARNERS["eps_greedy"]
    assert (cfg.epsilon, cfg.alpha, cfg.min_samples, cfg.exploit_min_q) == (0.1, 0.2, 5, None)
    assert DEFAULT_LEARNERS["eps_greedy_q040"].exploit_min_q == 0.4
    assert DEFAULT_LEARNERS["eps_greedy_nopool"].pool_across_symbols is False
    assert DEFAULT_LEARNERS["ucb1"].policy == "ucb1"
    assert DEFAULT_LEARNERS["thompson"].policy == "thompson"
    with pytest.raises(EvaluationError, match="used twice"):
        replay(known_table(), [UniformRandomSpec(), UniformRandomSpec()])
    with pytest.raises(EvaluationError, match="reserved"):
        replay(known_table(), [UniformRandomSpec(name="best_static")])


# -- walk-forward static -----------------------------------------------------------------------
def test_walk_forward_static_uses_closed_entries_only() -> None:
    # two profiles (default_strategy absent -> the first in registry order, moderate)
    rewards = {0: {"scalp": 1.0, "moderate": 0.0},
               1: {"scalp": -5.0, "moderate": 0.0},
               2: {"scalp": 0.0, "moderate": 0.0},
               3: {"scalp": 0.0, "moderate": 0.0},
               4: {"scalp": 0.0, "moderate": 0.0}}
    holds = {  # entry 1: scalp closes after 30 min, moderate only after 2h
        (0, "scalp"): "30min", (0, "moderate"): "30min",
        (1, "scalp"): "30min", (1, "moderate"): "2h",
    }
    df = build(["trend_up"] * 5, lambda e, _r, p: rewards[e][p], profiles=("moderate", "scalp"),
               hold=lambda e, p: pd.Timedelta(holds.get((e, p), "10h")))
    res = replay(df, [WalkForwardStaticSpec()], hindsight=False)
    chosen = list(res.profiles_chosen("walk_forward_static"))
    # e0: nothing closed -> default; e1 (1h): e0 closed, scalp 1 > 0; e2 (2h): e1's scalp
    # outcome closed but not moderate's -> e1 not counted yet; e3 (3h): e1 closed at 3h,
    # scalp -4 < moderate 0; e4: same.
    assert chosen == ["moderate", "scalp", "scalp", "moderate", "moderate"]
    assert list(res.seen["walk_forward_static"]) == [0, 1, 1, 2, 2]
    assert res.info["walk_forward_static"]["default_profile"] == "moderate"


def test_walk_forward_static_default_is_the_selector_default() -> None:
    res = replay(known_table(), [WalkForwardStaticSpec()], hindsight=False)
    assert res.profiles_chosen("walk_forward_static")[0] == "ultra_aggressive"
    res = replay(known_table(), [WalkForwardStaticSpec(default_profile="moderate")])
    assert res.profiles_chosen("walk_forward_static")[0] == "moderate"


# -- learners, delayed feedback ----------------------------------------------------------------
def expected_seen(res: ReplayResult, policy: str) -> list[int]:
    """Own earlier decisions whose exit_time <= this decision's signal_time."""
    exits = res.exit_ns(policy)
    sig = res.table.signal_ns
    return [int((exits[:i] <= sig[i]).sum()) for i in range(len(sig))]


def test_learners_see_exactly_their_closed_trades() -> None:
    df = synthetic_outcomes(n=120, seed=7, spacing="3h", hold=("1h", "20h"))
    res = replay(df, default_policies(PROFILES), seed=1)
    for name in DEFAULT_LEARNERS:
        assert list(res.seen[name]) == expected_seen(res, name), name
        ledger = res.selectors[name].store.ledger()
        # every applied reward is the chosen profile's r_atr of that entry, in exit order
        chosen = dict(zip(res.table.entries["entry_id"], res.rewards(name), strict=True))
        ids = [int(str(row.trade_id)) for row in ledger]
        assert [row.reward for row in ledger] == [chosen[i] for i in ids]
        settled = [row.settled_at for row in ledger if row.settled_at is not None]
        assert len(settled) == len(ledger) and settled == sorted(settled)
        assert len(ledger) == res.seen[name][-1]
        probs = dict(zip(res.table.entries["entry_id"], res.probability[name], strict=True))
        assert all(row.probability == pytest.approx(probs[int(str(row.trade_id))])
                   for row in ledger)


def test_reward_not_visible_before_exit_time() -> None:
    # every trade closes after the last signal: no learner ever learns anything
    df = build(["trend_up"] * 30, known_reward, hold=lambda e, p: pd.Timedelta("100h"))
    res = replay(df, [LearnerSpec(n, c) for n, c in DEFAULT_LEARNERS.items()], seed=2)
    for name in DEFAULT_LEARNERS:
        assert (res.seen[name] == 0).all()
        assert not res.selectors[name].store.ledger()
    eps = res.decisions("eps_greedy")
    assert eps.loc[~eps["explored"], "heuristic"].all()
    # ... while a trade closing exactly at the next signal is visible to it (exit <= signal)
    df = build(["trend_up"] * 3, known_reward, hold=lambda e, p: pd.Timedelta("1h"))
    res = replay(df, [LearnerSpec("ucb1", SelectorConfig(policy="ucb1"))])
    assert list(res.seen["ucb1"]) == [0, 1, 2]


def test_learners_receive_the_selected_unit() -> None:
    df = build(["trend_up"] * 40, known_reward)
    res = replay(df, [LearnerSpec("eps", SelectorConfig(min_samples=1))], unit="r_risk")
    ledger = res.selectors["eps"].store.ledger()
    rr = dict(zip(res.table.entries["entry_id"], res.rewards("eps", "r_risk"), strict=True))
    assert ledger and all(row.reward == rr[int(str(row.trade_id))] for row in ledger)
    # in r_risk (= -R) the worst R profile is best: the learner settles away from ultra
    late = res.profiles_chosen("eps")[-20:]
    assert (late == "ultra_aggressive").mean() < 0.5


def test_learners_learn_the_regime_mapping() -> None:
    df = synthetic_outcomes(n=400, seed=11, noise=0.5)
    names = ("eps_greedy", "ucb1")
    res = replay(df, [UniformRandomSpec(), *(LearnerSpec(n, DEFAULT_LEARNERS[n]) for n in names)],
                 seed=3)
    for name in names:
        assert res.rewards(name).sum() > res.rewards("random").sum()
        assert res.rewards(name).sum() > res.rewards("best_static").sum()
        late = slice(200, None)
        hit = res.choice[name][late] == res.choice["oracle_regime"][late]
        assert hit.mean() > 0.5, name  # random: 1/6 (trend) or 1/3 (range)


# -- causality ---------------------------------------------------------------------------------
def test_future_outcomes_never_change_past_decisions() -> None:
    df = synthetic_outcomes(n=160, seed=3, spacing="2h", hold=("1h", "30h"))
    cut = pd.Timestamp(df["signal_time"].sort_values().iloc[90])
    rng = np.random.default_rng(0)
    future = df["exit_time"] > cut
    changed = df.copy()
    noise = rng.normal(0, 5.0, int(future.sum()))
    for u in ("r_atr", "r_risk", "ret_pct"):
        changed.loc[future, u] = -changed.loc[future, u] + noise
    a = replay(df, seed=9)
    b = replay(changed, seed=9)
    assert decisions_until(a, cut) == decisions_until(b, cut)
    # ... and the perturbation does matter afterwards (the test has teeth)
    after = (a.table.entries["signal_time"] > cut).to_numpy()
    assert any((a.choice[n][after] != b.choice[n][after]).any() for n in DEFAULT_LEARNERS)


def test_truncating_later_entries_never_changes_a_decision() -> None:
    df = synthetic_outcomes(n=150, seed=5, spacing="2h", hold=("1h", "30h"))
    full = replay(df, seed=4)
    for k in (1, 37, 100):
        cut = pd.Timestamp(df["signal_time"].sort_values().unique()[k])
        part = replay(df[df["signal_time"] <= cut], seed=4)
        assert decisions_until(part, cut) == decisions_until(full, cut)


def test_replay_is_deterministic_per_seed() -> None:
    df = synthetic_outcomes(n=80, seed=1)
    a, b, c = replay(df, seed=1), replay(df, seed=1), replay(df, seed=2)
    for p in a.policies:
        assert (a.choice[p] == b.choice[p]).all()
        np.testing.assert_array_equal(a.probability[p], b.probability[p])
    assert (a.choice["random"] != c.choice["random"]).any()
    # an explicit learner seed wins over the replay seed
    cfg = SelectorConfig(seed=123)
    x = replay(df, [LearnerSpec("e", cfg)], seed=1)
    y = replay(df, [LearnerSpec("e", cfg)], seed=2)
    assert (x.choice["e"] == y.choice["e"]).all()


def test_entry_order_is_signal_time_not_input_order() -> None:
    df = synthetic_outcomes(n=30, seed=2)
    shuffled = df.sample(frac=1.0, random_state=1)
    a, b = replay(df, seed=3), replay(shuffled, seed=3)
    assert list(a.table.entries["entry_id"]) == list(range(30))
    assert a.table.profiles == b.table.profiles
    for p in a.policies:
        assert (a.choice[p] == b.choice[p]).all()


# -- output and validation ---------------------------------------------------------------------
def test_decisions_frame() -> None:
    res = replay(known_table(), [FixedProfileSpec("scalp"), UniformRandomSpec()])
    d = res.decisions()
    assert len(d) == len(res.policies) * 50
    for col in ("policy", "kind", "entry_id", "pair", "regime", "signal_time", "profile",
                "probability", "reward", "r_atr", "r_risk", "ret_pct", "exit_time",
                "exit_reason", "explored", "heuristic", "seen"):
        assert col in d.columns
    assert str(d["exit_time"].dt.tz) == "UTC"
    one = res.decisions("static:scalp")
    assert (one["reward"] == one["r_atr"]).all()
    assert res.choice_counts().loc["static:scalp", "scalp"] == 50
    assert res.reward_frame().shape == (50, len(res.policies))


def mutate(df: pd.DataFrame, fn: Callable[[pd.DataFrame], pd.DataFrame]) -> pd.DataFrame:
    return fn(df.copy())


@pytest.mark.parametrize(("change", "message"), [
    (lambda d: d.drop(columns="exit_time"), "missing column"),
    (lambda d: d.drop(columns=["r_atr", "r_risk", "ret_pct"]), "no reward column"),
    (lambda d: d.iloc[1:], "has no row for profile"),
    (lambda d: pd.concat([d, d.iloc[:1]]), "several rows"),
    (lambda d: d.assign(signal_time=d["signal_time"].dt.tz_localize(None)), "naive"),
    (lambda d: d.assign(r_atr=d["r_atr"].where(d.index != 3)), "finite"),
    (lambda d: d.assign(exit_time=d["signal_time"] - pd.Timedelta("1h")), "exits before"),
    (lambda d: d.assign(regime=np.where(d.index == 0, "range_low_vol", d["regime"])),
     "different 'regime'"),
    (lambda d: d.iloc[:0], "no rows"),
    (lambda d: d.assign(entry_id=d["entry_id"].astype(str)), "integers"),
])
def test_invalid_tables_are_refused(
    change: Callable[[pd.DataFrame], pd.DataFrame], message: str
) -> None:
    with pytest.raises(EvaluationError, match=message):
        OutcomeTable.from_frame(mutate(known_table(), change))


def test_unit_and_profile_errors() -> None:
    with pytest.raises(EvaluationError, match="unit"):
        replay(known_table(), [], unit="pips")
    with pytest.raises(EvaluationError, match="no outcomes"):
        replay(known_table(), [FixedProfileSpec("nope")])
    # a table without the learner's default profile (ultra_aggressive) cannot host it
    df = build(["trend_up"] * 5, known_reward, profiles=("scalp", "moderate"))
    with pytest.raises(EvaluationError, match="default_strategy"):
        replay(df, [LearnerSpec("eps")])
    # ... unless the config's default and heuristic use simulated profiles
    heur: Mapping[str, str] = dict.fromkeys(
        ("trend_up", "trend_down", "range_low_vol", "range_high_vol", "high_volatility",
         "illiquid", "unknown"), "moderate")
    cfg = SelectorConfig(default_strategy="moderate", heuristic=heur)
    res = replay(df, [LearnerSpec("eps", cfg), UniformRandomSpec()])
    assert set(res.profiles_chosen("eps")) <= {"scalp", "moderate"}
    assert set(res.profiles_chosen("random")) == {"moderate"}  # scalp is no trend candidate
    unknown = build(["trend_up"] * 3, lambda *_: 1.0, profiles=("mine",))
    with pytest.raises(EvaluationError, match="registry"):
        replay(unknown, [UniformRandomSpec()])


def test_time_range_subset() -> None:
    table = OutcomeTable.from_frame(known_table())
    part = table.between("2024-01-01 10:00", "2024-01-01 20:00")
    assert len(part) == 10
    assert part.entries["signal_time"].min() == pd.Timestamp("2024-01-01 10:00", tz="UTC")
    res = replay(part, [FixedProfileSpec("scalp")])
    assert compute_metrics(res).summary.loc["static:scalp", "trades"] == 10
