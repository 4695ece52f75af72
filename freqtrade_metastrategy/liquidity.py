"""Order-book liquidity: quote depth within a band around the mid price, and the spread.

Live and dry-run trading can see the order book; backtests cannot (Freqtrade has no
historical books), so there the ``illiquid`` regime rests on the 24 h quote volume alone.
Live, the book's signals are added at decision time: :class:`BookCache` fetches a pair's book
through the callable it is given (the strategy passes Freqtrade's ``dp.orderbook``) when an
entry is confirmed and reuses that snapshot for the entry fill.

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

import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from freqtrade_metastrategy.regime import MarketRegime, RegimeThresholds

logger = logging.getLogger(__name__)

#: The band, in basis points of the mid price, whose resting quote volume counts as depth.
DEPTH_BAND_BPS = 5.0
#: Order-book levels fetched for the liquidity check (the second when the first ends inside
#: the band and shows too little depth), and how long a snapshot taken at the entry
#: confirmation is reused for the entry fill.
BOOK_LEVELS = (100, 1000)
BOOK_MAX_AGE = timedelta(minutes=5)

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


#: Fetches a ccxt-style order book (``{"bids": [...], "asks": [...]}``) for (pair, levels).
FetchBook = Callable[[str, int], Mapping[str, Any]]


class BookCache:
    """The latest order-book liquidity per pair, fetched through ``fetch`` (live: Freqtrade's
    ``dp.orderbook``), and the regime it gives an entry.

    >>> from datetime import UTC, datetime
    >>> books = {"X/USDT": {"bids": [[99.99, 100.0]], "asks": [[100.01, 100.0]]}}
    >>> cache = BookCache(lambda pair, levels: books[pair])
    >>> now = datetime(2024, 1, 1, tzinfo=UTC)
    >>> cache.regime("X/USDT", "trend_up", now, RegimeThresholds(), fresh=True)
    ('illiquid', 'order book: depth_5bps=$20,000 < $50,000')
    """

    def __init__(self, fetch: FetchBook, *, levels: tuple[int, int] = BOOK_LEVELS,
                 max_age: timedelta = BOOK_MAX_AGE) -> None:
        self._fetch = fetch
        self.levels = levels
        self.max_age = max_age
        self._books: dict[str, tuple[datetime, BookLiquidity]] = {}

    def regime(
        self, pair: str, regime: str, now: datetime, thresholds: RegimeThresholds, *,
        fresh: bool,
    ) -> tuple[str, str]:
        """``regime``, or ``illiquid`` when the order book says so, and why.

        ``fresh=True`` fetches the book; otherwise the snapshot taken last (at the entry
        confirmation) is reused if it is at most ``max_age`` old (the entry fill follows it
        within the same loop), else the book is fetched.
        """
        if regime == MarketRegime.ILLIQUID.value:
            return regime, "24h quote volume"
        cached = self._books.get(pair)
        if fresh or cached is None or now - cached[0] > self.max_age:
            book = self.fetch(pair, thresholds)
            if book is None:
                return regime, "order book unavailable"
            self._books[pair] = (now, book)
        else:
            book = cached[1]
        signals = book.illiquid_signals(thresholds)
        if signals:
            return MarketRegime.ILLIQUID.value, "order book: " + ", ".join(signals)
        return regime, (f"order book depth_5bps=${book.depth_quote:,.0f}, "
                        f"spread={book.spread_bps:.1f}bps")

    def fetch(self, pair: str, thresholds: RegimeThresholds) -> BookLiquidity | None:
        """The pair's order book liquidity, or None if the exchange cannot tell (logged).

        The second level count is asked for when the first ends inside the band with less
        depth than ``thresholds.illiquid_depth_threshold``.
        """
        try:
            liquidity = self._liquidity(pair, self.levels[0])
            if liquidity.truncated and not liquidity.empty and (
                liquidity.depth_quote < thresholds.illiquid_depth_threshold
            ):
                # The levels fetched end inside the band: ask for enough to see all of it.
                liquidity = self._liquidity(pair, self.levels[1])
        except Exception as exc:  # any exchange failure: fall back to volume
            logger.warning("%s: order book unavailable (%s); liquidity from volume only",
                           pair, exc)
            return None
        return liquidity

    def _liquidity(self, pair: str, levels: int) -> BookLiquidity:
        book = self._fetch(pair, levels)
        return book_liquidity(book.get("bids") or [], book.get("asks") or [])


__all__ = ["BOOK_LEVELS", "BOOK_MAX_AGE", "DEPTH_BAND_BPS", "BookCache", "BookLiquidity",
           "FetchBook", "book_liquidity"]
