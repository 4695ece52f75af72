"""Whether a ``tune`` winner can be trusted: the overfitting checks and the comparisons.

Given every completed trial of a study (its weekly out-of-sample series) and the winner's,
the defaults' and last year's best static profile's per-signal OOS rewards:

* **PBO** (:func:`~.overfit.pbo_cscv`) over the ``weeks x trials`` matrix, ranked by the
  objective's own metric (``total`` for the total, ``sharpe`` for the SQN), ``S`` = the largest
  even number of blocks up to 16 with at least 4 weeks per block;
* **DSR** (:func:`~.overfit.deflated_sharpe_of`) of the winner's weekly series given the
  weekly Sharpe of every trial;
* the winner minus the defaults, and minus ``static_train_best``, signal by signal over the
  OOS signals, with the week-clustered standard error of the total.

The winner **clears** when PBO < 0.5, DSR >= 0.95 and it beats both comparators by at least
one standard error. Anything else is said plainly, with the reasons.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from freqtrade_metastrategy.errors import EvaluationError
from freqtrade_metastrategy.evaluation.metrics import sum_stats
from freqtrade_metastrategy.tuning.overfit import (
    deflated_sharpe_of,
    pbo_cscv,
    sharpe_stats,
)

__all__ = ["DSR_MIN", "PBO_MAX", "Comparison", "Verdict", "compare", "judge", "pbo_splits"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

#: The winner clears only with a PBO below this ...
PBO_MAX: Final = 0.5
#: ... and a deflated Sharpe ratio at least this.
DSR_MIN: Final = 0.95
_MAX_SPLITS: Final = 16
_MIN_BLOCK: Final = 4


def pbo_splits(n_periods: int) -> int:
    """The CSCV block count for ``n_periods`` weeks (0 = too few for the check).

    >>> pbo_splits(26), pbo_splits(104), pbo_splits(7)
    (6, 16, 0)
    """
    s = min(_MAX_SPLITS, n_periods // _MIN_BLOCK)
    s -= s % 2
    return s if s >= 2 else 0


@dataclass(frozen=True)
class Comparison:
    """Winner minus ``against``, summed over the OOS signals, with its week-clustered SE."""

    against: str
    winner_total: float
    other_total: float
    difference: float
    se: float
    n_weeks: int

    @property
    def beats(self) -> bool:
        return math.isfinite(self.se) and self.difference >= max(self.se, 1e-12)

    def to_dict(self) -> dict[str, Any]:
        return {"against": self.against, "winner_total": self.winner_total,
                "other_total": self.other_total, "difference": self.difference,
                "se_clustered": self.se, "n_weeks": self.n_weeks,
                "beats_by_one_se": self.beats}


def compare(winner: FloatArray, other: FloatArray, weeks: IntArray, against: str) -> Comparison:
    """Paired comparison of two per-signal OOS reward vectors (same signals).

    >>> w = np.array([1.0, 1.0, 0.0, 0.0]); o = np.zeros(4); wk = np.array([1, 1, 2, 2])
    >>> c = compare(w, o, wk, "defaults"); (c.difference, c.se, c.beats)
    (2.0, 2.0, True)
    """
    s = sum_stats(winner - other, weeks)
    return Comparison(against, float(winner.sum()), float(other.sum()), s.total,
                      float(s.se_total_clustered), int(s.n_clusters))


@dataclass(frozen=True)
class Verdict:
    """The checks of one winner (see module doc)."""

    pbo: dict[str, Any] | None
    dsr: dict[str, Any] | None
    comparisons: tuple[Comparison, ...]
    reasons: tuple[str, ...] = field(default=())

    @property
    def clears(self) -> bool:
        return not self.reasons

    def to_dict(self) -> dict[str, Any]:
        return {"clears": self.clears, "reasons": list(self.reasons), "pbo": self.pbo,
                "dsr": self.dsr, "comparisons": [c.to_dict() for c in self.comparisons],
                "rule": f"PBO < {PBO_MAX}, DSR >= {DSR_MIN}, and the winner beats the "
                        "defaults and static_train_best by at least one week-clustered SE"}

    def sentence(self) -> str:
        if self.clears:
            return ("The winner clears the overfitting checks and beats the defaults and last "
                    "year's best static profile by more than one standard error.")
        return ("The winner does NOT clear the checks: " + "; ".join(self.reasons)
                + ". Treat it as noise: keep the defaults.")


def _trial_sharpe(weekly: FloatArray) -> float:
    """A trial's weekly Sharpe for the DSR's variance across trials: a constant series (a
    trial that never trades) counts as 0, the Sharpe of no skill."""
    if len(weekly) < 2 or float(weekly.max()) == float(weekly.min()):
        return 0.0
    return sharpe_stats(weekly).sharpe


def judge(weekly: Sequence[FloatArray], winner_index: int, objective: str,
          comparisons: Sequence[Comparison]) -> Verdict:
    """The :class:`Verdict` of trial ``winner_index`` among ``weekly`` (one weekly OOS series
    per completed trial, all of the same length)."""
    reasons: list[str] = []
    pbo: dict[str, Any] | None = None
    dsr: dict[str, Any] | None = None
    perf = np.column_stack(list(weekly)) if weekly else np.zeros((0, 0))
    n_weeks, n_trials = perf.shape
    splits = pbo_splits(n_weeks)
    if n_trials < 2:
        reasons.append(f"PBO needs at least 2 trials ({n_trials} completed)")
    elif splits == 0:
        reasons.append(f"PBO needs at least {2 * _MIN_BLOCK} out-of-sample weeks "
                       f"({n_weeks}): use a longer --timerange")
    else:
        try:
            res = pbo_cscv(perf, n_splits=splits,
                           metric="total" if objective == "total" else "sharpe")
            pbo = res.to_dict()
            if res.pbo >= PBO_MAX:
                reasons.append(f"PBO {res.pbo:.2f} >= {PBO_MAX} (the in-sample best trial is "
                               "no better than a random one out of sample)")
        except EvaluationError as exc:
            reasons.append(f"PBO not computed: {exc}")
    if n_trials >= 1:
        try:
            sharpes = [_trial_sharpe(w) for w in weekly]
            d = deflated_sharpe_of(weekly[winner_index], sharpes)
            dsr = d.to_dict()
            if not d.dsr >= DSR_MIN:
                reasons.append(f"deflated Sharpe {d.dsr:.2f} < {DSR_MIN} given {n_trials} "
                               "trials")
        except EvaluationError as exc:
            reasons.append(f"deflated Sharpe not computed: {exc}")
    for c in comparisons:
        if not c.beats:
            reasons.append(f"beats {c.against} by {c.difference:+.1f} R, less than one "
                           f"standard error ({c.se:.1f})")
    return Verdict(pbo, dsr, tuple(comparisons), tuple(reasons))
