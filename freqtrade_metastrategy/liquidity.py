"""Order-book liquidity: quote depth within a band around the mid price, and the spread.

Live and dry-run trading can see the order book; backtests cannot (Freqtrade has no
historical books), so there the ``illiquid`` regime rests on the 24 h quote volume alone.
Live, the book's signals are added at decision time (see :mod:`freqtrade_metastrategy.strategy`).

>>> book = book_liquidity(bids=[[99.99, 300.0], [99.90, 1000.0]], asks=[[100.01, 200.0]])
>>> round(book.mid, 2), round(book.spread_bps, 2), round(book.depth_quote), book.truncated
(100.0, 2.0, 49999, True)
>>> from freqtrade_metastrategy.regime import RegimeThresholds
>>> book.illiquid_signals(RegimeThresholds())
['depth_5bps=$49,999 < $50,000']
>>> book_liquidity(bids=[], asks=[[1.0, 5.0]]).illiquid_signals(RegimeThresholds())
['empty order book side']
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from freqtrade_metastrategy.regime import RegimeThresholds

#: The band, in basis points of the mid price, whose resting quote volume counts as depth.
DEPTH_BAND_BPS = 5.0

Level = Sequence[float]


@dataclass(frozen=True, slots=True)
class BookLiquidity:
    """What the regime detector reads from an order book snapshot.

    ``depth_quote``: quote value (price x quantity) of the bids at or above
    ``mid x (1 - band)`` plus the asks at or below ``mid x (1 + band)``.
    ``truncated``: a side's last level is still inside the band, so ``depth_quote`` is a lower
    bound (ask for more levels). ``spread_bps``: (best ask - best bid) / mid in basis points.
    An empty side gives NaN mid, spread and depth.
    """

    mid: float
    spread_bps: float
    depth_quote: float
    truncated: bool
    band_bps: float = DEPTH_BAND_BPS

    @property
    def empty(self) -> bool:
        return not math.isfinite(self.mid)

    def illiquid_signals(self, thresholds: RegimeThresholds) -> list[str]:
        """The illiquidity signals this book fires under ``thresholds`` (empty if none)."""
        if self.empty:
            return ["empty order book side"]
        signals = []
        if self.depth_quote < thresholds.illiquid_depth_threshold:
            signals.append(
                f"depth_{self.band_bps:g}bps=${self.depth_quote:,.0f} < "
                f"${thresholds.illiquid_depth_threshold:,.0f}"
            )
        if self.spread_bps > thresholds.illiquid_spread_threshold:
            signals.append(
                f"spread={self.spread_bps:.1f}bps > {thresholds.illiquid_spread_threshold:.1f}bps"
            )
        return signals


def book_liquidity(
    bids: Sequence[Level], asks: Sequence[Level], band_bps: float = DEPTH_BAND_BPS
) -> BookLiquidity:
    """Liquidity of a ccxt-style book (``[[price, amount, ...], ...]``, best level first)."""
    if not bids or not asks:
        return BookLiquidity(math.nan, math.nan, math.nan, False, band_bps)
    best_bid, best_ask = float(bids[0][0]), float(asks[0][0])
    mid = (best_bid + best_ask) / 2.0
    band = band_bps / 1e4
    low, high = mid * (1.0 - band), mid * (1.0 + band)
    depth = 0.0
    for price, amount, *_ in bids:
        if float(price) < low:
            break
        depth += float(price) * float(amount)
    for price, amount, *_ in asks:
        if float(price) > high:
            break
        depth += float(price) * float(amount)
    truncated = float(bids[-1][0]) >= low or float(asks[-1][0]) <= high
    spread = (best_ask - best_bid) / mid * 1e4 if mid > 0 else math.nan
    return BookLiquidity(mid, spread, depth, truncated, band_bps)


__all__ = ["DEPTH_BAND_BPS", "BookLiquidity", "book_liquidity"]
