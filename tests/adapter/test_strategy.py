"""The adapter in-process: frozen trade state, ledger key, and the exit callbacks on
Freqtrade's own ``LocalTrade``."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pandas as pd
import pytest
from freqtrade.data.dataprovider import DataProvider
from freqtrade.enums import CandleType, RunMode
from freqtrade.persistence import LocalTrade, Order

from freqtrade_metastrategy.exitplan import TradePlan
from freqtrade_metastrategy.profiles import ProfileRegistry
from freqtrade_metastrategy.strategy import MetaStrategyBase, TradeState, trade_key


@pytest.mark.parametrize("side", ["long", "short"])
def test_frozen_state_round_trips_through_custom_data(side: str) -> None:
    # a user profile: the frozen copy must not depend on the config still defining it
    profile = ProfileRegistry.from_config({"swing": {"base": "moderate", "r_sl": 1.3}})["swing"]
    state = TradeState(
        TradePlan(profile, is_short=side == "short", entry_price=0.1 + 0.2, r_unit=1e-5),
        regime="trend_down", amount=1234.5, probability=0.9166666666666666, explored=False,
        stage=1,
    )
    back = TradeState.from_json(state.to_json())
    assert back.plan == state.plan
    assert (back.regime, back.amount, back.probability, back.explored, back.stage) == (
        "trend_down", 1234.5, 0.9166666666666666, False, 1)
    assert back.tp3_roi is None  # recomputed from the live trade, never persisted


def test_trade_key_is_stable_and_bot_independent() -> None:
    trade = SimpleNamespace(pair="BTC/USDT", id=7,
                            open_date_utc=datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC))
    assert trade_key(trade) == "BTC/USDT|2024-01-02T03:04:05+00:00|7"  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------
# The callbacks in-process, on Freqtrade's own LocalTrade (paths a backtest subprocess cannot
# reach, e.g. a trade opened without the plugin).
# ---------------------------------------------------------------------------------------------
T0 = datetime(2024, 1, 1, 1, tzinfo=UTC)


class _Meta(MetaStrategyBase):
    can_short = True


def make_strategy(tmp_path: Any) -> _Meta:
    """A backtest-mode strategy that has analysed 100 flat candles of BTC/USDT whose every true
    range is 2.0, so the latest ATR(14) is 2.0."""
    s = _Meta({"runmode": RunMode.BACKTEST, "timeframe": "1h", "stake_currency": "USDT",
               "user_data_dir": str(tmp_path)})
    s.bot_start()
    dates = pd.date_range("2023-12-27 20:00", periods=100, freq="1h", tz="UTC")
    frame = pd.DataFrame({"date": dates, "open": 100.0, "high": 101.0, "low": 99.0,
                          "close": 100.0, "volume": 1e6})
    s.populate_indicators(frame, {"pair": "BTC/USDT"})
    assert frame["atr"].iloc[-1] == pytest.approx(2.0, abs=1e-12)
    # Freqtrade's own DataProvider, holding the analysed frame and positioned after its last
    # candle, as backtesting does candle by candle
    s.dp = DataProvider(s.config, exchange=None)
    s.dp._set_cached_df("BTC/USDT", "1h", frame, CandleType.SPOT)
    s.dp._set_dataframe_max_index("BTC/USDT", len(frame))
    return s


def make_trade(side: str) -> LocalTrade:
    short = side == "short"
    trade = LocalTrade(id=1, pair="BTC/USDT", open_rate=100.0, amount=10.0, stake_amount=1000.0,
                       open_date=T0, fee_open=0.001, fee_close=0.001, is_open=True,
                       exchange="binance", leverage=1.0, is_short=short, max_rate=100.0,
                       min_rate=100.0)
    trade.orders.append(Order(
        ft_order_side="sell" if short else "buy", ft_pair="BTC/USDT", ft_is_open=False,
        status="closed", order_id="1", symbol="BTC/USDT", side="sell" if short else "buy",
        order_type="market", amount=10.0, filled=10.0, remaining=0, price=100.0, average=100.0,
        cost=1000.0, order_date=T0, order_filled_date=T0))
    return trade


@pytest.mark.parametrize("side", ["long", "short"])
def test_trade_without_frozen_data_gets_the_default_profile_and_one_warning(
    tmp_path: Any, side: str, caplog: pytest.LogCaptureFixture
) -> None:
    s, trade = make_strategy(tmp_path), make_trade(side)
    sign = 1 if side == "long" else -1
    for _ in range(3):
        ratio = s.custom_stoploss("BTC/USDT", trade, T0, 101.0 if sign > 0 else 99.0, 0.01,
                                  after_fill=False)
    assert caplog.text.count("has no frozen metastrategy data") == 1
    state = s.trade_state(1)
    assert state is not None and state.profile.strategy_id == "ultra_aggressive"
    assert state.plan.r_unit == pytest.approx(2.0)  # the latest ATR, frozen from now on
    # ultra_aggressive: stop 1R away from the entry, relative to the current rate
    stop = 100.0 - sign * 2.0
    current = 101.0 if sign > 0 else 99.0
    assert ratio == pytest.approx(abs(1 - stop / current))


@pytest.mark.parametrize("side", ["long", "short"])
def test_tp1_partial_then_tp3_roi(tmp_path: Any, side: str) -> None:
    s, trade = make_strategy(tmp_path), make_trade(side)
    sign = 1 if side == "long" else -1
    s.custom_stoploss("BTC/USDT", trade, T0, 100.0, 0.0, after_fill=True)
    # nothing due before TP1 (entry + 3R = 106 / 94)
    # (backtests pass the candle open as current, entry and exit rate alike)
    rate = 100.0 + sign * 5.9
    assert s.adjust_trade_position(trade, T0, rate, 0, 5.0, 1e6, rate, rate, 0, 0) is None
    if sign > 0:
        trade.max_rate = 106.5
    else:
        trade.min_rate = 93.5
    rate = 100.0 + sign * 6.0
    stake, tag = s.adjust_trade_position(trade, T0, rate, 0, 5.0, 1e6, rate, rate, 0, 0)
    assert (stake, tag) == (-500.0, "tp1")  # 50% of the filled amount
    # TP3 = entry + 8R: the ROI whose close rate is that price
    roi = s.custom_roi("BTC/USDT", trade, T0, 60, None, side)
    assert trade.calc_close_rate_for_roi(roi) == pytest.approx(100.0 + sign * 16.0)
