"""What to replay: the specifications of the causal policies the evaluation compares.

A spec is plain data (a name and parameters); :mod:`.runners` turns each one into a runner.
They are not :class:`~freqtrade_metastrategy.policies.Policy` objects (the bandit algorithms a
learner uses), hence the ``...Spec`` names.

* :class:`FixedProfileSpec` -- always the same profile (``static:<profile>``), in every regime.
* :class:`UniformRandomSpec` -- uniform over the regime's candidate profiles (``random``).
* :class:`LearnerSpec` -- a :class:`~freqtrade_metastrategy.selector.MetaStrategySelector`
  built from a :class:`~freqtrade_metastrategy.selector.SelectorConfig`.
  :data:`DEFAULT_LEARNERS`: ``eps_greedy`` (the seeds' default: epsilon 0.10, alpha 0.20,
  ``min_samples`` 5, Q-table keyed by (pair, regime), sparse cells read pooled over pairs as
  the project does by default), ``eps_greedy_q040`` (plus the seeds' ``exploit_min_q=0.40``
  rule -- in R, so it only makes sense for ``r_atr``/``r_risk``), ``eps_greedy_nopool`` (no
  pooling: a (pair, regime) cell uses only its own rewards, the seeds' literal rule),
  ``ucb1`` and ``thompson`` (their project defaults).
* :class:`WalkForwardStaticSpec` -- at each entry, the single profile with the best total
  reward over the entries closed so far (a :class:`FullInfoSpec` with a running mean, no
  warm-up and no stand-aside).
* :class:`FullInfoSpec` -- a full-information policy
  (:class:`~freqtrade_metastrategy.fullinfo.FullInfoLearner`, the same code the strategy runs)
  with its :class:`~freqtrade_metastrategy.fullinfo.FullInfoConfig`: every entry's outcome
  under every profile is learned once all of them have closed; it may stand aside.
  :data:`FULL_INFO_CANDIDATES` are the ones ``evaluate`` replays by default.

The names of the hindsight baselines (:data:`~.hindsight.HINDSIGHT`) are reserved.

>>> [p.name for p in default_policies(["scalp", "moderate"], learners={}, full_info={})]
['static:scalp', 'static:moderate', 'random', 'walk_forward_static']
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Final

from freqtrade_metastrategy.config import MetaStrategyConfig
from freqtrade_metastrategy.errors import EvaluationError
from freqtrade_metastrategy.evaluation.hindsight import HINDSIGHT
from freqtrade_metastrategy.fullinfo import FullInfoConfig
from freqtrade_metastrategy.selector import SelectorConfig

__all__ = [
    "CONFIGURED",
    "DEFAULT_LEARNERS",
    "DEFAULT_POLICY",
    "FULL_INFO_CANDIDATES",
    "FixedProfileSpec",
    "FullInfoSpec",
    "LearnerSpec",
    "PolicySpec",
    "UniformRandomSpec",
    "WalkForwardStaticSpec",
    "check_policy_names",
    "configured_spec",
    "default_policies",
    "describe",
]

#: The learners replayed by default (name -> config; seeds are filled in by the replay).
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


@dataclass(frozen=True)
class FixedProfileSpec:
    """Always ``profile``."""

    profile: str

    @property
    def name(self) -> str:
        return f"static:{self.profile}"


@dataclass(frozen=True)
class UniformRandomSpec:
    """Uniform over the regime's candidate profiles."""

    name: str = "random"


@dataclass(frozen=True)
class LearnerSpec:
    """A :class:`MetaStrategySelector` with ``config`` (seed filled in if ``None``);
    ``stand_aside_margin``: the bandit's stand-aside
    (:func:`~freqtrade_metastrategy.selector.bandit_stand_aside`), None = never."""

    name: str
    config: SelectorConfig = field(default_factory=SelectorConfig)
    stand_aside_margin: float | None = None


@dataclass(frozen=True)
class WalkForwardStaticSpec:
    """The best profile on the closed entries so far (full information), re-chosen per entry.

    ``default_profile``: used before any entry has closed and kept on ties (``None``: the
    default strategy of :class:`SelectorConfig` when the table has it, else the first profile).
    """

    name: str = "walk_forward_static"
    default_profile: str | None = None


    def full_info(self) -> FullInfoConfig:
        """The same policy as a full-information configuration."""
        cfg = FullInfoConfig(policy="walk_forward_static", estimator="mean", min_signals=1,
                             switch_margin=0.0, stand_aside=False)
        if self.default_profile is not None:
            cfg = replace(cfg, default_profile=self.default_profile)
        return cfg


