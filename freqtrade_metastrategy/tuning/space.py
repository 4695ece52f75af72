"""The tunable parameters: their ranges, grids and what each one sets (the one home of both).

Every parameter is also a Freqtrade hyperopt parameter of
:class:`~freqtrade_metastrategy.hyper.MetaHyperMixin`, built from :data:`PARAMETERS` (same name,
range, grid and space), so ``freqtrade hyperopt --spaces regime learner fullinfo`` and
``freqtrade-metastrategy tune`` search the same box and write the same parameter file.

* ``regime``: the detector's thresholds (:class:`~freqtrade_metastrategy.regime.RegimeThresholds`;
  the 24 h volume in millions of quote currency). Their ranges do not overlap, so every sample
  keeps ``low < high < extreme``.
* ``learner``: the seeds' bandit (:class:`~freqtrade_metastrategy.selector.SelectorConfig`).
* ``fullinfo``: the full-information policy (:class:`~freqtrade_metastrategy.fullinfo.
  FullInfoConfig`).

:func:`search_space` picks the parameters that act on a config's policy (for example
``fullinfo_half_life`` only with the discounted estimator, the ridge's only with
``contextual_ridge``, ``learner_epsilon`` only with ``epsilon_greedy``) and applies range
overrides, checked before any trial runs. :meth:`SearchSpace.apply` turns one trial's values
into the thresholds and policy settings they mean.

>>> space = search_space(MetaStrategyConfig.from_dict({}))  # the default policy
>>> space.names  # doctest: +NORMALIZE_WHITESPACE
('regime_trend_adx', 'regime_trend_strength', 'regime_low_vol_atr_pct',
 'regime_high_vol_atr_pct', 'regime_extreme_vol_atr_pct', 'regime_illiquid_volume_musd',
 'fullinfo_half_life', 'fullinfo_min_signals', 'fullinfo_stand_aside_margin')
>>> search_space(MetaStrategyConfig.from_dict({}),
...              overrides={"regime_low_vol_atr_pct": (0.01, 0.03)})
Traceback (most recent call last):
...
freqtrade_metastrategy.errors.ConfigError: --param regime_low_vol_atr_pct=0.01:0.03: overlaps \
regime_high_vol_atr_pct (0.025:0.055), so a trial could have low >= high; keep the top of \
regime_low_vol_atr_pct below the bottom of regime_high_vol_atr_pct
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from freqtrade_metastrategy.config import MetaStrategyConfig
from freqtrade_metastrategy.errors import ConfigError
from freqtrade_metastrategy.fullinfo import FullInfoConfig
from freqtrade_metastrategy.regime import RegimeThresholds
from freqtrade_metastrategy.selector import SelectorConfig

__all__ = [
    "ORDERED",
    "PARAMETERS",
    "SPACES",
    "Parameter",
    "SearchSpace",
    "Settings",
    "acts_on",
    "configured_value",
    "search_space",
]

#: The parameter spaces (Freqtrade's ``--spaces`` names).
SPACES: Final[tuple[str, ...]] = ("regime", "learner", "fullinfo")


@dataclass(frozen=True)
class Parameter:
    """One tunable parameter.

    ``low``/``high``: the range (both ends included); ``decimals``: the grid of a float
    parameter (``None`` = an integer); ``log``: sampled on a log scale by ``tune``;
    ``field``: the settings field it sets, ``scale``: field value = parameter value x scale.
    """

    name: str
    space: str
    field: str
    low: float
    high: float
    default: float
    decimals: int | None = None
    log: bool = False
    scale: float = 1.0

    @property
    def is_int(self) -> bool:
        return self.decimals is None

    @property
    def step(self) -> float:
        """The grid's step (1 for an integer)."""
        return 1.0 if self.decimals is None else 10.0 ** -self.decimals

    def snap(self, value: float) -> float:
        """``value`` on the parameter's grid (what Freqtrade's parameter would hold)."""
        return float(round(value)) if self.is_int else round(float(value), self.decimals)

    def sampled(self, raw: float) -> float:
        """A value ``tune`` sampled over the range widened by half a step at each end, snapped
        to the grid and kept in the range: what the trial evaluates.

        >>> p = PARAMETERS["learner_min_samples"]
        >>> p.sampled(0.5), p.sampled(1.49), p.sampled(1.51), p.sampled(20.4999)
        (1.0, 1.0, 2.0, 20.0)
        """
        return float(min(max(self.snap(raw), self.low), self.high))

    def with_range(self, low: float, high: float) -> Parameter:
        return dataclasses.replace(self, low=float(low), high=float(high))

    def to_dict(self) -> dict[str, Any]:
        return {"space": self.space, "low": self.low, "high": self.high,
                "int": self.is_int, "decimals": self.decimals, "log": self.log}


