"""One trial of ``tune``: reclassify the cached signals, replay the policy walk-forward, score.

:class:`TuneData` is what ``tune`` computes once per (data, strategy, config) and caches on
disk: the outcome table of **every** entry signal (illiquid ones included, so the volume
threshold can be tuned) under every profile, with each signal candle's context and its raw
regime features (ADX, ATR%, trend strength, 24 h volume). Outcomes and features do not depend
on the thresholds or the learner settings; only the regime labels, the illiquid block and the
decisions do, so a trial never runs the simulator or a Freqtrade backtest.

:class:`TrialEvaluator` scores one set of parameter values: regimes from the cached features
(:func:`~freqtrade_metastrategy.regime.classify_regimes`, the detector's own rule), illiquid
signals dropped when ``block_illiquid``, then, per walk-forward fold, the configured policy
replayed by ``evaluate``'s own runners from an empty state at the fold's train start over its
train then its test range (learning on, as a live bot would). In-sample = the train ranges'
total, out-of-sample (OOS) = the test ranges' (which do not overlap). Every figure is in the
config's reward unit; a stood-aside or dropped signal earns 0.

Rewards are kept per signal of the whole table (``TrialResult.oos``): two trials, or a trial and
a baseline, are compared signal by signal, with week-clustered standard errors.
"""

from __future__ import annotations

import math
import os
import pickle
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from freqtrade_metastrategy.config import MetaStrategyConfig
from freqtrade_metastrategy.errors import EvaluationError
from freqtrade_metastrategy.evaluation.hindsight import train_best
from freqtrade_metastrategy.evaluation.metrics import cluster_ids
from freqtrade_metastrategy.evaluation.outcomes import OutcomeTable
from freqtrade_metastrategy.evaluation.replay import result_from_runners
from freqtrade_metastrategy.evaluation.runners import build_runners, default_column
from freqtrade_metastrategy.evaluation.specs import (
    CONFIGURED,
    FullInfoSpec,
    LearnerSpec,
    PolicySpec,
)
from freqtrade_metastrategy.profiles import ProfileRegistry
from freqtrade_metastrategy.regime import (
    CLASSIFY_INPUTS,
    REGIME_VALUES,
    MarketRegime,
    classify_regimes,
)
from freqtrade_metastrategy.tuning.space import SearchSpace, Settings

