"""Loopback live mode: wall-clock candles, the in-progress candle last, the price control
endpoint, and a real ``freqtrade trade --dry-run`` against it."""

from __future__ import annotations

import base64
import io
import itertools
import json
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import (
    DATADIR,
    PAIRS,
    REPO_ROOT,
    TEST_STRATEGY_PATH,
    FakeClock,
    call,
    free_port,
    freqtrade_command,
    make_offline_env,
    read_line,
    restore_sigint,
    write_offline_config,
)

from freqtrade_metastrategy.cli import build_parser as metastrategy_parser
from freqtrade_metastrategy.loopback import LiveMarketData, LoopbackExchange
from freqtrade_metastrategy.loopback.book import BookShape, order_book
from freqtrade_metastrategy.loopback.candles import CandleStore, UnknownSymbolError
from freqtrade_metastrategy.loopback.cli import build_parser, main
from freqtrade_metastrategy.loopback.cli import run as loopback_run
from freqtrade_metastrategy.loopback.rules import market_rules

HOUR_MS = 3_600_000


@pytest.fixture(scope="module")
def store() -> CandleStore:
    return CandleStore(DATADIR)


@pytest.fixture(scope="module")
def live_exchange() -> Iterator[LoopbackExchange]:
    with LoopbackExchange(DATADIR, port=0, live=True, log_stream=io.StringIO()) as exchange:
        yield exchange


# -- LiveMarketData (fake clock) ---------------------------------------------------------------


def test_last_kline_is_in_progress_on_wall_clock_grid(store: CandleStore) -> None:
    clock = FakeClock(1_795_245_000.5)  # 2026-11-21 ~01:10 UTC
    data = LiveMarketData(store, clock)
    now = int(clock.now * 1000)
    candles = data.klines("BTCUSDT", "1h", None, None, 1000)
    assert len(candles) == 1000
    assert candles.open_time[-1] == now // HOUR_MS * HOUR_MS  # current candle, in progress
    assert candles.open_time[-1] <= now < candles.open_time[-1] + HOUR_MS
    assert np.all(np.diff(candles.open_time) == HOUR_MS)  # closed ones contiguous
    # the closed candles are the stored ones, shifted to end where the current one begins
    stored = store.candles("BTCUSDT", "1h")
    np.testing.assert_array_equal(candles.ohlcv[:-1], stored.ohlcv[-999:])
    last_close = stored.ohlcv[-1, 3]
    assert data.last_price("BTCUSDT") == last_close
    # the in-progress candle opens at the last close; volume grows with the elapsed time
    live = candles.ohlcv[-1]
    assert live[:4].tolist() == [last_close] * 4
    clock.now += 600
    later = data.klines("BTCUSDT", "1h", None, None, 1).ohlcv[-1]
    assert 0 < live[4] < later[4] < stored.ohlcv[-24:, 4].mean()
    # coarser intervals are aggregated on the same grid, the day in progress last
    days = data.klines("BTCUSDT", "1d", None, None, 5)
    assert days.open_time[-1] == now // (24 * HOUR_MS) * 24 * HOUR_MS
    assert np.all(np.diff(days.open_time) == 24 * HOUR_MS)
    assert len(data.klines("BTCUSDT", "5m", None, None, 10)) == 0  # finer than the data


def test_klines_start_end_limit_like_binance(store: CandleStore) -> None:
    clock = FakeClock(1_795_245_000.0)
    data = LiveMarketData(store, clock)
    current = int(clock.now * 1000) // HOUR_MS * HOUR_MS
    start = current - 10 * HOUR_MS
    forward = data.klines("ETHUSDT", "1h", start, None, 4)
    assert forward.open_time.tolist() == [start + i * HOUR_MS for i in range(4)]
    window = data.klines("ETHUSDT", "1h", start, current - HOUR_MS, 1000)
    assert len(window) == 10 and window.open_time[-1] == current - HOUR_MS
    tail = data.klines("ETHUSDT", "1h", None, current + 5 * HOUR_MS, 3)
    assert tail.open_time[-1] == current  # nothing after the in-progress candle
    assert len(data.klines("ETHUSDT", "1h", current + HOUR_MS, None, 10)) == 0


