"""How each causal policy decides, entry by entry: one runner per policy spec.

A runner walks the entries of an :class:`~.outcomes.OutcomeTable` in time order and records
its decisions in a :class:`Trace` (chosen profile, propensity, explored, heuristic, rewards
seen). :func:`build_runners` makes one per :mod:`.specs` spec over a shared
:class:`RunContext`; :func:`~.replay.replay` and :func:`~.walkforward.evaluate` drive them.

* :class:`LearnerRunner` -- a selector with a fresh
  :class:`~freqtrade_metastrategy.store.base.MemoryStore`, rewarded in the context's unit
  (``trade_id`` = ``entry_id``, ``at`` = exit time, ``probability`` = its propensity) once a
  trade has closed: before deciding at ``signal_time`` it applies its own earlier choices with
  ``exit_time <= signal_time``, in ``(exit_time, decision order)`` order. ``fork`` and
  ``freeze`` make the frozen/online twins of the walk-forward.
* :class:`FullInfoRunner` -- full information (:mod:`freqtrade_metastrategy.fullinfo`, the
  strategy's own learner): an entry counts once all of its profiles' outcomes have closed, so
  every profile is scored on the same entries (totals over different sets would favour
  quick-exit profiles); ``walk_forward_static`` is its running-mean, no-warm-up case (before
  any entry has closed, and on ties, the default profile: the selector's
  ``default_strategy`` when simulated, else the first profile). It may stand aside.
* :class:`UniformRandomRunner` and the learners choose among the candidates of
  :func:`~freqtrade_metastrategy.heuristics.candidates` for the registry restricted to the
  table's profiles: a profile the simulator did not simulate can never be chosen. Learners
  whose ``default_strategy`` or heuristic needs such a profile are refused.

Seeds: the random policy and every learner whose config has no seed get
:func:`derived_seed` of the replay seed and their name. Cost: a ``thompson`` decision draws
``propensity_samples`` (default 200) extra posterior samples to estimate its propensity, ~20x
slower than the other learners (~0.65 ms per entry); ``policy_params={"propensity_samples":
50}`` trades propensity precision for speed.
"""

from __future__ import annotations

import heapq
import logging
import math
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, replace
from random import Random
from typing import Any, Final

import numpy as np

from freqtrade_metastrategy.context import DIRECTIONAL, MIRRORED
from freqtrade_metastrategy.errors import ConfigError, EvaluationError
from freqtrade_metastrategy.evaluation.outcomes import (
    BoolArray,
    FloatArray,
    IntArray,
    OutcomeTable,
    ns_to_datetime,
)
from freqtrade_metastrategy.evaluation.specs import (
    FixedProfileSpec,
    FullInfoSpec,
    LearnerSpec,
    PolicySpec,
    UniformRandomSpec,
    WalkForwardStaticSpec,
    check_policy_names,
    default_policies,
)
from freqtrade_metastrategy.fullinfo import FullInfoLearner
from freqtrade_metastrategy.heuristics import candidates
from freqtrade_metastrategy.profiles import DEFAULT_STRATEGY, ProfileRegistry
from freqtrade_metastrategy.selector import (
    MetaStrategySelector,
    SelectorConfig,
    bandit_stand_aside,
)
from freqtrade_metastrategy.store.base import MemoryStore

__all__ = [
    "STAND_ASIDE",
    "FixedProfileRunner",
    "FullInfoRunner",
    "LearnerRunner",
    "RunContext",
    "Runner",
    "Trace",
    "UniformRandomRunner",
    "build_runners",
    "default_column",
    "derived_seed",
    "make_runner",
]

#: The choice recorded for an entry a policy stood aside on (no trade: 0 R).
STAND_ASIDE: Final = -1


def derived_seed(seed: int, name: str) -> int:
    """A per-policy seed from the replay seed and the policy's name (stable across runs)."""
    return (int(seed) * 1_000_003 + zlib.crc32(name.encode())) % (2**63)


@dataclass
class Trace:
    """Per-entry record of one policy (arrays aligned with the table's entries)."""

    choice: IntArray
    probability: FloatArray
    explored: BoolArray
    heuristic: BoolArray
    seen: IntArray

    @classmethod
    def empty(cls, n: int) -> Trace:
        """A trace of ``n`` undecided entries (choice -1, probability NaN)."""
        return cls(
            choice=np.full(n, -1, dtype=np.int64),
            probability=np.full(n, np.nan),
            explored=np.zeros(n, dtype=bool),
            heuristic=np.zeros(n, dtype=bool),
            seen=np.zeros(n, dtype=np.int64),
        )


