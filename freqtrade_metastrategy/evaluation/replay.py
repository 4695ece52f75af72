"""Causal replay of selection policies over an outcome table, and its result.

:func:`replay` runs policy specs (:mod:`.specs`; default :func:`~.specs.default_policies`)
over the entries of an :class:`~.outcomes.OutcomeTable` in ``(signal_time, entry_id)`` order,
one runner per spec (:mod:`.runners`), and records in a :class:`ReplayResult`, per policy and
entry, the chosen profile, its probability (propensity) and reward; the hindsight baselines
(:mod:`.hindsight`) are added unless ``hindsight=False``.

Causality (delayed feedback): before deciding on an entry, a learner is given exactly the
rewards of *its own* earlier choices whose ``exit_time <= signal_time`` (a trade's reward is
known once it has closed). Nothing else about the future is used: changing the outcome of a
trade that closes after ``t`` never changes a decision made at or before ``t``, and dropping
the entries after a decision never changes it. ``seed`` makes a replay reproducible.

>>> from freqtrade_metastrategy.evaluation.outcomes import synthetic_outcomes
>>> from freqtrade_metastrategy.evaluation.specs import FixedProfileSpec, UniformRandomSpec
>>> table = synthetic_outcomes(n=40, seed=1)
>>> res = replay(table, [FixedProfileSpec("scalp"), UniformRandomSpec()], unit="r_atr", seed=3)
>>> res.policies
('static:scalp', 'random', 'best_static', 'oracle_regime', 'oracle_trade')
>>> bool((res.rewards("oracle_trade") >= res.rewards("best_static")).all())
True
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import pandas as pd

from freqtrade_metastrategy.errors import EvaluationError
from freqtrade_metastrategy.evaluation.hindsight import hindsight_choices
from freqtrade_metastrategy.evaluation.outcomes import (
    UNITS,
    BoolArray,
    FloatArray,
    IntArray,
    OutcomeTable,
    check_unit,
    ns_to_times,
)
from freqtrade_metastrategy.evaluation.runners import (
    STAND_ASIDE,
    LearnerRunner,
    Runner,
    build_runners,
)
from freqtrade_metastrategy.evaluation.specs import DEFAULT_LEARNERS, PolicySpec
from freqtrade_metastrategy.profiles import ProfileRegistry
from freqtrade_metastrategy.selector import MetaStrategySelector

__all__ = [
    # compatibility re-exports (the evaluate command imports them from here): their homes are
    # .specs (DEFAULT_LEARNERS) and .outcomes (UNITS)
    "DEFAULT_LEARNERS",
    "STAND_ASIDE",
    "STAND_ASIDE_LABEL",
    "UNITS",
    "ReplayResult",
    "replay",
    "result_from_runners",
]

#: The profile name shown for an entry a policy stood aside on.
STAND_ASIDE_LABEL: Final = "stand_aside"


@dataclass(frozen=True, eq=False)
class ReplayResult:
    """Per-policy, per-entry decisions of a replay (arrays aligned with ``table.entries``).

    ``kinds[policy]``: ``static``, ``random``, ``learner``, ``walk_forward``, ``full_info``,
    ``hindsight``
    (hindsight on this range) or ``train_hindsight`` (chosen on a train range, see
    :mod:`.walkforward`). ``probability`` is the propensity of the choice (1 for deterministic
    policies; for Thompson sampling a Monte-Carlo estimate). ``seen`` is how many rewards a
    learner had applied (walk-forward static: entries closed) before the decision, -1 for
    hindsight policies. ``selectors`` holds the learners' final selectors (their Q-tables).
    """

    table: OutcomeTable
    unit: str
    seed: int
    policies: tuple[str, ...]
    kinds: Mapping[str, str]
    choice: Mapping[str, IntArray]
    probability: Mapping[str, FloatArray]
    explored: Mapping[str, BoolArray]
    heuristic: Mapping[str, BoolArray]
    seen: Mapping[str, IntArray]
    info: Mapping[str, Mapping[str, Any]]
    selectors: Mapping[str, MetaStrategySelector] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.table)

    def _check(self, policy: str) -> None:
        if policy not in self.choice:
            raise EvaluationError(
                f"unknown policy {policy!r}; replayed: {', '.join(self.policies)}"
            )

    def traded(self, policy: str) -> BoolArray:
        """Per entry: did ``policy`` trade it (False where it stood aside)?"""
        self._check(policy)
        out: BoolArray = self.choice[policy] != STAND_ASIDE
        return out

    def _pick(self, policy: str, matrix: npt.NDArray[Any], aside: Any) -> npt.NDArray[Any]:
        """``matrix[entry, chosen profile]``, ``aside`` where the policy stood aside."""
        self._check(policy)
        c = self.choice[policy]
        picked = matrix[np.arange(len(self.table)), np.maximum(c, 0)]
        return np.where(c == STAND_ASIDE, aside, picked)

    def rewards(self, policy: str, unit: str | None = None) -> FloatArray:
        """Per-entry rewards of ``policy`` (in the replay's unit unless ``unit`` is given);
        a stood-aside entry earns 0."""
        out: FloatArray = self._pick(policy, self.table.reward(unit or self.unit), 0.0
                                     ).astype(np.float64)
        return out

    def exit_ns(self, policy: str) -> IntArray:
        """Per-entry exit time (ns, UTC) of the profile ``policy`` chose (the signal time where
        it stood aside)."""
        out: IntArray = self._pick(policy, self.table.exit_ns, self.table.signal_ns
                                   ).astype(np.int64)
        return out

    def profiles_chosen(self, policy: str) -> npt.NDArray[np.object_]:
        """Per-entry name of the profile ``policy`` chose (``"stand_aside"`` where it did not
        trade)."""
        names = np.asarray([*self.table.profiles, STAND_ASIDE_LABEL], dtype=object)
        self._check(policy)
        out: npt.NDArray[np.object_] = names[self.choice[policy]]
        return out

    def reward_frame(self, unit: str | None = None) -> pd.DataFrame:
        """Entries × policies matrix of rewards (index ``entry_id``)."""
        return pd.DataFrame(
            {p: self.rewards(p, unit) for p in self.policies},
            index=pd.Index(self.table.entries["entry_id"], name="entry_id"),
        )

    def choice_counts(self) -> pd.DataFrame:
        """Policies × profiles (and ``stand_aside``): how often each was chosen."""
        k = len(self.table.profiles)
        return pd.DataFrame(
            [np.bincount(np.where(self.choice[p] == STAND_ASIDE, k, self.choice[p]),
                         minlength=k + 1) for p in self.policies],
            index=pd.Index(self.policies, name="policy"),
            columns=[*self.table.profiles, STAND_ASIDE_LABEL],
        )

    def decisions(self, policy: str | None = None) -> pd.DataFrame:
        """Long table: one row per (policy, entry), entries in time order.

        Columns: ``policy``, ``kind``, the entry columns, ``profile``, ``probability``,
        ``reward`` (replay unit), every unit of the chosen profile, ``exit_time``,
        ``exit_reason``, ``explored``, ``heuristic``, ``seen``.
        """
        names = self.policies if policy is None else (policy,)
        frames = []
        for p in names:
            self._check(p)
            f = self.table.entries.copy()
            f.insert(0, "kind", self.kinds[p])
            f.insert(0, "policy", p)
            f["profile"] = self.profiles_chosen(p)
            f["probability"] = self.probability[p]
            f["reward"] = self.rewards(p)
            for u in self.table.units:
                f[u] = self.rewards(p, u)
            f["exit_time"] = ns_to_times(self.exit_ns(p))
            f["exit_reason"] = self._pick(p, self.table.exit_reason, STAND_ASIDE_LABEL)
            f["explored"] = self.explored[p]
            f["heuristic"] = self.heuristic[p]
            f["seen"] = self.seen[p]
            frames.append(f)
        return pd.concat(frames, ignore_index=True)

    def subset(self, mask: BoolArray) -> ReplayResult:
        """The same decisions restricted to the entries where ``mask`` is true."""
        m = np.asarray(mask, dtype=bool)
        return replace(
            self,
            table=self.table.subset(m),
            choice={p: v[m] for p, v in self.choice.items()},
            probability={p: v[m] for p, v in self.probability.items()},
            explored={p: v[m] for p, v in self.explored.items()},
            heuristic={p: v[m] for p, v in self.heuristic.items()},
            seen={p: v[m] for p, v in self.seen.items()},
        )

    def with_policies(
        self,
        choices: Mapping[str, IntArray],
        kind: str,
        info: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> ReplayResult:
        """Add deterministic policies given by their per-entry choices (e.g. hindsight)."""
        n = len(self.table)
        new_names = [p for p in choices if p not in self.choice]
        return replace(
            self,
            policies=(*self.policies, *new_names),
            kinds={**self.kinds, **dict.fromkeys(choices, kind)},
            choice={**self.choice, **{p: np.asarray(c, dtype=np.int64)
                                      for p, c in choices.items()}},
            probability={**self.probability, **{p: np.ones(n) for p in choices}},
            explored={**self.explored, **{p: np.zeros(n, dtype=bool) for p in choices}},
            heuristic={**self.heuristic, **{p: np.zeros(n, dtype=bool) for p in choices}},
            seen={**self.seen, **{p: np.full(n, -1, dtype=np.int64) for p in choices}},
            info={**self.info, **dict(info or {})},
        )

    def without_policies(self, names: Sequence[str]) -> ReplayResult:
        """The same result without the policies ``names``."""
        drop = set(names)
        keep = tuple(p for p in self.policies if p not in drop)

        def sel(d: Mapping[str, Any]) -> dict[str, Any]:
            return {p: v for p, v in d.items() if p not in drop}

        return replace(
            self, policies=keep, kinds=sel(self.kinds), choice=sel(self.choice),
            probability=sel(self.probability), explored=sel(self.explored),
            heuristic=sel(self.heuristic), seen=sel(self.seen), info=sel(self.info),
            selectors=sel(self.selectors),
        )


def result_from_runners(
    table: OutcomeTable,
    unit: str,
    seed: int,
    runners: Sequence[Runner],
    *,
    names: Sequence[str] | None = None,
    selectors: Mapping[str, MetaStrategySelector] | None = None,
) -> ReplayResult:
    """The decisions recorded by ``runners`` (traces copied) as a :class:`ReplayResult`.

    ``names``: the policies' names (default: the runners' current names); ``selectors``: the
    selectors to keep (default: those of the learner runners).
    """
    labels = [r.name for r in runners] if names is None else list(names)
    named = list(zip(labels, runners, strict=True))
    return ReplayResult(
        table=table, unit=unit, seed=seed, policies=tuple(labels),
        kinds={n: r.kind for n, r in named},
        choice={n: r.trace.choice.copy() for n, r in named},
        probability={n: r.trace.probability.copy() for n, r in named},
        explored={n: r.trace.explored.copy() for n, r in named},
        heuristic={n: r.trace.heuristic.copy() for n, r in named},
        seen={n: r.trace.seen.copy() for n, r in named},
        info={n: dict(r.info) for n, r in named},
        selectors=(dict(selectors) if selectors is not None else
                   {n: r.selector for n, r in named if isinstance(r, LearnerRunner)}),
    )


def replay(
    outcomes: pd.DataFrame | OutcomeTable,
    policies: Sequence[PolicySpec] | None = None,
    *,
    unit: str = "r_atr",
    seed: int = 0,
    profiles: ProfileRegistry | None = None,
    hindsight: bool = True,
) -> ReplayResult:
    """Replay ``policies`` (default: :func:`~.specs.default_policies`) causally over ``outcomes``.

    :param unit: reward unit the learners receive and every metric uses.
    :param seed: seeds the random policy and the learners without their own seed.
    :param profiles: the profile registry (candidates, heuristics); default: the built-ins.
    :param hindsight: also add ``best_static``, ``oracle_regime`` and ``oracle_trade``.
    """
    check_unit(unit)
    table = OutcomeTable.coerce(outcomes)
    _, runners = build_runners(table, policies, unit=unit, seed=seed, profiles=profiles)
    for r in runners:
        r.run(range(len(table)))
    result = result_from_runners(table, unit, seed, runners)
    if hindsight:
        choices, info = hindsight_choices(table, unit)
        result = result.with_policies(choices, "hindsight", info)
    return result
