"""Loopback live mode's USDT-M perpetuals: every USDT spot pair is also ``BASE/USDT:USDT`` on
the same controllable price (real HTTP, real ccxt), and a real ``freqtrade trade --dry-run``
in isolated futures mode shorts it, the price is moved down, and the short exits in profit."""

from __future__ import annotations

import io
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import ccxt
import numpy as np
import pytest
from conftest import (
    DATADIR,
    FUTURES_PAIRS,
    OVERLAY,
    OVERLAY_URL,
    PAIRS,
    TEST_STRATEGY_PATH,
    FakeClock,
    call,
)
from helpers.dryrun import DryRunBot, LoopbackProcess

from freqtrade_metastrategy.loopback import (
    DEFAULT_FUNDING_RATE,
    LiveMarketData,
    LoopbackExchange,
)
from freqtrade_metastrategy.loopback.candles import CandleStore
from freqtrade_metastrategy.loopback.cli import build_parser
from freqtrade_metastrategy.loopback.live import LiveFuturesMarketData

HOUR_MS = 3_600_000
FUNDING_MS = 8 * HOUR_MS


def ccxt_client(url: str, market_type: str) -> Any:
    """ccxt's binance configured like the repo's loopback overlay, loading ``market_type``
    ("spot" or "linear") markets."""
    overlay = json.loads(OVERLAY.read_text())["exchange"]["ccxt_config"]
    urls = {k: v.replace(OVERLAY_URL, url) for k, v in overlay["urls"]["api"].items()}
    options = {**overlay["options"], "fetchMarkets": {"types": [market_type]}}
    return ccxt.binance({"enableRateLimit": False, "urls": {"api": urls}, "options": options})


@pytest.fixture(scope="module")
def live_exchange() -> Iterator[LoopbackExchange]:
    with LoopbackExchange(
        DATADIR, port=0, live=True, log_stream=io.StringIO(), funding_rate=0.0003
    ) as exchange:
        yield exchange


def test_live_mode_lists_a_perpetual_per_usdt_pair(live_exchange: LoopbackExchange) -> None:
    assert live_exchange.futures_pairs == FUTURES_PAIRS
    api = ccxt_client(live_exchange.url, "linear")
    markets = api.load_markets()
    assert sorted(markets) == sorted(FUTURES_PAIRS)
    btc = markets["BTC/USDT:USDT"]
    assert btc["swap"] and btc["linear"] and btc["settle"] == "USDT" and btc["id"] == "BTCUSDT"
    spot = ccxt_client(live_exchange.url, "spot").load_markets()["BTC/USDT"]
    assert btc["precision"] == spot["precision"]  # same tick and lot step
    assert "futures: BTC/USDT:USDT" in live_exchange.describe()


@pytest.mark.parametrize("name", ["BTCUSDT", "BTC/USDT", "BTC/USDT:USDT"])
def test_one_price_moves_spot_and_perpetual(live_exchange: LoopbackExchange, name: str) -> None:
    """Whatever the symbol's spelling, the control endpoint moves both markets: contract,
    mark and index price, tickers, book and the in-progress candles."""
    url = live_exchange.url
    _, before = call(f"{url}/api/v3/ticker/price?symbol=BTCUSDT")
    target = round(float(before["price"]) * 0.97, 2)
    status, state = call(f"{url}/_control/price", {"symbol": name, "price": target})
    assert status == 200 and state["symbol"] == "BTCUSDT" and state["price"] == target
    api = ccxt_client(url, "linear")
    api.load_markets()
    assert api.fetch_ticker("BTC/USDT:USDT")["last"] == target
    assert ccxt_client(url, "spot").fetch_ticker("BTC/USDT")["last"] == target
    premium = api.fetch_funding_rate("BTC/USDT:USDT")
    assert premium["markPrice"] == premium["indexPrice"] == target
    book = api.fetch_order_book("BTC/USDT:USDT", 5)
    assert book["bids"][0][0] <= target <= book["asks"][0][0]
    _, book_ticker = call(f"{url}/fapi/v1/ticker/bookTicker?symbol=BTCUSDT")
    assert float(book_ticker["bidPrice"]) <= target <= float(book_ticker["askPrice"])
    assert book_ticker["time"] > 0
    for price in (None, "mark", "index"):
        params = {} if price is None else {"price": price}
        before_ms = int(time.time() * 1000)
        candle = api.fetch_ohlcv("BTC/USDT:USDT", "1h", limit=2, params=params)[-1]
        after_ms = int(time.time() * 1000)
        assert candle[4] == target and candle[3] <= target, (price, candle)
        # the in-progress candle is last
        assert before_ms // HOUR_MS * HOUR_MS <= candle[0] <= after_ms // HOUR_MS * HOUR_MS
        if price is not None:
            assert candle[5] == 0  # mark / index candles have no volume
    zeros = api.fetch_ohlcv("BTC/USDT:USDT", "1h", limit=3, params={"price": "premiumIndex"})
    assert len(zeros) == 3 and all(c[1:5] == [0, 0, 0, 0] for c in zeros)  # no basis
    live_exchange.set_price("BTC/USDT:USDT", float(before["price"]))  # the Python API too
    assert api.fetch_ticker("BTC/USDT:USDT")["last"] == float(before["price"])


