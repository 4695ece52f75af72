"""Trials in an Optuna study: every sampled value on its parameter's grid, the values a trial
evaluated are the ones it stored, and the same seed proposes the same trials."""

from __future__ import annotations

from typing import Any

from freqtrade_metastrategy.config import MetaStrategyConfig
from freqtrade_metastrategy.tuning.objective import Fold, TrialEvaluator, TrialResult, TuneData
from freqtrade_metastrategy.tuning.space import search_space
from freqtrade_metastrategy.tuning.study import completed_trials, open_study, run_trials

Inputs = tuple[dict[str, Any], TuneData]


def _trials(inputs: Inputs, folds: list[Fold], section: dict[str, Any], seed: int, n: int
            ) -> tuple[TrialEvaluator, list[dict[str, float]], list[Any]]:
    config, data = inputs
    ms = MetaStrategyConfig.from_dict({**config.get("metastrategy", {}), **section})
    ev = TrialEvaluator(data, search_space(ms), folds, unit="r_atr", seed=0)
    study = open_study(None, "t", {}, seed)
    evaluated: list[dict[str, float]] = []

    def seen(res: TrialResult) -> None:
        evaluated.append(dict(res.values))

    run_trials(study, ev, n_trials=n, objective="total", callback=seen)
    return ev, evaluated, completed_trials(study)


def test_sampled_values_are_on_the_grid_and_are_what_the_trial_evaluated(
        tune_inputs: Inputs, folds: list[Fold]) -> None:
    # the seeds' bandit has the int parameter (min_samples) and epsilon / alpha
    for section in ({}, {"policy": "contextual_ridge"}, {"policy": "epsilon_greedy"}):
        ev, evaluated, trials = _trials(tune_inputs, folds, section, seed=3, n=14)
        grid = {p.name: p for p in ev.space.parameters}
        assert len(trials) == len(evaluated) == 14
        for t, values in zip(trials, evaluated, strict=True):
            assert set(values) == set(grid)
            assert ev.space.snapped(t.params) == values
            for name, v in values.items():
                p = grid[name]
                assert p.snap(v) == v and p.low <= v <= p.high, (name, v)
                if p.is_int:
                    assert v == int(v)
            assert t.figures["oos_total"] == ev.evaluate(values).oos_total


def test_the_same_seed_proposes_the_same_trials(tune_inputs: Inputs,
                                                folds: list[Fold]) -> None:
    _, a, ta = _trials(tune_inputs, folds, {}, seed=5, n=12)
    _, b, tb = _trials(tune_inputs, folds, {}, seed=5, n=12)
    _, c, _ = _trials(tune_inputs, folds, {}, seed=6, n=12)
    assert a == b and [t.value for t in ta] == [t.value for t in tb]
    assert a != c
