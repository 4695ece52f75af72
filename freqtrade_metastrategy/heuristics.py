"""Which profiles are candidates in a regime, and which one to use before there is data.

Candidates (a profile is a candidate if its suitability flags match the regime):

=================  =============================================================
regime             candidate profiles
=================  =============================================================
trend_up/down      ``suitable_for_trending``
range_low_vol      ``suitable_for_ranging`` and ``suitable_for_low_vol``
range_high_vol     ``suitable_for_ranging`` and ``suitable_for_high_vol``
high_volatility    ``suitable_for_high_vol``
illiquid           aggressiveness ``very_low`` or ``low``
unknown            every profile
=================  =============================================================

If no profile matches (possible with user profiles), every profile is a candidate.

The heuristic (used while no candidate has ``min_samples`` rewards) is a per-regime table,
overridable from config (``metastrategy.heuristic``):

>>> DEFAULT_HEURISTIC["trend_up"], DEFAULT_HEURISTIC["range_low_vol"]
('ultra_aggressive', 'scalp')
>>> DEFAULT_HEURISTIC["high_volatility"], DEFAULT_HEURISTIC["illiquid"]
('defensive', 'defensive')

If the table's profile is not a candidate, the seeds' rule applies: the candidate with the
highest ``expected_risk_reward``.

>>> from freqtrade_metastrategy.profiles import ProfileRegistry
>>> candidates(ProfileRegistry(), "range_low_vol")
['defensive', 'moderate', 'scalp']
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from freqtrade_metastrategy.profiles import AggressivenessLevel, StrategyProfile

REGIME_NAMES: tuple[str, ...] = (
    "trend_up",
    "trend_down",
    "range_low_vol",
    "range_high_vol",
    "high_volatility",
    "illiquid",
    "unknown",
)

DEFAULT_HEURISTIC: Mapping[str, str] = {
    "trend_up": "ultra_aggressive",
    "trend_down": "ultra_aggressive",
    "range_low_vol": "scalp",
    "range_high_vol": "defensive",
    "high_volatility": "defensive",
    "illiquid": "defensive",
    "unknown": "ultra_aggressive",
}


def is_candidate(p: StrategyProfile, regime: str) -> bool:
    """Whether ``p`` suits ``regime`` (exact regime names, no substring matching)."""
    if regime in ("trend_up", "trend_down"):
        return p.suitable_for_trending
    if regime == "range_low_vol":
        return p.suitable_for_ranging and p.suitable_for_low_vol
    if regime == "range_high_vol":
        return p.suitable_for_ranging and p.suitable_for_high_vol
    if regime == "high_volatility":
        return p.suitable_for_high_vol
    if regime == "illiquid":
        return p.aggressiveness.rank <= AggressivenessLevel.LOW.rank
    return True


def candidates(profiles: Mapping[str, StrategyProfile], regime: str) -> list[str]:
    """Candidate profile ids for ``regime``, in registry order (never empty)."""
    found = [pid for pid, p in profiles.items() if is_candidate(p, regime)]
    return found or list(profiles)


def heuristic_choice(
    profiles: Mapping[str, StrategyProfile],
    regime: str,
    arms: Sequence[str],
    table: Mapping[str, str],
    default: str,
) -> str:
    """The heuristic arm for ``regime`` among ``arms``."""
    preferred = table.get(regime, default)
    if preferred in arms:
        return preferred
    return max(arms, key=lambda a: profiles[a].expected_risk_reward)
