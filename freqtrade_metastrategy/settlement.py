"""Per-trade state, fills and settlement of the strategy (``MetaStrategyBase``).

:class:`MetaSettlementMixin` keeps each trade's
:class:`~freqtrade_metastrategy.tradestate.TradeState` (an in-memory dict keyed by trade id,
the hot path, and live the trade's custom data, which survives restarts), handles
Freqtrade's ``order_filled`` and teaches the selector every closed trade exactly once:

* **Entry fill**: the strategy freezes the trade (``_freeze``), once, ever: Freqtrade re-handles
  unfee'd entry fills at every loop, and after a restart only the custom data says so.
* **Partial exit fills** (TP1/TP2) advance the trade's stage.
* **Reward** (the closing fill, whatever closed it: TP3, stop, stop on exchange, liquidation,
  forced exit, the end of a backtest): the trade's net profit in stake currency (Freqtrade's
  own ``profit_abs``: partials, fees and funding included) in ``metastrategy.reward_unit``
  (:meth:`TradeState.reward <freqtrade_metastrategy.tradestate.TradeState.reward>`), settled
  through the store's ledger. The closing fill is recognised by what the run mode guarantees
  (live: Freqtrade has closed the trade; backtest: the fill is the whole remaining amount),
  never by comparing a partial's amount with what remains.
* **Sweep** (live): :meth:`MetaSettlementMixin.settle_unsettled_trades` settles closed trades
  whose reward is missing, at start-up and every 15 minutes: only trades closed since the
  store's watermark (its creation, last ``reset`` or ``import --replace``), in close order.
"""

from __future__ import annotations

import logging
import math
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from freqtrade.enums import RunMode
from freqtrade.persistence import Order, Trade

from freqtrade_metastrategy.exitplan import TradePlan
from freqtrade_metastrategy.hyper import MetaHyperMixin
from freqtrade_metastrategy.regime import MarketRegime
from freqtrade_metastrategy.selector import MetaStrategySelector
from freqtrade_metastrategy.tradestate import (
    CUSTOM_DATA_KEY,
    UNREADABLE_STATE_ERRORS,
    TradeState,
    trade_key,
)

logger = logging.getLogger(__name__)

#: Live: how often, and how far back, closed trades are checked for a missing reward.
SWEEP_EVERY: Final = timedelta(minutes=15)
SWEEP_LOOKBACK: Final = timedelta(days=2)


