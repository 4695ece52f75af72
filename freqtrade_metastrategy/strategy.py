"""The Freqtrade adapter: :class:`MetaStrategyBase`, an ``IStrategy`` that applies the chosen
TP/SL profile through Freqtrade's exit callbacks and teaches the selector every closed trade.

Freqtrade only loads a strategy from a file that itself defines the class, so users write::

    # user_data/strategies/MetaStrategy.py
    from freqtrade_metastrategy.strategy import MetaStrategyBase

    class MetaStrategy(MetaStrategyBase):
        pass

and override :meth:`populate_entry_trend` (and anything else) to use their own signals.

The class stacks three layers on ``IStrategy``: :mod:`freqtrade_metastrategy.hyper` (the
hyperoptable regime thresholds and learner settings, and the values in effect),
:mod:`freqtrade_metastrategy.settlement` (trade states, ``order_filled``, rewards) and this
module (lifecycle, indicators and entries, exits).

How a trade is managed
----------------------
* **Regime**: computed per candle in ``populate_indicators`` from the candles (ATR%, ADX,
  trend strength, 24 h quote volume). Live and dry-run, the order book is also read when an
  entry is confirmed (:class:`~freqtrade_metastrategy.liquidity.BookCache`): depth within 5 bps
  of the mid below ``illiquid_depth_threshold`` or a spread above ``illiquid_spread_threshold``
  makes the trade's regime ``illiquid`` (blocked with ``block_illiquid``). Backtests have no
  order books: there ``illiquid`` is volume only.
* **Hyperopt** (``--spaces regime learner``): ``populate_indicators`` computes the raw features
  once; :meth:`MetaStrategyBase.advise_entry` applies the thresholds in effect every time
  signals are computed (every epoch); :meth:`MetaStrategyBase.bot_loop_start` starts every
  backtest from the same table and seed with the learner settings in effect.
* **Entry fill** (``order_filled``, the first callback where the trade has an id): the selector
  chooses a profile for (pair, regime of the signal candle). The trade freezes profile,
  regime, 1R (ATR of the signal candle), entry price, filled amount, the decision's probability
  and whether it explored (:class:`~freqtrade_metastrategy.tradestate.TradeState`).
* **Stop** (``custom_stoploss``): entry -/+ ``r_sl`` x 1R from the first fill on; entry price
  after the TP1 fill; trailing ``trail_distance_r`` x 1R behind the best price after the TP2 fill.
* **TP1, TP2** (``adjust_trade_position``): once the best price has reached the level, close
  that fraction of the filled amount, provided a fill at the exit side of the book (the
  candle open in backtests) gains after the entry and exit fees (a take-profit is never taken
  at a loss). Freqtrade calls this at the candle open in
  backtests, so a level touched during a candle fills at the next open (or at this open if it
  gapped through).
* **TP3** (``custom_roi``): the ROI that corresponds to the TP3 price; backtests fill it at the
  level (or at the open when the candle opens beyond it), live at the current price once
  reached. One candle running from below TP1 through TP3 closes everything at TP3 in a
  backtest (the partials only act at opens): optimistic compared with live trading, where the
  loop takes TP1/TP2 on the way up.
* Stops fill at the stop price, or at the open when the whole candle is beyond the stop.
* **Reward** and **restarts**: see :mod:`freqtrade_metastrategy.settlement`.
  ``confirm_trade_exit`` is not overridden: it runs before the exit order exists and is
  skipped for partial exits, exchange stops, liquidations and the end of a backtest, so it
  cannot learn, and overriding it would only cost Freqtrade a trade deepcopy per exit.

Every callback that runs per open-trade candle is O(1): dict lookups and arithmetic, no
dataframe access, no custom-data reads (Freqtrade's backtest custom data is a linear scan).
"""

from __future__ import annotations

import atexit
import json
import logging
import math
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from freqtrade.enums import RunMode
from freqtrade.exceptions import OperationalException
from freqtrade.exchange import timeframe_to_prev_date, timeframe_to_seconds
from freqtrade.persistence import Trade
from freqtrade.strategy import stoploss_from_absolute
from pandas import DataFrame

