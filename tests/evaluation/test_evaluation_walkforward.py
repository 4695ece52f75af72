"""Out-of-sample evaluation: frozen vs online learners, honest train-chosen baselines."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd
import pytest

from freqtrade_metastrategy.errors import EvaluationError
from freqtrade_metastrategy.evaluation.outcomes import synthetic_outcomes
from freqtrade_metastrategy.evaluation.replay import replay
from freqtrade_metastrategy.evaluation.specs import (
    DEFAULT_LEARNERS,
    FixedProfileSpec,
    LearnerSpec,
    UniformRandomSpec,
    WalkForwardStaticSpec,
)
from freqtrade_metastrategy.evaluation.walkforward import (
    TEST_COMPARATORS,
    evaluate,
    rolling_splits,
    walk_forward,
)

TRAIN = ("2024-01-01", "2024-02-15")
TEST = ("2024-02-15", "2024-04-01")


def shifting_table(n: int = 180) -> pd.DataFrame:
    """Daily entries from 2024-01-01: before 2024-02-15 scalp (trend: ultra) is best, after it
    moderate is best everywhere."""
    rows: list[dict[str, Any]] = []
    t0 = pd.Timestamp("2024-01-01", tz="UTC")
    split = pd.Timestamp("2024-02-15", tz="UTC")
    for e in range(n):
        sig = t0 + pd.Timedelta(hours=12 * e)
        regime = "trend_up" if e % 3 == 0 else "range_low_vol"
        for p in ("defensive", "moderate", "ultra_aggressive", "scalp"):
            if sig < split:
                r = {"scalp": 1.0, "moderate": 0.2, "ultra_aggressive": -0.5}.get(p, 0.0)
                if regime == "trend_up":
                    r = {"ultra_aggressive": 1.5, "scalp": -1.0}.get(p, 0.0)
            else:
                r = {"moderate": 1.0}.get(p, -0.2)
            rows.append({"entry_id": e, "pair": "BTC/USDT", "side": "long", "signal_time": sig,
                         "entry_time": sig, "regime": regime, "profile": p, "r_atr": r,
                         "r_risk": r, "ret_pct": r, "exit_time": sig + pd.Timedelta("20h"),
                         "exit_reason": "x"})
    return pd.DataFrame(rows)


def test_train_chosen_baselines_and_hindsight() -> None:
    wf = evaluate(shifting_table(), train=TRAIN, test=TEST,
                  policies=[FixedProfileSpec("moderate"), UniformRandomSpec()])
    assert wf.info["static_train_best"] == "scalp"
    assert wf.info["regime_train_best"] == {"trend_up": "ultra_aggressive",
                                            "range_low_vol": "scalp"}
    assert wf.test.info["best_static"]["profile"] == "moderate"
    assert wf.train.info["best_static"]["profile"] == "scalp"
    assert set(wf.test.profiles_chosen("static_train_best")) == {"scalp"}
    assert wf.test.kinds["regime_train_best"] == "train_hindsight"
    # the honest baseline loses to hindsight on the test range: 1.0 - (-0.2) per trade
    r = wf.test_metrics.regret_of("static_train_best", "best_static")
    assert r["regret_mean"] == pytest.approx(1.2)
    assert wf.test_metrics.comparators == TEST_COMPARATORS
    assert wf.train_metrics.comparators == ("best_static", "oracle_regime")
    # ranges: 2024-01-01 .. 02-15 = 45 days = 90 entries, the rest of the 180 in the test
    assert (wf.info["train_entries"], wf.info["test_entries"]) == (90, 90)
    # train entries whose outcomes closed by test_start: all but the last (20h hold)
    assert wf.info["train_entries_closed"] == 89
    json.dumps(wf.to_dict(), allow_nan=False)


def test_frozen_learners_do_not_learn_on_test() -> None:
    df = synthetic_outcomes(n=360, seed=3, spacing="4h", hold=("2h", "40h"))
    train = ("2024-01-01", "2024-02-01")
    test = ("2024-02-01", "2024-03-01")
    specs = [LearnerSpec(n, c) for n, c in DEFAULT_LEARNERS.items()]
    wf = evaluate(df, train=train, test=test, policies=[*specs, WalkForwardStaticSpec()],
                  seed=5)
    test_start = pd.Timestamp("2024-02-01", tz="UTC").value
    for name in DEFAULT_LEARNERS:
        assert name in wf.train.policies and name not in wf.test.policies
        frozen, online = wf.test.seen[f"{name}[frozen]"], wf.test.seen[f"{name}[online]"]
        # the frozen learner learned exactly its train trades closed by test_start
        train_exits = wf.train.exit_ns(name)
        assert (frozen == int((train_exits <= test_start).sum())).all()
        assert len(wf.test.selectors[f"{name}[frozen]"].store.ledger()) == frozen[0]
        # the online one keeps learning, with delayed feedback
        assert online[0] >= frozen[0] and online[-1] > frozen[-1]
        assert wf.test.kinds[f"{name}[frozen]"] == "learner"
    # train decisions equal a plain replay of the train range (learners start empty there)
    plain = replay(df[df["signal_time"] < pd.Timestamp("2024-02-01", tz="UTC")], specs, seed=5)
    for name in DEFAULT_LEARNERS:
        assert (plain.choice[name] == wf.train.choice[name]).all()
    # the walk-forward static keeps updating on the test range
    assert wf.test.seen["walk_forward_static"][-1] > wf.test.seen["walk_forward_static"][0]


def test_frozen_and_online_start_from_the_same_state() -> None:
    # no trade closes during the test range: frozen and online then behave identically
    df = synthetic_outcomes(n=100, seed=1, spacing="12h", hold=("1h", "2h"))
    df.loc[df["signal_time"] >= pd.Timestamp("2024-01-26", tz="UTC"), "exit_time"] += (
        pd.Timedelta("400D"))
    wf = evaluate(df, train=("2024-01-01", "2024-01-26"), test=("2024-01-26", "2024-03-01"),
                  policies=[LearnerSpec("eps", DEFAULT_LEARNERS["eps_greedy"])])
    assert (wf.test.choice["eps[frozen]"] == wf.test.choice["eps[online]"]).all()
    np.testing.assert_array_equal(wf.test.probability["eps[frozen]"],
                                  wf.test.probability["eps[online]"])


def test_gap_between_ranges_is_an_embargo() -> None:
    df = shifting_table()
    wf = evaluate(df, train=("2024-01-01", "2024-02-01"), test=("2024-02-15", "2024-04-01"),
                  policies=[FixedProfileSpec("scalp")])
    ids = set(wf.train.table.entries["entry_id"]) | set(wf.test.table.entries["entry_id"])
    gap = df[(df["signal_time"] >= pd.Timestamp("2024-02-01", tz="UTC"))
             & (df["signal_time"] < pd.Timestamp("2024-02-15", tz="UTC"))]["entry_id"]
    assert not ids & set(gap)
    assert wf.info["train_entries_closed"] == wf.info["train_entries"]


@pytest.mark.parametrize(("train", "test", "message"), [
    (("2024-01-01", "2024-03-01"), ("2024-02-01", "2024-04-01"), "overlap"),
    (("2024-02-01", "2024-01-01"), ("2024-03-01", "2024-04-01"), "before end"),
    (("2023-01-01", "2023-02-01"), ("2024-03-01", "2024-04-01"), "no entries"),
    (("2024-01-01",), ("2024-03-01", "2024-04-01"), "pair"),
])
def test_bad_ranges(train: Any, test: Any, message: str) -> None:
    with pytest.raises(EvaluationError, match=message):
        evaluate(shifting_table(), train=train, test=test, policies=[])


def test_rolling_splits() -> None:
    splits = rolling_splits("2024-01-01", "2024-04-01", train="30D", test="20D")
    starts = [te[0].strftime("%m-%d") for _, te in splits]
    assert starts == ["01-31", "02-20", "03-11", "03-31"]
    assert splits[-1][1][1] == pd.Timestamp("2024-04-01", tz="UTC")  # clipped
    assert all(tr[1] == te[0] for tr, te in splits)
    assert all(tr[1] - tr[0] == pd.Timedelta("30D") for tr, _ in splits)
    anchored = rolling_splits("2024-01-01", "2024-04-01", train="30D", test="20D",
                              anchored=True, gap="1D")
    assert all(tr[0] == pd.Timestamp("2024-01-01", tz="UTC") for tr, _ in anchored)
    assert all(te[0] - tr[1] == pd.Timedelta("1D") for tr, te in anchored)
    with pytest.raises(EvaluationError):
        rolling_splits("2024-01-01", "2024-04-01", train="0D", test="20D")


def test_walk_forward_concatenates_out_of_sample_ranges() -> None:
    df = shifting_table(n=180)
    splits = rolling_splits("2024-01-01", "2024-03-31", train="30D", test="15D")
    run = walk_forward(df, splits, policies=[FixedProfileSpec("moderate"), UniformRandomSpec()],
                       seed=2)
    assert len(run.folds) == len(splits)
    n_oos = sum(len(f.test) for f in run.folds)
    assert len(run.oos) == n_oos
    sig = run.oos.table.signal_ns
    assert (np.diff(sig) > 0).all()
    # static_train_best is re-chosen per fold: scalp before the shift, moderate after it
    chosen = [f.info["static_train_best"] for f in run.folds]
    assert chosen[0] == "scalp" and chosen[-1] == "moderate"
    assert set(run.oos.profiles_chosen("static_train_best")) == {"scalp", "moderate"}
    # hindsight is recomputed over all out-of-sample entries
    assert run.oos.info["best_static"]["profile"] == "moderate"
    assert run.oos_metrics.summary.loc["static:moderate", "trades"] == n_oos
    json.dumps(run.to_dict(), allow_nan=False)
    with pytest.raises(EvaluationError, match="no splits"):
        walk_forward(df, [])
    overlapping = [splits[1], splits[0]]
    with pytest.raises(EvaluationError, match="overlap"):
        walk_forward(df, overlapping, policies=[])


def test_walk_forward_skips_folds_without_entries_when_asked() -> None:
    df = shifting_table(n=180)  # entries from 2024-01-01 to 2024-03-30
    # the first two folds' train ranges end before the data starts
    splits = rolling_splits("2023-10-01", "2024-03-31", train="60D", test="30D")
    assert splits[1][0][1] <= pd.Timestamp("2024-01-01", tz="UTC") < splits[2][0][1]
    with pytest.raises(EvaluationError, match="fold 0"):
        walk_forward(df, splits, policies=[UniformRandomSpec()])
    run = walk_forward(df, splits, policies=[UniformRandomSpec()], skip_empty=True)
    assert [s[0] for s in run.skipped] == [splits[0][0], splits[1][0]]
    assert len(run.folds) == len(splits) - 2
    assert run.to_dict()["skipped"][0][0][0] == splits[0][0][0].isoformat()
    with pytest.raises(EvaluationError, match="no fold has entries"):
        walk_forward(df, splits[:1], policies=[UniformRandomSpec()], skip_empty=True)
