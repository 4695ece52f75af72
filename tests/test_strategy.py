"""The adapter's pure parts: the frozen trade state and the ledger key."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace

import pytest

from freqtrade_metastrategy.exitplan import TradePlan
from freqtrade_metastrategy.profiles import ProfileRegistry
from freqtrade_metastrategy.strategy import TradeState, trade_key


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
