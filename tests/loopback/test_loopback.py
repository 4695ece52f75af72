"""Loopback exchange: HTTP contract, ccxt compatibility, CLI lifecycle, offline backtests
(spot, and USDT-M futures with short trades)."""

from __future__ import annotations

import io
import json
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from conftest import (
    DATADIR,
    FUTURES_PAIRS,
    OVERLAY,
    PAIRS,
    REPO_ROOT,
    FreqtradeRun,
    OfflineConfig,
    make_offline_env,
    read_line,
    write_offline_config,
    write_offline_futures_config,
)

from freqtrade_metastrategy.loopback import (
    DEFAULT_FUNDING_RATE,
    LoopbackExchange,
    derive_futures,
    main,
)

SYMBOLS = [p.replace("/", "") for p in PAIRS]
HOUR_MS = 3_600_000
_NO_PROXY_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def get(url: str) -> tuple[int, Any]:
    """GET ``url`` bypassing any proxy; returns (status, decoded JSON)."""
    try:
        with _NO_PROXY_OPENER.open(url, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def feather(symbol_pair: str) -> pd.DataFrame:
    return pd.read_feather(DATADIR / f"{symbol_pair.replace('/', '_')}-1h.feather")


def ms(ts: str) -> int:
    return int(pd.Timestamp(ts, tz="UTC").timestamp() * 1000)


# -- data slice ------------------------------------------------------------------------------


def test_bundled_slice_is_freqtrade_feather() -> None:
    files = sorted(DATADIR.glob("*.feather"))
    assert [f.name for f in files] == [f"{p.replace('/', '_')}-1h.feather" for p in sorted(PAIRS)]
    assert sum(f.stat().st_size for f in files) <= 3 * 1024 * 1024
    for pair in PAIRS:
        frame = feather(pair)
        assert list(frame.columns) == ["date", "open", "high", "low", "close", "volume"]
        assert str(frame["date"].dtype) == "datetime64[ns, UTC]"
        assert all(str(frame[c].dtype) == "float64" for c in frame.columns[1:])
        assert frame["date"].iloc[0] == pd.Timestamp("2021-11-01 00:00", tz="UTC")
        assert frame["date"].iloc[-1] == pd.Timestamp("2023-12-31 23:00", tz="UTC")
        assert frame["date"].is_monotonic_increasing and frame["date"].is_unique


def test_slice_reproducible_from_shared_data() -> None:
    source = REPO_ROOT.parent / "shared" / "data" / "binance"
    if not source.is_dir():
        pytest.skip("shared data set not present")
    script = REPO_ROOT / "scripts" / "make_data_slice.py"
    proc = subprocess.run(
        [sys.executable, str(script), "--check", "--source", str(source), "--dest", str(DATADIR)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


# -- HTTP contract (in-process server) ---------------------------------------------------------


def test_exchange_info_lists_bundled_pairs(loopback_exchange: LoopbackExchange) -> None:
    status, info = get(f"{loopback_exchange.url}/api/v3/exchangeInfo")
    assert status == 200
    assert [s["symbol"] for s in info["symbols"]] == SYMBOLS
    for entry in info["symbols"]:
        assert entry["status"] == "TRADING"
        assert entry["quoteAsset"] == "USDT"
        assert entry["symbol"] == entry["baseAsset"] + "USDT"
        filters = {f["filterType"]: f for f in entry["filters"]}
        assert float(filters["PRICE_FILTER"]["tickSize"]) > 0
        assert float(filters["LOT_SIZE"]["stepSize"]) > 0
        assert float(filters["LOT_SIZE"]["minQty"]) > 0
        assert float(filters["NOTIONAL"]["minNotional"]) == 5.0
    ticks = {
        s["symbol"]: s["filters"][0]["tickSize"] for s in info["symbols"]
    }  # derived from the data's decimals
    assert ticks == {
        "BTCUSDT": "0.01000000",
        "ETHUSDT": "0.01000000",
        "SOLUSDT": "0.01000000",
        "XRPUSDT": "0.00010000",
    }
    for path in ("/fapi/v1/exchangeInfo", "/dapi/v1/exchangeInfo"):
        status, deriv = get(loopback_exchange.url + path)
        assert status == 200
        assert deriv["symbols"] == []
    assert get(f"{loopback_exchange.url}/api/v3/ping") == (200, {})
    status, server_time = get(f"{loopback_exchange.url}/api/v3/time")
    assert abs(server_time["serverTime"] - time.time() * 1000) < 60_000


def test_klines_replay_bundled_candles(loopback_exchange: LoopbackExchange) -> None:
    frame = feather("BTC/USDT").set_index("date")
    start = ms("2023-01-01 00:00")
    status, rows = get(
        f"{loopback_exchange.url}/api/v3/klines?symbol=BTCUSDT&interval=1h&startTime={start}&limit=5"
    )
    assert status == 200
    assert [r[0] for r in rows] == [start + i * HOUR_MS for i in range(5)]
    for row in rows:
        assert len(row) == 12 and row[6] == row[0] + HOUR_MS - 1
        expected = frame.loc[pd.Timestamp(row[0], unit="ms", tz="UTC")]
        assert [float(x) for x in row[1:6]] == [
            expected[c] for c in ("open", "high", "low", "close", "volume")
        ]

    # start + end window, end inclusive on open time
    end = start + 2 * HOUR_MS
    _, window = get(
        f"{loopback_exchange.url}/api/v3/klines?symbol=ETHUSDT&interval=1h"
        f"&startTime={start}&endTime={end}&limit=1000"
    )
    assert [r[0] for r in window] == [start, start + HOUR_MS, end]
    # no start: the most recent candles, last one = last stored candle
    _, latest = get(f"{loopback_exchange.url}/api/v3/klines?symbol=SOLUSDT&interval=1h&limit=3")
    sol = feather("SOL/USDT")
    assert latest[-1][0] == ms("2023-12-31 23:00")
    assert float(latest[-1][4]) == sol["close"].iloc[-1]
    # only end: the last `limit` candles up to end
    _, before = get(
        f"{loopback_exchange.url}/api/v3/klines?symbol=XRPUSDT&interval=1h&endTime={end}&limit=2"
    )
    assert [r[0] for r in before] == [start + HOUR_MS, end]
    # default limit 500, max 1000
    _, default = get(f"{loopback_exchange.url}/api/v3/klines?symbol=BTCUSDT&interval=1h")
    _, capped = get(f"{loopback_exchange.url}/api/v3/klines?symbol=BTCUSDT&interval=1h&limit=5000")
    assert (len(default), len(capped)) == (500, 1000)
    # coarser intervals are aggregated from 1h, UTC-aligned
    _, daily = get(
        f"{loopback_exchange.url}/api/v3/klines?symbol=BTCUSDT&interval=1d&startTime={start}&limit=1"
    )
    day = frame.loc["2023-01-01"]
    assert daily[0][0] == start
    assert [float(x) for x in daily[0][1:6]] == pytest.approx(
        [
            day["open"].iloc[0],
            day["high"].max(),
            day["low"].min(),
            day["close"].iloc[-1],
            day["volume"].sum(),
        ]
    )


def test_depth_brackets_last_close(loopback_exchange: LoopbackExchange) -> None:
    for pair, symbol in zip(PAIRS, SYMBOLS, strict=True):
        last = feather(pair)["close"].iloc[-1]
        status, book = get(f"{loopback_exchange.url}/api/v3/depth?symbol={symbol}&limit=20")
        assert status == 200
        bids = [(float(p), float(q)) for p, q in book["bids"]]
        asks = [(float(p), float(q)) for p, q in book["asks"]]
        assert len(bids) == len(asks) == 20
        assert bids[0][0] < last < asks[0][0]
        assert (asks[0][0] - bids[0][0]) / last < 0.001
        assert [p for p, _ in bids] == sorted((p for p, _ in bids), reverse=True)
        assert [p for p, _ in asks] == sorted(p for p, _ in asks)
        assert all(p * q >= 1_000 for p, q in bids + asks)  # non-trivial depth per level
    _, default = get(f"{loopback_exchange.url}/api/v3/depth?symbol=BTCUSDT")
    assert len(default["bids"]) == 100


def test_tickers_single_and_all(loopback_exchange: LoopbackExchange) -> None:
    url = loopback_exchange.url
    status, eth = get(f"{url}/api/v3/ticker/24hr?symbol=ETHUSDT")
    assert status == 200
    eth_close = feather("ETH/USDT")["close"]
    assert float(eth["lastPrice"]) == eth_close.iloc[-1]
    assert float(eth["openPrice"]) == pytest.approx(feather("ETH/USDT")["open"].iloc[-24])
    assert float(eth["bidPrice"]) < float(eth["lastPrice"]) < float(eth["askPrice"])
    _, all_24h = get(f"{url}/api/v3/ticker/24hr")
    assert [t["symbol"] for t in all_24h] == SYMBOLS
    _, some = get(f'{url}/api/v3/ticker/24hr?symbols=["XRPUSDT","BTCUSDT"]'.replace('"', "%22"))
    assert [t["symbol"] for t in some] == ["XRPUSDT", "BTCUSDT"]
    status, book = get(f"{url}/api/v3/ticker/bookTicker?symbol=BTCUSDT")
    assert status == 200 and float(book["bidPrice"]) < float(book["askPrice"])
    _, books = get(f"{url}/api/v3/ticker/bookTicker")
    assert [b["symbol"] for b in books] == SYMBOLS


def test_errors_use_binance_shape(loopback_exchange: LoopbackExchange) -> None:
    url = loopback_exchange.url
    assert get(f"{url}/api/v3/depth?symbol=DOGEUSDT") == (
        400,
        {"code": -1121, "msg": "Invalid symbol."},
    )
    assert get(f"{url}/api/v3/klines?symbol=BTCUSDT&interval=7h") == (
        400,
        {"code": -1120, "msg": "Invalid interval."},
    )
    status, body = get(f"{url}/api/v3/klines?interval=1h")
    assert status == 400 and body["code"] == -1102


def test_unknown_path_is_404_json_and_logged() -> None:
    log = io.StringIO()
    with LoopbackExchange(DATADIR, port=0, log_stream=log) as exchange:
        status, body = get(f"{exchange.url}/sapi/v1/capital/config/getall")
        port = exchange.port
    assert status == 404
    assert body["code"] == -1100 and isinstance(body["msg"], str)
    assert "unknown endpoint: GET /sapi/v1/capital/config/getall" in log.getvalue()
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=2):
        pass  # stop() closed the listening socket


def test_ccxt_binance_reads_loopback(loopback_exchange: LoopbackExchange, tmp_path: Path) -> None:
    """ccxt's own binance client, configured from the repo overlay, parses every endpoint."""
    ccxt = pytest.importorskip("ccxt")
    overlay = write_offline_config(tmp_path, loopback_exchange.url).overlay
    api = ccxt.binance(json.loads(overlay.read_text())["exchange"]["ccxt_config"])
    markets = api.load_markets()
    assert sorted(markets) == sorted(PAIRS)
    btc = markets["BTC/USDT"]
    assert btc["spot"] and btc["active"] and btc["precision"]["price"] == 0.01
    assert btc["limits"]["cost"]["min"] == 5.0
    candles = api.fetch_ohlcv("BTC/USDT", "1h", since=ms("2023-06-01"), limit=3)
    assert [c[0] for c in candles] == [ms("2023-06-01") + i * HOUR_MS for i in range(3)]
    book = api.fetch_order_book("XRP/USDT", limit=5)
    assert book["bids"][0][0] < book["asks"][0][0]
    ticker = api.fetch_ticker("SOL/USDT")
    assert ticker["last"] == feather("SOL/USDT")["close"].iloc[-1]
    assert sorted(api.fetch_tickers()) == sorted(PAIRS)
    assert sorted(api.fetch_bids_asks()) == sorted(PAIRS)
    assert abs(api.fetch_time() - time.time() * 1000) < 60_000


def test_overlay_keeps_every_binance_url_local() -> None:
    ccxt = pytest.importorskip("ccxt")
    exchange = json.loads(OVERLAY.read_text())["exchange"]
    assert exchange["enable_ws"] is False and exchange["only_from_ccxt"] is True
    for key in ("ccxt_config", "ccxt_async_config"):
        conf = exchange[key]
        assert conf["enableRateLimit"] is False
        assert conf["options"] == {"fetchMarkets": {"types": ["spot"]}, "fetchCurrencies": False}
        assert set(conf["urls"]["api"]) >= set(ccxt.binance().urls["api"])
        assert all(u.startswith("http://127.0.0.1:18080/") for u in conf["urls"]["api"].values())


# -- CLI ---------------------------------------------------------------------------------------


def test_cli_derives_and_serves_futures(tmp_path: Path) -> None:
    dest = tmp_path / "data"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "freqtrade_metastrategy.loopback",
            "--port",
            "0",
            "--datadir",
            str(DATADIR),
            "--derive-futures",
            str(dest),
            "--funding-rate",
            "0.0002",
        ],
        cwd=REPO_ROOT,
        env=make_offline_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = read_line(proc.stdout, timeout=20)
        match = re.fullmatch(
            r"loopback exchange listening on (http://127\.0\.0\.1:\d+) "
            r"\(pairs: (.*)\) \(futures: (.*)\)\n",
            line,
        )
        assert match, f"unexpected first line {line!r}"
        assert match[2].split(", ") == PAIRS
        assert match[3].split(", ") == FUTURES_PAIRS
        _, rates = get(f"{match[1]}/fapi/v1/fundingRate?symbol=SOLUSDT&limit=1")
        assert rates[0]["fundingRate"] == "0.00020000"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=5) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        _close_pipes(proc)
    assert (dest / "futures" / "XRP_USDT_USDT-1h-futures.feather").is_file()


