"""TP/SL profiles: immutable exit plans expressed in R, where 1R = the ATR of the signal candle.

The seven built-in profiles carry the R levels of the seeds (quantum_trader's
``strategy_profiles.py``). Users override fields of a built-in profile or add their own from
the ``metastrategy.profiles`` section of the Freqtrade config (a plain dict, no code):

>>> reg = ProfileRegistry.from_config({
...     "scalp": {"r_tp1": 1.3},
...     "my_plan": {"base": "moderate", "r_sl": 1.2, "description": "moderate, wider stop"},
... })
>>> reg["scalp"].r_tp1, reg["my_plan"].r_sl, reg["my_plan"].r_tp3
(1.3, 1.2, 5.5)

>>> p = get_strategy_profile(StrategyID.ULTRA_AGGRESSIVE)
>>> print(f"TP1: {p.r_tp1}R, TP2: {p.r_tp2}R")
TP1: 3.0R, TP2: 5.0R

Breakeven and trailing rules are tied to the take-profit fills, and their distances are in R:

* after the ``breakeven_after_tp``-th take-profit has filled (built-ins: TP1) the stop moves to
  the entry price plus ``breakeven_offset_r`` R (built-ins: 0, the entry price itself);
* after the ``trail_after_tp``-th take-profit has filled (built-ins: TP2) the stop trails
  ``trail_distance_r`` R behind the best price since entry (the seeds' distances);
* 0 disables a rule. The stop never moves back.

Tying the rules to fills rather than to price levels is deliberate: a fill is a fact every run
mode (backtest, live, the evaluation simulator) sees the same way, whereas "price touched X R"
inside one candle is ambiguous in a backtest. (The seeds' ``r_be_trigger`` and
``trail_activation_r`` price levels are therefore not carried over.)
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, fields, replace
from enum import Enum, StrEnum
from typing import Any

from freqtrade_metastrategy.errors import ConfigError


class StrategyID(StrEnum):
    """Identifiers of the seven built-in profiles (user profiles use plain strings)."""

    DEFENSIVE = "defensive"
    MODERATE = "moderate"
    MODERATE_AGGRESSIVE = "moderate_aggressive"
    BALANCED_AGGRESSIVE = "balanced_aggressive"
    ULTRA_AGGRESSIVE = "ultra_aggressive"
    SCALP = "scalp"
    TREND_RIDER = "trend_rider"



class AggressivenessLevel(StrEnum):
    VERY_LOW = "very_low"
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    VERY_HIGH = "very_high"

    @property
    def rank(self) -> int:
        return list(AggressivenessLevel).index(self)


DEFAULT_STRATEGY: str = StrategyID.ULTRA_AGGRESSIVE.value
_ID_RE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_SUM_TOL = 1e-9


@dataclass(frozen=True, slots=True)
class StrategyProfile:
    """An immutable exit plan. All levels are in R (multiples of the entry ATR).

    ``expected_win_rate`` and ``expected_risk_reward`` are the seeds' *assumptions*, kept for
    documentation and display only: nothing in the engine relies on them except the fallback
    heuristic, and the evaluation report measures the real numbers.
    """

    strategy_id: str
    name: str
    description: str
    r_sl: float
    r_tp1: float
    r_tp2: float
    r_tp3: float
    partial_close_tp1: float = 0.5
    partial_close_tp2: float = 0.3
    partial_close_tp3: float = 0.2
    breakeven_after_tp: int = 1
    breakeven_offset_r: float = 0.0
    trail_after_tp: int = 2
    trail_distance_r: float = 1.0
    aggressiveness: AggressivenessLevel = AggressivenessLevel.MEDIUM
    suitable_for_trending: bool = True
    suitable_for_ranging: bool = True
    suitable_for_high_vol: bool = True
    suitable_for_low_vol: bool = True
    expected_win_rate: float = 0.5
    expected_risk_reward: float = 1.5

    def __post_init__(self) -> None:
        _validate(self)

    @property
    def tp_levels(self) -> tuple[float, float, float]:
        return (self.r_tp1, self.r_tp2, self.r_tp3)

    @property
    def partial_fractions(self) -> tuple[float, float, float]:
        return (self.partial_close_tp1, self.partial_close_tp2, self.partial_close_tp3)

    def to_tpsl_config(self) -> dict[str, float]:
        """The seeds' TpslConfig-compatible dict (ATR multiples and partial fractions).

        >>> cfg = get_strategy_profile("defensive").to_tpsl_config()
        >>> cfg["atr_mult_sl"], cfg["atr_mult_tp3"], cfg["trail_dist_mult"]
        (1.0, 4.0, 0.8)
        """
        return {
            "atr_mult_sl": self.r_sl,
            "atr_mult_tp1": self.r_tp1,
            "atr_mult_tp2": self.r_tp2,
            "atr_mult_tp3": self.r_tp3,
            "trail_dist_mult": self.trail_distance_r,
            "partial_close_tp1": self.partial_close_tp1,
            "partial_close_tp2": self.partial_close_tp2,
            "partial_close_tp3": self.partial_close_tp3,
        }

    def scaled(self, factor: float) -> StrategyProfile:
        """The same plan with every R distance multiplied by ``factor`` (fractions unchanged).

        >>> get_strategy_profile("scalp").scaled(2.0).tp_levels
        (2.4, 3.6, 5.0)
        """
        if not (math.isfinite(factor) and factor > 0):
            raise ConfigError("factor", f"must be a positive finite number, got {factor!r}")
        return replace(
            self,
            r_sl=self.r_sl * factor,
            r_tp1=self.r_tp1 * factor,
            r_tp2=self.r_tp2 * factor,
            r_tp3=self.r_tp3 * factor,
            breakeven_offset_r=self.breakeven_offset_r * factor,
            trail_distance_r=self.trail_distance_r * factor,
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in fields(self):
            v = getattr(self, f.name)
            out[f.name] = v.value if isinstance(v, Enum) else v
        return out


_FLOAT_FIELDS = (
    "r_sl", "r_tp1", "r_tp2", "r_tp3", "partial_close_tp1", "partial_close_tp2",
    "partial_close_tp3", "breakeven_offset_r", "trail_distance_r",
    "expected_win_rate", "expected_risk_reward",
)
_BOOL_FIELDS = (
    "suitable_for_trending", "suitable_for_ranging", "suitable_for_high_vol",
    "suitable_for_low_vol",
)
_FIELD_NAMES = tuple(f.name for f in fields(StrategyProfile))


def _validate(p: StrategyProfile) -> None:  # noqa: C901 - a flat list of checks
    where = f"metastrategy.profiles.{p.strategy_id}"
    if not isinstance(p.strategy_id, str) or not _ID_RE.match(p.strategy_id):
        raise ConfigError(
            "metastrategy.profiles",
            f"profile id {p.strategy_id!r} must match [a-z][a-z0-9_]* (at most 64 chars)",
        )
    for name in _FLOAT_FIELDS:
        v = getattr(p, name)
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
            raise ConfigError(f"{where}.{name}", f"must be a finite number, got {v!r}")
    for name in _BOOL_FIELDS:
        if not isinstance(getattr(p, name), bool):
            raise ConfigError(f"{where}.{name}", f"must be true or false, got {getattr(p, name)!r}")
    if not isinstance(p.aggressiveness, AggressivenessLevel):
        raise ConfigError(f"{where}.aggressiveness", f"invalid value {p.aggressiveness!r}")
    if p.r_sl <= 0:
        raise ConfigError(f"{where}.r_sl", f"must be > 0 (stop distance in R), got {p.r_sl}")
    if p.r_tp1 <= 0:
        raise ConfigError(f"{where}.r_tp1", f"must be > 0, got {p.r_tp1}")
    if not p.r_tp1 < p.r_tp2:
        raise ConfigError(f"{where}.r_tp2", f"must be > r_tp1 ({p.r_tp1}), got {p.r_tp2}")
    if not p.r_tp2 < p.r_tp3:
        raise ConfigError(f"{where}.r_tp3", f"must be > r_tp2 ({p.r_tp2}), got {p.r_tp3}")
    for i, frac in enumerate(p.partial_fractions, start=1):
        if not 0.0 < frac <= 1.0:
            raise ConfigError(
                f"{where}.partial_close_tp{i}", f"must be in (0, 1], got {frac}"
            )
    total = sum(p.partial_fractions)
    if abs(total - 1.0) > _SUM_TOL:
        raise ConfigError(
            f"{where}.partial_close_tp3",
            f"partial_close_tp1 + tp2 + tp3 must sum to 1, got {total:.6g}",
        )
    for name in ("breakeven_after_tp", "trail_after_tp"):
        v = getattr(p, name)
        if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= 2:
            raise ConfigError(
                f"{where}.{name}", f"must be 0 (never), 1 (after TP1) or 2 (after TP2), got {v!r}"
            )
    if not 0 <= p.breakeven_offset_r < p.r_tp1:
        raise ConfigError(
            f"{where}.breakeven_offset_r", f"must be in [0, r_tp1), got {p.breakeven_offset_r}"
        )
    if p.trail_distance_r <= 0:
        raise ConfigError(f"{where}.trail_distance_r", f"must be > 0, got {p.trail_distance_r}")
    if not 0.0 <= p.expected_win_rate <= 1.0:
        raise ConfigError(
            f"{where}.expected_win_rate", f"must be in [0, 1], got {p.expected_win_rate}"
        )


def _builtin(
    sid: StrategyID,
    name: str,
    description: str,
    levels: tuple[float, float, float, float],
    partials: tuple[float, float, float],
    trail_distance: float,
    aggressiveness: AggressivenessLevel,
    suitable: tuple[bool, bool, bool, bool],
    expected: tuple[float, float],
) -> StrategyProfile:
    sl, tp1, tp2, tp3 = levels
    return StrategyProfile(
        strategy_id=sid.value,
        name=name,
        description=description,
        r_sl=sl,
        r_tp1=tp1,
        r_tp2=tp2,
        r_tp3=tp3,
        partial_close_tp1=partials[0],
        partial_close_tp2=partials[1],
        partial_close_tp3=partials[2],
        trail_distance_r=trail_distance,
        aggressiveness=aggressiveness,
        suitable_for_trending=suitable[0],
        suitable_for_ranging=suitable[1],
        suitable_for_high_vol=suitable[2],
        suitable_for_low_vol=suitable[3],
        expected_win_rate=expected[0],
        expected_risk_reward=expected[1],
    )


_A = AggressivenessLevel
_STD = (0.5, 0.3, 0.2)
#: The seven built-in profiles. R levels as in DEVELOPERS.md; partial fractions, trailing
#: distances, aggressiveness, suitability and expectations as in the seeds, except that
#: ``defensive`` is also suitable for high volatility (the per-regime heuristic sends
#: volatile markets to it, so it must be a candidate there).
BUILTIN_PROFILES: Mapping[str, StrategyProfile] = {
    p.strategy_id: p
    for p in (
        _builtin(StrategyID.DEFENSIVE, "Defensive",
                 "Conservative: tight stop, quick profit taking",
                 (1.0, 1.5, 2.5, 4.0), _STD, 0.8, _A.VERY_LOW,
                 (True, True, True, True), (0.55, 1.8)),
        _builtin(StrategyID.MODERATE, "Moderate", "Balanced risk/reward",
                 (1.0, 2.0, 3.5, 5.5), _STD, 1.0, _A.LOW,
                 (True, True, True, True), (0.52, 2.3)),
        _builtin(StrategyID.MODERATE_AGGRESSIVE, "Moderate Aggressive",
                 "Above moderate, good risk/reward",
                 (1.0, 2.5, 4.0, 6.0), _STD, 1.0, _A.MEDIUM,
                 (True, False, True, False), (0.50, 3.0)),
        _builtin(StrategyID.BALANCED_AGGRESSIVE, "Balanced Aggressive",
                 "Wider stop, bigger targets",
                 (1.5, 4.0, 6.0, 10.0), _STD, 1.2, _A.HIGH,
                 (True, False, True, False), (0.48, 4.5)),
        _builtin(StrategyID.ULTRA_AGGRESSIVE, "Ultra Aggressive",
                 "Maximum profit targets with a tight stop (the seeds' default)",
                 (1.0, 3.0, 5.0, 8.0), _STD, 1.0, _A.VERY_HIGH,
                 (True, False, True, False), (0.45, 5.0)),
        _builtin(StrategyID.SCALP, "Scalp", "Quick scalps for range-bound markets",
                 (0.8, 1.2, 1.8, 2.5), (0.6, 0.3, 0.1), 0.6, _A.VERY_LOW,
                 (False, True, False, True), (0.60, 1.5)),
        _builtin(StrategyID.TREND_RIDER, "Trend Rider",
                 "Wide stop and large targets to ride strong trends",
                 (2.0, 5.0, 8.0, 12.0), (0.3, 0.3, 0.4), 1.5, _A.VERY_HIGH,
                 (True, False, True, False), (0.40, 6.5)),
    )
}


def get_strategy_profile(strategy_id: StrategyID | str) -> StrategyProfile:
    """A built-in profile by id (enum member or string, case-insensitive)."""
    key = strategy_id.value if isinstance(strategy_id, StrategyID) else str(strategy_id).lower()
    try:
        return BUILTIN_PROFILES[key]
    except KeyError:
        raise ConfigError(
            "strategy_id", f"unknown profile {strategy_id!r}; known: {', '.join(BUILTIN_PROFILES)}"
        ) from None


def get_all_strategy_ids() -> list[StrategyID]:
    return list(StrategyID)


def get_default_strategy() -> StrategyProfile:
    return BUILTIN_PROFILES[DEFAULT_STRATEGY]


def _coerce(where: str, name: str, value: Any) -> Any:
    if name == "aggressiveness":
        try:
            return AggressivenessLevel(value)
        except ValueError:
            allowed = ", ".join(a.value for a in AggressivenessLevel)
            raise ConfigError(
                f"{where}.{name}", f"must be one of {allowed}, got {value!r}"
            ) from None
    if name in _FLOAT_FIELDS and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def _build_profile(
    pid: object, spec: object, profiles: Mapping[str, StrategyProfile], where: str
) -> StrategyProfile:
    """One profile of the ``profiles`` config section (see ProfileRegistry.from_config)."""
    if not isinstance(spec, Mapping):
        raise ConfigError(where, "must be an object {field: value}")
    if not isinstance(pid, str) or not _ID_RE.match(pid):
        raise ConfigError(where, "profile id must match [a-z][a-z0-9_]* (<= 64 chars)")
    values = dict(spec)
    base_id = values.pop("base", None)
    for key in values:
        if key not in _FIELD_NAMES or key == "strategy_id":
            allowed = ", ".join(n for n in _FIELD_NAMES if n != "strategy_id")
            raise ConfigError(f"{where}.{key}", f"unknown field; allowed: base, {allowed}")
    values = {k: _coerce(where, k, v) for k, v in values.items()}
    if base_id is not None:
        if base_id not in profiles:
            raise ConfigError(f"{where}.base", f"unknown profile {base_id!r}")
        start: StrategyProfile | None = profiles[base_id]
    else:
        start = profiles.get(pid)
    if start is not None:
        if pid not in profiles:
            values.setdefault("name", pid)
        return replace(start, strategy_id=pid, **values)
    missing = [k for k in ("r_sl", "r_tp1", "r_tp2", "r_tp3") if k not in values]
    if missing:
        raise ConfigError(
            f"{where}.{missing[0]}",
            "required for a new profile (or give `base`: an existing profile id)",
        )
    values.setdefault("name", pid)
    values.setdefault("description", "user profile")
    return StrategyProfile(strategy_id=pid, **values)


class ProfileRegistry(Mapping[str, StrategyProfile]):
    """An immutable, validated set of profiles keyed by id (built-ins plus user profiles)."""

    def __init__(self, profiles: Mapping[str, StrategyProfile] | None = None) -> None:
        self._profiles: dict[str, StrategyProfile] = dict(
            BUILTIN_PROFILES if profiles is None else profiles
        )
        for key, p in self._profiles.items():
            if key != p.strategy_id:
                raise ConfigError(f"metastrategy.profiles.{key}", "key differs from strategy_id")

    @classmethod
    def from_config(
        cls, config: Mapping[str, Any] | None, *, prefix: str = "metastrategy.profiles"
    ) -> ProfileRegistry:
        """Built-ins updated with ``config``: ``{id: {field: value, ...}}``.

        An existing id overrides the given fields; a new id needs ``base`` (an existing
        profile to start from) or at least ``r_sl``, ``r_tp1``, ``r_tp2`` and ``r_tp3``.
        Unknown fields are rejected with the list of allowed ones.
        """
        profiles = dict(BUILTIN_PROFILES)
        if config is None:
            return cls(profiles)
        if not isinstance(config, Mapping):
            raise ConfigError(prefix, "must be an object {profile_id: {field: value}}")
        for pid, spec in config.items():
            profiles[pid] = _build_profile(pid, spec, profiles, f"{prefix}.{pid}")
        return cls(profiles)

    def __getitem__(self, key: str) -> StrategyProfile:
        try:
            return self._profiles[str(key)]
        except KeyError:
            raise KeyError(
                f"unknown profile {key!r}; known: {', '.join(self._profiles)}"
            ) from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._profiles)

    def __len__(self) -> int:
        return len(self._profiles)

    def require(self, strategy_id: str, field: str) -> StrategyProfile:
        """The profile, or a ConfigError naming ``field`` and the known ids."""
        if strategy_id not in self._profiles:
            raise ConfigError(
                field, f"unknown profile {strategy_id!r}; known: {', '.join(self._profiles)}"
            )
        return self._profiles[strategy_id]
