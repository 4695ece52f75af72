"""The private spot endpoints (``/api/v3`` account, order, openOrders, allOrders, myTrades;
``/sapi`` delist schedule and margin pairs), live mode only.

Route handlers ``(api, request) -> JSON`` (see :mod:`.routes`) over the one in-memory
:class:`~.account.SpotAccount` of a :class:`~.api.LoopbackApi`; resting limit orders the live
price has reached are filled before each answer. Signatures and API keys are not checked; an
order the account rejects raises :class:`~.account.AccountError` (HTTP 400, Binance's shape).
This module must not import freqtrade.
"""

from __future__ import annotations

from .account import SpotAccount
from .api import LoopbackApi, Request
from .markets import JSON


def spot_account_info(api: LoopbackApi, req: Request) -> JSON:
    account = api.matched_account()
    assets = sorted({a for i in api.data.symbols() for a in (i.base, i.quote)})
    omit = (req.get("omitZeroBalances") or "").lower() == "true"
    return account.account_payload(api.data.server_time_ms(), assets, omit)


def new_order(api: LoopbackApi, req: Request) -> JSON:
    account, symbol = _matched_for_symbol(api, req)
    rules = api.rules(symbol)
    order = account.place(
        rules,
        side=req.require("side"),
        order_type=req.require("type"),
        quantity=req.get_float("quantity"),
        quote_qty=req.get_float("quoteOrderQty"),
        price=req.get_float("price"),
        time_in_force=req.get("timeInForce"),
        client_order_id=req.get("newClientOrderId"),
        last=api.data.last_price(symbol),
        now=api.data.server_time_ms(),
    )
    resp_type = (req.get("newOrderRespType") or "FULL").upper()
    return order.response(resp_type if resp_type in ("ACK", "RESULT") else "FULL")


def query_order(api: LoopbackApi, req: Request) -> JSON:
    account, symbol = _matched_for_symbol(api, req)
    order = account.find(symbol, req.get_int("orderId"), req.get("origClientOrderId"))
    return order.as_json()


def cancel_order(api: LoopbackApi, req: Request) -> JSON:
    account, symbol = _matched_for_symbol(api, req)
    order = account.cancel(
        symbol,
        req.get_int("orderId"),
        req.get("origClientOrderId"),
        api.data.server_time_ms(),
    )
    return order.response("RESULT")


def open_orders(api: LoopbackApi, req: Request) -> list[JSON]:
    account = api.matched_account()
    symbol = req.get("symbol")
    if symbol:
        api.rules(symbol)
    return [o.as_json() for o in account.open_orders(symbol or None)]


def cancel_open_orders(api: LoopbackApi, req: Request) -> list[JSON]:
    account, symbol = _matched_for_symbol(api, req)
    now = api.data.server_time_ms()
    return [
        account.cancel(symbol, o.order_id, None, now).response("RESULT")
        for o in account.open_orders(symbol)
    ]


def all_orders(api: LoopbackApi, req: Request) -> list[JSON]:
    account, symbol = _matched_for_symbol(api, req)
    orders = account.orders(
        symbol,
        from_id=req.get_int("orderId"),
        start_ms=req.get_int("startTime"),
        end_ms=req.get_int("endTime"),
        limit=req.get_int("limit"),
    )
    return [o.as_json() for o in orders]


def my_trades(api: LoopbackApi, req: Request) -> list[JSON]:
    account, symbol = _matched_for_symbol(api, req)
    fills = account.trades(
        symbol,
        order_id=req.get_int("orderId"),
        from_id=req.get_int("fromId"),
        start_ms=req.get_int("startTime"),
        end_ms=req.get_int("endTime"),
        limit=req.get_int("limit"),
    )
    return [f.as_trade() for f in fills]


def margin_pairs(api: LoopbackApi, req: Request) -> list[JSON]:
    """``/sapi/v1/margin/(isolated/)allPairs``: ccxt loads them with spot markets once it
    has an API key; the loopback account has no margin trading."""
    api.private_account()
    return []


def delist_schedule(api: LoopbackApi, req: Request) -> list[JSON]:
    """``/sapi/v1/spot/delist-schedule`` (Freqtrade's ``DelistFilter`` and
    ``dp.check_delisting`` ask for it in live mode): nothing delists."""
    api.private_account()
    return []


def _matched_for_symbol(api: LoopbackApi, req: Request) -> tuple[SpotAccount, str]:
    """The matched account (:meth:`~.api.LoopbackApi.matched_account`) and the request's
    mandatory ``symbol``, checked ("Invalid symbol." when it is not listed)."""
    account = api.matched_account()
    symbol = req.require("symbol")
    api.rules(symbol)
    return account, symbol
