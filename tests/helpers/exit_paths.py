"""Hand-built price paths for the exit end-to-end tests (``tests/adapter/test_exits_e2e.py``).

A path is written once, side-agnostic, in *favourable offsets* from :data:`BASE`: ``+2.2``
means 2.2 price units in the trade's favour (above ``BASE`` for a long, below it for a short).
:meth:`Bar.ohlc` mirrors it for shorts (the high of a short's bar is its *worst* offset).

Every synthetic pair has the same layout on a 1h grid starting at :data:`START`:

* ``WARMUP`` flat candles, open = close = ``BASE``, high - low = 1.0, so every true range is
  1.0 and ATR(14) settles at exactly 1.0 (Wilder smoothing of a constant);
* the signal candle (index ``WARMUP``), open = close = ``BASE`` with a range of
  ``SIGNAL_RANGE`` = 1.28, which makes its ATR(14) (13 x 1.0 + 1.28) / 14 = 1.02: 1R then
  differs from the ATR of the candles before (1.0) and after it, so a 1R taken from the wrong
  candle shows in every price;
* the scripted bars, the first one being the entry candle (the entry fills at its open, which
  every path puts at ``BASE``);
* ``PAD`` quiet candles at the last close, so the backtest ends after every trade has closed.

All prices are multiples of 0.01 and some need two decimals, so the loopback exchange derives
a 0.01 tick (it uses the fewest decimals that represent the data); volume 10,000 at ~100 is
~24M USDT per 24h, far above the illiquid threshold.

This module imports neither freqtrade nor the plugin (only pandas), so it is cheap to import.
"""

from __future__ import annotations

import json
import math
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from freqtrade_metastrategy.profiles import get_strategy_profile

BASE = 100.0
START = pd.Timestamp("2024-01-01 00:00", tz="UTC")
WARMUP = 466  # > PathStrategy.startup_candle_count (400) + the backtest's first candles
SIGNAL_RANGE = 1.28
PAD = 6
VOLUME = 10_000.0
TIMEFRAME = pd.Timedelta(hours=1)
SIGNAL_DATE = START + WARMUP * TIMEFRAME
ENTRY_DATE = SIGNAL_DATE + TIMEFRAME
# Backtest from here: 400 startup candles are loaded before it, all of them flat warm-up.
TIMERANGE = "20240119-"


@dataclass(frozen=True)
class Bar:
    """One candle in favourable offsets from ``BASE`` (see the module docstring)."""

    open: float
    best: float
    worst: float
    close: float

    def __post_init__(self) -> None:
        if not self.worst <= min(self.open, self.close) <= max(self.open, self.close) <= self.best:
            raise ValueError(f"inconsistent bar {self}")

    def ohlc(self, sign: int) -> tuple[float, float, float, float]:
        """(open, high, low, close) prices for a long (``sign`` +1) or a short (-1).

        >>> Bar(0.0, 2.3, -0.4, 2.1).ohlc(+1)
        (100.0, 102.3, 99.6, 102.1)
        >>> Bar(0.0, 2.3, -0.4, 2.1).ohlc(-1)
        (100.0, 100.4, 97.7, 97.9)
        """
        best, worst = price(self.best, sign), price(self.worst, sign)
        high, low = (best, worst) if sign > 0 else (worst, best)
        return price(self.open, sign), high, low, price(self.close, sign)


def price(offset: float, sign: int) -> float:
    """``BASE`` moved ``offset`` in the favour of a trade of direction ``sign``, on the cent grid.

    >>> price(-1.5, +1), price(-1.5, -1)
    (98.5, 101.5)
    """
    return round(BASE + sign * offset, 2)


@dataclass(frozen=True)
class Geometry:
    """What the expected fills of a case are computed from: side, entry price, 1R, tick."""

    sign: int
    entry: float
    r_unit: float
    tick: float

    def level(self, r: float) -> float:
        """The price ``r`` R from the entry in the trade's favour, snapped to the tick (the
        paths are designed so that every level used is on the grid: see ``on_tick``)."""
        return self.snap(self.entry + self.sign * r * self.r_unit)

    def px(self, offset: float) -> float:
        """A path price (e.g. a candle's open) given as a favourable offset from ``BASE``."""
        return price(offset, self.sign)

    def snap(self, value: float) -> float:
        return round(round(value / self.tick) * self.tick, 10)

    def on_tick(self, value: float) -> bool:
        return abs(value - self.snap(value)) < 1e-9


