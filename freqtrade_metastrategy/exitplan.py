"""A trade's frozen exit plan: a profile applied to one entry, in prices.

Everything the exit callbacks need is fixed when the entry fills: the side, the entry price,
1R (the ATR of the signal candle, never the current ATR) and the profile. From these the plan
gives the stop for the trade's stage (how many take-profits have filled) and best price, the
take-profit prices, and how much to close when price has reached them.

>>> from freqtrade_metastrategy.profiles import get_strategy_profile
>>> plan = TradePlan(get_strategy_profile("moderate"), is_short=False, entry_price=100.0,
...                  r_unit=2.0)
>>> plan.tp_prices, plan.initial_stop
((104.0, 107.0, 111.0), 98.0)
>>> plan.stop_price(stage=0, best_price=103.0)   # before TP1: the initial stop
98.0
>>> plan.stop_price(stage=1, best_price=105.0)   # after TP1 filled: breakeven
100.0
>>> plan.stop_price(stage=2, best_price=109.0)   # after TP2 filled: trail 1R behind the best
107.0
>>> plan.partials_due(stage=0, best_price=107.5)   # TP1 and TP2 both reached: close 80%
(2, 0.8)

Shorts mirror every level around the entry:

>>> short = TradePlan(get_strategy_profile("moderate"), is_short=True, entry_price=100.0,
...                   r_unit=2.0)
>>> short.tp_prices, short.initial_stop, short.stop_price(stage=2, best_price=91.0)
((96.0, 93.0, 89.0), 102.0, 93.0)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from freqtrade_metastrategy.errors import MetaStrategyError
from freqtrade_metastrategy.profiles import StrategyProfile
from freqtrade_metastrategy.trade_math import reward

#: Take-profits closed by partial exits; the last one (TP3) closes the rest.
PARTIAL_TPS = 2


def net_breakeven(entry_price: Any, sign: Any, fee_open: Any, fee_close: Any) -> Any:
    """The exit price at which a fill neither gains nor loses after the entry and exit fees
    (``sign``: +1 long, -1 short). Scalars or numpy arrays alike (the simulator's vectorised
    twin of :meth:`TradePlan.pays` calls it with arrays).

    >>> [round(net_breakeven(100.0, side, 0.001, 0.001), 4) for side in (1, -1)]
    [100.2002, 99.8002]
    """
    return entry_price * (1 + sign * fee_open) / (1 - sign * fee_close)


@dataclass(frozen=True, slots=True)
class TradePlan:
    """A profile applied to one entry. ``r_unit`` (1R) is in price units."""

    profile: StrategyProfile
    is_short: bool
    entry_price: float
    r_unit: float
    tp_prices: tuple[float, float, float] = field(init=False)
    initial_stop: float = field(init=False)

    def __post_init__(self) -> None:
        for name in ("entry_price", "r_unit"):
            v = getattr(self, name)
            if not (isinstance(v, int | float) and math.isfinite(v) and v > 0):
                raise MetaStrategyError(f"{name}: must be a positive finite number, got {v!r}")
        p = self.profile
        object.__setattr__(self, "tp_prices", tuple(self.price_at(r) for r in p.tp_levels))
        object.__setattr__(self, "initial_stop", self.price_at(-p.r_sl))

    @property
    def sign(self) -> int:
        """+1 for longs, -1 for shorts: the direction in which profit grows."""
        return -1 if self.is_short else 1

    def price_at(self, r: float) -> float:
        """The price ``r`` R away from the entry in the trade's favour (negative: against)."""
        return self.entry_price + self.sign * r * self.r_unit

    def better(self, a: float, b: float) -> float:
        """The more favourable of two stop prices (higher for longs, lower for shorts)."""
        return max(a, b) if not self.is_short else min(a, b)

    def reached(self, best_price: float, level: float) -> bool:
        """Whether ``best_price`` has reached ``level`` in the trade's favour."""
        return best_price >= level if not self.is_short else best_price <= level

    def pays(self, price: float, fee_open: float, fee_close: float) -> bool:
        """Whether a fill at ``price`` is a gain after the entry and exit fees: the only
        prices at which a partial take-profit is taken.

        >>> from freqtrade_metastrategy.profiles import get_strategy_profile
        >>> plan = TradePlan(get_strategy_profile("moderate"), False, 100.0, 2.0)
        >>> plan.pays(100.15, 0.001, 0.001), plan.pays(100.25, 0.001, 0.001)
        (False, True)
        """
        level = net_breakeven(self.entry_price, self.sign, fee_open, fee_close)
        return self.reached(price, level) and price != level

    def stop_price(self, stage: int, best_price: float) -> float:
        """The stop after ``stage`` take-profits filled, given the best price since entry."""
        p = self.profile
        stop = self.initial_stop
        if p.breakeven_after_tp and stage >= p.breakeven_after_tp:
            stop = self.better(stop, self.price_at(p.breakeven_offset_r))
        if p.trail_after_tp and stage >= p.trail_after_tp:
            stop = self.better(stop, best_price - self.sign * p.trail_distance_r * self.r_unit)
        return stop

    def partials_due(self, stage: int, best_price: float) -> tuple[int, float]:
        """(new stage, fraction of the initial amount to close now) for the partial TPs.

        Only TP1 and TP2 are partial exits; TP3 closes the rest through the ROI mechanism.
        Returns ``(stage, 0.0)`` when nothing is due.
        """
        new_stage = stage
        while new_stage < PARTIAL_TPS and self.reached(best_price, self.tp_prices[new_stage]):
            new_stage += 1
        fraction = math.fsum(self.profile.partial_fractions[stage:new_stage])
        return new_stage, fraction

    def r_multiple(self, profit_abs: float, amount: float) -> float:
        """Realized R of a whole trade: net profit / (filled entry amount x 1R)."""
        return reward("r_atr", profit_abs, amount, self.r_unit, self.entry_price,
                      self.profile.r_sl)