def test_price_moves_live_candle_and_rolls_over(store: CandleStore) -> None:
    clock = FakeClock(1_795_245_000.0)
    data = LiveMarketData(store, clock)
    first = data.klines("SOLUSDT", "1h", None, None, 1)
    o, h, lo, _, _ = first.ohlcv[-1]
    data.set_price("SOLUSDT", h * 1.1)
    data.set_price("SOLUSDT", lo * 0.9)
    data.set_price("SOLUSDT", o)
    live = data.klines("SOLUSDT", "1h", None, None, 1).ohlcv[-1]
    assert live.tolist()[:4] == pytest.approx([o, h * 1.1, lo * 0.9, o])
    # a path walks in time: points not yet due are not applied
    data.walk("SOLUSDT", [o * 1.01, o * 1.02, o * 1.03], step_seconds=10)
    assert data.last_price("SOLUSDT") == pytest.approx(o * 1.01)
    clock.now += 10.5
    assert data.last_price("SOLUSDT") == pytest.approx(o * 1.02)
    # crossing the hour closes the live candle (with every path point seen) and opens a flat one
    clock.now += 3600
    candles = data.klines("SOLUSDT", "1h", None, None, 3)
    assert np.all(np.diff(candles.open_time) == HOUR_MS)
    assert candles.open_time[-1] == int(clock.now * 1000) // HOUR_MS * HOUR_MS
    closed, current = candles.ohlcv[-2], candles.ohlcv[-1]
    assert closed[3] == pytest.approx(o * 1.03) and closed[1] == pytest.approx(h * 1.1)
    assert current[:4].tolist() == pytest.approx([o * 1.03] * 4)
    assert current[4] > 0
    state = data.symbol_state("SOLUSDT")
    assert state["closed_live_candles"] == 1 and state["pending_path"] == []


# -- HTTP (live exchange in this process) ------------------------------------------------------


def test_http_klines_in_progress_last(live_exchange: LoopbackExchange) -> None:
    status, rows = call(f"{live_exchange.url}/api/v3/klines?symbol=BTCUSDT&interval=1h&limit=1000")
    now = int(time.time() * 1000)
    assert status == 200 and len(rows) == 1000
    opens = [r[0] for r in rows]
    assert opens[-1] == now // HOUR_MS * HOUR_MS and rows[-1][6] > now  # in progress
    assert all(b - a == HOUR_MS for a, b in itertools.pairwise(opens))
    assert rows[-2][6] < now  # the previous one is closed
    status, server = call(f"{live_exchange.url}/api/v3/time")
    assert abs(server["serverTime"] - now) < 5_000
    status, rows = call(f"{live_exchange.url}/api/v3/klines?symbol=BTCUSDT&interval=1h&limit=5000")
    assert len(rows) == 1000  # Binance caps limit at 1000


def test_control_price_moves_candle_tickers_and_depth(live_exchange: LoopbackExchange) -> None:
    url = live_exchange.url
    _, before = call(f"{url}/api/v3/klines?symbol=XRPUSDT&interval=1h&limit=1")
    high = float(before[-1][2])
    target = round(high * 1.2, 4)
    status, state = call(f"{url}/_control/price", {"symbol": "XRP/USDT", "price": target})
    assert status == 200 and state["price"] == pytest.approx(target)
    _, rows = call(f"{url}/api/v3/klines?symbol=XRPUSDT&interval=1h&limit=2")
    assert float(rows[-1][4]) == pytest.approx(target) and float(rows[-1][2]) == target
    _, price = call(f"{url}/api/v3/ticker/price?symbol=XRPUSDT")
    assert float(price["price"]) == pytest.approx(target)
    _, ticker = call(f"{url}/api/v3/ticker/24hr?symbol=XRPUSDT")
    assert float(ticker["lastPrice"]) == pytest.approx(target)
    assert float(ticker["highPrice"]) >= target
    _, depth = call(f"{url}/api/v3/depth?symbol=XRPUSDT&limit=5")
    assert float(depth["bids"][0][0]) <= target <= float(depth["asks"][0][0])
    _, book = call(f"{url}/api/v3/ticker/bookTicker?symbol=XRPUSDT")
    assert float(book["bidPrice"]) <= target <= float(book["askPrice"])
    # a drop below the candle's low moves the low, not the high
    low = round(float(rows[-1][3]) * 0.8, 4)
    call(f"{url}/_control/price", {"symbol": "XRPUSDT", "path": [target, low], "step_seconds": 0})
    _, rows = call(f"{url}/api/v3/klines?symbol=XRPUSDT&interval=1h&limit=1")
    assert float(rows[-1][3]) == low and float(rows[-1][2]) == target
    _, state = call(f"{url}/_control/state")
    assert state["mode"] == "live"
    assert state["symbols"]["XRPUSDT"]["candle"]["low"] == low
    assert set(state["symbols"]) == {p.replace("/", "") for p in PAIRS}