@dataclass(frozen=True)
class Fill:
    """One expected exit order: fraction of the entry amount, price, order tag / exit reason,
    and the bar it fills in (0 = the entry candle)."""

    fraction: float
    price: float
    tag: str
    bar: int

    @property
    def date(self) -> pd.Timestamp:
        return ENTRY_DATE + self.bar * TIMEFRAME


@dataclass(frozen=True)
class Case:
    """One scripted trade: a pair, its bars, and the exits the plan must produce."""

    name: str
    base: str  # the asset, e.g. "BTC" -> BTC/USDT (spot) or BTC/USDT:USDT (futures)
    doc: str
    bars: Sequence[Bar]
    exits: Callable[[Geometry], list[Fill]] = field(repr=False)

    def pair(self, side: str) -> str:
        return f"{self.base}/USDT" + (":USDT" if side == "short" else "")


def sign_of(side: str) -> int:
    return -1 if side == "short" else 1


def build_frame(bars: Sequence[Bar], sign: int) -> pd.DataFrame:
    """A Freqtrade OHLCV frame: flat warm-up, the signal candle, the bars, a quiet pad."""
    half = SIGNAL_RANGE / 2
    rows: list[tuple[float, float, float, float]] = [(BASE, BASE + 0.5, BASE - 0.5, BASE)] * WARMUP
    rows.append((BASE, round(BASE + half, 2), round(BASE - half, 2), BASE))
    rows.extend(bar.ohlc(sign) for bar in bars)
    last = rows[-1][3]
    rows.extend([(last, round(last + 0.05, 2), round(last - 0.05, 2), last)] * PAD)
    frame = pd.DataFrame(rows, columns=["open", "high", "low", "close"], dtype="float64")
    frame.insert(0, "date", pd.date_range(START, periods=len(frame), freq="1h", tz="UTC"))
    frame["volume"] = VOLUME
    return frame


def write_feather(frame: pd.DataFrame, datadir: Path, base: str) -> Path:
    """Write ``frame`` as Freqtrade's spot feather file ``<BASE>_USDT-1h.feather``."""
    path = datadir / f"{base}_USDT-1h.feather"
    frame.reset_index(drop=True).to_feather(path, compression="lz4", compression_level=9)
    return path


def independent_r(
    *,
    sign: int,
    entry_amount: float,
    entry_price: float,
    exits: Sequence[tuple[float, float]],
    fee: float,
    r_unit: float,
) -> tuple[float, float]:
    """(net profit in stake currency, R) of a trade from its fills, computed from scratch.

    Long:  profit = sum(a x p x (1 - fee)) - A x P x (1 + fee)
    Short: profit = A x P x (1 - fee) - sum(a x p x (1 + fee))      (exits = (a, p) pairs)
    R = profit / (A x 1R).

    >>> profit, r = independent_r(sign=1, entry_amount=1.0, entry_price=100.0,
    ...                           exits=[(1.0, 99.0)], fee=0.001, r_unit=2.0)
    >>> round(profit, 9), round(r, 9)   # 99 x 0.999 - 100 x 1.001 = -1.199; / 2
    (-1.199, -0.5995)
    >>> profit, r = independent_r(sign=-1, entry_amount=1.0, entry_price=100.0,
    ...                           exits=[(0.5, 98.0), (0.5, 100.0)], fee=0.001, r_unit=1.0)
    >>> round(profit, 9)                # 99.9 - (49 + 50) x 1.001
    0.801
    """
    if sign > 0:
        profit = math.fsum(a * p * (1 - fee) for a, p in exits) - entry_amount * entry_price * (
            1 + fee
        )
    else:
        profit = entry_amount * entry_price * (1 - fee) - math.fsum(
            a * p * (1 + fee) for a, p in exits
        )
    return profit, profit / (entry_amount * r_unit)


def load_backtest_trades(backtest_dir: Path, strategy: str) -> list[dict[str, Any]]:
    """The trades of the single exported backtest result (zip) in ``backtest_dir``."""
    zips = sorted(backtest_dir.glob("backtest-result-*.zip"))
    if len(zips) != 1:
        raise AssertionError(f"expected one backtest result in {backtest_dir}, got {zips}")
    with zipfile.ZipFile(zips[0]) as archive:
        result = json.loads(archive.read(zips[0].with_suffix(".json").name))
    trades: list[dict[str, Any]] = result["strategy"][strategy]["trades"]
    return trades


