"""Live and dry-run behaviour on Freqtrade's real trades database (SQLite via init_db): the
settlement fallback and the order-book liquidity check."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from freqtrade.enums import RunMode
from freqtrade.persistence import Order, Trade, init_db

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


def closed_trade(pair: str, realized: float, *, frozen: bool = True,
                 closed: datetime = T0 + timedelta(hours=5)) -> Trade:
    trade = Trade(pair=pair, open_rate=100.0, amount=10.0, stake_amount=1000.0, open_date=T0,
                  fee_open=0.001, fee_close=0.001, is_open=False, exchange="binance",
                  close_date=closed, close_rate=103.0, leverage=1.0)
    # as Freqtrade records them when the trade closes
    trade.realized_profit = trade.close_profit_abs = realized
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


def new_store(tmp_path: Path, since: datetime = T0) -> None:
    """Create the bot's store with its watermark at ``since`` (as if created then)."""
    with SqlStore(f"sqlite:///{tmp_path / 'q.sqlite'}") as store:
        store.reset(now=since)


def test_start_up_settles_closed_trades_whose_reward_is_missing(
    tmp_path: Path, trades_db: None, caplog: pytest.LogCaptureFixture
) -> None:
    new_store(tmp_path)
    won = closed_trade("BTC/USDT", realized=30.0)        # 30 / (10 x 2.0) = +1.5 R
    lost = closed_trade("ETH/USDT", realized=-20.0)      # -1.0 R
    closed_trade("XRP/USDT", realized=5.0, frozen=False)  # not ours: ignored
    s = dry_run_strategy(tmp_path)
    with caplog.at_level(logging.INFO):
        s.bot_start()  # opens the live store and sweeps
    assert "[RL] settled 2 closed trade(s) whose reward was missing" in caplog.text
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


def test_sweep_settles_in_close_order_whatever_the_database_order(
    tmp_path: Path, trades_db: None
) -> None:
    """The EMA depends on the order: trades are settled in the order they closed."""
    new_store(tmp_path)
    hours = [7, 3, 9, 5, 4]  # inserted out of order (ids ascend, close times do not)
    trades = [closed_trade("BTC/USDT", realized=float(10 * h), closed=T0 + timedelta(hours=h))
              for h in hours]
    s = dry_run_strategy(tmp_path)
    s.bot_start()
    rows = s.selector.store.ledger()
    by_close = sorted(trades, key=lambda t: t.close_date_utc)
    assert [r.trade_id for r in rows] == [trade_key(t) for t in by_close]
    assert [r.settled_at for r in rows] == [t.close_date_utc for t in by_close]


def test_reset_is_not_undone_by_the_next_start(tmp_path: Path, trades_db: None) -> None:
    """Trades that closed before the store's watermark (its creation, a reset, an import
    --replace) are never settled into it: ``reset`` stays reset across restarts."""
    new_store(tmp_path)
    old = [closed_trade(pair, realized=30.0) for pair in ("BTC/USDT", "ETH/USDT")]
    s = dry_run_strategy(tmp_path)
    s.bot_start()
    assert len(s.selector.store.ledger()) == 2
    with SqlStore(f"sqlite:///{tmp_path / 'q.sqlite'}") as store:
        store.reset(now=T0 + timedelta(hours=6))  # `freqtrade-metastrategy reset`
    later = closed_trade("SOL/USDT", realized=-20.0, closed=T0 + timedelta(hours=8))
    restarted = dry_run_strategy(tmp_path)
    restarted.bot_start()
    assert [r.trade_id for r in restarted.selector.store.ledger()] == [trade_key(later)]
    for trade in old:
        # not even through the fill handling Freqtrade re-runs every loop for closed trades
        # whose exit fee was never assigned
        exit_order = Order(ft_order_side="sell", ft_pair=trade.pair, ft_is_open=False,
                           ft_amount=10.0, ft_price=103.0, order_id=f"x{trade.id}",
                           status="closed", symbol=trade.pair, order_type="market",
                           side="sell", price=103.0, average=103.0, amount=10.0, filled=10.0,
                           remaining=0.0, cost=1030.0, order_filled_date=trade.close_date)
        restarted.order_filled(pair=trade.pair, trade=trade, order=exit_order,
                               current_time=T0 + timedelta(hours=9))
        assert not restarted.selector.store.is_settled(trade_key(trade))
    # a new store_url: a new store, a new watermark (now): nothing of the past comes in
    fresh = _Meta({"runmode": RunMode.DRY_RUN, "timeframe": "1h", "stake_currency": "USDT",
                   "user_data_dir": str(tmp_path),
                   "metastrategy": {"store_url": f"sqlite:///{tmp_path / 'new.sqlite'}"}})
    fresh.bot_start()
    assert fresh.selector.store.ledger() == []


