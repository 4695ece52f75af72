"""Binance-shaped JSON payloads: the public market endpoints' answers, as pure functions.

No I/O, no HTTP: exchangeInfo (spot and USDT-M perpetual entries, from a symbol's
:class:`~.rules.MarketRules`), klines rows, ``/depth``, bookTicker and 24hr tickers (from an
:class:`~.book.Book`), funding-rate rows and premiumIndex. Numbers are rendered as Binance
does: decimal strings with 8 places (:func:`fmt`).
This module must not import freqtrade.
"""

from __future__ import annotations

from typing import Any

from .book import Book
from .candles import Candles, FundingRates
from .rules import FUTURES_MIN_NOTIONAL, MAX_DECIMALS, MAX_NOTIONAL, MIN_NOTIONAL, MarketRules

JSON = dict[str, Any]

PERPETUAL_DELIVERY_MS = 4_133_404_800_000  # 2100-12-25: Binance's deliveryDate of perpetuals


def fmt(value: float, decimals: int = MAX_DECIMALS) -> str:
    """Binance number rendering.

    >>> fmt(42283.58)
    '42283.58000000'
    >>> fmt(0.0001, 4)
    '0.0001'
    """
    return f"{value:.{decimals}f}"


def symbol_entry(rules: MarketRules) -> JSON:
    """One ``symbols[]`` entry of ``/api/v3/exchangeInfo`` (spot, TRADING)."""
    tick = fmt(rules.tick)
    step = fmt(rules.step)
    return {
        "symbol": rules.info.symbol,
        "status": "TRADING",
        "baseAsset": rules.info.base,
        "baseAssetPrecision": 8,
        "quoteAsset": rules.info.quote,
        "quotePrecision": 8,
        "quoteAssetPrecision": 8,
        "baseCommissionPrecision": 8,
        "quoteCommissionPrecision": 8,
        "orderTypes": [
            "LIMIT",
            "LIMIT_MAKER",
            "MARKET",
            "STOP_LOSS",
            "STOP_LOSS_LIMIT",
            "TAKE_PROFIT",
            "TAKE_PROFIT_LIMIT",
        ],
        "icebergAllowed": True,
        "ocoAllowed": True,
        "otoAllowed": True,
        "quoteOrderQtyMarketAllowed": True,
        "allowTrailingStop": True,
        "cancelReplaceAllowed": True,
        "isSpotTradingAllowed": True,
        "isMarginTradingAllowed": False,
        "filters": [
            {
                "filterType": "PRICE_FILTER",
                "minPrice": tick,
                "maxPrice": fmt(1_000_000.0),
                "tickSize": tick,
            },
            {
                "filterType": "LOT_SIZE",
                "minQty": step,
                "maxQty": fmt(9_000_000.0),
                "stepSize": step,
            },
            {"filterType": "ICEBERG_PARTS", "limit": 10},
            {
                "filterType": "MARKET_LOT_SIZE",
                "minQty": fmt(0.0),
                "maxQty": fmt(1_000_000.0),
                "stepSize": fmt(0.0),
            },
            {
                "filterType": "TRAILING_DELTA",
                "minTrailingAboveDelta": 10,
                "maxTrailingAboveDelta": 2000,
                "minTrailingBelowDelta": 10,
                "maxTrailingBelowDelta": 2000,
            },
            {
                "filterType": "PERCENT_PRICE_BY_SIDE",
                "bidMultiplierUp": "5",
                "bidMultiplierDown": "0.2",
                "askMultiplierUp": "5",
                "askMultiplierDown": "0.2",
                "avgPriceMins": 5,
            },
            {
                "filterType": "NOTIONAL",
                "minNotional": fmt(MIN_NOTIONAL),
                "applyMinToMarket": True,
                "maxNotional": fmt(MAX_NOTIONAL),
                "applyMaxToMarket": False,
                "avgPriceMins": 5,
            },
            {"filterType": "MAX_NUM_ORDERS", "maxNumOrders": 200},
            {"filterType": "MAX_NUM_ALGO_ORDERS", "maxNumAlgoOrders": 5},
        ],
        "permissions": [],
        "permissionSets": [["SPOT"]],
        "defaultSelfTradePreventionMode": "EXPIRE_MAKER",
        "allowedSelfTradePreventionModes": [
            "EXPIRE_TAKER",
            "EXPIRE_MAKER",
            "EXPIRE_BOTH",
        ],
    }