__all__ = [
    "CACHE_VERSION",
    "FIGURES",
    "OBJECTIVES",
    "Fold",
    "TrialEvaluator",
    "TrialResult",
    "TuneData",
    "policy_spec",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

#: What a trial maximises: the OOS total reward, or its SQN (sqrt(n) x mean / sd of the
#: traded OOS rewards, 0 with fewer than two trades).
OBJECTIVES: Final[tuple[str, ...]] = ("total", "sqn")
#: A trial's figures kept with it (:meth:`TrialResult.summary`).
FIGURES: Final[tuple[str, ...]] = ("is_total", "oos_total", "oos_sqn", "oos_entries",
                                   "oos_traded")
#: Bumped when the cached file's content changes meaning.
CACHE_VERSION: Final = 1
_ILLIQUID = MarketRegime.ILLIQUID.code


@dataclass(frozen=True, eq=False)
class TuneData:
    """Every signal's outcomes, context and raw regime features (see module doc).

    ``features``: ``(signals, len(CLASSIFY_INPUTS))``, row = ``entry_id`` (the table's
    ``entry_id`` column indexes it). ``meta``: what was loaded (strategy, timerange, fee...).
    """

    table: OutcomeTable
    features: FloatArray
    profiles: ProfileRegistry
    meta: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        ids = self.table.entries["entry_id"].to_numpy(dtype=np.int64)
        if self.features.ndim != 2 or self.features.shape[1] != len(CLASSIFY_INPUTS) or (
                len(ids) and int(ids.max()) >= len(self.features)):
            raise EvaluationError("tune data: one row of regime features per entry_id needed")

    def save(self, path: Path, key: str) -> None:
        """Write to ``path`` (atomically: a temporary file of this process renamed, so
        workers sharing a cache directory never read a half-written file)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f"{path.suffix}.{os.getpid()}.tmp")
        with tmp.open("wb") as f:
            pickle.dump({"version": CACHE_VERSION, "key": key, "data": self}, f,
                        protocol=pickle.HIGHEST_PROTOCOL)
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path, key: str) -> TuneData | None:
        """The cached data at ``path`` if it was written for ``key`` by this version, else
        None (a stale or unreadable cache is recomputed, never trusted)."""
        try:
            with path.open("rb") as f:
                doc = pickle.load(f)
        except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ImportError):
            return None
        if not isinstance(doc, dict) or doc.get("version") != CACHE_VERSION or (
                doc.get("key") != key) or not isinstance(doc.get("data"), cls):
            return None
        data: TuneData = doc["data"]
        return data


@dataclass(frozen=True)
class Fold:
    """One walk-forward fold: ``[train_start, train_end)``, ``[test_start, test_end)`` (ns)."""

    train: tuple[int, int]
    test: tuple[int, int]


@dataclass(frozen=True, eq=False)
class TrialResult:
    """One evaluation (see module doc). ``oos``: per signal of the table, its OOS reward (0
    outside the test ranges, dropped or stood aside); ``oos_entries`` / ``oos_traded``: signals
    decided / traded in the test ranges; ``choices``: per signal the profile index decided in
    its test range (-1 = stood aside, -2 = not decided there)."""

    values: Mapping[str, float]
    is_total: float
    oos_total: float
    oos_sqn: float
    oos_entries: int
    oos_traded: int
    oos: FloatArray
    choices: IntArray

    def objective(self, name: str) -> float:
        return self.oos_total if name == "total" else self.oos_sqn

    def summary(self) -> dict[str, float | int]:
        """The figures every trial keeps (:data:`FIGURES`)."""
        return {k: getattr(self, k) for k in FIGURES}


def policy_spec(settings: Settings, ms_config: MetaStrategyConfig) -> PolicySpec:
    """The configured policy with ``settings`` (the spec ``evaluate`` replays as
    ``configured``)."""
    if settings.full_info is not None:
        return FullInfoSpec(CONFIGURED, settings.full_info)
    return LearnerSpec(CONFIGURED, settings.selector, ms_config.bandit_stand_aside)


def sqn(values: FloatArray) -> float:
    """System quality number ``sqrt(n) * mean / sd`` (0 with < 2 values or sd 0).

    >>> round(sqn(np.array([1.0, 2.0, 3.0])), 6)
    3.464102
    """
    if len(values) < 2:
        return 0.0
    sd = float(values.std(ddof=1))
    return math.sqrt(len(values)) * float(values.mean()) / sd if sd > 0 else 0.0


class TrialEvaluator:
    """Scores parameter values on cached data, walk-forward (see module doc)."""

    def __init__(self, data: TuneData, space: SearchSpace, folds: Sequence[Fold], *,
                 unit: str, seed: int = 0) -> None:
        if not folds:
            raise EvaluationError("tune: no walk-forward fold")
        self.data = data
        self.space = space
        self.folds = tuple(folds)
        self.unit = unit
        self.seed = seed
        table = data.table
        ids = table.entries["entry_id"].to_numpy(dtype=np.int64)
        self._features = data.features[ids]  # aligned with the table's rows
        sig = table.signal_ns
        self._oos_mask = np.zeros(len(table), dtype=bool)
        for f in self.folds:
            self._oos_mask |= (sig >= f.test[0]) & (sig < f.test[1])
        if not self._oos_mask.any():
            raise EvaluationError("tune: the walk-forward test ranges hold no signal")
        #: ISO week of every signal (the PBO / DSR periods and the SE clusters)
        self.weeks = cluster_ids(sig)
        self.oos_weeks = np.unique(self.weeks[self._oos_mask])
        self._oos_week_index = np.searchsorted(self.oos_weeks, self.weeks[self._oos_mask])

    @property
    def oos_mask(self) -> BoolArray:
        return self._oos_mask

    def regimes(self, settings: Settings) -> npt.NDArray[np.int8]:
        f = self._features
        codes, _ = classify_regimes(f[:, 0], f[:, 1], f[:, 2], f[:, 3], settings.thresholds)
        return codes

    def table_for(self, settings: Settings) -> tuple[OutcomeTable, IntArray]:
        """The table as the strategy would see it under ``settings`` (regimes relabelled,
        illiquid signals dropped when ``block_illiquid``) and its rows in the full table."""
        codes = self.regimes(settings)
        table = self.data.table
        entries = table.entries.assign(regime=REGIME_VALUES[codes])
        relabelled = replace(table, entries=entries)
        keep = np.ones(len(table), dtype=bool)
        if self.space.base.block_illiquid:
            keep = codes != _ILLIQUID
        return relabelled.subset(keep), np.flatnonzero(keep)

    def evaluate(self, values: Mapping[str, float]) -> TrialResult:
        """Score ``values`` (parameter name -> value)."""
        settings = self.space.apply(values)
        spec = policy_spec(settings, self.space.base)
        table, rows = self.table_for(settings)
        n_all = len(self.data.table)
        oos = np.zeros(n_all)
        choices = np.full(n_all, -2, dtype=np.int64)
        traded = np.zeros(n_all, dtype=bool)
        is_total = 0.0
        sig = table.signal_ns
        for fold in self.folds:
            in_train = (sig >= fold.train[0]) & (sig < fold.train[1])
            in_test = (sig >= fold.test[0]) & (sig < fold.test[1])
            if not in_test.any():
                continue
            rewards, choice = self._run(table, in_train | in_test, spec)
            m_train = in_train[in_train | in_test]
            is_total += float(rewards[m_train].sum())
            test_rows = rows[np.flatnonzero(in_test)]
            oos[test_rows] = rewards[~m_train]
            choices[test_rows] = choice[~m_train]
            traded[test_rows] = choice[~m_train] >= 0
        decided = choices != -2
        return TrialResult(
            values=dict(values), is_total=is_total, oos_total=float(oos.sum()),
            oos_sqn=sqn(oos[traded]), oos_entries=int(decided.sum()),
            oos_traded=int(traded.sum()), oos=oos, choices=choices)

    def fold_decisions(self, values: Mapping[str, float], fold: int
                       ) -> tuple[IntArray, list[str | None]]:
        """Every decision of fold ``fold``'s replay (train and test signals, in order): the
        rows in the full table and the profile chosen (None = stood aside). This is what a
        Freqtrade backtest of the fold's range with these values decides."""
        settings = self.space.apply(values)
        table, rows = self.table_for(settings)
        f = self.folds[fold]
        sig = table.signal_ns
        mask = (sig >= f.train[0]) & (sig < f.test[1])
        _, choice = self._run(table, mask, policy_spec(settings, self.space.base))
        names = table.profiles
        return rows[mask], [names[c] if c >= 0 else None for c in choice.tolist()]

    def _run(self, table: OutcomeTable, mask: BoolArray, spec: PolicySpec
             ) -> tuple[FloatArray, IntArray]:
        """Rewards and choices of ``spec`` replayed over ``table``'s rows in ``mask``, from
        an empty state (as ``evaluate``'s walk-forward fold)."""
        sub = table.subset(mask)
        _, runners = build_runners(sub, [spec], unit=self.unit, seed=self.seed,
                                   profiles=self.data.profiles)
        runners[0].run(range(len(sub)))
        res = result_from_runners(sub, self.unit, self.seed, runners)
        return res.rewards(CONFIGURED), res.choice[CONFIGURED].astype(np.int64)

    def static_train_best(self, values: Mapping[str, float]) -> FloatArray:
        """Per signal, the OOS reward of last train range's best static profile (chosen per
        fold on the train signals closed by the test start), on ``values``' signals."""
        settings = self.space.apply(values)
        table, rows = self.table_for(settings)
        sig = table.signal_ns
        reward = table.reward(self.unit)
        out = np.zeros(len(self.data.table))
        default = default_column(table.profiles)  # as evaluate's walk-forward
        for fold in self.folds:
            in_train = (sig >= fold.train[0]) & (sig < fold.train[1])
            in_test = (sig >= fold.test[0]) & (sig < fold.test[1])
            best, _, _ = train_best(table, self.unit, in_train, fold.test[0], default)
            out[rows[in_test]] = reward[in_test, best]
        return out

    def weekly(self, oos: FloatArray) -> FloatArray:
        """OOS rewards summed per ISO week of :attr:`oos_weeks` (the PBO / DSR periods)."""
        out: FloatArray = np.bincount(self._oos_week_index, weights=oos[self._oos_mask],
                                      minlength=len(self.oos_weeks)).astype(np.float64)
        return out
