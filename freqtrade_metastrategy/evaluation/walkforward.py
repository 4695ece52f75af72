"""Out-of-sample evaluation: learn on a train range, evaluate on a later test range.

:func:`evaluate` replays the policies over the entries whose ``signal_time`` lies in the train
range ``[train_start, train_end)`` and then in the test range ``[test_start, test_end)``
(half-open; naive bounds are UTC; ``train_end <= test_start`` is required, a gap between them
acts as an embargo and its entries are not used at all). The learners start empty at
``train_start`` and learn online over the train range exactly as in :func:`~.replay.replay`.

Freezing (decided): on the test range each learner is reported twice:

* ``<name>[frozen]`` (the headline out-of-sample number): at ``test_start`` the learner
  applies the rewards of its train trades that have closed by then (``exit_time <=
  test_start``), then its Q-table is frozen -- no update at all on the test range, and train
  trades still open at ``test_start`` are never learned. Its *decision rule* is unchanged: its
  RNG keeps running, so epsilon-greedy still explores with probability epsilon and Thompson
  sampling still samples (from the frozen posterior); UCB1 is deterministic. This measures
  whether what was learned in-sample generalises.
* ``<name>[online]``: it keeps learning on the test range with the same delayed feedback
  (train trades closing during the test range included) -- what a live bot would do.

Both start from the identical state (same Q-table and RNG state), so they agree on the train
range, where the learner is reported once as ``<name>``.

Baselines on the test range:

* every static profile, ``random`` and ``walk_forward_static`` (causal; it keeps updating);
* ``static_train_best`` (the honest static baseline): the profile with the best total over the
  train entries whose outcomes under every profile have all closed by ``test_start`` (what the
  walk-forward static would pick at ``test_start``), applied to every test entry;
* ``regime_train_best``: the same per regime (regimes absent from the train range get
  ``static_train_best``) -- the honest version of the per-regime oracle;
* ``best_static``, ``oracle_regime``, ``oracle_trade``: hindsight on the test range (the
  optimistic baselines).

Regret on the test range is reported against ``static_train_best``, ``best_static`` and
``oracle_regime``; on the train range against ``best_static`` and ``oracle_regime`` (both
in-sample).

:func:`walk_forward` runs :func:`evaluate` over rolling splits (see :func:`rolling_splits`)
and concatenates the test ranges into one out-of-sample result, on which the hindsight
baselines are recomputed over all test entries while ``static_train_best`` /
``regime_train_best`` stay re-chosen per fold.

>>> from freqtrade_metastrategy.evaluation.outcomes import synthetic_outcomes
>>> from freqtrade_metastrategy.evaluation.specs import FixedProfileSpec
>>> df = synthetic_outcomes(n=120, seed=2, spacing="1D")
>>> wf = evaluate(df, train=("2024-01-01", "2024-03-01"), test=("2024-03-01", "2024-05-01"),
...               policies=[FixedProfileSpec("scalp")])
>>> wf.test.policies  # doctest: +NORMALIZE_WHITESPACE
('static:scalp', 'static_train_best', 'regime_train_best',
 'best_static', 'oracle_regime', 'oracle_trade')
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np
import pandas as pd

from freqtrade_metastrategy.errors import EvaluationError
from freqtrade_metastrategy.evaluation.hindsight import HINDSIGHT, hindsight_choices, train_best
from freqtrade_metastrategy.evaluation.metrics import Metrics, compute_metrics
from freqtrade_metastrategy.evaluation.outcomes import OutcomeTable, check_unit, to_utc_timestamp
from freqtrade_metastrategy.evaluation.replay import ReplayResult, result_from_runners
from freqtrade_metastrategy.evaluation.runners import LearnerRunner, Runner, build_runners
from freqtrade_metastrategy.evaluation.specs import PolicySpec
from freqtrade_metastrategy.profiles import ProfileRegistry
from freqtrade_metastrategy.selector import MetaStrategySelector
from freqtrade_metastrategy.timerange import utc_range

__all__ = [
    "TEST_COMPARATORS",
    "TRAIN_COMPARATORS",
    "WalkForwardResult",
    "WalkForwardRun",
    "evaluate",
    "rolling_splits",
    "walk_forward",
]

TimeRange = tuple[pd.Timestamp, pd.Timestamp]

TRAIN_COMPARATORS: Final[tuple[str, ...]] = ("best_static", "oracle_regime")
TEST_COMPARATORS: Final[tuple[str, ...]] = ("static_train_best", "best_static", "oracle_regime")
FROZEN: Final = "[frozen]"
ONLINE: Final = "[online]"


def _range(value: tuple[object, object], what: str) -> TimeRange:
    """``(start, end)`` checked by :func:`~freqtrade_metastrategy.timerange.utc_range` (its
    :class:`~freqtrade_metastrategy.timerange.TimerangeError` is an ``EvaluationError``)."""
    return utc_range(value, what)


@dataclass(frozen=True, eq=False)
class WalkForwardResult:
    """One train/test evaluation (see module doc). ``info`` holds ``static_train_best``,
    ``regime_train_best`` (regime -> profile), ``train_entries_closed`` (train entries used to
    choose them), ``train_entries``/``test_entries`` and ``learners`` (their names)."""

    unit: str
    train_range: TimeRange
    test_range: TimeRange
    train: ReplayResult
    test: ReplayResult
    train_metrics: Metrics
    test_metrics: Metrics
    info: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "unit": self.unit,
            "train_range": [t.isoformat() for t in self.train_range],
            "test_range": [t.isoformat() for t in self.test_range],
            "info": dict(self.info),
            "train": self.train_metrics.to_dict(),
            "test": self.test_metrics.to_dict(),
        }


def evaluate(
    outcomes: pd.DataFrame | OutcomeTable,
    *,
    train: tuple[object, object],
    test: tuple[object, object],
    policies: Sequence[PolicySpec] | None = None,
    unit: str = "r_atr",
    seed: int = 0,
    profiles: ProfileRegistry | None = None,
    cluster: str = "week",
) -> WalkForwardResult:
    """Learn on ``train``, evaluate on ``test`` (see module doc for what is reported).

    :param train: ``(start, end)`` of the train range (signal times, half-open).
    :param test: ``(start, end)`` of the test range; must start at or after ``train``'s end.
    :param policies: as for :func:`~.replay.replay` (default: :func:`~.specs.default_policies`).
    """
    check_unit(unit)
    tr, te = _range(train, "train"), _range(test, "test")
    if te[0] < tr[1]:
        raise EvaluationError(
            f"test range starts at {te[0]}, before the train range ends ({tr[1]}); "
            "the ranges must not overlap"
        )
    full = OutcomeTable.coerce(outcomes)
    sig = full.signal_ns
    in_train = (sig >= tr[0].value) & (sig < tr[1].value)
    in_test = (sig >= te[0].value) & (sig < te[1].value)
    for mask, what, rng in ((in_train, "train", tr), (in_test, "test", te)):
        if not bool(mask.any()):
            raise EvaluationError(f"{what} range {rng[0]} .. {rng[1]} holds no entries")
    table = full.subset(in_train | in_test)
    m_train = in_train[in_train | in_test]
    m_test = ~m_train
    train_rows = np.flatnonzero(m_train).tolist()
    test_rows = np.flatnonzero(m_test).tolist()

    ctx, runners = build_runners(table, policies, unit=unit, seed=seed, profiles=profiles)

    train_names: list[str] = []
    test_names: list[str] = []
    test_runners: list[Runner] = []
    train_selectors: dict[str, MetaStrategySelector] = {}
    learners: list[str] = []
    for r in runners:
        r.run(train_rows)
        train_names.append(r.name)
        if isinstance(r, LearnerRunner):
            learners.append(r.name)
            frozen = r.fork(r.name + FROZEN)
            frozen.freeze(int(te[0].value))
            frozen.run(test_rows)
            train_selectors[r.name] = frozen.selector
            test_runners.append(frozen)
            test_names.append(frozen.name)
            r.name += ONLINE
        r.run(test_rows)
        test_runners.append(r)
        test_names.append(r.name)

    train_res = result_from_runners(table, unit, seed, runners, names=train_names,
                                    selectors=train_selectors)
    train_res = train_res.subset(m_train)
    h_choice, h_info = hindsight_choices(train_res.table, unit)
    train_res = train_res.with_policies(h_choice, "hindsight", h_info)

    test_res = result_from_runners(table, unit, seed, test_runners, names=test_names)
    test_res = test_res.subset(m_test)
    default = ctx.default_profile(None)
    best, per_regime, used = train_best(table, unit, m_train, int(te[0].value), default)
    test_regimes = test_res.table.entries["regime"].to_numpy(dtype=object)
    regime_choice = np.array([per_regime.get(str(r), best) for r in test_regimes],
                             dtype=np.int64)
    profs = table.profiles
    tb_info: dict[str, dict[str, Any]] = {
        "static_train_best": {"profile": profs[best], "train_entries_used": used},
        "regime_train_best": {"mapping": {r: profs[j] for r, j in per_regime.items()},
                              "fallback": profs[best], "train_entries_used": used},
    }
    test_res = test_res.with_policies(
        {"static_train_best": np.full(len(test_res.table), best, dtype=np.int64),
         "regime_train_best": regime_choice},
        "train_hindsight", tb_info,
    )
    h_choice, h_info = hindsight_choices(test_res.table, unit)
    test_res = test_res.with_policies(h_choice, "hindsight", h_info)

    info = {
        "static_train_best": profs[best],
        "regime_train_best": {r: profs[j] for r, j in per_regime.items()},
        "train_entries_closed": used,
        "train_entries": int(m_train.sum()),
        "test_entries": int(m_test.sum()),
        "learners": learners,
        "seed": seed,
    }
    return WalkForwardResult(
        unit=unit, train_range=tr, test_range=te, train=train_res, test=test_res,
        train_metrics=compute_metrics(train_res, comparators=TRAIN_COMPARATORS, cluster=cluster),
        test_metrics=compute_metrics(test_res, comparators=TEST_COMPARATORS, cluster=cluster),
        info=info,
    )


# -- rolling walk-forward ------------------------------------------------------------------
def rolling_splits(
    start: object,
    end: object,
    *,
    train: str | pd.Timedelta,
    test: str | pd.Timedelta,
    step: str | pd.Timedelta | None = None,
    gap: str | pd.Timedelta = "0D",
    anchored: bool = False,
) -> list[tuple[TimeRange, TimeRange]]:
    """Consecutive (train, test) ranges covering ``[start, end)``.

    Fold ``k``: test = ``[start + train + gap + k*step, ... + test)`` (``step`` defaults to
    ``test``, so the test ranges tile); train = the ``train`` length before the gap, or from
    ``start`` when ``anchored`` (expanding window). The last fold's test range is clipped at
    ``end``.

    >>> [(a[0].strftime("%m-%d"), b[0].strftime("%m-%d"), b[1].strftime("%m-%d"))
    ...  for a, b in rolling_splits("2024-01-01", "2024-03-01", train="30D", test="15D")]
    [('01-01', '01-31', '02-15'), ('01-16', '02-15', '03-01')]
    """
    lo, hi = to_utc_timestamp(start, "start"), to_utc_timestamp(end, "end")
    tr_len, te_len, g = pd.Timedelta(train), pd.Timedelta(test), pd.Timedelta(gap)
    st = te_len if step is None else pd.Timedelta(step)
    if tr_len <= pd.Timedelta(0) or te_len <= pd.Timedelta(0) or st <= pd.Timedelta(0):
        raise EvaluationError("rolling_splits: train, test and step must be positive")
    if g < pd.Timedelta(0):
        raise EvaluationError("rolling_splits: gap must be >= 0")
    out: list[tuple[TimeRange, TimeRange]] = []
    test_start = lo + tr_len + g
    while test_start < hi:
        train_end = test_start - g
        train_start = lo if anchored else train_end - tr_len
        out.append(((train_start, train_end), (test_start, min(test_start + te_len, hi))))
        test_start = test_start + st
    return out


@dataclass(frozen=True, eq=False)
class WalkForwardRun:
    """Folds of :func:`walk_forward` and their concatenated out-of-sample test ranges."""

    folds: tuple[WalkForwardResult, ...]
    oos: ReplayResult
    oos_metrics: Metrics
    #: (train, test) ranges left out with ``skip_empty`` (no entry on one side)
    skipped: tuple[tuple[TimeRange, TimeRange], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "folds": [f.to_dict() for f in self.folds],
            "oos": self.oos_metrics.to_dict(),
            "skipped": [[[t.isoformat() for t in r] for r in fold] for fold in self.skipped],
        }


def _concat(results: Sequence[ReplayResult]) -> ReplayResult:
    first = results[0]
    names = first.policies
    for r in results[1:]:
        if r.policies != names:
            raise EvaluationError("walk_forward: folds replayed different policies")
    table = OutcomeTable.concat([r.table for r in results])

    def cat(attr: str) -> dict[str, Any]:
        return {p: np.concatenate([getattr(r, attr)[p] for r in results]) for p in names}

    return ReplayResult(
        table=table, unit=first.unit, seed=first.seed, policies=names, kinds=first.kinds,
        choice=cat("choice"), probability=cat("probability"), explored=cat("explored"),
        heuristic=cat("heuristic"), seen=cat("seen"),
        info={p: {"folds": [r.info[p] for r in results]} for p in names},
    )


def walk_forward(
    outcomes: pd.DataFrame | OutcomeTable,
    splits: Sequence[tuple[tuple[object, object], tuple[object, object]]],
    *,
    policies: Sequence[PolicySpec] | None = None,
    unit: str = "r_atr",
    seed: int = 0,
    profiles: ProfileRegistry | None = None,
    cluster: str = "week",
    skip_empty: bool = False,
) -> WalkForwardRun:
    """:func:`evaluate` per split (learners start empty in every fold) and the out-of-sample
    concatenation of the test ranges (which must be increasing and must not overlap).

    ``skip_empty``: leave out (and list in ``skipped``) the folds whose train or test range
    holds no entry, e.g. a train range before a pair's listing, instead of raising."""
    if not splits:
        raise EvaluationError("walk_forward: no splits")
    table = OutcomeTable.coerce(outcomes)
    folds: list[WalkForwardResult] = []
    skipped: list[tuple[TimeRange, TimeRange]] = []
    sig = table.signal_ns
    for k, (tr, te) in enumerate(splits):
        if skip_empty:
            ranges = (_range(tr, "train"), _range(te, "test"))
            if any(not bool(((sig >= a.value) & (sig < b.value)).any()) for a, b in ranges):
                skipped.append(ranges)
                continue
        try:
            folds.append(evaluate(table, train=tr, test=te, policies=policies, unit=unit,
                                  seed=seed, profiles=profiles, cluster=cluster))
        except EvaluationError as exc:
            raise EvaluationError(f"fold {k}: {exc}") from None
    if not folds:
        raise EvaluationError("walk_forward: no fold has entries in both its train and test "
                              "range")
    for a, b in itertools.pairwise(folds):
        if b.test_range[0] < a.test_range[1]:
            raise EvaluationError("walk_forward: test ranges overlap or are not increasing")
    oos = _concat([f.test.without_policies(HINDSIGHT) for f in folds])
    h_choice, h_info = hindsight_choices(oos.table, unit)
    oos = oos.with_policies(h_choice, "hindsight", h_info)
    return WalkForwardRun(
        folds=tuple(folds), oos=oos,
        oos_metrics=compute_metrics(oos, comparators=TEST_COMPARATORS, cluster=cluster),
        skipped=tuple(skipped),
    )
