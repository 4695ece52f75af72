"""Hindsight baselines: the best choices knowing every outcome (not causal; regret's yardsticks).

On the range they are reported on: ``best_static`` (the profile with the best total),
``oracle_regime`` (the best profile per regime) and ``oracle_trade`` (the best profile of every
entry, the ceiling). :func:`train_best` makes the honest versions, chosen on an earlier train
range (``static_train_best`` / ``regime_train_best`` of :mod:`.walkforward`). Ties go to the
first profile in table order. They range over *all* simulated profiles, not only a regime's
candidates (the learners and ``random`` are limited to the candidates, so their regret against
``oracle_regime`` includes the cost of the candidate filter).

>>> from freqtrade_metastrategy.evaluation.outcomes import OutcomeTable, synthetic_outcomes
>>> table = OutcomeTable.from_frame(synthetic_outcomes(n=30, seed=1))
>>> choices, info = hindsight_choices(table, "r_atr")
>>> tuple(choices) == HINDSIGHT, info["best_static"]["profile"]
(True, 'moderate')
"""

from __future__ import annotations

from typing import Any, Final

import numpy as np
import numpy.typing as npt
import pandas as pd

from freqtrade_metastrategy.evaluation.outcomes import (
    BoolArray,
    FloatArray,
    IntArray,
    OutcomeTable,
)

__all__ = ["HINDSIGHT", "best_profiles", "hindsight_choices", "train_best"]

#: Names of the hindsight baselines, in report order.
HINDSIGHT: Final[tuple[str, ...]] = ("best_static", "oracle_regime", "oracle_trade")


def best_profiles(
    rewards: FloatArray, regimes: npt.NDArray[np.object_]
) -> tuple[int, dict[str, int]]:
    """(column with the best total, regime -> column with the best total over its rows) of an
    ``(entries, profiles)`` reward matrix; ties go to the first column."""
    best = int(np.argmax(rewards.sum(axis=0)))
    per_regime = {
        str(r): int(np.argmax(rewards[regimes == r].sum(axis=0))) for r in pd.unique(regimes)
    }
    return best, per_regime


def hindsight_choices(
    table: OutcomeTable, unit: str
) -> tuple[dict[str, IntArray], dict[str, dict[str, Any]]]:
    """Choices (per entry) and info of the three hindsight baselines on ``table``."""
    rew = table.reward(unit)
    n = len(table)
    totals = rew.sum(axis=0)
    regimes = table.entries["regime"].to_numpy(dtype=object)
    best, regime_best = best_profiles(rew, regimes)
    per_regime = np.empty(n, dtype=np.int64)
    for regime, j in regime_best.items():
        per_regime[regimes == regime] = j
    per_trade = np.asarray(np.argmax(rew, axis=1), dtype=np.int64)
    choices = {
        "best_static": np.full(n, best, dtype=np.int64),
        "oracle_regime": per_regime,
        "oracle_trade": per_trade,
    }
    info: dict[str, dict[str, Any]] = {
        "best_static": {
            "profile": table.profiles[best],
            "totals": {p: float(v) for p, v in zip(table.profiles, totals, strict=True)},
        },
        "oracle_regime": {"mapping": {r: table.profiles[j] for r, j in regime_best.items()}},
        "oracle_trade": {},
    }
    return choices, info


def train_best(
    table: OutcomeTable, unit: str, train_mask: BoolArray, at_ns: int,
    default: int,
) -> tuple[int, dict[str, int], int]:
    """(best profile, best profile per regime, entries used) over the train entries whose
    every outcome closed by ``at_ns``; ``default`` if none did."""
    used = train_mask & (table.close_ns <= at_ns)
    rew = table.reward(unit)[used]
    regimes = table.entries["regime"].to_numpy(dtype=object)[used]
    if not len(rew):
        return default, {}, 0
    best, per_regime = best_profiles(rew, regimes)
    return best, per_regime, int(used.sum())
