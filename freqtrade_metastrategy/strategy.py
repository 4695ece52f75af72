"""The Freqtrade adapter: :class:`MetaStrategyBase`, an ``IStrategy`` that applies the chosen
TP/SL profile through Freqtrade's exit callbacks and teaches the selector every closed trade.

Freqtrade only loads a strategy from a file that itself defines the class, so users write::

    # user_data/strategies/MetaStrategy.py
    from freqtrade_metastrategy.strategy import MetaStrategyBase

    class MetaStrategy(MetaStrategyBase):
        pass

and override :meth:`populate_entry_trend` (and anything else) to use their own signals.

How a trade is managed
----------------------
* **Regime**: computed per candle in ``populate_indicators`` from the candles (ATR%, ADX,
  trend strength, 24 h quote volume). Live and dry-run, the order book is also read when an
  entry is confirmed: depth within 5 bps of the mid below ``illiquid_depth_threshold`` or a
  spread above ``illiquid_spread_threshold`` makes the trade's regime ``illiquid`` (blocked
  with ``block_illiquid``). Backtests have no order books: there ``illiquid`` is volume only.
* **Hyperopt** (``--spaces regime learner``): the regime thresholds and the learner settings
  are hyperoptable parameters (defaults: the seeds'). ``populate_indicators`` computes the
  raw features once; :meth:`MetaStrategyBase.advise_entry` applies the thresholds in effect
  every time signals are computed (every epoch); :meth:`MetaStrategyBase.bot_loop_start`
  starts every backtest from the same table and seed with the learner settings in effect.
* **Entry fill** (``order_filled``, the first callback where the trade has an id): the selector
  chooses a profile for (pair, regime of the signal candle). The trade freezes profile,
  regime, 1R (ATR of the signal candle), entry price, filled amount, the decision's probability
  and whether it explored: in an in-memory dict keyed by trade id (the hot path) and, live and
  dry-run, in the trade's custom data (survives restarts).
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
* **Reward** (``order_filled`` of the closing fill, whatever closed it: TP3, stop, stop on
  exchange, liquidation, forced exit, the end of a backtest): R = the trade's net profit in
  stake currency (Freqtrade's own ``profit_abs``: partials, fees and funding included) /
  (filled entry amount x 1R), settled exactly once through the store's ledger. The closing
  fill is recognised by what the run mode guarantees (live: Freqtrade has closed the trade;
  backtest: the fill is the whole remaining amount), never by comparing a partial's amount
  with what remains. ``metastrategy.reward_unit`` can make the learner optimise R per
  unit of stop distance (``r_risk``) or the percent return (``ret_pct``) instead.
  ``confirm_trade_exit`` is not overridden: it runs before the exit order exists and is
  skipped for partial exits, exchange stops, liquidations and the end of a backtest, so it
  cannot learn, and overriding it would only cost Freqtrade a trade deepcopy per exit. Live, a
  sweep (:meth:`MetaStrategyBase.settle_unsettled_trades`) settles closed trades whose reward
  is missing, at start-up and every 15 minutes: only trades closed since the store's
  watermark (its creation, last ``reset`` or ``import --replace``), in close order.
* **Restarts**: a trade is frozen once, ever; its plan and stage are read back from its custom
  data (Freqtrade re-handles unfee'd entry fills at every loop, which must not re-freeze it).

Every callback that runs per open-trade candle is O(1): dict lookups and arithmetic, no
dataframe access, no custom-data reads (Freqtrade's backtest custom data is a linear scan).
"""

from __future__ import annotations

import atexit
import dataclasses
import itertools
import json
import logging
import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple

import numpy.typing as npt
from freqtrade.enums import RunMode
from freqtrade.exceptions import OperationalException
from freqtrade.exchange import timeframe_to_prev_date, timeframe_to_seconds
from freqtrade.persistence import Order, Trade
from freqtrade.strategy import DecimalParameter, IntParameter, IStrategy, stoploss_from_absolute
from pandas import DataFrame

