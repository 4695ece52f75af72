"""The loopback exchange: a standard-library HTTP server imitating Binance's public REST API.

Only what Freqtrade + ccxt's ``binance`` call for spot markets (``/api/v3``) and USDT-M
perpetuals (``/fapi``, served when the datadir has a Freqtrade ``futures/`` folder, see
:mod:`.derive`, and always in live mode) is answered (see :data:`ROUTES` and, live,
:data:`PRIVATE_ROUTES`); everything else gets Binance's error shape
with HTTP 404 and is logged to stderr, which is how missing endpoints are found. Binds
127.0.0.1 only. Usage::

    with LoopbackExchange("user_data/data/binance", port=0) as exchange:
        fetch(exchange.url + "/api/v3/exchangeInfo")

``live=True`` serves spot candles shifted to the wall clock (:class:`.live.LiveMarketData`,
for ``freqtrade trade``), every USDT-quoted symbol also as a USDT-M perpetual on the same price
(:class:`.live.LiveFuturesMarketData`: ``/fapi`` klines, mark / index / premium klines,
funding history on the 8h grid, premiumIndex, tickers, depth), a private spot API on one
in-memory account (:data:`PRIVATE_ROUTES`, :mod:`.account`: account, order, openOrders,
allOrders, myTrades; for ``freqtrade trade`` without ``--dry-run``) and the control endpoints
(see :data:`CONTROL_ROUTES`; 127.0.0.1 clients only, HTTP 400 outside live mode). A control
request's ``symbol`` may be ``BTCUSDT``, ``BTC/USDT`` or ``BTC/USDT:USDT`` (one price per
base asset moves both markets):

- ``POST /_control/price`` with ``{"symbol": "BTCUSDT", "price": 43000}`` or ``{"symbol": ...,
  "path": [p1, p2, ...], "step_seconds": s}``; answers the symbol's state;
- ``POST /_control/prices`` with ``{"prices": {"BTCUSDT": 41000, "ETH/USDT": 2100}}``: every
  symbol moves at once (one lock acquisition; multi-symbol tickers read under the same lock, so
  no poll sees some moved and others not); answers ``{"symbols": {symbol: state}}``;
- ``POST /_control/book`` with ``{"symbol": "BTCUSDT", "depth_scale": 0.01, "spread_bps": 25}``
  (both optional, omitted = default; the call replaces the whole shape) or ``{"symbol": ...,
  "reset": true}``: the shape of that symbol's order book (``/depth``, ``bookTicker``, 24hr
  bid/ask), kept across price moves; answers the symbol's state;
- ``GET /_control/state``: every symbol's price, in-progress candle, pending path and book shape;
- ``POST /_control/fees`` with ``{"report": false}`` (later fills charge and report no fee: no
  ``commission`` in ``fills`` nor ``myTrades``), ``{"report": true}`` and / or ``{"rate":
  0.001}``; answers ``{"report": ..., "rate": ...}``;
- ``POST /_control/balances`` with ``{"balances": {"USDT": 5000}}``: set free balances;
- ``GET /_control/account``: balances, fee setting, every order and trade of the account.

Prices are snapped to the symbol's tick. Bad requests answer HTTP 400 in Binance's error shape.

This module must not import freqtrade.
"""

from __future__ import annotations

import collections
import json
import math
import sys
import threading
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, TextIO
from urllib.parse import parse_qs, urlsplit

from .account import AccountError, SpotAccount
from .candles import (
    FUTURES,
    INDEX,
    MARK,
    PREMIUM_INDEX,
    SPOT,
    CandleStore,
    FuturesMarketData,
    MarketData,
    ReplayMarketData,
    UnknownIntervalError,
    UnknownSymbolError,
)
from .derive import DEFAULT_FUNDING_RATE
from .live import LiveFuturesMarketData, LiveMarketData
from .markets import (
    JSON,
    Book,
    MarketRules,
    book_ticker,
    depth_limit,
    depth_payload,
    exchange_info,
    funding_rate_rows,
    futures_exchange_info,
    futures_symbol_entry,
    futures_ticker_24hr,
    kline_rows,
    market_rules,
    next_funding_time,
    order_book,
    premium_index,
    symbol_entry,
    ticker_24hr,
)

HOST = "127.0.0.1"
DEFAULT_PORT = 18080
KLINES_DEFAULT_LIMIT = 500
KLINES_MAX_LIMIT = 1000
FUTURES_KLINES_MAX_LIMIT = 1500
FUNDING_DEFAULT_LIMIT = 100
FUNDING_MAX_LIMIT = 1000
FUNDING_INTERVAL_MS = 8 * 3_600_000
DAY_MS = 86_400_000


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


Handler = Callable[["LoopbackApi", Request], Any]


