"""Live mode: the bundled candles replayed on the wall clock, with a controllable price.

:class:`LiveMarketData` implements :class:`~.candles.MarketData` (spot) for
``freqtrade trade --dry-run`` against the loopback exchange:

- each symbol's stored history (finest stored interval, e.g. 1h) is shifted by a whole number
  of intervals so that its **last stored candle ends where the current candle begins** (open
  time of the current candle = now floored to the interval, the real clock grid): every stored
  candle is served as a closed candle;
- ``/klines`` returns closed, contiguous candles followed by the in-progress one last (as
  Binance does; Freqtrade drops it), coarser intervals are aggregated from the shifted finest
  candles so they are wall-clock aligned too;
- the in-progress candle opens at the last stored close and follows the *current price*: its
  close is the price, its high / low include every price it has seen, its volume grows with the
  elapsed part of the interval (the mean volume of the last stored candles per full interval).
  When the clock crosses into the next interval the candle is closed and a new one opens at the
  current price (flat candles if nobody moves the price);
- the current price starts at the last stored close and is set with :meth:`set_price` or walked
  along a path with :meth:`walk` (``POST /_control/price``); several symbols move together with
  :meth:`set_prices` (``POST /_control/prices``), under one lock acquisition so no reader sees
  some moved and others not (:meth:`locked` gives readers a consistent multi-symbol view);
  tickers and order books are built around the price, so they move immediately;
- each symbol has a :class:`~.book.BookShape` (default: the normal book) set with
  :meth:`set_book` / :meth:`reset_book` (``POST /_control/book``): depth scale and spread of the
  order book the server builds around the price; it persists across price moves and is read
  together with the price by :meth:`quote`.

USDT-M perpetuals in live mode: :class:`LiveFuturesMarketData` is a
:class:`~.candles.FuturesMarketData` *view* of a :class:`LiveMarketData`: every USDT-quoted spot
symbol is also a perpetual (``BTC/USDT:USDT``, Binance id ``BTCUSDT`` too) whose contract price
is the same live price (one price per base asset: moving ``BTCUSDT`` moves both markets). Mark
and index price = that price (mark / index candles = the contract candles with no volume;
premium index 0), funding events every 8h on the UTC grid (00/08/16) with a constant rate, from
the first shifted candle up to now; the order book has the same :class:`~.book.BookShape`.

The clock is injectable (``clock`` returns epoch seconds) for deterministic tests.
This module must not import freqtrade.
"""

from __future__ import annotations

import collections
import math
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from .book import BookShape
from .candles import (
    INTERVAL_MS,
    PREMIUM_INDEX,
    PRICE_CANDLE_TYPES,
    Candles,
    CandleStore,
    FundingRates,
    SymbolInfo,
    UnknownSymbolError,
    interval_ms,
    resample,
)
from .derive import DEFAULT_FUNDING_RATE, funding_times

Clock = Callable[[], float]
VOLUME_WINDOW = 24  # live candles get the mean volume of the last stored candles


@dataclass
class _Live:
    """Mutable live state of one symbol (guarded by :attr:`LiveMarketData._lock`)."""

    base: Candles  # stored finest candles, shifted to end where the first live candle opens
    shift_ms: int
    volume: float  # volume of a full live candle
    price: float
    open_time: int  # of the in-progress candle
    ohlcv: list[float]  # of the in-progress candle (volume: see _live_volume)
    closed_times: list[int] = field(default_factory=list)  # candles closed while live
    closed_ohlcv: list[list[float]] = field(default_factory=list)
    path: collections.deque[tuple[int, float]] = field(default_factory=collections.deque)
    book: BookShape = field(default_factory=BookShape)


