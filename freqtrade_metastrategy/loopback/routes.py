"""The route table: which handler answers which request (the one place that lists them).

:data:`ROUTES` (public market data, GET only, by path), :data:`PRIVATE_ROUTES` (the live
account) and :data:`CONTROL_ROUTES` (``/_control/`` test hooks) map a request to a handler
``(api, request) -> JSON`` of :mod:`.spot_api`, :mod:`.futures_api`, :mod:`.account_api` or
:mod:`.control_api`; :func:`find_handler` is the lookup :mod:`.dispatch` uses.
This module must not import freqtrade.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from . import account_api, control_api, futures_api, spot_api
from .api import LoopbackApi, Request

Handler = Callable[[LoopbackApi, Request], Any]

CONTROL_PREFIX = "/_control/"

# Public market data (GET only): path -> handler.
ROUTES: dict[str, Handler] = {
    "/api/v3/ping": spot_api.ping,
    "/api/v3/time": spot_api.time,
    "/api/v3/exchangeInfo": spot_api.spot_exchange_info,
    "/api/v3/klines": spot_api.klines,
    "/api/v3/uiKlines": spot_api.klines,
    "/api/v3/depth": spot_api.depth,
    "/api/v3/ticker/24hr": spot_api.ticker_24hr,
    "/api/v3/ticker/price": spot_api.ticker_price,
    "/api/v3/ticker/bookTicker": spot_api.book_ticker,
    "/fapi/v1/ping": spot_api.ping,
    "/fapi/v1/time": spot_api.time,
    "/fapi/v1/exchangeInfo": futures_api.futures_exchange_info,
    "/fapi/v1/klines": futures_api.futures_klines,
    "/fapi/v1/continuousKlines": futures_api.futures_continuous_klines,
    "/fapi/v1/markPriceKlines": futures_api.futures_mark_klines,
    "/fapi/v1/indexPriceKlines": futures_api.futures_index_klines,
    "/fapi/v1/premiumIndexKlines": futures_api.futures_premium_index_klines,
    "/fapi/v1/fundingRate": futures_api.futures_funding_rate,
    "/fapi/v1/premiumIndex": futures_api.futures_premium_index,
    "/fapi/v1/depth": futures_api.futures_depth,
    "/fapi/v1/ticker/24hr": futures_api.futures_ticker_24hr,
    "/fapi/v1/ticker/price": futures_api.futures_ticker_price,
    "/fapi/v2/ticker/price": futures_api.futures_ticker_price,
    "/fapi/v1/ticker/bookTicker": futures_api.futures_book_ticker,
    "/dapi/v1/exchangeInfo": futures_api.derivatives_exchange_info,
}

# Test hooks, live mode only, answered to 127.0.0.1 clients only: (method, path) -> handler.
CONTROL_ROUTES: dict[tuple[str, str], Handler] = {
    ("GET", "/_control/state"): control_api.control_state,
    ("POST", "/_control/price"): control_api.control_price,
    ("POST", "/_control/prices"): control_api.control_prices,
    ("POST", "/_control/book"): control_api.control_book,
    ("GET", "/_control/account"): control_api.control_account,
    ("POST", "/_control/fees"): control_api.control_fees,
    ("POST", "/_control/balances"): control_api.control_balances,
}

# The private spot API (live mode only; signatures and API keys are not checked):
# (method, path) -> handler. See :mod:`.account_api`.
PRIVATE_ROUTES: dict[tuple[str, str], Handler] = {
    ("GET", "/api/v3/account"): account_api.spot_account_info,
    ("POST", "/api/v3/order"): account_api.new_order,
    ("GET", "/api/v3/order"): account_api.query_order,
    ("DELETE", "/api/v3/order"): account_api.cancel_order,
    ("GET", "/api/v3/openOrders"): account_api.open_orders,
    ("DELETE", "/api/v3/openOrders"): account_api.cancel_open_orders,
    ("GET", "/api/v3/allOrders"): account_api.all_orders,
    ("GET", "/api/v3/myTrades"): account_api.my_trades,
    ("GET", "/sapi/v1/spot/delist-schedule"): account_api.delist_schedule,
    ("GET", "/sapi/v1/margin/allPairs"): account_api.margin_pairs,
    ("GET", "/sapi/v1/margin/isolated/allPairs"): account_api.margin_pairs,
}


def is_control(path: str) -> bool:
    """A ``/_control/`` path (JSON body, 127.0.0.1 clients only)."""
    return path.startswith(CONTROL_PREFIX)


def find_handler(method: str, path: str) -> Handler | None:
    """The handler of ``method path``; None (HTTP 404) when nothing answers it. A control path
    looks only in :data:`CONTROL_ROUTES`; otherwise a public GET route comes first, then the
    private API."""
    if is_control(path):
        return CONTROL_ROUTES.get((method, path))
    public = ROUTES.get(path) if method == "GET" else None
    return public or PRIVATE_ROUTES.get((method, path))