def test_perpetual_book_follows_the_book_shape(live_exchange: LoopbackExchange) -> None:
    url = live_exchange.url
    status, _ = call(f"{url}/_control/book", {"symbol": "ETH/USDT:USDT", "spread_bps": 40})
    assert status == 200
    try:
        for path in ("/api/v3/depth", "/fapi/v1/depth"):
            _, depth = call(f"{url}{path}?symbol=ETHUSDT&limit=5")
            bid, ask = float(depth["bids"][0][0]), float(depth["asks"][0][0])
            assert abs((ask - bid) / ((ask + bid) / 2) * 1e4 - 40) < 1, (path, bid, ask)
        _, ticker = call(f"{url}/fapi/v1/ticker/bookTicker?symbol=ETHUSDT")
        assert float(ticker["askPrice"]) == ask
    finally:
        call(f"{url}/_control/book", {"symbol": "ETHUSDT", "reset": True})


def test_funding_history_on_the_8h_grid_at_the_configured_rate() -> None:
    clock = FakeClock(1_795_245_000.0)  # 2026-11-21 ~01:10 UTC
    data = LiveMarketData(CandleStore(DATADIR), clock)
    now = int(clock.now * 1000)
    with LoopbackExchange(port=0, data=data, funding_rate=0.0005, log_stream=io.StringIO()) as ex:
        url = ex.url
        _, rows = call(f"{url}/fapi/v1/fundingRate?symbol=SOLUSDT&limit=1000")
        times = [r["fundingTime"] for r in rows]
        assert len(rows) == 1000 and times[-1] == now // FUNDING_MS * FUNDING_MS
        assert all(t % FUNDING_MS == 0 for t in times)  # 00:00, 08:00, 16:00 UTC
        assert np.all(np.diff(times) == FUNDING_MS)
        assert {r["fundingRate"] for r in rows} == {"0.00050000"}
        assert all(float(r["markPrice"]) > 0 for r in rows)
        _, premium = call(f"{url}/fapi/v1/premiumIndex?symbol=SOLUSDT")
        assert premium["lastFundingRate"] == "0.00050000"
        assert premium["nextFundingTime"] == times[-1] + FUNDING_MS
        assert float(premium["markPrice"]) == data.last_price("SOLUSDT")
        # the first event is the first 8h boundary at or after the first (shifted) candle
        _, first = call(f"{url}/fapi/v1/fundingRate?symbol=SOLUSDT&startTime=0&limit=2")
        start = data.first_open_ms("SOLUSDT")
        assert start <= first[0]["fundingTime"] < start + FUNDING_MS
        # the clock crosses 08:00: one more event, the next one 8h later
        clock.now += 8 * 3600
        _, later = call(f"{url}/fapi/v1/fundingRate?symbol=SOLUSDT&limit=2")
        assert later[-1]["fundingTime"] == times[-1] + FUNDING_MS
        _, rows = call(f"{url}/fapi/v1/fundingRate?limit=8")  # no symbol: every perpetual
        assert {r["symbol"] for r in rows} == {p.replace("/", "") for p in PAIRS}
    futures = LiveFuturesMarketData(data)
    assert futures.last_funding_rate("BTCUSDT") == DEFAULT_FUNDING_RATE
    with pytest.raises(ValueError, match="funding_rate"):
        LiveFuturesMarketData(data, float("nan"))