class MetaSettlementMixin(MetaHyperMixin):
    """Trade states, ``order_filled`` and the settlement of closed trades' rewards."""

    #: The learner the rewards go to (set by the strategy).
    selector: MetaStrategySelector

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__(config)
        self._states: dict[int, TradeState] = {}
        # live: closed trades whose reward is settled or never to be (skip their re-handled
        # fills, which Freqtrade repeats every loop while the exchange reported no fee)
        self._finished: set[int] = set()
        self._last_sweep: datetime | None = None

    def _freeze(self, pair: str, trade: Trade, current_time: datetime) -> TradeState:
        """Choose a profile for the trade and freeze everything its exits need (the
        strategy's entry logic)."""
        raise NotImplementedError

    # ------------------------------------------------------------------------------------------
    # trade states
    # ------------------------------------------------------------------------------------------
    def _persist(self, trade: Trade, state: TradeState) -> None:
        if self._live:
            trade.set_custom_data(CUSTOM_DATA_KEY, state.to_json())

    def _load(self, trade: Trade) -> TradeState | None:
        """The trade's frozen state: the cache, else (live) its custom data, else None."""
        state = self._states.get(trade.id)
        if state is not None:
            return state
        raw = trade.get_custom_data(CUSTOM_DATA_KEY) if self._live else None
        if raw:
            try:
                state = TradeState.from_json(raw)
            except UNREADABLE_STATE_ERRORS as exc:
                logger.warning("%s trade %s: unreadable frozen data (%s)", trade.pair, trade.id,
                               exc)
        if state is not None:
            self._states[trade.id] = state
        return state

    def _state(self, trade: Trade, *, adopt: bool = True) -> TradeState | None:
        """The trade's state (:meth:`_load`), else, for a filled trade with ``adopt``, the
        default profile (:meth:`_adopt`)."""
        state = self._load(trade)
        if state is None and adopt and trade.nr_of_successful_entries:
            state = self._adopt(trade)
            self._states[trade.id] = state
        return state

    def _adopt(self, trade: Trade) -> TradeState:
        """A trade opened without the plugin (or by hand): the default profile, current ATR."""
        profile = self.ms_config.profiles[self.ms_config.selector.default_strategy]
        # The analysed dataframe, not the signal arrays: in a backtest those run to the end of
        # the data, and their last ATR would be lookahead.
        df, _ = self.dp.get_analyzed_dataframe(trade.pair, self.timeframe)
        atr = float(df["atr"].iloc[-1]) if df is not None and len(df) else math.nan
        entry = float(trade.open_rate)
        if not (math.isfinite(atr) and atr > 0):
            atr = 0.01 * entry
        logger.warning("%s trade %s has no frozen metastrategy data: managed by the default "
                       "profile %s with 1R = current ATR %.8g", trade.pair, trade.id,
                       profile.strategy_id, atr)
        state = TradeState(TradePlan(profile, bool(trade.is_short), entry, atr),
                           MarketRegime.UNKNOWN.value, float(trade.amount), None, False,
                           stage=min(2, trade.nr_of_successful_exits))
        self._persist(trade, state)
        return state

    def trade_state(self, trade_id: int) -> TradeState | None:
        """The cached state of an open trade (tests, reports)."""
        return self._states.get(trade_id)

    # ------------------------------------------------------------------------------------------
    # fills and rewards
    # ------------------------------------------------------------------------------------------
    def order_filled(
        self, pair: str, trade: Trade, order: Order, current_time: datetime, **kwargs: Any
    ) -> None:
        if order.ft_order_side == trade.entry_side:
            # A trade is frozen once, ever. Live, Freqtrade re-runs the fill handling of an
            # entry whose fee was never assigned at every loop: after a restart the cache is
            # empty, and only the persisted plan says the trade was frozen already.
            if trade.nr_of_successful_entries == 1 and self._load(trade) is None:
                self._freeze(pair, trade, current_time)
            return
        if not order.safe_filled:  # an exit order cancelled before anything filled
            return
        if self._live and not trade.is_open and (
            trade.id in self._finished or self.selector.store.is_settled(trade_key(trade))
        ):
            # Freqtrade re-handles the closing fill of a closed trade whose fee was never
            # assigned at every loop: settled already (a trade closed before the store's
            # watermark is refused by the store itself, in the settlement's transaction, and
            # then lands here as finished).
            self._finished.add(trade.id)
            return
        state = self._state(trade, adopt=trade.is_open)
        if state is None:
            if not trade.is_open:
                self._finished.add(trade.id)  # closed, never ours: nothing to settle, ever
            return
        if not self._closes_trade(trade, order):
            tag = order.ft_order_tag or ""
            stages = [int(t[2:]) for t in tag.split("+") if t[:2] == "tp" and t[2:].isdigit()]
            if stages:
                state.stage = max(state.stage, max(stages))
                self._persist(trade, state)
            return
        self._settle(trade, state, self._closed_profit(trade), current_time)
        if self._live:
            self._finished.add(trade.id)

    def _closes_trade(self, trade: Trade, order: Order) -> bool:
        """Whether the exit fill ``order`` is the trade's last, from what the run mode
        guarantees when ``order_filled`` runs. Live and dry-run, Freqtrade has recalculated the
        trade from its orders: a closing fill has closed it (after a 50% partial, the partial
        and the remaining amount are equal, so amounts cannot tell). Backtests call it before
        the trade is recalculated or closed: the fill closes the trade when it is the whole
        amount, the test Freqtrade's backtest itself makes right after."""
        if self._live:
            return not trade.is_open
        return not trade.is_open or order.safe_amount_after_fee == trade.amount

    def _closed_profit(self, trade: Trade) -> float:
        """The whole trade's net profit (fees and funding of every segment, partials
        included), as Freqtrade reports it (``profit_abs``).

        Backtests call ``order_filled`` before closing the trade, so the recalculation
        Freqtrade's ``close`` makes next is made here, on the copy of the trade Freqtrade hands
        to the callback (the same arithmetic on the same orders). Freqtrade's recalculation
        sets ``realized_profit`` to the sum over every exit whenever the profit ratio is not
        zero, while ``close_profit_abs`` can be left holding the last exit only (a leftover
        amount after a wallet correction, or a closed trade re-handled by the fee updater);
        the total is in ``close_profit_abs`` only when the ratio is exactly zero.
        """
        if trade.is_open and not self._live:
            trade.recalc_trade_from_orders(is_closing=True)
        if trade.close_profit:
            return float(trade.realized_profit or 0.0)
        return float(trade.close_profit_abs or 0.0)

    def _settle(
        self, trade: Trade, state: TradeState, pnl: float, when: datetime | None
    ) -> bool:
        reward = state.reward(pnl, self.ms_config.reward_unit)
        done = self.selector.update_reward(
            trade.pair, state.regime, state.profile.strategy_id, reward,
            trade_id=trade_key(trade), at=when, probability=state.probability,
            closed_at=trade.close_date_utc if self._live and trade.close_date else None,
        )
        if not trade.is_open or self._runmode in (RunMode.BACKTEST, RunMode.HYPEROPT):
            self._states.pop(trade.id, None)
        return done

    # ------------------------------------------------------------------------------------------
    # live sweep
    # ------------------------------------------------------------------------------------------
    def _sweep_if_due(self, current_time: datetime) -> None:
        """Live, per loop: :meth:`settle_unsettled_trades` every :data:`SWEEP_EVERY`."""
        if self._last_sweep is None or current_time - self._last_sweep >= SWEEP_EVERY:
            self.settle_unsettled_trades(since=current_time - SWEEP_LOOKBACK)
            self._last_sweep = current_time

    def settle_unsettled_trades(self, since: datetime | None) -> int:
        """Live: settle closed trades with frozen data whose reward is not in the ledger.

        The closing fill (``order_filled``) settles every trade; this is the fallback for a
        reward it never recorded (e.g. the process died between the fill and the settlement).
        Only trades that closed at or after the store's watermark are considered (a ``reset``,
        a new ``store_url`` or an ``import --replace`` starts a new content: what closed before
        stays forgotten), and ``since=None`` (start-up) checks all of those, otherwise those
        closed after ``since``. They are settled in close order (the EMA depends on the order).
        Returns how many it settled; the start-up sweep always says so in the log.
        """
        mark = self.selector.store.watermark()
        start = mark if since is None else max(mark, since)
        # Freqtrade keeps naive UTC times and filters with ``close_date > since``.
        query_from = (start - timedelta(microseconds=1)).astimezone(UTC).replace(tzinfo=None)
        closed = [t for t in Trade.get_trades_proxy(is_open=False, close_date=query_from)
                  if t.close_date and t.close_date_utc >= start]
        closed.sort(key=lambda t: (t.close_date_utc, t.id))
        settled = 0
        for trade in closed:
            raw = trade.get_custom_data(CUSTOM_DATA_KEY)
            if not raw or self.selector.store.is_settled(trade_key(trade)):
                continue
            try:
                state = TradeState.from_json(raw)
            except UNREADABLE_STATE_ERRORS as exc:
                logger.warning("%s trade %s: unreadable frozen data (%s), not settled",
                               trade.pair, trade.id, exc)
                continue
            if self._settle(trade, state, self._closed_profit(trade), trade.close_date_utc):
                settled += 1
        if since is None or settled:
            logger.info("[RL] settled %d closed trade(s) whose reward was missing (trades "
                        "closed since the store's watermark %s)", settled, mark.isoformat())
        return settled


__all__ = ["SWEEP_EVERY", "SWEEP_LOOKBACK", "MetaSettlementMixin"]
