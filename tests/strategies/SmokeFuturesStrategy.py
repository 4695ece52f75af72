"""Test-only strategy: long/short EMA(12/26) cross on 1h perpetuals, 2x isolated leverage.

Used by the loopback futures end-to-end test to prove an offline futures backtest produces
short trades (``enter_short`` on a cross down). Not a trading idea.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

import talib.abstract as ta
from freqtrade.strategy import IStrategy
from pandas import DataFrame

LEVERAGE = 2.0


class SmokeFuturesStrategy(IStrategy):
    INTERFACE_VERSION = 3

    timeframe = "1h"
    can_short = True
    stoploss = -0.05
    minimal_roi: ClassVar[dict[str, float]] = {"0": 0.04, "24": 0.02, "72": 0.0}
    trailing_stop = False
    process_only_new_candles = True
    use_exit_signal = True
    startup_candle_count = 60

    def populate_indicators(self, dataframe: DataFrame, metadata: dict) -> DataFrame:
        dataframe["ema_fast"] = ta.EMA(dataframe, timeperiod=12)
        dataframe["ema_slow"] = ta.EMA(dataframe, timeperiod=26)
        return dataframe

    @staticmethod
    def _crosses(dataframe: DataFrame) -> tuple[Any, Any]:
        fast, slow = dataframe["ema_fast"], dataframe["ema_slow"]
        up = (fast > slow) & (fast.shift(1) <= slow.shift(1))
        down = (fast < slow) & (fast.shift(1) >= slow.shift(1))
        return up, down

    def populate_entry_trend(self, dataframe: DataFrame, metadata: dict) -> DataFrame:
        up, down = self._crosses(dataframe)
        active = dataframe["volume"] > 0
        dataframe.loc[up & active, ["enter_long", "enter_tag"]] = (1, "ema_cross_up")
        dataframe.loc[down & active, ["enter_short", "enter_tag"]] = (1, "ema_cross_down")
        return dataframe

    def populate_exit_trend(self, dataframe: DataFrame, metadata: dict) -> DataFrame:
        up, down = self._crosses(dataframe)
        dataframe.loc[down, ["exit_long", "exit_tag"]] = (1, "ema_cross_down")
        dataframe.loc[up, ["exit_short", "exit_tag"]] = (1, "ema_cross_up")
        return dataframe

    def leverage(
        self,
        pair: str,
        current_time: datetime,
        current_rate: float,
        proposed_leverage: float,
        max_leverage: float,
        entry_tag: str | None,
        side: str,
        **kwargs: Any,
    ) -> float:
        return min(LEVERAGE, max_leverage)
