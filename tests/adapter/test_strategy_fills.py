"""The exit ladder and its settlement through Freqtrade's own live fill handling, in process.

Each fill goes through what ``FreqtradeBot.update_trade_state`` does with a filled order on
Freqtrade's real trades database: the order is added to the trade, ``Trade.update_trade``
recalculates the trade from its orders (live: *before* the strategy hears of the fill), then
``order_filled`` is called with a deep copy of the trade. Partial exits are sized the way
``check_and_call_adjust_trade_position`` sizes them from the stake the strategy returns.

Parametrised over every built-in profile and a user profile, long (spot) and short (futures):
a test that only used one profile would prove that profile only (the live ladder once broke for
every profile whose TP1 fraction equals what remains after it).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from copy import deepcopy
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from freqtrade.enums import RunMode, TradingMode
from freqtrade.persistence import Order, Trade, init_db

from freqtrade_metastrategy.profiles import BUILTIN_PROFILES, StrategyProfile
from freqtrade_metastrategy.store import SqlStore
from freqtrade_metastrategy.strategy import CUSTOM_DATA_KEY, MetaStrategyBase, trade_key

#: After the store's watermark (the store is created when the test's strategy starts).
T0 = (datetime.now(UTC) + timedelta(days=1)).replace(minute=0, second=0, microsecond=0)
ENTRY, ONE_R, AMOUNT, FEE = 100.0, 2.0, 10.0, 0.001
USER_ID = "my_ladder"
USER_PROFILE: dict[str, Any] = {
    "r_sl": 1.2, "r_tp1": 1.5, "r_tp2": 2.5, "r_tp3": 4.0, "partial_close_tp1": 0.4,
    "partial_close_tp2": 0.4, "partial_close_tp3": 0.2, "trail_distance_r": 0.7,
}
PROFILES = [*sorted(BUILTIN_PROFILES), USER_ID]
SIDES = ["long", "short"]


class _Meta(MetaStrategyBase):
    can_short = True


@pytest.fixture
def trades_db(tmp_path: Path) -> Iterator[None]:
    init_db(f"sqlite:///{tmp_path / 'trades.sqlite'}")
    yield
    Trade.session.remove()


def strategy(tmp_path: Path, profile: str, runmode: RunMode = RunMode.DRY_RUN) -> _Meta:
    s = _Meta({
        "runmode": runmode, "timeframe": "1h", "stake_currency": "USDT",
        "user_data_dir": str(tmp_path),
        "metastrategy": {"store_url": f"sqlite:///{tmp_path / 'q.sqlite'}", "enabled": False,
                         "default_strategy": profile,
                         "profiles": {USER_ID: USER_PROFILE}},
    })
    s.bot_start()
    signal = int((T0 - timedelta(hours=1)).timestamp())
    s._signal_arrays["BTC/USDT"] = (np.array([signal]), np.array(["trend_up"]),
                                    np.array([ONE_R]), np.array([0.8]))
    return s


class LiveBook:
    """Orders, fills and calls, as ``FreqtradeBot`` makes them (see the module docstring)."""

    def __init__(self, s: _Meta, side: str) -> None:
        self.s, self.short = s, side == "short"
        self.n = 0
        self.trade = Trade(
            pair="BTC/USDT", open_rate=ENTRY, amount=AMOUNT, amount_requested=AMOUNT,
            stake_amount=ENTRY * AMOUNT, open_date=T0, fee_open=FEE, fee_close=FEE,
            is_open=True, exchange="binance", leverage=1.0, is_short=self.short,
            trading_mode=TradingMode.FUTURES if self.short else TradingMode.SPOT,
            interest_rate=0.0, stop_loss=0.0, stop_loss_pct=-0.99, initial_stop_loss=0.0,
            initial_stop_loss_pct=-0.99, max_rate=ENTRY, min_rate=ENTRY,
        )
        Trade.session.add(self.trade)
        Trade.commit()

    @property
    def sign(self) -> int:
        return -1 if self.short else 1

    def price(self, r: float) -> float:
        return ENTRY + self.sign * r * ONE_R

    def order(self, side: str, amount: float, price: float, tag: str | None,
              when: datetime) -> Order:
        """A filled market order, added to the trade."""
        self.n += 1
        order = Order(
            ft_order_side=side, ft_pair=self.trade.pair, ft_is_open=False, ft_amount=amount,
            ft_price=price, order_id=f"o{self.n}", status="closed", symbol=self.trade.pair,
            order_type="market", side=side, price=price, average=price, amount=amount,
            filled=amount, remaining=0.0, cost=amount * price, order_date=when,
            order_filled_date=when, ft_order_tag=tag, funding_fee=0.0,
        )
        self.trade.orders.append(order)
        return order

    def fill(self, side: str, amount: float, price: float, tag: str | None = None,
             when: datetime = T0) -> Order:
        order = self.order(side, amount, price, tag, when)
        Trade.commit()
        self.trade.update_trade(order)  # live: recalculated from its orders first
        self.s.order_filled(pair=self.trade.pair, trade=deepcopy(self.trade), order=order,
                            current_time=when)
        return order

    def enter(self) -> None:
        self.fill(self.trade.entry_side, AMOUNT, ENTRY, "force_entry")

    def move(self, price: float) -> None:
        """The price the loop sees: best price since entry, as ``adjust_min_max_rates``."""
        self.trade.adjust_min_max_rates(price, price)

    def adjust(self, exit_rate: float, entry_rate: float | None = None,
               when: datetime = T0) -> tuple[float, str] | None:
        """``adjust_trade_position`` as the live loop calls it; a partial exit is filled."""
        entry_rate = exit_rate if entry_rate is None else entry_rate
        t = self.trade
        out = self.s.adjust_trade_position(
            trade=deepcopy(t), current_time=when, current_rate=entry_rate,
            current_profit=t.calc_profit_ratio(entry_rate), min_stake=1.0, max_stake=1e9,
            current_entry_rate=entry_rate, current_exit_rate=exit_rate,
            current_entry_profit=t.calc_profit_ratio(entry_rate),
            current_exit_profit=t.calc_profit_ratio(exit_rate),
        )
        if out is None or out[0] is None:
            return None
        stake, tag = out
        assert stake < 0 and tag
        amount = abs(stake) * t.amount / t.stake_amount  # Freqtrade's own conversion
        self.fill(t.exit_side, amount, exit_rate, tag, when)
        return amount, tag

    def stop(self, rate: float) -> float:
        """The absolute stop the strategy asks for after a fill (``after_fill=True``)."""
        ratio = self.s.custom_stoploss(
            pair=self.trade.pair, trade=deepcopy(self.trade), current_time=T0,
            current_rate=rate, current_profit=0.0, after_fill=True,
        )
        assert ratio is not None
        return rate * (1 + ratio) if self.short else rate * (1 - ratio)


def ledger(tmp_path: Path) -> list[Any]:
    with SqlStore(f"sqlite:///{tmp_path / 'q.sqlite'}") as store:
        return list(store.ledger())


def profile_of(s: _Meta, name: str) -> StrategyProfile:
    return s.ms_config.profiles[name]


@pytest.mark.parametrize("side", SIDES)
@pytest.mark.parametrize("name", PROFILES)
def test_live_ladder_runs_every_step_and_settles_once(
    tmp_path: Path, trades_db: None, name: str, side: str
) -> None:
    s = strategy(tmp_path, name)
    p = profile_of(s, name)
    book = LiveBook(s, side)
    book.enter()
    state = s.trade_state(book.trade.id)
    assert state is not None and state.profile.strategy_id == name
    assert book.stop(ENTRY) == pytest.approx(book.price(-p.r_sl), rel=1e-9)

    # TP1: the first fraction closes, tagged tp1; the stop moves to breakeven; no reward yet
    at_tp1 = book.price(p.r_tp1 + min(0.5, (p.r_tp2 - p.r_tp1) / 2))
    book.move(at_tp1)
    amount, tag = book.adjust(at_tp1) or (0.0, "")
    assert (tag, amount) == ("tp1", pytest.approx(p.partial_close_tp1 * AMOUNT, rel=1e-9))
    assert book.trade.is_open and s.trade_state(book.trade.id).stage == 1  # type: ignore[union-attr]
    assert ledger(tmp_path) == []
    assert book.stop(at_tp1) == pytest.approx(book.price(p.breakeven_offset_r), rel=1e-9)
    assert book.adjust(at_tp1) is None  # nothing more until TP2

    # TP2: the second fraction, tagged tp2; the stop trails behind the best price
    at_tp2 = book.price(p.r_tp2 + min(0.5, (p.r_tp3 - p.r_tp2) / 2))
    book.move(at_tp2)
    amount, tag = book.adjust(at_tp2) or (0.0, "")
    assert (tag, amount) == ("tp2", pytest.approx(p.partial_close_tp2 * AMOUNT, rel=1e-9))
    assert ledger(tmp_path) == []
    assert book.stop(at_tp2) == pytest.approx(
        book.price(p.r_tp2 + min(0.5, (p.r_tp3 - p.r_tp2) / 2) - p.trail_distance_r), rel=1e-9)
    assert book.adjust(at_tp2) is None

    # TP3 closes the rest (ROI): one reward, the whole trade's R from its fills
    at_tp3 = book.price(p.r_tp3)
    book.fill(book.trade.exit_side, book.trade.amount, at_tp3, "roi")
    assert not book.trade.is_open
    rows = ledger(tmp_path)
    assert len(rows) == 1 and rows[0].trade_id == trade_key(book.trade)
    expected = independent_r(book, p)
    assert rows[0].reward == pytest.approx(expected, rel=1e-9)
    assert rows[0].reward * ONE_R * AMOUNT == pytest.approx(book.trade.close_profit_abs, abs=1e-6)
    assert rows[0].strategy == name


def independent_r(book: LiveBook, p: StrategyProfile) -> float:
    """R recomputed from the plan: every fill at its level, fees on each fill."""
    sgn = book.sign
    legs = [(p.partial_close_tp1, book.price(p.r_tp1 + min(0.5, (p.r_tp2 - p.r_tp1) / 2))),
            (p.partial_close_tp2, book.price(p.r_tp2 + min(0.5, (p.r_tp3 - p.r_tp2) / 2))),
            (1 - p.partial_close_tp1 - p.partial_close_tp2, book.price(p.r_tp3))]
    pnl = -sgn * AMOUNT * ENTRY - AMOUNT * ENTRY * FEE
    for frac, price in legs:
        pnl += sgn * frac * AMOUNT * price - frac * AMOUNT * price * FEE
    return pnl / (AMOUNT * ONE_R)


@pytest.mark.parametrize("side", SIDES)
def test_tp_waits_for_the_price_the_partial_fills_at(
    tmp_path: Path, trades_db: None, side: str
) -> None:
    """Live, ``current_rate`` is the entry side of the book; the partial fills at the exit
    side. TP1 is taken only when the exit side has reached it."""
    s = strategy(tmp_path, "moderate")
    p = profile_of(s, "moderate")
    book = LiveBook(s, side)
    book.enter()
    tp1 = book.price(p.r_tp1)
    inside = book.price(p.r_tp1 - 0.01)  # the exit side, a hair short of TP1
    book.move(inside)
    assert book.adjust(inside, entry_rate=book.price(p.r_tp1 + 0.01)) is None
    book.move(tp1)
    assert book.adjust(tp1, entry_rate=book.price(p.r_tp1 + 0.01)) is not None


@pytest.mark.parametrize("side", SIDES)
def test_tp_is_never_taken_at_a_loss_after_fees(
    tmp_path: Path, trades_db: None, side: str
) -> None:
    """TP1 was reached, the price fell back to just beyond the entry: a partial there would lose
    the fees. It waits until the exit price pays them."""
    s = strategy(tmp_path, "moderate")
    p = profile_of(s, "moderate")
    book = LiveBook(s, side)
    book.enter()
    book.move(book.price(p.r_tp1 + 0.2))  # seen earlier in the loop (e.g. between two calls)
    just_above = ENTRY * (1 + book.sign * 0.0015)  # +0.15%: less than the 0.2% round-trip fee
    assert book.adjust(just_above) is None
    paying = ENTRY * (1 + book.sign * 0.0025)
    assert book.adjust(paying) is not None


@pytest.mark.parametrize("name", ["trend_rider", "ultra_aggressive"])
def test_restart_never_refreezes_an_open_trade(
    tmp_path: Path, trades_db: None, name: str
) -> None:
    """Live, Freqtrade re-runs the fill handling of an entry order whose fee was never
    assigned, every loop; after a restart that calls ``order_filled`` for the entry again
    before any candle is analysed. The trade keeps the plan it was given."""
    s = strategy(tmp_path, name)
    p = profile_of(s, name)
    book = LiveBook(s, "long")
    book.enter()
    at_tp1 = book.price(p.r_tp1 + 0.1)
    book.move(at_tp1)
    assert book.adjust(at_tp1) is not None
    frozen = book.trade.get_custom_data(CUSTOM_DATA_KEY)
    assert json.loads(frozen)["stage"] == 1

    restarted = strategy(tmp_path, "defensive")  # another default now, and no candles
    restarted._signal_arrays.clear()
    entry_order = book.trade.select_order(book.trade.entry_side, False, only_filled=True)
    assert entry_order is not None
    book.s = restarted
    restarted.order_filled(pair="BTC/USDT", trade=deepcopy(book.trade), order=entry_order,
                           current_time=T0 + timedelta(hours=3))
    assert book.trade.get_custom_data(CUSTOM_DATA_KEY) == frozen
    state = restarted.trade_state(book.trade.id) or restarted._state(book.trade)
    assert state is not None and state.profile.strategy_id == name and state.stage == 1
    assert state.plan.r_unit == ONE_R
    assert book.stop(at_tp1) == pytest.approx(ENTRY, rel=1e-9)  # breakeven, as before


def test_backtest_partial_then_final_fill_settles_the_whole_trade(
    tmp_path: Path, trades_db: None
) -> None:
    """Backtests call ``order_filled`` before the trade is recalculated or closed; a 50%
    partial (TP1 of ``ultra_aggressive``) must not be mistaken for the final fill there either.
    """
    s = strategy(tmp_path, "ultra_aggressive", RunMode.BACKTEST)
    s.bot_loop_start(current_time=T0)
    s._signal_arrays["BTC/USDT"] = (np.array([int((T0 - timedelta(hours=1)).timestamp())]),
                                    np.array(["trend_up"]), np.array([ONE_R]), np.array([0.8]))
    p = profile_of(s, "ultra_aggressive")
    assert math.isclose(p.partial_close_tp1, 0.5)
    book = BacktestBook(s, "long")
    book.fill(book.trade.entry_side, AMOUNT, ENTRY)
    book.fill(book.trade.exit_side, 0.5 * AMOUNT, book.price(p.r_tp1), "tp1")
    state = s.trade_state(book.trade.id)
    assert state is not None and state.stage == 1
    assert s.selector.store.ledger() == []
    book.fill(book.trade.exit_side, 0.5 * AMOUNT, book.price(p.r_tp1 + 1), "stop_loss")
    rows = s.selector.store.ledger()
    assert len(rows) == 1
    assert rows[0].reward * ONE_R * AMOUNT == pytest.approx(book.trade.close_profit_abs, abs=1e-9)


class BacktestBook(LiveBook):
    """Fills in backtest order: ``order_filled`` first, then recalculation or close."""

    def fill(self, side: str, amount: float, price: float, tag: str | None = None,
             when: datetime = T0) -> Order:
        order = self.order(side, amount, price, tag, when)
        if side == self.trade.entry_side:
            self.trade.recalc_trade_from_orders()
        self.s.order_filled(pair=self.trade.pair, trade=deepcopy(self.trade), order=order,
                            current_time=when)
        if side != self.trade.entry_side:
            if order.safe_amount_after_fee != self.trade.amount:
                self.trade.recalc_trade_from_orders()
            else:
                self.trade.close(price, show_msg=False)
        return order


def test_sweep_settles_the_whole_trade_even_after_freqtrade_rehandled_a_partial(
    tmp_path: Path, trades_db: None
) -> None:
    """The closing fill's reward was never recorded (e.g. the store was unreachable). Until it
    is, Freqtrade's fee updater re-handles the trade's last filled exit order every loop
    (``recalculating=True``), which leaves ``close_profit_abs`` holding one leg only; the sweep
    must still settle the whole trade's profit (``realized_profit``, every exit)."""
    s = strategy(tmp_path, "moderate")
    p = profile_of(s, "moderate")
    book = LiveBook(s, "long")
    book.enter()
    at_tp1 = book.price(p.r_tp1 + 0.5)
    book.move(at_tp1)
    book.adjust(at_tp1)
    at_tp2 = book.price(p.r_tp2 + 0.5)
    book.move(at_tp2)
    book.adjust(at_tp2)
    # the closing fill, as a stop on the exchange, without order_filled reaching the store
    stop_fill = Order(
        ft_order_side="stoploss", ft_pair="BTC/USDT", ft_is_open=False, ft_amount=book.trade.amount,
        ft_price=ENTRY, order_id="sl", status="closed", symbol="BTC/USDT", order_type="market",
        side="sell", price=book.price(p.r_tp2), average=book.price(p.r_tp2),
        amount=book.trade.amount, filled=book.trade.amount, remaining=0.0,
        order_filled_date=T0 + timedelta(hours=2))
    book.trade.orders.append(stop_fill)
    book.trade.update_trade(stop_fill)
    assert not book.trade.is_open
    whole = book.trade.realized_profit
    tp2 = book.trade.select_order(book.trade.exit_side, False, only_filled=True)
    assert tp2 is not None and tp2.ft_order_tag == "tp2"
    book.trade.update_trade(tp2, recalculating=True)  # the fee updater, next loop
    assert book.trade.close_profit_abs != pytest.approx(whole)  # one leg only
    Trade.commit()
    restarted = strategy(tmp_path, "moderate")  # its start-up sweep settles it
    rows = restarted.selector.store.ledger()
    assert len(rows) == 1
    assert rows[0].reward * ONE_R * AMOUNT == pytest.approx(whole, abs=1e-9)