def futures_symbol_entry(rules: MarketRules, onboard_ms: int) -> JSON:
    """One ``symbols[]`` entry of ``/fapi/v1/exchangeInfo``: a TRADING USDT-M perpetual
    (ccxt parses it as ``BASE/QUOTE:SETTLE``, type swap, linear)."""
    info = rules.info
    tick = fmt(rules.tick, rules.price_decimals)
    step = fmt(rules.step, rules.qty_decimals)
    return {
        "symbol": info.symbol,
        "pair": info.symbol,
        "contractType": "PERPETUAL",
        "deliveryDate": PERPETUAL_DELIVERY_MS,
        "onboardDate": onboard_ms,
        "status": "TRADING",
        "maintMarginPercent": "2.5000",
        "requiredMarginPercent": "5.0000",
        "baseAsset": info.base,
        "quoteAsset": info.quote,
        "marginAsset": info.settle or info.quote,
        "pricePrecision": rules.price_decimals,
        "quantityPrecision": rules.qty_decimals,
        "baseAssetPrecision": 8,
        "quotePrecision": 8,
        "underlyingType": "COIN",
        "underlyingSubType": [],
        "settlePlan": 0,
        "triggerProtect": "0.0500",
        "liquidationFee": "0.012500",
        "marketTakeBound": "0.05",
        "maxMoveOrderLimit": 10000,
        "filters": [
            {
                "filterType": "PRICE_FILTER",
                "minPrice": tick,
                "maxPrice": fmt(1_000_000.0, rules.price_decimals),
                "tickSize": tick,
            },
            {"filterType": "LOT_SIZE", "minQty": step, "maxQty": "9000000", "stepSize": step},
            {
                "filterType": "MARKET_LOT_SIZE",
                "minQty": step,
                "maxQty": "1000000",
                "stepSize": step,
            },
            {"filterType": "MAX_NUM_ORDERS", "limit": 200},
            {"filterType": "MAX_NUM_ALGO_ORDERS", "limit": 10},
            {"filterType": "MIN_NOTIONAL", "notional": fmt(FUTURES_MIN_NOTIONAL, 0)},
            {
                "filterType": "PERCENT_PRICE",
                "multiplierUp": "1.0500",
                "multiplierDown": "0.9500",
                "multiplierDecimal": "4",
            },
        ],
        "orderTypes": [
            "LIMIT",
            "MARKET",
            "STOP",
            "STOP_MARKET",
            "TAKE_PROFIT",
            "TAKE_PROFIT_MARKET",
            "TRAILING_STOP_MARKET",
        ],
        "timeInForce": ["GTC", "IOC", "FOK", "GTX", "GTD"],
        "permissionSets": ["GRID", "COPY"],
    }


def futures_exchange_info(server_time_ms: int, entries: list[JSON]) -> JSON:
    """``/fapi/v1/exchangeInfo`` (``/dapi`` has the same envelope)."""
    payload = exchange_info(server_time_ms, entries)
    payload["assets"] = sorted(
        (
            {"asset": a, "marginAvailable": True, "autoAssetExchange": "-10000"}
            for a in {e["marginAsset"] for e in entries}
        ),
        key=lambda a: str(a["asset"]),
    )
    return payload


def exchange_info(server_time_ms: int, entries: list[JSON]) -> JSON:
    """``exchangeInfo`` envelope (spot, USD-M and COIN-M share the outer shape)."""
    return {
        "timezone": "UTC",
        "serverTime": server_time_ms,
        "rateLimits": [
            {
                "rateLimitType": "REQUEST_WEIGHT",
                "interval": "MINUTE",
                "intervalNum": 1,
                "limit": 6000,
            },
            {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 100},
            {
                "rateLimitType": "RAW_REQUESTS",
                "interval": "MINUTE",
                "intervalNum": 5,
                "limit": 61000,
            },
        ],
        "exchangeFilters": [],
        "symbols": entries,
    }


def kline_rows(candles: Candles) -> list[list[Any]]:
    """Binance kline arrays: [openTime, o, h, l, c, v, closeTime, quoteVolume, trades,
    takerBuyBase, takerBuyQuote, "0"]."""
    rows: list[list[Any]] = []
    for t, (o, h, lo, c, v) in zip(candles.open_time.tolist(), candles.ohlcv.tolist(), strict=True):
        quote_volume = v * (o + h + lo + c) / 4.0
        rows.append(
            [
                t,
                fmt(o),
                fmt(h),
                fmt(lo),
                fmt(c),
                fmt(v),
                t + candles.interval_ms - 1,
                fmt(quote_volume),
                int(v > 0) * max(1, round(quote_volume / 1_000.0)),
                fmt(v / 2.0),
                fmt(quote_volume / 2.0),
                "0",
            ]
        )
    return rows