def test_periodic_sweep_runs_at_most_every_15_minutes(tmp_path: Path, trades_db: None) -> None:
    new_store(tmp_path)
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


# -- order-book liquidity (live and dry-run only) ------------------------------------------------


class _Book:
    """The strategy's view of the exchange's order books (``dp.orderbook``), per pair."""

    def __init__(self, levels: dict[str, tuple[float, float, int]]) -> None:
        # pair -> (mid, quote notional per level, number of levels in 0.5 bp steps)
        self.levels = levels
        self.calls: list[tuple[str, int]] = []
        self.fail = False

    def orderbook(self, pair: str, maximum: int) -> dict[str, list[list[float]]]:
        self.calls.append((pair, maximum))
        if self.fail:
            raise RuntimeError("exchange down")
        mid, notional, count = self.levels[pair]
        count = min(count, maximum)
        bids = [[mid * (1 - (0.5 + i * 0.5) / 1e4), notional / mid] for i in range(count)]
        asks = [[mid * (1 + (0.5 + i * 0.5) / 1e4), notional / mid] for i in range(count)]
        return {"bids": bids, "asks": asks}


def _with_signal(s: _Meta, pair: str, regime: str = "trend_up") -> None:
    signal = int((T0 - timedelta(hours=1)).timestamp())
    s._signal_arrays[pair] = (np.array([signal]), np.array([regime]), np.array([2.0]),
                              np.array([0.8]))


def _confirm(s: _Meta, pair: str, when: datetime = T0) -> bool:
    return s.confirm_trade_entry(pair, "market", 1.0, 100.0, "GTC", when, None, "long")


@pytest.mark.parametrize(
    ("notional", "count", "expect_ok"),
    [
        (10_000.0, 20, True),    # 10 levels within 5 bps per side: $200k
        (2_000.0, 20, False),    # $40k < $50k
    ],
)
def test_live_entry_checks_order_book_depth(
    tmp_path: Path, notional: float, count: int, expect_ok: bool
) -> None:
    s = dry_run_strategy(tmp_path)
    s.dp = _Book({"BTC/USDT": (100.0, notional, count)})  # type: ignore[assignment]
    _with_signal(s, "BTC/USDT")
    assert _confirm(s, "BTC/USDT") is expect_ok


def test_live_wide_spread_is_illiquid_and_regime_is_frozen(
    tmp_path: Path, trades_db: None, caplog: pytest.LogCaptureFixture
) -> None:
    s = _Meta({"runmode": RunMode.DRY_RUN, "timeframe": "1h", "stake_currency": "USDT",
               "user_data_dir": str(tmp_path),
               "metastrategy": {"store_url": f"sqlite:///{tmp_path / 'q.sqlite'}",
                                "block_illiquid": False}})
    book = _Book({"ETH/USDT": (100.0, 50_000.0, 20)})
    s.dp = book  # type: ignore[assignment]
    _with_signal(s, "ETH/USDT", "trend_up")

    def wide(pair: str, maximum: int) -> dict[str, list[list[float]]]:
        book.calls.append((pair, maximum))
        return {"bids": [[99.9, 1000.0]], "asks": [[100.1, 1000.0]]}  # 20 bps

    book.orderbook = wide  # type: ignore[method-assign]
    assert _confirm(s, "ETH/USDT") is True  # not blocked: block_illiquid is off
    trade = Trade(pair="ETH/USDT", open_rate=100.0, amount=10.0, stake_amount=1000.0,
                  open_date=T0, fee_open=0.001, fee_close=0.001, is_open=True,
                  exchange="binance", leverage=1.0)
    Trade.session.add(trade)
    Trade.commit()
    with caplog.at_level(logging.INFO):
        state = s._freeze("ETH/USDT", trade, T0 + timedelta(seconds=2))
    assert state.regime == "illiquid"
    assert len(book.calls) == 1  # the fill reused the confirmation's snapshot
    assert "spread=20.0bps > 10.0bps" in caplog.text
    assert json.loads(trade.get_custom_data(CUSTOM_DATA_KEY))["regime"] == "illiquid"


