"""Full-information policies in the replay: stand-aside scored 0 R, the walk-forward static as
their running-mean case, the product default is the rule's choice, and causality by
truncation on real candles."""

from __future__ import annotations

import logging
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from freqtrade_metastrategy.config import MetaStrategyConfig
from freqtrade_metastrategy.evaluation.metrics import compute_metrics
from freqtrade_metastrategy.evaluation.outcomes import OutcomeTable, synthetic_outcomes
from freqtrade_metastrategy.evaluation.replay import STAND_ASIDE, replay
from freqtrade_metastrategy.evaluation.runners import FullInfoRunner, build_runners
from freqtrade_metastrategy.evaluation.simulator import infer_tick_sizes, simulate
from freqtrade_metastrategy.evaluation.specs import (
    DEFAULT_POLICY,
    FULL_INFO_CANDIDATES,
    FullInfoSpec,
    WalkForwardStaticSpec,
)
from freqtrade_metastrategy.fullinfo import FullInfoConfig


def _losing_table() -> OutcomeTable:
    """Every profile loses in range_low_vol, ultra_aggressive pays in trend_up."""
    means = {"trend_up": {"ultra_aggressive": 1.0, "scalp": -0.5},
             "range_low_vol": {"ultra_aggressive": -0.8, "scalp": -0.4}}
    return OutcomeTable.from_frame(synthetic_outcomes(n=400, seed=4, means=means, noise=0.3))


def test_stand_aside_earns_zero_and_is_counted() -> None:
    table = _losing_table()
    cfg = FullInfoConfig(policy="contextual_ridge", min_signals=20, switch_margin=0.0)
    res = replay(table, [FullInfoSpec("ridge+aside", cfg),
                         FullInfoSpec("ridge", replace(cfg, stand_aside=False))],
                 unit="r_atr", seed=0, hindsight=False)
    aside = res.choice["ridge+aside"] == STAND_ASIDE
    regimes = table.entries["regime"].to_numpy()
    assert aside.sum() > 100 and (regimes[aside] == "range_low_vol").mean() > 0.95
    assert (res.rewards("ridge+aside")[aside] == 0.0).all()
    assert (res.profiles_chosen("ridge+aside")[aside] == "stand_aside").all()
    traded = ~aside
    np.testing.assert_array_equal(res.rewards("ridge+aside")[traded],
                                  res.rewards("ridge")[traded])
    counts = res.choice_counts()
    assert counts.loc["ridge+aside", "stand_aside"] == aside.sum()
    assert counts.loc["ridge", "stand_aside"] == 0
    summary = compute_metrics(res).summary
    assert summary.loc["ridge+aside", "traded"] == traded.sum()
    assert summary.loc["ridge+aside", "trades"] == len(table)
    assert summary.loc["ridge+aside", "total"] > summary.loc["ridge", "total"]
    dec = res.decisions("ridge+aside")
    assert (dec.loc[aside, "exit_reason"] == "stand_aside").all()
    assert (dec.loc[aside, "exit_time"] == dec.loc[aside, "signal_time"]).all()


def test_walk_forward_static_is_the_running_mean_full_information_policy() -> None:
    table = OutcomeTable.from_frame(synthetic_outcomes(n=300, seed=9))
    cfg = WalkForwardStaticSpec().full_info()
    res = replay(table, [WalkForwardStaticSpec(), FullInfoSpec("same", cfg)], hindsight=False)
    np.testing.assert_array_equal(res.choice["walk_forward_static"], res.choice["same"])
    assert res.kinds["walk_forward_static"] == "walk_forward"
    assert res.kinds["same"] == "full_info"


def test_the_default_policy_is_the_rules_choice_and_the_products_default() -> None:
    assert FULL_INFO_CANDIDATES[DEFAULT_POLICY] == FullInfoConfig()
    assert MetaStrategyConfig.from_dict({}).full_info == FullInfoConfig()
    seeds = MetaStrategyConfig.from_dict({"policy": "epsilon_greedy"})
    assert seeds.full_info is None and seeds.selector.policy == "epsilon_greedy"


# -- causality by truncation, on the bundled candles --------------------------------------------
@pytest.fixture(scope="module")
def bundled() -> tuple[dict[str, pd.DataFrame], pd.DataFrame, list]:  # type: ignore[type-arg]
    from conftest import REPO_ROOT

    from freqtrade_metastrategy.entries import load_config, load_entries

    logging.getLogger("freqtrade").setLevel(logging.ERROR)
    cfg = load_config([REPO_ROOT / "config.example.json"],
                      strategy_path=REPO_ROOT / "user_data" / "strategies",
                      datadir=REPO_ROOT / "user_data" / "data" / "binance")
    es = load_entries(cfg, "20230101-20230801")
    return es.candles, es.context, es  # type: ignore[return-value]