def symbol_id(name: str) -> str:
    """Binance's market id of a control request's symbol: ``BTCUSDT``, ``BTC/USDT`` and the
    perpetual ``BTC/USDT:USDT`` all name ``BTCUSDT`` (one live price per base asset).

    >>> [symbol_id(s) for s in ("BTCUSDT", "BTC/USDT", "BTC/USDT:USDT")]
    ['BTCUSDT', 'BTCUSDT', 'BTCUSDT']
    """
    return name.split(":", 1)[0].replace("/", "")


LiveView = LiveMarketData | LiveFuturesMarketData


def live_view(data: MarketData) -> LiveView | None:
    """The live market behind ``data`` (spot or its perpetuals view), None in replay mode."""
    return data if isinstance(data, LiveMarketData | LiveFuturesMarketData) else None


class LoopbackApi:
    """Endpoint implementations over a spot :class:`MarketData` and, optionally, a USDT-M
    :class:`FuturesMarketData` (no HTTP in here). Without futures data ``/fapi`` lists no
    symbols and answers "Invalid symbol." for any."""

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

    # -- helpers ---------------------------------------------------------------------------
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

    def _limit(self, req: Request, default: int, maximum: int) -> int:
        limit = req.get_int("limit")
        return default if limit is None else max(1, min(limit, maximum))

    def _klines(
        self, req: Request, market: str, *, symbol_param: str = "symbol", price: str | None = None
    ) -> list[list[Any]]:
        symbol = req.require(symbol_param)
        interval = req.require("interval")
        self.rules(symbol, market)
        maximum = KLINES_MAX_LIMIT if market == SPOT else FUTURES_KLINES_MAX_LIMIT
        limit = self._limit(req, KLINES_DEFAULT_LIMIT, maximum)
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

    def _ticker_price(self, req: Request, market: str, with_time: bool) -> JSON | list[JSON]:
        data = self.market(market)
        prices: list[JSON] = []
        with self.consistent(market):
            for s in self.requested_symbols(req, market):
                entry: JSON = {"symbol": s, "price": f"{data.last_price(s):.8f}"}
                if with_time:
                    entry["time"] = data.server_time_ms()
                prices.append(entry)
        return prices[0] if req.get("symbol") else prices

    def _book_ticker(self, req: Request, market: str) -> JSON | list[JSON]:
        tickers = []
        with self.consistent(market):
            for s in self.requested_symbols(req, market):
                ticker = book_ticker(*self.book(s, 1, market))
                if market == FUTURES:
                    ticker["time"] = self.data.server_time_ms()
                tickers.append(ticker)
        return tickers[0] if req.get("symbol") else tickers

    # -- spot endpoints ----------------------------------------------------------------------
    def ping(self, req: Request) -> JSON:
        return {}

    def time(self, req: Request) -> JSON:
        return {"serverTime": self.data.server_time_ms()}

    def spot_exchange_info(self, req: Request) -> JSON:
        entries = [symbol_entry(self.rules(s)) for s in self.requested_symbols(req)]
        return exchange_info(self.data.server_time_ms(), entries)

    def derivatives_exchange_info(self, req: Request) -> JSON:
        """``/dapi/v1/exchangeInfo``: no COIN-M markets."""
        payload = exchange_info(self.data.server_time_ms(), [])
        payload["assets"] = []
        return payload

    def klines(self, req: Request) -> list[list[Any]]:
        return self._klines(req, SPOT)

    def depth(self, req: Request) -> JSON:
        symbol = req.require("symbol")
        rules, book = self.book(symbol, depth_limit(req.get_int("limit")))
        return depth_payload(book, self.next_update_id(), rules)

    def ticker_24hr(self, req: Request) -> JSON | list[JSON]:
        tickers = []
        with self.consistent():
            for symbol in self.requested_symbols(req):
                rules, book = self.book(symbol, 1)
                last = self.data.last_price(symbol)
                day = self.data.recent_candles(symbol, DAY_MS)
                tickers.append(ticker_24hr(rules, book, day, last))
        return tickers[0] if req.get("symbol") else tickers

    def ticker_price(self, req: Request) -> JSON | list[JSON]:
        return self._ticker_price(req, SPOT, with_time=False)

    def book_ticker(self, req: Request) -> JSON | list[JSON]:
        return self._book_ticker(req, SPOT)

    # -- USDT-M futures endpoints (/fapi) ----------------------------------------------------
    def futures_exchange_info(self, req: Request) -> JSON:
        entries = []
        if self.futures is not None:
            for symbol in self.listed(FUTURES):
                first = self.futures.klines(symbol, "1d", 0, None, 1)
                onboard = int(first.open_time[0]) if len(first) else 0
                entries.append(futures_symbol_entry(self.rules(symbol, FUTURES), onboard))
        return futures_exchange_info(self.data.server_time_ms(), entries)

    def futures_klines(self, req: Request) -> list[list[Any]]:
        return self._klines(req, FUTURES)

    def futures_continuous_klines(self, req: Request) -> list[list[Any]]:
        contract = req.require("contractType")
        if contract != "PERPETUAL":
            raise ApiError(400, -4112, f"Invalid contractType {contract} (loopback: PERPETUAL).")
        return self._klines(req, FUTURES, symbol_param="pair")

    def futures_mark_klines(self, req: Request) -> list[list[Any]]:
        return self._klines(req, FUTURES, price=MARK)

    def futures_index_klines(self, req: Request) -> list[list[Any]]:
        return self._klines(req, FUTURES, symbol_param="pair", price=INDEX)

    def futures_premium_index_klines(self, req: Request) -> list[list[Any]]:
        return self._klines(req, FUTURES, price=PREMIUM_INDEX)

    def futures_funding_rate(self, req: Request) -> list[JSON]:
        data = self.futures_data()
        limit = self._limit(req, FUNDING_DEFAULT_LIMIT, FUNDING_MAX_LIMIT)
        start, end = req.get_int("startTime"), req.get_int("endTime")
        symbol = req.get("symbol")
        rows: list[JSON] = []
        for s in [symbol] if symbol else self.listed(FUTURES):
            self.rules(s, FUTURES)
            rates = data.funding_history(s, start, end, limit)
            marks: dict[int, float] = {}
            if len(rates):
                candles = data.price_klines(
                    s, "1h", MARK, int(rates.time[0]), int(rates.time[-1]), FUNDING_MAX_LIMIT * 8
                )
                marks = dict(
                    zip(candles.open_time.tolist(), candles.ohlcv[:, 0].tolist(), strict=True)
                )
            rows.extend(funding_rate_rows(s, rates, marks))
        if not symbol:
            rows.sort(key=lambda r: (r["fundingTime"], r["symbol"]))
            rows = rows[:limit] if start is not None else rows[-limit:]
        return rows

    def futures_premium_index(self, req: Request) -> JSON | list[JSON]:
        data = self.futures_data()
        now = data.server_time_ms()
        with self.consistent(FUTURES):
            entries = [
                premium_index(
                    s,
                    data.mark_price(s),
                    data.last_funding_rate(s),
                    now,
                    next_funding_time(now, FUNDING_INTERVAL_MS),
                )
                for s in self.requested_symbols(req, FUTURES)
            ]
        return entries[0] if req.get("symbol") else entries

    def futures_depth(self, req: Request) -> JSON:
        symbol = req.require("symbol")
        rules, book = self.book(symbol, depth_limit(req.get_int("limit")), FUTURES)
        payload = depth_payload(book, self.next_update_id(), rules)
        now = self.data.server_time_ms()
        return {"lastUpdateId": payload["lastUpdateId"], "E": now, "T": now} | payload

    def futures_ticker_24hr(self, req: Request) -> JSON | list[JSON]:
        data = self.futures_data()
        tickers = []
        with self.consistent(FUTURES):
            for symbol in self.requested_symbols(req, FUTURES):
                rules, book = self.book(symbol, 1, FUTURES)
                last = data.last_price(symbol)
                day = data.recent_candles(symbol, DAY_MS)
                tickers.append(futures_ticker_24hr(rules, book, day, last))
        return tickers[0] if req.get("symbol") else tickers

    def futures_ticker_price(self, req: Request) -> JSON | list[JSON]:
        return self._ticker_price(req, FUTURES, with_time=True)

    def futures_book_ticker(self, req: Request) -> JSON | list[JSON]:
        return self._book_ticker(req, FUTURES)

    # -- control (live mode only) ------------------------------------------------------------
    def live_data(self) -> LiveMarketData:
        if not isinstance(self.data, LiveMarketData):
            raise ApiError(400, -1100, "Control endpoints need the live mode (--live).")
        return self.data

    def control_state(self, req: Request) -> JSON:
        return self.live_data().state()

    def control_price(self, req: Request) -> JSON:
        """``{"symbol": "BTCUSDT" | "BTC/USDT", "price": p}`` or ``{"symbol": ..., "path":
        [p, ...], "step_seconds": s}``; prices are snapped to the symbol's tick."""
        data = self.live_data()
        body = req.body if isinstance(req.body, dict) else {}
        symbol = body.get("symbol") or req.get("symbol")
        if not isinstance(symbol, str) or not symbol:
            raise ApiError(400, -1102, "Mandatory parameter 'symbol' was not sent.")
        symbol = symbol_id(symbol)
        rules = self.rules(symbol)
        raw = body.get("path") if "path" in body else [body.get("price", req.get("price"))]
        try:
            if not isinstance(raw, list):
                raise TypeError("path must be a list")
            path = [float(p) for p in raw]
            step = float(body.get("step_seconds", 0.0))
            path = [max(rules.tick, rules.round_price(p)) if p > 0 else p for p in path]
            data.walk(symbol, path, step)
        except (TypeError, ValueError) as err:
            raise ApiError(400, -1100, f"Bad price control request: {err}") from None
        return data.symbol_state(symbol)

    @staticmethod
    def snap_price(rules: MarketRules, price: float) -> float:
        """A positive price on the symbol's tick grid (at least one tick); others unchanged."""
        return max(rules.tick, rules.round_price(price)) if price > 0 else price

    def snapped_prices(self, prices: Mapping[str, Any]) -> dict[str, float]:
        """``{"BTCUSDT" | "BTC/USDT": price}`` -> ``{"BTCUSDT": snapped price}``; ApiError 400
        for a bad price (naming ``prices``) or an unknown symbol ("Invalid symbol.")."""
        moves: dict[str, float] = {}
        for name, value in prices.items():
            if not isinstance(name, str) or not name:
                raise ApiError(400, -1100, "Bad prices control request: empty symbol in 'prices'.")
            symbol = symbol_id(name)
            rules = self.rules(symbol)
            price = _number(value)
            if price is None or price <= 0:
                raise ApiError(
                    400,
                    -1100,
                    f"Bad prices control request: 'prices' needs a positive number for {name}, "
                    f"got {value!r}.",
                )
            if symbol in moves:
                raise ApiError(
                    400, -1100, f"Bad prices control request: 'prices' names {symbol} twice."
                )
            moves[symbol] = self.snap_price(rules, price)
        return moves

    def control_prices(self, req: Request) -> JSON:
        """``{"prices": {"BTCUSDT" | "BTC/USDT": p, ...}}``: all symbols move at once (snapped
        to their ticks); answers ``{"symbols": {symbol: state}}`` of the moved symbols."""
        data = self.live_data()
        body = req.body if isinstance(req.body, dict) else {}
        if body.get("prices") is None:
            raise ApiError(
                400,
                -1102,
                "Mandatory parameter 'prices' was not sent, was empty/null, or malformed.",
            )
        _reject_unknown_fields(body, {"prices"}, "prices")
        raw = body["prices"]
        if not isinstance(raw, dict) or not raw:
            raise ApiError(
                400,
                -1100,
                "Bad prices control request: 'prices' must be a non-empty object "
                '{"BTCUSDT": price, ...}.',
            )
        moves = self.snapped_prices(raw)
        with data.locked():
            try:
                data.set_prices(moves)
            except (TypeError, ValueError) as err:
                raise ApiError(400, -1100, f"Bad prices control request: {err}") from None
            return {"symbols": {s: data.symbol_state(s) for s in moves}}

    def control_book(self, req: Request) -> JSON:
        """``{"symbol": ..., "depth_scale": x, "spread_bps": b}`` (both optional; the call
        replaces the whole shape) or ``{"symbol": ..., "reset": true}``; answers the symbol's
        state (with its ``book`` shape)."""
        data = self.live_data()
        body = req.body if isinstance(req.body, dict) else {}
        symbol = body.get("symbol") or req.get("symbol")
        if not isinstance(symbol, str) or not symbol:
            raise ApiError(400, -1102, "Mandatory parameter 'symbol' was not sent.")
        _reject_unknown_fields(body, {"symbol", "depth_scale", "spread_bps", "reset"}, "book")
        symbol = symbol_id(symbol)
        self.rules(symbol)
        reset = body.get("reset", False)
        if not isinstance(reset, bool):
            raise ApiError(400, -1100, "Bad book control request: 'reset' must be true or false.")
        shaped = [k for k in ("depth_scale", "spread_bps") if body.get(k) is not None]
        if reset and shaped:
            raise ApiError(
                400,
                -1100,
                f"Bad book control request: 'reset' cannot be combined with {', '.join(shaped)}.",
            )
        depth_scale = _number(body.get("depth_scale", 1.0))
        if depth_scale is None:
            raise ApiError(400, -1100, "Bad book control request: 'depth_scale' must be a number.")
        raw_spread = body.get("spread_bps")
        spread_bps = None if raw_spread is None else _number(raw_spread)
        if raw_spread is not None and spread_bps is None:
            raise ApiError(400, -1100, "Bad book control request: 'spread_bps' must be a number.")
        try:
            data.set_book(symbol, depth_scale, spread_bps)
        except ValueError as err:
            raise ApiError(400, -1100, f"Bad book control request: {err}") from None
        return data.symbol_state(symbol)

    def control_account(self, req: Request) -> JSON:
        """Balances, fee setting, every order and trade of the private spot account."""
        return self._matched().state()

    def control_fees(self, req: Request) -> JSON:
        """``{"report": false}`` (no fee charged nor reported on later fills) / ``{"report":
        true}`` and / or ``{"rate": 0.001}``; answers ``{"report": ..., "rate": ...}``."""
        account = self.private_account()
        body = req.body if isinstance(req.body, dict) else {}
        _reject_unknown_fields(body, {"report", "rate"}, "fees")
        if not body:
            raise ApiError(400, -1102, "Bad fees control request: send 'report' and/or 'rate'.")
        report = body.get("report")
        if report is not None and not isinstance(report, bool):
            raise ApiError(400, -1100, "Bad fees control request: 'report' must be true or false.")
        raw_rate = body.get("rate")
        rate = None if raw_rate is None else _number(raw_rate)
        if raw_rate is not None and rate is None:
            raise ApiError(400, -1100, "Bad fees control request: 'rate' must be a number.")
        try:
            return account.set_fees(report=report, rate=rate)
        except ValueError as err:
            raise ApiError(400, -1100, f"Bad fees control request: {err}") from None

    def control_balances(self, req: Request) -> JSON:
        """``{"balances": {"USDT": 5000, "BTC": 0}}``: set free balances; answers the account."""
        account = self.private_account()
        body = req.body if isinstance(req.body, dict) else {}
        _reject_unknown_fields(body, {"balances"}, "balances")
        raw = body.get("balances")
        if not isinstance(raw, dict) or not raw:
            raise ApiError(
                400,
                -1102,
                "Bad balances control request: 'balances' must be a non-empty object "
                '{"USDT": amount, ...}.',
            )
        amounts: dict[str, float] = {}
        for asset, value in raw.items():
            amount = _number(value)
            if amount is None:
                raise ApiError(
                    400, -1100, f"Bad balances control request: {asset!r} needs a number."
                )
            amounts[asset] = amount
        try:
            account.set_balances(amounts)
        except ValueError as err:
            raise ApiError(400, -1100, f"Bad balances control request: {err}") from None
        return account.state()

    # -- private spot endpoints (live mode) --------------------------------------------------
    def private_account(self) -> SpotAccount:
        if self.account is None:
            raise ApiError(400, -1100, "Private endpoints need the live mode (--live).")
        return self.account

    def _matched(self) -> SpotAccount:
        """The account after resting limit orders the live price has reached are filled."""
        account = self.private_account()
        account.match(self.data.last_price, self.data.server_time_ms())
        return account

    def spot_account_info(self, req: Request) -> JSON:
        account = self._matched()
        assets = sorted({a for i in self.data.symbols() for a in (i.base, i.quote)})
        omit = (req.get("omitZeroBalances") or "").lower() == "true"
        return account.account_payload(self.data.server_time_ms(), assets, omit)

    def new_order(self, req: Request) -> JSON:
        account = self._matched()
        symbol = req.require("symbol")
        rules = self.rules(symbol)
        order = account.place(
            rules,
            side=req.require("side"),
            order_type=req.require("type"),
            quantity=req.get_float("quantity"),
            quote_qty=req.get_float("quoteOrderQty"),
            price=req.get_float("price"),
            time_in_force=req.get("timeInForce"),
            client_order_id=req.get("newClientOrderId"),
            last=self.data.last_price(symbol),
            now=self.data.server_time_ms(),
        )
        resp_type = (req.get("newOrderRespType") or "FULL").upper()
        return order.response(resp_type if resp_type in ("ACK", "RESULT") else "FULL")

    def query_order(self, req: Request) -> JSON:
        account = self._matched()
        symbol = req.require("symbol")
        self.rules(symbol)
        order = account.find(symbol, req.get_int("orderId"), req.get("origClientOrderId"))
        return order.as_json()

    def cancel_order(self, req: Request) -> JSON:
        account = self._matched()
        symbol = req.require("symbol")
        self.rules(symbol)
        order = account.cancel(
            symbol,
            req.get_int("orderId"),
            req.get("origClientOrderId"),
            self.data.server_time_ms(),
        )
        return order.response("RESULT")

    def open_orders(self, req: Request) -> list[JSON]:
        account = self._matched()
        symbol = req.get("symbol")
        if symbol:
            self.rules(symbol)
        return [o.as_json() for o in account.open_orders(symbol or None)]

    def cancel_open_orders(self, req: Request) -> list[JSON]:
        account = self._matched()
        symbol = req.require("symbol")
        self.rules(symbol)
        now = self.data.server_time_ms()
        return [
            account.cancel(symbol, o.order_id, None, now).response("RESULT")
            for o in account.open_orders(symbol)
        ]

    def all_orders(self, req: Request) -> list[JSON]:
        account = self._matched()
        symbol = req.require("symbol")
        self.rules(symbol)
        orders = account.orders(
            symbol,
            from_id=req.get_int("orderId"),
            start_ms=req.get_int("startTime"),
            end_ms=req.get_int("endTime"),
            limit=req.get_int("limit"),
        )
        return [o.as_json() for o in orders]

    def my_trades(self, req: Request) -> list[JSON]:
        account = self._matched()
        symbol = req.require("symbol")
        self.rules(symbol)
        fills = account.trades(
            symbol,
            order_id=req.get_int("orderId"),
            from_id=req.get_int("fromId"),
            start_ms=req.get_int("startTime"),
            end_ms=req.get_int("endTime"),
            limit=req.get_int("limit"),
        )
        return [f.as_trade() for f in fills]

    def margin_pairs(self, req: Request) -> list[JSON]:
        """``/sapi/v1/margin/(isolated/)allPairs``: ccxt loads them with spot markets once it
        has an API key; the loopback account has no margin trading."""
        self.private_account()
        return []

    def delist_schedule(self, req: Request) -> list[JSON]:
        """``/sapi/v1/spot/delist-schedule`` (Freqtrade's ``DelistFilter`` and
        ``dp.check_delisting`` ask for it in live mode): nothing delists."""
        self.private_account()
        return []