def test_live_book_truncated_inside_band_is_fetched_deeper(tmp_path: Path) -> None:
    s = dry_run_strategy(tmp_path)
    # Only 4 levels per side (0.5..2 bps): the book ends inside the 5 bps band.
    book = _Book({"BTC/USDT": (100.0, 5_000.0, 4)})
    s.dp = book  # type: ignore[assignment]
    _with_signal(s, "BTC/USDT")
    assert _confirm(s, "BTC/USDT") is False  # 8 levels x 5k = 40k, even after asking for more
    assert book.calls == [("BTC/USDT", 100), ("BTC/USDT", 1000)]


def test_live_book_failure_falls_back_to_volume(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    s = dry_run_strategy(tmp_path)
    book = _Book({})
    book.fail = True
    s.dp = book  # type: ignore[assignment]
    _with_signal(s, "BTC/USDT")
    with caplog.at_level(logging.WARNING):
        assert _confirm(s, "BTC/USDT") is True
    assert "order book unavailable" in caplog.text


def test_backtest_never_reads_order_books(tmp_path: Path) -> None:
    s = _Meta({"runmode": RunMode.BACKTEST, "timeframe": "1h", "stake_currency": "USDT",
               "user_data_dir": str(tmp_path)})
    book = _Book({"BTC/USDT": (100.0, 1.0, 1)})
    s.dp = book  # type: ignore[assignment]
    _with_signal(s, "BTC/USDT")
    assert _confirm(s, "BTC/USDT") is True
    _with_signal(s, "BTC/USDT", "illiquid")
    assert _confirm(s, "BTC/USDT") is False  # volume-based illiquid still blocks
    assert book.calls == []


def _exit_order(trade: Trade) -> Order:
    return Order(ft_order_side="sell", ft_pair=trade.pair, ft_is_open=False, ft_amount=10.0,
                 ft_price=103.0, order_id=f"x{trade.id}", status="closed", symbol=trade.pair,
                 order_type="market", side="sell", price=103.0, average=103.0, amount=10.0,
                 filled=10.0, remaining=0.0, cost=1030.0, order_filled_date=trade.close_date)


def test_reset_by_another_process_between_check_and_write_keeps_an_old_trade_out(
    tmp_path: Path, trades_db: None
) -> None:
    """The closing fill checks the watermark, ``freqtrade-metastrategy reset`` runs in another
    process, then the reward is written: the store refuses it in the write's transaction."""
    new_store(tmp_path)
    s = dry_run_strategy(tmp_path)
    s.bot_start()
    trade = closed_trade("BTC/USDT", realized=30.0, closed=T0 + timedelta(hours=5))
    store = s.selector.store
    real = store.apply_reward

    def racing(*args: object, **kwargs: object) -> object:
        with SqlStore(f"sqlite:///{tmp_path / 'q.sqlite'}") as other:
            other.reset(now=T0 + timedelta(hours=6))  # after the trade closed
        return real(*args, **kwargs)  # type: ignore[arg-type]

    store.apply_reward = racing  # type: ignore[method-assign, assignment]
    s.order_filled(pair=trade.pair, trade=trade, order=_exit_order(trade),
                   current_time=T0 + timedelta(hours=7))
    store.apply_reward = real  # type: ignore[method-assign]
    assert store.watermark() == T0 + timedelta(hours=6)
    assert store.ledger() == []


def test_a_trade_closed_exactly_at_the_watermark_is_swept(tmp_path: Path, trades_db: None) -> None:
    mark = T0 + timedelta(hours=3, microseconds=123456)
    new_store(tmp_path, since=mark)
    at = closed_trade("BTC/USDT", realized=10.0, closed=mark)
    before = closed_trade("ETH/USDT", realized=10.0, closed=mark - timedelta(microseconds=1))
    s = dry_run_strategy(tmp_path)
    s.bot_start()
    assert [r.trade_id for r in s.selector.store.ledger()] == [trade_key(at)]
    assert not s.selector.store.is_settled(trade_key(before))
