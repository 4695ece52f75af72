"""What the strategy freezes per trade, and how it is stored in the trade's custom data.

:class:`TradeState` is a trade's frozen plan (profile, side, entry price, 1R) plus the regime,
the filled entry amount, the decision's probability and its progress (take-profits filled).
Live and dry-run it is kept as JSON under :data:`CUSTOM_DATA_KEY` in the trade's custom data,
so a restart reads it back. :func:`trade_key` names a trade in the store's ledger. Pure: any
object with ``pair``, ``open_date_utc`` and ``id`` is a trade here.

>>> from datetime import UTC, datetime
>>> from types import SimpleNamespace
>>> from freqtrade_metastrategy.exitplan import TradePlan
>>> from freqtrade_metastrategy.profiles import get_strategy_profile
>>> state = TradeState(TradePlan(get_strategy_profile("scalp"), False, 100.0, 2.0),
...                    "trend_up", amount=0.5, probability=0.25, explored=True)
>>> TradeState.from_json(state.to_json()) == state
True
>>> trade_key(SimpleNamespace(pair="BTC/USDT", open_date_utc=datetime(2024, 1, 1, tzinfo=UTC),
...                           id=7))
'BTC/USDT|2024-01-01T00:00:00+00:00|7'
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Final, NamedTuple, Protocol

from freqtrade_metastrategy.errors import MetaStrategyError
from freqtrade_metastrategy.exitplan import TradePlan
from freqtrade_metastrategy.profiles import AggressivenessLevel, StrategyProfile
from freqtrade_metastrategy.trade_math import reward

#: The key of the frozen state in a trade's custom data.
CUSTOM_DATA_KEY: Final = "metastrategy"
#: What :meth:`TradeState.from_json` raises for unreadable frozen data.
UNREADABLE_STATE_ERRORS: Final = (ValueError, KeyError, TypeError, MetaStrategyError)


class TradeLike(Protocol):
    """What :func:`trade_key` reads from a trade (Freqtrade's ``Trade`` has it)."""

    @property
    def pair(self) -> str: ...

    @property
    def open_date_utc(self) -> datetime: ...

    @property
    def id(self) -> int: ...


def trade_key(trade: TradeLike) -> str:
    """The ledger key of a trade: unique across bots sharing one store, stable across restarts."""
    return f"{trade.pair}|{trade.open_date_utc.isoformat()}|{trade.id}"


@dataclass(slots=True)
class TradeState:
    """What the strategy keeps per open trade (frozen plan + a little progress).

    ``stage``: take-profits filled (0-2); ``tp3_roi``: the TP3 profit ratio, computed once.
    Only the plan, regime, amount, probability, exploration flag and stage are stored.
    """

    plan: TradePlan
    regime: str
    amount: float
    probability: float | None
    explored: bool
    stage: int = 0
    tp3_roi: float | None = None

    @property
    def profile(self) -> StrategyProfile:
        return self.plan.profile

    def reward(self, profit: float, unit: str) -> float:
        """The trade's reward for a net ``profit`` (stake currency, whole trade) in ``unit``
        (:data:`~freqtrade_metastrategy.trade_math.REWARD_UNITS`)."""
        plan = self.plan
        return reward(unit, profit, self.amount, plan.r_unit, plan.entry_price,
                      plan.profile.r_sl)

    def to_json(self) -> str:
        return json.dumps({
            "v": 1,
            "profile": self.plan.profile.to_dict(),
            "regime": self.regime,
            "side": "short" if self.plan.is_short else "long",
            "entry_price": self.plan.entry_price,
            "r_unit": self.plan.r_unit,
            "amount": self.amount,
            "probability": self.probability,
            "explored": self.explored,
            "stage": self.stage,
        })

    @classmethod
    def from_json(cls, text: str) -> TradeState:
        """The state :meth:`to_json` wrote; raises one of :data:`UNREADABLE_STATE_ERRORS`."""
        d = json.loads(text)
        prof = dict(d["profile"])
        prof["aggressiveness"] = AggressivenessLevel(prof["aggressiveness"])
        profile = StrategyProfile(**prof)
        plan = TradePlan(profile, is_short=d["side"] == "short",
                         entry_price=float(d["entry_price"]), r_unit=float(d["r_unit"]))
        return cls(plan, str(d["regime"]), float(d["amount"]), d.get("probability"),
                   bool(d.get("explored", False)), int(d.get("stage", 0)))


class SignalCandle(NamedTuple):
    """What the strategy reads from a trade's signal candle."""

    date: datetime
    regime: str
    atr: float
    confidence: float


__all__ = [
    "CUSTOM_DATA_KEY",
    "UNREADABLE_STATE_ERRORS",
    "SignalCandle",
    "TradeLike",
    "TradeState",
    "trade_key",
]