def _close_pipes(proc: subprocess.Popen[str]) -> None:
    for stream in (proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_cli_serves_until_signal(sig: signal.Signals) -> None:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "freqtrade_metastrategy.loopback",
            "--port",
            "0",
            "--datadir",
            str(DATADIR),
        ],
        cwd=REPO_ROOT,
        env=make_offline_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = read_line(proc.stdout, timeout=20)
        match = re.fullmatch(
            r"loopback exchange listening on (http://127\.0\.0\.1:(\d+)) \(pairs: (.*)\)\n", line
        )
        assert match, f"unexpected first line {line!r}"
        assert match[3].split(", ") == PAIRS
        url, port = match[1], int(match[2])
        assert port != 0
        assert get(f"{url}/api/v3/ping") == (200, {})
        started = time.monotonic()
        proc.send_signal(sig)
        assert proc.wait(timeout=5) == 0
        assert time.monotonic() - started < 5
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        _close_pipes(proc)
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=2):
        pass


def test_cli_rejects_missing_datadir(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--port", "0", "--datadir", str(tmp_path / "nope")]) == 2
    assert "data directory not found" in capsys.readouterr().err
    assert main(["--port", "0", "--datadir", str(tmp_path)]) == 2  # no feather files


# -- USDT-M futures: derived data + /fapi ------------------------------------------------------

FUTURES_DIR_FILES = sorted(
    f"{p.replace('/', '_')}_USDT-1h-{kind}.feather"
    for p in PAIRS
    for kind in ("futures", "mark", "funding_rate")
)


def test_derive_futures_writes_freqtrade_layout(tmp_path: Path) -> None:
    written = derive_futures(DATADIR, tmp_path)
    futures_dir = tmp_path / "futures"
    assert sorted(f.name for f in futures_dir.iterdir()) == FUTURES_DIR_FILES
    assert sorted(f.name for f in tmp_path.glob("*.feather")) == sorted(
        f.name for f in DATADIR.glob("*.feather")
    )
    assert len(written) == len(FUTURES_DIR_FILES) + len(PAIRS)
    for pair in PAIRS:
        stem = futures_dir / pair.replace("/", "_")
        spot = feather(pair)
        contract = pd.read_feather(f"{stem}_USDT-1h-futures.feather")
        pd.testing.assert_frame_equal(contract, spot, check_exact=True)
        mark = pd.read_feather(f"{stem}_USDT-1h-mark.feather")
        pd.testing.assert_frame_equal(mark.drop(columns="volume"), spot.drop(columns="volume"))
        assert (mark["volume"] == 0).all()
        funding = pd.read_feather(f"{stem}_USDT-1h-funding_rate.feather")
        assert list(funding.columns) == ["date", "funding_rate"]
        assert str(funding["date"].dtype) == "datetime64[ns, UTC]"
        assert (funding["funding_rate"] == DEFAULT_FUNDING_RATE).all()
        assert set(funding["date"].dt.hour) == {0, 8, 16}
        assert (funding["date"].diff().dropna() == pd.Timedelta(hours=8)).all()
        assert funding["date"].iloc[0] == spot["date"].iloc[0]
        assert funding["date"].iloc[-1] == pd.Timestamp("2023-12-31 16:00", tz="UTC")
    # deterministic: a second run writes the same values
    again = tmp_path / "again"
    derive_futures(DATADIR, again, include_spot=False)
    assert not list(again.glob("*.feather"))
    for name in FUTURES_DIR_FILES:
        pd.testing.assert_frame_equal(
            pd.read_feather(again / "futures" / name),
            pd.read_feather(futures_dir / name),
            check_exact=True,
        )


def test_fapi_serves_perpetuals(futures_loopback_exchange: LoopbackExchange) -> None:
    url = futures_loopback_exchange.url
    assert futures_loopback_exchange.futures_pairs == FUTURES_PAIRS
    status, info = get(f"{url}/fapi/v1/exchangeInfo")
    assert status == 200
    assert [s["symbol"] for s in info["symbols"]] == SYMBOLS
    for entry in info["symbols"]:
        assert entry["contractType"] == "PERPETUAL" and entry["status"] == "TRADING"
        assert entry["marginAsset"] == entry["quoteAsset"] == "USDT"
        assert entry["onboardDate"] == ms("2021-11-01")
    assert info["assets"] == [
        {"asset": "USDT", "marginAvailable": True, "autoAssetExchange": "-10000"}
    ]
    # spot keeps working on the same exchange
    _, spot = get(f"{url}/api/v3/exchangeInfo")
    assert [s["symbol"] for s in spot["symbols"]] == SYMBOLS
    start = ms("2023-01-01 00:00")
    _, rows = get(f"{url}/fapi/v1/klines?symbol=BTCUSDT&interval=1h&startTime={start}&limit=2")
    _, spot_rows = get(f"{url}/api/v3/klines?symbol=BTCUSDT&interval=1h&startTime={start}&limit=2")
    assert rows == spot_rows
    _, marks = get(
        f"{url}/fapi/v1/markPriceKlines?symbol=BTCUSDT&interval=1h&startTime={start}&limit=2"
    )
    assert [r[:5] for r in marks] == [r[:5] for r in rows] and float(marks[0][5]) == 0.0
    _, rates = get(f"{url}/fapi/v1/fundingRate?symbol=ETHUSDT&startTime={start}&limit=3")
    assert [r["fundingTime"] for r in rates] == [start + i * 8 * HOUR_MS for i in range(3)]
    assert {r["fundingRate"] for r in rates} == {"0.00010000"}
    assert (
        float(rates[0]["markPrice"])
        == feather("ETH/USDT")
        .set_index("date")
        .loc[pd.Timestamp(start, unit="ms", tz="UTC"), "open"]
    )
    _, latest = get(f"{url}/fapi/v1/fundingRate?symbol=ETHUSDT&limit=2")
    assert [r["fundingTime"] for r in latest] == [ms("2023-12-31 08:00"), ms("2023-12-31 16:00")]
    _, premium = get(f"{url}/fapi/v1/premiumIndex?symbol=XRPUSDT")
    assert float(premium["markPrice"]) == feather("XRP/USDT")["close"].iloc[-1]
    assert premium["lastFundingRate"] == "0.00010000"
    assert premium["nextFundingTime"] % (8 * HOUR_MS) == 0
    assert get(f"{url}/fapi/v1/depth?symbol=DOGEUSDT") == (
        400,
        {"code": -1121, "msg": "Invalid symbol."},
    )


def test_fapi_without_futures_data_is_empty(loopback_exchange: LoopbackExchange) -> None:
    assert loopback_exchange.futures_pairs == []
    assert get(f"{loopback_exchange.url}/fapi/v1/klines?symbol=BTCUSDT&interval=1h") == (
        400,
        {"code": -1121, "msg": "Invalid symbol."},
    )


def test_ccxt_binance_reads_loopback_futures(
    futures_loopback_exchange: LoopbackExchange, futures_datadir: Path, tmp_path: Path
) -> None:
    """ccxt's binance in swap mode, configured like an offline futures config, parses /fapi."""
    ccxt = pytest.importorskip("ccxt")
    config = write_offline_futures_config(
        tmp_path, futures_loopback_exchange.url, datadir=futures_datadir
    )
    ccxt_config = json.loads(config.overlay.read_text())["exchange"]["ccxt_config"]
    assert ccxt_config["options"]["fetchMarkets"]["types"] == ["linear"]
    ccxt_config["options"]["defaultType"] = "swap"  # what freqtrade adds in futures mode
    api = ccxt.binance(ccxt_config)
    markets = api.load_markets()
    assert sorted(markets) == sorted(FUTURES_PAIRS)
    btc = markets["BTC/USDT:USDT"]
    assert btc["swap"] and btc["linear"] and btc["active"] and btc["settle"] == "USDT"
    assert btc["contractSize"] == 1.0 and btc["precision"]["price"] == 0.01
    assert btc["limits"]["cost"]["min"] == 5.0
    since = ms("2023-06-01")
    candles = api.fetch_ohlcv("BTC/USDT:USDT", "1h", since=since, limit=3)
    assert [c[0] for c in candles] == [since + i * HOUR_MS for i in range(3)]
    marks = api.fetch_ohlcv("BTC/USDT:USDT", "1h", since=since, limit=3, params={"price": "mark"})
    assert [c[:5] for c in marks] == [c[:5] for c in candles]
    history = api.fetch_funding_rate_history("SOL/USDT:USDT", since=since, limit=4)
    assert [h["timestamp"] for h in history] == [since + i * 8 * HOUR_MS for i in range(4)]
    assert {h["fundingRate"] for h in history} == {DEFAULT_FUNDING_RATE}
    rates = api.fetch_funding_rates()
    assert sorted(rates) == sorted(FUTURES_PAIRS)
    assert rates["ETH/USDT:USDT"]["fundingRate"] == DEFAULT_FUNDING_RATE
    book = api.fetch_order_book("XRP/USDT:USDT", limit=5)
    assert book["bids"][0][0] < book["asks"][0][0]
    assert api.fetch_ticker("SOL/USDT:USDT")["last"] == feather("SOL/USDT")["close"].iloc[-1]
    assert sorted(api.fetch_tickers()) == sorted(FUTURES_PAIRS)
    bids_asks = api.fetch_bids_asks()
    assert sorted(bids_asks) == sorted(FUTURES_PAIRS)
    assert bids_asks["BTC/USDT:USDT"]["bid"] < bids_asks["BTC/USDT:USDT"]["ask"]
    assert abs(api.fetch_time() - time.time() * 1000) < 60_000


# -- end to end: a real offline freqtrade backtest ---------------------------------------------


def _load_result(backtest_dir: Path) -> dict[str, Any]:
    zips = sorted(backtest_dir.glob("backtest-result-*.zip"))
    assert len(zips) == 1, list(backtest_dir.iterdir())
    with zipfile.ZipFile(zips[0]) as archive:
        name = zips[0].with_suffix(".json").name
        result: dict[str, Any] = json.loads(archive.read(name))
    return result


@pytest.mark.slow
def test_offline_backtest_through_loopback(
    loopback_exchange: LoopbackExchange,
    offline_config: OfflineConfig,
    run_freqtrade: Callable[..., FreqtradeRun],
) -> None:
    loopback_exchange.requests.clear()
    run = run_freqtrade(offline_config.backtest_args("SmokeStrategy", "20230101-20230401"))
    assert run.ok, run.tail()
    stats = _load_result(offline_config.backtest_dir)["strategy"]["SmokeStrategy"]
    assert stats["total_trades"] > 0
    assert len(stats["trades"]) == stats["total_trades"]
    assert {t["pair"] for t in stats["trades"]} <= set(PAIRS)
    assert stats["backtest_start"].startswith("2023-01-01")
    # The markets came from us, and nothing we don't serve was asked for.
    paths = {r.path for r in loopback_exchange.requests}
    assert "/api/v3/exchangeInfo" in paths
    assert paths <= {"/api/v3/exchangeInfo", "/api/v3/time"}
    assert not list((REPO_ROOT / "user_data").glob("backtest_results/*SmokeStrategy*"))


@pytest.mark.slow
def test_backtest_fails_without_loopback(
    tmp_path: Path, run_freqtrade: Callable[..., FreqtradeRun]
) -> None:
    """Same command, overlay pointed at a closed port: Freqtrade cannot load markets."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    config = write_offline_config(tmp_path / "dead", dead_url)
    run = run_freqtrade(config.backtest_args("SmokeStrategy", "20230101-20230401"), timeout=60)
    assert not run.ok
    assert "Could not load markets" in run.output, run.tail()
    assert not list(config.backtest_dir.glob("*.zip"))


@pytest.mark.slow
def test_offline_futures_backtest_shorts(
    futures_loopback_exchange: LoopbackExchange,
    offline_futures_config: OfflineConfig,
    run_freqtrade: Callable[..., FreqtradeRun],
) -> None:
    """Isolated USDT-M futures, 2x leverage, long + short EMA crosses: offline, with short trades
    and funding fees from the derived funding-rate files."""
    futures_loopback_exchange.requests.clear()
    config = offline_futures_config
    run = run_freqtrade(config.backtest_args("SmokeFuturesStrategy", "20230101-20230301"))
    assert run.ok, run.tail()
    assert "No history for" not in run.output  # futures, mark and funding_rate files all found
    stats = _load_result(config.backtest_dir)["strategy"]["SmokeFuturesStrategy"]
    assert (stats["trading_mode"], stats["margin_mode"]) == ("futures", "isolated")
    trades = stats["trades"]
    shorts = [t for t in trades if t["is_short"]]
    assert len(shorts) > 0 and stats["trade_count_short"] == len(shorts)
    assert all(t["profit_abs"] is not None and t["profit_ratio"] is not None for t in shorts)
    assert {t["enter_tag"] for t in shorts} == {"ema_cross_down"}
    assert {t["pair"] for t in trades} <= set(FUTURES_PAIRS)
    assert {t["leverage"] for t in trades} == {2.0}
    # positive funding rate: shorts receive, longs pay (both only across 00/08/16 UTC)
    assert sum(t["funding_fees"] for t in shorts) > 0
    assert sum(t["funding_fees"] for t in trades if not t["is_short"]) < 0
    assert stats["backtest_start"].startswith("2023-01-01")
    paths = {r.path for r in futures_loopback_exchange.requests}
    assert "/fapi/v1/exchangeInfo" in paths
    assert paths <= {"/fapi/v1/exchangeInfo", "/fapi/v1/time"}