def test_control_errors(live_exchange: LoopbackExchange, tmp_path: Path) -> None:
    url = live_exchange.url
    assert call(f"{url}/_control/price", {"symbol": "NOPE", "price": 1})[1]["code"] == -1121
    assert call(f"{url}/_control/price", {"symbol": "BTCUSDT", "price": -1})[0] == 400
    assert call(f"{url}/_control/price", {"price": 1})[0] == 400
    with LoopbackExchange(DATADIR, port=0) as replay:  # replay mode has no control
        status, body = call(f"{replay.url}/_control/state")
        assert status == 400 and "live" in body["msg"]


def test_set_prices_and_book_shape_in_market_data(store: CandleStore) -> None:
    data = LiveMarketData(store, FakeClock(1_795_245_000.0))
    btc, eth = data.last_price("BTCUSDT"), data.last_price("ETHUSDT")
    data.walk("ETHUSDT", [eth, eth * 2], step_seconds=60)
    data.set_prices({"BTCUSDT": btc * 0.9, "ETHUSDT": eth * 1.1})
    assert data.last_price("BTCUSDT") == pytest.approx(btc * 0.9)
    assert data.last_price("ETHUSDT") == pytest.approx(eth * 1.1)
    assert data.symbol_state("ETHUSDT")["pending_path"] == []  # the walk was cancelled
    # every symbol is checked before any moves
    with pytest.raises(UnknownSymbolError):
        data.set_prices({"BTCUSDT": btc, "NOPEUSDT": 1.0})
    with pytest.raises(ValueError, match="prices"):
        data.set_prices({"BTCUSDT": btc, "ETHUSDT": -1.0})
    with pytest.raises(ValueError, match="prices"):
        data.set_prices({})
    assert data.last_price("BTCUSDT") == pytest.approx(btc * 0.9)
    # the book shape is kept across price moves and read together with the price
    assert data.quote("BTCUSDT")[1] == BookShape()
    data.set_book("BTCUSDT", depth_scale=0.5, spread_bps=10)
    data.set_price("BTCUSDT", btc)
    assert data.quote("BTCUSDT") == (btc, BookShape(0.5, 10.0))
    assert data.symbol_state("BTCUSDT")["book"] == {
        "depth_scale": 0.5,
        "spread_bps": 10.0,
        "default": False,
    }
    for bad in ({"depth_scale": 0.0}, {"depth_scale": float("nan")}, {"spread_bps": -1.0}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            data.set_book("BTCUSDT", **bad)
    data.reset_book("BTCUSDT")
    assert data.state()["symbols"]["BTCUSDT"]["book"]["default"] is True


def test_order_book_shape_parameters(store: CandleStore) -> None:
    data = LiveMarketData(store, FakeClock(1_795_245_000.0))
    rules = market_rules(data, "BTCUSDT")
    last = data.last_price("BTCUSDT")
    default = order_book(rules, last, 20)
    assert order_book(rules, last, 20, depth_scale=1.0, spread_bps=None) == default
    thin = order_book(rules, last, 20, depth_scale=0.01)
    assert [p for p, _ in thin.bids] == [p for p, _ in default.bids]
    for (_, q), (_, q0) in zip(thin.asks, default.asks, strict=True):
        assert q == pytest.approx(q0 * 0.01, abs=rules.step)
    tick = rules.tick
    for price, bps in itertools.product(
        (last, last + tick / 3, last + tick * 2 / 3), (0, 1, 25, 300)
    ):
        book = order_book(rules, price, 5, spread_bps=bps)
        bid, ask = book.bids[0][0], book.asks[0][0]
        assert bid <= price <= ask and bid < ask  # around the price, never crossed
        target = max(price * bps / 1e4, tick)  # rounded up to the tick: at most a tick wider
        assert target - 1e-9 <= ask - bid < target + tick + 1e-9
        assert abs((bid + ask) / 2 - price) <= tick  # centred


def near_depth(depth: dict[str, Any], bps: float = 5.0) -> float:
    """Quote depth of the levels within ``bps`` of the mid price."""
    bids = [(float(p), float(q)) for p, q in depth["bids"]]
    asks = [(float(p), float(q)) for p, q in depth["asks"]]
    mid = (bids[0][0] + asks[0][0]) / 2
    return sum(p * q for p, q in bids if p >= mid * (1 - bps / 1e4)) + sum(
        p * q for p, q in asks if p <= mid * (1 + bps / 1e4)
    )


def spread_bps(depth: dict[str, Any]) -> tuple[float, float]:
    """(spread in bps of the mid, one tick in bps of the mid)."""
    bid, ask = float(depth["bids"][0][0]), float(depth["asks"][0][0])
    mid = (bid + ask) / 2
    return (ask - bid) / mid * 1e4, 0.0101 / mid * 1e4  # BTCUSDT's tick: 0.01 (+1% for mid/last)


def test_control_prices_moves_symbols_atomically(live_exchange: LoopbackExchange) -> None:
    url = live_exchange.url
    _, before = call(f"{url}/api/v3/ticker/price")
    start = {t["symbol"]: float(t["price"]) for t in before}
    btc, eth = round(start["BTCUSDT"] * 0.97, 2), round(start["ETHUSDT"] * 1.03, 2)
    status, moved = call(
        f"{url}/_control/prices", {"prices": {"BTCUSDT": btc + 0.004, "ETH/USDT": eth}}
    )
    assert status == 200 and set(moved["symbols"]) == {"BTCUSDT", "ETHUSDT"}
    assert moved["symbols"]["BTCUSDT"]["price"] == pytest.approx(btc)  # snapped to the tick
    assert moved["symbols"]["ETHUSDT"]["candle"]["close"] == pytest.approx(eth)
    _, after = call(f"{url}/api/v3/ticker/price")
    prices = {t["symbol"]: float(t["price"]) for t in after}
    assert prices["BTCUSDT"] == pytest.approx(btc) and prices["ETHUSDT"] == pytest.approx(eth)
    assert prices["SOLUSDT"] == start["SOLUSDT"]  # untouched
    for symbol, target in (("BTCUSDT", btc), ("ETHUSDT", eth)):
        _, ticker = call(f"{url}/api/v3/ticker/24hr?symbol={symbol}")
        assert float(ticker["lastPrice"]) == pytest.approx(target)
        assert float(ticker["bidPrice"]) <= target <= float(ticker["askPrice"])
    # a poller never sees one symbol moved and not the other
    states = [{"BTCUSDT": btc, "ETHUSDT": eth}, {"BTCUSDT": btc * 1.01, "ETHUSDT": eth * 1.01}]
    seen: list[tuple[float, float]] = []
    stop = threading.Event()

    def poll() -> None:
        query = 'symbols=["BTCUSDT","ETHUSDT"]'
        while not stop.is_set():
            _, rows = call(f"{url}/api/v3/ticker/price?{urllib.parse.quote(query, safe='=')}")
            quotes = {r["symbol"]: float(r["price"]) for r in rows}
            seen.append((quotes["BTCUSDT"], quotes["ETHUSDT"]))

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    try:
        for i in range(60):
            live_exchange.set_prices(states[i % 2])
            time.sleep(0.002)
    finally:
        stop.set()
        poller.join(timeout=10)
    allowed = {
        (round(s["BTCUSDT"], 2), round(s["ETHUSDT"], 2)) for s in states
    }  # ticks: 0.01 for both
    assert seen and {(round(b, 2), round(e, 2)) for b, e in seen} <= allowed
    live_exchange.set_prices({"BTC/USDT": start["BTCUSDT"], "ETHUSDT": start["ETHUSDT"]})


def test_control_prices_errors(live_exchange: LoopbackExchange) -> None:
    url = live_exchange.url
    _, before = call(f"{url}/api/v3/ticker/price?symbol=BTCUSDT")
    for body in (
        {},
        {"prices": None},
        {"prices": []},
        {"prices": {}},
        {"prices": {"BTCUSDT": -1}},
        {"prices": {"BTCUSDT": "abc"}},
        {"prices": {"BTCUSDT": True}},
        {"prices": {"BTCUSDT": 40000, "SOLUSDT": 0}},  # nothing moves
        {"prices": {"BTCUSDT": 40000, "BTC/USDT": 41000}},
        {"prices": {"BTCUSDT": 40000}, "symbol": "BTCUSDT"},
    ):
        status, error = call(f"{url}/_control/prices", body)
        assert status == 400 and "prices" in error["msg"], (body, error)
        assert error["code"] in (-1100, -1102)
    unknown = call(f"{url}/_control/prices", {"prices": {"BTCUSDT": 40000, "NOPE": 1}})
    assert unknown == call(f"{url}/_control/price", {"symbol": "NOPE", "price": 1})
    assert unknown == (400, {"code": -1121, "msg": "Invalid symbol."})
    assert call(f"{url}/api/v3/ticker/price?symbol=BTCUSDT")[1] == before


def test_control_book_shapes_depth_and_spread(live_exchange: LoopbackExchange) -> None:
    url = live_exchange.url
    depth_url = f"{url}/api/v3/depth?symbol=BTCUSDT&limit=100"
    _, price = call(f"{url}/api/v3/ticker/price?symbol=BTCUSDT")
    start = float(price["price"])
    _, default = call(depth_url)
    assert near_depth(default) > 50_000
    # a thin book: same prices, 1% of the quantities
    status, state = call(f"{url}/_control/book", {"symbol": "BTC/USDT", "depth_scale": 0.01})
    assert status == 200
    assert state["book"] == {"depth_scale": 0.01, "spread_bps": None, "default": False}
    _, thin = call(depth_url)
    assert 0 < near_depth(thin) < 50_000
    assert [p for p, _ in thin["bids"]] == [p for p, _ in default["bids"]]
    # a wide spread (the call replaces the whole shape: depth back to the default)
    status, state = call(f"{url}/_control/book", {"symbol": "BTCUSDT", "spread_bps": 25})
    assert status == 200 and state["book"]["spread_bps"] == 25 and state["book"]["depth_scale"] == 1
    _, wide = call(depth_url)
    spread, tick = spread_bps(wide)
    assert abs(spread - 25) <= tick
    _, book = call(f"{url}/api/v3/ticker/bookTicker?symbol=BTCUSDT")
    _, ticker = call(f"{url}/api/v3/ticker/24hr?symbol=BTCUSDT")
    for quote in (book, ticker):
        assert float(quote["bidPrice"]) == float(wide["bids"][0][0])
        assert float(quote["askPrice"]) == float(wide["asks"][0][0])
    # both at once, kept across price moves (HTTP and Python API)
    call(f"{url}/_control/book", {"symbol": "BTCUSDT", "depth_scale": 0.01, "spread_bps": 25})
    call(f"{url}/_control/price", {"symbol": "BTCUSDT", "price": round(start * 1.05, 2)})
    live_exchange.set_prices({"BTC/USDT": round(start * 1.02, 2), "ETHUSDT": 2000})
    _, moved = call(depth_url)
    spread, tick = spread_bps(moved)
    assert abs(spread - 25) <= tick
    assert float(moved["bids"][0][0]) < round(start * 1.02, 2) < float(moved["asks"][0][0])
    assert float(moved["asks"][0][1]) * float(moved["asks"][0][0]) < 1_000  # still thin
    _, state = call(f"{url}/_control/state")
    assert state["symbols"]["BTCUSDT"]["book"] == {
        "depth_scale": 0.01,
        "spread_bps": 25,
        "default": False,
    }
    assert state["symbols"]["ETHUSDT"]["book"]["default"] is True
    # reset restores the default book (byte for byte at the same price)
    live_exchange.set_price("BTCUSDT", start)
    status, state = call(f"{url}/_control/book", {"symbol": "BTCUSDT", "reset": True})
    assert status == 200 and state["book"]["default"] is True
    _, restored = call(depth_url)
    assert {k: v for k, v in restored.items() if k != "lastUpdateId"} == {
        k: v for k, v in default.items() if k != "lastUpdateId"
    }
    # Python API
    live_exchange.set_book("BTC/USDT", depth_scale=0.01)
    assert near_depth(call(depth_url)[1]) < 50_000
    live_exchange.reset_book("BTCUSDT")
    assert near_depth(call(depth_url)[1]) > 50_000
    with pytest.raises(ValueError, match="spread_bps"):
        live_exchange.set_book("BTCUSDT", spread_bps=-5)


def test_control_book_errors(live_exchange: LoopbackExchange) -> None:
    url = live_exchange.url
    for body, word in (
        ({"depth_scale": 0.5}, "symbol"),
        ({"symbol": "BTCUSDT", "depth_scale": 0}, "depth_scale"),
        ({"symbol": "BTCUSDT", "depth_scale": -1}, "depth_scale"),
        ({"symbol": "BTCUSDT", "depth_scale": "thin"}, "depth_scale"),
        ({"symbol": "BTCUSDT", "spread_bps": -1}, "spread_bps"),
        ({"symbol": "BTCUSDT", "spread_bps": [25]}, "spread_bps"),
        ({"symbol": "BTCUSDT", "reset": "yes"}, "reset"),
        ({"symbol": "BTCUSDT", "reset": True, "spread_bps": 5}, "reset"),
        ({"symbol": "BTCUSDT", "spread": 25}, "spread"),
    ):
        status, error = call(f"{url}/_control/book", body)
        assert status == 400 and word in error["msg"], (body, error)
    assert call(f"{url}/_control/book", {"symbol": "NOPE", "depth_scale": 0.5}) == (
        400,
        {"code": -1121, "msg": "Invalid symbol."},
    )
    _, state = call(f"{url}/_control/state")
    assert state["symbols"]["BTCUSDT"]["book"]["default"] is True  # nothing applied


def test_new_control_endpoints_need_live_mode() -> None:
    with LoopbackExchange(DATADIR, port=0, log_stream=io.StringIO()) as replay:
        for path, body in (
            ("prices", {"prices": {"BTCUSDT": 40000}}),
            ("book", {"symbol": "BTCUSDT", "depth_scale": 0.01}),
            ("book", {"symbol": "BTCUSDT", "reset": True}),
        ):
            status, error = call(f"{replay.url}/_control/{path}", body)
            assert status == 400 and "live" in error["msg"]
        with pytest.raises(RuntimeError, match="live"):
            replay.set_prices({"BTCUSDT": 40000})
        with pytest.raises(RuntimeError, match="live"):
            replay.set_book("BTCUSDT", depth_scale=0.01)


def test_cli_live_flag(tmp_path: Path) -> None:
    assert build_parser().parse_args(["--live"]).live is True
    assert build_parser().parse_args([]).live is False
    args = metastrategy_parser().parse_args(["exchange", "--live", "--port", "0"])
    assert args.live is True and args.func is loopback_run
    assert main(["--live", "--port", "0", "--derive-futures", str(tmp_path / "f")]) == 2


def test_cli_live_serves_wall_clock_until_sigint() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "freqtrade_metastrategy.loopback", "--live", "--port", "0"],
        cwd=REPO_ROOT,
        env=make_offline_env(),
        preexec_fn=restore_sigint,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = read_line(proc.stdout, timeout=20)
        match = re.match(r"loopback exchange listening on (http://127\.0\.0\.1:\d+) .*live", line)
        assert match, f"unexpected first line {line!r}"
        url = match[1]
        _, rows = call(f"{url}/api/v3/klines?symbol=BTCUSDT&interval=1h&limit=2")
        assert rows[-1][0] == int(time.time() * 1000) // HOUR_MS * HOUR_MS
        status, state = call(f"{url}/_control/price", {"symbol": "BTCUSDT", "price": 40000})
        assert status == 200 and state["candle"]["close"] == 40000
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


