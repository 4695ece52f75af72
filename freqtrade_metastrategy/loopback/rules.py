"""A symbol's trading rules: the tick, the lot step and the notional limits Binance would set.

:class:`MarketRules` is derived from a :class:`~.candles.MarketData` (tick = the finest price
step of the stored candles, lot step worth 0.1..1 quote unit at the last price); the order book
(:mod:`.book`), the exchangeInfo filters (:mod:`.markets`) and the private account's order
checks (:mod:`.account`) all read it.
This module must not import freqtrade.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal

import numpy as np
import numpy.typing as npt

from .candles import MarketData, SymbolInfo

MIN_NOTIONAL = 5.0  # USDT, Binance spot's NOTIONAL filter
# USDT-M MIN_NOTIONAL: Binance asks 5 USDT for most perpetuals (100 for BTCUSDT, 20 for ETHUSDT);
# the loopback uses 5 everywhere so small test stakes are never rejected.
FUTURES_MIN_NOTIONAL = 5.0
MAX_NOTIONAL = 9_000_000.0
MAX_DECIMALS = 8


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
