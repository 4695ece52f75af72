"""The public spot endpoints (``/api/v3``): ping, time, exchangeInfo, klines, depth, tickers.

Route handlers ``(api, request) -> JSON`` (see :mod:`.routes`) over the spot market of a
:class:`~.api.LoopbackApi`; the payloads are built by :mod:`.markets`. ``ping`` and ``time``
answer ``/fapi`` too.
This module must not import freqtrade.
"""

from __future__ import annotations

from typing import Any

from . import markets
from .api import LoopbackApi, Request
from .book import depth_limit
from .candles import SPOT
from .markets import JSON


def ping(api: LoopbackApi, req: Request) -> JSON:
    return {}


def time(api: LoopbackApi, req: Request) -> JSON:
    return {"serverTime": api.data.server_time_ms()}


def spot_exchange_info(api: LoopbackApi, req: Request) -> JSON:
    entries = [markets.symbol_entry(api.rules(s)) for s in api.requested_symbols(req)]
    return markets.exchange_info(api.data.server_time_ms(), entries)


def klines(api: LoopbackApi, req: Request) -> list[list[Any]]:
    return api.klines_for(req, SPOT)


def depth(api: LoopbackApi, req: Request) -> JSON:
    symbol = req.require("symbol")
    rules, book = api.book(symbol, depth_limit(req.get_int("limit")))
    return markets.depth_payload(book, api.next_update_id(), rules)


def ticker_24hr(api: LoopbackApi, req: Request) -> JSON | list[JSON]:
    return api.tickers_24hr_for(req, SPOT, markets.ticker_24hr)


def ticker_price(api: LoopbackApi, req: Request) -> JSON | list[JSON]:
    return api.ticker_prices_for(req, SPOT, with_time=False)


def book_ticker(api: LoopbackApi, req: Request) -> JSON | list[JSON]:
    return api.book_tickers_for(req, SPOT)
