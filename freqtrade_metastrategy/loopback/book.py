"""The loopback's synthetic order book: a deterministic book around the last price.

:func:`order_book` builds the levels (:class:`Book`) from a symbol's :class:`~.rules.MarketRules`
and an optional :class:`BookShape` (depth scale, spread; live mode's ``/_control/book``);
:mod:`.markets` renders them as ``/depth``, ``bookTicker`` and 24hr tickers.
This module must not import freqtrade.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from .rules import MarketRules

DEPTH_LIMITS = (5, 10, 20, 50, 100, 500, 1000, 5000)


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

    def as_json(self) -> dict[str, Any]:
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