# -- freqtrade trade --dry-run against the live loopback -----------------------------------------

RUN_SECONDS = 20.0
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))
API_AUTH = ("loopback", "loopback-test")


def api_call(port: int, path: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
    """Freqtrade REST API call with basic auth; (0, None) while the server is not up."""
    token = base64.b64encode(":".join(API_AUTH).encode()).decode()
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}/api/v1/{path}",
        data=data,
        method="GET" if body is None else "POST",
    )
    req.add_header("Authorization", f"Basic {token}")
    req.add_header("Content-Type", "application/json")
    try:
        with _OPENER.open(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode(errors="replace")
    except OSError:
        return 0, None


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, log: Path) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(0.5)
    tail = "\n".join(log.read_text().splitlines()[-40:])
    raise AssertionError(f"timed out after {timeout}s waiting for {what}:\n{tail}")


@pytest.mark.slow
def test_freqtrade_dry_run_against_live_loopback(tmp_path: Path) -> None:
    """~20 s of ``freqtrade trade --dry-run``: no "Outdated history", no unknown endpoint; a
    forced entry is stopped out by moving the price through ``/_control/price``; SIGINT ends it
    cleanly."""
    api_port = free_port()
    log = io.StringIO()
    with LoopbackExchange(DATADIR, port=0, live=True, log_stream=log) as exchange:
        config = write_offline_config(
            tmp_path / "ft",
            exchange.url,
            overrides={
                "initial_state": "running",
                "force_entry_enable": True,
                "internals": {"process_throttle_secs": 1},
                "api_server": {
                    "enabled": True,
                    "listen_ip_address": "127.0.0.1",
                    "listen_port": api_port,
                    "username": API_AUTH[0],
                    "password": API_AUTH[1],
                    "jwt_secret_key": "loopback-live-test-secret-0123456789abcdef",
                    "CORS_origins": [],
                    "enable_openapi": False,
                },
            },
        )
        logfile = tmp_path / "freqtrade.log"
        with logfile.open("w") as out:
            proc = subprocess.Popen(
                [
                    *freqtrade_command(),
                    "trade",
                    "--dry-run",
                    "--strategy",
                    "SmokeStrategy",
                    "--strategy-path",
                    str(TEST_STRATEGY_PATH),
                    *config.config_args(),
                ],
                cwd=REPO_ROOT,
                env=make_offline_env(),
            preexec_fn=restore_sigint,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
            try:
                started = time.monotonic()
                wait_for(
                    lambda: (
                        "Changing state to: RUNNING" in logfile.read_text()
                        and api_call(api_port, "ping")[0] == 200
                    ),
                    40,
                    "RUNNING + API",
                    logfile,
                )
                status, body = api_call(
                    api_port, "forceenter", {"pair": "BTC/USDT", "side": "long"}
                )
                assert status == 200, body

                def open_trade() -> Any:
                    trades = api_call(api_port, "status")[1] or []
                    return next((t for t in trades if t.get("has_open_orders") is False), None)

                trade = wait_for(open_trade, 15, "the forced entry to fill", logfile)
                exchange.set_price("BTC/USDT", trade["open_rate"] * 0.93)  # through the -5% stop

                def closed_trade() -> Any:
                    trades = (api_call(api_port, "trades")[1] or {}).get("trades", [])
                    return next((t for t in trades if not t["is_open"]), None)

                closed = wait_for(closed_trade, 15, "the stop loss exit", logfile)
                while time.monotonic() - started < RUN_SECONDS and proc.poll() is None:
                    time.sleep(0.5)
                alive = proc.poll() is None
                proc.send_signal(signal.SIGINT)
                returncode = proc.wait(timeout=30)
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
        output = logfile.read_text()
        tail = "\n".join(output.splitlines()[-40:])
        counts = exchange.endpoint_counts()
    assert alive, f"freqtrade stopped early:\n{tail}"
    # freqtrade's main() answers SIGINT with "SIGINT received, aborting ..." and exit code 130
    assert returncode in (0, 130), f"exit code {returncode}:\n{tail}"
    assert "Cleaning up modules" in output, tail
    assert "Outdated history" not in output, tail
    for marker in ("Traceback", "Could not load markets", "Configuration error"):
        assert marker not in output, f"{marker}:\n{tail}"
    assert "unknown endpoint" not in log.getvalue(), log.getvalue()
    assert counts.get("/api/v3/klines", 0) >= len(PAIRS), counts
    assert closed["exit_reason"] in ("stop_loss", "trailing_stop_loss"), closed
    assert closed["close_rate"] < closed["open_rate"] * 0.95, closed