from freqtrade_metastrategy.config import MetaStrategyConfig
from freqtrade_metastrategy.errors import ConfigError, MetaStrategyError
from freqtrade_metastrategy.exitplan import TradePlan
from freqtrade_metastrategy.indicators import FEATURE_COLUMNS, compute_regime_features
from freqtrade_metastrategy.liquidity import BookLiquidity, book_liquidity
from freqtrade_metastrategy.profiles import AggressivenessLevel, StrategyProfile
from freqtrade_metastrategy.regime import MarketRegime, RegimeThresholds, classify_frame
from freqtrade_metastrategy.selector import MetaStrategySelector, SelectorConfig
from freqtrade_metastrategy.store import MemoryStore, QStore, open_store

logger = logging.getLogger(__name__)

CUSTOM_DATA_KEY = "metastrategy"
LIVE_MODES = (RunMode.LIVE, RunMode.DRY_RUN)
#: Live: how often, and how far back, closed trades are checked for a missing reward.
SWEEP_EVERY = timedelta(minutes=15)
SWEEP_LOOKBACK = timedelta(days=2)
#: Live: order-book levels fetched for the liquidity check (the second when the first ends
#: inside the 5 bps band and shows too little depth), and how long a snapshot taken at the
#: entry confirmation is reused for the entry fill.
BOOK_LEVELS = (100, 1000)
BOOK_MAX_AGE = timedelta(minutes=5)
#: Relative distance a stop handed to Freqtrade is moved away from the price. Freqtrade
#: rebuilds the stop price from the ratio ``custom_stoploss`` returns and rounds it toward the
#: price (up for longs, down for shorts); float noise would turn a stop exactly on a tick
#: (101.02) into 101.01999999999998 and so 101.01. Nudged a hair away, rounding restores it.
STOP_NUDGE = 1e-10
#: Run modes in which the learner chooses. Elsewhere (``lookahead-analysis`` and
#: ``recursive-analysis`` run as utility modes) every trade uses ``default_strategy``: those tools
#: re-run truncated backtests with a single pair, where a learner's history (and so its choice)
#: legitimately differs from the full run; pinning the profile lets them test what they are
#: for, the causality of the data pipeline. The learner's own causality has its own tests.
LEARNING_MODES = (*LIVE_MODES, RunMode.BACKTEST, RunMode.HYPEROPT, RunMode.WEBSERVER)
#: Hyperoptable parameter -> (RegimeThresholds field, scale from parameter to field).
REGIME_PARAMETERS: dict[str, tuple[str, float]] = {
    "regime_trend_adx": ("trend_adx_threshold", 1.0),
    "regime_trend_strength": ("trend_strength_threshold", 1.0),
    "regime_low_vol_atr_pct": ("low_vol_atr_pct_threshold", 1.0),
    "regime_high_vol_atr_pct": ("high_vol_atr_pct_threshold", 1.0),
    "regime_extreme_vol_atr_pct": ("extreme_vol_atr_pct_threshold", 1.0),
    "regime_illiquid_volume_musd": ("illiquid_volume_threshold", 1e6),
}
#: Hyperoptable parameter -> SelectorConfig field.
LEARNER_PARAMETERS: dict[str, str] = {
    "learner_epsilon": "epsilon",
    "learner_alpha": "alpha",
    "learner_min_samples": "min_samples",
}
#: Hyperopt spaces that would replace the profiles' exits (MetaStrategy refuses them).
EXIT_SPACES = ("roi", "stoploss", "trailing")


