"""freqtrade_metastrategy.tradestate: the frozen per-trade state, its JSON in the trade's
custom data, and the ledger key (pure: no Freqtrade needed)."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta, timezone
from types import SimpleNamespace

import pytest

from freqtrade_metastrategy.exitplan import TradePlan
from freqtrade_metastrategy.profiles import ProfileRegistry, get_strategy_profile
from freqtrade_metastrategy.tradestate import (
    UNREADABLE_STATE_ERRORS,
    SignalCandle,
    TradeState,
    trade_key,
)


def state(side: str = "long", **kwargs: object) -> TradeState:
    plan = TradePlan(get_strategy_profile("moderate"), is_short=side == "short",
                     entry_price=100.0, r_unit=2.0)
    fields: dict[str, object] = {"regime": "trend_up", "amount": 4.0, "probability": 0.5,
                                 "explored": True, **kwargs}
    return TradeState(plan, **fields)  # type: ignore[arg-type]


def test_json_is_the_documented_v1_document() -> None:
    doc = json.loads(state("short", stage=2, tp3_roi=0.07).to_json())
    assert doc["v"] == 1
    assert (doc["side"], doc["regime"], doc["entry_price"], doc["r_unit"], doc["amount"]) == (
        "short", "trend_up", 100.0, 2.0, 4.0)
    assert (doc["probability"], doc["explored"], doc["stage"]) == (0.5, True, 2)
    assert doc["profile"]["strategy_id"] == "moderate"
    assert "tp3_roi" not in doc  # recomputed from the live trade


@pytest.mark.parametrize("side", ["long", "short"])
def test_round_trip_keeps_a_user_profile(side: str) -> None:
    profile = ProfileRegistry.from_config({"swing": {"base": "moderate", "r_sl": 1.3}})["swing"]
    s = TradeState(TradePlan(profile, side == "short", 0.1 + 0.2, 1e-5), "range_low_vol",
                   1234.5, None, False, stage=1)
    back = TradeState.from_json(s.to_json())
    assert back == s and back.profile.r_sl == 1.3


def test_old_documents_without_optional_fields_read_with_defaults() -> None:
    doc = json.loads(state().to_json())
    for key in ("probability", "explored", "stage"):
        del doc[key]
    back = TradeState.from_json(json.dumps(doc))
    assert (back.probability, back.explored, back.stage) == (None, False, 0)


@pytest.mark.parametrize("text", [
    "not json",
    "{}",
    json.dumps({**json.loads(state().to_json()), "entry_price": -1.0}),
    json.dumps({**json.loads(state().to_json()), "profile": {"strategy_id": "x"}}),
])
def test_unreadable_documents_raise_one_of_the_documented_errors(text: str) -> None:
    with pytest.raises(UNREADABLE_STATE_ERRORS):
        TradeState.from_json(text)


@pytest.mark.parametrize(("unit", "expected"), [
    ("r_atr", 20.0 / (4.0 * 2.0)),
    ("r_risk", 20.0 / (4.0 * 2.0) / get_strategy_profile("moderate").r_sl),
    ("ret_pct", 100.0 * 20.0 / (4.0 * 100.0)),
])
def test_reward_in_every_unit(unit: str, expected: float) -> None:
    assert state().reward(20.0, unit) == expected


def test_trade_key_takes_any_trade_like_object() -> None:
    trade = SimpleNamespace(pair="ETH/USDT", id=12,
                            open_date_utc=datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC))
    assert trade_key(trade) == "ETH/USDT|2024-01-02T03:04:05+00:00|12"
    # the key is the UTC instant's isoformat: a non-UTC offset would be a different key
    other = SimpleNamespace(pair="ETH/USDT", id=12, open_date_utc=datetime(
        2024, 1, 2, 4, 4, 5, tzinfo=timezone(timedelta(hours=1))))
    assert trade_key(other) != trade_key(trade)


def test_signal_candle_fields() -> None:
    row = SignalCandle(datetime(2024, 1, 1, tzinfo=UTC), "trend_up", 2.0, 0.8)
    assert (row.regime, row.atr, row.confidence) == ("trend_up", 2.0, 0.8)


def test_the_module_is_pure() -> None:
    code = ("import sys, freqtrade_metastrategy.tradestate, freqtrade_metastrategy.trade_math, "
            "freqtrade_metastrategy.liquidity; "
            "bad = [m for m in sys.modules if m == 'freqtrade' or m.startswith('freqtrade.')]; "
            "print(bad)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"