from freqtrade_metastrategy.config import MetaStrategyConfig
from freqtrade_metastrategy.context import CONTEXT_FEATURES, compute_context
from freqtrade_metastrategy.entry_signals import breakout
from freqtrade_metastrategy.errors import ConfigError, MetaStrategyError
from freqtrade_metastrategy.exitplan import TradePlan
from freqtrade_metastrategy.hyper import LEARNER_PARAMETERS, LIVE_MODES, REGIME_PARAMETERS
from freqtrade_metastrategy.indicators import FEATURE_COLUMNS, compute_regime_features
from freqtrade_metastrategy.learning import MetaLearningMixin
from freqtrade_metastrategy.liquidity import BookCache
from freqtrade_metastrategy.regime import MarketRegime, RegimeThresholds, classify_frame
from freqtrade_metastrategy.selector import (
    MetaStrategySelector,
    ProfileDecision,
    bandit_stand_aside,
)
from freqtrade_metastrategy.store import MemoryStore, QStore, open_store
from freqtrade_metastrategy.trade_math import STOP_NUDGE, nudged_stop, signal_candle
from freqtrade_metastrategy.tradestate import CUSTOM_DATA_KEY, SignalCandle, TradeState, trade_key

logger = logging.getLogger(__name__)

#: Run modes in which the learner chooses. Elsewhere (``lookahead-analysis`` and
#: ``recursive-analysis`` run as utility modes) every trade uses ``default_strategy``: those tools
#: re-run truncated backtests with a single pair, where a learner's history (and so its choice)
#: legitimately differs from the full run; pinning the profile lets them test what they are
#: for, the causality of the data pipeline. The learner's own causality has its own tests.
LEARNING_MODES = (*LIVE_MODES, RunMode.BACKTEST, RunMode.HYPEROPT, RunMode.WEBSERVER)


