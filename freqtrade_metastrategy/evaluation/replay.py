"""Causal policy replay over a full-information outcome table.

The counterfactual simulator gives, for every entry signal, the outcome of *every* profile
(one row per (entry, profile): ``entry_id``, ``pair``, ``side``, ``signal_time``,
``entry_time``, ``regime``, ``profile``, ``r_atr``, ``r_risk``, ``ret_pct``, ``exit_time``,
``exit_reason``). :func:`replay` runs selection policies over those entries in time order and
records, per policy and entry, the chosen profile, its probability (propensity) and reward.

Causality (delayed feedback)
----------------------------
Entries are processed in ``(signal_time, entry_id)`` order. Before deciding on an entry, a
learner is given exactly the rewards of *its own* earlier choices whose ``exit_time <=
signal_time`` (a trade's reward is known once it has closed; the rest wait in a queue and are
applied in ``(exit_time, decision order)`` order as soon as they have closed). Nothing else
about the future is used: changing the outcome of a trade that closes after ``t`` never
changes a decision made at or before ``t``, and dropping the entries after a decision never
changes it.

Policies
--------
* :class:`StaticPolicy` -- always the same profile (``static:<profile>``), in every regime.
* :class:`RandomPolicy` -- uniform over the regime's candidate profiles (``random``).
* :class:`LearnerPolicy` -- a :class:`~freqtrade_metastrategy.selector.MetaStrategySelector`
  built from a :class:`~freqtrade_metastrategy.selector.SelectorConfig` with a fresh
  :class:`~freqtrade_metastrategy.store.base.MemoryStore`; it is rewarded in the chosen
  ``unit`` (``trade_id`` = ``entry_id``, ``at`` = exit time, ``probability`` = its propensity).
  :data:`DEFAULT_LEARNERS`: ``eps_greedy`` (the seeds' default: epsilon 0.10, alpha 0.20,
  ``min_samples`` 5, Q-table keyed by (pair, regime), sparse cells read pooled over pairs as
  the project does by default), ``eps_greedy_q040`` (plus the seeds' ``exploit_min_q=0.40``
  rule -- in R, so it only makes sense for ``r_atr``/``r_risk``), ``eps_greedy_nopool`` (no
  pooling: a (pair, regime) cell uses only its own rewards, the seeds' literal rule),
  ``ucb1`` and ``thompson`` (their project defaults).
* :class:`WalkForwardStaticPolicy` -- at each entry, the single profile with the best total
  reward over the entries closed so far, scored under *every* profile (full information).
  An entry counts once all of its profiles' outcomes have closed, so every profile is scored
  on the same entries (totals over different sets would favour quick-exit profiles). Before
  any entry has closed, and on ties, it keeps the default profile (the selector's
  ``default_strategy`` when simulated, else the first profile).
* Hindsight baselines (not causal, they see the whole replayed range): ``best_static`` (the
  profile with the best total), ``oracle_regime`` (the best profile per regime) and
  ``oracle_trade`` (the best profile of every entry, the ceiling). Ties go to the first profile
  in table order. They range over *all* simulated profiles, not only a regime's candidates
  (the learners and ``random`` are limited to the candidates, so their regret against
  ``oracle_regime`` includes the cost of the candidate filter).

Cost: a decision of ``thompson`` draws ``propensity_samples`` (default 200) extra posterior
samples to estimate its propensity, which makes it ~20x slower than the other learners
(~0.65 ms per entry); pass a config with ``policy_params={"propensity_samples": 50}`` to trade
propensity precision for speed.

Candidates are those of :func:`~freqtrade_metastrategy.heuristics.candidates` for the
registry restricted to the table's profiles: a profile the simulator did not simulate can never
be chosen. Learners whose ``default_strategy`` or heuristic needs such a profile are refused.

Determinism: ``seed`` seeds the random policy and every learner whose config has no seed
(each one from ``seed`` and its name), so a replay is reproducible.

>>> table = synthetic_outcomes(n=40, seed=1)
>>> res = replay(table, [StaticPolicy("scalp"), RandomPolicy()], unit="r_atr", seed=3)
>>> res.policies
('static:scalp', 'random', 'best_static', 'oracle_regime', 'oracle_trade')
>>> bool((res.rewards("oracle_trade") >= res.rewards("best_static")).all())
True
"""

from __future__ import annotations

import heapq
import logging
import math
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from random import Random
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import pandas as pd

from freqtrade_metastrategy.errors import ConfigError, MetaStrategyError
from freqtrade_metastrategy.heuristics import candidates
from freqtrade_metastrategy.profiles import BUILTIN_PROFILES, DEFAULT_STRATEGY, ProfileRegistry
from freqtrade_metastrategy.selector import MetaStrategySelector, SelectorConfig
from freqtrade_metastrategy.store.base import MemoryStore

