"""Candle storage and the :class:`MarketData` interface the HTTP handlers talk to.

The handlers never touch files: they ask a :class:`MarketData` for the symbols it knows,
for candles (``klines``), for the last traded price and for "now". :class:`ReplayMarketData`
answers from Freqtrade feather files as they are on disk (historical timestamps). A later
live mode can subclass it (or implement the protocol) to shift candles to the wall clock or
to follow a price path set through a control endpoint, without touching the handlers.

This module must not import freqtrade.
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import numpy.typing as npt
import pandas as pd

# Binance kline intervals and their length in milliseconds ("1M" is calendar based).
_MINUTE = 60_000
INTERVAL_MS: dict[str, int] = {
    "1s": 1_000,
    "1m": _MINUTE,
    "3m": 3 * _MINUTE,
    "5m": 5 * _MINUTE,
    "15m": 15 * _MINUTE,
    "30m": 30 * _MINUTE,
    "1h": 60 * _MINUTE,
    "2h": 120 * _MINUTE,
    "4h": 240 * _MINUTE,
    "6h": 360 * _MINUTE,
    "8h": 480 * _MINUTE,
    "12h": 720 * _MINUTE,
    "1d": 1440 * _MINUTE,
    "3d": 3 * 1440 * _MINUTE,
    "1w": 7 * 1440 * _MINUTE,
}
# Binance's weekly candles open on Monday 00:00 UTC; 1970-01-05 was the first Monday.
_WEEK_ORIGIN_MS = 4 * 1440 * _MINUTE

# Freqtrade spot file names: BTC_USDT-1h.feather (futures live in a futures/ subfolder).
_FILE_RE = re.compile(r"^(?P<base>[A-Z0-9]+)_(?P<quote>[A-Z0-9]+)-(?P<tf>\d+[smhdwM])\.feather$")


class UnknownSymbolError(KeyError):
    """The symbol is not served (Binance answers -1121 "Invalid symbol.")."""


class UnknownIntervalError(ValueError):
    """Not a Binance kline interval (Binance answers -1120 "Invalid interval.")."""


@dataclass(frozen=True)
class SymbolInfo:
    """A spot market served by the loopback exchange."""

    base: str
    quote: str

    @property
    def symbol(self) -> str:
        """Binance market id, e.g. ``BTCUSDT``."""
        return f"{self.base}{self.quote}"

    @property
    def pair(self) -> str:
        """Freqtrade / ccxt pair, e.g. ``BTC/USDT``."""
        return f"{self.base}/{self.quote}"


@dataclass(frozen=True)
class Candles:
    """Candles of one symbol and interval, sorted by open time.

    ``open_time`` is int64 milliseconds since the epoch (candle open, UTC); ``ohlcv`` is a
    float64 array of shape (n, 5): open, high, low, close, volume (base asset).
    """

    open_time: npt.NDArray[np.int64]
    ohlcv: npt.NDArray[np.float64]
    interval_ms: int

    def __len__(self) -> int:
        return int(self.open_time.shape[0])

    def select(self, start_ms: int | None, end_ms: int | None, limit: int) -> Candles:
        """Binance ``/klines`` selection semantics on open time.

        - ``start_ms`` given: the first ``limit`` candles with open time in [start, end].
        - only ``end_ms``: the last ``limit`` candles with open time <= end.
        - neither: the last ``limit`` candles.
        """
        lo = 0 if start_ms is None else int(np.searchsorted(self.open_time, start_ms, "left"))
        hi = len(self) if end_ms is None else int(np.searchsorted(self.open_time, end_ms, "right"))
        if hi <= lo or limit <= 0:
            lo = hi = 0
        elif start_ms is not None:
            hi = min(hi, lo + limit)
        else:
            lo = max(lo, hi - limit)
        return Candles(self.open_time[lo:hi], self.ohlcv[lo:hi], self.interval_ms)


def interval_ms(interval: str) -> int:
    """Length of a Binance interval in ms.

    >>> interval_ms("1h")
    3600000
    """
    try:
        return INTERVAL_MS[interval]
    except KeyError:
        raise UnknownIntervalError(interval) from None


def resample(candles: Candles, target_ms: int) -> Candles:
    """Aggregate candles to a coarser interval (first open, max high, min low, last close,
    summed volume), periods aligned like Binance's (UTC days, Monday weeks)."""
    if target_ms == candles.interval_ms or len(candles) == 0:
        return candles
    origin = _WEEK_ORIGIN_MS if target_ms == INTERVAL_MS["1w"] else 0
    bucket = (candles.open_time - origin) // target_ms
    starts = np.flatnonzero(np.r_[True, bucket[1:] != bucket[:-1]])
    ends = np.r_[starts[1:], len(candles)] - 1
    o, h, lo, c, v = (candles.ohlcv[:, i] for i in range(5))
    out = np.column_stack(
        [
            o[starts],
            np.maximum.reduceat(h, starts),
            np.minimum.reduceat(lo, starts),
            c[ends],
            np.add.reduceat(v, starts),
        ]
    )
    times = (bucket[starts] * target_ms + origin).astype(np.int64)
    return Candles(times, out.astype(np.float64), target_ms)


