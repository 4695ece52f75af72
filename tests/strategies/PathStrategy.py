"""Test-only strategy: :class:`MetaStrategyBase` entering on scripted candles.

Used by ``tests/adapter/test_exits_e2e.py`` to drive the real exit machinery (ATR stop, TP1/TP2
partials, breakeven, trailing, TP3 via ``custom_roi``) over hand-built price paths. The signal
candles come from the config, so the entry fills at the open of the candle after each one::

    "path_test": {
        "enter_long": ["2024-01-20T10:00:00Z"],            # every pair
        "pairs": {"STOP/USDT": {"enter_long": ["..."]},     # per pair (replaces the above)
                  "DOWN/USDT:USDT": {"enter_short": ["..."]}}
    }

``can_short`` follows the trading mode (futures: true), so the same class runs spot and
futures backtests. Not a trading idea.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
from pandas import DataFrame

from freqtrade_metastrategy.strategy import MetaStrategyBase

SECTION = "path_test"
SIGNALS = ("enter_long", "enter_short")


class PathStrategy(MetaStrategyBase):
    # the hand-built paths have 466 warm-up candles (tests/helpers/exit_paths.py); the exits
    # under test do not use the context's long-memory features
    startup_candle_count = 400

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__(config)
        self.can_short = config.get("trading_mode", "spot") == "futures"

    def _signal_dates(self, pair: str, column: str) -> list[pd.Timestamp]:
        section = self.config.get(SECTION) or {}
        spec = (section.get("pairs") or {}).get(pair, section)
        return [pd.Timestamp(d).tz_convert("UTC") for d in spec.get(column, [])]

    def populate_entry_trend(self, dataframe: DataFrame, metadata: dict[str, Any]) -> DataFrame:
        for column in SIGNALS:
            dataframe[column] = 0
            dates = self._signal_dates(metadata["pair"], column)
            if dates:
                dataframe.loc[dataframe["date"].isin(dates), column] = 1
        return dataframe
