"""freqtrade_metastrategy.liquidity: order-book liquidity (pure) and the per-pair snapshot
cache the strategy reads live at the entry confirmation and the entry fill."""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from freqtrade_metastrategy.liquidity import (
    BOOK_LEVELS,
    BOOK_MAX_AGE,
    BookCache,
    book_liquidity,
)
from freqtrade_metastrategy.regime import RegimeThresholds

T0 = datetime(2024, 3, 1, 12, tzinfo=UTC)
SEEDS = RegimeThresholds()


def levels(
    mid: float, step_bps: float, notional: float, count: int
) -> dict[str, list[list[float]]]:
    """``count`` levels per side, ``step_bps`` apart from the mid, ``notional`` quote each."""
    bids = [[mid * (1 - k * step_bps / 1e4), 0.0] for k in range(1, count + 1)]
    asks = [[mid * (1 + k * step_bps / 1e4), 0.0] for k in range(1, count + 1)]
    for level in (*bids, *asks):
        level[1] = notional / level[0]
    return {"bids": bids, "asks": asks}


class Exchange:
    """A fetch callable recording its calls; ``books[pair]`` is a function of the levels."""

    def __init__(self, books: Mapping[str, Any]) -> None:
        self.books = dict(books)
        self.calls: list[tuple[str, int]] = []
        self.fail = False

    def __call__(self, pair: str, limit: int) -> Mapping[str, Any]:
        self.calls.append((pair, limit))
        if self.fail:
            raise RuntimeError("exchange down")
        book = self.books[pair]
        return book(limit) if callable(book) else book  # type: ignore[no-any-return]


def test_book_liquidity_depth_spread_and_truncation() -> None:
    book = book_liquidity(**levels(100.0, 1.0, 10_000.0, 10))
    assert book.depth_quote == pytest.approx(10 * 10_000.0)  # 1..5 bps on each side
    assert book.spread_bps == pytest.approx(2.0)
    assert not book.truncated and not book.empty
    assert book_liquidity(**levels(100.0, 1.0, 10_000.0, 3)).truncated
    empty = book_liquidity([], [[100.0, 1.0]])
    assert empty.empty and math.isnan(empty.depth_quote)


def test_deep_book_keeps_the_candle_regime_and_says_why() -> None:
    ex = Exchange({"BTC/USDT": levels(100.0, 1.0, 10_000.0, 20)})
    regime, why = BookCache(ex).regime("BTC/USDT", "trend_up", T0, SEEDS, fresh=True)
    assert regime == "trend_up"
    assert why == "order book depth_5bps=$100,000, spread=2.0bps"
    assert ex.calls == [("BTC/USDT", BOOK_LEVELS[0])]


def test_thin_or_wide_book_is_illiquid() -> None:
    thin = Exchange({"X/USDT": levels(100.0, 1.0, 2_000.0, 20)})
    regime, why = BookCache(thin).regime("X/USDT", "range_low_vol", T0, SEEDS, fresh=True)
    assert regime == "illiquid" and why.startswith("order book: depth_5bps=$20,000 < $50,000")
    wide = Exchange({"X/USDT": {"bids": [[99.9, 1e4]], "asks": [[100.1, 1e4]]}})
    regime, why = BookCache(wide).regime("X/USDT", "trend_up", T0, SEEDS, fresh=True)
    assert regime == "illiquid" and "spread=20.0bps > 10.0bps" in why


def test_volume_illiquid_needs_no_book() -> None:
    ex = Exchange({})
    assert BookCache(ex).regime("X/USDT", "illiquid", T0, SEEDS, fresh=True) == (
        "illiquid", "24h quote volume")
    assert ex.calls == []


