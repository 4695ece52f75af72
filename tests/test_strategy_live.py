"""Live-mode settlement fallback, on Freqtrade's real trades database (SQLite via init_db)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from freqtrade.enums import RunMode
from freqtrade.persistence import Trade, init_db

from freqtrade_metastrategy.exitplan import TradePlan
from freqtrade_metastrategy.profiles import get_strategy_profile
from freqtrade_metastrategy.store import SqlStore
from freqtrade_metastrategy.strategy import (
    CUSTOM_DATA_KEY,
    MetaStrategyBase,
    TradeState,
    trade_key,
)

T0 = datetime(2024, 3, 1, 12, tzinfo=UTC)


class _Meta(MetaStrategyBase):
    pass


@pytest.fixture
def trades_db(tmp_path: Path) -> Iterator[None]:
    init_db(f"sqlite:///{tmp_path / 'trades.sqlite'}")
    yield
    Trade.session.remove()


def closed_trade(pair: str, realized: float, *, frozen: bool = True) -> Trade:
    trade = Trade(pair=pair, open_rate=100.0, amount=10.0, stake_amount=1000.0, open_date=T0,
                  fee_open=0.001, fee_close=0.001, is_open=False, exchange="binance",
                  close_date=T0 + timedelta(hours=5), close_rate=103.0, leverage=1.0)
    trade.realized_profit = realized  # as Freqtrade records it when the trade closes
    Trade.session.add(trade)
    Trade.commit()
    if frozen:
        state = TradeState(TradePlan(get_strategy_profile("moderate"), False, 100.0, 2.0),
                           regime="trend_up", amount=10.0, probability=0.9, explored=False)
        trade.set_custom_data(CUSTOM_DATA_KEY, state.to_json())
    return trade


def dry_run_strategy(tmp_path: Path) -> _Meta:
    store_url = f"sqlite:///{tmp_path / 'q.sqlite'}"
    return _Meta({"runmode": RunMode.DRY_RUN, "timeframe": "1h", "stake_currency": "USDT",
                  "user_data_dir": str(tmp_path), "metastrategy": {"store_url": store_url}})


def test_start_up_settles_closed_trades_whose_reward_is_missing(
    tmp_path: Path, trades_db: None
) -> None:
    won = closed_trade("BTC/USDT", realized=30.0)        # 30 / (10 x 2.0) = +1.5 R
    lost = closed_trade("ETH/USDT", realized=-20.0)      # -1.0 R
    closed_trade("XRP/USDT", realized=5.0, frozen=False)  # not ours: ignored
    s = dry_run_strategy(tmp_path)
    s.bot_start()  # opens the live store and sweeps
    ledger = {r.trade_id: r for r in s.selector.store.ledger()}
    assert set(ledger) == {trade_key(won), trade_key(lost)}
    assert ledger[trade_key(won)].reward == pytest.approx(1.5)
    assert ledger[trade_key(lost)].reward == pytest.approx(-1.0)
    assert ledger[trade_key(won)].probability == 0.9
    assert ledger[trade_key(won)].settled_at == T0 + timedelta(hours=5)
    # a restart sweeps again and settles nothing twice
    again = dry_run_strategy(tmp_path)
    again.bot_start()
    assert again.settle_unsettled_trades(since=None) == 0
    with SqlStore(f"sqlite:///{tmp_path / 'q.sqlite'}") as store:
        assert len(store.ledger()) == 2
        cell = store.get("BTC/USDT", "trend_up", "moderate")
        assert cell is not None and cell.count == 1


def test_periodic_sweep_runs_at_most_every_15_minutes(tmp_path: Path, trades_db: None) -> None:
    s = dry_run_strategy(tmp_path)
    s.bot_start()
    late = closed_trade("SOL/USDT", realized=10.0)
    now = T0 + timedelta(hours=6)
    s.bot_loop_start(current_time=now)               # first loop: sweeps
    assert s.selector.store.is_settled(trade_key(late))
    closed_trade("ADA/USDT", realized=10.0)
    s.bot_loop_start(current_time=now + timedelta(minutes=5))
    assert len(s.selector.store.ledger()) == 1       # not yet
    s.bot_loop_start(current_time=now + timedelta(minutes=16))
    assert len(s.selector.store.ledger()) == 2