def default_column(profiles: Sequence[str]) -> int:
    """Column of the default strategy if simulated, else 0: the fallback of every baseline
    (static_train_best with no closed train entry, a learner whose default is not simulated).

    >>> default_column(["scalp", "ultra_aggressive"]), default_column(["scalp"])
    (1, 0)
    """
    return list(profiles).index(DEFAULT_STRATEGY) if DEFAULT_STRATEGY in profiles else 0


class RunContext:
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
        entries = table.entries
        self.pairs: list[str] = [str(x) for x in entries["pair"].tolist()]
        self.sides: list[str] = [str(x) for x in entries["side"].tolist()]
        self.regimes: list[str] = [str(x) for x in entries["regime"].tolist()]
        self.entry_ids: list[int] = entries["entry_id"].to_numpy(dtype=np.int64).tolist()
        self._cands: dict[str, tuple[int, ...]] = {}

    def need_registry(self, who: str) -> ProfileRegistry:
        """The restricted registry; ``who`` (a policy) cannot run without one."""
        if self.registry is None:
            raise EvaluationError(
                f"{who}: none of the table's profiles ({', '.join(self.table.profiles)}) is in "
                "the profile registry; pass profiles=ProfileRegistry.from_config(...) with the "
                "profiles the simulator used"
            )
        return self.registry

    def candidates(self, regime: str) -> tuple[int, ...]:
        """Columns of the regime's candidate profiles (cached per regime)."""
        got = self._cands.get(regime)
        if got is None:
            reg = self.need_registry("random policy")
            got = tuple(self.table.profile_index(p) for p in candidates(reg, regime))
            self._cands[regime] = got
        return got

    def default_profile(self, wanted: str | None) -> int:
        """Column of ``wanted``, else of the default strategy if simulated, else 0."""
        if wanted is not None:
            return self.table.profile_index(wanted)
        return default_column(self.table.profiles)


class Runner:
    """One causal policy: ``decide(i)`` records its choice for entry row ``i`` in ``trace``."""

    name: str
    kind: str

    def __init__(self, ctx: RunContext, n: int) -> None:
        self.ctx = ctx
        self.trace = Trace.empty(n)
        self.info: dict[str, Any] = {}

    def run(self, rows: Sequence[int] | range) -> None:
        """Decide the entry ``rows``, in the order given (time order)."""
        for i in rows:
            self.decide(i)

    def decide(self, i: int) -> None:  # pragma: no cover - abstract
        """Choose a profile for entry row ``i`` and record it."""
        raise NotImplementedError


class FixedProfileRunner(Runner):
    """Runs a :class:`FixedProfileSpec`: the same profile for every entry."""

    kind = "static"

    def __init__(self, ctx: RunContext, n: int, spec: FixedProfileSpec) -> None:
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


class UniformRandomRunner(Runner):
    """Runs a :class:`UniformRandomSpec`: uniform over the regime's candidates."""

    kind = "random"

    def __init__(self, ctx: RunContext, n: int, spec: UniformRandomSpec, seed: int) -> None:
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


class FullInfoRunner(Runner):
    """Runs a :class:`FullInfoSpec` (or a :class:`WalkForwardStaticSpec`): a
    :class:`~freqtrade_metastrategy.fullinfo.FullInfoLearner` given every entry's outcome under
    every profile, released once all of them have closed (``close_ns <= signal_time``).

    A stood-aside entry is recorded as :data:`STAND_ASIDE` (its reward is 0 R) and is learned
    like any other. The learner receives the table's context features (none: side and regime
    only) in the context's unit.
    """

    kind = "full_info"

    def __init__(self, ctx: RunContext, n: int,
                 spec: FullInfoSpec | WalkForwardStaticSpec) -> None:
        super().__init__(ctx, n)
        self.name = spec.name
        if isinstance(spec, WalkForwardStaticSpec):
            self.kind = "walk_forward"
            cfg = spec.full_info()
        else:
            cfg = spec.config
        if cfg.default_profile not in ctx.table.profiles:
            cfg = replace(cfg, default_profile=ctx.table.profiles[ctx.default_profile(None)])
        table = ctx.table
        self.learner = FullInfoLearner(cfg, table.profiles, table.feature_names, DIRECTIONAL,
                                       MIRRORED)
        self.x = self.learner.design_matrix(table.features if table.feature_names else None,
                                            ctx.sides, ctx.regimes)
        self.release = table.close_ns
        #: per entry, the chosen (or stood-aside) profile's expected reward (NaN in warm-up)
        self.value = np.full(n, np.nan)
        self.info = {"config": cfg.to_dict(), "features": list(table.feature_names),
                     "default_profile": cfg.default_profile}

    def decide(self, i: int) -> None:
        ctx = self.ctx
        lrn = self.learner
        lrn.advance(int(ctx.table.signal_ns[i]))
        j, self.value[i], warm_up = lrn.choose(self.x[i])
        t = self.trace
        # the learner's profiles are the table's, in its order
        t.choice[i] = STAND_ASIDE if j < 0 else j
        t.probability[i] = 1.0
        t.heuristic[i] = warm_up
        t.seen[i] = lrn.released
        lrn.add((ctx.pairs[i], int(ctx.table.signal_ns[i]), ctx.sides[i]),
                int(self.release[i]), self.x[i], ctx.reward[i])


