"""Virtual trades: every entry signal of a pair, simulated under every profile, for the
full-information learner (pure core: candles in, outcomes out; no Freqtrade).

:func:`signal_rows` finds the entry signals of an analysed frame exactly as ``evaluate`` takes
them (:mod:`freqtrade_metastrategy.entries`: ``enter_long`` / ``enter_short`` set, not both,
illiquid signal candles dropped with ``block_illiquid``); :func:`simulate_signals` gives each
one's reward under every profile with the simulator's exact exit rules
(:func:`~freqtrade_metastrategy.evaluation.simulator.simulate`) and the time its last virtual
trade closed, its ``release_ns``:

* ``open_at_end=False`` (backtests, hyperopt): a virtual trade still open at the frame's last
  candle is force-exited there, as Freqtrade ends a backtest and as ``evaluate`` simulates it,
  so a backtest and ``evaluate``'s replay learn the same outcomes;
* ``open_at_end=True`` (live, dry-run): such a signal is not complete yet (``release_ns`` is
  None): it is simulated again on the next candles until every profile has closed.

The reward is in the learner's unit (``r_atr``, ``r_risk`` or ``ret_pct``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd

from freqtrade_metastrategy.evaluation.simulator import Entry, simulate
from freqtrade_metastrategy.profiles import StrategyProfile

FloatArray = npt.NDArray[np.float64]

__all__ = ["VirtualSignal", "context_rows", "flags", "signal_rows", "simulate_signals"]


@dataclass(frozen=True)
class VirtualSignal:
    """One signal's virtual trades: ``rewards`` per profile (NaN while open) and
    ``release_ns`` (None while any profile is open)."""

    pair: str
    signal_ns: int
    side: str
    row: int
    release_ns: int | None
    rewards: FloatArray

    @property
    def key(self) -> tuple[str, int, str]:
        return (self.pair, self.signal_ns, self.side)


def _flag(frame: pd.DataFrame, col: str) -> npt.NDArray[np.bool_]:
    if col not in frame.columns:
        return np.zeros(len(frame), dtype=bool)
    return np.asarray(pd.to_numeric(frame[col], errors="coerce").fillna(0).to_numpy() == 1)


def flags(frame: pd.DataFrame) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.bool_]]:
    """The ``enter_long`` and ``enter_short`` flags of every row (absent: none)."""
    return _flag(frame, "enter_long"), _flag(frame, "enter_short")


def signal_rows(frame: pd.DataFrame, *, block_illiquid: bool, start: int = 0
                ) -> list[tuple[int, str]]:
    """``(row, side)`` of every entry signal at or after row ``start``, in row order."""
    long_, short = flags(frame)
    keep = np.ones(len(frame), dtype=bool)
    keep[:start] = False
    if block_illiquid and "regime" in frame.columns:
        keep &= frame["regime"].astype(str).to_numpy() != "illiquid"
    out = [(int(i), "long") for i in np.flatnonzero(long_ & ~short & keep)]
    out += [(int(i), "short") for i in np.flatnonzero(short & ~long_ & keep)]
    out.sort()
    return out


def simulate_signals(
    frame: pd.DataFrame,
    pair: str,
    rows: Sequence[tuple[int, str]],
    profiles: Mapping[str, StrategyProfile],
    *,
    fee: float,
    unit: str,
    tick_size: float | None,
    open_at_end: bool,
) -> list[VirtualSignal]:
    """The virtual trades of the signals ``rows`` of ``frame`` (see module doc); rewards in
    the order of ``profiles``."""
    if not rows:
        return []
    candles = frame[["date", "open", "high", "low", "close", "volume"]].reset_index(drop=True)
    dates = pd.DatetimeIndex(pd.to_datetime(candles["date"], utc=True))
    atr = (frame["atr"].to_numpy(dtype=np.float64) if "atr" in frame.columns
           else np.full(len(frame), np.nan))
    entries = [Entry(pair, dates[i], side, float(atr[i])) for i, side in rows]
    out_df = simulate({pair: candles}, entries, dict(profiles), fee=fee,
                      tick_size=None if tick_size is None else {pair: tick_size},
                      keep_unfilled=True)
    k = len(profiles)
    reward = out_df[unit].to_numpy(dtype=np.float64).reshape(len(rows), k)
    reason = out_df["exit_reason"].astype(str).to_numpy(dtype=object).reshape(len(rows), k)
    exit_ns = np.asarray(pd.DatetimeIndex(out_df["exit_time"]).as_unit("ns").asi8,
                         dtype=np.int64).reshape(len(rows), k)
    last_ns = int(dates[-1].value)
    result: list[VirtualSignal] = []
    for n, (i, side) in enumerate(rows):
        sig_ns = int(dates[i].value)
        unfilled = bool((reason[n] == "no_entry").any())
        still_open = bool(((reason[n] == "force_exit") & (exit_ns[n] == last_ns)).any())
        if unfilled or (open_at_end and still_open):
            if open_at_end:
                result.append(VirtualSignal(pair, sig_ns, side, i, None, np.full(k, np.nan)))
            continue  # backtest: Freqtrade never enters on the last candle: no outcome
        result.append(VirtualSignal(pair, sig_ns, side, i, int(exit_ns[n].max()),
                                    reward[n].copy()))
    return result


def context_rows(frame: pd.DataFrame, names: Sequence[str], rows: Sequence[int]) -> FloatArray:
    """The context features ``names`` of ``rows`` (an ``(len(rows), len(names))`` array)."""
    if not names:
        return np.zeros((len(rows), 0))
    out: FloatArray = frame[list(names)].to_numpy(dtype=np.float64)[list(rows)]
    return out