def _p(name: str, field: str, low: float, high: float, default: float, decimals: int | None,
       *, log: bool = False, scale: float = 1.0) -> Parameter:
    return Parameter(name, name.split("_", 1)[0], field, low, high, default, decimals, log, scale)


_FI = FullInfoConfig()
#: Every tunable parameter (defaults: the seeds' thresholds and bandit, the default policy's
#: full-information settings).
PARAMETERS: Final[Mapping[str, Parameter]] = {p.name: p for p in (
    _p("regime_trend_adx", "trend_adx_threshold", 15.0, 40.0, 25.0, 1),
    _p("regime_trend_strength", "trend_strength_threshold", 0.10, 0.60, 0.30, 2),
    _p("regime_low_vol_atr_pct", "low_vol_atr_pct_threshold", 0.005, 0.020, 0.015, 3),
    _p("regime_high_vol_atr_pct", "high_vol_atr_pct_threshold", 0.025, 0.055, 0.040, 3),
    _p("regime_extreme_vol_atr_pct", "extreme_vol_atr_pct_threshold", 0.060, 0.120, 0.060, 3),
    _p("regime_illiquid_volume_musd", "illiquid_volume_threshold", 0.0, 10.0, 2.0, 1,
       scale=1e6),
    _p("learner_epsilon", "epsilon", 0.0, 0.30, 0.10, 2),
    _p("learner_alpha", "alpha", 0.05, 0.50, 0.20, 2),
    _p("learner_min_samples", "min_samples", 1, 20, 5, None),
    _p("fullinfo_half_life", "half_life", 50, 5000, _FI.half_life, 0, log=True),
    _p("fullinfo_alpha", "alpha", 0.01, 0.50, _FI.alpha, 2),
    _p("fullinfo_min_signals", "min_signals", 20, 1000, _FI.min_signals, None, log=True),
    _p("fullinfo_stand_aside_margin", "stand_aside_margin", -0.20, 0.30,
       _FI.stand_aside_margin, 2),
    _p("fullinfo_switch_margin", "switch_margin", 0.0, 0.30, _FI.switch_margin, 2),
    _p("fullinfo_ridge_lambda", "ridge_lambda", 1, 1000, _FI.ridge_lambda, 0, log=True),
)}
#: Ranges that must stay ordered (lower parameter, upper parameter).
ORDERED: Final[tuple[tuple[str, str], ...]] = (
    ("regime_low_vol_atr_pct", "regime_high_vol_atr_pct"),
    ("regime_high_vol_atr_pct", "regime_extreme_vol_atr_pct"),
)


def acts_on(name: str, cfg: MetaStrategyConfig) -> bool:
    """Whether parameter ``name`` changes what ``cfg``'s policy decides (``learner_epsilon``
    only drives ``epsilon_greedy``, and not when ``policy_params.epsilon`` overrides it)."""
    p = PARAMETERS[name]
    if p.space == "regime":
        return True
    fi = cfg.full_info
    if p.space == "learner":
        if fi is not None:
            return False
        sel = cfg.selector
        return name != "learner_epsilon" or (sel.policy == "epsilon_greedy"
                                             and "epsilon" not in sel.policy_params)
    if fi is None:
        return False
    return {
        "fullinfo_half_life": fi.estimator == "discounted",
        "fullinfo_alpha": fi.estimator == "ema",
        "fullinfo_min_signals": True,
        "fullinfo_stand_aside_margin": fi.stand_aside,
        "fullinfo_switch_margin": fi.policy == "contextual_ridge",
        "fullinfo_ridge_lambda": fi.policy == "contextual_ridge",
    }[name]


@dataclass(frozen=True)
class Settings:
    """What one trial's values mean: the thresholds and the policy's settings."""

    thresholds: RegimeThresholds
    selector: SelectorConfig
    full_info: FullInfoConfig | None


@dataclass(frozen=True)
class SearchSpace:
    """The parameters a ``tune`` run searches, for one config (see :func:`search_space`)."""

    parameters: tuple[Parameter, ...]
    base: MetaStrategyConfig

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.parameters)

    def signature(self) -> dict[str, Any]:
        """What a study records to refuse a later run with a different space."""
        return {p.name: p.to_dict() for p in self.parameters}

    def defaults(self) -> dict[str, float]:
        """Each parameter's value in the base config (the trial ``tune`` compares against)."""
        return {p.name: configured_value(self.base, p.name) for p in self.parameters}

    def snapped(self, values: Mapping[str, float]) -> dict[str, float]:
        """``values`` on their parameters' grids (as a trial evaluates them and Freqtrade's
        parameters hold them; names outside the space unchanged)."""
        grid = {p.name: p for p in self.parameters}
        return {k: grid[k].sampled(v) if k in grid else float(v) for k, v in values.items()}

    def apply(self, values: Mapping[str, float]) -> Settings:
        """The settings of ``values`` (missing parameters keep the base config's value).

        :raises ConfigError: a value out of its range (this space's, overrides included), or
            an unknown name.
        """
        ranges = {p.name: p for p in self.parameters}
        for name, value in values.items():
            p = ranges.get(name) or PARAMETERS.get(name)
            if p is None:
                raise ConfigError(name, f"unknown parameter; known: {', '.join(PARAMETERS)}")
            if not (p.low - 1e-12 <= float(value) <= p.high + 1e-12):
                raise ConfigError(name, f"{value} is outside its range {p.low:g}..{p.high:g}")
        return settings_of(self.base, values)


