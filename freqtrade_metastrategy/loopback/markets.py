"""Binance-shaped JSON payloads built from a :class:`~.candles.MarketData`.

Pure functions (no I/O, no HTTP): exchangeInfo, klines rows, order book, tickers, and the
USDT-M futures (``/fapi``) variants: perpetual exchangeInfo entries, funding rates, mark price.
Numbers are rendered as Binance does: decimal strings with 8 places.
This module must not import freqtrade.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import numpy as np
import numpy.typing as npt

from .candles import Candles, FundingRates, MarketData, SymbolInfo

JSON = dict[str, Any]

MIN_NOTIONAL = 5.0  # USDT, Binance spot's NOTIONAL filter
# USDT-M MIN_NOTIONAL: Binance asks 5 USDT for most perpetuals (100 for BTCUSDT, 20 for ETHUSDT);
# the loopback uses 5 everywhere so small test stakes are never rejected.
FUTURES_MIN_NOTIONAL = 5.0
PERPETUAL_DELIVERY_MS = 4_133_404_800_000  # 2100-12-25: Binance's deliveryDate of perpetuals
MAX_NOTIONAL = 9_000_000.0
MAX_DECIMALS = 8
DEPTH_LIMITS = (5, 10, 20, 50, 100, 500, 1000, 5000)


def fmt(value: float, decimals: int = MAX_DECIMALS) -> str:
    """Binance number rendering.

    >>> fmt(42283.58)
    '42283.58000000'
    >>> fmt(0.0001, 4)
    '0.0001'
    """
    return f"{value:.{decimals}f}"


def price_decimals(prices: npt.NDArray[np.float64]) -> int:
    """Fewest decimals that represent every price exactly (capped at 8).

    >>> price_decimals(np.array([42283.58, 42000.1]))
    2
    >>> price_decimals(np.array([0.6123, 0.61]))
    4
    """
    values = np.asarray(prices, dtype=np.float64)
    values = values[np.isfinite(values)]
    for decimals in range(MAX_DECIMALS):
        scaled = values * 10.0**decimals
        if np.allclose(scaled, np.round(scaled), rtol=1e-12, atol=1e-6):
            return decimals
    return MAX_DECIMALS


def step_decimals(price: float) -> int:
    """Decimals of the lot step: one step is worth between 0.1 and 1 quote unit at ``price``
    (BTC@42k -> 5, ETH@2.3k -> 4, SOL@100 -> 3, XRP@0.6 -> 0), within 0..8.

    >>> [step_decimals(p) for p in (42283.58, 2300.0, 101.0, 0.62)]
    [5, 4, 3, 0]
    """
    if not math.isfinite(price) or price <= 0:
        return MAX_DECIMALS
    return max(0, min(MAX_DECIMALS, -math.ceil(math.log10(0.1 / price))))


@dataclass(frozen=True)
class MarketRules:
    """Trading rules of one symbol (what exchangeInfo's filters say)."""

    info: SymbolInfo
    price_decimals: int
    qty_decimals: int

    @property
    def tick(self) -> float:
        return 10.0**-self.price_decimals

    @property
    def step(self) -> float:
        return 10.0**-self.qty_decimals

    def round_price(self, price: float, mode: str = "nearest") -> float:
        """Snap a price to the tick grid ("down", "up" or "nearest")."""
        scaled = Decimal(repr(price)).scaleb(self.price_decimals)
        rounding = {"down": "ROUND_FLOOR", "up": "ROUND_CEILING"}.get(mode, "ROUND_HALF_EVEN")
        return float(scaled.to_integral_value(rounding=rounding).scaleb(-self.price_decimals))

    def round_qty(self, qty: float) -> float:
        scale = 10.0**self.qty_decimals
        return float(math.floor(qty * scale + 1e-9) / scale)


def market_rules(data: MarketData, symbol: str) -> MarketRules:
    info = data.symbol_info(symbol)
    return MarketRules(
        info=info,
        price_decimals=price_decimals(data.price_sample(symbol)),
        qty_decimals=step_decimals(data.last_price(symbol)),
    )


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


@dataclass(frozen=True)
class Book:
    bids: list[tuple[float, float]]  # best (highest) first
    asks: list[tuple[float, float]]  # best (lowest) first


MAX_SPREAD_BPS = 10_000.0  # a wider spread would put the best bid at or below zero


@dataclass(frozen=True)
class BookShape:
    """How :func:`order_book` deviates from its default book (live mode's ``/_control/book``).

    ``depth_scale`` (> 0) multiplies every level's quantity (never below one lot step);
    ``spread_bps`` (0..10000, or ``None`` for the default book) is the distance between best bid
    and best ask in basis points of the last price, rounded up to the tick (at least one tick:
    never narrower than asked, less than one tick wider) and centred on the last price.
    """

    depth_scale: float = 1.0
    spread_bps: float | None = None

    def __post_init__(self) -> None:
        if not (math.isfinite(self.depth_scale) and self.depth_scale > 0):
            raise ValueError(f"depth_scale must be a number > 0, got {self.depth_scale!r}")
        if self.spread_bps is not None and not (
            math.isfinite(self.spread_bps) and 0 <= self.spread_bps <= MAX_SPREAD_BPS
        ):
            raise ValueError(
                f"spread_bps must be a number in 0..{MAX_SPREAD_BPS:g}, got {self.spread_bps!r}"
            )

    @property
    def is_default(self) -> bool:
        return self.depth_scale == 1.0 and self.spread_bps is None

    def as_json(self) -> JSON:
        return {
            "depth_scale": self.depth_scale,
            "spread_bps": self.spread_bps,
            "default": self.is_default,
        }


def order_book(
    rules: MarketRules,
    last: float,
    levels: int,
    *,
    depth_scale: float = 1.0,
    spread_bps: float | None = None,
) -> Book:
    """A deterministic, symmetric book around ``last``: best bid < last <= best ask (or
    bid <= last < ask when ``last`` sits on the grid), a few ticks / 0.5 bp wide steps, and
    10k..70k quote units of depth per level so small dry-run orders fill at the top.

    ``depth_scale`` multiplies every level's quantity (at least one lot step remains);
    ``spread_bps`` sets the best bid / best ask distance to that many basis points of ``last``
    rounded up to the tick (at least one tick), centred on ``last`` (best bid rounded down,
    best bid <= last <= best ask). The defaults give the default book (see :class:`BookShape`)."""
    levels = max(1, levels)
    gap = max(rules.tick, rules.round_price(last * 0.00005, "up"))
    if spread_bps is None:
        best_bid = rules.round_price(last - rules.tick / 2, "down")
        best_ask = rules.round_price(last + rules.tick / 2, "up")
    else:
        width = max(rules.tick, rules.round_price(last * spread_bps / 10_000.0, "up"))
        best_bid = rules.round_price(last - width / 2, "down")
        best_ask = rules.round_price(best_bid + width, "nearest")
        if best_ask < last:  # only a one-tick spread off the grid: move it up by a tick
            best_bid = best_ask
            best_ask = rules.round_price(best_ask + width, "nearest")
    if best_ask <= best_bid:
        best_ask = rules.round_price(best_bid + rules.tick, "nearest")
    bids: list[tuple[float, float]] = []
    asks: list[tuple[float, float]] = []
    for i in range(levels):
        notional = 10_000.0 * (1 + (i * 5 + 3) % 7) * depth_scale
        bid = rules.round_price(best_bid - i * gap, "nearest")
        ask = rules.round_price(best_ask + i * gap, "nearest")
        if bid > 0:
            bids.append((bid, max(rules.step, rules.round_qty(notional / bid))))
        asks.append((ask, max(rules.step, rules.round_qty(notional / ask))))
    return Book(bids=bids, asks=asks)


def depth_limit(requested: int | None) -> int:
    """Binance accepts 1..5000 (default 100).

    >>> depth_limit(None), depth_limit(7), depth_limit(99999)
    (100, 7, 5000)
    """
    if requested is None:
        return 100
    return max(1, min(requested, DEPTH_LIMITS[-1]))


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