class LearnerRunner(Runner):
    """Runs a :class:`LearnerSpec`: a selector fed its own rewards once the trades close."""

    kind = "learner"

    def __init__(
        self, ctx: RunContext, n: int, spec: LearnerSpec, seed: int,
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
                trade_id=ctx.entry_ids[i], at=ns_to_datetime(exit_ns),
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
        t.probability[i] = d.probability
        t.explored[i] = d.is_exploration
        t.heuristic[i] = d.is_heuristic
        t.seen[i] = self.seen
        if bandit_stand_aside(d, self.spec.stand_aside_margin) is not None:
            t.choice[i] = STAND_ASIDE  # no trade: nothing to learn (bandit feedback)
            return
        t.choice[i] = j
        if self.learning:
            heapq.heappush(self.pending, (int(ctx.table.exit_ns[i, j]), i, j))

    def freeze(self, at_ns: int) -> None:
        """Apply the rewards known at ``at_ns``, then stop learning (the rest are dropped)."""
        self._release(at_ns)
        self.pending.clear()
        self.learning = False
        self.info["frozen_at"] = ns_to_datetime(at_ns).isoformat()

    def fork(self, name: str) -> LearnerRunner:
        """An independent copy (same Q-table, RNG state, pending queue and trace)."""
        store = MemoryStore()
        store.import_dict(self.selector.store.export_dict())
        sel = MetaStrategySelector(
            config=self.config, store=store, profiles=self.selector.profiles,
            log_level=logging.DEBUG,
        )
        sel.rng.setstate(self.selector.rng.getstate())
        twin = LearnerRunner(self.ctx, len(self.trace.choice), replace(self.spec, name=name),
                             0, selector=sel)
        twin.config = self.config
        twin.info = dict(self.info)
        twin.pending = list(self.pending)
        twin.seen = self.seen
        tr = self.trace
        twin.trace = Trace(tr.choice.copy(), tr.probability.copy(), tr.explored.copy(),
                           tr.heuristic.copy(), tr.seen.copy())
        return twin


def _config_dict(cfg: SelectorConfig) -> dict[str, Any]:
    return {
        "policy": cfg.policy, "epsilon": cfg.epsilon, "alpha": cfg.alpha,
        "min_samples": cfg.min_samples, "seed": cfg.seed, "exploit_min_q": cfg.exploit_min_q,
        "pool_across_symbols": cfg.pool_across_symbols, "policy_params": dict(cfg.policy_params),
    }


def _finite_or_none(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def make_runner(ctx: RunContext, n: int, spec: PolicySpec, seed: int) -> Runner:
    """The runner of ``spec`` over ``n`` entries (``seed``: the replay seed)."""
    if isinstance(spec, FixedProfileSpec):
        return FixedProfileRunner(ctx, n, spec)
    if isinstance(spec, UniformRandomSpec):
        return UniformRandomRunner(ctx, n, spec, seed)
    if isinstance(spec, WalkForwardStaticSpec | FullInfoSpec):
        return FullInfoRunner(ctx, n, spec)
    if isinstance(spec, LearnerSpec):
        return LearnerRunner(ctx, n, spec, seed)
    raise EvaluationError(f"unknown policy specification {spec!r}")


def build_runners(
    table: OutcomeTable,
    policies: Sequence[PolicySpec] | None,
    *,
    unit: str,
    seed: int,
    profiles: ProfileRegistry | None,
) -> tuple[RunContext, list[Runner]]:
    """The shared context and a fresh runner per spec (default: :func:`default_policies`)."""
    specs = list(default_policies(table.profiles) if policies is None else policies)
    check_policy_names([s.name for s in specs])
    ctx = RunContext(table, unit, profiles)
    n = len(table)
    return ctx, [make_runner(ctx, n, s, seed) for s in specs]
