"""Entries and candles of a Freqtrade strategy, for the offline evaluation (adapter layer).

:func:`load_entries` does what a backtest does up to the trade loop, without an exchange:

1. the configuration, from the same files as ``freqtrade backtesting -c a.json -c b.json``
   (``Configuration``, run mode backtest), plus ``--strategy``, ``--strategy-path`` and
   ``--datadir`` overrides (a ``datadir`` key in the config files is honoured too, which
   Freqtrade itself ignores);
2. the strategy (``StrategyResolver.load_strategy``);
3. each whitelisted pair's candles from the datadir (``load_pair_history``, missing candles
   filled as backtesting fills them) over the timerange, extended back by the strategy's
   ``startup_candle_count``;
4. ``advise_all_indicators`` then ``ft_advise_signals`` per pair, as backtesting does.

Entries: **every** candle of the timerange with ``enter_long == 1`` (or ``enter_short == 1``
when the strategy can short), in time order -- *all* signals, not only those a backtest with
``max_open_trades`` and one open trade per pair would take (the counterfactual simulator
evaluates every signal). ``r_unit`` is the signal candle's ``atr``, ``regime`` its regime.
Signals on ``illiquid`` candles are dropped when the config's ``metastrategy.block_illiquid``
is true (the strategy refuses those entries in ``confirm_trade_entry``). A candle with both
``enter_long`` and ``enter_short`` gives no entry (Freqtrade ignores such conflicting signals).

Candles: per pair, the rows from the start of the timerange (the startup candles are dropped)
to its end -- the simulator force-exits trades still open at the last candle, as a backtest
over the same timerange does.

No exchange is created and nothing touches the network: the strategy gets a data provider
without an exchange (``DataProvider(config, None)``, as backtesting's, reading the datadir),
through which it reads the market leader's candles for its context features. Freqtrade's own
modules are imported lazily, so importing this module is cheap.

Context: each entry's signal-candle ``ctx_*`` columns (:mod:`freqtrade_metastrategy.context`)
are kept in :attr:`EntrySet.context`; :meth:`EntrySet.simulated_outcomes` adds them to the
simulator's outcome table, where the contextual policies read them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from freqtrade_metastrategy.config import MetaStrategyConfig
from freqtrade_metastrategy.errors import MetaStrategyError
from freqtrade_metastrategy.evaluation.simulator import Entry
from freqtrade_metastrategy.profiles import ProfileRegistry
from freqtrade_metastrategy.regime import CLASSIFY_INPUTS
from freqtrade_metastrategy.timerange import parse_timerange

__all__ = ["DEFAULT_FEE", "EntrySet", "entries_from_frame", "load_config", "load_entries"]

logger = logging.getLogger(__name__)

#: Fee ratio per fill when the config has no ``fee``.
DEFAULT_FEE = 0.001


@dataclass
class EntrySet:
    """What :func:`load_entries` returns (see module doc)."""

    candles: dict[str, pd.DataFrame]
    entries: list[Entry]
    fee: float
    profiles: ProfileRegistry
    ms_config: MetaStrategyConfig
    timerange: tuple[pd.Timestamp, pd.Timestamp]
    strategy: str
    timeframe: str
    dropped_illiquid: int = 0
    signals: dict[str, int] = field(default_factory=dict)
    #: context features of each entry's signal candle (rows aligned with ``entries``)
    context: pd.DataFrame = field(default_factory=pd.DataFrame)
    #: the raw regime features of each entry's signal candle (``regime.CLASSIFY_INPUTS``, rows
    #: aligned with ``entries``): what ``tune`` reclassifies under other thresholds
    regime_features: pd.DataFrame = field(default_factory=pd.DataFrame)

    def simulated_outcomes(self) -> pd.DataFrame:
        """Every entry under every profile (the simulator, at the fee and the candles' tick
        sizes; ``entry_id`` = position in :attr:`entries`), with the entries' context columns
        added."""
        from freqtrade_metastrategy.evaluation.simulator import infer_tick_sizes, simulate

        outcomes = simulate(self.candles, self.entries, dict(self.profiles), fee=self.fee,
                            tick_size=infer_tick_sizes(self.candles))
        if self.context.empty:
            return outcomes
        ids = outcomes["entry_id"].to_numpy(dtype=np.int64)
        out = outcomes.copy()
        for col in self.context.columns:
            out[col] = self.context[col].to_numpy(dtype=np.float64)[ids]
        return out


def load_config(
    files: Sequence[str | Path],
    *,
    strategy: str | None = None,
    strategy_path: str | Path | None = None,
    datadir: str | Path | None = None,
) -> dict[str, Any]:
    """The merged Freqtrade configuration of ``files`` with the command-line overrides."""
    from freqtrade.configuration import Configuration
    from freqtrade.enums import RunMode

    if not files:
        raise MetaStrategyError("no config file given (-c CONFIG)")
    for f in files:
        if not Path(f).is_file():
            raise MetaStrategyError(f"config file {f} does not exist")
    args: dict[str, Any] = {"config": [str(f) for f in files]}
    if strategy:
        args["strategy"] = strategy
    if strategy_path:
        args["strategy_path"] = str(strategy_path)
    if not datadir:
        # Freqtrade takes the datadir from the command line only (a config's "datadir" key is
        # replaced by <user_data_dir>/data/<exchange>); honour the key here.
        from freqtrade.configuration.load_config import load_from_files

        datadir = load_from_files([str(f) for f in files]).get("datadir")
    if datadir:
        args["datadir"] = str(datadir)
    # The full configuration pipeline (user_data_dir, datadir with the exchange name, ...) as
    # backtesting sees it; RunMode.BACKTEST so no live-only check runs.
    config: dict[str, Any] = Configuration(args, RunMode.BACKTEST).get_config()
    if strategy:
        config["strategy"] = strategy
    return config


def entries_from_frame(
    frame: pd.DataFrame, pair: str, start: pd.Timestamp, end: pd.Timestamp, *,
    block_illiquid: bool,
) -> tuple[list[Entry], int]:
    """(entries, illiquid signals dropped) of an analysed frame, signals in ``[start, end)``."""
    entries, dropped, _ = _entries_and_rows(frame, pair, start, end, block_illiquid=block_illiquid)
    return entries, dropped


def _entries_and_rows(
    frame: pd.DataFrame, pair: str, start: pd.Timestamp, end: pd.Timestamp, *,
    block_illiquid: bool,
) -> tuple[list[Entry], int, list[int]]:
    """:func:`entries_from_frame` plus each entry's row in ``frame``."""
    dates = pd.DatetimeIndex(pd.to_datetime(frame["date"], utc=True))
    in_range = np.asarray((dates >= start) & (dates < end))

    def flag(col: str) -> np.ndarray[Any, np.dtype[np.bool_]]:
        if col not in frame.columns:
            return np.zeros(len(frame), dtype=bool)
        return np.asarray(pd.to_numeric(frame[col], errors="coerce").fillna(0).to_numpy() == 1)

    long_, short = flag("enter_long"), flag("enter_short")
    regime = frame["regime"].astype(str).to_numpy() if "regime" in frame else None
    atr = (frame["atr"].to_numpy(dtype=np.float64) if "atr" in frame
           else np.full(len(frame), np.nan))
    out: list[Entry] = []
    rows: list[int] = []
    dropped = 0
    for side, mask in (("long", long_ & ~short), ("short", short & ~long_)):
        for i in np.flatnonzero(mask & in_range):
            reg = "unknown" if regime is None else str(regime[i])
            if block_illiquid and reg == "illiquid":
                dropped += 1
                continue
            out.append(Entry(pair, dates[int(i)], side, float(atr[i]), reg))
            rows.append(int(i))
    return out, dropped, rows