__all__ = [
    "DEFAULT_LEARNERS",
    "ENTRY_COLUMNS",
    "HINDSIGHT",
    "OUTCOME_COLUMNS",
    "UNITS",
    "EvaluationError",
    "LearnerPolicy",
    "OutcomeTable",
    "PolicySpec",
    "RandomPolicy",
    "ReplayResult",
    "StaticPolicy",
    "WalkForwardStaticPolicy",
    "default_policies",
    "replay",
    "synthetic_outcomes",
    "to_utc_timestamp",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

#: The three reward units of the outcome table.
UNITS: Final[tuple[str, ...]] = ("r_atr", "r_risk", "ret_pct")
#: Columns that are the same on every row of one entry.
ENTRY_COLUMNS: Final[tuple[str, ...]] = (
    "entry_id", "pair", "side", "signal_time", "entry_time", "regime",
)
#: Required columns of the outcome table (plus at least one of :data:`UNITS`).
OUTCOME_COLUMNS: Final[tuple[str, ...]] = (*ENTRY_COLUMNS, "profile", "exit_time", "exit_reason")
#: Names of the hindsight baselines, in report order.
HINDSIGHT: Final[tuple[str, ...]] = ("best_static", "oracle_regime", "oracle_trade")

#: The learners replayed by default (name -> config; seeds are filled in by :func:`replay`).
DEFAULT_LEARNERS: Final[Mapping[str, SelectorConfig]] = {
    "eps_greedy": SelectorConfig(policy="epsilon_greedy", epsilon=0.10, alpha=0.20,
                                 min_samples=5),
    "eps_greedy_q040": SelectorConfig(policy="epsilon_greedy", epsilon=0.10, alpha=0.20,
                                      min_samples=5, exploit_min_q=0.40),
    "eps_greedy_nopool": SelectorConfig(policy="epsilon_greedy", epsilon=0.10, alpha=0.20,
                                        min_samples=5, pool_across_symbols=False),
    "ucb1": SelectorConfig(policy="ucb1"),
    "thompson": SelectorConfig(policy="thompson"),
}


class EvaluationError(MetaStrategyError, ValueError):
    """The evaluation input is unusable; the message names the column/row and the fix."""


# -- the outcome table ------------------------------------------------------------------------
def to_utc_timestamp(value: object, what: str = "time") -> pd.Timestamp:
    """``value`` as a tz-aware UTC Timestamp; a naive value is taken to be UTC.

    >>> to_utc_timestamp("2024-01-02")
    Timestamp('2024-01-02 00:00:00+0000', tz='UTC')
    """
    try:
        ts = pd.Timestamp(value)  # type: ignore[arg-type]
    except (TypeError, ValueError) as exc:
        raise EvaluationError(f"{what}: not a time: {value!r} ({exc})") from None
    if pd.isna(ts):
        raise EvaluationError(f"{what}: missing time (NaT)")
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def _utc_ns(col: pd.Series, name: str) -> IntArray:
    """A tz-aware datetime column as int64 nanoseconds since the epoch (UTC)."""
    s = col
    if not isinstance(s.dtype, pd.DatetimeTZDtype):
        if pd.api.types.is_datetime64_dtype(s.dtype):
            raise EvaluationError(
                f"column {name!r} holds naive datetimes; give tz-aware UTC times "
                f"(e.g. df[{name!r}] = df[{name!r}].dt.tz_localize('UTC'))"
            )
        try:
            s = pd.to_datetime(s, utc=False)
        except (TypeError, ValueError) as exc:
            raise EvaluationError(f"column {name!r}: not datetimes ({exc})") from None
        if not isinstance(s.dtype, pd.DatetimeTZDtype):
            raise EvaluationError(f"column {name!r} must hold tz-aware (UTC) datetimes")
    if bool(s.isna().any()):
        raise EvaluationError(f"column {name!r} has missing times (NaT)")
    s = s.dt.tz_convert("UTC").dt.tz_localize(None).dt.as_unit("ns")
    out: IntArray = s.to_numpy(dtype="datetime64[ns]").view(np.int64)
    return out


def _ns_to_times(ns: IntArray) -> pd.DatetimeIndex:
    return pd.DatetimeIndex(pd.to_datetime(np.asarray(ns, dtype=np.int64), unit="ns", utc=True))


@dataclass(frozen=True, eq=False)
class OutcomeTable:
    """The validated outcome table in wide form, entries in ``(signal_time, entry_id)`` order.

    ``entries`` has one row per entry (columns :data:`ENTRY_COLUMNS`, RangeIndex = row in time
    order); ``profiles``: the built-in profiles present, in registry order, then any other
    profile in name order (independent of the input's row order; ties in hindsight choices
    go to the first); ``rewards[unit]``, ``exit_ns`` and ``exit_reason`` are ``(entries, profiles)``
    arrays, column ``j`` being ``profiles[j]``; ``signal_ns`` is the signal time in ns (UTC).
    """

    entries: pd.DataFrame
    profiles: tuple[str, ...]
    rewards: Mapping[str, FloatArray]
    exit_ns: IntArray
    exit_reason: npt.NDArray[np.object_]
    signal_ns: IntArray

    @classmethod
    def from_frame(cls, outcomes: pd.DataFrame) -> OutcomeTable:  # noqa: C901 - flat checks
        """Validate the simulator's long table (see module doc) and reshape it."""
        if not isinstance(outcomes, pd.DataFrame):
            raise EvaluationError("outcomes: expected a pandas DataFrame (or an OutcomeTable)")
        missing = [c for c in OUTCOME_COLUMNS if c not in outcomes.columns]
        if missing:
            raise EvaluationError(f"outcome table: missing column(s) {', '.join(missing)}")
        units = [u for u in UNITS if u in outcomes.columns]
        if not units:
            raise EvaluationError(f"outcome table: no reward column (one of {', '.join(UNITS)})")
        if outcomes.empty:
            raise EvaluationError("outcome table: no rows")
        if not pd.api.types.is_integer_dtype(outcomes["entry_id"].dtype):
            raise EvaluationError("column 'entry_id' must hold integers")
        found = {str(p) for p in pd.unique(outcomes["profile"].astype(str))}
        profiles = (*(p for p in BUILTIN_PROFILES if p in found),
                    *sorted(found.difference(BUILTIN_PROFILES)))
        k = len(profiles)
        dup = outcomes.duplicated(["entry_id", "profile"])
        if bool(dup.any()):
            row = outcomes.loc[dup].iloc[0]
            raise EvaluationError(
                f"outcome table: entry {row['entry_id']} has several rows for profile "
                f"{row['profile']!r}"
            )
        codes = pd.Categorical(outcomes["profile"].astype(str), categories=list(profiles)).codes
        eid_all = outcomes["entry_id"].to_numpy(dtype=np.int64)
        counts = pd.Series(eid_all).value_counts()
        incomplete = counts[counts != k]
        if len(incomplete):
            bad = int(incomplete.index[0])
            have = set(outcomes.loc[outcomes["entry_id"] == bad, "profile"].astype(str))
            lacking = [p for p in profiles if p not in have]
            raise EvaluationError(
                f"outcome table: entry {bad} has no row for profile(s) {', '.join(lacking)}; "
                "every entry needs the outcome of every profile"
            )
        order = np.lexsort((codes, eid_all))
        n = len(outcomes) // k

        def wide(values: npt.NDArray[Any]) -> npt.NDArray[Any]:
            return values[order].reshape(n, k)

        sig = wide(_utc_ns(outcomes["signal_time"], "signal_time"))
        ent = wide(_utc_ns(outcomes["entry_time"], "entry_time"))
        ext = wide(_utc_ns(outcomes["exit_time"], "exit_time"))
        eid = wide(eid_all)
        per_entry: dict[str, npt.NDArray[Any]] = {
            "entry_id": eid, "signal_time": sig, "entry_time": ent,
        }
        for col in ("pair", "side", "regime"):
            per_entry[col] = wide(outcomes[col].astype(str).to_numpy(dtype=object))
        for col, arr in per_entry.items():
            mismatch = (arr != arr[:, :1]).any(axis=1)
            if bool(mismatch.any()):
                bad = int(eid[int(np.argmax(mismatch)), 0])
                raise EvaluationError(
                    f"outcome table: entry {bad} has different {col!r} values across profiles"
                )
        rewards: dict[str, FloatArray] = {}
        for u in units:
            try:
                vals = wide(outcomes[u].to_numpy(dtype=np.float64))
            except (TypeError, ValueError) as exc:
                raise EvaluationError(f"column {u!r}: not numbers ({exc})") from None
            finite = np.isfinite(vals)
            if not bool(finite.all()):
                i, j = np.argwhere(~finite)[0]
                raise EvaluationError(
                    f"column {u!r}: entry {eid[i, 0]} profile {profiles[j]!r} is not a finite "
                    "number"
                )
            rewards[u] = vals
        early = ext < sig
        if bool(early.any()):
            i, j = np.argwhere(early)[0]
            raise EvaluationError(
                f"outcome table: entry {eid[i, 0]} profile {profiles[j]!r} exits before its "
                "signal_time"
            )
        reasons = wide(outcomes["exit_reason"].astype(str).to_numpy(dtype=object))
        torder = np.lexsort((eid[:, 0], sig[:, 0]))
        entries = pd.DataFrame({
            "entry_id": eid[torder, 0],
            "pair": per_entry["pair"][torder, 0],
            "side": per_entry["side"][torder, 0],
            "signal_time": _ns_to_times(sig[torder, 0]),
            "entry_time": _ns_to_times(ent[torder, 0]),
            "regime": per_entry["regime"][torder, 0],
        })
        return cls(
            entries=entries,
            profiles=profiles,
            rewards={u: np.ascontiguousarray(v[torder]) for u, v in rewards.items()},
            exit_ns=np.ascontiguousarray(ext[torder]),
            exit_reason=np.ascontiguousarray(reasons[torder]),
            signal_ns=np.ascontiguousarray(sig[torder, 0]),
        )

    @classmethod
    def coerce(cls, outcomes: pd.DataFrame | OutcomeTable) -> OutcomeTable:
        return outcomes if isinstance(outcomes, OutcomeTable) else cls.from_frame(outcomes)

    def __len__(self) -> int:
        return len(self.signal_ns)

    @property
    def units(self) -> tuple[str, ...]:
        return tuple(self.rewards)

    def reward(self, unit: str) -> FloatArray:
        """The ``(entries, profiles)`` reward matrix in ``unit``."""
        if unit not in self.rewards:
            raise EvaluationError(
                f"unit {unit!r}: not in the outcome table (available: {', '.join(self.rewards)})"
            )
        return self.rewards[unit]

    def profile_index(self, profile: str) -> int:
        try:
            return self.profiles.index(profile)
        except ValueError:
            raise EvaluationError(
                f"profile {profile!r} has no outcomes in the table (profiles: "
                f"{', '.join(self.profiles)})"
            ) from None

    @property
    def close_ns(self) -> IntArray:
        """Per entry, when the last of its profiles' outcomes closed."""
        return np.asarray(self.exit_ns.max(axis=1), dtype=np.int64)

    def subset(self, mask: BoolArray) -> OutcomeTable:
        """The entries where ``mask`` (aligned with :attr:`entries`) is true, same order."""
        m = np.asarray(mask, dtype=bool)
        if m.shape != self.signal_ns.shape:
            raise EvaluationError("subset: mask must have one value per entry")
        return OutcomeTable(
            entries=self.entries.loc[m].reset_index(drop=True),
            profiles=self.profiles,
            rewards={u: v[m] for u, v in self.rewards.items()},
            exit_ns=self.exit_ns[m],
            exit_reason=self.exit_reason[m],
            signal_ns=self.signal_ns[m],
        )

    def between(self, start: object, end: object) -> OutcomeTable:
        """Entries with ``start <= signal_time < end`` (naive bounds are UTC)."""
        lo = to_utc_timestamp(start, "start").value
        hi = to_utc_timestamp(end, "end").value
        return self.subset((self.signal_ns >= lo) & (self.signal_ns < hi))


# -- policy specifications ---------------------------------------------------------------------
@dataclass(frozen=True)
class StaticPolicy:
    """Always ``profile``."""

    profile: str

    @property
    def name(self) -> str:
        return f"static:{self.profile}"


@dataclass(frozen=True)
class RandomPolicy:
    """Uniform over the regime's candidate profiles."""

    name: str = "random"


@dataclass(frozen=True)
class LearnerPolicy:
    """A :class:`MetaStrategySelector` with ``config`` (seed filled in if ``None``)."""

    name: str
    config: SelectorConfig = field(default_factory=SelectorConfig)


@dataclass(frozen=True)
class WalkForwardStaticPolicy:
    """The best profile on the closed entries so far (full information), re-chosen per entry.

    ``default_profile``: used before any entry has closed and kept on ties (``None``: the
    default strategy of :class:`SelectorConfig` when the table has it, else the first profile).
    """

    name: str = "walk_forward_static"
    default_profile: str | None = None


PolicySpec = StaticPolicy | RandomPolicy | LearnerPolicy | WalkForwardStaticPolicy


def default_policies(
    profiles: Sequence[str],
    *,
    learners: Mapping[str, SelectorConfig] | None = None,
) -> list[PolicySpec]:
    """Every static profile, ``random``, ``walk_forward_static`` and the learners.

    >>> [p.name for p in default_policies(["scalp", "moderate"], learners={})]
    ['static:scalp', 'static:moderate', 'random', 'walk_forward_static']
    """
    out: list[PolicySpec] = [StaticPolicy(p) for p in profiles]
    out.append(RandomPolicy())
    out.append(WalkForwardStaticPolicy())
    for name, cfg in (DEFAULT_LEARNERS if learners is None else learners).items():
        out.append(LearnerPolicy(name, cfg))
    return out


def derived_seed(seed: int, name: str) -> int:
    """A per-policy seed from the replay seed and the policy's name (stable across runs)."""
    return (int(seed) * 1_000_003 + zlib.crc32(name.encode())) % (2**63)


# -- runners (one per causal policy) -----------------------------------------------------------
@dataclass
class _Trace:
    """Per-entry record of one policy (arrays aligned with the table's entries)."""

    choice: IntArray
    probability: FloatArray
    explored: BoolArray
    heuristic: BoolArray
    seen: IntArray

    @classmethod
    def empty(cls, n: int) -> _Trace:
        return cls(
            choice=np.full(n, -1, dtype=np.int64),
            probability=np.full(n, np.nan),
            explored=np.zeros(n, dtype=bool),
            heuristic=np.zeros(n, dtype=bool),
            seen=np.zeros(n, dtype=np.int64),
        )


class _Context:
    """What runners share: the table, the reward unit, the restricted registry."""

    def __init__(
        self, table: OutcomeTable, unit: str, registry: ProfileRegistry | None
    ) -> None:
        self.table = table
        self.unit = unit
        self.reward = table.reward(unit)
        base = registry if registry is not None else ProfileRegistry()
        known = {p: base[p] for p in table.profiles if p in base}
        self.registry: ProfileRegistry | None = ProfileRegistry(known) if known else None
        self.pairs: list[str] = [str(x) for x in table.entries["pair"]]
        self.regimes: list[str] = [str(x) for x in table.entries["regime"]]
        self.entry_ids: list[int] = [int(x) for x in table.entries["entry_id"]]
        self._cands: dict[str, tuple[int, ...]] = {}

    def need_registry(self, who: str) -> ProfileRegistry:
        if self.registry is None:
            raise EvaluationError(
                f"{who}: none of the table's profiles ({', '.join(self.table.profiles)}) is in "
                "the profile registry; pass profiles=ProfileRegistry.from_config(...) with the "
                "profiles the simulator used"
            )
        return self.registry

    def candidates(self, regime: str) -> tuple[int, ...]:
        got = self._cands.get(regime)
        if got is None:
            reg = self.need_registry("random policy")
            got = tuple(self.table.profile_index(p) for p in candidates(reg, regime))
            self._cands[regime] = got
        return got

    def default_profile(self, wanted: str | None) -> int:
        if wanted is not None:
            return self.table.profile_index(wanted)
        if DEFAULT_STRATEGY in self.table.profiles:
            return self.table.profiles.index(DEFAULT_STRATEGY)
        return 0


class _Runner:
    name: str
    kind: str

    def __init__(self, ctx: _Context, n: int) -> None:
        self.ctx = ctx
        self.trace = _Trace.empty(n)
        self.info: dict[str, Any] = {}

    def run(self, rows: Sequence[int] | range) -> None:
        for i in rows:
            self.decide(i)

    def decide(self, i: int) -> None:  # pragma: no cover - abstract
        raise NotImplementedError


class _StaticRunner(_Runner):
    kind = "static"

    def __init__(self, ctx: _Context, n: int, spec: StaticPolicy) -> None:
        super().__init__(ctx, n)
        self.name = spec.name
        self.j = ctx.table.profile_index(spec.profile)
        self.info = {"profile": spec.profile}

    def run(self, rows: Sequence[int] | range) -> None:
        idx = np.asarray(list(rows), dtype=np.int64)
        self.trace.choice[idx] = self.j
        self.trace.probability[idx] = 1.0

    def decide(self, i: int) -> None:
        self.run([i])


class _RandomRunner(_Runner):
    kind = "random"

    def __init__(self, ctx: _Context, n: int, spec: RandomPolicy, seed: int) -> None:
        super().__init__(ctx, n)
        self.name = spec.name
        self.rng = Random(derived_seed(seed, spec.name))
        self.info = {"seed": derived_seed(seed, spec.name)}

    def decide(self, i: int) -> None:
        arms = self.ctx.candidates(self.ctx.regimes[i])
        t = self.trace
        t.choice[i] = arms[self.rng.randrange(len(arms))]
        t.probability[i] = 1.0 / len(arms)
        t.explored[i] = True


class _WalkForwardRunner(_Runner):
    kind = "walk_forward"

    def __init__(self, ctx: _Context, n: int, spec: WalkForwardStaticPolicy) -> None:
        super().__init__(ctx, n)
        self.name = spec.name
        self.default = ctx.default_profile(spec.default_profile)
        close = ctx.table.close_ns
        self.order = np.argsort(close, kind="stable")
        self.close_sorted = close[self.order]
        self.totals = np.zeros(len(ctx.table.profiles))
        self.ptr = 0
        self.info = {"default_profile": ctx.table.profiles[self.default]}

    def decide(self, i: int) -> None:
        t_ns = self.ctx.table.signal_ns[i]
        stop = int(np.searchsorted(self.close_sorted, t_ns, side="right"))
        if stop > self.ptr:
            self.totals += self.ctx.reward[self.order[self.ptr:stop]].sum(axis=0)
            self.ptr = stop
        j = self.default
        if self.ptr:
            best = self.totals.max()
            if self.totals[j] != best:
                j = int(np.argmax(self.totals))
        t = self.trace
        t.choice[i] = j
        t.probability[i] = 1.0
        t.seen[i] = self.ptr


class _LearnerRunner(_Runner):
    kind = "learner"

    def __init__(
        self, ctx: _Context, n: int, spec: LearnerPolicy, seed: int,
        *, selector: MetaStrategySelector | None = None,
    ) -> None:
        super().__init__(ctx, n)
        self.name = spec.name
        self.spec = spec
        cfg = spec.config
        if cfg.seed is None:
            cfg = replace(cfg, seed=derived_seed(seed, spec.name))
        self.config = cfg
        if selector is None:
            reg = ctx.need_registry(f"learner {spec.name!r}")
            try:
                selector = MetaStrategySelector(
                    config=cfg, store=MemoryStore(), profiles=reg, log_level=logging.DEBUG
                )
            except ConfigError as exc:
                raise EvaluationError(
                    f"learner {spec.name!r}: {exc} (the outcome table has profiles "
                    f"{', '.join(ctx.table.profiles)}; simulate the profiles the learner's "
                    "default_strategy/heuristic use, or change them)"
                ) from None
        self.selector = selector
        self.pending: list[tuple[int, int, int]] = []  # (exit_ns, row, profile)
        self.seen = 0
        self.learning = True
        self.info = {"config": _config_dict(cfg), "frozen_at": None}

    def _release(self, t_ns: int) -> None:
        ctx = self.ctx
        while self.pending and self.pending[0][0] <= t_ns:
            exit_ns, i, j = heapq.heappop(self.pending)
            self.selector.update_reward(
                ctx.pairs[i], ctx.regimes[i], ctx.table.profiles[j], float(ctx.reward[i, j]),
                trade_id=ctx.entry_ids[i], at=_ns_to_datetime(exit_ns),
                probability=_finite_or_none(self.trace.probability[i]),
            )
            self.seen += 1

    def decide(self, i: int) -> None:
        ctx = self.ctx
        t_ns = int(ctx.table.signal_ns[i])
        if self.learning:
            self._release(t_ns)
        d = self.selector.choose_strategy(ctx.pairs[i], ctx.regimes[i])
        j = ctx.table.profile_index(d.strategy_id)
        t = self.trace
        t.choice[i] = j
        t.probability[i] = d.probability
        t.explored[i] = d.is_exploration
        t.heuristic[i] = d.is_heuristic
        t.seen[i] = self.seen
        if self.learning:
            heapq.heappush(self.pending, (int(ctx.table.exit_ns[i, j]), i, j))

    def freeze(self, at_ns: int) -> None:
        """Apply the rewards known at ``at_ns``, then stop learning (the rest are dropped)."""
        self._release(at_ns)
        self.pending.clear()
        self.learning = False
        self.info["frozen_at"] = _ns_to_datetime(at_ns).isoformat()

    def fork(self, name: str) -> _LearnerRunner:
        """An independent copy (same Q-table, RNG state, pending queue and trace)."""
        store = MemoryStore()
        store.import_dict(self.selector.store.export_dict())
        sel = MetaStrategySelector(
            config=self.config, store=store, profiles=self.selector.profiles,
            log_level=logging.DEBUG,
        )
        sel.rng.setstate(self.selector.rng.getstate())
        twin = _LearnerRunner(self.ctx, len(self.trace.choice), replace(self.spec, name=name),
                              0, selector=sel)
        twin.config = self.config
        twin.info = dict(self.info)
        twin.pending = list(self.pending)
        twin.seen = self.seen
        tr = self.trace
        twin.trace = _Trace(tr.choice.copy(), tr.probability.copy(), tr.explored.copy(),
                            tr.heuristic.copy(), tr.seen.copy())
        return twin


def _config_dict(cfg: SelectorConfig) -> dict[str, Any]:
    return {
        "policy": cfg.policy, "epsilon": cfg.epsilon, "alpha": cfg.alpha,
        "min_samples": cfg.min_samples, "seed": cfg.seed, "exploit_min_q": cfg.exploit_min_q,
        "pool_across_symbols": cfg.pool_across_symbols, "policy_params": dict(cfg.policy_params),
    }


def _ns_to_datetime(ns: int) -> datetime:
    ts: datetime = pd.Timestamp(int(ns), unit="ns", tz="UTC").to_pydatetime(warn=False)
    return ts


def _finite_or_none(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def _make_runner(ctx: _Context, n: int, spec: PolicySpec, seed: int) -> _Runner:
    if isinstance(spec, StaticPolicy):
        return _StaticRunner(ctx, n, spec)
    if isinstance(spec, RandomPolicy):
        return _RandomRunner(ctx, n, spec, seed)
    if isinstance(spec, WalkForwardStaticPolicy):
        return _WalkForwardRunner(ctx, n, spec)
    if isinstance(spec, LearnerPolicy):
        return _LearnerRunner(ctx, n, spec, seed)
    raise EvaluationError(f"unknown policy specification {spec!r}")


def _check_names(names: Sequence[str]) -> None:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise EvaluationError(f"policy name {name!r} is used twice")
        if name in HINDSIGHT:
            raise EvaluationError(f"policy name {name!r} is reserved for a hindsight baseline")
        seen.add(name)


# -- hindsight ---------------------------------------------------------------------------------
def hindsight_choices(
    table: OutcomeTable, unit: str
) -> tuple[dict[str, IntArray], dict[str, dict[str, Any]]]:
    """Choices (per entry) and info of the three hindsight baselines on ``table``."""
    rew = table.reward(unit)
    n = len(table)
    totals = rew.sum(axis=0)
    best = int(np.argmax(totals))
    regimes = table.entries["regime"].to_numpy(dtype=object)
    mapping: dict[str, str] = {}
    per_regime = np.empty(n, dtype=np.int64)
    for regime in pd.unique(regimes):
        m = regimes == regime
        j = int(np.argmax(rew[m].sum(axis=0)))
        mapping[str(regime)] = table.profiles[j]
        per_regime[m] = j
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
        "oracle_regime": {"mapping": mapping},
        "oracle_trade": {},
    }
    return choices, info


# -- the result --------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class ReplayResult:
    """Per-policy, per-entry decisions of a replay (arrays aligned with ``table.entries``).

    ``kinds[policy]``: ``static``, ``random``, ``learner``, ``walk_forward``, ``hindsight``
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

    def rewards(self, policy: str, unit: str | None = None) -> FloatArray:
        """Per-entry rewards of ``policy`` (in the replay's unit unless ``unit`` is given)."""
        self._check(policy)
        rew = self.table.reward(unit or self.unit)
        out: FloatArray = rew[np.arange(len(self.table)), self.choice[policy]]
        return out

    def exit_ns(self, policy: str) -> IntArray:
        self._check(policy)
        out: IntArray = self.table.exit_ns[np.arange(len(self.table)), self.choice[policy]]
        return out

    def profiles_chosen(self, policy: str) -> npt.NDArray[np.object_]:
        self._check(policy)
        return np.asarray(self.table.profiles, dtype=object)[self.choice[policy]]

    def reward_frame(self, unit: str | None = None) -> pd.DataFrame:
        """Entries × policies matrix of rewards (index ``entry_id``)."""
        return pd.DataFrame(
            {p: self.rewards(p, unit) for p in self.policies},
            index=pd.Index(self.table.entries["entry_id"], name="entry_id"),
        )

    def choice_counts(self) -> pd.DataFrame:
        """Policies × profiles: how often each profile was chosen."""
        k = len(self.table.profiles)
        return pd.DataFrame(
            [np.bincount(self.choice[p], minlength=k) for p in self.policies],
            index=pd.Index(self.policies, name="policy"), columns=list(self.table.profiles),
        )

    def decisions(self, policy: str | None = None) -> pd.DataFrame:
        """Long table: one row per (policy, entry), entries in time order.

        Columns: ``policy``, ``kind``, the entry columns, ``profile``, ``probability``,
        ``reward`` (replay unit), every unit of the chosen profile, ``exit_time``,
        ``exit_reason``, ``explored``, ``heuristic``, ``seen``.
        """
        names = self.policies if policy is None else (policy,)
        rows = np.arange(len(self.table))
        frames = []
        for p in names:
            self._check(p)
            j = self.choice[p]
            f = self.table.entries.copy()
            f.insert(0, "kind", self.kinds[p])
            f.insert(0, "policy", p)
            f["profile"] = np.asarray(self.table.profiles, dtype=object)[j]
            f["probability"] = self.probability[p]
            f["reward"] = self.rewards(p)
            for u in self.table.units:
                f[u] = self.table.rewards[u][rows, j]
            f["exit_time"] = _ns_to_times(self.table.exit_ns[rows, j])
            f["exit_reason"] = self.table.exit_reason[rows, j]
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


def _result_from_runners(
    table: OutcomeTable, unit: str, seed: int, runners: Sequence[_Runner]
) -> ReplayResult:
    return ReplayResult(
        table=table,
        unit=unit,
        seed=seed,
        policies=tuple(r.name for r in runners),
        kinds={r.name: r.kind for r in runners},
        choice={r.name: r.trace.choice for r in runners},
        probability={r.name: r.trace.probability for r in runners},
        explored={r.name: r.trace.explored for r in runners},
        heuristic={r.name: r.trace.heuristic for r in runners},
        seen={r.name: r.trace.seen for r in runners},
        info={r.name: r.info for r in runners},
        selectors={r.name: r.selector for r in runners if isinstance(r, _LearnerRunner)},
    )


def _check_unit(unit: str) -> None:
    if unit not in UNITS:
        raise EvaluationError(f"unit {unit!r}: must be one of {', '.join(UNITS)}")


# -- the entry point ---------------------------------------------------------------------------
def replay(
    outcomes: pd.DataFrame | OutcomeTable,
    policies: Sequence[PolicySpec] | None = None,
    *,
    unit: str = "r_atr",
    seed: int = 0,
    profiles: ProfileRegistry | None = None,
    hindsight: bool = True,
) -> ReplayResult:
    """Replay ``policies`` (default: :func:`default_policies`) causally over ``outcomes``.

    :param unit: reward unit the learners receive and every metric uses.
    :param seed: seeds the random policy and the learners without their own seed.
    :param profiles: the profile registry (candidates, heuristics); default: the built-ins.
    :param hindsight: also add ``best_static``, ``oracle_regime`` and ``oracle_trade``.
    """
    _check_unit(unit)
    table = OutcomeTable.coerce(outcomes)
    specs = list(default_policies(table.profiles) if policies is None else policies)
    _check_names([s.name for s in specs])
    ctx = _Context(table, unit, profiles)
    n = len(table)
    runners = [_make_runner(ctx, n, s, seed) for s in specs]
    for r in runners:
        r.run(range(n))
    result = _result_from_runners(table, unit, seed, runners)
    if hindsight:
        choices, info = hindsight_choices(table, unit)
        result = result.with_policies(choices, "hindsight", info)
    return result


# -- synthetic data (tests, doctests, examples) ------------------------------------------------
_SYN_MEANS: Final[Mapping[str, Mapping[str, float]]] = {
    "trend_up": {"ultra_aggressive": 0.8, "trend_rider": 0.5, "moderate": 0.2, "defensive": 0.1,
                 "scalp": -0.3, "moderate_aggressive": 0.3, "balanced_aggressive": 0.4},
    "range_low_vol": {"ultra_aggressive": -0.4, "trend_rider": -0.6, "moderate": 0.2,
                      "defensive": 0.3, "scalp": 0.6, "moderate_aggressive": -0.2,
                      "balanced_aggressive": -0.3},
}


def synthetic_outcomes(
    n: int = 200,
    *,
    seed: int = 0,
    means: Mapping[str, Mapping[str, float]] | None = None,
    pairs: Sequence[str] = ("BTC/USDT", "ETH/USDT"),
    start: str = "2024-01-01",
    spacing: str = "4h",
    hold: tuple[str, str] = ("2h", "30h"),
    noise: float = 1.0,
) -> pd.DataFrame:
    """A synthetic outcome table: ``n`` entries, regimes drawn uniformly from ``means``' keys,
    reward ``r_atr`` ~ N(means[regime][profile], noise), ``r_risk`` = ``r_atr`` / 1.2,
    ``ret_pct`` = ``r_atr`` * 0.8; holding times uniform in ``hold``, per profile.

    >>> df = synthetic_outcomes(n=3)
    >>> len(df), df["entry_id"].nunique(), sorted(df.columns)[:3]
    (21, 3, ['entry_id', 'entry_time', 'exit_reason'])
    """
    m = _SYN_MEANS if means is None else means
    rng = np.random.default_rng(seed)
    regimes = list(m)
    profiles = list(next(iter(m.values())))
    t0 = to_utc_timestamp(start)
    step = pd.Timedelta(spacing)
    lo, hi = pd.Timedelta(hold[0]), pd.Timedelta(hold[1])
    rows: list[dict[str, Any]] = []
    for e in range(n):
        regime = regimes[int(rng.integers(len(regimes)))]
        sig = t0 + e * step
        for p in profiles:
            r = float(rng.normal(m[regime][p], noise))
            held = lo + (hi - lo) * float(rng.random())
            rows.append({
                "entry_id": e, "pair": pairs[e % len(pairs)], "side": "long",
                "signal_time": sig, "entry_time": sig, "regime": regime, "profile": p,
                "r_atr": r, "r_risk": r / 1.2, "ret_pct": 0.8 * r,
                "exit_time": sig + held, "exit_reason": "tp" if r > 0 else "sl",
            })
    return pd.DataFrame(rows)