class LiveMarketData:
    """Spot :class:`~.candles.MarketData` on the wall clock (see the module docstring).

    Thread-safe. ``clock`` (epoch seconds, default :func:`time.time`) drives candle times;
    the history shift is fixed when a symbol is first used (or at construction for all).
    """

    def __init__(self, store: CandleStore, clock: Clock | None = None) -> None:
        self.store = store
        self.clock: Clock = clock if clock is not None else time.time
        self._lock = threading.RLock()
        self._state: dict[str, _Live] = {}
        for info in store.symbols():
            if store.stored_intervals(info.symbol):
                self._init_symbol(info.symbol)

    # -- internals -------------------------------------------------------------------------
    def now_ms(self) -> int:
        return int(self.clock() * 1000)

    def _finest_interval(self, symbol: str) -> str:
        intervals = self.store.stored_intervals(symbol)
        if not intervals:
            raise UnknownSymbolError(symbol)
        return intervals[0]

    def _init_symbol(self, symbol: str) -> _Live:
        stored = self.store.candles(symbol, self._finest_interval(symbol))
        if len(stored) == 0:
            raise UnknownSymbolError(symbol)
        step = stored.interval_ms
        current_open = self.now_ms() // step * step
        shift = current_open - step - int(stored.open_time[-1])
        base = Candles(stored.open_time + shift, stored.ohlcv, step)
        price = float(stored.ohlcv[-1, 3])
        volumes = stored.ohlcv[-VOLUME_WINDOW:, 4]
        state = _Live(
            base=base,
            shift_ms=shift,
            volume=float(volumes.mean()),
            price=price,
            open_time=current_open,
            ohlcv=[price, price, price, price, 0.0],
        )
        self._state[symbol] = state
        return state

    def _live(self, symbol: str) -> _Live:
        """The symbol's state advanced to now (caller holds the lock)."""
        state = self._state.get(symbol)
        if state is None:
            self.store.symbol_info(symbol)
            state = self._init_symbol(symbol)
        self._advance(state, self.now_ms())
        return state

    @staticmethod
    def _apply(state: _Live, price: float) -> None:
        state.price = price
        state.ohlcv[1] = max(state.ohlcv[1], price)
        state.ohlcv[2] = min(state.ohlcv[2], price)
        state.ohlcv[3] = price

    def _advance(self, state: _Live, now: int) -> None:
        """Apply due path points and close candles whose interval has ended, in time order."""
        step = state.base.interval_ms
        while True:
            boundary = state.open_time + step
            due = state.path[0][0] if state.path else None
            if due is not None and due <= now and due < boundary:
                self._apply(state, state.path.popleft()[1])
            elif boundary <= now:
                state.closed_times.append(state.open_time)
                state.closed_ohlcv.append([*state.ohlcv[:4], state.volume])
                p = state.price
                state.open_time = boundary
                state.ohlcv = [p, p, p, p, 0.0]
            else:
                return

    def _live_candle(self, state: _Live) -> list[float]:
        """The in-progress candle; its volume grows with the elapsed part of the interval."""
        step = state.base.interval_ms
        elapsed = min(max(self.now_ms() - state.open_time, 0), step)
        return [*state.ohlcv[:4], state.volume * elapsed / step]

    def _series(self, symbol: str) -> Candles:
        """Finest candles: shifted history, candles closed while live, the in-progress one."""
        with self._lock:
            state = self._live(symbol)
            extra_times = [*state.closed_times, state.open_time]
            extra = [*state.closed_ohlcv, self._live_candle(state)]
            base = state.base
        times = np.concatenate([base.open_time, np.asarray(extra_times, dtype=np.int64)])
        ohlcv = np.concatenate([base.ohlcv, np.asarray(extra, dtype=np.float64)])
        return Candles(times, ohlcv, base.interval_ms)

    # -- MarketData ------------------------------------------------------------------------
    def symbols(self) -> list[SymbolInfo]:
        return self.store.symbols()

    def symbol_info(self, symbol: str) -> SymbolInfo:
        return self.store.symbol_info(symbol)

    def klines(
        self, symbol: str, interval: str, start_ms: int | None, end_ms: int | None, limit: int
    ) -> Candles:
        target = interval_ms(interval)
        series = self._series(symbol)
        if target < series.interval_ms or target % series.interval_ms:
            # finer than (or not a multiple of) the stored data: nothing to serve
            return Candles(np.empty(0, np.int64), np.empty((0, 5), np.float64), target)
        return resample(series, target).select(start_ms, end_ms, limit)

    def last_price(self, symbol: str) -> float:
        with self._lock:
            return self._live(symbol).price

    def recent_candles(self, symbol: str, span_ms: int) -> Candles:
        series = self._series(symbol)
        end = int(series.open_time[-1])
        return series.select(end - span_ms + series.interval_ms, end, len(series))

    def price_sample(self, symbol: str) -> npt.NDArray[np.float64]:
        stored = self.store.candles(symbol, self._finest_interval(symbol))
        return stored.ohlcv[-2000:, :4].ravel()

    def first_open_ms(self, symbol: str) -> int:
        """Open time of the first (shifted) stored candle."""
        with self._lock:
            return int(self._live(symbol).base.open_time[0])

    def server_time_ms(self) -> int:
        return self.now_ms()

    # -- control ---------------------------------------------------------------------------
    def locked(self) -> AbstractContextManager[bool]:
        """Hold the state lock (re-entrant) for a consistent view across several reads, e.g.
        every symbol's ticker of one request: no :meth:`set_prices` lands in between."""
        return self._lock

    def quote(self, symbol: str) -> tuple[float, BookShape]:
        """The current price and book shape, read together."""
        with self._lock:
            state = self._live(symbol)
            return state.price, state.book

    def set_price(self, symbol: str, price: float) -> None:
        """Move the current price now (cancels a pending :meth:`walk`)."""
        self.walk(symbol, [price], 0.0)

    def set_prices(self, prices: Mapping[str, float]) -> None:
        """Move several symbols' current prices now, atomically: one lock acquisition, so no
        reader sees some moved and others not; every symbol is checked before any moves
        (cancels their pending walks)."""
        moves = {symbol: float(price) for symbol, price in prices.items()}
        if not moves:
            raise ValueError("prices must name at least one symbol")
        bad = sorted(s for s, p in moves.items() if not (math.isfinite(p) and p > 0))
        if bad:
            raise ValueError(f"prices must be positive numbers (not for {', '.join(bad)})")
        with self._lock:
            states = {symbol: self._live(symbol) for symbol in moves}  # unknown symbol: raise
            now = self.now_ms()
            for symbol, price in moves.items():
                state = states[symbol]
                state.path = collections.deque([(now, price)])
                self._advance(state, now)

    def set_book(
        self, symbol: str, depth_scale: float = 1.0, spread_bps: float | None = None
    ) -> BookShape:
        """Set the symbol's order-book shape (see :class:`~.book.BookShape`; replaces the
        whole shape, so an omitted argument is back to its default). Persists across price
        moves."""
        shape = BookShape(float(depth_scale), None if spread_bps is None else float(spread_bps))
        with self._lock:
            self._live(symbol).book = shape
        return shape

    def reset_book(self, symbol: str) -> None:
        """Back to the default order book."""
        self.set_book(symbol)

    def walk(self, symbol: str, path: Sequence[float], step_seconds: float) -> None:
        """Walk the price along ``path``: ``path[0]`` now, ``path[i]`` ``i * step_seconds``
        later (cancels a pending walk). Every point is seen by the candle of its time."""
        prices = [float(p) for p in path]
        if not prices or not all(np.isfinite(p) and p > 0 for p in prices):
            raise ValueError("path must be a non-empty list of positive prices")
        if step_seconds < 0 or not np.isfinite(step_seconds):
            raise ValueError("step_seconds must be >= 0")
        step = int(step_seconds * 1000)
        with self._lock:
            state = self._live(symbol)
            now = self.now_ms()
            state.path = collections.deque((now + i * step, p) for i, p in enumerate(prices))
            self._advance(state, now)

    def symbol_state(self, symbol: str) -> dict[str, Any]:
        with self._lock:
            state = self._live(symbol)
            o, h, lo, c, v = self._live_candle(state)
            return {
                "symbol": symbol,
                "price": state.price,
                "interval": _interval_name(state.base.interval_ms),
                "shift_ms": state.shift_ms,
                "candle": {
                    "open_time": state.open_time,
                    "close_time": state.open_time + state.base.interval_ms - 1,
                    "open": o,
                    "high": h,
                    "low": lo,
                    "close": c,
                    "volume": v,
                },
                "closed_live_candles": len(state.closed_times),
                "pending_path": [[t, p] for t, p in state.path],
                "book": state.book.as_json(),
            }

    def state(self) -> dict[str, Any]:
        """Everything the control endpoint reports (``GET /_control/state``)."""
        symbols = [info.symbol for info in self.symbols()]
        with self._lock:
            return {
                "mode": "live",
                "serverTime": self.now_ms(),
                "symbols": {s: self.symbol_state(s) for s in symbols},
            }


