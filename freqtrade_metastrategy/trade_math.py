"""Trade arithmetic shared by the strategy, the simulator and the hyperopt loss.

One home for the reward units and their formulas (scalars for the strategy's settlement,
numpy arrays for the simulator and the hyperopt loss: the same expressions serve both), the
stop nudge, and the signal-candle rule. Pure: no Freqtrade, no I/O.

>>> units = reward_units(profit=30.0, amount=2.0, r_unit=5.0, entry_price=100.0, r_sl=1.5)
>>> units.r_atr, units.r_risk, units.ret_pct
(3.0, 2.0, 15.0)
>>> reward("r_risk", 30.0, 2.0, 5.0, 100.0, 1.5)
2.0
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Final, NamedTuple, overload

from freqtrade_metastrategy.errors import MetaStrategyError

if TYPE_CHECKING:
    import pandas as pd

#: The units a trade's reward can be expressed in (``metastrategy.reward_unit``):
#: ``r_atr`` net profit / (entry amount x 1R), the seeds' R; ``r_risk`` R per unit of stop
#: distance (``r_atr / r_sl``); ``ret_pct`` net profit / (entry amount x entry price) x 100.
REWARD_UNITS: Final[tuple[str, ...]] = ("r_atr", "r_risk", "ret_pct")

#: Relative distance a stop handed to Freqtrade is moved away from the price. Freqtrade
#: rebuilds the stop price from the ratio ``custom_stoploss`` returns and rounds it toward the
#: price (up for longs, down for shorts); float noise would turn a stop exactly on a tick
#: (101.02) into 101.01999999999998 and so 101.01. Nudged a hair away, rounding restores it.
STOP_NUDGE: Final = 1e-10


class RewardUnits(NamedTuple):
    """A trade's reward in every unit of :data:`REWARD_UNITS` (floats or arrays alike)."""

    r_atr: Any
    r_risk: Any
    ret_pct: Any


def r_multiple(profit: Any, amount: Any, r_unit: Any) -> Any:
    """R of a whole trade: net profit / (filled entry amount x 1R). Scalars or arrays.

    >>> r_multiple(250.0, 1.0, 100.0)
    2.5
    """
    return profit / (amount * r_unit)


def reward_units(profit: Any, amount: Any, r_unit: Any, entry_price: Any, r_sl: Any) -> RewardUnits:
    """The reward of a trade (net ``profit`` in stake currency, filled entry ``amount``, 1R
    ``r_unit`` in price, ``entry_price``, the profile's stop distance ``r_sl`` in R) in every
    unit. Scalars or numpy arrays alike (the simulator passes ``amount=1.0``: its profits are
    per unit of entry amount)."""
    r_atr = r_multiple(profit, amount, r_unit)
    return RewardUnits(r_atr, r_atr / r_sl, 100.0 * profit / (amount * entry_price))


def reward(
    unit: str, profit: float, amount: float, r_unit: float, entry_price: float, r_sl: float
) -> float:
    """The reward of one trade in ``unit`` (one of :data:`REWARD_UNITS`); ``amount`` must be
    a positive finite number (:class:`~freqtrade_metastrategy.errors.MetaStrategyError`)."""
    if not (math.isfinite(amount) and amount > 0):
        raise MetaStrategyError(f"amount: must be a positive finite number, got {amount!r}")
    if unit not in REWARD_UNITS:
        raise ValueError(f"reward unit: must be one of {', '.join(REWARD_UNITS)}, got {unit!r}")
    return float(getattr(reward_units(profit, amount, r_unit, entry_price, r_sl), unit))


def nudged_stop(stop: float, is_short: bool) -> float:
    """``stop`` moved :data:`STOP_NUDGE` away from the price (down for longs, up for shorts).

    >>> nudged_stop(100.0, False) < 100.0 < nudged_stop(100.0, True)
    True
    """
    return stop * ((1 + STOP_NUDGE) if is_short else (1 - STOP_NUDGE))


@overload
def signal_candle(entry_candle: datetime, timeframe: timedelta) -> datetime: ...


@overload
def signal_candle(entry_candle: pd.Series, timeframe: timedelta | pd.Timedelta) -> pd.Series: ...


def signal_candle(entry_candle: Any, timeframe: Any) -> Any:
    """The open time of a trade's signal candle: the candle before its entry candle (Freqtrade
    enters at the open of the candle after the signal). ``entry_candle``: the open time of the
    entry candle (Freqtrade's ``timeframe_to_prev_date(timeframe, open_date)``; a backtest
    trade's ``open_date`` is one already), a datetime or a pandas Series of them.

    >>> from datetime import UTC
    >>> signal_candle(datetime(2024, 1, 1, 5, tzinfo=UTC), timedelta(hours=1)).hour
    4
    """
    return entry_candle - timeframe


__all__ = [
    "REWARD_UNITS",
    "STOP_NUDGE",
    "RewardUnits",
    "nudged_stop",
    "r_multiple",
    "reward",
    "reward_units",
    "signal_candle",
]