@dataclass(slots=True)
class TradeState:
    """What the strategy keeps per open trade (frozen plan + a little progress)."""

    plan: TradePlan
    regime: str
    amount: float
    probability: float | None
    explored: bool
    stage: int = 0
    tp3_roi: float | None = None

    @property
    def profile(self) -> StrategyProfile:
        return self.plan.profile

    def to_json(self) -> str:
        return json.dumps({
            "v": 1,
            "profile": self.plan.profile.to_dict(),
            "regime": self.regime,
            "side": "short" if self.plan.is_short else "long",
            "entry_price": self.plan.entry_price,
            "r_unit": self.plan.r_unit,
            "amount": self.amount,
            "probability": self.probability,
            "explored": self.explored,
            "stage": self.stage,
        })

    @classmethod
    def from_json(cls, text: str) -> TradeState:
        d = json.loads(text)
        prof = dict(d["profile"])
        prof["aggressiveness"] = AggressivenessLevel(prof["aggressiveness"])
        profile = StrategyProfile(**prof)
        plan = TradePlan(profile, is_short=d["side"] == "short",
                         entry_price=float(d["entry_price"]), r_unit=float(d["r_unit"]))
        return cls(plan, str(d["regime"]), float(d["amount"]), d.get("probability"),
                   bool(d.get("explored", False)), int(d.get("stage", 0)))


class SignalCandle(NamedTuple):
    """What the strategy reads from a trade's signal candle."""

    date: datetime
    regime: str
    atr: float
    confidence: float


def trade_key(trade: Trade) -> str:
    """The ledger key of a trade: unique across bots sharing one store, stable across restarts."""
    return f"{trade.pair}|{trade.open_date_utc.isoformat()}|{trade.id}"