def depth_payload(book: Book, update_id: int, rules: MarketRules) -> JSON:
    pd_, qd = rules.price_decimals, rules.qty_decimals
    return {
        "lastUpdateId": update_id,
        "bids": [[fmt(p, max(pd_, 2)), fmt(q, max(qd, 2))] for p, q in book.bids],
        "asks": [[fmt(p, max(pd_, 2)), fmt(q, max(qd, 2))] for p, q in book.asks],
    }


def book_ticker(rules: MarketRules, book: Book) -> JSON:
    bid, bid_qty = book.bids[0] if book.bids else (0.0, 0.0)
    ask, ask_qty = book.asks[0]
    return {
        "symbol": rules.info.symbol,
        "bidPrice": fmt(bid),
        "bidQty": fmt(bid_qty),
        "askPrice": fmt(ask),
        "askQty": fmt(ask_qty),
    }


def ticker_24hr(rules: MarketRules, book: Book, day: Candles, last: float) -> JSON:
    """24h statistics from the candles of the last day (``day``, any interval)."""
    if len(day):
        open_price = float(day.ohlcv[0, 0])
        high = max(float(day.ohlcv[:, 1].max()), last)
        low = min(float(day.ohlcv[:, 2].min()), last)
        volume = float(day.ohlcv[:, 4].sum())
        quote_volume = float((day.ohlcv[:, 4] * day.ohlcv[:, 3]).sum())
        open_time = int(day.open_time[0])
        close_time = int(day.open_time[-1]) + day.interval_ms - 1
    else:
        open_price = high = low = last
        volume = quote_volume = 0.0
        open_time = close_time = 0
    change = last - open_price
    bid = book_ticker(rules, book)
    return {
        "symbol": rules.info.symbol,
        "priceChange": fmt(change),
        "priceChangePercent": fmt(100.0 * change / open_price if open_price else 0.0, 3),
        "weightedAvgPrice": fmt(quote_volume / volume if volume else last),
        "prevClosePrice": fmt(open_price),
        "lastPrice": fmt(last),
        "lastQty": fmt(rules.step),
        "bidPrice": bid["bidPrice"],
        "bidQty": bid["bidQty"],
        "askPrice": bid["askPrice"],
        "askQty": bid["askQty"],
        "openPrice": fmt(open_price),
        "highPrice": fmt(high),
        "lowPrice": fmt(low),
        "volume": fmt(volume),
        "quoteVolume": fmt(quote_volume),
        "openTime": open_time,
        "closeTime": close_time,
        "firstId": 1,
        "lastId": max(1, len(day)),
        "count": max(1, len(day)),
    }


def futures_ticker_24hr(rules: MarketRules, book: Book, day: Candles, last: float) -> JSON:
    """``/fapi/v1/ticker/24hr``: like spot without bid/ask (Freqtrade merges bookTicker in)."""
    ticker = ticker_24hr(rules, book, day, last)
    for key in ("prevClosePrice", "bidPrice", "bidQty", "askPrice", "askQty"):
        del ticker[key]
    return ticker


def funding_rate_rows(
    symbol: str, rates: FundingRates, marks: dict[int, float] | None = None
) -> list[JSON]:
    """``/fapi/v1/fundingRate`` rows; ``marks`` maps funding time -> mark price."""
    marks = marks or {}
    return [
        {
            "symbol": symbol,
            "fundingTime": t,
            "fundingRate": fmt(r),
            "markPrice": fmt(marks[t]) if t in marks else "",
        }
        for t, r in zip(rates.time.tolist(), rates.rate.tolist(), strict=True)
    ]


def next_funding_time(now_ms: int, interval_ms: int) -> int:
    """The next funding event after ``now_ms`` (events on multiples of ``interval_ms``).

    >>> next_funding_time(1, 8 * 3_600_000), next_funding_time(0, 8 * 3_600_000)
    (28800000, 28800000)
    """
    return (now_ms // interval_ms + 1) * interval_ms


def premium_index(
    symbol: str, mark: float, funding_rate: float, now_ms: int, next_funding_ms: int
) -> JSON:
    """``/fapi/v1/premiumIndex`` entry (mark = index = settle price; no basis)."""
    return {
        "symbol": symbol,
        "markPrice": fmt(mark),
        "indexPrice": fmt(mark),
        "estimatedSettlePrice": fmt(mark),
        "lastFundingRate": fmt(funding_rate),
        "interestRate": fmt(0.0001),
        "nextFundingTime": next_funding_ms,
        "time": now_ms,
    }