class MetaStrategyBase(MetaLearningMixin):
    """Regime-aware TP/SL profile selection. Subclass it; see the module docstring."""

    INTERFACE_VERSION = 3

    timeframe = "1h"
    can_short = False
    # EMA(50) and ADX(14) need a long warm-up before recursive-analysis shows no drift; the
    # context's 4h regime features (EMA(50) and ADX(14) of 4h candles) and its 500-candle ATR%
    # rank need more: 1,400 candles (58 days of 1h).
    startup_candle_count: int = 1400
    process_only_new_candles = True

    # The profile's ATR stop replaces the static stop from the first fill on; this is only the
    # hard floor before the first after-fill call. Trailing is the profile's, not Freqtrade's.
    stoploss = -0.99
    trailing_stop = False
    use_custom_stoploss = True
    # TP3 closes the rest through custom_roi; the static table never triggers.
    use_custom_roi = True
    minimal_roi = {"0": 100.0}
    # TP1/TP2 are partial exits.
    position_adjustment_enable = True
    max_entry_position_adjustment = 0
    use_exit_signal = False

    order_types = {
        "entry": "market",
        "exit": "market",
        "emergency_exit": "market",
        "force_entry": "market",
        "force_exit": "market",
        "stoploss": "market",
        "stoploss_on_exchange": False,
    }
    plot_config = {
        "main_plot": {
            "ema_fast": {"color": "#2a9d8f"},
            "ema_slow": {"color": "#e9c46a"},
            "ms_stop_long": {"color": "#e76f51"},
            "ms_tp1_long": {"color": "#90be6d"},
            "ms_tp2_long": {"color": "#43aa8b"},
            "ms_tp3_long": {"color": "#277da1"},
        },
        "subplots": {
            "Regime": {"regime_code": {"color": "#6d597a"}},
            "ADX / trend strength": {"adx": {"color": "#355070"},
                                     "trend_strength": {"color": "#b56576"}},
            "ATR %": {"atr_pct": {"color": "#e56b6f"}},
        },
    }

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__(config)
        try:
            self.ms_config = MetaStrategyConfig.from_freqtrade_config(config)
        except ConfigError as exc:
            raise OperationalException(
                f"Invalid metastrategy config: {exc}. Fix the key in your config file."
            ) from exc
        # per pair: candle open times (epoch s), regime, ATR, regime confidence
        self._signal_arrays: dict[str, tuple[npt.NDArray[Any], ...]] = {}
        # live: the last order book snapshot per pair
        self._books = BookCache(self._order_book)
        self._last_loop: datetime | None = None
        self._export_registered = False
        self._pretrained_doc: Any = None
        # a bandit with stand-aside: the choice made at confirm_trade_entry, for the entry fill
        self._bandit_choices: dict[tuple[str, int, str], ProfileDecision] = {}
        self._aside_logged: set[tuple[str, int, str]] = set()
        self.selector: MetaStrategySelector = self._new_selector(MemoryStore(), static=True)

    # ------------------------------------------------------------------------------------------
    # set-up
    # ------------------------------------------------------------------------------------------
    def _new_selector(self, store: QStore, *, static: bool = False) -> MetaStrategySelector:
        return MetaStrategySelector(
            config=self.selector_config(static=static), store=store,
            profiles=self.ms_config.profiles,
            log_level=logging.INFO if self._live else logging.DEBUG,
        )

    def _order_book(self, pair: str, levels: int) -> dict[str, Any]:
        """The pair's order book (Freqtrade sets ``dp`` after ``__init__``)."""
        return self.dp.orderbook(pair, levels)  # type: ignore[no-any-return]

    def _memory_store(self) -> MemoryStore:
        """An empty in-memory table, or the configured pretrained Q-values.

        Only the pretrained cells are loaded, not their ledger: the run's ledger lists the run's
        own trades, and an old trade key can never shadow a new trade's reward.
        """
        store = MemoryStore()
        path = self.ms_config.pretrained
        if path:
            try:
                if self._pretrained_doc is None:  # read once: every run starts from this copy
                    doc = json.loads(Path(path).read_text())
                    self._pretrained_doc = {**doc, "ledger": []} if isinstance(doc, dict) else doc
                store.import_dict(self._pretrained_doc, source=path)
            except (OSError, ValueError, MetaStrategyError) as exc:
                raise OperationalException(
                    f"metastrategy.pretrained: cannot load {path}: {exc}"
                ) from exc
        return store

    def bot_start(self, **kwargs: Any) -> None:
        """Open the store for the run mode: the persistent one live, memory otherwise."""
        self._start_settings()
        if self._live:
            try:
                store: QStore = open_store(
                    self.ms_config.store_url, user_data_dir=self.config.get("user_data_dir")
                )
            except MetaStrategyError as exc:
                raise OperationalException(f"metastrategy.store_url: {exc}") from exc
            logger.info("[RL] Q-table store: %s", store.location)
        else:
            store = self._memory_store()
            try:  # a pretrained learner that does not fit the config stops the run here
                if self.full_info is not None:
                    self._pretrained_learner(self._pretrained_doc,
                                             str(self.ms_config.pretrained))
            except MetaStrategyError as exc:
                raise OperationalException(f"metastrategy.pretrained: {exc}") from exc
        self.selector = self._new_selector(store, static=True)
        self._states.clear()
        self._finished.clear()
        if self._live:
            self.settle_unsettled_trades(since=None)
            try:
                self._load_live_learner(store)
            except MetaStrategyError as exc:
                raise OperationalException(f"metastrategy: {exc}") from exc
        if self._runmode == RunMode.BACKTEST and not self._export_registered:
            atexit.register(self.export_backtest_qtable)
            self._export_registered = True

    def bot_loop_start(self, current_time: datetime, **kwargs: Any) -> None:
        """Per loop (per candle in backtests): detect a new backtest run and start it clean.

        A backtest starts from the same (empty or pretrained) table and seed, with the learner
        settings in effect: at its first candle, and whenever time goes backwards (hyperopt
        ``-j 1`` and repeated backtests reuse this object; hyperopt ``-j 2`` hands every epoch
        a fresh copy of the object as it was before any backtest ran).
        """
        previous, self._last_loop = self._last_loop, current_time
        if not self._live and (previous is None or current_time <= previous):
            if self._runmode == RunMode.BACKTEST and previous is not None:
                self.export_backtest_qtable()
            self.selector = self._new_selector(self._memory_store())
            self._states.clear()
            self._bandit_choices.clear()
            self._aside_logged.clear()
            # (bot_start has checked a pretrained learner: Freqtrade only logs errors here)
            self._start_learning_run(self._pretrained_doc, str(self.ms_config.pretrained))
        if self._live:
            try:
                self._save_live_learner(self.selector.store)
            finally:
                self._sweep_if_due(current_time)
                self._prune_decisions(current_time)

    def _prune_decisions(self, now: datetime) -> None:
        """Live: forget per-signal decisions older than a day (Freqtrade stops asking)."""
        horizon = int((now - timedelta(days=1)).timestamp()) * 1_000_000_000
        for cache in (self._bandit_choices, self._fi_decisions):
            for key in [k for k in cache if k[1] < horizon]:
                del cache[key]
        self._aside_logged = {k for k in self._aside_logged if k[1] >= horizon}

    def backtest_qtable_path(self) -> Path:
        if self.ms_config.backtest_qtable_file:
            return Path(self.ms_config.backtest_qtable_file)
        user_data = Path(self.config.get("user_data_dir") or "user_data")
        return user_data / "backtest_results" / "metastrategy_qtable.json"

    def export_backtest_qtable(self) -> Path | None:
        """Write the table a backtest learned, and the full-information decisions if any
        (called when the backtest process ends)."""
        store = self.selector.store
        path = self.backtest_qtable_path()
        if self.decision_log:
            path.parent.mkdir(parents=True, exist_ok=True)
            decisions = path.with_name("metastrategy_decisions.json")
            decisions.write_text(json.dumps({"per_regime": self.decisions_summary(),
                                             "decisions": self.decision_log}, indent=0))
            logger.info("[RL] backtest decisions (%d, %d stood aside) written to %s",
                        len(self.decision_log),
                        sum(d["profile"] is None for d in self.decision_log), decisions)
        if store.is_empty():
            return None
        path.parent.mkdir(parents=True, exist_ok=True)
        store.export_json(path)
        rewards = len(store.ledger())
        logger.info("[RL] backtest Q-table (%d rewards) written to %s", rewards, path)
        return path

    # ------------------------------------------------------------------------------------------
    # indicators and signals
    # ------------------------------------------------------------------------------------------
    def populate_indicators(self, dataframe: DataFrame, metadata: dict[str, Any]) -> DataFrame:
        """Regime features and regime columns (vectorised, causal) plus the default profile's
        levels for plots.

        Hyperopt runs this once for all epochs: it computes the raw features (ADX, ATR%, trend
        strength, 24 h volume); the thresholds are applied again in :meth:`advise_entry`, which
        Freqtrade runs every epoch (and after this in every other mode).
        """
        features = compute_regime_features(dataframe, self.timeframe)
        for name in FEATURE_COLUMNS:
            dataframe[name] = features[name].to_numpy()
        context = compute_context(dataframe, self.timeframe,
                                  leader=self._leader_candles(metadata["pair"], dataframe),
                                  fee=self._fee_rate(metadata["pair"]))
        for name in CONTEXT_FEATURES:
            dataframe[name] = context[name].to_numpy()
        self._classify(dataframe, metadata["pair"], self.regime_thresholds(static=True))
        p = self.ms_config.profiles[self.ms_config.selector.default_strategy]
        atr = dataframe["atr"]
        dataframe["ms_stop_long"] = dataframe["close"] - p.r_sl * atr
        for i, level in enumerate(p.tp_levels, start=1):
            dataframe[f"ms_tp{i}_long"] = dataframe["close"] + level * atr
        return dataframe

    def advise_entry(self, dataframe: DataFrame, metadata: dict[str, Any]) -> DataFrame:
        """Reclassify the regimes under the thresholds in effect, then Freqtrade's own
        ``advise_entry`` (which calls :meth:`populate_entry_trend`).

        Freqtrade says user strategies should not override this; the base class does, so
        that a subclass's own ``populate_entry_trend`` still sees (and the trades still freeze)
        the regimes of the epoch's thresholds in hyperopt. ~2 ms per pair-year of 1h candles.
        """
        self._classify(dataframe, metadata["pair"], self.regime_thresholds())
        result: DataFrame = super().advise_entry(dataframe, metadata)
        self._register_signals(result, metadata["pair"])
        return result

    def _classify(self, dataframe: DataFrame, pair: str, thresholds: RegimeThresholds) -> None:
        """Set ``regime``, ``regime_confidence``, ``regime_code`` and the pair's signal arrays."""
        if "adx" not in dataframe.columns:  # e.g. a subclass that skipped populate_indicators
            return
        classify_frame(dataframe, thresholds, code_column="regime_code")
        have = all(c in dataframe.columns for c in CONTEXT_FEATURES)
        self._signal_arrays[pair] = (
            dataframe["date"].to_numpy(dtype="datetime64[s]").astype("int64"),
            dataframe["regime"].to_numpy(),
            dataframe["atr"].to_numpy(dtype="float64"),
            dataframe["regime_confidence"].to_numpy(dtype="float64"),
            (dataframe[list(CONTEXT_FEATURES)].to_numpy(dtype="float64") if have
             else np.zeros((len(dataframe), len(CONTEXT_FEATURES)))),
        )

    #: Candles of the breakout channel used by the default entry signal.
    breakout_period: int = 20

    def populate_entry_trend(self, dataframe: DataFrame, metadata: dict[str, Any]) -> DataFrame:
        """The default entry signal, deliberately simple so the demo trades.

        Long when the close breaks above the highest high of the previous ``breakout_period``
        candles (and the previous close had not); short (if ``can_short``) on the mirror break
        below the lowest low. A breakout is used rather than, say, an EMA crossover because it
        fires in every regime (on the bundled data ~60% of signals fall in ranges and ~38% in
        trends), whereas at an EMA crossover the EMA gap, and so the trend strength, is ~0 by
        construction: 98% of crossover signals are "range" and the trend profiles would never
        be tried. Override this with your own signals: profile selection and exits work with
        any entry.
        """
        long_, short = breakout(dataframe, self.breakout_period)
        dataframe.loc[long_, "enter_long"] = 1
        if self.can_short:
            dataframe.loc[short, "enter_short"] = 1
        return dataframe

    def populate_exit_trend(self, dataframe: DataFrame, metadata: dict[str, Any]) -> DataFrame:
        """No exit signal: the profile's stop and take-profits close every trade."""
        return dataframe

    # ------------------------------------------------------------------------------------------
    # entry
    # ------------------------------------------------------------------------------------------
    def _signal_row(self, pair: str, open_date: datetime) -> SignalCandle | None:
        """The signal candle (the candle before the entry candle) of a trade opened at
        ``open_date``: that candle if it was analysed, else the latest analysed candle before
        it (e.g. a forced entry). A binary search in arrays kept by ``populate_indicators``:
        ~5 us instead of ~225 us for ``dp.get_analyzed_dataframe`` + ``iloc[-1]``.
        """
        arrays = self._signal_arrays.get(pair)
        if arrays is None:
            return None
        dates, regimes, atrs, confidences = arrays[:4]
        tf = timedelta(seconds=timeframe_to_seconds(self.timeframe))
        signal_date = signal_candle(timeframe_to_prev_date(self.timeframe, open_date), tf)
        key = int(signal_date.timestamp())
        i = int(dates.searchsorted(key, side="right")) - 1
        if i < 0:
            return None
        date = signal_date if dates[i] == key else datetime.fromtimestamp(int(dates[i]), UTC)
        return SignalCandle(date, str(regimes[i]), float(atrs[i]), float(confidences[i]))

    def confirm_trade_entry(
        self, pair: str, order_type: str, amount: float, rate: float, time_in_force: str,
        current_time: datetime, entry_tag: str | None, side: str, **kwargs: Any,
    ) -> bool:
        """Refuse entries whose signal candle is illiquid (``block_illiquid``).

        Live and dry-run, the order book counts too: a thin book (depth within 5 bps below
        ``illiquid_depth_threshold``) or a wide spread (above ``illiquid_spread_threshold``)
        makes the regime ``illiquid`` whatever the candles say. The snapshot is kept for the
        entry fill, where the regime is frozen on the trade.

        With a full-information policy, the policy then decides (:mod:`.learning`): it may
        stand aside (no order is sent; ``[STRATEGY] <pair> stand aside: ...``). A forced entry
        (its signal candle carries no entry signal for the side, or it does under another tag:
        the REST API, Telegram, FreqUI) is never stood aside. Freqtrade asks again at every
        loop after a refusal: the decision is made once per signal and logged once.
        """
        row = self._signal_row(pair, current_time)
        regime = row.regime if row is not None else MarketRegime.UNKNOWN.value
        if self._live:
            regime, why = self._books.regime(pair, regime, current_time,
                                             self.ms_config.thresholds, fresh=True)
        else:
            why = "24h quote volume"
        if self.ms_config.block_illiquid and regime == MarketRegime.ILLIQUID.value:
            logger.info("[REGIME] %s illiquid (%s): entry blocked (block_illiquid)", pair, why)
            return False
        signal_ns = 0 if row is None else int(row.date.timestamp()) * 1_000_000_000
        if (row is not None and self.ms_config.enabled and self._runmode in LEARNING_MODES
                and self._is_signal(pair, signal_ns, side, entry_tag)):
            key = (pair, signal_ns, side)
            decision = self._decide(pair, signal_ns, side, regime)
            aside = decision.reason if decision is not None and decision.stand_aside else None
            if decision is None and self.ms_config.bandit_stand_aside is not None:
                # A bandit with stand-aside chooses now, once per signal (Freqtrade asks again
                # every loop after a refusal: a new draw each time would defeat the gate); the
                # entry fill reuses the choice.
                chosen = self._bandit_choices.get(key)
                if chosen is None:
                    chosen = self.selector.choose_profile(pair, regime)
                    self._bandit_choices[key] = chosen
                aside = bandit_stand_aside(chosen, self.ms_config.bandit_stand_aside)
            if aside is not None:
                if key not in self._aside_logged:  # once per signal, not at every retry
                    self._aside_logged.add(key)
                    logger.log(logging.INFO if self._live else logging.DEBUG,
                               "[STRATEGY] %s %s", pair, aside)
                return False
        return True

    def _freeze(self, pair: str, trade: Trade, current_time: datetime) -> TradeState:
        """Choose a profile for the trade and freeze everything its exits need."""
        row = self._signal_row(pair, trade.open_date_utc)
        atr = row.atr if row is not None else math.nan
        regime = row.regime if row is not None else MarketRegime.UNKNOWN.value
        book_note = ""
        if self._live:
            regime, book_note = self._books.regime(pair, regime, current_time,
                                                   self.ms_config.thresholds, fresh=False)
            book_note = f", {book_note}"
        entry = float(trade.open_rate)
        if not (math.isfinite(atr) and atr > 0):
            atr = 0.01 * entry
            logger.warning("%s trade %s: no ATR for the signal candle, 1R = 1%% of entry (%.8g)",
                           pair, trade.id, atr)
        fi = None
        if row is not None and self.ms_config.enabled and self._runmode in LEARNING_MODES:
            fi = self._decide(pair, int(row.date.timestamp()) * 1_000_000_000,
                              "short" if trade.is_short else "long", regime, counted=False)
        if fi is not None:
            # a forced entry the policy would stand aside on still trades: the profile it
            # ranked first
            profile = self.ms_config.profiles[fi.profile or fi.chosen]
            prob, explored, why = 1.0, False, fi.reason
        elif self.ms_config.enabled and self._runmode in LEARNING_MODES:
            key = (pair, 0 if row is None else int(row.date.timestamp()) * 1_000_000_000,
                   "short" if trade.is_short else "long")
            decision = (self._bandit_choices.pop(key, None)
                        or self.selector.choose_strategy(pair, regime))
            profile, prob, explored = (decision.strategy_profile, decision.probability,
                                       decision.is_exploration)
            why = decision.reasoning
        else:
            profile = self.ms_config.profiles[self.ms_config.selector.default_strategy]
            prob, explored = 1.0, False
            why = ("metastrategy disabled" if not self.ms_config.enabled
                   else f"run mode {self._runmode}") + ": default_strategy"
        state = TradeState(
            plan=TradePlan(profile, is_short=bool(trade.is_short), entry_price=entry,
                           r_unit=atr),
            regime=regime, amount=float(trade.amount), probability=prob, explored=explored,
        )
        level = logging.INFO if self._live else logging.DEBUG
        if row is not None:
            logger.log(level, "[REGIME] %s %s at %s (confidence %.2f), ATR=%.8g%s",
                       pair, regime, row.date, row.confidence, atr, book_note)
        logger.log(level, "[STRATEGY] %s trade %s %s -> %s (%s, p=%.3f)", pair, trade.id,
                   "short" if trade.is_short else "long", profile.strategy_id, why, prob)
        self._states[trade.id] = state
        self._persist(trade, state)
        return state

    # ------------------------------------------------------------------------------------------
    # exits (hot path: O(1) per call)
    # ------------------------------------------------------------------------------------------
    def custom_stoploss(
        self, pair: str, trade: Trade, current_time: datetime, current_rate: float,
        current_profit: float, after_fill: bool, **kwargs: Any,
    ) -> float | None:
        state = self._state(trade)
        if state is None:
            return None
        plan = state.plan
        best = (trade.min_rate if plan.is_short else trade.max_rate) or trade.open_rate
        stop = plan.stop_price(state.stage, best)
        if not after_fill and trade.stop_loss and (
            stop >= trade.stop_loss if plan.is_short else stop <= trade.stop_loss
        ):
            # Not better than the current stop: Freqtrade would keep it anyway (outside
            # after-fill calls a stop only tightens), so spare it the recomputation.
            return None
        return float(stoploss_from_absolute(nudged_stop(stop, plan.is_short), current_rate,
                                            is_short=plan.is_short,
                                            leverage=trade.leverage or 1.0))

    def adjust_trade_position(
        self, trade: Trade, current_time: datetime, current_rate: float, current_profit: float,
        min_stake: float | None, max_stake: float, current_entry_rate: float,
        current_exit_rate: float, current_entry_profit: float, current_exit_profit: float,
        **kwargs: Any,
    ) -> tuple[float | None, str | None] | None:
        """TP1 / TP2: partial exits once the best price has reached the level.

        A take-profit is never taken at a loss: if the price the partial fills at (the exit
        side of the book live, the candle open in a backtest) does not pay the entry and exit
        fees, it waits for the next call at which it does.
        """
        if trade.has_open_orders:
            return None
        state = self._state(trade)
        if state is None or state.stage >= 2:
            return None
        plan = state.plan
        # The partial fills at the exit side of the book (live, ``current_rate`` is the entry
        # side); backtests pass the candle open for both.
        rate = current_exit_rate
        seen = (trade.min_rate if plan.is_short else trade.max_rate) or trade.open_rate
        best = min(seen, rate) if plan.is_short else max(seen, rate)
        new_stage, fraction = plan.partials_due(state.stage, best)
        if new_stage == state.stage or not plan.pays(
            rate, float(trade.fee_open or 0.0), float(trade.fee_close or 0.0)
        ):
            return None
        # Never more than what remains (e.g. after a partial forceexit by hand): Freqtrade
        # skips an exit larger than the position; all of it is a full exit.
        amount = min(fraction * state.amount, float(trade.amount))
        stake = amount * trade.stake_amount / trade.amount
        tag = "+".join(f"tp{i}" for i in range(state.stage + 1, new_stage + 1))
        return -stake, tag

    def custom_roi(
        self, pair: str, trade: Trade, current_time: datetime, trade_duration: int,
        entry_tag: str | None, side: str, **kwargs: Any,
    ) -> float | None:
        """TP3: the profit ratio at the TP3 price (computed once per trade)."""
        state = self._state(trade)
        if state is None:
            return None
        if state.tp3_roi is None:
            state.tp3_roi = float(trade.calc_profit_ratio(state.plan.tp_prices[2]))
        return state.tp3_roi


__all__ = [
    "CUSTOM_DATA_KEY",
    "LEARNER_PARAMETERS",
    "REGIME_PARAMETERS",
    "STOP_NUDGE",
    "MetaStrategyBase",
    "SignalCandle",
    "TradeState",
    "trade_key",
]