def test_snapshot_reused_until_it_is_older_than_max_age() -> None:
    ex = Exchange({"BTC/USDT": levels(100.0, 1.0, 10_000.0, 20)})
    cache = BookCache(ex)
    cache.regime("BTC/USDT", "trend_up", T0, SEEDS, fresh=True)       # entry confirmation
    cache.regime("BTC/USDT", "trend_up", T0 + BOOK_MAX_AGE, SEEDS, fresh=False)  # entry fill
    assert len(ex.calls) == 1
    cache.regime("BTC/USDT", "trend_up", T0 + BOOK_MAX_AGE + timedelta(seconds=1), SEEDS,
                 fresh=False)
    assert len(ex.calls) == 2
    cache.regime("BTC/USDT", "trend_up", T0 + BOOK_MAX_AGE, SEEDS, fresh=True)  # always fetches
    assert len(ex.calls) == 3
    cache.regime("BTC/USDT", "trend_up", T0, SEEDS, fresh=False)  # the latest snapshot
    assert len(ex.calls) == 3


def test_a_pair_without_a_snapshot_is_fetched_at_the_fill() -> None:
    ex = Exchange({"ETH/USDT": levels(100.0, 1.0, 10_000.0, 20)})
    BookCache(ex).regime("ETH/USDT", "trend_down", T0, SEEDS, fresh=False)
    assert ex.calls == [("ETH/USDT", BOOK_LEVELS[0])]


def test_truncated_thin_book_is_fetched_deeper() -> None:
    # 4 levels of 5k per side within 5 bps: truncated, 40k < 50k: ask for more; the deeper
    # book shows 20 levels, 10 of them inside the band: 100k
    ex = Exchange({"BTC/USDT": lambda n: levels(100.0, 1.0, 5_000.0 * (1 if n == 100 else 2),
                                                4 if n == 100 else 20)})
    regime, _ = BookCache(ex).regime("BTC/USDT", "trend_up", T0, SEEDS, fresh=True)
    assert regime == "trend_up"
    assert ex.calls == [("BTC/USDT", 100), ("BTC/USDT", 1000)]


def test_truncated_but_deep_enough_book_is_not_fetched_again() -> None:
    ex = Exchange({"BTC/USDT": levels(100.0, 1.0, 50_000.0, 2)})
    assert BookCache(ex).fetch("BTC/USDT", SEEDS) is not None
    assert ex.calls == [("BTC/USDT", 100)]


def test_custom_levels_and_max_age() -> None:
    ex = Exchange({"BTC/USDT": levels(100.0, 1.0, 1_000.0, 2)})
    cache = BookCache(ex, levels=(5, 50), max_age=timedelta(0))
    cache.regime("BTC/USDT", "trend_up", T0, SEEDS, fresh=True)
    cache.regime("BTC/USDT", "trend_up", T0 + timedelta(microseconds=1), SEEDS, fresh=False)
    assert ex.calls == [("BTC/USDT", 5), ("BTC/USDT", 50)] * 2


def test_exchange_failure_falls_back_to_the_candle_regime(
    caplog: pytest.LogCaptureFixture,
) -> None:
    ex = Exchange({})
    ex.fail = True
    cache = BookCache(ex)
    with caplog.at_level(logging.WARNING):
        assert cache.regime("BTC/USDT", "trend_up", T0, SEEDS, fresh=True) == (
            "trend_up", "order book unavailable")
    assert "BTC/USDT: order book unavailable (exchange down)" in caplog.text
    ex.fail = False
    ex.books["BTC/USDT"] = levels(100.0, 1.0, 10_000.0, 20)
    # nothing was cached by the failure: the fill fetches
    cache.regime("BTC/USDT", "trend_up", T0, SEEDS, fresh=False)
    assert len(ex.calls) == 2


def test_missing_sides_are_an_empty_book() -> None:
    ex = Exchange({"BTC/USDT": {"bids": None, "asks": [[100.0, 1.0]]}})
    assert BookCache(ex).regime("BTC/USDT", "trend_up", T0, SEEDS, fresh=True) == (
        "illiquid", "order book: empty order book side")
