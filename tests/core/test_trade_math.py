"""freqtrade_metastrategy.trade_math: the one home of reward units, stop nudge and the
signal-candle rule, used alike by the strategy, the simulator and the hyperopt loss."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from freqtrade_metastrategy import config, trade_math
from freqtrade_metastrategy.errors import MetaStrategyError
from freqtrade_metastrategy.evaluation import outcomes, simulator
from freqtrade_metastrategy.trade_math import (
    REWARD_UNITS,
    STOP_NUDGE,
    nudged_stop,
    r_multiple,
    reward,
    reward_units,
    signal_candle,
)


def test_reward_units_formulas() -> None:
    # long 2 units from 100, 1R = 4, r_sl = 1.25: net profit 12
    units = reward_units(12.0, 2.0, 4.0, 100.0, 1.25)
    assert units.r_atr == 12.0 / (2.0 * 4.0) == 1.5
    assert units.r_risk == 1.5 / 1.25
    assert units.ret_pct == 100.0 * 12.0 / (2.0 * 100.0) == 6.0
    assert [reward(u, 12.0, 2.0, 4.0, 100.0, 1.25) for u in REWARD_UNITS] == list(units)
    assert r_multiple(12.0, 2.0, 4.0) == units.r_atr


def test_arrays_give_the_scalars_bit_for_bit() -> None:
    rng = np.random.default_rng(3)
    profit = rng.normal(size=50)
    r_unit = rng.uniform(0.1, 5.0, 50)
    entry = rng.uniform(1.0, 100.0, 50)
    r_sl = rng.uniform(0.5, 2.0, 50)
    arrays = reward_units(profit, 1.0, r_unit, entry, r_sl)
    for i in range(50):
        one = reward_units(float(profit[i]), 1.0, float(r_unit[i]), float(entry[i]),
                           float(r_sl[i]))
        assert (arrays.r_atr[i], arrays.r_risk[i], arrays.ret_pct[i]) == tuple(one)
    # the simulator's per-unit profits (amount 1.0) are the same numbers as profit / r_unit
    assert np.array_equal(arrays.r_atr, profit / r_unit)
    assert np.array_equal(arrays.ret_pct, 100.0 * profit / entry)


@pytest.mark.parametrize("amount", [0.0, -1.0, math.nan, math.inf])
def test_reward_refuses_an_unusable_amount(amount: float) -> None:
    with pytest.raises(MetaStrategyError, match="amount"):
        reward("r_atr", 1.0, amount, 1.0, 100.0, 1.0)


def test_reward_refuses_an_unknown_unit() -> None:
    with pytest.raises(ValueError, match="r_atr, r_risk, ret_pct"):
        reward("pips", 1.0, 1.0, 1.0, 100.0, 1.0)


def test_the_units_are_the_ones_config_and_evaluation_accept() -> None:
    assert tuple(config.REWARD_UNITS) == REWARD_UNITS == tuple(outcomes.UNITS)


def test_stop_nudge_has_one_home() -> None:
    assert simulator.STOP_NUDGE is trade_math.STOP_NUDGE == 1e-10


@pytest.mark.parametrize(("is_short", "direction"), [(False, -1), (True, 1)])
def test_nudged_stop_moves_away_from_the_price(is_short: bool, direction: int) -> None:
    stop = 101.02
    assert nudged_stop(stop, is_short) == stop * (1 + direction * STOP_NUDGE)
    assert (nudged_stop(stop, is_short) - stop) * direction > 0


def test_signal_candle_is_the_candle_before_the_entry_candle() -> None:
    entry = datetime(2024, 3, 1, 12, tzinfo=UTC)
    assert signal_candle(entry, timedelta(hours=1)) == datetime(2024, 3, 1, 11, tzinfo=UTC)
    assert signal_candle(entry, timedelta(hours=4)) == datetime(2024, 3, 1, 8, tzinfo=UTC)
    opens = pd.Series(pd.date_range(entry, periods=3, freq="1h", tz="UTC"))
    got = signal_candle(opens, pd.Timedelta(hours=1))
    assert list(got) == [pd.Timestamp(entry) + pd.Timedelta(hours=k) for k in (-1, 0, 1)]