def configured_value(cfg: MetaStrategyConfig, name: str) -> float:
    """Parameter ``name``'s value in ``cfg`` (in the parameter's unit; the full-information
    defaults when ``cfg`` selects a bandit)."""
    p = PARAMETERS[name]
    if p.space == "regime":
        source: object = cfg.thresholds
    elif p.space == "learner":
        source = cfg.selector
    else:
        source = cfg.full_info if cfg.full_info is not None else _FI
    return float(getattr(source, p.field)) / p.scale


def settings_of(cfg: MetaStrategyConfig, values: Mapping[str, float]) -> Settings:
    """``cfg``'s thresholds and policy settings with ``values`` (parameter name -> value)."""
    by_space: dict[str, dict[str, Any]] = {s: {} for s in SPACES}
    for name, value in values.items():
        p = PARAMETERS[name]
        v = p.snap(value) * p.scale
        by_space[p.space][p.field] = int(v) if p.is_int and p.scale == 1.0 else v
    try:
        thresholds = dataclasses.replace(cfg.thresholds, **by_space["regime"])
        selector = dataclasses.replace(cfg.selector, **by_space["learner"])
        full_info = (None if cfg.full_info is None
                     else dataclasses.replace(cfg.full_info, **by_space["fullinfo"]))
    except ConfigError as exc:
        raise ConfigError(exc.field, f"{exc.message} (parameter values "
                          f"{dict(values)})") from None
    return Settings(thresholds, selector, full_info)


def _parse_override(name: str, low: float, high: float) -> Parameter:
    p = PARAMETERS.get(name)
    if p is None:
        raise ConfigError(f"--param {name}", f"unknown parameter; known: {', '.join(PARAMETERS)}")
    text = f"--param {name}={low:g}:{high:g}"
    if not (math.isfinite(low) and math.isfinite(high) and low < high):
        raise ConfigError(text, "needs LOW < HIGH, both finite")
    if p.log and low <= 0:
        raise ConfigError(text, "is searched on a log scale: LOW must be > 0")
    if p.is_int and (low != round(low) or high != round(high)):
        raise ConfigError(text, "is an integer parameter: give whole numbers")
    if not p.is_int and (p.snap(low) != low or p.snap(high) != high):
        raise ConfigError(text, f"is on a grid of {p.decimals} decimal(s) (Freqtrade's "
                          "parameter): give LOW and HIGH on it")
    return p.with_range(low, high)


def search_space(
    cfg: MetaStrategyConfig,
    *,
    overrides: Mapping[str, tuple[float, float]] | None = None,
    spaces: tuple[str, ...] = SPACES,
) -> SearchSpace:
    """The parameters that act on ``cfg``'s policy in ``spaces``, with range ``overrides``.

    :raises ConfigError: an unknown parameter or space, a parameter that does not act on the
        policy, an empty or reversed range, or ranges that let ordered thresholds cross.
    """
    for s in spaces:
        if s not in SPACES:
            raise ConfigError(f"--spaces {s}", f"unknown space; known: {', '.join(SPACES)}")
    params = {n: p for n, p in PARAMETERS.items() if p.space in spaces and acts_on(n, cfg)}
    for name, (low, high) in (overrides or {}).items():
        p = _parse_override(name, float(low), float(high))
        if name not in params:
            why = (f"is in space {p.space!r}, not searched (--spaces {' '.join(spaces)})"
                   if p.space not in spaces else
                   f"has no effect on metastrategy.policy "
                   f"{cfg.full_info.policy if cfg.full_info else cfg.selector.policy!r} "
                   "with this config (its estimator, stand_aside, policy_params)")
            raise ConfigError(f"--param {name}", f"{why}; remove it")
        params[name] = p
    given = overrides or {}
    for lo_name, hi_name in ORDERED:
        lo, hi = params.get(lo_name), params.get(hi_name)
        if lo is None or hi is None or lo.high < hi.low:
            continue
        changed, other = (lo, hi) if lo_name in given else (hi, lo)
        raise ConfigError(
            f"--param {changed.name}={changed.low:g}:{changed.high:g}",
            f"overlaps {other.name} ({other.low:g}:{other.high:g}), so a trial could have "
            f"low >= high; keep the top of {lo_name} below the bottom of {hi_name}")
    return SearchSpace(tuple(params.values()), cfg)
