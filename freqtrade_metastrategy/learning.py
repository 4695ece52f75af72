"""Full-information learning in the strategy (``MetaStrategyBase``'s learning layer).

When ``metastrategy.policy`` names a full-information policy (``walk_forward_static``,
``contextual_ridge``), :class:`MetaLearningMixin` drives a
:class:`~freqtrade_metastrategy.fullinfo.FullInfoLearner`, the same code ``evaluate``'s replay
runs:

* **Signals** (``advise_entry``, every pair): every entry signal (taken, refused for lack of a
  slot, or stood aside) is simulated under every profile with the simulator's exact exit rules
  (:mod:`freqtrade_metastrategy.virtual_trades`). Backtests and hyperopt compute the whole
  range ahead and hand every signal to the learner at the run's first candle; the learner
  holds each one back until its last virtual trade has closed.
* **Decision** (``confirm_trade_entry``): the learner releases what has closed by the signal
  candle (in the canonical order) and decides: a profile, or stand aside (``False``: no order
  is sent; logged ``[STRATEGY] <pair> stand aside: ...``). The decision is kept for the entry
  fill, where the plan is frozen with the profile it chose.
* **The chosen profile's outcome**: the learner learns the *simulated* outcome of every
  profile, the chosen one included, not the real trade's: every profile is then scored on the
  same fills (the real trade differs by slippage, the fill price of the entry and partial
  fills, which would bias the chosen profile against the others). The real trade's reward
  still settles, exactly once, into the Q-table's ledger (``show``, ``ope``).

Live and dry-run (:meth:`MetaLearningMixin._track_live`), signals are found as candles close:
each new signal (from the store's watermark on) is *watched* with its context, simulated again
on every new candle until every profile's virtual trade has closed, then handed to the learner.
The learner, the watched signals, how far each pair's candles were read and the decision
counts are one document in the store (``QStore.save_learner_state``), written once per loop
with a compare-and-swap on its generation: a SIGKILL loses at most the last loop, which the
restarted bot re-derives from the same candles (nothing lost, nothing counted twice), and a
``reset`` by another process is never overwritten (the bot reloads). A watched signal whose
candle has left the bot's candle window before all its virtual trades closed (Freqtrade
keeps the exchange's candle limit plus the startup candles: about 2,400 on Binance 1h) is
dropped, with a warning.

Decisions and stand-asides are counted per regime (:attr:`MetaLearningMixin.decision_counts`;
``freqtrade-metastrategy show`` prints them from the store); a backtest writes them, with every
decision, next to its Q-table.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import numpy as np
import numpy.typing as npt
from freqtrade.enums import RunMode
from pandas import DataFrame

from freqtrade_metastrategy.context import CONTEXT_FEATURES, DIRECTIONAL, MIRRORED
from freqtrade_metastrategy.entries import DEFAULT_FEE
from freqtrade_metastrategy.errors import ConfigError, MetaStrategyError, StoreError
from freqtrade_metastrategy.evaluation.simulator import infer_tick_sizes
from freqtrade_metastrategy.fullinfo import FullInfoConfig, FullInfoDecision, FullInfoLearner
from freqtrade_metastrategy.profiles import BUILTIN_PROFILES
from freqtrade_metastrategy.settlement import MetaSettlementMixin
from freqtrade_metastrategy.store import QStore
from freqtrade_metastrategy.store.base import StaleLearnerStateError
from freqtrade_metastrategy.virtual_trades import (
    VirtualSignal,
    flags,
    signal_rows,
    simulate_signals,
)

logger = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]
DecisionKey = tuple[str, int, str]


class MetaLearningMixin(MetaSettlementMixin):
    """The full-information learner of the strategy (see the module doc)."""

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__(config)
        self.learner: FullInfoLearner | None = None
        # backtests: every pair's virtual signals with their design rows, computed ahead
        self._fi_signals: dict[str, list[tuple[VirtualSignal, FloatArray]]] = {}
        self._fi_decisions: dict[DecisionKey, FullInfoDecision] = {}
        #: regime -> [decisions, stand-asides]
        self.decision_counts: dict[str, list[int]] = {}
        #: every decision of this run (backtests; written next to the Q-table)
        self.decision_log: list[dict[str, Any]] = []
        # live: signals whose virtual trades are still open, how far each pair was read, the
        # stored document's generation, whether it changed since it was saved
        self._watching: list[dict[str, Any]] = []
        self._seen_through: dict[str, int] = {}
        self._generation = 0
        self._dirty = False
        self._since_ns = 0
        self._leader_warned = False
        self._fees: dict[str, float] = {}
        # per pair: the analysed candles' dates (s), enter_long / enter_short flags, enter_tag
        self._enter_flags: dict[str, tuple[npt.NDArray[Any], ...]] = {}
        # live: the stored learner could not be reloaded (never overwrite it)
        self._save_blocked = False
        self._lock = threading.RLock()  # live: forced entries decide on the API thread
        # backtests: per pair, the last simulation and what it was computed for
        self._sim_cache: dict[str, tuple[tuple[Any, ...], list[VirtualSignal]]] = {}

    def __getstate__(self) -> dict[str, Any]:
        """Hyperopt ``-j 2`` pickles the strategy: a lock cannot travel (a new one is made)."""
        state = dict(self.__dict__)
        state.pop("_lock", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.RLock()

    # ------------------------------------------------------------------------------------------
    @property
    def full_info(self) -> FullInfoConfig | None:
        """The full-information policy in effect (its settings from a hyperopt epoch, the
        strategy's parameter file or the config), or None (a bandit policy)."""
        cfg: FullInfoConfig | None = self.full_info_config()
        return cfg

    def _profile_order(self) -> list[str]:
        """Profile ids in the outcome table's order (built-ins first, then by name)."""
        ids = list(self.ms_config.profiles)
        return [*(p for p in BUILTIN_PROFILES if p in ids),
                *sorted(p for p in ids if p not in BUILTIN_PROFILES)]

    def _new_learner(self) -> FullInfoLearner:
        cfg = self.full_info
        assert cfg is not None
        return FullInfoLearner(cfg, self._profile_order(), CONTEXT_FEATURES, DIRECTIONAL,
                               MIRRORED, self._learner_meta())

    def _design(self, learner: FullInfoLearner, pair: str, row: int, side: str) -> FloatArray:
        """The design row of ``pair``'s candle ``row`` (context, side, regime)."""
        arrays = self._signal_arrays[pair]
        context: FloatArray = arrays[4]
        return learner.design(context[row], side, str(arrays[1][row]))

    # ------------------------------------------------------------------------------------------
    # signals
    # ------------------------------------------------------------------------------------------
    def _register_signals(self, dataframe: DataFrame, pair: str) -> None:
        """Backtests and hyperopt: every signal of ``pair``'s range, simulated ahead (handed to
        the learner at the run's first candle, see :meth:`_start_learning_run`)."""
        long_, short = flags(dataframe)
        tags = (dataframe["enter_tag"].to_numpy(dtype=object) if "enter_tag" in dataframe
                else np.full(len(dataframe), None, dtype=object))
        self._enter_flags[pair] = (
            dataframe["date"].to_numpy(dtype="datetime64[s]").astype("int64"), long_, short,
            tags)
        if self.full_info is None or not self.ms_config.enabled:
            return
        if self._live:
            self._track_live(dataframe, pair)
            return
        start = self._required_startup()
        rows = signal_rows(dataframe, block_illiquid=self.ms_config.block_illiquid,
                           start=min(start, len(dataframe)))
        dates = dataframe["date"]
        key = (len(dataframe), str(dates.iloc[0]) if len(dates) else "",
               str(dates.iloc[-1]) if len(dates) else "", tuple(rows))
        cached = self._sim_cache.get(pair)
        if cached is not None and cached[0] == key:
            sims = cached[1]  # hyperopt: the same candles and signals as the last epoch
        else:
            profiles = {p: self.ms_config.profiles[p] for p in self._profile_order()}
            ticks = infer_tick_sizes({pair: dataframe})
            sims = simulate_signals(dataframe, pair, rows, profiles, fee=self._fee_rate(pair),
                                    unit=self.ms_config.reward_unit, tick_size=ticks[pair],
                                    open_at_end=False)
            self._sim_cache[pair] = (key, sims)
        template = self._new_learner()
        self._fi_signals[pair] = [(s, self._design(template, pair, s.row, s.side))
                                  for s in sims]

    def _pretrained_learner(self, doc: Any, source: str) -> FullInfoLearner | None:
        """The learner saved in an exported document (``pretrained``, a store), or None."""
        state = doc.get("learner") if isinstance(doc, Mapping) else None
        if not state:
            return None
        config = self._memory_of(state, source)
        try:
            return FullInfoLearner.from_dict(state["learner"], config,
                                             profiles=self._profile_order(),
                                             features=CONTEXT_FEATURES,
                                             meta=self._learner_meta())
        except ConfigError as exc:
            raise MetaStrategyError(f"{source}: {exc}") from exc
        except (KeyError, TypeError, ValueError) as exc:
            raise MetaStrategyError(f"{source}: unreadable learner state ({exc})") from exc

    def _memory_of(self, state: Mapping[str, Any], source: str) -> FullInfoConfig | None:
        """The settings a stored learner is loaded with: the effective ones, except that a
        memory (estimator, half-life, alpha) set by the strategy's parameter file (e.g. a
        ``tune`` winner installed since) does not apply to statistics already learned under
        another: those keep their own memory, with a warning. A memory changed in the config
        itself is still refused by the learner (as before)."""
        fi = self.full_info
        configured = self.ms_config.full_info
        try:
            saved = FullInfoConfig.from_dict(state["learner"]["config"])
        except (KeyError, TypeError, ValueError):
            return fi  # unreadable: the learner's own check says so
        if fi is None or configured is None or fi.decay == saved.decay or (
                configured.estimator != saved.estimator or configured.decay != saved.decay):
            return fi
        logger.warning(
            "[RL] %s: the stored learner learned with half_life %g / alpha %g; the strategy's "
            "parameter file says half_life %g / alpha %g: the stored statistics keep their own "
            "memory (reset the store, or pretrain again, to learn with the new one)",
            source, saved.half_life, saved.alpha, fi.half_life, fi.alpha)
        return replace(fi, estimator=saved.estimator, half_life=saved.half_life,
                       alpha=saved.alpha)

    def _required_startup(self) -> int:
        """The rows Freqtrade trims before the candle loop: its data provider's required
        startup (the largest of a --strategy-list, FreqAI's), else this strategy's."""
        dp = getattr(self, "dp", None)
        try:
            if dp is not None:
                return int(dp.get_required_startup(self.timeframe))
        except Exception:  # no provider config (a bare strategy object): our own count
            pass
        return int(self.config.get("startup_candle_count")
                   or getattr(self, "startup_candle_count", 0) or 0)

    def _start_learning_run(self, pretrained: Any = None, source: str = "") -> None:
        """A fresh learner for a backtest run (or the pretrained one), given every pair's
        signals unless ``freeze_learner``."""
        self._fi_decisions.clear()
        self.decision_counts = {}
        self.decision_log = []
        if self.full_info is None:
            self.learner = None
            return
        learner = self._pretrained_learner(pretrained, source) or self._new_learner()
        self.learner = learner
        if self.ms_config.freeze_learner:
            return
        for sigs in self._fi_signals.values():
            for s, x in sigs:
                assert s.release_ns is not None
                learner.add(s.key, s.release_ns, x, s.rewards)

    @property
    def leader_pair(self) -> str:
        """The market leader whose trend, volatility and returns are context features
        (``metastrategy.leader_pair``, default ``BTC/<stake currency>``, its perpetual in
        futures mode)."""
        if self.ms_config.leader_pair:
            return self.ms_config.leader_pair
        stake = self.config.get("stake_currency", "USDT")
        futures = self.config.get("trading_mode") == "futures"
        return f"BTC/{stake}:{stake}" if futures else f"BTC/{stake}"

    def informative_pairs(self) -> list[tuple[str, str]]:
        """The leader's candles (live: Freqtrade downloads them with the whitelist's)."""
        return [(self.leader_pair, self.timeframe)]

    def _leader_candles(self, pair: str, dataframe: DataFrame) -> DataFrame | None:
        """The leader's candles (this frame when ``pair`` is the leader); None (neutral leader
        features, warned once) when they cannot be read."""
        if pair == self.leader_pair:
            return dataframe
        dp = getattr(self, "dp", None)  # Freqtrade sets it after __init__ (None: no provider)
        if dp is None:
            return None
        try:
            df = dp.get_pair_dataframe(self.leader_pair, self.timeframe)
        except Exception as exc:  # any data-provider failure: neutral features
            df, why = None, str(exc)
        else:
            why = "no candles"
        if df is None or len(df) == 0:
            if not self._leader_warned:
                logger.warning("[CONTEXT] leader %s %s: %s; its context features are neutral "
                               "(0). Add its data, or set metastrategy.leader_pair.",
                               self.leader_pair, self.timeframe, why)
                self._leader_warned = True
            return None
        return df  # type: ignore[no-any-return]

    def _fee_rate(self, pair: str) -> float:
        """The fee per fill of the virtual trades and the context's ``ctx_fee_r``: what
        Freqtrade charges. Backtests, hyperopt and dry-run: the config's ``fee`` if set; a
        backtest otherwise takes the worst of taker and maker of the whitelist's first pair
        for every pair, and live the pair's taker (a market order). Live trading (not
        dry-run) ignores the config's ``fee``: the exchange's. Without an exchange
        (``evaluate``): the config's ``fee`` or 0.1%."""
        live_real = self._live and not self.config.get("dry_run", True)
        fee = None if live_real else self.config.get("fee")
        if fee is not None:
            return float(fee)
        which = pair
        if not self._live:
            dp = getattr(self, "dp", None)
            try:
                whitelist = dp.current_whitelist() if dp is not None else []
            except Exception:  # no pairlist (evaluate's provider)
                whitelist = []
            which = whitelist[0] if whitelist else pair
        cached = self._fees.get(which)
        if cached is None:
            cached = self._market_fee(which)
            self._fees[which] = cached
        return cached

    def _learner_meta(self) -> dict[str, Any]:
        """What the learner's outcomes depend on (unit, profiles, timeframe, and the fee of the
        whitelist's first pair)."""
        dp = getattr(self, "dp", None)
        try:
            whitelist = dp.current_whitelist() if dp is not None else []
        except Exception:  # no pairlist (evaluate's provider)
            whitelist = []
        pair = whitelist[0] if whitelist else self.leader_pair
        return self.ms_config.learner_meta(self.timeframe, self._fee_rate(pair))

    def _market_fee(self, pair: str) -> float:
        """The larger of the market's taker and maker fee, else 0.1%."""
        dp = getattr(self, "dp", None)
        try:
            market = dp.market(pair) if dp is not None else None
        except Exception:  # no exchange (evaluate's data provider): the default
            market = None
        rates = [float(market[k]) for k in ("taker", "maker")
                 if market and isinstance(market.get(k), int | float)]
        return max(rates) if rates else DEFAULT_FEE

    # ------------------------------------------------------------------------------------------
    # live
    # ------------------------------------------------------------------------------------------
    def _load_live_learner(self, store: QStore) -> None:
        """Live start (and after a stale save): the stored learner, or a fresh one learning
        from the store's watermark on. Everything is read first and assigned only once it all
        checked out: a stored learner that does not fit the config raises and leaves this
        object as it was."""
        if self.full_info is None:
            self.learner = None
            return
        doc, generation = store.learner_state()
        since_ns = int(store.watermark().timestamp() * 1e9)
        learner = self._pretrained_learner({"learner": doc} if doc else None, store.location)
        try:
            tracker = (doc or {}).get("tracker", {}) if learner is not None else {}
            watching = list(tracker.get("watching", []))
            seen = {str(k): int(v) for k, v in tracker.get("seen_through", {}).items()}
            counts = {str(k): [int(a), int(b)]
                      for k, (a, b) in tracker.get("counts", {}).items()}
        except (AttributeError, TypeError, ValueError) as exc:
            raise MetaStrategyError(f"{store.location}: unreadable learner tracker "
                                    f"({exc})") from exc
        with self._lock:
            self._fi_decisions.clear()
            self._generation, self._since_ns = generation, since_ns
            self._watching, self._seen_through, self.decision_counts = watching, seen, counts
            self.learner = learner if learner is not None else self._new_learner()
            self._dirty = False
            self._save_blocked = False
        if learner is None:
            logger.info("[RL] full-information learner (%s): starts empty, learning from "
                        "signals since %s", self.full_info.policy, store.watermark().isoformat())
        else:
            logger.info("[RL] full-information learner (%s): %d signals learned, %d waiting for "
                        "their virtual exits, %d watched", self.full_info.policy,
                        learner.released, learner.pending, len(watching))

    def _track_live(self, dataframe: DataFrame, pair: str) -> None:
        """Live: watch the pair's new signals, hand the complete ones to the learner."""
        with self._lock:
            self._track_live_locked(dataframe, pair)

    def _track_live_locked(self, dataframe: DataFrame, pair: str) -> None:
        learner = self.learner
        if learner is None or self.ms_config.freeze_learner or not len(dataframe):
            return
        dates = dataframe["date"].to_numpy(dtype="datetime64[ns]").astype("int64")
        after = max(self._seen_through.get(pair, self._since_ns - 1), self._since_ns - 1)
        first = int(np.searchsorted(dates, after, side="right"))
        if pair not in self._seen_through:  # a pair new to this store: warmed-up rows only
            first = max(first, min(self._required_startup(), len(dates)))
        for row, side in signal_rows(dataframe, block_illiquid=self.ms_config.block_illiquid,
                                     start=first):
            x = self._design(learner, pair, row, side)
            self._watching.append({"pair": pair, "signal_ns": int(dates[row]), "side": side,
                                   "x": x.tolist()})
            self._dirty = True
        if int(dates[-1]) != self._seen_through.get(pair):
            self._seen_through[pair] = int(dates[-1])
            self._dirty = True
        mine = [w for w in self._watching if w["pair"] == pair]
        if not mine:
            return
        rows: list[tuple[int, str]] = []
        keep: list[dict[str, Any]] = []
        for w in mine:
            i = int(np.searchsorted(dates, w["signal_ns"]))
            if i < len(dates) and dates[i] == w["signal_ns"]:
                rows.append((i, str(w["side"])))
                keep.append(w)
            else:
                logger.warning("[RL] %s signal at %s left the candle window before its virtual "
                               "trades closed: not learned", pair,
                               np.datetime64(int(w["signal_ns"]), "ns"))
        profiles = {p: self.ms_config.profiles[p] for p in self._profile_order()}
        sims = simulate_signals(dataframe, pair, rows, profiles, fee=self._fee_rate(pair),
                                unit=self.ms_config.reward_unit,
                                tick_size=infer_tick_sizes({pair: dataframe})[pair],
                                open_at_end=True)
        done: set[tuple[str, int, str]] = set()
        for sim, w in zip(sims, keep, strict=True):
            if sim.release_ns is not None:
                learner.add(sim.key, sim.release_ns, np.asarray(w["x"], dtype=np.float64),
                            sim.rewards)
                done.add(sim.key)
        if done or len(keep) != len(mine):
            kept = {(w["pair"], w["signal_ns"], w["side"]) for w in keep}
            self._watching = [w for w in self._watching if w["pair"] != pair or (
                (w["pair"], w["signal_ns"], w["side"]) in kept
                and (w["pair"], w["signal_ns"], w["side"]) not in done)]
            self._dirty = True

    def _save_live_learner(self, store: QStore) -> None:
        """Live, once per loop: the learner and the tracker, compare-and-swap on the
        generation (a store reset or replaced by another process is reloaded, never
        overwritten; one that cannot be reloaded blocks every later save)."""
        if self.learner is None or self._save_blocked:
            return
        with self._lock:
            if not self._dirty:
                return
            doc = {"learner": self.learner.to_dict(),
                   "tracker": {"watching": list(self._watching),
                               "seen_through": dict(self._seen_through),
                               "counts": {k: list(v) for k, v in self.decision_counts.items()}}}
            self._dirty = False
        try:
            self._generation = store.save_learner_state(doc, generation=self._generation)
        except StaleLearnerStateError as exc:
            logger.warning("[RL] %s: reloading the full-information learner", exc)
            try:
                self._load_live_learner(store)
            except StoreError as reload_error:  # e.g. busy: the stale generation blocks
                logger.warning("[RL] reload failed (%s): retrying next loop", reload_error)
                self._dirty = True
            except MetaStrategyError as reload_error:
                self._save_blocked = True
                logger.error("[RL] the stored full-information learner cannot be used "
                             "(%s): this bot keeps deciding from its own and never writes it "
                             "back; fix the config or the store and restart", reload_error)
        except StoreError as exc:
            self._dirty = True  # try again next loop
            logger.warning("[RL] full-information learner not saved this loop: %s", exc)

    # ------------------------------------------------------------------------------------------
    # decisions
    # ------------------------------------------------------------------------------------------
    def _decide(self, pair: str, signal_ns: int, side: str, regime: str, *,
                counted: bool = True) -> FullInfoDecision | None:
        """The full-information decision for ``pair``'s signal candle (kept for the entry fill;
        None without a full-information policy or without the candle's data). Live, a forced
        entry decides on the REST API's thread: the learner is locked."""
        with self._lock:
            return self._decide_locked(pair, signal_ns, side, regime, counted)

    def _decide_locked(self, pair: str, signal_ns: int, side: str, regime: str,
                       counted: bool) -> FullInfoDecision | None:
        learner = self.learner
        if learner is None or pair not in self._signal_arrays:
            return None
        key = (pair, signal_ns, side)
        got = self._fi_decisions.get(key)
        if got is not None:
            return got
        dates = self._signal_arrays[pair][0]
        row = int(np.searchsorted(dates, signal_ns // 1_000_000_000))
        if row >= len(dates) or int(dates[row]) * 1_000_000_000 != signal_ns:
            return None
        if learner.advance(signal_ns):
            self._dirty = True
        decision = learner.decide(self._design(learner, pair, row, side))
        self._dirty = True
        self._fi_decisions[key] = decision
        if not counted:  # a forced entry: the user decided, not the policy
            return decision
        counts = self.decision_counts.setdefault(regime, [0, 0])
        counts[0] += 1
        counts[1] += int(decision.stand_aside)
        if self._runmode in (RunMode.BACKTEST,):
            self.decision_log.append({
                "pair": pair, "signal_ns": signal_ns, "side": side, "regime": regime,
                "profile": decision.profile, "chosen": decision.chosen,
                "released": decision.released, "reason": decision.reason,
            })
        return decision

    def _is_signal(self, pair: str, signal_ns: int, side: str, entry_tag: str | None) -> bool:
        """Whether the entry is the strategy's signal: ``pair``'s candle at ``signal_ns``
        carries an entry signal for ``side`` under ``entry_tag`` (else the entry was forced:
        the REST API, Telegram, FreqUI tag theirs, ``force_entry`` by default)."""
        got = self._enter_flags.get(pair)
        if got is None:
            return False
        dates, long_, short, tags = got
        key = signal_ns // 1_000_000_000
        row = int(np.searchsorted(dates, key))
        if row >= len(dates) or int(dates[row]) != key:
            return False
        flagged = (bool(short[row] and not long_[row]) if side == "short"
                   else bool(long_[row] and not short[row]))
        return flagged and _same_tag(tags[row], entry_tag)

    def decisions_summary(self) -> Mapping[str, Any]:
        """Decisions and stand-asides per regime (for logs and the backtest export)."""
        return {r: {"decisions": c[0], "stand_aside": c[1]}
                for r, c in sorted(self.decision_counts.items())}


def _same_tag(candle: object, entry: str | None) -> bool:
    """The candle's ``enter_tag`` and the entry's are the same (no tag: None, NaN or "")."""
    def norm(tag: object) -> str:
        return "" if tag is None or (isinstance(tag, float) and tag != tag) else str(tag)

    return norm(candle) == norm(entry)


__all__ = ["MetaLearningMixin"]
