"""Candle storage and the :class:`MarketData` interface the HTTP handlers talk to.

The handlers never touch files: they ask a :class:`MarketData` for the symbols it knows,
for candles (``klines``), for the last traded price and for "now". :class:`ReplayMarketData`
answers from Freqtrade feather files as they are on disk (historical timestamps). A later
live mode can subclass it (or implement the protocol) to shift candles to the wall clock or
to follow a price path set through a control endpoint, without touching the handlers.

Two file layouts are read, both exactly as Freqtrade stores them:

- spot (``market="spot"``): ``<datadir>/BTC_USDT-1h.feather``;
- USDT-M perpetuals (``market="futures"``): ``<datadir>/futures/BTC_USDT_USDT-1h-futures.feather``
  (contract candles; they define which perpetuals exist), ``...-1h-mark.feather`` /
  ``-index`` / ``-premiumIndex`` (price candles) and ``...-1h-funding_rate.feather``
  (``date, funding_rate`` rows, or the legacy OHLCV layout with the rate in ``open``).

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
# Freqtrade futures file names: futures/BTC_USDT_USDT-1h-futures.feather, ...-1h-mark.feather,
# ...-1h-funding_rate.feather (pair BTC/USDT:USDT, candle type after the timeframe).
_FUTURES_FILE_RE = re.compile(
    r"^(?P<base>[A-Z0-9]+)_(?P<quote>[A-Z0-9]+)_(?P<settle>[A-Z0-9]+)-(?P<tf>\d+[smhdwM])"
    r"-(?P<type>futures|mark|index|premiumIndex|funding_rate)\.feather$"
)

SPOT = "spot"
FUTURES = "futures"
MARKETS = (SPOT, FUTURES)
# Freqtrade CandleType values of price candles (spot store: "spot"; futures store: the rest).
MARK, INDEX, PREMIUM_INDEX = "mark", "index", "premiumIndex"
PRICE_CANDLE_TYPES = (MARK, INDEX, PREMIUM_INDEX)
FUNDING_RATE = "funding_rate"


class UnknownSymbolError(KeyError):
    """The symbol is not served (Binance answers -1121 "Invalid symbol.")."""


class UnknownIntervalError(ValueError):
    """Not a Binance kline interval (Binance answers -1120 "Invalid interval.")."""


@dataclass(frozen=True)
class SymbolInfo:
    """A market served by the loopback exchange: spot (``settle`` None) or a perpetual
    settled in ``settle`` (USDT-M when ``settle == quote``)."""

    base: str
    quote: str
    settle: str | None = None

    @property
    def symbol(self) -> str:
        """Binance market id, e.g. ``BTCUSDT`` (the same for spot and the perpetual)."""
        return f"{self.base}{self.quote}"

    @property
    def pair(self) -> str:
        """Freqtrade / ccxt pair, e.g. ``BTC/USDT`` or, for the perpetual, ``BTC/USDT:USDT``."""
        spot = f"{self.base}/{self.quote}"
        return spot if self.settle is None else f"{spot}:{self.settle}"

    @property
    def perpetual(self) -> bool:
        return self.settle is not None


@dataclass(frozen=True)
class FundingRates:
    """Funding events of one perpetual, sorted: ``time`` int64 ms (funding time, UTC) and the
    ``rate`` paid at that time (positive: longs pay shorts)."""

    time: npt.NDArray[np.int64]
    rate: npt.NDArray[np.float64]

    def __len__(self) -> int:
        return int(self.time.shape[0])

    def select(self, start_ms: int | None, end_ms: int | None, limit: int) -> FundingRates:
        """Binance ``/fapi/v1/fundingRate`` semantics: with ``start_ms`` the first ``limit``
        events in [start, end], otherwise the last ``limit`` events up to ``end``."""
        lo = 0 if start_ms is None else int(np.searchsorted(self.time, start_ms, "left"))
        hi = len(self) if end_ms is None else int(np.searchsorted(self.time, end_ms, "right"))
        if hi <= lo or limit <= 0:
            lo = hi = 0
        elif start_ms is not None:
            hi = min(hi, lo + limit)
        else:
            lo = max(lo, hi - limit)
        return FundingRates(self.time[lo:hi], self.rate[lo:hi])


NO_FUNDING = FundingRates(np.empty(0, np.int64), np.empty(0, np.float64))


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
    """Lazily loaded, cached candles of the Freqtrade feather files of one market.

    ``market="spot"`` reads ``<datadir>/<BASE>_<QUOTE>-<tf>.feather``; ``market="futures"``
    reads ``<datadir>/futures/<BASE>_<QUOTE>_<SETTLE>-<tf>-<type>.feather`` (a missing
    ``futures`` folder is an empty store). Intervals missing on disk are aggregated from the
    coarsest finer interval that divides them (e.g. 4h and 1d from 1h). Thread-safe.
    """

    def __init__(self, datadir: Path | str, market: str = SPOT) -> None:
        if market not in MARKETS:
            raise ValueError(f"market must be one of {MARKETS}, not {market!r}")
        self.datadir = Path(datadir)
        self.market = market
        if not self.datadir.is_dir():
            raise FileNotFoundError(f"data directory not found: {self.datadir}")
        # primary candle type: what /klines serves and what defines the listed symbols
        self.candle_type = SPOT if market == SPOT else FUTURES
        # symbol -> candle type -> interval -> file
        self._files: dict[str, dict[str, dict[str, Path]]] = {}
        self._funding_files: dict[str, Path] = {}
        self._symbols: dict[str, SymbolInfo] = {}
        if market == SPOT:
            self._scan_spot()
        else:
            self._scan_futures()
        self._cache: dict[tuple[str, str, str], Candles] = {}
        self._funding_cache: dict[str, FundingRates] = {}
        self._lock = threading.Lock()

    @property
    def folder(self) -> Path:
        """Where the files are: ``datadir`` (spot) or ``datadir/futures``."""
        return self.datadir if self.market == SPOT else self.datadir / "futures"

    def _scan_spot(self) -> None:
        for path in sorted(self.datadir.glob("*.feather")):
            match = _FILE_RE.match(path.name)
            if match is None or match["tf"] not in INTERVAL_MS:
                continue
            info = SymbolInfo(match["base"], match["quote"])
            self._symbols[info.symbol] = info
            self._files.setdefault(info.symbol, {}).setdefault(SPOT, {})[match["tf"]] = path

    def _scan_futures(self) -> None:
        matches = [
            (path, m)
            for path in sorted(self.folder.glob("*.feather"))
            if (m := _FUTURES_FILE_RE.match(path.name)) is not None and m["tf"] in INTERVAL_MS
        ]
        # contract candles define the symbols; a pair with only mark/funding files is ignored
        for _, m in matches:
            if m["type"] == FUTURES:
                info = SymbolInfo(m["base"], m["quote"], m["settle"])
                self._symbols.setdefault(info.symbol, info)
        for path, m in matches:
            listed = self._symbols.get(m["base"] + m["quote"])
            if listed is None or listed.settle != m["settle"]:
                continue
            if m["type"] == FUNDING_RATE:
                self._funding_files.setdefault(listed.symbol, path)
            else:
                self._files.setdefault(listed.symbol, {}).setdefault(m["type"], {})[m["tf"]] = path

    def symbols(self) -> list[SymbolInfo]:
        return list(self._symbols.values())

    def symbol_info(self, symbol: str) -> SymbolInfo:
        try:
            return self._symbols[symbol]
        except KeyError:
            raise UnknownSymbolError(symbol) from None

    def has_candles(self, symbol: str, candle_type: str) -> bool:
        return bool(self._files.get(symbol, {}).get(candle_type))

    def stored_intervals(self, symbol: str, candle_type: str | None = None) -> list[str]:
        """Intervals with a file on disk, finest first (primary candle type by default)."""
        self.symbol_info(symbol)
        files = self._files[symbol].get(candle_type or self.candle_type, {})
        return sorted(files, key=INTERVAL_MS.__getitem__)

    def candles(self, symbol: str, interval: str, candle_type: str | None = None) -> Candles:
        """Candles of ``candle_type`` (default: the store's primary type; empty when no file
        of that type can provide ``interval``)."""
        target = interval_ms(interval)
        self.symbol_info(symbol)
        key = (symbol, candle_type or self.candle_type, interval)
        with self._lock:
            cached = self._cache.get(key)
            if cached is None:
                cached = self._build(self._files[symbol].get(key[1], {}), target)
                self._cache[key] = cached
        return cached

    def funding_rates(self, symbol: str) -> FundingRates:
        """Funding events from the ``-funding_rate`` file (none if there is no file)."""
        self.symbol_info(symbol)
        path = self._funding_files.get(symbol)
        if path is None:
            return NO_FUNDING
        with self._lock:
            cached = self._funding_cache.get(symbol)
            if cached is None:
                cached = _read_funding(path)
                self._funding_cache[symbol] = cached
        return cached

    @staticmethod
    def _build(files: dict[str, Path], target: int) -> Candles:
        for tf, path in files.items():
            if INTERVAL_MS[tf] == target:
                return _read_feather(path, target)
        finer = [tf for tf in files if target % INTERVAL_MS[tf] == 0 and INTERVAL_MS[tf] < target]
        if not finer:
            return Candles(np.empty(0, np.int64), np.empty((0, 5), np.float64), target)
        source = max(finer, key=INTERVAL_MS.__getitem__)
        return resample(_read_feather(files[source], INTERVAL_MS[source]), target)


def _read_feather(path: Path, interval: int) -> Candles:
    frame = pd.read_feather(path, columns=["date", "open", "high", "low", "close", "volume"])
    frame = frame.sort_values("date").drop_duplicates("date", keep="last")
    open_time = _to_ms(frame["date"])
    ohlcv = frame[["open", "high", "low", "close", "volume"]].to_numpy(dtype=np.float64)
    return Candles(open_time, ohlcv, interval)


def _to_ms(dates: pd.Series) -> npt.NDArray[np.int64]:
    naive_utc = pd.to_datetime(dates, utc=True).dt.tz_localize(None)
    return np.asarray(naive_utc.to_numpy("datetime64[ms]")).astype(np.int64)


def _read_funding(path: Path) -> FundingRates:
    frame = pd.read_feather(path)
    column = FUNDING_RATE if FUNDING_RATE in frame.columns else "open"  # legacy: rate in open
    frame = frame[["date", column]].dropna().sort_values("date").drop_duplicates("date")
    return FundingRates(_to_ms(frame["date"]), frame[column].to_numpy(dtype=np.float64))


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


class FuturesMarketData(MarketData, Protocol):
    """What the USDT-M futures (``/fapi``) handlers need on top of :class:`MarketData`."""

    def price_klines(
        self,
        symbol: str,
        interval: str,
        price: str,
        start_ms: int | None,
        end_ms: int | None,
        limit: int,
    ) -> Candles:
        """Mark / index / premium-index candles (``price`` in :data:`PRICE_CANDLE_TYPES`)."""
        ...

    def funding_history(
        self, symbol: str, start_ms: int | None, end_ms: int | None, limit: int
    ) -> FundingRates:
        """Funding events with ``/fapi/v1/fundingRate`` selection semantics."""
        ...

    def mark_price(self, symbol: str) -> float:
        """Current mark price (``/fapi/v1/premiumIndex``)."""
        ...

    def last_funding_rate(self, symbol: str) -> float:
        """The most recent funding rate (0 when there is no funding data)."""
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

    # -- futures (FuturesMarketData) -------------------------------------------------------
    def price_klines(
        self,
        symbol: str,
        interval: str,
        price: str,
        start_ms: int | None,
        end_ms: int | None,
        limit: int,
    ) -> Candles:
        """Stored ``-mark`` / ``-index`` / ``-premiumIndex`` candles. Without a file, mark and
        index candles are the contract's own candles (mark = last) and the premium index is 0
        at the contract's candle times."""
        if price not in PRICE_CANDLE_TYPES:
            raise ValueError(f"price must be one of {PRICE_CANDLE_TYPES}, not {price!r}")
        if self.store.has_candles(symbol, price):
            return self.store.candles(symbol, interval, price).select(start_ms, end_ms, limit)
        own = self.klines(symbol, interval, start_ms, end_ms, limit)
        if price == PREMIUM_INDEX:
            return Candles(own.open_time, np.zeros_like(own.ohlcv), own.interval_ms)
        return own

    def funding_history(
        self, symbol: str, start_ms: int | None, end_ms: int | None, limit: int
    ) -> FundingRates:
        return self.store.funding_rates(symbol).select(start_ms, end_ms, limit)

    def mark_price(self, symbol: str) -> float:
        marks = self.store.stored_intervals(symbol, MARK)
        if marks:
            candles = self.store.candles(symbol, marks[0], MARK)
            if len(candles):
                return float(candles.ohlcv[-1, 3])
        return self.last_price(symbol)

    def last_funding_rate(self, symbol: str) -> float:
        rates = self.store.funding_rates(symbol)
        return float(rates.rate[-1]) if len(rates) else 0.0