# -- the hand-built cases (shared by tests/adapter/test_exits_e2e.py, which runs them through
# -- real Freqtrade backtests, and tests/evaluation/test_simulator.py) -----------------------
STRATEGY = "PathStrategy"
PROFILE = get_strategy_profile("moderate")
FEE = 0.001
STAKE = 100.0
PRICE_TOL = 1e-9  # prices and amounts: real errors are >= one tick (0.01) / lot step (0.001)
MONEY_TOL = 1e-6  # profit_abs and R: Freqtrade rounds every exit's profit to 8 decimals
P = PROFILE


def trail(g: Geometry, best_offset: float) -> float:
    """The trailing stop after TP2: ``trail_distance_r`` x 1R behind the best price."""
    return g.snap(g.px(best_offset) - g.sign * P.trail_distance_r * g.r_unit)


# Bars are (open, best, worst, close) in favourable offsets from 100 (shorts are mirrored).
# The entry candle is the first bar; its open (offset 0) is the entry price.
QUIET_ENTRY = Bar(0.0, 0.3, -0.5, -0.4)
RISING_ENTRY = Bar(0.0, 0.8, -0.4, 0.6)
TOUCH_TP1 = Bar(0.6, 2.3, 0.5, 2.1)  # best 2.3 >= TP1 (2.04): TP1 fills at the next open
LADDER_TO_TP2 = (
    RISING_ENTRY,
    TOUCH_TP1,
    Bar(2.2, 3.7, 2.0, 3.5),  # TP1 partial at this open (2.2); best 3.7 >= TP2 (3.57)
    Bar(3.6, 4.4, 3.55, 4.4),  # TP2 partial at this open (3.6); trail 4.4 - 1.02 < 3.55
)

