"""The loopback exchange: a local imitation of Binance's REST API, started and stopped here.

:class:`LoopbackExchange` builds the markets from a Freqtrade datadir (spot, and USDT-M
perpetuals when the datadir has a ``futures/`` folder, see :mod:`.derive`, and always in live
mode) and serves them on 127.0.0.1 from a background thread. Only what Freqtrade + ccxt's
``binance`` call is answered: the public spot (:mod:`.spot_api`) and futures
(:mod:`.futures_api`) endpoints and, live, a private spot API on one in-memory account
(:mod:`.account_api`) and the ``/_control/`` test hooks (:mod:`.control_api`); the route table
is :mod:`.routes`, the HTTP layer :mod:`.dispatch`. Everything else gets Binance's error shape
with HTTP 404 and is logged to stderr, which is how missing endpoints are found. Usage::

    with LoopbackExchange("user_data/data/binance", port=0) as exchange:
        fetch(exchange.url + "/api/v3/exchangeInfo")

``live=True`` serves spot candles shifted to the wall clock (:class:`.live.LiveMarketData`,
for ``freqtrade trade``), every USDT-quoted symbol also as a USDT-M perpetual on the same price
(:class:`.live.LiveFuturesMarketData`: ``/fapi`` klines, mark / index / premium klines,
funding history on the 8h grid, premiumIndex, tickers, depth), the private spot API
(:mod:`.account`: account, order, openOrders, allOrders, myTrades; for ``freqtrade trade``
without ``--dry-run``) and the control endpoints (127.0.0.1 clients only, HTTP 400 outside
live mode), whose price, book and fee settings are also methods here (:meth:`set_price`, ...).

This module must not import freqtrade.
"""

from __future__ import annotations

import collections
import sys
import threading
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import TextIO

from .account import SpotAccount
from .api import LoopbackApi, Request
from .candles import FUTURES, CandleStore, FuturesMarketData, MarketData, ReplayMarketData
from .control_api import snapped_prices, symbol_id
from .derive import DEFAULT_FUNDING_RATE
from .dispatch import HOST, LoopbackHTTPServer
from .live import LiveFuturesMarketData, LiveMarketData

__all__ = ["DEFAULT_PORT", "HOST", "LoopbackExchange"]

DEFAULT_PORT = 18080


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
        self._httpd: LoopbackHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> LoopbackExchange:
        if self._httpd is not None:
            return self
        self._httpd = LoopbackHTTPServer((HOST, self.requested_port), self)
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
        to their ticks, like ``POST /_control/prices`` (same :class:`~.api.ApiError` on a bad price
        or an unknown symbol); nothing moves unless every entry is valid."""
        self._live_data("set_prices").set_prices(snapped_prices(self.api, prices))

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
