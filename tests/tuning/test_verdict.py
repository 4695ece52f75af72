"""The winner's checks: PBO over weeks x trials, the deflated Sharpe, paired comparisons."""

from __future__ import annotations

import numpy as np
import pytest

from freqtrade_metastrategy.tuning.verdict import (
    DSR_MIN,
    PBO_MAX,
    compare,
    judge,
    pbo_splits,
)


def _weeks(n: int) -> np.ndarray:
    return np.repeat(np.arange(n), 3)


def test_a_real_edge_clears_every_check() -> None:
    rng = np.random.default_rng(7)
    weekly = [rng.normal(0.0, 1.0, 104) for _ in range(30)]
    weekly[4] = rng.normal(1.5, 1.0, 104)  # a genuine edge, every week
    signals = np.repeat(weekly[4] / 3, 3)
    cmp = [compare(signals, np.zeros_like(signals), _weeks(104), "defaults")]
    v = judge(weekly, 4, "total", cmp)
    assert v.clears, v.reasons
    assert v.pbo is not None and v.pbo["pbo"] < PBO_MAX and v.pbo["n_splits"] == 16
    assert v.dsr is not None and v.dsr["dsr"] >= DSR_MIN and v.dsr["n_trials"] == 30
    assert "clears" in v.sentence()


def test_the_best_of_noise_is_reported_as_noise() -> None:
    rng = np.random.default_rng(3)
    weekly = [rng.normal(0.0, 1.0, 52) for _ in range(100)]
    win = int(np.argmax([w.sum() for w in weekly]))
    signals = np.repeat(weekly[win] / 3, 3)
    cmp = [compare(signals, np.zeros_like(signals), _weeks(52), "defaults")]
    v = judge(weekly, win, "total", cmp)
    assert not v.clears
    assert any(r.startswith("deflated Sharpe") for r in v.reasons)
    assert v.sentence().startswith("The winner does NOT clear the checks")
    assert v.to_dict()["clears"] is False


def test_a_trial_that_never_trades_counts_as_a_zero_sharpe() -> None:
    rng = np.random.default_rng(1)
    weekly = [rng.normal(1.0, 1.0, 40), np.zeros(40)]
    v = judge(weekly, 0, "sqn", [])
    assert v.dsr is not None and v.pbo is not None and v.pbo["metric"] == "sharpe"


def test_too_few_weeks_or_trials_is_a_reason_not_a_crash() -> None:
    v = judge([np.arange(6.0)], 0, "total", [])
    assert any("PBO needs at least 2 trials" in r for r in v.reasons)
    v = judge([np.arange(6.0), np.arange(6.0)[::-1]], 0, "total", [])
    assert any("out-of-sample weeks" in r for r in v.reasons)


def test_pbo_splits() -> None:
    assert [pbo_splits(n) for n in (7, 8, 12, 26, 52, 64, 500)] == [0, 2, 2, 6, 12, 16, 16]


def test_compare_is_paired_and_week_clustered() -> None:
    w = np.array([2.0, 0.0, 1.0, 1.0])
    o = np.array([0.0, 0.0, 1.0, 0.0])
    c = compare(w, o, np.array([1, 1, 2, 2]), "static_train_best")
    assert (c.winner_total, c.other_total, c.difference, c.n_weeks) == (4.0, 1.0, 3.0, 2)
    assert c.se == pytest.approx(1.0)  # cluster sums 2 and 1 around the mean 0.75 per signal
    assert c.beats
    assert not compare(o, w, np.array([1, 1, 2, 2]), "x").beats
