"""MetaStrategy with proposed changes, as subclasses: measure a change before making it.

``bench_backtest.py --variants twin_a twin_b meta meta_proposed meta_proposed_stop`` compares
them with the shipped MetaStrategy. Neither overrides a callback MetaStrategyBase does not
already override, so Freqtrade deep-copies exactly as for MetaStrategy and twin B stays its
mirror.

* :class:`MetaStrategyProposed` (proposal 1, the signal-candle lookup; strategy.py adopted it
  after HEAD 2a86bac, where it is then a no-op replacement): at HEAD ``_signal_row``, called by
  ``confirm_trade_entry`` and by ``order_filled`` (``_freeze``) once each per trade, cost
  ~200 µs a call in a backtest: ``dp.get_analyzed_dataframe`` slices the cached dataframe
  (~80 µs) and ``df.iloc[-1]`` builds a ~25-column object row (~110 µs). Here
  ``populate_indicators`` (once per pair in backtests, per new candle live) also keeps four
  numpy arrays per pair and the lookup is a binary search on the dates (~17 µs with the
  datetime arithmetic). Semantics: the signal candle, else the latest candle before it. A pair
  never analysed falls back to the dataframe path.
* :class:`MetaStrategyProposedStop` (proposal 2): ``custom_stoploss`` returns None when the
  plan's stop is not better than the trade's current stop (see the class).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

import numpy as np
from freqtrade.exchange import timeframe_to_prev_date, timeframe_to_seconds
from pandas import DataFrame

from freqtrade_metastrategy.strategy import MetaStrategyBase


class SignalRow(NamedTuple):
    """The signal candle's fields, readable as the callers of either version read them:
    ``row["regime_confidence"]`` (a pandas row, HEAD 2a86bac) or ``row.confidence``
    (``SignalCandle``, once the lookup landed in strategy.py)."""

    date: datetime
    regime: str
    atr: float
    confidence: float

    def __getitem__(self, key: Any) -> Any:
        if key == "regime_confidence":
            return self.confidence
        return getattr(self, key) if isinstance(key, str) else tuple.__getitem__(self, key)


class MetaStrategyProposed(MetaStrategyBase):
    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__(config)
        self._bench_signal_arrays: dict[str, tuple[np.ndarray, ...]] = {}

    def populate_indicators(self, dataframe: DataFrame, metadata: dict[str, Any]) -> DataFrame:
        dataframe = super().populate_indicators(dataframe, metadata)
        self._bench_signal_arrays[metadata["pair"]] = (
            dataframe["date"].to_numpy(dtype="datetime64[s]").astype("int64"),  # epoch s
            dataframe["regime"].to_numpy(),
            dataframe["atr"].to_numpy(dtype="float64"),
            dataframe["regime_confidence"].to_numpy(dtype="float64"),
        )
        return dataframe

    def _signal_row(self, pair: str, open_date: datetime) -> Any | None:
        arrays = self._bench_signal_arrays.get(pair)
        if arrays is None:
            return super()._signal_row(pair, open_date)
        dates, regime, atr, conf = arrays
        tf = timedelta(seconds=timeframe_to_seconds(self.timeframe))
        signal_date = timeframe_to_prev_date(self.timeframe, open_date) - tf
        key = int(signal_date.timestamp())
        i = int(dates.searchsorted(key, side="right")) - 1
        if i < 0:
            return None
        date = signal_date if dates[i] == key else datetime.fromtimestamp(int(dates[i]), UTC)
        return SignalRow(date, str(regime[i]), float(atr[i]), float(conf[i]))


class MetaStrategyProposedStop(MetaStrategyBase):
    """Proposal 2: skip Freqtrade's stop re-computation when the stop would not move.

    ``custom_stoploss`` returns None ("keep the current stop") when the plan's stop is not
    better than the trade's current stop, instead of a ratio that Freqtrade turns back into the
    same price (``adjust_stop_loss``: a multiplication, ``price_to_precision`` and compares).
    Outside after-fill calls Freqtrade only ever moves a long's stop up (a short's down), so
    the stop is the same; when it does move, MetaStrategyBase's own code computes the ratio.
    """

    def custom_stoploss(
        self, pair: str, trade: Any, current_time: datetime, current_rate: float,
        current_profit: float, after_fill: bool, **kwargs: Any,
    ) -> float | None:
        if not after_fill and trade.stop_loss:
            state = self._states.get(trade.id)
            if state is not None:
                plan = state.plan
                best = (trade.min_rate if plan.is_short else trade.max_rate) or trade.open_rate
                stop = plan.stop_price(state.stage, best)
                if stop >= trade.stop_loss if plan.is_short else stop <= trade.stop_loss:
                    return None
        return super().custom_stoploss(pair, trade, current_time, current_rate,
                                       current_profit, after_fill, **kwargs)