def _number(value: Any) -> float | None:
    """A finite JSON number (or numeric string) as float; None for anything else (bools too)."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _reject_unknown_fields(body: Mapping[str, Any], known: set[str], what: str) -> None:
    unknown = sorted(set(body) - known)
    if unknown:
        raise ApiError(
            400,
            -1100,
            f"Bad {what} control request: unknown field(s) {', '.join(map(repr, unknown))} "
            f"(known: {', '.join(map(repr, sorted(known)))}).",
        )


ROUTES: dict[str, Handler] = {
    "/api/v3/ping": LoopbackApi.ping,
    "/api/v3/time": LoopbackApi.time,
    "/api/v3/exchangeInfo": LoopbackApi.spot_exchange_info,
    "/api/v3/klines": LoopbackApi.klines,
    "/api/v3/uiKlines": LoopbackApi.klines,
    "/api/v3/depth": LoopbackApi.depth,
    "/api/v3/ticker/24hr": LoopbackApi.ticker_24hr,
    "/api/v3/ticker/price": LoopbackApi.ticker_price,
    "/api/v3/ticker/bookTicker": LoopbackApi.book_ticker,
    "/fapi/v1/ping": LoopbackApi.ping,
    "/fapi/v1/time": LoopbackApi.time,
    "/fapi/v1/exchangeInfo": LoopbackApi.futures_exchange_info,
    "/fapi/v1/klines": LoopbackApi.futures_klines,
    "/fapi/v1/continuousKlines": LoopbackApi.futures_continuous_klines,
    "/fapi/v1/markPriceKlines": LoopbackApi.futures_mark_klines,
    "/fapi/v1/indexPriceKlines": LoopbackApi.futures_index_klines,
    "/fapi/v1/premiumIndexKlines": LoopbackApi.futures_premium_index_klines,
    "/fapi/v1/fundingRate": LoopbackApi.futures_funding_rate,
    "/fapi/v1/premiumIndex": LoopbackApi.futures_premium_index,
    "/fapi/v1/depth": LoopbackApi.futures_depth,
    "/fapi/v1/ticker/24hr": LoopbackApi.futures_ticker_24hr,
    "/fapi/v1/ticker/price": LoopbackApi.futures_ticker_price,
    "/fapi/v2/ticker/price": LoopbackApi.futures_ticker_price,
    "/fapi/v1/ticker/bookTicker": LoopbackApi.futures_book_ticker,
    "/dapi/v1/exchangeInfo": LoopbackApi.derivatives_exchange_info,
}

# Test hooks, live mode only, answered to 127.0.0.1 clients only: (method, path) -> handler.
CONTROL_ROUTES: dict[tuple[str, str], Handler] = {
    ("GET", "/_control/state"): LoopbackApi.control_state,
    ("POST", "/_control/price"): LoopbackApi.control_price,
    ("POST", "/_control/prices"): LoopbackApi.control_prices,
    ("POST", "/_control/book"): LoopbackApi.control_book,
    ("GET", "/_control/account"): LoopbackApi.control_account,
    ("POST", "/_control/fees"): LoopbackApi.control_fees,
    ("POST", "/_control/balances"): LoopbackApi.control_balances,
}

# The private spot API (live mode only; signatures and API keys are not checked):
# (method, path) -> handler. See :mod:`.account`.
PRIVATE_ROUTES: dict[tuple[str, str], Handler] = {
    ("GET", "/api/v3/account"): LoopbackApi.spot_account_info,
    ("POST", "/api/v3/order"): LoopbackApi.new_order,
    ("GET", "/api/v3/order"): LoopbackApi.query_order,
    ("DELETE", "/api/v3/order"): LoopbackApi.cancel_order,
    ("GET", "/api/v3/openOrders"): LoopbackApi.open_orders,
    ("DELETE", "/api/v3/openOrders"): LoopbackApi.cancel_open_orders,
    ("GET", "/api/v3/allOrders"): LoopbackApi.all_orders,
    ("GET", "/api/v3/myTrades"): LoopbackApi.my_trades,
    ("GET", "/sapi/v1/spot/delist-schedule"): LoopbackApi.delist_schedule,
    ("GET", "/sapi/v1/margin/allPairs"): LoopbackApi.margin_pairs,
    ("GET", "/sapi/v1/margin/isolated/allPairs"): LoopbackApi.margin_pairs,
}


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], exchange: LoopbackExchange) -> None:
        self.exchange = exchange
        super().__init__(address, _RequestHandler)


class _RequestHandler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "loopback-binance/1.0"
    protocol_version = "HTTP/1.0"

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def _dispatch(self, method: str) -> None:
        exchange = self.server.exchange
        parts = urlsplit(self.path)
        params = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        handler = ROUTES.get(parts.path) if method == "GET" else None
        body: Any = None
        try:
            if parts.path.startswith("/_control/"):
                handler = CONTROL_ROUTES.get((method, parts.path))
                if self.client_address[0] != HOST:
                    raise ApiError(403, -1100, "Control endpoints are loopback only.")
                body = self._json_body()
            else:
                handler = handler or PRIVATE_ROUTES.get((method, parts.path))
                params |= self._form_body()  # ccxt sends private POST parameters in the body
            req = Request(method, parts.path, params, body)
            exchange.record(req)
            if handler is None:
                exchange.log(f"unknown endpoint: {method} {self.path}")
                raise ApiError(404, -1100, f"Unknown endpoint {method} {parts.path} (loopback).")
            body = handler(exchange.api, req)
            status = 200
        except ApiError as err:
            status, body = err.status, {"code": err.code, "msg": err.msg}
        except AccountError as err:
            status, body = 400, {"code": err.code, "msg": err.msg}
        except Exception as err:  # a bug in the mock must not kill the client's request
            exchange.log(f"error serving {method} {self.path}: {err!r}")
            status, body = 500, {"code": -1000, "msg": f"loopback internal error: {err}"}
        payload = json.dumps(body, separators=(",", ":")).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json;charset=UTF-8")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _json_body(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        if length <= 0:
            return None
        try:
            return json.loads(self.rfile.read(length))
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise ApiError(400, -1100, "Body must be JSON.") from None

    def _form_body(self) -> dict[str, str]:
        length = int(self.headers.get("Content-Length") or 0)
        if length <= 0:
            return {}
        raw = self.rfile.read(length).decode("utf-8", errors="replace")
        return {k: v[-1] for k, v in parse_qs(raw, keep_blank_values=True).items()}

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.exchange.log_requests:
            self.server.exchange.log(format % args)


class LoopbackExchange:
    """A running (after :meth:`start`) loopback Binance on 127.0.0.1.

    ``datadir`` is a Freqtrade datadir: spot markets come from ``<datadir>/*.feather`` and,
    when ``<datadir>/futures/`` holds ``*-futures.feather`` files, USDT-M perpetuals from there
    (:func:`.derive.derive_futures` writes such a folder from spot data). ``data`` /
    ``futures_data`` replace either source. ``port=0`` picks a free port; :attr:`port` /
    :attr:`url` tell which. ``requests`` keeps the last few thousand requests (method, path,
    params) for tests and diagnostics.

    ``live=True`` serves spot markets on the wall clock (:class:`.live.LiveMarketData`; the
    history is shifted to end where the current, in-progress candle begins) with a price set through
    :meth:`set_price` / ``POST /_control/price`` (several at once: :meth:`set_prices` /
    ``POST /_control/prices``) and an order-book shape set through :meth:`set_book` /
    :meth:`reset_book` / ``POST /_control/book``. Live mode also serves every USDT-quoted
    symbol as a USDT-M perpetual on the same live price (:class:`.live.LiveFuturesMarketData`,
    funding ``funding_rate`` every 8h) unless ``futures_data`` is given, and a private spot API
    on one in-memory account (``account``, default a fresh :class:`.account.SpotAccount`: 100000
    USDT, 0.1% fees reported; see :mod:`.account`). Replay (historical timestamps) is the
    default.
    """

    def __init__(
        self,
        datadir: Path | str | None = None,
        port: int = DEFAULT_PORT,
        *,
        data: MarketData | None = None,
        futures_data: FuturesMarketData | None = None,
        log_requests: bool = False,
        log_stream: TextIO | None = None,
        live: bool = False,
        funding_rate: float = DEFAULT_FUNDING_RATE,
        account: SpotAccount | None = None,
    ) -> None:
        if data is None:
            if datadir is None:
                raise ValueError("give a datadir or a MarketData")
            store = CandleStore(datadir)
            data = LiveMarketData(store) if live else ReplayMarketData(store)
        if futures_data is None and isinstance(data, LiveMarketData):
            futures_data = LiveFuturesMarketData(data, funding_rate)
        elif futures_data is None and datadir is not None and not live:
            store = CandleStore(datadir, FUTURES)
            if store.symbols():
                futures_data = ReplayMarketData(store)
        if account is None and isinstance(data, LiveMarketData):
            account = SpotAccount()
        if not data.symbols() and (futures_data is None or not futures_data.symbols()):
            raise ValueError(
                f"no <BASE>_<QUOTE>-<tf>.feather files (nor futures/*-futures.feather) in {datadir}"
            )
        self.data = data
        self.futures_data = futures_data
        self.account = account
        self.api = LoopbackApi(data, futures_data, account)
        self.requested_port = port
        self.log_requests = log_requests
        self._log_stream = log_stream
        self.requests: collections.deque[Request] = collections.deque(maxlen=10_000)
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> LoopbackExchange:
        if self._httpd is not None:
            return self
        self._httpd = _Server((HOST, self.requested_port), self)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.1},
            name=f"loopback-exchange-{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        httpd, thread = self._httpd, self._thread
        if httpd is None:
            return
        httpd.shutdown()
        httpd.server_close()
        if thread is not None:
            thread.join(timeout=5)
        self._httpd = self._thread = None

    def __enter__(self) -> LoopbackExchange:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._httpd is not None

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("loopback exchange is not running")
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def live(self) -> bool:
        return isinstance(self.data, LiveMarketData)

    def set_price(self, symbol: str, price: float) -> None:
        """Live mode: move ``symbol``'s (``BTCUSDT``, ``BTC/USDT`` or ``BTC/USDT:USDT``: spot
        and perpetual share the price) current price now (snapped to the tick, like
        ``POST /_control/price``)."""
        if not isinstance(self.data, LiveMarketData):
            raise RuntimeError("set_price needs live=True")
        symbol = symbol_id(symbol)
        rules = self.api.rules(symbol)
        self.data.set_price(symbol, max(rules.tick, rules.round_price(price)))

    def set_prices(self, prices: Mapping[str, float]) -> None:
        """Live mode: move several symbols (``BTCUSDT`` or ``BTC/USDT`` keys) at once, snapped
        to their ticks, like ``POST /_control/prices`` (same :class:`ApiError` on a bad price
        or an unknown symbol); nothing moves unless every entry is valid."""
        self._live_data("set_prices").set_prices(self.api.snapped_prices(prices))

    def set_book(
        self, symbol: str, depth_scale: float = 1.0, spread_bps: float | None = None
    ) -> None:
        """Live mode: shape ``symbol``'s order book like ``POST /_control/book``: quantities
        times ``depth_scale`` (> 0), best bid / ask ``spread_bps`` apart (>= 0; ``None``: the
        default spread). Replaces the whole shape; persists across price moves. ValueError on a
        bad value."""
        data = self._live_data("set_book")
        symbol = symbol_id(symbol)
        self.api.rules(symbol)
        data.set_book(symbol, depth_scale, spread_bps)

    def reset_book(self, symbol: str) -> None:
        """Live mode: back to the default order book for ``symbol``."""
        self.set_book(symbol)

    def set_fees(self, *, report: bool | None = None, rate: float | None = None) -> None:
        """Live mode: fees of later fills of the private spot account, like ``POST
        /_control/fees`` (``report=False``: no fee charged nor reported)."""
        self._spot_account("set_fees").set_fees(report=report, rate=rate)

    def _spot_account(self, what: str) -> SpotAccount:
        if self.account is None:
            raise RuntimeError(f"{what} needs live=True")
        return self.account

    def _live_data(self, what: str) -> LiveMarketData:
        if not isinstance(self.data, LiveMarketData):
            raise RuntimeError(f"{what} needs live=True")
        return self.data

    @property
    def pairs(self) -> list[str]:
        """Spot pairs, e.g. ``BTC/USDT``."""
        return [info.pair for info in self.data.symbols()]

    @property
    def futures_pairs(self) -> list[str]:
        """USDT-M perpetual pairs, e.g. ``BTC/USDT:USDT`` (empty without futures data)."""
        return [] if self.futures_data is None else [i.pair for i in self.futures_data.symbols()]

    # -- diagnostics -------------------------------------------------------------------------
    def record(self, req: Request) -> None:
        self.requests.append(req)

    def endpoint_counts(self) -> dict[str, int]:
        """How often each path was requested (in arrival order of first use)."""
        return dict(collections.Counter(r.path for r in list(self.requests)))

    def log(self, message: str) -> None:
        stream = self._log_stream if self._log_stream is not None else sys.stderr
        print(f"[loopback] {message}", file=stream, flush=True)

    def describe(self) -> str:
        text = f"loopback exchange listening on {self.url} (pairs: {', '.join(self.pairs)})"
        if self.live:
            text += " (live: wall-clock candles, POST /_control/price|prices|book|fees|balances)"
        if self.futures_pairs:
            text += f" (futures: {', '.join(self.futures_pairs)})"
        return text
