"""What every endpoint handler gets: the parsed :class:`Request`, the :class:`ApiError` it may
raise (answered in Binance's error shape), and :class:`LoopbackApi`, the markets and account
behind the endpoints with the reads ``/api`` and ``/fapi`` share (symbol rules, order books,
klines, price and book tickers).

Handlers (:mod:`.spot_api`, :mod:`.futures_api`, :mod:`.account_api`, :mod:`.control_api`) are
functions ``(api, request) -> JSON`` listed in :mod:`.routes`; no HTTP in here.
This module must not import freqtrade.
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any

from .account import SpotAccount
from .book import Book, order_book
from .candles import (
    FUTURES,
    SPOT,
    Candles,
    FuturesMarketData,
    MarketData,
    UnknownIntervalError,
    UnknownSymbolError,
)
from .live import LiveFuturesMarketData, LiveMarketData
from .markets import JSON, book_ticker, kline_rows
from .rules import MarketRules, market_rules

KLINES_DEFAULT_LIMIT = 500
KLINES_MAX_LIMIT = 1000
FUTURES_KLINES_MAX_LIMIT = 1500
DAY_MS = 86_400_000

TickerRender = Callable[[MarketRules, Book, Candles, float], JSON]


class ApiError(Exception):
    """Answered as ``{"code": code, "msg": msg}`` with the given HTTP status."""

    def __init__(self, status: int, code: int, msg: str) -> None:
        super().__init__(msg)
        self.status = status
        self.code = code
        self.msg = msg


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    params: dict[str, str]
    body: Any = None  # decoded JSON body (control endpoints)

    def get(self, name: str) -> str | None:
        return self.params.get(name)

    def get_int(self, name: str) -> int | None:
        raw = self.params.get(name)
        if raw is None or raw == "":
            return None
        try:
            return int(raw)
        except ValueError:
            raise ApiError(400, -1100, f"Illegal characters found in parameter '{name}'.") from None

    def get_float(self, name: str) -> float | None:
        raw = self.params.get(name)
        if raw is None or raw == "":
            return None
        try:
            value = float(raw)
        except ValueError:
            value = math.nan
        if not math.isfinite(value):
            raise ApiError(400, -1100, f"Illegal characters found in parameter '{name}'.")
        return value

    def require(self, name: str) -> str:
        value = self.params.get(name)
        if not value:
            raise ApiError(
                400,
                -1102,
                f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed.",
            )
        return value


LiveView = LiveMarketData | LiveFuturesMarketData


def live_view(data: MarketData) -> LiveView | None:
    """The live market behind ``data`` (spot or its perpetuals view), None in replay mode."""
    return data if isinstance(data, LiveMarketData | LiveFuturesMarketData) else None


class LoopbackApi:
    """The state endpoints read: a spot :class:`MarketData`, optionally a USDT-M
    :class:`FuturesMarketData` and the private :class:`SpotAccount` (live mode), with the
    symbol rules cache and the reads several endpoints share (no HTTP in here). Without futures
    data ``/fapi`` lists no symbols and answers "Invalid symbol." for any."""

    def __init__(
        self,
        data: MarketData,
        futures: FuturesMarketData | None = None,
        account: SpotAccount | None = None,
    ) -> None:
        self.data = data
        self.futures = futures
        self.account = account
        self._rules: dict[tuple[str, str], MarketRules] = {}
        self._lock = threading.Lock()
        self._update_id = 0

    # -- markets -----------------------------------------------------------------------------
    def market(self, market: str) -> MarketData:
        if market == FUTURES:
            if self.futures is None:
                raise ApiError(400, -1121, "Invalid symbol.")
            return self.futures
        return self.data

    def futures_data(self) -> FuturesMarketData:
        if self.futures is None:
            raise ApiError(400, -1121, "Invalid symbol.")
        return self.futures

    def listed(self, market: str) -> list[str]:
        if market == FUTURES and self.futures is None:
            return []
        return [info.symbol for info in self.market(market).symbols()]

    def rules(self, symbol: str, market: str = SPOT) -> MarketRules:
        key = (market, symbol)
        try:
            with self._lock:
                cached = self._rules.get(key)
            if cached is None:
                cached = market_rules(self.market(market), symbol)
                with self._lock:
                    self._rules[key] = cached
            return cached
        except UnknownSymbolError:
            raise ApiError(400, -1121, "Invalid symbol.") from None

    def next_update_id(self) -> int:
        with self._lock:
            self._update_id += 1
            return self._update_id

    def requested_symbols(self, req: Request, market: str = SPOT) -> list[str]:
        """``symbol=X`` or ``symbols=["X","Y"]`` or (neither) every symbol."""
        single = req.get("symbol")
        if single:
            self.rules(single, market)
            return [single]
        many = req.get("symbols")
        if many:
            try:
                names = json.loads(many)
            except json.JSONDecodeError:
                names = None
            if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
                raise ApiError(400, -1100, "Illegal characters found in parameter 'symbols'.")
            for name in names:
                self.rules(name, market)
            return list(names)
        return self.listed(market)

    def book(self, symbol: str, levels: int, market: str = SPOT) -> tuple[MarketRules, Book]:
        """The order book around the last price, shaped by live mode's ``/_control/book``."""
        rules = self.rules(symbol, market)
        data = self.market(market)
        live = live_view(data)
        if live is not None:
            last, shape = live.quote(symbol)
            scale, spread = shape.depth_scale, shape.spread_bps
            return rules, order_book(rules, last, levels, depth_scale=scale, spread_bps=spread)
        return rules, order_book(rules, data.last_price(symbol), levels)

    def consistent(self, market: str = SPOT) -> AbstractContextManager[Any]:
        """Hold live mode's state lock while reading several symbols (one request's tickers),
        so a ``/_control/prices`` move is seen for all of them or none."""
        live = live_view(self.market(market))
        return live.locked() if live is not None else nullcontext()

    def list_limit(self, req: Request, default: int, maximum: int) -> int:
        limit = req.get_int("limit")
        return default if limit is None else max(1, min(limit, maximum))

    def klines_for(
        self, req: Request, market: str, *, symbol_param: str = "symbol", price: str | None = None
    ) -> list[list[Any]]:
        symbol = req.require(symbol_param)
        interval = req.require("interval")
        self.rules(symbol, market)
        maximum = KLINES_MAX_LIMIT if market == SPOT else FUTURES_KLINES_MAX_LIMIT
        limit = self.list_limit(req, KLINES_DEFAULT_LIMIT, maximum)
        start, end = req.get_int("startTime"), req.get_int("endTime")
        try:
            if price is None:
                candles = self.market(market).klines(symbol, interval, start, end, limit)
            else:
                candles = self.futures_data().price_klines(
                    symbol, interval, price, start, end, limit
                )
        except UnknownIntervalError:
            raise ApiError(400, -1120, "Invalid interval.") from None
        return kline_rows(candles)

    def ticker_prices_for(self, req: Request, market: str, with_time: bool) -> JSON | list[JSON]:
        data = self.market(market)
        prices: list[JSON] = []
        with self.consistent(market):
            for s in self.requested_symbols(req, market):
                entry: JSON = {"symbol": s, "price": f"{data.last_price(s):.8f}"}
                if with_time:
                    entry["time"] = data.server_time_ms()
                prices.append(entry)
        return prices[0] if req.get("symbol") else prices

    def tickers_24hr_for(
        self, req: Request, market: str, render: TickerRender
    ) -> JSON | list[JSON]:
        """24hr tickers of the requested symbols, ``render(rules, book, last day, last price)``
        (spot and futures payloads differ)."""
        data = self.market(market)
        tickers = []
        with self.consistent(market):
            for symbol in self.requested_symbols(req, market):
                rules, book = self.book(symbol, 1, market)
                last = data.last_price(symbol)
                day = data.recent_candles(symbol, DAY_MS)
                tickers.append(render(rules, book, day, last))
        return tickers[0] if req.get("symbol") else tickers

    def book_tickers_for(self, req: Request, market: str) -> JSON | list[JSON]:
        tickers = []
        with self.consistent(market):
            for s in self.requested_symbols(req, market):
                ticker = book_ticker(*self.book(s, 1, market))
                if market == FUTURES:
                    ticker["time"] = self.data.server_time_ms()
                tickers.append(ticker)
        return tickers[0] if req.get("symbol") else tickers

    # -- the private account (live mode) -----------------------------------------------------
    def private_account(self) -> SpotAccount:
        if self.account is None:
            raise ApiError(400, -1100, "Private endpoints need the live mode (--live).")
        return self.account

    def matched_account(self) -> SpotAccount:
        """The account after resting limit orders the live price has reached are filled."""
        account = self.private_account()
        account.match(self.data.last_price, self.data.server_time_ms())
        return account