# One pair per case. The names are real Binance perpetuals because Freqtrade's Binance class
# reads futures leverage tiers from its bundled binance_leverage_tiers.json in dry-run and
# backtests, and refuses pairs that have none; the prices are ours.
CASES: list[Case] = [
    Case(
        "stop", "BTC",
        "price falls through the initial stop: one exit at exactly entry - 1R",
        [QUIET_ENTRY, Bar(-0.4, -0.1, -1.5, -1.3)],
        lambda g: [Fill(1.0, g.level(-P.r_sl), "stop_loss", 1)],
    ),
    Case(
        "stop_gap", "ETH",
        "the whole candle is beyond the stop (opens and stays below it): filled at its open",
        [QUIET_ENTRY, Bar(-2.5, -2.2, -2.8, -2.6)],
        lambda g: [Fill(1.0, g.px(-2.5), "stop_loss", 1)],
    ),
    Case(
        "stop_gap_wick", "SOL",
        # Freqtrade, not the plugin: a stop counts as gapped only if it is beyond the whole
        # candle (backtesting._get_close_rate_for_stoploss compares it with the HIGH). A
        # candle that opens below the stop and wicks back above it fills AT THE STOP, which
        # is better than the open the price actually gapped to.
        "opens beyond the stop, wicks back through it: Freqtrade fills at the stop, not the open",
        [QUIET_ENTRY, Bar(-2.5, -0.8, -2.8, -2.6)],
        lambda g: [Fill(1.0, g.level(-P.r_sl), "stop_loss", 1)],
    ),
    Case(
        "tp1_breakeven", "XRP",
        "TP1 touched -> 50% at the next open; then back to the entry: rest at breakeven",
        [RISING_ENTRY, TOUCH_TP1, Bar(2.2, 2.4, 1.0, 1.2), Bar(1.2, 1.3, -0.5, -0.3)],
        lambda g: [
            Fill(P.partial_close_tp1, g.px(2.2), "tp1", 2),
            Fill(1 - P.partial_close_tp1, g.entry, "stop_loss", 3),
        ],
    ),
    Case(
        "tp1_gap_breakeven", "ADA",
        "opens through TP1 -> 50% at this open; then back to the entry: rest at breakeven",
        [RISING_ENTRY, Bar(2.5, 2.9, 2.3, 2.6), Bar(2.6, 2.7, -0.3, -0.2)],
        lambda g: [
            Fill(P.partial_close_tp1, g.px(2.5), "tp1", 1),
            Fill(1 - P.partial_close_tp1, g.entry, "stop_loss", 2),
        ],
    ),
    Case(
        "ladder", "DOGE",
        "TP1 and TP2 partials at the next opens, TP3 closes the rest exactly at the TP3 price",
        [*LADDER_TO_TP2,
         Bar(4.4, 5.0, 4.3, 5.0),  # trail 5.0 - 1.02 = 3.98 < 4.3
         Bar(5.0, 5.8, 4.9, 5.7)],  # trail 4.78 < 4.9; best 5.8 > TP3 (5.61): ROI at 5.61
        lambda g: [
            Fill(P.partial_close_tp1, g.px(2.2), "tp1", 2),
            Fill(P.partial_close_tp2, g.px(3.6), "tp2", 3),
            Fill(P.partial_close_tp3, g.level(P.r_tp3), "roi", 5),
        ],
    ),
    Case(
        "ladder_gap_tp3", "LTC",
        "TP1 and TP2 partials, then a candle opens beyond TP3: the rest at that open",
        [*LADDER_TO_TP2, Bar(6.0, 6.3, 5.9, 6.2)],  # trail 5.28 < 5.9
        lambda g: [
            Fill(P.partial_close_tp1, g.px(2.2), "tp1", 2),
            Fill(P.partial_close_tp2, g.px(3.6), "tp2", 3),
            Fill(P.partial_close_tp3, g.px(6.0), "roi", 4),
        ],
    ),
    Case(
        "tp12_trailing", "LINK",
        "TP1 and TP2 touched in one candle -> one 80% partial at the next open; the trailing "
        "stop placed at that fill (1R behind the best so far) closes the rest in that candle",
        # The stop is 1R behind 3.8 (the best before the fill), not behind this candle's high
        # (3.9): Freqtrade calls custom_stoploss only while the current stop is below the
        # candle's low, so a candle that breaks the stop never raises it first. It was placed
        # by the after-fill call, so the reason is stop_loss, not trailing_stop_loss.
        [RISING_ENTRY, Bar(0.6, 3.8, 0.5, 3.6), Bar(3.7, 3.9, 2.5, 2.6)],
        lambda g: [
            Fill(P.partial_close_tp1 + P.partial_close_tp2, g.px(3.7), "tp1+tp2", 2),
            Fill(P.partial_close_tp3, trail(g, 3.8), "stop_loss", 2),
        ],
    ),
    Case(
        "spike_through_tp3", "AVAX",
        # Pinned behaviour, reported: the partials only act at candle opens, so one candle
        # running from below TP1 through TP3 closes the WHOLE position at TP3 (5.5R on 100%),
        # where live trading would have taken the TP1/TP2 partials on the way up.
        "one candle from below TP1 through TP3: everything closes at TP3, no partials",
        [RISING_ENTRY, Bar(0.6, 6.0, 0.5, 5.8)],
        lambda g: [Fill(1.0, g.level(P.r_tp3), "roi", 1)],
    ),
    Case(
        "tp1_then_gap_down", "DOT",
        # TP1 was touched, but the next opens are below the entry: a take-profit is never
        # taken at a loss, so no partial fills, the stop stays the initial one, and the whole
        # position is stopped there.
        "TP1 touched, next candles back below the entry: no partial at a loss, full stop",
        [RISING_ENTRY, TOUCH_TP1, Bar(-0.5, -0.3, -0.8, -0.6), Bar(-0.6, -0.4, -1.5, -1.3)],
        lambda g: [Fill(1.0, g.level(-P.r_sl), "stop_loss", 3)],
    ),
    Case(
        "open_at_end", "BCH",
        # No level is ever reached: the trade is still open when the data ends. Freqtrade
        # force-exits it at the last candle's open (the quiet pad's price; no
        # confirm_trade_exit call on this path) and the closing fill still settles its reward
        # exactly once.
        "nothing reached before the data ends: force exit at the last open, reward settled",
        [RISING_ENTRY, Bar(0.6, 0.9, 0.2, 0.5)],
        lambda g: [Fill(1.0, g.px(0.5), "force_exit", 1 + PAD)],
    ),
    Case(
        "tp1_deferred", "BNB",
        # TP1 touched; the next open is below the entry, so the partial waits; the open after
        # is back in profit (but below TP1): the partial fills there, then breakeven applies.
        "TP1 touched, next open at a loss (no partial), following open in profit: TP1 fills "
        "there, the rest at breakeven",
        [RISING_ENTRY, TOUCH_TP1, Bar(-0.3, 0.35, -0.6, 0.3), Bar(0.4, 0.6, -0.5, -0.4)],
        lambda g: [
            Fill(P.partial_close_tp1, g.px(0.4), "tp1", 3),
            Fill(1 - P.partial_close_tp1, g.entry, "stop_loss", 3),
        ],
    ),
]
