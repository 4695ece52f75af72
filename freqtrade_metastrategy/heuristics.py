"""Which profiles are candidates in a regime, and which one to use before there is data.

Regime names are those of :class:`~freqtrade_metastrategy.regime.MarketRegime`. Candidates (a
profile is a candidate if its suitability flags match the regime):

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

If no profile matches (possible with user profiles), every profile is a candidate; so is every
profile for a regime name outside :class:`MarketRegime`.

The heuristic (used while no candidate has ``min_samples`` rewards) is a per-regime table,
overridable from config (``metastrategy.heuristic``, checked by :func:`check_heuristic`):

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
from typing import Final

from freqtrade_metastrategy.errors import ConfigError
from freqtrade_metastrategy.profiles import AggressivenessLevel, StrategyProfile
from freqtrade_metastrategy.regime import MarketRegime

REGIME_NAMES: Final[tuple[str, ...]] = tuple(r.value for r in MarketRegime)
"""Every regime name, in :class:`MarketRegime` order."""

DEFAULT_HEURISTIC: Mapping[str, str] = {
    MarketRegime.TREND_UP.value: "ultra_aggressive",
    MarketRegime.TREND_DOWN.value: "ultra_aggressive",
    MarketRegime.RANGE_LOW_VOL.value: "scalp",
    MarketRegime.RANGE_HIGH_VOL.value: "defensive",
    MarketRegime.HIGH_VOLATILITY.value: "defensive",
    MarketRegime.ILLIQUID.value: "defensive",
    MarketRegime.UNKNOWN.value: "ultra_aggressive",
}


def is_candidate(p: StrategyProfile, regime: str) -> bool:
    """Whether ``p`` suits ``regime`` (exact regime names, no substring matching; a name
    outside :class:`MarketRegime` suits every profile)."""
    if regime in (MarketRegime.TREND_UP, MarketRegime.TREND_DOWN):
        return p.suitable_for_trending
    if regime == MarketRegime.RANGE_LOW_VOL:
        return p.suitable_for_ranging and p.suitable_for_low_vol
    if regime == MarketRegime.RANGE_HIGH_VOL:
        return p.suitable_for_ranging and p.suitable_for_high_vol
    if regime == MarketRegime.HIGH_VOLATILITY:
        return p.suitable_for_high_vol
    if regime == MarketRegime.ILLIQUID:
        return p.aggressiveness.rank <= AggressivenessLevel.LOW.rank
    return True


def candidates(profiles: Mapping[str, StrategyProfile], regime: str) -> list[str]:
    """Candidate profile ids for ``regime``, in registry order (never empty)."""
    found = [pid for pid, p in profiles.items() if is_candidate(p, regime)]
    return found or list(profiles)


def check_heuristic(table: Mapping[str, str], *, prefix: str = "metastrategy") -> None:
    """Refuse a ``heuristic`` table keyed by a name that is not a regime (the error names the
    key). Whether its profiles exist is checked against the registry by its user.

    >>> check_heuristic({"trend_up": "scalp", "sideways": "scalp"})
    Traceback (most recent call last):
    ...
    freqtrade_metastrategy.errors.ConfigError: metastrategy.heuristic.sideways: unknown regime; ...
    """
    for regime in table:
        if regime not in REGIME_NAMES:
            raise ConfigError(
                f"{prefix}.heuristic.{regime}",
                f"unknown regime; allowed: {', '.join(REGIME_NAMES)}",
            )


def heuristic_choice(
    profiles: Mapping[str, StrategyProfile],
    regime: str,
    profile_ids: Sequence[str],
    table: Mapping[str, str],
    default: str,
) -> str:
    """The heuristic profile for ``regime`` among the candidates ``profile_ids``: the table's
    (``default`` for a regime it leaves out) if it is a candidate, else the candidate with the
    highest ``expected_risk_reward``."""
    preferred = table.get(regime, default)
    if preferred in profile_ids:
        return preferred
    return max(profile_ids, key=lambda pid: profiles[pid].expected_risk_reward)