class LiveFuturesMarketData:
    """USDT-M perpetuals over a :class:`LiveMarketData` (see the module docstring): the same
    symbols (those quoted in ``quotes``) settled in their quote, the same candles and price.

    ``funding_rate`` is paid every 8h (positive: longs pay shorts). Thread-safe (all state is
    the spot view's).
    """

    def __init__(
        self,
        spot: LiveMarketData,
        funding_rate: float = DEFAULT_FUNDING_RATE,
        quotes: tuple[str, ...] = ("USDT",),
    ) -> None:
        if not math.isfinite(funding_rate):
            raise ValueError(f"funding_rate must be a finite number, got {funding_rate!r}")
        self.spot = spot
        self.funding_rate = float(funding_rate)
        self.quotes = quotes

    @staticmethod
    def _perpetual(info: SymbolInfo) -> SymbolInfo:
        return SymbolInfo(info.base, info.quote, info.quote)

    # -- MarketData ------------------------------------------------------------------------
    def symbols(self) -> list[SymbolInfo]:
        return [self._perpetual(i) for i in self.spot.symbols() if i.quote in self.quotes]

    def symbol_info(self, symbol: str) -> SymbolInfo:
        info = self.spot.symbol_info(symbol)
        if info.quote not in self.quotes:
            raise UnknownSymbolError(symbol)
        return self._perpetual(info)

    def klines(
        self, symbol: str, interval: str, start_ms: int | None, end_ms: int | None, limit: int
    ) -> Candles:
        self.symbol_info(symbol)
        return self.spot.klines(symbol, interval, start_ms, end_ms, limit)

    def last_price(self, symbol: str) -> float:
        self.symbol_info(symbol)
        return self.spot.last_price(symbol)

    def recent_candles(self, symbol: str, span_ms: int) -> Candles:
        return self.spot.recent_candles(symbol, span_ms)

    def price_sample(self, symbol: str) -> npt.NDArray[np.float64]:
        return self.spot.price_sample(symbol)

    def server_time_ms(self) -> int:
        return self.spot.server_time_ms()

    # -- FuturesMarketData -----------------------------------------------------------------
    def price_klines(
        self,
        symbol: str,
        interval: str,
        price: str,
        start_ms: int | None,
        end_ms: int | None,
        limit: int,
    ) -> Candles:
        """Mark and index candles = the contract candles without volume (Binance reports
        none); premium index candles are 0 at the same times."""
        if price not in PRICE_CANDLE_TYPES:
            raise ValueError(f"price must be one of {PRICE_CANDLE_TYPES}, not {price!r}")
        own = self.klines(symbol, interval, start_ms, end_ms, limit)
        ohlcv = np.zeros_like(own.ohlcv)
        if price != PREMIUM_INDEX:
            ohlcv[:, :4] = own.ohlcv[:, :4]
        return Candles(own.open_time, ohlcv, own.interval_ms)

    def funding_history(
        self, symbol: str, start_ms: int | None, end_ms: int | None, limit: int
    ) -> FundingRates:
        """Every 8h event from the first candle up to now, at :attr:`funding_rate`."""
        self.symbol_info(symbol)
        times = funding_times(self.spot.first_open_ms(symbol), self.spot.now_ms())
        rates = np.full(len(times), self.funding_rate, dtype=np.float64)
        return FundingRates(times.astype(np.int64), rates).select(start_ms, end_ms, limit)

    def mark_price(self, symbol: str) -> float:
        return self.last_price(symbol)

    def last_funding_rate(self, symbol: str) -> float:
        self.symbol_info(symbol)
        return self.funding_rate

    # -- live ------------------------------------------------------------------------------
    def locked(self) -> AbstractContextManager[bool]:
        return self.spot.locked()

    def quote(self, symbol: str) -> tuple[float, BookShape]:
        self.symbol_info(symbol)
        return self.spot.quote(symbol)


def _interval_name(ms: int) -> str:
    return next((name for name, value in INTERVAL_MS.items() if value == ms), f"{ms}ms")
