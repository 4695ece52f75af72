"""The USDT-M futures endpoints (``/fapi``): perpetual exchangeInfo, klines (contract,
continuous, mark, index, premium index), funding rates, premiumIndex, depth and tickers; and
``/dapi/v1/exchangeInfo`` (no COIN-M markets).

Route handlers ``(api, request) -> JSON`` (see :mod:`.routes`) over the futures market of a
:class:`~.api.LoopbackApi` (served when the datadir has a ``futures/`` folder, and always in live
mode); without one ``/fapi`` lists no symbols and answers "Invalid symbol." for any.
This module must not import freqtrade.
"""

from __future__ import annotations

from typing import Any

from . import markets
from .api import ApiError, LoopbackApi, Request
from .book import depth_limit
from .candles import FUTURES, INDEX, MARK, PREMIUM_INDEX
from .markets import JSON

FUNDING_DEFAULT_LIMIT = 100
FUNDING_MAX_LIMIT = 1000
FUNDING_INTERVAL_MS = 8 * 3_600_000


def futures_exchange_info(api: LoopbackApi, req: Request) -> JSON:
    entries = []
    if api.futures is not None:
        for symbol in api.listed(FUTURES):
            first = api.futures.klines(symbol, "1d", 0, None, 1)
            onboard = int(first.open_time[0]) if len(first) else 0
            entries.append(markets.futures_symbol_entry(api.rules(symbol, FUTURES), onboard))
    return markets.futures_exchange_info(api.data.server_time_ms(), entries)


def futures_klines(api: LoopbackApi, req: Request) -> list[list[Any]]:
    return api.klines_for(req, FUTURES)


def futures_continuous_klines(api: LoopbackApi, req: Request) -> list[list[Any]]:
    contract = req.require("contractType")
    if contract != "PERPETUAL":
        raise ApiError(400, -4112, f"Invalid contractType {contract} (loopback: PERPETUAL).")
    return api.klines_for(req, FUTURES, symbol_param="pair")


def futures_mark_klines(api: LoopbackApi, req: Request) -> list[list[Any]]:
    return api.klines_for(req, FUTURES, price=MARK)


def futures_index_klines(api: LoopbackApi, req: Request) -> list[list[Any]]:
    return api.klines_for(req, FUTURES, symbol_param="pair", price=INDEX)


def futures_premium_index_klines(api: LoopbackApi, req: Request) -> list[list[Any]]:
    return api.klines_for(req, FUTURES, price=PREMIUM_INDEX)


def futures_funding_rate(api: LoopbackApi, req: Request) -> list[JSON]:
    data = api.futures_data()
    limit = api.list_limit(req, FUNDING_DEFAULT_LIMIT, FUNDING_MAX_LIMIT)
    start, end = req.get_int("startTime"), req.get_int("endTime")
    symbol = req.get("symbol")
    rows: list[JSON] = []
    for s in [symbol] if symbol else api.listed(FUTURES):
        api.rules(s, FUTURES)
        rates = data.funding_history(s, start, end, limit)
        marks: dict[int, float] = {}
        if len(rates):
            candles = data.price_klines(
                s, "1h", MARK, int(rates.time[0]), int(rates.time[-1]), FUNDING_MAX_LIMIT * 8
            )
            marks = dict(zip(candles.open_time.tolist(), candles.ohlcv[:, 0].tolist(), strict=True))
        rows.extend(markets.funding_rate_rows(s, rates, marks))
    if not symbol:
        rows.sort(key=lambda r: (r["fundingTime"], r["symbol"]))
        rows = rows[:limit] if start is not None else rows[-limit:]
    return rows


def futures_premium_index(api: LoopbackApi, req: Request) -> JSON | list[JSON]:
    data = api.futures_data()
    now = data.server_time_ms()
    with api.consistent(FUTURES):
        entries = [
            markets.premium_index(
                s,
                data.mark_price(s),
                data.last_funding_rate(s),
                now,
                markets.next_funding_time(now, FUNDING_INTERVAL_MS),
            )
            for s in api.requested_symbols(req, FUTURES)
        ]
    return entries[0] if req.get("symbol") else entries


def futures_depth(api: LoopbackApi, req: Request) -> JSON:
    symbol = req.require("symbol")
    rules, book = api.book(symbol, depth_limit(req.get_int("limit")), FUTURES)
    payload = markets.depth_payload(book, api.next_update_id(), rules)
    now = api.data.server_time_ms()
    return {"lastUpdateId": payload["lastUpdateId"], "E": now, "T": now} | payload


def futures_ticker_24hr(api: LoopbackApi, req: Request) -> JSON | list[JSON]:
    return api.tickers_24hr_for(req, FUTURES, markets.futures_ticker_24hr)


def futures_ticker_price(api: LoopbackApi, req: Request) -> JSON | list[JSON]:
    return api.ticker_prices_for(req, FUTURES, with_time=True)


def futures_book_ticker(api: LoopbackApi, req: Request) -> JSON | list[JSON]:
    return api.book_tickers_for(req, FUTURES)


def derivatives_exchange_info(api: LoopbackApi, req: Request) -> JSON:
    """``/dapi/v1/exchangeInfo``: no COIN-M markets."""
    payload = markets.exchange_info(api.data.server_time_ms(), [])
    payload["assets"] = []
    return payload
