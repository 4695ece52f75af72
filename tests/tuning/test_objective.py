"""One trial: the cached signals reclassified and the configured policy replayed walk-forward.

The anchor: a trial at the configured values is exactly ``evaluate``'s walk-forward of the
configured policy (same signals, same rewards, same static_train_best), computed from the
strategy's own regime labels rather than reclassified ones.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from freqtrade_metastrategy.config import MetaStrategyConfig
from freqtrade_metastrategy.entries import load_entries
from freqtrade_metastrategy.evaluation.outcomes import OutcomeTable
from freqtrade_metastrategy.evaluation.specs import CONFIGURED, configured_spec
from freqtrade_metastrategy.evaluation.walkforward import ONLINE, rolling_splits, walk_forward
from freqtrade_metastrategy.regime import MarketRegime
from freqtrade_metastrategy.timerange import parse_timerange
from freqtrade_metastrategy.tuning.objective import Fold, TrialEvaluator, TuneData, sqn
from freqtrade_metastrategy.tuning.space import search_space
from tuning.conftest import TIMERANGE, WALK_FORWARD

Inputs = tuple[dict[str, Any], TuneData]


def _evaluator(inputs: Inputs, folds: list[Fold], **section: Any) -> TrialEvaluator:
    config, data = inputs
    ms = MetaStrategyConfig.from_dict({**config.get("metastrategy", {}), **section})
    return TrialEvaluator(data, search_space(ms), folds, unit="r_atr", seed=0)


def _keys(table: OutcomeTable) -> list[tuple[str, int, str]]:
    e = table.entries
    return [(str(p), int(t.value), str(s))
            for p, t, s in zip(e["pair"], e["signal_time"], e["side"], strict=True)]


@pytest.mark.parametrize("section", [{}, {"policy": "contextual_ridge", "min_signals": 60},
                                     {"policy": "epsilon_greedy"}],
                         ids=["default", "ridge", "seeds-bandit"])
def test_a_trial_at_the_configured_values_is_evaluates_walk_forward(
        tune_inputs: Inputs, folds: list[Fold], section: dict[str, Any]) -> None:
    config, _ = tune_inputs
    if section:
        config = {**config, "metastrategy": {**config.get("metastrategy", {}), **section}}
    es = load_entries(config, TIMERANGE)
    table = OutcomeTable.coerce(es.simulated_outcomes())
    full = parse_timerange(TIMERANGE)
    splits = rolling_splits(full[0], full[1], train=WALK_FORWARD[0], test=WALK_FORWARD[1])
    run = walk_forward(table, splits, policies=[configured_spec(es.ms_config)], unit="r_atr",
                       seed=0, profiles=es.profiles, skip_empty=True)
    ev = _evaluator(tune_inputs, folds, **section)
    res = ev.evaluate(ev.space.defaults())
    assert len(folds) == len(run.folds) == 5
    oos_keys = _keys(run.oos.table)
    rows = {k: i for i, k in enumerate(_keys(ev.data.table))}
    idx = np.array([rows[k] for k in oos_keys])
    # a bandit runs on in the test range as "configured[online]" (and frozen beside it)
    name = CONFIGURED + ONLINE if CONFIGURED + ONLINE in run.oos.choice else CONFIGURED
    expected = run.oos.rewards(name)
    assert len(idx) > 300
    np.testing.assert_allclose(res.oos[idx], expected, atol=1e-12)
    assert res.oos_total == pytest.approx(float(expected.sum()), abs=1e-9)
    assert res.oos_entries == len(idx)  # every OOS signal decided, no other
    chosen = run.oos.profiles_chosen(name)
    assert res.oos_traded == int((chosen != "stand_aside").sum())
    static = ev.static_train_best(ev.space.defaults())
    np.testing.assert_allclose(static[idx], run.oos.rewards("static_train_best"), atol=1e-12)
    assert res.oos_sqn == pytest.approx(sqn(res.oos[res.choices >= 0]))


def test_reclassifying_the_cached_features_gives_the_strategys_labels(
        tune_inputs: Inputs, folds: list[Fold]) -> None:
    ev = _evaluator(tune_inputs, folds)
    settings = ev.space.apply(ev.space.defaults())
    names = [r.value for r in MarketRegime]
    labels = [names[c] if c < len(names) else "?" for c in ev.regimes(settings)]
    codes = {r.value: r.code for r in MarketRegime}
    relabel = np.array([codes[x] for x in ev.data.table.entries["regime"]])
    assert (ev.regimes(settings) == relabel).all()
    assert len(set(labels)) >= 4
    # other thresholds, other labels (the outcomes are the same rows)
    strict = ev.space.apply({"regime_trend_adx": 40.0, "regime_trend_strength": 0.6})
    loose = ev.space.apply({"regime_trend_adx": 15.0, "regime_trend_strength": 0.1})
    trend = (MarketRegime.TREND_UP.code, MarketRegime.TREND_DOWN.code)
    assert np.isin(ev.regimes(strict), trend).sum() < np.isin(ev.regimes(loose), trend).sum()


def test_an_illiquid_threshold_drops_the_signals_below_it(
        tune_inputs: Inputs, folds: list[Fold]) -> None:
    ev = _evaluator(tune_inputs, folds)
    volume = ev.data.features[ev.data.table.entries["entry_id"].to_numpy(), 3]
    cut = float(np.quantile(volume, 0.2)) / 1e6  # a threshold that makes a fifth illiquid
    space = ev.space
    p = {q.name: q for q in space.parameters}["regime_illiquid_volume_musd"]
    wide = type(space)(tuple(q.with_range(0.0, 1e9) if q is p else q
                             for q in space.parameters), space.base)
    ev2 = TrialEvaluator(ev.data, wide, folds, unit="r_atr", seed=0)
    _, rows = ev2.table_for(wide.apply({"regime_illiquid_volume_musd": round(cut, 1)}))
    kept = volume >= round(cut, 1) * 1e6
    assert 0 < (~kept).sum() < len(kept)
    assert (rows == np.flatnonzero(kept)).all()
    res = ev2.evaluate({"regime_illiquid_volume_musd": round(cut, 1)})
    assert (res.oos[~kept] == 0).all() and (res.choices[~kept] == -2).all()


def test_trials_are_deterministic_and_weekly_sums_are_the_total(
        tune_inputs: Inputs, folds: list[Fold]) -> None:
    ev = _evaluator(tune_inputs, folds)
    values = {"regime_trend_adx": 30.0, "fullinfo_half_life": 300,
              "fullinfo_stand_aside_margin": -0.1, "fullinfo_min_signals": 60}
    a, b = ev.evaluate(values), ev.evaluate(values)
    assert (a.oos == b.oos).all() and (a.choices == b.choices).all()
    assert a.summary() == b.summary()
    assert a.summary() != ev.evaluate(ev.space.defaults()).summary()
    weekly = ev.weekly(a.oos)
    assert len(weekly) == len(ev.oos_weeks) > 40
    assert float(weekly.sum()) == pytest.approx(a.oos_total, abs=1e-9)


def test_fold_decisions_are_the_trials_choices(tune_inputs: Inputs, folds: list[Fold]) -> None:
    ev = _evaluator(tune_inputs, folds)
    values = {"regime_trend_adx": 30.0, "fullinfo_min_signals": 60}
    res = ev.evaluate(values)
    names = ev.data.table.profiles
    for k, fold in enumerate(folds):
        rows, chosen = ev.fold_decisions(values, k)
        sig = ev.data.table.signal_ns[rows]
        assert sig.min() >= fold.train[0] and sig.max() < fold.test[1]
        test = sig >= fold.test[0]
        want = [names[c] if c >= 0 else None for c in res.choices[rows[test]]]
        assert [c for c, t in zip(chosen, test, strict=True) if t] == want
        assert any(c is None for c in chosen) or k > 0


def test_the_cache_round_trips_and_refuses_anything_else(tune_inputs: Inputs,
                                                         tmp_path: Path) -> None:
    _, data = tune_inputs
    path = tmp_path / "c" / "x.pkl"
    data.save(path, "k1")
    back = TuneData.load(path, "k1")
    assert back is not None and len(back.table) == len(data.table)
    assert (back.features == data.features).all()
    assert TuneData.load(path, "k2") is None
    assert TuneData.load(tmp_path / "missing.pkl", "k1") is None
    (tmp_path / "bad.pkl").write_bytes(b"not a pickle")
    assert TuneData.load(tmp_path / "bad.pkl", "k1") is None
    with (tmp_path / "old.pkl").open("wb") as f:
        pickle.dump({"version": -1, "key": "k1", "data": data}, f)
    assert TuneData.load(tmp_path / "old.pkl", "k1") is None
    assert not list(path.parent.glob("*.tmp"))
