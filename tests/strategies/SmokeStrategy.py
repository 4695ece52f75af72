"""Test-only strategy: long-only EMA(12/26) cross on 1h with a fixed stoploss and ROI.

Used by the loopback end-to-end test to prove an offline backtest produces trades. Not a
trading idea.
"""

from __future__ import annotations

from typing import ClassVar

import talib.abstract as ta
from freqtrade.strategy import IStrategy
from pandas import DataFrame


class SmokeStrategy(IStrategy):
    INTERFACE_VERSION = 3

    timeframe = "1h"
    can_short = False
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

    def populate_entry_trend(self, dataframe: DataFrame, metadata: dict) -> DataFrame:
        fast, slow = dataframe["ema_fast"], dataframe["ema_slow"]
        crossed_up = (fast > slow) & (fast.shift(1) <= slow.shift(1))
        dataframe.loc[crossed_up & (dataframe["volume"] > 0), ["enter_long", "enter_tag"]] = (
            1,
            "ema_cross_up",
        )
        return dataframe

    def populate_exit_trend(self, dataframe: DataFrame, metadata: dict) -> DataFrame:
        fast, slow = dataframe["ema_fast"], dataframe["ema_slow"]
        crossed_down = (fast < slow) & (fast.shift(1) >= slow.shift(1))
        dataframe.loc[crossed_down, ["exit_long", "exit_tag"]] = (1, "ema_cross_down")
        return dataframe