def _outcomes(es: object, candles: dict[str, pd.DataFrame], cut: pd.Timestamp | None
              ) -> pd.DataFrame:
    entries = es.entries  # type: ignore[attr-defined]
    if cut is not None:
        candles = {p: df[df["date"] <= cut].reset_index(drop=True) for p, df in candles.items()}
    keep = [i for i, e in enumerate(entries) if cut is None or e.signal_time <= cut]
    ticks = infer_tick_sizes(es.candles)  # type: ignore[attr-defined]
    out = simulate(candles, [entries[i] for i in keep], dict(es.profiles),  # type: ignore[attr-defined]
                   fee=0.001, tick_size=ticks)
    ctx = es.context.iloc[keep].reset_index(drop=True)  # type: ignore[attr-defined]
    ids = out["entry_id"].to_numpy()
    for col in ctx.columns:
        out[col] = ctx[col].to_numpy()[ids]
    out["entry_id"] = np.asarray(keep)[ids]  # the same ids as the full run
    return out


@pytest.mark.parametrize("name", ["ridge+aside", "wfs_disc+aside"])
def test_truncating_the_candles_after_a_decision_changes_nothing_it_used(
    bundled: tuple, name: str  # type: ignore[type-arg]
) -> None:
    candles, _ctx, es = bundled
    cfg = replace(FULL_INFO_CANDIDATES[name], min_signals=50, half_life=200.0)

    def run(cut: pd.Timestamp | None) -> tuple[pd.DataFrame, FullInfoRunner]:
        table = OutcomeTable.from_frame(_outcomes(es, candles, cut))
        _, (runner,) = build_runners(table, [FullInfoSpec(name, cfg)], unit="r_atr", seed=0,
                                     profiles=es.profiles)
        runner.run(range(len(table)))
        assert isinstance(runner, FullInfoRunner)
        frame = pd.DataFrame({"entry_id": table.entries["entry_id"],
                              "choice": runner.trace.choice, "seen": runner.trace.seen,
                              "value": runner.value}).set_index("entry_id")
        return frame, runner

    full, runner = run(None)
    assert runner.learner.released > 300
    assert (full["choice"] == STAND_ASIDE).any() and (full["choice"] != STAND_ASIDE).any()
    starts = pd.DatetimeIndex(pd.to_datetime([e.signal_time for e in es.entries]))
    for cut in pd.to_datetime(["2023-02-14 05:00", "2023-04-01 00:00", "2023-06-17 13:00"],
                              utc=True):
        part, _ = run(cut)
        # every decision on a signal at or before the cut (its candle exists in both) ...
        decided = [i for i in part.index if starts[i] <= cut]
        assert len(decided) > 50
        pd.testing.assert_frame_equal(part.loc[decided], full.loc[decided])


def test_a_bandit_with_stand_aside_declines_only_when_it_exploits_a_losing_cell() -> None:
    from freqtrade_metastrategy.evaluation.specs import LearnerSpec
    from freqtrade_metastrategy.selector import SelectorConfig

    table = _losing_table()
    heuristic = {"trend_up": "scalp", "range_low_vol": "scalp"}
    cfg = SelectorConfig(epsilon=0.1, min_samples=3, seed=5, heuristic=heuristic)
    res = replay(table, [LearnerSpec("eps", cfg), LearnerSpec("eps+aside", cfg, 0.0)],
                 unit="r_atr", seed=0, hindsight=False)
    aside = res.choice["eps+aside"] == STAND_ASIDE
    assert aside.sum() > 50
    assert not (res.explored["eps+aside"] & aside).any()
    assert not (res.heuristic["eps+aside"] & aside).any()
    assert (res.rewards("eps+aside")[aside] == 0.0).all()
    assert (res.choice["eps"] != STAND_ASIDE).all()  # no margin: the seeds' learner, exact
    regimes = table.entries["regime"].to_numpy()
    assert (regimes[aside] == "range_low_vol").mean() > 0.9


def test_stand_aside_for_a_bandit_is_explicit() -> None:
    example = MetaStrategyConfig.from_dict({"policy": "epsilon_greedy", "estimator": "mean"})
    assert example.bandit_stand_aside is None and example.full_info is None
    aside = MetaStrategyConfig.from_dict({"policy": "epsilon_greedy", "stand_aside": True,
                                          "stand_aside_margin": 0.1})
    assert aside.bandit_stand_aside == 0.1
    assert MetaStrategyConfig.from_dict({"stand_aside": True}).bandit_stand_aside is None
