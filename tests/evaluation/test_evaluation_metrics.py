"""Metrics: drawdown, Sharpe, regret, clustered standard errors, per-year breakdown."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from freqtrade_metastrategy.errors import EvaluationError
from freqtrade_metastrategy.evaluation.metrics import (
    cluster_ids,
    compute_metrics,
    max_drawdown,
    sharpe,
    sum_stats,
)
from freqtrade_metastrategy.evaluation.outcomes import synthetic_outcomes
from freqtrade_metastrategy.evaluation.replay import ReplayResult, replay
from freqtrade_metastrategy.evaluation.specs import FixedProfileSpec, UniformRandomSpec
from freqtrade_metastrategy.profiles import BUILTIN_PROFILES

PROFILES = tuple(BUILTIN_PROFILES)


# -- elementary statistics ---------------------------------------------------------------------
def test_max_drawdown_hand_sequence() -> None:
    # cumulative: 1, -1, 2, 1, 0, -1 -> peak 2, trough -1 -> 3
    assert max_drawdown(np.array([1.0, -2.0, 3.0, -1.0, -1.0, -1.0])) == 3.0
    # a first loss counts from 0
    assert max_drawdown(np.array([-1.5, 0.5])) == 1.5
    assert max_drawdown(np.array([1.0, 2.0])) == 0.0
    assert max_drawdown(np.array([])) == 0.0
    # order by exit time: the same trades closing in another order
    vals = np.array([3.0, -1.0, -2.0, 1.0])
    assert max_drawdown(vals) == 3.0  # 3, 2, 0, 1
    assert max_drawdown(vals, order_by=np.array([4, 1, 2, 3])) == 3.0  # -1, -3, -2, 1
    assert max_drawdown(vals, order_by=np.array([1, 3, 4, 2])) == 3.0  # 3, 4, 3, 1
    assert max_drawdown(vals, order_by=np.array([2, 1, 3, 4])) == 2.0  # -1, 2, 0, 1
    # ties keep the given order
    assert max_drawdown(vals, order_by=np.array([1, 1, 1, 1])) == 3.0


def test_sharpe_per_trade() -> None:
    assert sharpe(np.array([1.0, 3.0])) == pytest.approx(2.0 / math.sqrt(2.0))
    assert math.isnan(sharpe(np.array([1.0])))
    assert math.isnan(sharpe(np.array([2.0, 2.0])))


def test_sum_stats_hand_computed() -> None:
    d = np.array([1.0, 2.0, 3.0, 6.0])
    s = sum_stats(d, np.array([0, 0, 1, 1]))
    assert (s.n, s.total, s.mean) == (4, 12.0, 3.0)
    sd = math.sqrt(((1 - 3) ** 2 + (2 - 3) ** 2 + 0 + 3**2) / 3)
    assert s.sd == pytest.approx(sd)
    assert s.se_mean_iid == pytest.approx(sd / 2)
    assert s.se_total_iid == pytest.approx(2 * sd)
    # residual sums per cluster: (-2 - 1) = -3 and (0 + 3) = 3; G/(G-1) = 2
    assert s.se_total_clustered == pytest.approx(math.sqrt(2 * (9 + 9)))
    assert s.se_mean_clustered == pytest.approx(math.sqrt(2 * 18) / 4)
    assert s.n_clusters == 2
    assert s.se_ratio == pytest.approx(s.se_mean_clustered / s.se_mean_iid)
    # one cluster: undefined; no clusters: only the i.i.d. SE
    assert math.isnan(sum_stats(d, np.zeros(4, dtype=np.int64)).se_mean_clustered)
    assert math.isnan(sum_stats(d).se_mean_clustered)
    assert sum_stats(np.array([])).n == 0


def test_clustered_se_much_larger_with_within_week_correlation() -> None:
    rng = np.random.default_rng(0)
    weeks, per_week = 60, 20
    clusters = np.repeat(np.arange(weeks), per_week)
    week_effect = np.repeat(rng.normal(0, 1.0, weeks), per_week)
    d = week_effect + rng.normal(0, 0.2, weeks * per_week)
    s = sum_stats(d, clusters)
    # all of a week moves together: the SE ratio approaches sqrt(trades per week) ~ 4.5
    assert s.se_ratio > 3.0
    assert s.se_mean_clustered > 3 * s.se_mean_iid


def test_clustered_se_close_to_naive_when_independent() -> None:
    ratios = []
    for seed in range(20):
        rng = np.random.default_rng(seed)
        clusters = np.repeat(np.arange(100), 10)
        ratios.append(sum_stats(rng.normal(0, 1, 1000), clusters).se_ratio)
    assert 0.9 < float(np.mean(ratios)) < 1.1
    assert all(0.75 < r < 1.3 for r in ratios)


def test_iso_week_clusters() -> None:
    t = pd.DatetimeIndex(["2020-12-27", "2020-12-28", "2021-01-03", "2021-01-04",
                          "2021-01-10 23:59"], tz="UTC")
    assert cluster_ids(t).tolist() == [202052, 202053, 202053, 202101, 202101]
    assert cluster_ids(t, "month").tolist() == [202012, 202012, 202101, 202101, 202101]
    assert cluster_ids(t, "none").tolist() == [0, 1, 2, 3, 4]
    assert len(set(cluster_ids(t, "day").tolist())) == 5
    # a non-UTC time is clustered by its UTC week: Monday 00:30 in Berlin is Sunday in UTC
    berlin = pd.DatetimeIndex(["2021-01-04 00:30"], tz="Europe/Berlin")
    assert cluster_ids(berlin).tolist() == [202053]
    with pytest.raises(EvaluationError, match="cluster"):
        cluster_ids(t, "fortnight")


# -- compute_metrics ---------------------------------------------------------------------------
def known_result() -> tuple[pd.DataFrame, ReplayResult]:
    rows = []
    t0 = pd.Timestamp("2023-12-25", tz="UTC")  # Monday of ISO week 2023-52
    # 3 weeks x 4 entries; week w: scalp gets 1, moderate gets w (0, 1, 2) per trade
    for e in range(12):
        sig = t0 + pd.Timedelta(days=7 * (e // 4) + (e % 4))
        for p, r in (("scalp", 1.0), ("moderate", float(e // 4)),
                     ("ultra_aggressive", -1.0 if e % 2 else 0.5)):
            rows.append({"entry_id": e, "pair": "A", "side": "long", "signal_time": sig,
                         "entry_time": sig, "regime": "range_low_vol", "profile": p,
                         "r_atr": r, "r_risk": r, "ret_pct": r,
                         "exit_time": sig + pd.Timedelta("2h"), "exit_reason": "x"})
    df = pd.DataFrame(rows)
    return df, replay(df, [FixedProfileSpec(p) for p in ("scalp", "moderate", "ultra_aggressive")])


def test_metrics_known_answers() -> None:
    _, res = known_result()
    m = compute_metrics(res)
    s = m.summary
    assert s.loc["static:scalp", "total"] == 12.0
    assert s.loc["static:moderate", "total"] == 12.0  # 0*4 + 1*4 + 2*4
    assert s.loc["static:ultra_aggressive", "total"] == pytest.approx(-3.0)
    assert s.loc["static:ultra_aggressive", "win_rate"] == 0.5
    assert s.loc["static:scalp", "max_drawdown"] == 0.0
    assert s.loc["static:scalp", "n_clusters"] == 3
    assert s.loc["best_static", "kind"] == "hindsight"
    # best static: tie between scalp and moderate (12) -> the first in profile order
    assert res.info["best_static"]["profile"] == "moderate"
    r = m.regret_of("static:scalp", "best_static")
    # paired d = moderate - scalp = -1 (week 0), 0 (week 1), +1 (week 2)
    assert r["regret_total"] == pytest.approx(0.0)
    assert r["n_clusters"] == 3
    # residuals per week sum to -4, 0, 4; CR1 = sqrt(3/2 * 32)
    assert r["se_total_clustered"] == pytest.approx(math.sqrt(1.5 * 32))
    assert r["se_total_iid"] == pytest.approx(math.sqrt(12) * np.std([-1] * 4 + [0] * 4 + [1] * 4,
                                                                     ddof=1))
    assert r["se_ratio"] > 1.5
    u = m.regret_of("static:ultra_aggressive", "oracle_regime")
    assert u["regret_total"] == pytest.approx(12.0 - -3.0)
    assert u["regret_mean"] == pytest.approx(15.0 / 12)
    # no self-comparison rows
    assert not ((m.regret["policy"] == "best_static")
                & (m.regret["comparator"] == "best_static")).any()


def test_per_year_breakdown_adds_up() -> None:
    _, res = known_result()
    m = compute_metrics(res)
    y = m.by_year
    assert sorted(y["year"].unique()) == [2023, 2024]  # 2023-12-25..28, then 2024
    for p in ("static:moderate", "static:ultra_aggressive"):
        rows = y[y["policy"] == p]
        assert rows["total"].sum() == pytest.approx(m.summary.loc[p, "total"])
        assert rows["trades"].sum() == 12
        assert rows["regret[best_static]"].sum() == pytest.approx(
            m.regret_of(p, "best_static")["regret_total"])
    assert (y[y["year"] == 2023]["trades"] == 4).all()


def test_metrics_on_replay_and_json() -> None:
    res = replay(synthetic_outcomes(n=300, seed=2, spacing="6h"),
                 [FixedProfileSpec("scalp"), UniformRandomSpec()], seed=1)
    m = compute_metrics(res, comparators=["best_static", "oracle_regime", "oracle_trade"])
    assert list(m.summary.index) == list(res.policies)
    assert (m.regret[m.regret["comparator"] == "oracle_trade"]["regret_total"] >= 0).all()
    oracle = m.regret_of("random", "oracle_regime")
    assert oracle["regret_total"] == pytest.approx(
        res.rewards("oracle_regime").sum() - res.rewards("random").sum())
    doc = json.dumps(m.to_dict(), allow_nan=False)
    assert '"summary"' in doc
    with pytest.raises(EvaluationError, match="unknown policy"):
        compute_metrics(res, comparators=["nope"])
    with pytest.raises(EvaluationError, match="cluster"):
        compute_metrics(res, cluster="hour")
    only = compute_metrics(res, policies=["random"], cluster="none")
    assert list(only.summary.index) == ["random"]
    assert only.summary.loc["random", "n_clusters"] == 300


def test_drawdown_follows_exit_time_order() -> None:
    # (reward, hold): the second entry closes first
    trades = ((-2.0, "10h"), (3.0, "1h"), (-2.0, "2h"))
    rows = []
    t0 = pd.Timestamp("2024-03-01", tz="UTC")
    for e, (r, hold) in enumerate(trades):
        sig = t0 + pd.Timedelta(hours=e)
        rows.append({"entry_id": e, "pair": "A", "side": "long", "signal_time": sig,
                     "entry_time": sig, "regime": "trend_up", "profile": "moderate",
                     "r_atr": r, "r_risk": r, "ret_pct": r,
                     "exit_time": sig + pd.Timedelta(hold), "exit_reason": "x"})
    res = replay(pd.DataFrame(rows), [FixedProfileSpec("moderate")], hindsight=False)
    # signal order -2, +3, -2 would give 2; exit order +3, -2, -2 gives 3 -> -1: 4
    assert compute_metrics(res).summary.loc["static:moderate", "max_drawdown"] == 4.0