class CandleStore:
    """Lazily loaded, cached candles of every ``<BASE>_<QUOTE>-<tf>.feather`` in a folder.

    Intervals missing on disk are aggregated from the coarsest finer interval that divides
    them (e.g. 4h and 1d from 1h). Thread-safe.
    """

    def __init__(self, datadir: Path | str) -> None:
        self.datadir = Path(datadir)
        if not self.datadir.is_dir():
            raise FileNotFoundError(f"data directory not found: {self.datadir}")
        self._files: dict[str, dict[str, Path]] = {}
        self._symbols: dict[str, SymbolInfo] = {}
        for path in sorted(self.datadir.glob("*.feather")):
            match = _FILE_RE.match(path.name)
            if match is None or match["tf"] not in INTERVAL_MS:
                continue
            info = SymbolInfo(match["base"], match["quote"])
            self._symbols[info.symbol] = info
            self._files.setdefault(info.symbol, {})[match["tf"]] = path
        self._cache: dict[tuple[str, str], Candles] = {}
        self._lock = threading.Lock()

    def symbols(self) -> list[SymbolInfo]:
        return list(self._symbols.values())

    def symbol_info(self, symbol: str) -> SymbolInfo:
        try:
            return self._symbols[symbol]
        except KeyError:
            raise UnknownSymbolError(symbol) from None

    def stored_intervals(self, symbol: str) -> list[str]:
        """Intervals with a file on disk, finest first."""
        self.symbol_info(symbol)
        return sorted(self._files[symbol], key=INTERVAL_MS.__getitem__)

    def candles(self, symbol: str, interval: str) -> Candles:
        target = interval_ms(interval)
        self.symbol_info(symbol)
        key = (symbol, interval)
        with self._lock:
            cached = self._cache.get(key)
            if cached is None:
                cached = self._build(symbol, interval, target)
                self._cache[key] = cached
        return cached

    def _build(self, symbol: str, interval: str, target: int) -> Candles:
        files = self._files[symbol]
        if interval in files:
            return _read_feather(files[interval], target)
        finer = [tf for tf in files if target % INTERVAL_MS[tf] == 0 and INTERVAL_MS[tf] < target]
        if not finer:
            return Candles(np.empty(0, np.int64), np.empty((0, 5), np.float64), target)
        source = max(finer, key=INTERVAL_MS.__getitem__)
        return resample(_read_feather(files[source], INTERVAL_MS[source]), target)


def _read_feather(path: Path, interval: int) -> Candles:
    frame = pd.read_feather(path, columns=["date", "open", "high", "low", "close", "volume"])
    frame = frame.sort_values("date").drop_duplicates("date", keep="last")
    naive_utc = pd.to_datetime(frame["date"], utc=True).dt.tz_localize(None)
    open_time = np.asarray(naive_utc.to_numpy("datetime64[ms]")).astype(np.int64)
    ohlcv = frame[["open", "high", "low", "close", "volume"]].to_numpy(dtype=np.float64)
    return Candles(open_time, ohlcv, interval)


class MarketData(Protocol):
    """What the HTTP handlers need to know about the market. Implementations must be
    thread-safe (requests are served from several threads)."""

    def symbols(self) -> list[SymbolInfo]:
        """Markets to list in exchangeInfo."""
        ...

    def symbol_info(self, symbol: str) -> SymbolInfo:
        """Raise :class:`UnknownSymbolError` for a symbol that is not served."""
        ...

    def klines(
        self, symbol: str, interval: str, start_ms: int | None, end_ms: int | None, limit: int
    ) -> Candles:
        """Candles with Binance ``/klines`` selection semantics."""
        ...

    def last_price(self, symbol: str) -> float:
        """Last traded price (order book and tickers are built around it)."""
        ...

    def recent_candles(self, symbol: str, span_ms: int) -> Candles:
        """The finest candles covering the last ``span_ms`` up to the last price (24h ticker)."""
        ...

    def price_sample(self, symbol: str) -> npt.NDArray[np.float64]:
        """Representative prices (used to derive tick size and lot step)."""
        ...

    def server_time_ms(self) -> int:
        """The exchange clock (``/api/v3/time``)."""
        ...


class ReplayMarketData:
    """Serves the stored candles unchanged: timestamps are historical, the "last price" is the
    close of the last stored candle of the finest interval. ``/time`` reports the wall clock
    (ccxt/Freqtrade compare it with the local clock)."""

    def __init__(self, store: CandleStore) -> None:
        self.store = store

    def symbols(self) -> list[SymbolInfo]:
        return self.store.symbols()

    def symbol_info(self, symbol: str) -> SymbolInfo:
        return self.store.symbol_info(symbol)

    def klines(
        self, symbol: str, interval: str, start_ms: int | None, end_ms: int | None, limit: int
    ) -> Candles:
        return self.store.candles(symbol, interval).select(start_ms, end_ms, limit)

    def finest(self, symbol: str) -> Candles:
        return self.store.candles(symbol, self.store.stored_intervals(symbol)[0])

    def last_price(self, symbol: str) -> float:
        candles = self.finest(symbol)
        if len(candles) == 0:
            raise UnknownSymbolError(symbol)
        return float(candles.ohlcv[-1, 3])

    def recent_candles(self, symbol: str, span_ms: int) -> Candles:
        candles = self.finest(symbol)
        if len(candles) == 0:
            return candles
        end = int(candles.open_time[-1])
        return candles.select(end - span_ms + candles.interval_ms, end, len(candles))

    def price_sample(self, symbol: str) -> npt.NDArray[np.float64]:
        return self.finest(symbol).ohlcv[-2000:, :4].ravel()

    def server_time_ms(self) -> int:
        return int(time.time() * 1000)