class MetaStrategyBase(IStrategy):
    """Regime-aware TP/SL profile selection. Subclass it; see the module docstring."""

    INTERFACE_VERSION = 3

    timeframe = "1h"
    can_short = False
    # EMA(50) and ADX(14) need a long warm-up before recursive-analysis shows no drift.
    startup_candle_count: int = 400
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

    # -- hyperoptable (``freqtrade hyperopt --spaces regime learner``) ------------------------
    # Defaults are the seeds'. Precedence for each: the value hyperopt is trying (in its own
    # run), else the strategy's parameter file (``MetaStrategy.json``, written by hyperopt),
    # else ``metastrategy.thresholds`` / the learner keys of the config, else the default.
    # The ATR% ranges do not overlap, so every sample keeps low < high < extreme.
    regime_trend_adx = DecimalParameter(15.0, 40.0, default=25.0, decimals=1, space="regime")
    regime_trend_strength = DecimalParameter(0.10, 0.60, default=0.30, decimals=2,
                                             space="regime")
    regime_low_vol_atr_pct = DecimalParameter(0.005, 0.020, default=0.015, decimals=3,
                                              space="regime")
    regime_high_vol_atr_pct = DecimalParameter(0.025, 0.055, default=0.040, decimals=3,
                                               space="regime")
    regime_extreme_vol_atr_pct = DecimalParameter(0.060, 0.120, default=0.060, decimals=3,
                                                  space="regime")
    regime_illiquid_volume_musd = DecimalParameter(0.0, 10.0, default=2.0, decimals=1,
                                                   space="regime")
    learner_epsilon = DecimalParameter(0.0, 0.30, default=0.10, decimals=2, space="learner")
    learner_alpha = DecimalParameter(0.05, 0.50, default=0.20, decimals=2, space="learner")
    learner_min_samples = IntParameter(1, 20, default=5, space="learner")

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
        self._states: dict[int, TradeState] = {}
        # live: closed trades whose reward is settled or never to be (skip their re-handled
        # fills, which Freqtrade repeats every loop while the exchange reported no fee)
        self._finished: set[int] = set()
        # per pair: candle open times (epoch s), regime, ATR, regime confidence
        self._signal_arrays: dict[str, tuple[npt.NDArray[Any], ...]] = {}
        # live: the last order book snapshot per pair (time, liquidity)
        self._books: dict[str, tuple[datetime, BookLiquidity]] = {}
        self._last_loop: datetime | None = None
        self._last_sweep: datetime | None = None
        self._export_registered = False
        self._pretrained_doc: Any = None
        self.selector: MetaStrategySelector = self._new_selector(MemoryStore(), static=True)

    # ------------------------------------------------------------------------------------------
    # set-up
    # ------------------------------------------------------------------------------------------
    @property
    def _runmode(self) -> RunMode | None:
        mode = self.config.get("runmode")
        return mode if isinstance(mode, RunMode) else None

    @property
    def _live(self) -> bool:
        return self._runmode in LIVE_MODES

    def _new_selector(self, store: QStore, *, static: bool = False) -> MetaStrategySelector:
        return MetaStrategySelector(
            config=self.selector_config(static=static), store=store,
            profiles=self.ms_config.profiles,
            log_level=logging.INFO if self._live else logging.DEBUG,
        )

    # ------------------------------------------------------------------------------------------
    # hyperoptable settings
    # ------------------------------------------------------------------------------------------
    def _is_tuned(self, name: str) -> bool:
        """Whether this hyperopt run tunes parameter ``name`` (its space is in ``--spaces``).

        Decided from the config, not from Freqtrade's ``in_space`` flag: parameters are class
        attributes shared by every instance in the process, and the flag is only reset after
        ``bot_start``.
        """
        param = getattr(self, name)
        return (self._runmode == RunMode.HYPEROPT and bool(param.optimize)
                and param.space in (self.config.get("spaces") or ()))

    def _tuned(self, name: str, configured: float, *, static: bool = False) -> float:
        """The effective value of hyperoptable parameter ``name`` (see the class body).

        ``static``: never the value a hyperopt epoch tries (populate_indicators runs once for
        the whole hyperopt; the placeholder learner of ``__init__``/``bot_start`` is replaced
        at the first candle of every backtest).
        """
        if self._is_tuned(name):
            return configured if static else float(getattr(self, name).value)
        param = getattr(self, name)
        from_file = (getattr(self, "_ft_params_from_file", None) or {}).get(param.space) or {}
        if name in from_file:
            return float(from_file[name])
        return configured

    def regime_thresholds(self, *, static: bool = False) -> RegimeThresholds:
        """The regime thresholds in effect (hyperopt epoch, parameter file, config, default)."""
        base = self.ms_config.thresholds
        values = {
            field: self._tuned(name, getattr(base, field) / scale, static=static) * scale
            for name, (field, scale) in REGIME_PARAMETERS.items()
        }
        try:
            return dataclasses.replace(base, **values)
        except ConfigError as exc:
            raise OperationalException(
                f"Regime thresholds from the strategy parameter file and metastrategy.thresholds "
                f"do not fit together: {exc}. Fix the parameter file or the config."
            ) from exc

    def selector_config(self, *, static: bool = False) -> SelectorConfig:
        """The learner settings in effect (hyperopt epoch, parameter file, config, default)."""
        base = self.ms_config.selector
        values: dict[str, Any] = {
            field: self._tuned(name, float(getattr(base, field)), static=static)
            for name, field in LEARNER_PARAMETERS.items()
        }
        values["min_samples"] = round(values["min_samples"])
        try:
            return dataclasses.replace(base, **values)
        except ConfigError as exc:
            raise OperationalException(f"Learner settings: {exc}") from exc

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
        self._sync_parameter_values()
        if self._runmode == RunMode.HYPEROPT:
            self._check_hyperopt_spaces()
            self._check_tuning_ranges()
        self._log_settings()
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
        self.selector = self._new_selector(store, static=True)
        self._states.clear()
        self._finished.clear()
        if self._live:
            self.settle_unsettled_trades(since=None)
        if self._runmode == RunMode.BACKTEST and not self._export_registered:
            atexit.register(self.export_backtest_qtable)
            self._export_registered = True

    def _our_parameters(self) -> dict[str, float]:
        """Each hyperoptable parameter of ours -> its configured value (config or default)."""
        return {name: self._configured(self.ms_config, name)
                for name in (*REGIME_PARAMETERS, *LEARNER_PARAMETERS)}

    @staticmethod
    def _configured(cfg: MetaStrategyConfig, name: str) -> float:
        """Parameter ``name``'s value in ``cfg`` (in the parameter's unit)."""
        if name in REGIME_PARAMETERS:
            field, scale = REGIME_PARAMETERS[name]
            return float(getattr(cfg.thresholds, field)) / scale
        return float(getattr(cfg.selector, LEARNER_PARAMETERS[name]))

    def _sync_parameter_values(self) -> None:
        """Give parameters without a value in the parameter file the configured value.

        Freqtrade writes every parameter's ``.value`` into the parameter file after a
        hyperopt, the tuned ones and the others; without this the others would be written
        with their class default, and a hyperopt of ``--spaces learner`` would silently
        replace the config's regime thresholds with the defaults in the next backtest.
        (Parameters are class attributes shared by the process's instances; Freqtrade runs
        one strategy per process.)
        """
        file_params = getattr(self, "_ft_params_from_file", None) or {}
        defaults = MetaStrategyConfig()
        for name, configured in self._our_parameters().items():
            param = getattr(self, name)
            from_file = (file_params.get(param.space) or {}).get(name)
            if from_file is not None and configured != self._configured(defaults, name) and (
                    not math.isclose(float(from_file), configured)):
                logger.warning("%s: the strategy parameter file's %s (%s) overrides the config "
                               "(%s); delete the file or the key to choose", name,
                               name, from_file, configured)
            if from_file is None:
                # Not through the ``value`` setter: DecimalParameter rounds to its decimals,
                # and the file would then carry (and later impose) 22.2 for a configured 22.25.
                param._value = (round(configured) if isinstance(param, IntParameter)
                                else configured)

    def _check_tuning_ranges(self) -> None:
        """Hyperopt: every value the tuned parameters can take must give valid settings.

        Checked here, where an error stops the run, not per epoch (``bot_loop_start`` errors
        are only logged by Freqtrade, and the epoch would run with the previous learner).
        Every corner of the search box is tried: each constraint is monotone in each parameter.
        """
        tuned = [n for n in (*REGIME_PARAMETERS, *LEARNER_PARAMETERS) if self._is_tuned(n)]
        if not tuned:
            return
        saved = {n: getattr(self, n)._value for n in tuned}
        try:
            # every corner of the search box (at most 2^9): constraints compare parameters
            # with each other (low < high < extreme ATR%), so a mixed corner can be the bad one
            for corner in itertools.product(("low", "high"), repeat=len(tuned)):
                for n, end in zip(tuned, corner, strict=True):
                    getattr(self, n)._value = getattr(getattr(self, n), end)
                try:
                    self.selector_config()
                    self.regime_thresholds()
                except OperationalException as exc:
                    at = ", ".join(f"{n}={getattr(self, n)._value}" for n in tuned)
                    raise OperationalException(
                        f"hyperopt --spaces {' '.join(self.config.get('spaces') or ())}: the "
                        f"settings are invalid at a corner of the search ranges ({at}): {exc}. "
                        "Change that config key, or leave the space out."
                    ) from exc
        finally:
            for n, value in saved.items():
                getattr(self, n)._value = value
        sel = self.ms_config.selector
        if "learner_epsilon" in tuned and (sel.policy != "epsilon_greedy"
                                           or "epsilon" in sel.policy_params):
            logger.warning("[RL] learner_epsilon is tuned but has no effect: policy %s%s",
                           sel.policy, " with policy_params.epsilon" if sel.policy ==
                           "epsilon_greedy" else "")

    def _check_hyperopt_spaces(self) -> None:
        spaces = [str(s) for s in (self.config.get("spaces") or ["default"])]
        wrong = sorted({s for s in spaces if s in (*EXIT_SPACES, "all", "default")})
        if wrong:
            raise OperationalException(
                f"--spaces {' '.join(wrong)}: {type(self).__name__} exits through its TP/SL "
                f"profiles, and hyperopting {'/'.join(EXIT_SPACES)} would replace them. Use "
                "--spaces regime learner (regime thresholds, learner settings), plus buy/sell "
                "for parameters of your own entry signals."
            )

    def _log_settings(self) -> None:
        level = logging.INFO if self._live or self._runmode in (
            RunMode.BACKTEST, RunMode.HYPEROPT) else logging.DEBUG
        if self._runmode == RunMode.HYPEROPT:
            spaces = set(self.config.get("spaces") or ())
            tuned = [name for name in (*REGIME_PARAMETERS, *LEARNER_PARAMETERS)
                     if getattr(self, name).space in spaces]
            logger.log(level, "[REGIME] hyperopt tunes %s per epoch; every epoch learns from "
                       "a fresh %s table, seed %s", ", ".join(tuned) or "nothing of ours",
                       "pretrained" if self.ms_config.pretrained else "empty",
                       self.ms_config.selector.seed)
            return
        t, sel = self.regime_thresholds(), self.selector_config()
        logger.log(level, "[REGIME] thresholds: ADX > %g, |trend strength| > %g, ATR%% low "
                   "%g / high %g / extreme %g, 24h volume >= %g", t.trend_adx_threshold,
                   t.trend_strength_threshold, t.low_vol_atr_pct_threshold,
                   t.high_vol_atr_pct_threshold, t.extreme_vol_atr_pct_threshold,
                   t.illiquid_volume_threshold)
        logger.log(level, "[RL] learner: %s, epsilon %g, alpha %g, min_samples %d, seed %s",
                   sel.policy, sel.epsilon, sel.alpha, sel.min_samples, sel.seed)

    def bot_loop_start(self, current_time: datetime, **kwargs: Any) -> None:
        """Per loop (per candle in backtests): detect a new backtest run and start it clean.

        A backtest starts from the same (empty or pretrained) table and seed, with the learner
        settings in effect: at its first candle, and whenever time goes backwards (hyperopt
        ``-j 1`` and repeated backtests reuse this object; hyperopt ``-j 2`` hands every epoch
        a fresh copy of the object as it was before any backtest ran).
        """
        if not self._live and (self._last_loop is None or current_time <= self._last_loop):
            if self._runmode == RunMode.BACKTEST and self._last_loop is not None:
                self.export_backtest_qtable()
            self.selector = self._new_selector(self._memory_store())
            self._states.clear()
        if self._live and (self._last_sweep is None or
                           current_time - self._last_sweep >= SWEEP_EVERY):
            self.settle_unsettled_trades(since=current_time - SWEEP_LOOKBACK)
            self._last_sweep = current_time
        self._last_loop = current_time

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
            except (ValueError, KeyError, TypeError, MetaStrategyError) as exc:
                logger.warning("%s trade %s: unreadable frozen data (%s), not settled",
                               trade.pair, trade.id, exc)
                continue
            if self._settle(trade, state, self._closed_profit(trade), trade.close_date_utc):
                settled += 1
        if since is None or settled:
            logger.info("[RL] settled %d closed trade(s) whose reward was missing (trades "
                        "closed since the store's watermark %s)", settled, mark.isoformat())
        return settled

    def backtest_qtable_path(self) -> Path:
        if self.ms_config.backtest_qtable_file:
            return Path(self.ms_config.backtest_qtable_file)
        user_data = Path(self.config.get("user_data_dir") or "user_data")
        return user_data / "backtest_results" / "metastrategy_qtable.json"

    def export_backtest_qtable(self) -> Path | None:
        """Write the table a backtest learned (called when the backtest process ends)."""
        store = self.selector.store
        if store.is_empty():
            return None
        path = self.backtest_qtable_path()
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
        return super().advise_entry(dataframe, metadata)  # type: ignore[no-any-return]

    def _classify(self, dataframe: DataFrame, pair: str, thresholds: RegimeThresholds) -> None:
        """Set ``regime``, ``regime_confidence``, ``regime_code`` and the pair's signal arrays."""
        if "adx" not in dataframe.columns:  # e.g. a subclass that skipped populate_indicators
            return
        classify_frame(dataframe, thresholds, code_column="regime_code")
        self._signal_arrays[pair] = (
            dataframe["date"].to_numpy(dtype="datetime64[s]").astype("int64"),
            dataframe["regime"].to_numpy(),
            dataframe["atr"].to_numpy(dtype="float64"),
            dataframe["regime_confidence"].to_numpy(dtype="float64"),
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
        n = self.breakout_period
        close = dataframe["close"]
        upper = dataframe["high"].rolling(n).max().shift(1)
        broke_up = close > upper
        live = dataframe["volume"] > 0
        dataframe.loc[broke_up & ~broke_up.shift(1, fill_value=True) & live, "enter_long"] = 1
        if self.can_short:
            lower = dataframe["low"].rolling(n).min().shift(1)
            broke_down = close < lower
            dataframe.loc[
                broke_down & ~broke_down.shift(1, fill_value=True) & live, "enter_short"
            ] = 1
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
        dates, regimes, atrs, confidences = arrays
        tf = timedelta(seconds=timeframe_to_seconds(self.timeframe))
        signal_date = timeframe_to_prev_date(self.timeframe, open_date) - tf
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
        """
        row = self._signal_row(pair, current_time)
        regime = row.regime if row is not None else MarketRegime.UNKNOWN.value
        if self._live:
            regime, why = self._book_regime(pair, regime, current_time, fresh=True)
        else:
            why = "24h quote volume"
        if self.ms_config.block_illiquid and regime == MarketRegime.ILLIQUID.value:
            logger.info("[REGIME] %s illiquid (%s): entry blocked (block_illiquid)", pair, why)
            return False
        return True

    def _book_regime(
        self, pair: str, regime: str, now: datetime, *, fresh: bool
    ) -> tuple[str, str]:
        """Live: ``regime``, or ``illiquid`` when the order book says so, and why.

        ``fresh=True`` fetches the book; otherwise the snapshot taken by
        ``confirm_trade_entry`` is reused if it is younger than :data:`BOOK_MAX_AGE` (the entry
        fill follows it within the same loop), else the book is fetched.
        """
        if regime == MarketRegime.ILLIQUID.value:
            return regime, "24h quote volume"
        cached = self._books.get(pair)
        if fresh or cached is None or now - cached[0] > BOOK_MAX_AGE:
            book = self._fetch_book(pair)
            if book is None:
                return regime, "order book unavailable"
            self._books[pair] = (now, book)
        else:
            book = cached[1]
        signals = book.illiquid_signals(self.ms_config.thresholds)
        if signals:
            return MarketRegime.ILLIQUID.value, "order book: " + ", ".join(signals)
        return regime, (f"order book depth_5bps=${book.depth_quote:,.0f}, "
                        f"spread={book.spread_bps:.1f}bps")

    def _fetch_book(self, pair: str) -> BookLiquidity | None:
        """The pair's order book liquidity, or None if the exchange cannot tell (logged)."""
        try:
            levels = BOOK_LEVELS[0]
            book = self.dp.orderbook(pair, levels)
            liquidity = book_liquidity(book.get("bids") or [], book.get("asks") or [])
            if liquidity.truncated and not liquidity.empty and (
                liquidity.depth_quote < self.ms_config.thresholds.illiquid_depth_threshold
            ):
                # The levels fetched end inside the band: ask for enough to see all of it.
                levels = BOOK_LEVELS[1]
                book = self.dp.orderbook(pair, levels)
                liquidity = book_liquidity(book.get("bids") or [], book.get("asks") or [])
        except Exception as exc:  # any exchange failure: fall back to volume
            logger.warning("%s: order book unavailable (%s); liquidity from volume only",
                           pair, exc)
            return None
        return liquidity

    def _freeze(self, pair: str, trade: Trade, current_time: datetime) -> TradeState:
        """Choose a profile for the trade and freeze everything its exits need."""
        row = self._signal_row(pair, trade.open_date_utc)
        atr = row.atr if row is not None else math.nan
        regime = row.regime if row is not None else MarketRegime.UNKNOWN.value
        book_note = ""
        if self._live:
            regime, book_note = self._book_regime(pair, regime, current_time, fresh=False)
            book_note = f", {book_note}"
        entry = float(trade.open_rate)
        if not (math.isfinite(atr) and atr > 0):
            atr = 0.01 * entry
            logger.warning("%s trade %s: no ATR for the signal candle, 1R = 1%% of entry (%.8g)",
                           pair, trade.id, atr)
        if self.ms_config.enabled and self._runmode in LEARNING_MODES:
            decision = self.selector.choose_strategy(pair, regime)
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
            except (ValueError, KeyError, TypeError, MetaStrategyError) as exc:
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
        stop *= (1 + STOP_NUDGE) if plan.is_short else (1 - STOP_NUDGE)
        return float(stoploss_from_absolute(stop, current_rate, is_short=plan.is_short,
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
        if not plan.pays(rate, float(trade.fee_open or 0.0), float(trade.fee_close or 0.0)):
            return None
        seen = (trade.min_rate if plan.is_short else trade.max_rate) or trade.open_rate
        best = min(seen, rate) if plan.is_short else max(seen, rate)
        new_stage, fraction = plan.partials_due(state.stage, best)
        if new_stage == state.stage:
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
            trade.id in self._finished
            or self.selector.store.is_settled(trade_key(trade))
            or not self._closed_in_store(trade)
        ):
            # Freqtrade re-handles the closing fill of a closed trade whose fee was never
            # assigned at every loop: settled already, or closed before this store's content
            # (both permanent: the watermark only moves forward).
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

    def _closed_in_store(self, trade: Trade) -> bool:
        """Live: whether the closed trade closed while the store's content existed (at or
        after its watermark: a ``reset``, a new store or an ``import --replace`` forgets what
        closed before)."""
        closed = trade.close_date_utc if trade.close_date else None
        return closed is not None and closed >= self.selector.store.watermark()

    def _reward(self, state: TradeState, pnl: float) -> float:
        """The trade's reward in the configured unit (``metastrategy.reward_unit``)."""
        r_atr = state.plan.r_multiple(pnl, state.amount)
        unit = self.ms_config.reward_unit
        if unit == "r_risk":
            return r_atr / state.profile.r_sl
        if unit == "ret_pct":
            return 100.0 * pnl / (state.amount * state.plan.entry_price)
        return r_atr

    def _settle(
        self, trade: Trade, state: TradeState, pnl: float, when: datetime | None
    ) -> bool:
        reward = self._reward(state, pnl)
        done = self.selector.update_reward(
            trade.pair, state.regime, state.profile.strategy_id, reward,
            trade_id=trade_key(trade), at=when, probability=state.probability,
            closed_at=trade.close_date_utc if self._live and trade.close_date else None,
        )
        if not trade.is_open or self._runmode in (RunMode.BACKTEST, RunMode.HYPEROPT):
            self._states.pop(trade.id, None)
        return done

    # ------------------------------------------------------------------------------------------
    # introspection helpers (tests, reports)
    # ------------------------------------------------------------------------------------------
    def trade_state(self, trade_id: int) -> TradeState | None:
        return self._states.get(trade_id)


__all__ = [
    "CUSTOM_DATA_KEY",
    "LEARNER_PARAMETERS",
    "REGIME_PARAMETERS",
    "MetaStrategyBase",
    "TradeState",
    "trade_key",
]
