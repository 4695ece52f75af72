"""Twin strategies for ``bench/bench_backtest.py``: MetaStrategy's entries with static exits.

* :class:`TwinNoCallbacks` (twin A) -- MetaStrategyBase's own indicators and entry signal
  (inherited, so they follow any change to the strategy), with every callback MetaStrategyBase
  overrides reset to IStrategy's default. Freqtrade then treats them as not overridden: it does
  not deep-copy the trade for them (the wrapper checks ``__qualname__.startswith("IStrategy.")``)
  and the flags that enable them are off. Exits: a fixed ``stoploss`` and ``minimal_roi``. The
  illiquid block MetaStrategy applies in ``confirm_trade_entry`` is a vectorised mask on the
  signal candle here, so the entries are the same.
* :class:`TwinTrivialCallbacks` (twin B) -- twin A plus overrides of exactly the callbacks
  MetaStrategyBase overrides (checked at import), with MetaStrategyBase's ``use_custom_stoploss``
  / ``use_custom_roi`` / ``position_adjustment_enable`` flags, whose bodies return Freqtrade's
  "no change" values. Its trades are identical to twin A's; what it adds is the unavoidable price
  of overriding: the wrapper's ``deepcopy(trade)`` per call and Freqtrade's work around the calls.

``custom_stoploss`` returns None rather than ``self.stoploss`` (IStrategy's default): with
``use_custom_stoploss`` a ratio returned on every candle is re-applied below the candle high,
i.e. it becomes a trailing stop, and the trades would differ from twin A's. ``custom_roi``
returns None (fall back to ``minimal_roi``), ``adjust_trade_position`` None (no adjustment).

:data:`TWIN_STOPLOSS` / :data:`TWIN_MINIMAL_ROI` approximate MetaStrategy's trade length with the
default config on the bundled 4 pairs; ``bench_backtest.py --calibrate`` re-derives them (and
``--twin-stoploss/--twin-roi`` override them through the config) when the strategy changes.
Loaded by Freqtrade from ``--strategy-path bench/strategies``; needs the package installed.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from freqtrade.persistence import Order, Trade
from freqtrade.strategy import IStrategy
from pandas import DataFrame

from freqtrade_metastrategy.regime import MarketRegime
from freqtrade_metastrategy.strategy import MetaStrategyBase

# Static exits roughly matching MetaStrategy's typical trade (see the module docstring).
TWIN_STOPLOSS = -0.01
TWIN_MINIMAL_ROI = {"0": 0.02}

#: What the twins keep from MetaStrategyBase: construction and the dataframe methods
#: (``advise_entry`` reclassifies the regimes before ``populate_entry_trend``;
#: ``informative_pairs`` names the context's leader pair).
_KEPT = {"__init__", "populate_indicators", "populate_entry_trend", "populate_exit_trend",
         "advise_entry", "informative_pairs"}


def _overridden_callbacks(cls: type) -> list[str]:
    """IStrategy methods that ``cls`` (or a base below IStrategy) overrides, minus _KEPT."""
    return sorted(
        name for name, member in vars(IStrategy).items()
        if callable(member) and not name.startswith("__") and name not in _KEPT
        and getattr(cls, name) is not member
    )


#: The callbacks MetaStrategyBase overrides (today: adjust_trade_position, bot_loop_start,
#: bot_start, confirm_trade_entry, custom_roi, custom_stoploss, order_filled).
META_CALLBACKS = _overridden_callbacks(MetaStrategyBase)


class _TwinBase(MetaStrategyBase):
    """MetaStrategy's entries, static exits, no overridden callback. Not a variant itself."""

    stoploss = TWIN_STOPLOSS
    minimal_roi = TWIN_MINIMAL_ROI
    trailing_stop = False
    use_custom_stoploss = False
    use_custom_roi = False
    position_adjustment_enable = False
    max_entry_position_adjustment = -1

    def populate_entry_trend(self, dataframe: DataFrame, metadata: dict[str, Any]) -> DataFrame:
        dataframe = super().populate_entry_trend(dataframe, metadata)
        if self.ms_config.block_illiquid:
            # MetaStrategy refuses these in confirm_trade_entry, by the regime of the signal
            # candle: the row that carries the signal.
            illiquid = dataframe["regime"] == MarketRegime.ILLIQUID.value
            for col in ("enter_long", "enter_short"):
                if col in dataframe.columns:
                    dataframe.loc[illiquid, col] = 0
        return dataframe


# Un-override: the very IStrategy functions, so Freqtrade sees no override.
for _name in META_CALLBACKS:
    setattr(_TwinBase, _name, vars(IStrategy)[_name])
assert not _overridden_callbacks(_TwinBase), _overridden_callbacks(_TwinBase)


class TwinNoCallbacks(_TwinBase):
    """Twin A: static exits, no trade callback overridden."""


class TwinTrivialCallbacks(_TwinBase):
    """Twin B: twin A + MetaStrategy's callback overrides with default-equivalent bodies."""

    use_custom_stoploss = MetaStrategyBase.use_custom_stoploss
    use_custom_roi = MetaStrategyBase.use_custom_roi
    position_adjustment_enable = MetaStrategyBase.position_adjustment_enable
    max_entry_position_adjustment = MetaStrategyBase.max_entry_position_adjustment

    def bot_start(self, **kwargs: Any) -> None:
        return None

    def bot_loop_start(self, current_time: datetime, **kwargs: Any) -> None:
        return None

    def confirm_trade_entry(
        self, pair: str, order_type: str, amount: float, rate: float, time_in_force: str,
        current_time: datetime, entry_tag: str | None, side: str, **kwargs: Any,
    ) -> bool:
        return True

    def custom_stoploss(
        self, pair: str, trade: Trade, current_time: datetime, current_rate: float,
        current_profit: float, after_fill: bool, **kwargs: Any,
    ) -> float | None:
        return None

    def adjust_trade_position(
        self, trade: Trade, current_time: datetime, current_rate: float, current_profit: float,
        min_stake: float | None, max_stake: float, current_entry_rate: float,
        current_exit_rate: float, current_entry_profit: float, current_exit_profit: float,
        **kwargs: Any,
    ) -> tuple[float | None, str | None] | None:
        return None

    def custom_roi(
        self, pair: str, trade: Trade, current_time: datetime, trade_duration: int,
        entry_tag: str | None, side: str, **kwargs: Any,
    ) -> float | None:
        return None

    def order_filled(
        self, pair: str, trade: Trade, order: Order, current_time: datetime, **kwargs: Any
    ) -> None:
        return None


# Twin B must override exactly what MetaStrategy overrides, or the comparison is meaningless.
assert _overridden_callbacks(TwinTrivialCallbacks) == META_CALLBACKS, (
    f"MetaStrategyBase overrides {META_CALLBACKS}, TwinTrivialCallbacks "
    f"{_overridden_callbacks(TwinTrivialCallbacks)}: update bench/strategies/BenchTwins.py"
)
