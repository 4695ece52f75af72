"""Counterfactual exit simulator: the outcome of every profile for every entry.

For each entry (a pair, a signal candle, a side, 1R = the ATR of the signal candle) and each
TP/SL profile, :func:`simulate` gives the trade Freqtrade would have produced had
:class:`~freqtrade_metastrategy.strategy.MetaStrategyBase` chosen that profile: realized R, exit
time, exit reason. It re-implements, vectorised, exactly the path a Freqtrade 2026.9 backtest
takes through the strategy's callbacks (``optimize/backtesting.py``, ``strategy/interface.py``,
``persistence/trade_model.py``); ``tests/test_simulator.py`` checks it against the hand-built
paths whose Freqtrade fills are pinned in ``tests/test_exits_e2e.py``, and
``tests/test_simulator_agreement.py`` against real backtests, trade by trade.

>>> import pandas as pd
>>> from freqtrade_metastrategy.profiles import get_strategy_profile
>>> dates = pd.date_range("2024-01-01", periods=4, freq="1h", tz="UTC")
>>> candles = {"X/USDT": pd.DataFrame({"date": dates,
...     "open": [100.0, 100.0, 100.5, 101.0], "high": [100.5, 100.8, 105.0, 101.5],
...     "low": [99.5, 99.9, 100.2, 99.0], "close": [100.0, 100.6, 104.0, 100.0],
...     "volume": 1.0})}
>>> entry = Entry("X/USDT", dates[0], "long", r_unit=1.0, regime="trend_up")
>>> out = simulate(candles, [entry], {"scalp": get_strategy_profile("scalp")}, fee=0.0)
>>> row = out.iloc[0]
>>> str(row.entry_time), str(row.exit_time), row.exit_reason, int(row.n_fills)
('2024-01-01 01:00:00+00:00', '2024-01-01 02:00:00+00:00', 'roi', 1)
>>> float(row.r_atr)      # one candle from below TP1 through TP3: all at TP3 (2.5R)
2.5

Semantics (per entry and profile)
---------------------------------
The entry fills at the open of the candle after ``signal_time`` (``entry_time``). Freqtrade
never enters on the last candle of the data: such entries (and signals on the last candle)
have no outcome (left out, or ``exit_reason`` ``"no_entry"`` with ``keep_unfilled``). 1R is
the entry's ``r_unit``, or 1% of the entry price when it is not a positive finite number (what
the strategy does for a signal candle without ATR). Then, for each candle k = 0, 1, ... from
the entry candle, in this order:

1. **Partial TPs at the open** (``adjust_trade_position``; not at k = 0, whose open is the entry):
   if a fill at the open gains after the entry and exit fees (``TradePlan.pays``) and the
   best price so far - the previous candles'
   highs (lows for shorts) and this open - has reached TP1 / TP2, the due fractions of the
   entry amount close at the open, in one fill tagged ``tp1``, ``tp2`` or ``tp1+tp2``. After
   the fill Freqtrade calls ``custom_stoploss(after_fill=True)`` with the fill price: the stop of
   the new stage (breakeven, trailing behind the best price of the *previous* candles) replaces
   the current one, also downwards, unless the current stop is at/above the fill price or the
   new stop is at/above it (then it is ignored). Then ``recalc_trade_from_orders`` re-derives
   the stop from the entry price and the last stop ratio (only upwards; in practice a no-op).
2. **Stop** (``should_exit`` -> ``ft_stoploss_reached``): the best price takes this candle's
   high (low); if the current stop is below the candle's low (above its high), the profile's
   stop for the stage and best price is re-evaluated with the candle's high as the rate and
   replaces the stop only if higher (a stop at/above the high is ignored). The stop is hit
   if it is at/above the low; it fills at the stop, or at the open when the whole candle is
   beyond it (``_get_close_rate_for_stoploss`` compares it with the *high*: a candle opening
   beyond the stop and wicking back fills at the stop).
3. **TP3** (``custom_roi``): reached when the profit ratio at the candle's high (low) exceeds the
   ratio at the TP3 price (both rounded to 8 decimals, as Freqtrade does); fills at the price
   that gives that ratio, or at the open when the candle (k > 0) opens beyond it.
4. **Order**: a stop Freqtrade calls ``stop_loss`` (stop never raised by an ``should_exit``
   call) wins over TP3; a ``trailing_stop_loss`` (the stop was raised at some candle by the
   trailing or a late breakeven) comes *after* TP3 in ``should_exit``'s list, so a candle that
   reaches TP3 and the trailing stop exits at TP3.
5. **End of the data**: a trade still open after the last candle of its pair is force-exited at
   that candle's **open** (``Backtesting.handle_left_open`` uses ``exit_row[OPEN_IDX]``),
   ``exit_time`` = that candle's date.

Fees: ``fee`` on the entry and on every exit fill. ``r_atr`` = net profit / (amount x 1R),
``r_risk`` = ``r_atr`` / ``r_sl``, ``ret_pct`` = net profit / (amount x entry price) x 100, signed
per side (short: profit = entry value x (1 - fee) - exit values x (1 + fee)).

``exit_reason`` is the reason of the closing fill: ``stop_loss`` (Freqtrade's
``trailing_stop_loss`` is reported as ``stop_loss``: for this strategy the name only says
whether the stop was last moved by a candle or by a fill; the fills returned by
:func:`simulate_with_fills` keep Freqtrade's exact tag), ``roi`` (TP3), ``force_exit``, or
``no_entry``.

Prices (``tick_size``)
----------------------
With ``tick_size[pair]`` the simulator rounds as a Freqtrade market with that tick does:
stops are nudged 1e-10 away from the price (``trade_math.STOP_NUDGE``) and rounded toward the
price (up for longs, down for shorts; ``price_to_precision`` ROUND_UP/ROUND_DOWN), the TP3 fill
to the nearest tick, and the TP3 trigger and fill go through the 8-decimal profit ratio. Candle
prices are assumed to be on the tick grid (exchange data is). Without a tick the levels are
exact: stops at the plan's price, TP3 reached when the high is strictly above the TP3 price and
filled at it.

Differences from Freqtrade that remain
--------------------------------------
* Amounts are fractions of the entry: Freqtrade truncates every partial to the market's lot
  step (the last fill takes the rest), which moves R by about (lot step / amount) x (distance
  between the partial's and the final fill's prices) / 1R, typically < 1e-3 R.
* A partial TP whose remainder would be worth less than the exchange's minimum stake is
  skipped by Freqtrade; not modelled (stake-dependent; irrelevant for normal stakes).
* Futures: no funding fees and no liquidation (R is leverage-independent; at 1x isolated the
  liquidation price is never reached before the stop).
* Only signals are given, so the rule "one open trade per pair" and ``max_open_trades`` are
  not applied: every entry is simulated (that is the point of a counterfactual).

Speed: all (entry, profile) simulations advance together one candle offset at a time on
numpy arrays (a Python loop over candle offsets, not over trades); finished ones are dropped in
batches. 10,000 entries x 7 profiles take ~0.16 s on 2 vCPUs, 100,000 x 7 ~1.1 s
(``bench/bench_simulator.py``); the run time grows with the longest trade, which keeps the
loop going with a few simulations.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from freqtrade_metastrategy.exitplan import net_breakeven
from freqtrade_metastrategy.profiles import StrategyProfile
from freqtrade_metastrategy.trade_math import STOP_NUDGE, reward_units

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

#: Decimals Freqtrade rounds profit ratios to (``LocalTrade.calc_profit_ratio``).
RATIO_DECIMALS = 8
#: A price within this many ticks (relative to the price in ticks) of a multiple of the tick is
#: on the grid: float noise, not an offset (Freqtrade checks the decimal repr of the float).
_ON_TICK_RTOL = 1e-12
#: Stage value meaning "never" (a rule disabled with 0).
_NEVER = 99

#: Values of the ``exit_reason`` column.
EXIT_REASONS = ("stop_loss", "roi", "force_exit", "no_entry")
_STOP, _ROI, _FORCE, _NO_ENTRY = range(4)
#: Fill tags, as Freqtrade tags the orders (``ft_order_tag``).
FILL_TAGS = ("tp1", "tp2", "tp1+tp2", "stop_loss", "trailing_stop_loss", "roi", "force_exit")
_TAG_STOP, _TAG_TRAIL, _TAG_ROI, _TAG_FORCE = 3, 4, 5, 6
#: Partial tag code for (stage before, stage after).
_PARTIAL_TAG = np.array([[-1, 0, 2], [-1, -1, 1], [-1, -1, -1]], dtype=np.int8)

ENTRY_COLUMNS = ("pair", "signal_time", "side", "r_unit", "regime")


@dataclass(frozen=True)
class Entry:
    """One entry signal: the trade enters at the open of the candle after ``signal_time``.

    ``r_unit`` (1R) is the ATR of the signal candle, in price units.
    """

    pair: str
    signal_time: pd.Timestamp
    side: str  # "long" or "short"
    r_unit: float
    regime: str = "unknown"


# ----------------------------------------------------------------------------------------------
# inputs
# ----------------------------------------------------------------------------------------------
def _utc_ns(values: Any) -> IntArray:
    """Timestamps (naive = UTC) as int64 nanoseconds since the epoch."""
    index = pd.DatetimeIndex(pd.to_datetime(values, utc=True)).as_unit("ns")
    return np.asarray(index.asi8, dtype=np.int64)


@dataclass(frozen=True)
class _EntryArrays:
    pair: list[str]
    signal_ns: IntArray
    sign: FloatArray
    r_unit: FloatArray
    regime: list[str]


def _entry_arrays(entries: Sequence[Entry] | pd.DataFrame) -> _EntryArrays:
    if isinstance(entries, pd.DataFrame):
        missing = [c for c in ENTRY_COLUMNS[:4] if c not in entries.columns]
        if missing:
            raise ValueError(f"entries: missing column(s) {missing}; need {list(ENTRY_COLUMNS)}")
        pairs = [str(p) for p in entries["pair"].tolist()]
        times: Any = entries["signal_time"]
        sides = [str(s) for s in entries["side"].tolist()]
        r_units = entries["r_unit"].to_numpy(dtype=np.float64, na_value=np.nan)
        regimes = ([str(r) for r in entries["regime"].tolist()] if "regime" in entries.columns
                   else ["unknown"] * len(entries))
    else:
        items = list(entries)
        pairs = [e.pair for e in items]
        times = [e.signal_time for e in items]
        sides = [e.side for e in items]
        r_units = np.array([e.r_unit for e in items], dtype=np.float64)
        regimes = [e.regime for e in items]
    bad = sorted({s for s in sides if s not in ("long", "short")})
    if bad:
        raise ValueError(f"entries: side must be 'long' or 'short', got {bad}")
    sign = np.where(np.array(sides, dtype=object) == "short", -1.0, 1.0).astype(np.float64)
    signal_ns = _utc_ns(times) if len(pairs) else np.zeros(0, dtype=np.int64)
    return _EntryArrays(pairs, signal_ns, sign, r_units, regimes)


@dataclass(frozen=True)
class _Market:
    """The candles of every pair concatenated (one row per candle)."""

    dates: IntArray
    open: FloatArray
    high: FloatArray
    low: FloatArray
    start: dict[str, int]
    length: dict[str, int]


def _market(candles: Mapping[str, pd.DataFrame], pairs: Iterable[str]) -> _Market:
    parts: list[tuple[IntArray, FloatArray, FloatArray, FloatArray]] = []
    start: dict[str, int] = {}
    length: dict[str, int] = {}
    offset = 0
    for pair in pairs:
        if pair not in candles:
            raise ValueError(f"entries use pair {pair!r}, which has no candles")
        df = candles[pair]
        if "date" not in df.columns:
            raise ValueError(f"candles[{pair!r}]: need a 'date' column (Freqtrade's OHLCV frame)")
        dates = _utc_ns(df["date"])
        cols = [df[c].to_numpy(dtype=np.float64) for c in ("open", "high", "low")]
        if len(dates) > 1:
            step = np.diff(dates)
            if step[0] <= 0 or np.any(step != step[0]):
                bad = int(np.flatnonzero(step != step[0])[0]) if step[0] > 0 else 0
                raise ValueError(
                    f"candles[{pair!r}]: dates must be increasing on a regular grid, as "
                    f"Freqtrade fills missing candles (ohlcv_fill_up_missing_data); first "
                    f"irregular step after {pd.Timestamp(int(dates[bad]), tz='UTC')}"
                )
        if not all(np.isfinite(c).all() for c in cols):
            raise ValueError(f"candles[{pair!r}]: open/high/low must be finite")
        parts.append((dates, cols[0], cols[1], cols[2]))
        start[pair] = offset
        length[pair] = len(dates)
        offset += len(dates)

    def cat(i: int) -> Any:
        return np.concatenate([p[i] for p in parts]) if parts else np.zeros(0)

    return _Market(cat(0).astype(np.int64), cat(1), cat(2), cat(3), start, length)


# ----------------------------------------------------------------------------------------------
# price rounding (Freqtrade's price_to_precision in TICK_SIZE mode)
# ----------------------------------------------------------------------------------------------
def _to_ticks(x: FloatArray, tick: FloatArray) -> tuple[FloatArray, FloatArray, BoolArray]:
    """(x in ticks, nearest whole number of ticks, whether x is on the grid)."""
    with np.errstate(invalid="ignore"):
        q = x / tick
        k = np.rint(q)
        on = np.abs(q - k) <= _ON_TICK_RTOL * np.maximum(np.abs(q), 1.0)
    return q, k, on


def _from_ticks(k: FloatArray, tick: FloatArray, inv: FloatArray) -> FloatArray:
    """k ticks as the float nearest to the decimal k x tick (k / 10^d when tick = 10^-d)."""
    with np.errstate(invalid="ignore"):
        return np.where(np.isfinite(inv), k / inv, k * tick)


def _ceil_tick(x: FloatArray, tick: FloatArray, inv: FloatArray) -> FloatArray:
    """Round up to the tick grid (x unchanged where the tick is NaN)."""
    q, k, on = _to_ticks(x, tick)
    r = _from_ticks(np.where(on, k, np.ceil(q)), tick, inv)
    return np.where(np.isfinite(tick), r, x)


def _round_tick(x: FloatArray, tick: FloatArray, inv: FloatArray) -> FloatArray:
    """Round a positive price to the nearest tick, halves up (ccxt ROUND in TICK_SIZE mode)."""
    q, k, on = _to_ticks(x, tick)
    r = _from_ticks(np.where(on, k, np.floor(q + 0.5)), tick, inv)
    return np.where(np.isfinite(tick), r, x)


def _nudge(x: FloatArray, has_tick: BoolArray) -> FloatArray:
    """The strategy's STOP_NUDGE, in favourable coordinates: away from the price (only with a
    tick: without one the simulator keeps exact levels)."""
    return np.where(has_tick, x - STOP_NUDGE * np.abs(x), x)


def infer_tick_sizes(
    candles: Mapping[str, pd.DataFrame], max_decimals: int = 8
) -> dict[str, float]:
    """pair -> 10^-d, d the fewest decimals (<= ``max_decimals``) that write every open, high,
    low and close exactly: a stand-in for the exchange's tick when it is not known (exchange
    prices are on the tick grid, so the true tick is this or a multiple of it). The loopback
    exchange announces its tick the same way (from a pair's last 2,000 candles).

    >>> frame = pd.DataFrame({"open": [0.6123], "high": [0.62], "low": [0.6], "close": [0.61]})
    >>> infer_tick_sizes({"XRP/USDT": frame})
    {'XRP/USDT': 0.0001}
    """
    out: dict[str, float] = {}
    for pair, df in candles.items():
        values = df[["open", "high", "low", "close"]].to_numpy(dtype=np.float64).ravel()
        values = values[np.isfinite(values)]
        decimals = max_decimals
        for d in range(max_decimals):
            scaled = values * 10.0**d
            if np.allclose(scaled, np.round(scaled), rtol=1e-12, atol=1e-6):
                decimals = d
                break
        out[pair] = float(f"1e-{decimals}")
    return out


# ----------------------------------------------------------------------------------------------
# the simulations
# ----------------------------------------------------------------------------------------------
@dataclass
class _Sims:
    """Per-simulation constants, in *favourable coordinates*: every price is multiplied by the
    side's sign (+1 long, -1 short), so higher is better for both sides, a long's high and a
    short's low are both the candle's "best" price, and stops round up (toward the price)."""

    sid: IntArray  # 0..S-1 (the caller maps it to output rows)
    prof: IntArray
    g0: IntArray  # global index of the entry candle
    g_last: IntArray  # global index of the pair's last candle
    sgn: FloatArray
    entry: FloatArray  # actual price
    r_unit: FloatArray
    tick: FloatArray  # NaN: no rounding
    inv: FloatArray  # 1 / tick when that is a whole number, else NaN
    tp1: FloatArray
    tp2: FloatArray
    trail_dist: FloatArray  # trail_distance_r x 1R
    trail_stage: IntArray
    base_n: npt.NDArray[np.float64]  # (S, 3): stop per stage without trailing, nudged
    base_r: npt.NDArray[np.float64]  # (S, 3): the same rounded to the tick
    roi_thr: FloatArray  # TP3 reached when the best price of a candle is >= this
    roi_close: FloatArray  # TP3 fill before rounding (compared with the open)
    roi_fill: FloatArray  # TP3 fill price
    pays: FloatArray  # a partial TP fills only at an open above this (TradePlan.pays)


_ACTIVE_FIELDS = (
    "sid", "prof", "g0", "g_last", "sgn", "long", "entry_f", "pays", "tick", "inv", "has_tick",
    "tp1", "tp2", "trail_dist", "trail_stage", "roi_thr", "roi_close", "roi_fill", "stage", "bn",
    "br", "stop", "q", "trailing", "best", "rem", "acc", "nf", "alive",
)


class _Active:
    """State of the simulations still running (compacted as they finish)."""

    sid: IntArray
    prof: IntArray
    g0: IntArray
    g_last: IntArray
    sgn: FloatArray
    long: BoolArray
    entry_f: FloatArray
    pays: FloatArray
    tick: FloatArray
    inv: FloatArray
    has_tick: BoolArray
    tp1: FloatArray
    tp2: FloatArray
    trail_dist: FloatArray
    trail_stage: IntArray
    roi_thr: FloatArray
    roi_close: FloatArray
    roi_fill: FloatArray
    stage: IntArray  # take-profits filled (0, 1, 2)
    bn: FloatArray  # stop of the stage without the trailing term (nudged / rounded)
    br: FloatArray
    stop: FloatArray  # trade.stop_loss
    q: FloatArray  # stop / rate it was last set at (Freqtrade's stop_loss_pct, as 1 - pct)
    trailing: BoolArray  # trade.is_stop_loss_trailing
    best: FloatArray  # trade.max_rate (min_rate for shorts)
    rem: FloatArray  # fraction of the entry amount still open
    acc: FloatArray  # sum of fraction x price of the exit fills
    nf: IntArray
    alive: BoolArray

    def __init__(self, s: _Sims) -> None:
        n = len(s.sid)
        self.sid, self.prof, self.g0, self.g_last, self.sgn = s.sid, s.prof, s.g0, s.g_last, s.sgn
        self.long = s.sgn > 0
        self.entry_f = s.sgn * s.entry
        self.pays = s.pays
        self.tick, self.inv = s.tick, s.inv
        self.has_tick = np.isfinite(s.tick)
        self.tp1, self.tp2, self.trail_dist, self.trail_stage = (
            s.tp1, s.tp2, s.trail_dist, s.trail_stage)
        self.roi_thr, self.roi_close, self.roi_fill = s.roi_thr, s.roi_close, s.roi_fill
        self.stage = np.zeros(n, dtype=np.int64)
        self.bn = s.base_n[:, 0].copy()
        self.br = s.base_r[:, 0].copy()
        # The entry fill's after-fill custom_stoploss: the initial stop (below the entry).
        self.stop = self.br.copy()
        self.q = self.bn / self.entry_f
        self.trailing = np.zeros(n, dtype=np.bool_)
        self.best = self.entry_f.copy()
        self.rem = np.ones(n)
        self.acc = np.zeros(n)
        self.nf = np.zeros(n, dtype=np.int64)
        self.alive = np.ones(n, dtype=np.bool_)

    def __len__(self) -> int:
        return len(self.sid)

    def compact(self) -> None:
        keep = np.flatnonzero(self.alive)
        for name in _ACTIVE_FIELDS:
            setattr(self, name, getattr(self, name)[keep])


@dataclass
class _Results:
    reason: npt.NDArray[np.int8]
    k_exit: IntArray
    acc: FloatArray
    nf: IntArray
    stage: IntArray
    last_price: FloatArray
    fills: dict[str, npt.NDArray[Any]] | None


class _Recorder:
    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.parts: list[tuple[IntArray, int, FloatArray, FloatArray, npt.NDArray[np.int8]]] = []

    def add(self, sid: IntArray, k: int, frac: FloatArray, price: FloatArray,
            tag: npt.NDArray[np.int8]) -> None:
        if self.enabled and len(sid):
            self.parts.append((sid, k, frac.copy(), price.copy(), tag.astype(np.int8)))

    def collect(self) -> dict[str, npt.NDArray[Any]]:
        if not self.parts:
            return {"sid": np.zeros(0, np.int64), "k": np.zeros(0, np.int64),
                    "fraction": np.zeros(0), "price": np.zeros(0), "tag": np.zeros(0, np.int8)}
        sid = np.concatenate([p[0] for p in self.parts])
        k = np.concatenate([np.full(len(p[0]), p[1], dtype=np.int64) for p in self.parts])
        order = np.argsort(sid, kind="stable")  # recorded in time order within each sid
        return {
            "sid": sid[order], "k": k[order],
            "fraction": np.concatenate([p[2] for p in self.parts])[order],
            "price": np.concatenate([p[3] for p in self.parts])[order],
            "tag": np.concatenate([p[4] for p in self.parts])[order],
        }


def _stage_stop(a: _Active, idx: IntArray | None, bn: FloatArray, br: FloatArray,
                stage: IntArray, best: FloatArray) -> tuple[FloatArray, FloatArray]:
    """The profile's stop for ``stage`` and ``best``, nudged and rounded (``TradePlan.stop_price``
    + the strategy's nudge + Freqtrade's rounding), of the simulations ``idx`` (None: all)."""
    trail_stage = a.trail_stage if idx is None else a.trail_stage[idx]
    trail = stage >= trail_stage
    if not trail.any():
        return bn, br
    sel = np.flatnonzero(trail)
    at = sel if idx is None else idx[sel]
    tn = _nudge(best[sel] - a.trail_dist[at], a.has_tick[at])
    tr = _ceil_tick(tn, a.tick[at], a.inv[at])
    xn, xr = bn.copy(), br.copy()
    xn[sel] = np.maximum(bn[sel], tn)
    xr[sel] = np.maximum(br[sel], tr)
    return xn, xr


def _run(m: _Market, s: _Sims, ftab: npt.NDArray[np.float64], record: bool) -> _Results:
    n = len(s.sid)
    out = _Results(
        reason=np.full(n, -1, dtype=np.int8), k_exit=np.zeros(n, dtype=np.int64),
        acc=np.zeros(n), nf=np.zeros(n, dtype=np.int64), stage=np.zeros(n, dtype=np.int64),
        last_price=np.full(n, np.nan), fills=None,
    )
    rec = _Recorder(record)
    a = _Active(s)
    base_n, base_r = s.base_n, s.base_r
    k = 0
    n_dead = 0
    while len(a):
        g = np.minimum(a.g0 + k, a.g_last)
        ok = m.open[g]
        o = a.sgn * ok
        h = np.where(a.long, m.high[g], -m.low[g])
        lo = np.where(a.long, m.low[g], -m.high[g])

        # 1. adjust_trade_position at the open: partial TP1/TP2, then the after-fill stop
        if k > 0:
            cand = a.alive & (a.stage < 2) & (o > a.pays)
            if cand.any():
                ci = np.flatnonzero(cand)
                bb = np.maximum(a.best[ci], o[ci])
                st = a.stage[ci]
                ns = st + ((st == 0) & (bb >= a.tp1[ci]))
                ns = ns + ((ns == 1) & (bb >= a.tp2[ci]))
                due = ns > st
                if due.any():
                    fi, st, ns = ci[due], st[due], ns[due]
                    frac = ftab[a.prof[fi], st, ns]
                    price = ok[fi]
                    a.acc[fi] += frac * price
                    a.rem[fi] -= frac
                    a.nf[fi] += 1
                    a.stage[fi] = ns
                    rec.add(a.sid[fi], k, frac, price, _PARTIAL_TAG[st, ns])
                    p = a.sid[fi]
                    a.bn[fi] = bn = base_n[p, ns]
                    a.br[fi] = br = base_r[p, ns]
                    xn, xr = _stage_stop(a, fi, bn, br, ns, a.best[fi])
                    of = o[fi]
                    cur = a.stop[fi]
                    # ft_stoploss_adjust(after_fill=True): dir_correct, ratio > 0, refresh
                    apply = (cur < of) & (xn < of)
                    cur = np.where(apply, xr, cur)
                    q = np.where(apply, xn / of, a.q[fi])
                    # recalc_trade_from_orders -> adjust_stop_loss(open_rate, stop_loss_pct)
                    ef = a.entry_f[fi]
                    again = _ceil_tick(ef * q, a.tick[fi], a.inv[fi])
                    up = np.where(a.has_tick[fi], again > cur,
                                  again > cur + 1e-12 * np.abs(cur))
                    a.stop[fi] = np.where(up, again, cur)
                    a.trailing[fi] |= up
                    a.q[fi] = q

        # 2. should_exit: max/min rate, custom stop (only upwards), stop hit, ROI
        a.best = best = np.maximum(a.best, h)
        xn, xr = _stage_stop(a, None, a.bn, a.br, a.stage, best)
        up = (a.stop < lo) & (xn < h) & (xr > a.stop)
        if up.any():
            a.stop = np.where(up, xr, a.stop)
            a.trailing = a.trailing | up
            a.q = np.where(up, xn / h, a.q)
        hit = a.alive & (a.stop >= lo)
        roi = a.alive & (h >= a.roi_thr)
        first = hit & ~a.trailing  # STOP_LOSS comes before ROI, TRAILING_STOP_LOSS after it
        ex_roi = roi & ~first
        ex_stop = hit & ~ex_roi
        ex_force = a.alive & (g == a.g_last) & ~(ex_roi | ex_stop)
        done = ex_roi | ex_stop | ex_force
        if done.any():
            di = np.flatnonzero(done)
            od, hd, sd = o[di], h[di], a.stop[di]
            is_stop, is_roi = ex_stop[di], ex_roi[di]
            stop_px = np.where(sd > hd, od, sd)
            roi_px = np.where((k > 0) & (od > a.roi_close[di]), od, a.roi_fill[di])
            price = a.sgn[di] * np.where(is_stop, stop_px, np.where(is_roi, roi_px, od))
            tag = np.where(is_stop, np.where(a.trailing[di], _TAG_TRAIL, _TAG_STOP),
                           np.where(is_roi, _TAG_ROI, _TAG_FORCE)).astype(np.int8)
            frac = a.rem[di]
            rec.add(a.sid[di], k, frac, price, tag)
            p = a.sid[di]
            out.acc[p] = a.acc[di] + frac * price
            out.nf[p] = a.nf[di] + 1
            out.reason[p] = np.where(is_stop, _STOP, np.where(is_roi, _ROI, _FORCE))
            out.k_exit[p] = k
            out.stage[p] = a.stage[di]
            out.last_price[p] = price
            a.alive[di] = False
            n_dead += len(di)
            if 4 * n_dead > len(a):
                a.compact()
                n_dead = 0
        k += 1
    if record:
        out.fills = rec.collect()
    return out


# ----------------------------------------------------------------------------------------------
# set-up and output
# ----------------------------------------------------------------------------------------------
def _profile_arrays(profiles: Sequence[StrategyProfile]) -> dict[str, npt.NDArray[Any]]:
    def col(f: str) -> FloatArray:
        return np.array([float(getattr(p, f)) for p in profiles], dtype=np.float64)

    def stage(f: str) -> IntArray:
        return np.array([getattr(p, f) or _NEVER for p in profiles], dtype=np.int64)

    ftab = np.zeros((len(profiles), 3, 3))
    for j, p in enumerate(profiles):
        f1, f2, _ = p.partial_fractions
        ftab[j, 0, 1], ftab[j, 1, 2], ftab[j, 0, 2] = f1, f2, math.fsum((f1, f2))
    return {
        "r_sl": col("r_sl"), "r_tp1": col("r_tp1"), "r_tp2": col("r_tp2"),
        "r_tp3": col("r_tp3"), "be_off": col("breakeven_offset_r"),
        "trail": col("trail_distance_r"), "be_stage": stage("breakeven_after_tp"),
        "trail_stage": stage("trail_after_tp"), "ftab": ftab,
    }


def _build_sims(
    sid: IntArray, prof: IntArray, g0: IntArray, g_last: IntArray, sgn: FloatArray,
    entry: FloatArray, r_unit: FloatArray, tick: FloatArray, pa: Mapping[str, npt.NDArray[Any]],
    fee: float,
) -> _Sims:
    inv = np.full(len(tick), np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        raw_inv = 1.0 / tick
        whole = np.isfinite(raw_inv) & (np.abs(raw_inv - np.rint(raw_inv)) <= 1e-9 * raw_inv)
    inv[whole] = np.rint(raw_inv[whole])
    has_tick = np.isfinite(tick)

    def level(r: FloatArray) -> FloatArray:
        """TradePlan.price_at(r), then in favourable coordinates (negation is exact)."""
        return sgn * (entry + (sgn * r) * r_unit)

    init = level(-pa["r_sl"][prof])
    be = level(pa["be_off"][prof])
    be_stage = pa["be_stage"][prof]
    base = np.stack([np.where(be_stage <= s, np.maximum(init, be), init) for s in range(3)],
                    axis=1)
    base_n = _nudge(base, has_tick[:, None])
    base_r = _ceil_tick(base_n, tick[:, None], inv[:, None])
    tp3 = level(pa["r_tp3"][prof])
    # TP3 through the 8-decimal profit ratio (with a tick), as custom_roi + Freqtrade do
    open_value = entry * (1 + sgn * fee)
    close_factor = 1 - sgn * fee
    roi = np.round(sgn * ((sgn * tp3) * close_factor / open_value - 1), RATIO_DECIMALS)
    close = (1 + sgn * roi) * open_value / close_factor  # calc_close_rate_for_roi
    half = 0.5 * 10.0**-RATIO_DECIMALS
    thr = (1 + sgn * (roi + half)) * open_value / close_factor
    roi_thr = np.where(has_tick, sgn * thr, np.nextafter(tp3, np.inf))
    roi_close = np.where(has_tick, sgn * close, tp3)
    roi_fill = np.where(has_tick, sgn * _round_tick(close, tick, inv), tp3)
    return _Sims(
        sid=sid, prof=prof, g0=g0, g_last=g_last, sgn=sgn, entry=entry, r_unit=r_unit,
        tick=tick, inv=inv, tp1=level(pa["r_tp1"][prof]), tp2=level(pa["r_tp2"][prof]),
        trail_dist=pa["trail"][prof] * r_unit, trail_stage=pa["trail_stage"][prof],
        base_n=base_n, base_r=base_r, roi_thr=roi_thr, roi_close=roi_close, roi_fill=roi_fill,
        pays=sgn * net_breakeven(entry, sgn, fee, fee),
    )


def _categorical(values: Sequence[str], codes: IntArray) -> pd.Categorical[str]:
    return pd.Categorical.from_codes(codes, categories=pd.Index(list(values), dtype=object))


def _simulate(
    candles: Mapping[str, pd.DataFrame],
    entries: Sequence[Entry] | pd.DataFrame,
    profiles: Mapping[str, StrategyProfile],
    fee: float,
    tick_size: Mapping[str, float] | None,
    keep_unfilled: bool,
    record: bool,
) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    if not profiles:
        raise ValueError("profiles: need at least one profile")
    if not (math.isfinite(fee) and 0.0 <= fee < 1.0):
        raise ValueError(f"fee: must be in [0, 1), got {fee!r}")
    ea = _entry_arrays(entries)
    names = list(profiles)
    plist = [profiles[name] for name in names]
    n_e, n_p = len(ea.pair), len(names)

    pair_names = list(dict.fromkeys(ea.pair))
    lookup = {p: i for i, p in enumerate(pair_names)}
    pair_code = np.array([lookup[p] for p in ea.pair], dtype=np.int64)
    m = _market(candles, pair_names)

    # entry candle of every entry (the candle after the signal candle)
    g0 = np.zeros(n_e, dtype=np.int64)
    g_last = np.zeros(n_e, dtype=np.int64)
    valid = np.zeros(n_e, dtype=np.bool_)
    for c, pair in enumerate(pair_names):
        sel = np.flatnonzero(pair_code == c)
        start, length = m.start[pair], m.length[pair]
        dates = m.dates[start:start + length]
        idx = np.searchsorted(dates, ea.signal_ns[sel])
        found = (idx < length) & (dates[np.minimum(idx, length - 1)] == ea.signal_ns[sel])
        if not found.all():
            first = int(ea.signal_ns[sel][~found][0])
            raise ValueError(f"entry signal_time {pd.Timestamp(first, tz='UTC')} is not a "
                             f"candle of {pair!r}")
        g0[sel] = start + idx + 1
        g_last[sel] = start + length - 1
        valid[sel] = idx + 1 < length - 1  # Freqtrade never enters on the last candle

    ve = np.flatnonzero(valid)
    entry_px = np.full(n_e, np.nan)
    entry_px[ve] = m.open[g0[ve]]
    r_unit = ea.r_unit.copy()
    fallback = ~(np.isfinite(r_unit) & (r_unit > 0))
    r_unit[fallback] = 0.01 * entry_px[fallback]  # the strategy's fallback 1R
    ticks = np.full(n_e, np.nan)
    if tick_size:
        for c, pair in enumerate(pair_names):
            t = tick_size.get(pair)
            if t is not None:
                if not (math.isfinite(t) and t > 0):
                    raise ValueError(f"tick_size[{pair!r}]: must be > 0, got {t!r}")
                ticks[pair_code == c] = t

    # simulations: valid entries x profiles, sid = row in the output
    rows = n_e * n_p
    se = np.repeat(ve, n_p)
    sp = np.tile(np.arange(n_p, dtype=np.int64), len(ve))
    sid = se * n_p + sp
    pa = _profile_arrays(plist)
    sims = _build_sims(
        np.arange(len(sid), dtype=np.int64), sp, g0[se], g_last[se], ea.sign[se],
        entry_px[se], r_unit[se], ticks[se], pa, fee,
    )
    res = _run(m, sims, pa["ftab"], record)

    # per row
    sgn = ea.sign[se]
    profit = sgn * (res.acc * (1 - sgn * fee) - entry_px[se] * (1 + sgn * fee))
    units = reward_units(profit, 1.0, r_unit[se], entry_px[se], pa["r_sl"][sp])
    r_atr, r_risk, ret_pct = (np.full(rows, np.nan) for _ in range(3))
    r_atr[sid], r_risk[sid], ret_pct[sid] = units
    reason = np.full(rows, _NO_ENTRY, dtype=np.int8)
    reason[sid] = res.reason
    exit_ns = np.full(rows, np.iinfo(np.int64).min, dtype=np.int64)  # NaT
    exit_ns[sid] = m.dates[g0[se] + res.k_exit]
    nf = np.zeros(rows, dtype=np.int64)
    nf[sid] = res.nf
    tps = np.zeros(rows, dtype=np.int64)
    tps[sid] = res.stage
    exit_px = np.full(rows, np.nan)
    exit_px[sid] = res.last_price
    entry_ns = np.full(n_e, np.iinfo(np.int64).min, dtype=np.int64)
    entry_ns[ve] = m.dates[g0[ve]]

    eid = np.repeat(np.arange(n_e, dtype=np.int64), n_p)
    regimes = list(dict.fromkeys(ea.regime))
    regime_lookup = {r: i for i, r in enumerate(regimes)}
    regime_code = np.array([regime_lookup[r] for r in ea.regime], dtype=np.int64)

    def times(ns: IntArray) -> pd.DatetimeIndex:
        return pd.DatetimeIndex(ns.view("datetime64[ns]")).tz_localize("UTC")

    out = pd.DataFrame({
        "entry_id": eid,
        "pair": _categorical(pair_names, np.repeat(pair_code, n_p)),
        "side": _categorical(["long", "short"], np.repeat((ea.sign < 0).astype(np.int64), n_p)),
        "signal_time": times(np.repeat(ea.signal_ns, n_p)),
        "entry_time": times(np.repeat(entry_ns, n_p)),
        "regime": _categorical(regimes, np.repeat(regime_code, n_p)),
        "profile": _categorical(names, np.tile(np.arange(n_p, dtype=np.int64), n_e)),
        "entry_price": np.repeat(entry_px, n_p),
        "r_unit": np.repeat(r_unit, n_p),
        "r_atr": r_atr,
        "r_risk": r_risk,
        "ret_pct": ret_pct,
        "exit_time": times(exit_ns),
        "exit_price": exit_px,
        "exit_reason": _categorical(EXIT_REASONS, reason.astype(np.int64)),
        "n_fills": nf,
        "tps_filled": tps,
    })
    if not keep_unfilled and len(ve) < n_e:
        out = out.loc[reason != _NO_ENTRY].reset_index(drop=True)
    fills_df: pd.DataFrame | None = None
    if record and res.fills is not None:
        f = res.fills
        fsid = sid[f["sid"]]
        fe = fsid // n_p
        counts = np.bincount(f["sid"], minlength=len(sid))
        seq = np.arange(len(fsid)) - np.repeat(np.cumsum(counts) - counts, counts)
        fills_df = pd.DataFrame({
            "entry_id": fe,
            "profile": _categorical(names, fsid % n_p),
            "fill": seq,
            "bar": f["k"],
            "time": times(m.dates[g0[fe] + f["k"]]),
            "fraction": f["fraction"],
            "price": f["price"],
            "tag": _categorical(FILL_TAGS, f["tag"].astype(np.int64)),
        })
    return out, fills_df


def simulate(
    candles: Mapping[str, pd.DataFrame],
    entries: Sequence[Entry] | pd.DataFrame,
    profiles: Mapping[str, StrategyProfile],
    *,
    fee: float,
    tick_size: Mapping[str, float] | None = None,
    keep_unfilled: bool = False,
) -> pd.DataFrame:
    """The outcome of every profile for every entry: one row per (entry, profile).

    ``candles[pair]``: Freqtrade's OHLCV frame (``date``, ``open``, ``high``, ``low``, ...) on a
    regular grid (missing candles filled, as Freqtrade loads them). ``entries``: :class:`Entry`
    objects or a frame with their fields as columns (``regime`` optional). ``profiles``: label
    -> profile (the ``profile`` column holds the labels). ``fee``: ratio per fill.
    ``tick_size``: pair -> price tick, to round stops and TP3 as Freqtrade does (pairs absent
    from it are not rounded; :func:`infer_tick_sizes` derives them from the prices). Pass it:
    without ticks about 2-3% of trades take another path than in Freqtrade (a stop a fraction
    of a tick lower is not touched, ...). ``keep_unfilled``: keep the rows of entries Freqtrade
    could not fill (signal on the last or second-to-last candle: no entry candle, or the entry
    candle is the last one, on which Freqtrade never enters) with ``exit_reason``
    ``"no_entry"``, NaN results and NaT times; by default they are left out (their
    ``entry_id`` is then absent).

    Columns: ``entry_id`` (position of the entry in ``entries``), ``pair``, ``side``,
    ``signal_time``, ``entry_time``, ``regime``, ``profile``, ``entry_price``, ``r_unit`` (1R
    used), ``r_atr``, ``r_risk``, ``ret_pct``, ``exit_time``, ``exit_price`` (closing fill),
    ``exit_reason`` (:data:`EXIT_REASONS`), ``n_fills`` (exit fills), ``tps_filled`` (partial
    take-profits filled before the close: 0, 1 or 2). Rows are ordered by entry, then profile
    in the order of ``profiles``; text columns are categoricals. See the module docstring for
    the exact exit rules.
    """
    out, _ = _simulate(candles, entries, profiles, fee, tick_size, keep_unfilled,
                       record=False)
    return out


def simulate_with_fills(
    candles: Mapping[str, pd.DataFrame],
    entries: Sequence[Entry] | pd.DataFrame,
    profiles: Mapping[str, StrategyProfile],
    *,
    fee: float,
    tick_size: Mapping[str, float] | None = None,
    keep_unfilled: bool = False,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """:func:`simulate` plus every exit fill, for debugging and tests.

    The fills frame has one row per exit fill: ``entry_id``, ``profile``, ``fill`` (0, 1, ...
    within the trade), ``bar`` (candles since the entry candle), ``time`` (the candle's date, as
    Freqtrade stamps the order), ``fraction`` (of the entry amount), ``price`` and ``tag``
    (Freqtrade's order tag: ``tp1``, ``tp2``, ``tp1+tp2``, ``stop_loss``,
    ``trailing_stop_loss``, ``roi`` or ``force_exit``).
    """
    out, fills = _simulate(candles, entries, profiles, fee, tick_size, keep_unfilled,
                           record=True)
    assert fills is not None
    return out, fills


__all__ = ["EXIT_REASONS", "FILL_TAGS", "STOP_NUDGE", "Entry", "infer_tick_sizes", "simulate",
           "simulate_with_fills"]
