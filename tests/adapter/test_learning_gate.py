"""The entry gate in process, on the bundled candles: a real signal meets the policy (and may
be stood aside), a forced entry never does; a bandit with stand-aside draws once per signal
however often Freqtrade asks again."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from conftest import DATADIR
from freqtrade.data.converter import ohlcv_fill_up_missing_data
from freqtrade.enums import RunMode

from freqtrade_metastrategy.strategy import MetaStrategyBase


class _Meta(MetaStrategyBase):
    pass


def analysed(tmp_path: Path, section: dict[str, Any]) -> tuple[_Meta, pd.DataFrame]:
    s = _Meta({"runmode": RunMode.BACKTEST, "timeframe": "1h", "stake_currency": "USDT",
               "user_data_dir": str(tmp_path), "metastrategy": section})
    raw = pd.read_feather(DATADIR / "BTC_USDT-1h.feather")
    raw = ohlcv_fill_up_missing_data(raw[raw["date"] < "2023-01-01"], "1h", "BTC/USDT")
    frame = s.advise_entry(s.populate_indicators(raw.copy(), {"pair": "BTC/USDT"}),
                           {"pair": "BTC/USDT"})
    s.bot_start()
    s.bot_loop_start(current_time=frame["date"].iloc[0].to_pydatetime())
    return s, frame


def confirm(s: _Meta, signal: pd.Timestamp, tag: str | None = None) -> bool:
    return s.confirm_trade_entry("BTC/USDT", "market", 1.0, 1.0, "GTC",
                                 current_time=(signal + timedelta(hours=1)).to_pydatetime(),
                                 entry_tag=tag, side="long")


def test_signals_meet_the_gate_forced_entries_do_not(tmp_path: Path) -> None:
    # a margin no profile reaches: every decided signal after the warm-up is stood aside
    s, frame = analysed(tmp_path, {"min_signals": 5, "stand_aside_margin": 100.0})
    signals = frame.loc[frame["enter_long"] == 1, "date"]
    late = signals.iloc[-1]
    assert not confirm(s, late)                      # the strategy's signal: stood aside
    assert confirm(s, late, "force_entry")           # the same candle, forced: trades
    quiet = frame.loc[(frame["enter_long"] != 1) & (frame["date"] > late - timedelta(days=30)),
                      "date"].iloc[-1]
    assert confirm(s, quiet)                         # a candle without a signal: forced
    assert s.decision_counts and sum(c[1] for c in s.decision_counts.values()) == 1


@pytest.mark.parametrize("asks", [1, 5])
def test_a_bandit_with_stand_aside_draws_once_per_signal(tmp_path: Path, asks: int) -> None:
    s, frame = analysed(tmp_path, {"policy": "epsilon_greedy", "stand_aside": True,
                                   "epsilon": 0.5, "seed": 3})
    signals = frame.loc[frame["enter_long"] == 1, "date"]
    answers = [confirm(s, signals.iloc[-1]) for _ in range(asks)]
    assert s.selector.total_decisions == 1
    assert len(set(answers)) == 1
    assert np.isfinite(s.selector.epsilon)