def load_entries(
    config: dict[str, Any],
    timerange: str,
    *,
    progress: Callable[[str], None] | None = None,
    keep_illiquid: bool = False,
) -> EntrySet:
    """Candles and entries of the config's strategy over ``timerange`` (see module doc).

    ``timerange``: ``START-END``, both ends, as
    :func:`~freqtrade_metastrategy.timerange.parse_timerange` reads it (a bad one raises
    :class:`~freqtrade_metastrategy.timerange.TimerangeError` before anything is loaded).
    ``progress(pair)`` is called after each pair is analysed. ``keep_illiquid``: keep the
    signals on ``illiquid`` candles even when the config blocks them (``tune`` drops them per
    trial, under the trial's volume threshold).
    """
    from freqtrade.configuration import TimeRange
    from freqtrade.data.history import load_pair_history
    from freqtrade.resolvers import StrategyResolver

    start, end = parse_timerange(timerange)
    strat = StrategyResolver.load_strategy(config)
    strat.ft_bot_start()
    ms_config = MetaStrategyConfig.from_freqtrade_config(config)
    timeframe = str(config.get("timeframe") or strat.timeframe)
    startup = int(getattr(strat, "startup_candle_count", 0) or 0)
    tr = TimeRange("date", "date", int(start.timestamp()), int(end.timestamp()))
    # Extend the range back by the startup candles, as backtesting does.
    from freqtrade.exchange import timeframe_to_seconds

    tr.subtract_start(timeframe_to_seconds(timeframe) * startup)
    pairs = list(config.get("exchange", {}).get("pair_whitelist") or [])
    if not pairs:
        raise MetaStrategyError("the config's exchange.pair_whitelist is empty")
    datadir = Path(config["datadir"])
    # the leader's candles for the context features, as Freqtrade's backtest provides them
    from freqtrade.data.dataprovider import DataProvider
    from freqtrade.enums import CandleType

    strat.dp = DataProvider({
        **config, "timerange": timerange,
        "dataformat_ohlcv": config.get("dataformat_ohlcv", "feather"),
        "candle_type_def": CandleType.from_string(config.get("candle_type_def", "spot")),
    }, None)
    candles: dict[str, pd.DataFrame] = {}
    entries: list[Entry] = []
    contexts: list[pd.DataFrame] = []
    raw: list[pd.DataFrame] = []
    dropped = 0
    signals: dict[str, int] = {}
    for pair in pairs:
        df = load_pair_history(
            pair=pair, timeframe=timeframe, datadir=datadir, timerange=tr,
            fill_up_missing=True, data_format=config.get("dataformat_ohlcv", "feather"),
            candle_type=config.get("candle_type_def", "spot"),
        )
        if df.empty:
            logger.warning("no %s candles for %s in %s", timeframe, pair, datadir)
            continue
        analysed = strat.ft_advise_signals(
            strat.advise_all_indicators({pair: df})[pair], {"pair": pair}
        )
        got, d, rows = _entries_and_rows(
            analysed, pair, start, end,
            block_illiquid=ms_config.block_illiquid and not keep_illiquid)
        entries.extend(got)
        ctx_cols = [c for c in analysed.columns if str(c).startswith("ctx_")]
        contexts.append(analysed[ctx_cols].iloc[rows].reset_index(drop=True))
        raw.append(analysed[[c for c in CLASSIFY_INPUTS if c in analysed.columns]
                            ].iloc[rows].reset_index(drop=True))
        dropped += d
        signals[pair] = len(got) + d
        keep = (analysed["date"] >= start) & (analysed["date"] < end)
        candles[pair] = analysed.loc[keep, ["date", "open", "high", "low", "close", "volume"]
                                     ].reset_index(drop=True)
        if progress is not None:
            progress(pair)
    if not candles:
        raise MetaStrategyError(f"no candles in {datadir} for {', '.join(pairs)} ({timerange})")
    context = pd.concat(contexts, ignore_index=True) if contexts else pd.DataFrame()
    order = sorted(range(len(entries)),
                   key=lambda i: (entries[i].signal_time, entries[i].pair, entries[i].side))
    entries = [entries[i] for i in order]
    context = context.iloc[order].reset_index(drop=True) if len(context) else context
    regime_features = pd.concat(raw, ignore_index=True) if raw else pd.DataFrame()
    if len(regime_features):
        regime_features = regime_features.iloc[order].reset_index(drop=True)
    fee = config.get("fee")
    return EntrySet(
        candles=candles, entries=entries,
        fee=DEFAULT_FEE if fee is None else float(fee),
        profiles=ms_config.profiles, ms_config=ms_config, timerange=(start, end),
        strategy=str(config.get("strategy")), timeframe=timeframe,
        dropped_illiquid=dropped, signals=signals, context=context,
        regime_features=regime_features,
    )