def test_cli_funding_rate_applies_to_live_mode() -> None:
    args = build_parser().parse_args(["--live", "--funding-rate", "0.0007"])
    assert args.live and args.funding_rate == 0.0007
    assert build_parser().parse_args(["--live"]).funding_rate == DEFAULT_FUNDING_RATE


# -- freqtrade trade --dry-run, isolated futures, a short ---------------------------------------


@pytest.mark.slow
def test_freqtrade_futures_dry_run_short_profits_when_price_falls(tmp_path: Path) -> None:
    """A real ``freqtrade trade --dry-run`` (``trading_mode: futures``, ``margin_mode:
    isolated``, ``BTC/USDT:USDT``, a ``can_short`` strategy) against ``exchange --live
    --funding-rate 0.0005``: a forced short fills, the price is moved 2% down through the
    exchange's control endpoint, and the short closes in profit (a forced exit, or the
    strategy's own take-profit if it is quicker); the bot asked for funding rates and mark
    candles, and no endpoint was unknown."""
    exchange = LoopbackProcess(
        tmp_path / "exchange", args=["--funding-rate", "0.0005", "--log-requests"]
    )
    bot = DryRunBot(
        tmp_path / "bot",
        exchange,
        pairs=["BTC/USDT:USDT"],
        futures=True,
        strategy="MetaFuturesStrategy",
        strategy_path=TEST_STRATEGY_PATH,
    )
    try:
        base = json.loads(bot.config.base.read_text())
        assert base["trading_mode"] == "futures" and base["margin_mode"] == "isolated"
        bot.start()
        trade = bot.force_enter("BTC/USDT:USDT", "short")
        assert trade["is_short"] is True and trade["trading_mode"] == "futures", trade
        assert trade["liquidation_price"] > trade["open_rate"], trade  # isolated short
        state = exchange.control("price", {"symbol": "BTC/USDT:USDT",
                                           "price": round(trade["open_rate"] * 0.98, 2)})
        assert state["price"] < trade["open_rate"]

        def lower_or_closed() -> dict[str, Any] | None:
            now = bot.trade(trade["trade_id"])
            seen = now["is_open"] and now["current_rate"] < trade["open_rate"] * 0.99
            return now if seen or not now["is_open"] else None

        seen = bot.wait_for(lower_or_closed, 15, "the bot to see the lower price")
        assert seen["profit_abs"] > 0, seen  # unrealized (or realized) profit of the short
        closed = bot.force_exit(trade["trade_id"])
        log = bot.log.read_text()
    finally:
        bot.stop()
        exchange.stop()
    assert closed["exit_reason"] in ("force_exit", "roi", "take_profit"), closed
    assert closed["is_short"] is True and closed["close_rate"] < closed["open_rate"] * 0.985
    assert closed["orders"][-1]["ft_order_side"] == "buy", closed  # a short exits by buying
    assert closed["profit_abs"] > 0 and closed["profit_ratio"] > 0.01, closed
    for marker in ("Traceback", "Outdated history", "Could not load markets"):
        assert marker not in log, marker
    requests = exchange.log.read_text()
    assert "unknown endpoint" not in requests
    for path in ("/fapi/v1/exchangeInfo", "/fapi/v1/fundingRate", "/fapi/v1/markPriceKlines",
                 "/fapi/v1/klines", "/fapi/v1/depth"):
        assert f"GET {path}" in requests, path