@dataclass(frozen=True)
class FullInfoSpec:
    """A :class:`~freqtrade_metastrategy.fullinfo.FullInfoLearner` with ``config``."""

    name: str
    config: FullInfoConfig = field(default_factory=FullInfoConfig)


#: The full-information policies ``evaluate`` replays by default, fixed before the
#: out-of-sample evidence was looked at (README, "Which policy is the default"): the memory
#: (running mean, discounted mean with a half-life of 1,000 signals), context (none, or the
#: ridge on the signal candle's context) and the stand-aside gate (off, or at 0 R).
FULL_INFO_CANDIDATES: Final[Mapping[str, FullInfoConfig]] = {
    "wfs_mean": FullInfoConfig(policy="walk_forward_static", estimator="mean",
                               stand_aside=False),
    "wfs_mean+aside": FullInfoConfig(policy="walk_forward_static", estimator="mean"),
    "wfs_disc": FullInfoConfig(policy="walk_forward_static", stand_aside=False),
    "wfs_disc+aside": FullInfoConfig(policy="walk_forward_static"),
    "ridge": FullInfoConfig(policy="contextual_ridge", stand_aside=False),
    "ridge+aside": FullInfoConfig(policy="contextual_ridge"),
}


PolicySpec = (FixedProfileSpec | UniformRandomSpec | LearnerSpec | WalkForwardStaticSpec
              | FullInfoSpec)

#: The candidate the default-policy rule chose (:mod:`.evidence`); its configuration is the
#: product's default (:class:`~freqtrade_metastrategy.fullinfo.FullInfoConfig` ``()``).
DEFAULT_POLICY: Final = "wfs_disc+aside"
#: The name ``evaluate`` gives the policy the config selects.
CONFIGURED: Final = "configured"


def configured_spec(ms_config: MetaStrategyConfig) -> PolicySpec:
    """The policy a ``metastrategy`` config selects, as ``evaluate`` replays it."""
    if ms_config.full_info is not None:
        return FullInfoSpec(CONFIGURED, ms_config.full_info)
    return LearnerSpec(CONFIGURED, ms_config.selector, ms_config.bandit_stand_aside)


def describe(spec: PolicySpec) -> dict[str, object]:
    """A JSON-ready description of ``spec`` (for reports)."""
    if isinstance(spec, FullInfoSpec):
        return {"kind": "full_info", **spec.config.to_dict()}
    if isinstance(spec, LearnerSpec):
        c = spec.config
        return {"kind": "learner", "policy": c.policy, "epsilon": c.epsilon, "alpha": c.alpha,
                "min_samples": c.min_samples, "seed": c.seed,
                "stand_aside_margin": spec.stand_aside_margin}
    return {"kind": type(spec).__name__}


def default_policies(
    profiles: Sequence[str],
    *,
    learners: Mapping[str, SelectorConfig] | None = None,
    full_info: Mapping[str, FullInfoConfig] | None = None,
) -> list[PolicySpec]:
    """Every static profile, ``random``, ``walk_forward_static``, the learners and the
    full-information policies (default: :data:`DEFAULT_LEARNERS`, :data:`FULL_INFO_CANDIDATES`
    restricted to configurations whose default profile is simulated)."""
    out: list[PolicySpec] = [FixedProfileSpec(p) for p in profiles]
    out.append(UniformRandomSpec())
    out.append(WalkForwardStaticSpec())
    for name, cfg in (DEFAULT_LEARNERS if learners is None else learners).items():
        out.append(LearnerSpec(name, cfg))
    for name, fcfg in (FULL_INFO_CANDIDATES if full_info is None else full_info).items():
        out.append(FullInfoSpec(name, fcfg))
    return out


def check_policy_names(names: Sequence[str]) -> None:
    """Refuse a policy name used twice or reserved for a hindsight baseline."""
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise EvaluationError(f"policy name {name!r} is used twice")
        if name in HINDSIGHT:
            raise EvaluationError(f"policy name {name!r} is reserved for a hindsight baseline")
        seen.add(name)
