"""Hand-built price paths for the exit end-to-end tests (``tests/test_exits_e2e.py``).

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

BASE = 100.0
START = pd.Timestamp("2024-01-01 00:00", tz="UTC")
WARMUP = 466  # > startup_candle_count (400) + the backtest's first candles
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
