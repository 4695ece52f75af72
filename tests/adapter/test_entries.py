"""``entries``: a strategy's signals and candles for the offline evaluation, on the bundled data.

One short timerange of the bundled 1h candles (BTC/ETH/SOL/XRP, ``user_data/data/binance``),
loaded once; ``load_pair_history`` is spied on to see what was read from disk.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from conftest import DATADIR, PAIRS, REPO_ROOT, base_config

from freqtrade_metastrategy.entries import EntrySet, entries_from_frame, load_config, load_entries
from freqtrade_metastrategy.errors import MetaStrategyError
from freqtrade_metastrategy.strategy import MetaStrategyBase
from freqtrade_metastrategy.timerange import TimerangeError

TIMERANGE = "20230301-20230315"
START = pd.Timestamp("2023-03-01", tz="UTC")
END = pd.Timestamp("2023-03-15", tz="UTC")
STARTUP = MetaStrategyBase.startup_candle_count


@dataclass
class Loaded:
    config: dict[str, Any]
    entry_set: EntrySet
    raw: dict[str, pd.DataFrame]  # what load_pair_history returned, per pair


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> Loaded:
    from freqtrade.data import history

    root = tmp_path_factory.mktemp("entries")
    (root / "user_data").mkdir()
    cfg = base_config(root / "user_data") | {
        "strategy": "MetaStrategy",
        "strategy_path": str(REPO_ROOT / "user_data" / "strategies"),
        "datadir": str(DATADIR),
    }
    (root / "config.json").write_text(json.dumps(cfg))
    config = load_config([root / "config.json"])
    raw: dict[str, pd.DataFrame] = {}
    real = history.load_pair_history

    def spy(**kwargs: Any) -> pd.DataFrame:
        df: pd.DataFrame = real(**kwargs)
        raw[kwargs["pair"]] = df.copy()
        return df

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(history, "load_pair_history", spy)
        entry_set = load_entries(config, TIMERANGE)
    return Loaded(config, entry_set, raw)


def _analysed(config: dict[str, Any], pair: str, df: pd.DataFrame) -> pd.DataFrame:
    from freqtrade.resolvers import StrategyResolver

    strat = StrategyResolver.load_strategy(config)
    strat.ft_bot_start()
    frame: pd.DataFrame = strat.ft_advise_signals(
        strat.advise_all_indicators({pair: df.copy()})[pair], {"pair": pair})
    return frame


def test_signals_are_the_enter_long_rows_of_the_timerange(loaded: Loaded) -> None:
    es = loaded.entry_set
    assert es.strategy == "MetaStrategy" and es.timeframe == "1h"
    assert es.timerange == (START, END)
    assert set(es.signals) == set(PAIRS)
    for pair in PAIRS:
        frame = _analysed(loaded.config, pair, loaded.raw[pair])
        rows = frame[(frame["date"] >= START) & (frame["date"] < END)
                     & (frame["enter_long"] == 1)]
        liquid = rows[rows["regime"].astype(str) != "illiquid"]
        got = [e for e in es.entries if e.pair == pair]
        assert es.signals[pair] == len(rows)
        assert [e.signal_time for e in got] == list(liquid["date"])
        assert [e.r_unit for e in got] == liquid["atr"].tolist()
        assert [e.regime for e in got] == liquid["regime"].astype(str).tolist()
        assert {e.side for e in got} <= {"long"}
    assert len(es.entries) > 0
    assert es.dropped_illiquid == sum(es.signals.values()) - len(es.entries)
    keys = [(e.signal_time, e.pair) for e in es.entries]
    assert keys == sorted(keys)


def test_startup_candles_are_loaded_then_dropped(loaded: Loaded) -> None:
    hours = int((END - START) / pd.Timedelta("1h"))
    for pair in PAIRS:
        raw = loaded.raw[pair]
        assert raw["date"].iloc[0] == START - STARTUP * pd.Timedelta("1h")
        candles = loaded.entry_set.candles[pair]
        assert list(candles.columns) == ["date", "open", "high", "low", "close", "volume"]
        assert candles["date"].iloc[0] == START
        assert candles["date"].iloc[-1] == END - pd.Timedelta("1h")
        assert len(candles) == hours
        assert candles.index.tolist() == list(range(hours))
        expected = raw[raw["date"] >= START].iloc[:hours].reset_index(drop=True)
        pd.testing.assert_frame_equal(candles, expected[candles.columns])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("20230301", "timerange '20230301': expected YYYYMMDD-YYYYMMDD"),
        ("20230301-", "timerange '20230301-': expected YYYYMMDD-YYYYMMDD"),
        ("-20230315", "timerange '-20230315': expected YYYYMMDD-YYYYMMDD"),
        ("2023-03-01", "timerange '2023-03-01': expected YYYYMMDD-YYYYMMDD"),
        ("20230315-20230301", "timerange '20230315-20230301': start 2023-03-15 00:00:00+00:00 "
                              "must be before end 2023-03-01 00:00:00+00:00"),
    ],
)
def test_a_bad_timerange_names_the_field(text: str, message: str) -> None:
    """Refused before the strategy is even resolved (an empty config would fail there)."""
    with pytest.raises(TimerangeError) as info:
        load_entries({}, text)
    assert str(info.value) == message
    assert isinstance(info.value, MetaStrategyError)


def test_load_config_refuses_missing_files(tmp_path: Path) -> None:
    with pytest.raises(MetaStrategyError, match=r"no config file given \(-c CONFIG\)"):
        load_config([])
    missing = tmp_path / "nope.json"
    with pytest.raises(MetaStrategyError, match=f"config file {missing} does not exist"):
        load_config([missing])


def test_entries_from_frame() -> None:
    """Half-open range, both-sides conflicts ignored, illiquid signals dropped on request."""
    dates = pd.date_range("2024-01-01", periods=6, freq="1h", tz="UTC")
    frame = pd.DataFrame({
        "date": dates,
        "enter_long": [1, 1, 0, 1, 1, 1],
        "enter_short": [0, 1, 1, 0, 0, 0],
        "regime": ["trend_up", "trend_up", "trend_down", "illiquid", "range_low_vol", "x"],
        "atr": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
    })
    start, end = dates[0], dates[5]
    got, dropped = entries_from_frame(frame, "AAA/USDT", start, end, block_illiquid=True)
    assert [(e.signal_time, e.side, e.r_unit, e.regime) for e in got] == [
        (dates[0], "long", 1.0, "trend_up"),
        (dates[4], "long", 5.0, "range_low_vol"),
        (dates[2], "short", 3.0, "trend_down"),
    ]
    assert dropped == 1
    got, dropped = entries_from_frame(frame, "AAA/USDT", start, end, block_illiquid=False)
    assert [e.signal_time for e in got] == [dates[0], dates[3], dates[4], dates[2]]
    assert dropped == 0
    bare = frame[["date", "enter_long"]]
    got, _ = entries_from_frame(bare, "AAA/USDT", start, end, block_illiquid=True)
    assert [e.regime for e in got] == ["unknown"] * 4
    assert np.isnan([e.r_unit for e in got]).all()
