"""The loopback exchange: a standard-library HTTP server imitating Binance's public REST API.

Only what Freqtrade + ccxt's ``binance`` call for spot markets is answered (see
:data:`ROUTES`); everything else gets Binance's error shape with HTTP 404 and is logged to
stderr, which is how missing endpoints are found. Binds 127.0.0.1 only. Usage::

    with LoopbackExchange("user_data/data/binance", port=0) as exchange:
        fetch(exchange.url + "/api/v3/exchangeInfo")

This module must not import freqtrade.
"""

from __future__ import annotations

import collections
import json
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, TextIO
from urllib.parse import parse_qs, urlsplit

from .candles import (
    CandleStore,
    MarketData,
    ReplayMarketData,
    UnknownIntervalError,
    UnknownSymbolError,
)
from .markets import (
    JSON,
    Book,
    MarketRules,
    book_ticker,
    depth_limit,
    depth_payload,
    exchange_info,
    kline_rows,
    market_rules,
    order_book,
    symbol_entry,
    ticker_24hr,
)

HOST = "127.0.0.1"
DEFAULT_PORT = 18080
KLINES_DEFAULT_LIMIT = 500
KLINES_MAX_LIMIT = 1000
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


class LoopbackApi:
    """Endpoint implementations over a :class:`MarketData` (no HTTP in here)."""

    def __init__(self, data: MarketData) -> None:
        self.data = data
        self._rules: dict[str, MarketRules] = {}
        self._lock = threading.Lock()
        self._update_id = 0

    # -- helpers ---------------------------------------------------------------------------
    def rules(self, symbol: str) -> MarketRules:
        try:
            with self._lock:
                cached = self._rules.get(symbol)
            if cached is None:
                cached = market_rules(self.data, symbol)
                with self._lock:
                    self._rules[symbol] = cached
            return cached
        except UnknownSymbolError:
            raise ApiError(400, -1121, "Invalid symbol.") from None

    def next_update_id(self) -> int:
        with self._lock:
            self._update_id += 1
            return self._update_id

    def requested_symbols(self, req: Request) -> list[str]:
        """``symbol=X`` or ``symbols=["X","Y"]`` or (neither) every symbol."""
        single = req.get("symbol")
        if single:
            self.rules(single)
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
                self.rules(name)
            return list(names)
        return [info.symbol for info in self.data.symbols()]

    def book(self, symbol: str, levels: int) -> tuple[MarketRules, Book]:
        rules = self.rules(symbol)
        return rules, order_book(rules, self.data.last_price(symbol), levels)

    # -- endpoints -------------------------------------------------------------------------
    def ping(self, req: Request) -> JSON:
        return {}

    def time(self, req: Request) -> JSON:
        return {"serverTime": self.data.server_time_ms()}

    def spot_exchange_info(self, req: Request) -> JSON:
        entries = [symbol_entry(self.rules(s)) for s in self.requested_symbols(req)]
        return exchange_info(self.data.server_time_ms(), entries)

    def derivatives_exchange_info(self, req: Request) -> JSON:
        payload = exchange_info(self.data.server_time_ms(), [])
        payload["assets"] = []
        return payload

    def klines(self, req: Request) -> list[list[Any]]:
        symbol = req.require("symbol")
        interval = req.require("interval")
        self.rules(symbol)
        limit = req.get_int("limit")
        limit = KLINES_DEFAULT_LIMIT if limit is None else max(1, min(limit, KLINES_MAX_LIMIT))
        try:
            candles = self.data.klines(
                symbol, interval, req.get_int("startTime"), req.get_int("endTime"), limit
            )
        except UnknownIntervalError:
            raise ApiError(400, -1120, "Invalid interval.") from None
        return kline_rows(candles)

    def depth(self, req: Request) -> JSON:
        symbol = req.require("symbol")
        rules, book = self.book(symbol, depth_limit(req.get_int("limit")))
        return depth_payload(book, self.next_update_id(), rules)

    def ticker_24hr(self, req: Request) -> JSON | list[JSON]:
        tickers = []
        for symbol in self.requested_symbols(req):
            rules, book = self.book(symbol, 1)
            last = self.data.last_price(symbol)
            day = self.data.recent_candles(symbol, DAY_MS)
            tickers.append(ticker_24hr(rules, book, day, last))
        return tickers[0] if req.get("symbol") else tickers

    def ticker_price(self, req: Request) -> JSON | list[JSON]:
        prices = [
            {"symbol": s, "price": f"{self.data.last_price(s):.8f}"}
            for s in self.requested_symbols(req)
        ]
        return prices[0] if req.get("symbol") else prices

    def book_ticker(self, req: Request) -> JSON | list[JSON]:
        tickers = [book_ticker(*self.book(s, 1)) for s in self.requested_symbols(req)]
        return tickers[0] if req.get("symbol") else tickers


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
    "/fapi/v1/exchangeInfo": LoopbackApi.derivatives_exchange_info,
    "/dapi/v1/exchangeInfo": LoopbackApi.derivatives_exchange_info,
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
        req = Request(method, parts.path, params)
        exchange.record(req)
        handler = ROUTES.get(parts.path) if method == "GET" else None
        try:
            if handler is None:
                exchange.log(f"unknown endpoint: {method} {self.path}")
                raise ApiError(404, -1100, f"Unknown endpoint {method} {parts.path} (loopback).")
            body: Any = handler(exchange.api, req)
            status = 200
        except ApiError as err:
            status, body = err.status, {"code": err.code, "msg": err.msg}
        except Exception as err:  # a bug in the mock must not kill the client's request
            exchange.log(f"error serving {method} {self.path}: {err!r}")
            status, body = 500, {"code": -1000, "msg": f"loopback internal error: {err}"}
        payload = json.dumps(body, separators=(",", ":")).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json;charset=UTF-8")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.exchange.log_requests:
            self.server.exchange.log(format % args)


class LoopbackExchange:
    """A running (after :meth:`start`) loopback Binance on 127.0.0.1.

    ``port=0`` picks a free port; :attr:`port` / :attr:`url` tell which. ``requests`` keeps
    the last few thousand requests (method, path, params) for tests and diagnostics.
    """

    def __init__(
        self,
        datadir: Path | str | None = None,
        port: int = DEFAULT_PORT,
        *,
        data: MarketData | None = None,
        log_requests: bool = False,
        log_stream: TextIO | None = None,
    ) -> None:
        if data is None:
            if datadir is None:
                raise ValueError("give a datadir or a MarketData")
            data = ReplayMarketData(CandleStore(datadir))
        if not data.symbols():
            raise ValueError(f"no <BASE>_<QUOTE>-<tf>.feather files in {datadir}")
        self.data = data
        self.api = LoopbackApi(data)
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
    def pairs(self) -> list[str]:
        return [info.pair for info in self.data.symbols()]

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
        return f"loopback exchange listening on {self.url} (pairs: {', '.join(self.pairs)})"
