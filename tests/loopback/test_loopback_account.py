"""Loopback live mode's private spot API: one in-memory Binance account traded through real
ccxt over real HTTP (market / limit orders, balances, fees reported or not), and real
``freqtrade trade`` processes trading live (not dry-run) against it, restarted mid-trade."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import ccxt
import pytest
from conftest import DATADIR, OVERLAY, OVERLAY_URL, call
from helpers.dryrun import DryRunBot, LoopbackProcess

from freqtrade_metastrategy.loopback import LoopbackExchange
from freqtrade_metastrategy.loopback.account import FEE_RATE, SpotAccount
from freqtrade_metastrategy.loopback.cli import build_parser, main, parse_balances, spot_account


def ccxt_client(url: str) -> Any:
    """ccxt's binance with a dummy key, configured like the repo's loopback overlay (spot)."""
    overlay = json.loads(OVERLAY.read_text())["exchange"]["ccxt_config"]
    urls = {k: v.replace(OVERLAY_URL, url) for k, v in overlay["urls"]["api"].items()}
    api = ccxt.binance(
        {
            "apiKey": "any-key",
            "secret": "any-secret",
            "enableRateLimit": False,
            "urls": {"api": urls},
            "options": overlay["options"],
        }
    )
    api.load_markets()
    return api


@pytest.fixture
def exchange() -> Iterator[LoopbackExchange]:
    """A fresh live exchange (a fresh account: 100000 USDT) per test."""
    with LoopbackExchange(DATADIR, port=0, live=True, log_stream=io.StringIO()) as ex:
        yield ex


def test_market_orders_fill_at_the_live_price_with_binance_fees(
    exchange: LoopbackExchange,
) -> None:
    api = ccxt_client(exchange.url)
    assert api.fetch_balance()["total"] == {
        "BTC": 0.0, "ETH": 0.0, "SOL": 0.0, "USDT": 100_000.0, "XRP": 0.0
    }
    exchange.set_price("BTC/USDT", 40_000)
    buy = api.create_order("BTC/USDT", "market", "buy", 0.05)
    assert buy["status"] == "closed" and buy["filled"] == 0.05 and buy["average"] == 40_000
    assert buy["cost"] == 2_000 and buy["fee"] == {"currency": "BTC", "cost": 0.00005}
    exchange.set_price("BTC/USDT", 41_000)
    sell = api.create_order("BTC/USDT", "market", "sell", 0.04)
    assert sell["average"] == 41_000 and sell["fee"] == {"currency": "USDT", "cost": 1.64}
    balance = api.fetch_balance()
    assert balance["BTC"]["free"] == pytest.approx(0.05 - 0.00005 - 0.04)
    assert balance["USDT"]["free"] == pytest.approx(100_000 - 2_000 + 1_640 - 1.64)
    # a market buy for a quote amount (quoteOrderQty): the quantity is floored to the lot step
    spent = api.create_order("BTC/USDT", "market", "buy", None, params={"quoteOrderQty": 100})
    assert spent["filled"] == 0.00243 and spent["cost"] == pytest.approx(0.00243 * 41_000)
    trades = api.fetch_my_trades("BTC/USDT")
    assert [(t["order"], t["side"], t["takerOrMaker"]) for t in trades] == [
        (buy["id"], "buy", "taker"), (sell["id"], "sell", "taker"), (spent["id"], "buy", "taker"),
    ]
    assert [t["fee"]["currency"] for t in trades] == ["BTC", "USDT", "BTC"]
    assert all(t["fee"]["cost"] == pytest.approx(FEE_RATE * (t["amount"] if t["side"] == "buy"
                                                             else t["cost"])) for t in trades)
    assert api.fetch_order(buy["id"], "BTC/USDT")["status"] == "closed"
    assert [o["id"] for o in api.fetch_orders("BTC/USDT")] == [buy["id"], sell["id"], spent["id"]]
    assert api.sapiGetSpotDelistSchedule() == []  # Freqtrade's DelistFilter asks, live


def test_limit_orders_rest_lock_funds_and_fill_when_the_price_reaches_them(
    exchange: LoopbackExchange,
) -> None:
    api = ccxt_client(exchange.url)
    exchange.set_price("ETH/USDT", 2_000)
    crossing = api.create_order("ETH/USDT", "limit", "buy", 1.0, 2_010)
    assert crossing["status"] == "closed" and crossing["average"] == 2_000  # at the live price
    resting = api.create_order("ETH/USDT", "limit", "buy", 2.0, 1_900)
    assert resting["status"] == "open" and resting["filled"] == 0
    usdt = api.fetch_balance()["USDT"]
    assert usdt["used"] == 3_800 and usdt["free"] == pytest.approx(100_000 - 2_000 - 3_800)
    assert [o["id"] for o in api.fetch_open_orders("ETH/USDT")] == [resting["id"]]
    exchange.set_price("ETH/USDT", 1_950)
    assert api.fetch_order(resting["id"], "ETH/USDT")["status"] == "open"
    exchange.set_price("ETH/USDT", 1_899)
    filled = api.fetch_order(resting["id"], "ETH/USDT")
    assert filled["status"] == "closed" and filled["average"] == 1_900  # at its own price
    assert api.fetch_my_trades("ETH/USDT")[-1]["takerOrMaker"] == "maker"
    # cancel gives the locked funds back; a filled order cannot be cancelled
    ask = api.create_order("ETH/USDT", "limit", "sell", 1.5, 2_500)
    assert api.fetch_balance()["ETH"]["used"] == 1.5
    assert api.cancel_order(ask["id"], "ETH/USDT")["status"] == "canceled"
    eth = api.fetch_balance()["ETH"]
    assert eth["used"] == 0 and eth["free"] == pytest.approx(3.0 - 0.003)
    with pytest.raises(ccxt.OrderNotFound):
        api.cancel_order(filled["id"], "ETH/USDT")
    with pytest.raises(ccxt.OrderNotFound):
        api.fetch_order("999999", "ETH/USDT")
    state = exchange.account.state() if exchange.account else {}
    assert [o["status"] for o in state["orders"]] == ["FILLED", "FILLED", "CANCELED"]


def test_orders_obey_the_symbol_rules_and_the_balance(exchange: LoopbackExchange) -> None:
    api = ccxt_client(exchange.url)
    exchange.set_price("BTC/USDT", 40_000)
    with pytest.raises(ccxt.InsufficientFunds):
        api.create_order("BTC/USDT", "market", "buy", 3.0)  # 120k > 100k USDT
    with pytest.raises(ccxt.InsufficientFunds):
        api.create_order("BTC/USDT", "market", "sell", 0.001)  # no BTC
    signed = {"timestamp": 1, "signature": "x", "symbol": "BTCUSDT", "side": "BUY"}
    for extra, message in (
        ({"type": "MARKET", "quantity": "0.000001"}, "LOT_SIZE"),  # below the 0.00001 step
        ({"type": "MARKET", "quantity": "0.00001"}, "NOTIONAL"),  # 0.4 USDT < 5
        ({"type": "LIMIT", "quantity": "0.001", "price": "40000.001", "timeInForce": "GTC"},
         "PRICE_FILTER"),
        ({"type": "STOP_LOSS", "quantity": "0.001"}, "orderType"),
    ):
        with pytest.raises(ccxt.ExchangeError, match=message):
            api.privatePostOrder({**signed, **extra})
    expired = api.create_order("BTC/USDT", "limit", "buy", 0.001, 39_000,
                               params={"timeInForce": "IOC"})
    assert expired["status"] == "expired"
    assert api.fetch_balance()["USDT"]["free"] == 100_000  # nothing moved


def test_fees_not_reported_are_neither_charged_nor_shown(exchange: LoopbackExchange) -> None:
    api = ccxt_client(exchange.url)
    url = exchange.url
    exchange.set_price("SOL/USDT", 100)
    status, fees = call(f"{url}/_control/fees", {"report": False})
    assert status == 200 and fees == {"report": False, "rate": FEE_RATE}
    buy = api.create_order("SOL/USDT", "market", "buy", 10.0)
    assert buy["fee"] is None and buy["fees"] == []
    assert "commission" not in buy["info"]["fills"][0]
    sell = api.create_order("SOL/USDT", "market", "sell", 10.0)
    rows = api.privateGetMyTrades({"symbol": "SOLUSDT"})
    assert len(rows) == 2 and not any("commission" in r or "commissionAsset" in r for r in rows)
    assert [t["fee"]["cost"] for t in api.fetch_my_trades("SOL/USDT")] == [None, None]
    assert api.fetch_balance()["total"]["USDT"] == 100_000 and sell["fee"] is None
    # back on: later fills pay (and show) a fee again, at the rate asked for
    status, fees = call(f"{url}/_control/fees", {"report": True, "rate": 0.00075})
    assert fees == {"report": True, "rate": 0.00075}
    again = api.create_order("SOL/USDT", "market", "buy", 10.0)
    assert again["fee"] == {"currency": "SOL", "cost": 0.0075}
    # the Python API and the account state agree
    exchange.set_fees(report=False)
    _, account = call(f"{url}/_control/account")
    assert account["fees"] == {"report": False, "rate": 0.00075}
    assert account["balances"]["SOL"] == {"free": 9.9925, "locked": 0.0}
    assert [t["orderId"] for t in account["trades"]] == [int(buy["id"]), int(sell["id"]),
                                                         int(again["id"])]


def test_control_account_requests_and_errors(exchange: LoopbackExchange) -> None:
    url = exchange.url
    status, account = call(f"{url}/_control/balances", {"balances": {"USDT": 500, "btc": 0.5}})
    assert status == 200 and account["balances"]["BTC"]["free"] == 0.5
    assert account["balances"]["USDT"]["free"] == 500
    for path, body, word in (
        ("fees", {}, "report"),
        ("fees", {"report": "no"}, "report"),
        ("fees", {"rate": -0.1}, "rate"),
        ("fees", {"rate": "cheap"}, "rate"),
        ("fees", {"report": False, "maker": 0}, "maker"),
        ("balances", {}, "balances"),
        ("balances", {"balances": {"USDT": -1}}, "USDT"),
        ("balances", {"balances": {"USDT": "lots"}}, "USDT"),
    ):
        status, error = call(f"{url}/_control/{path}", body)
        assert status == 400 and word in error["msg"], (path, body, error)
    with LoopbackExchange(DATADIR, port=0, log_stream=io.StringIO()) as replay:
        for path, body in (("account", None), ("fees", {"report": False}),
                           ("balances", {"balances": {"USDT": 1}})):
            status, error = call(f"{replay.url}/_control/{path}", body)
            assert status == 400 and "live" in error["msg"], (path, error)
        status, error = call(f"{replay.url}/api/v3/account?timestamp=1&signature=x")
        assert status == 400 and "live" in error["msg"]
        with pytest.raises(RuntimeError, match="live"):
            replay.set_fees(report=False)


def test_cli_account_flags() -> None:
    args = build_parser().parse_args(
        ["--live", "--balance", "USDT=2500", "--balance", "eth=3", "--no-fees", "--fee-rate",
         "0.0002"]
    )
    account = spot_account(args)
    assert isinstance(account, SpotAccount)
    assert account.fees() == {"report": False, "rate": 0.0002}
    assert account.balances() == {"ETH": (3.0, 0.0), "USDT": (2500.0, 0.0)}
    assert spot_account(build_parser().parse_args(["--live"])).fees() == {
        "report": True, "rate": FEE_RATE
    }
    assert parse_balances(None) == {"USDT": 100_000.0}
    for bad in ("USDT", "=5", "USDT=-1", "USDT=x", "USDT=inf"):
        with pytest.raises(ValueError, match="ASSET=AMOUNT"):
            parse_balances([bad])
    assert main(["--live", "--port", "0", "--balance", "USDT"]) == 2


# -- freqtrade trade (live, not dry-run) against the loopback account ---------------------------


def ledger_balances(account: dict[str, Any], start_usdt: float) -> dict[str, float]:
    """Balances recomputed from the exchange's own trade list."""
    out = {"USDT": start_usdt, "BTC": 0.0}
    for t in account["trades"]:
        qty, quote = float(t["qty"]), float(t["quoteQty"])
        sign = 1 if t["isBuyer"] else -1
        out["BTC"] += sign * qty
        out["USDT"] -= sign * quote
        if "commission" in t:
            out[t["commissionAsset"]] -= float(t["commission"])
    return out


def assert_consistent(bot: DryRunBot, exchange: LoopbackProcess, start_usdt: float) -> None:
    account = exchange.account()
    expected = ledger_balances(account, start_usdt)
    for asset, amount in expected.items():
        assert exchange.balance(asset) == pytest.approx(amount, abs=1e-8), (asset, account)
    wallet = {c["currency"]: c for c in (bot.client.balance() or {}).get("currencies", [])}
    assert float(wallet["USDT"]["balance"]) == pytest.approx(expected["USDT"], abs=1e-6), wallet


def exchange_orders(exchange: LoopbackProcess) -> dict[str, dict[str, Any]]:
    return {str(o["orderId"]): o for o in exchange.account()["orders"]}


@pytest.mark.slow
def test_freqtrade_live_spot_without_fees_survives_a_restart(tmp_path: Path) -> None:
    """``freqtrade trade`` live (``dry_run: false``, dummy key) against ``exchange --live
    --no-fees``: a forced long fills on the exchange's account, shows in /status; with no fee
    reported Freqtrade never learns the fee currency and re-handles the entry every loop
    ("Updating buy-fee on trade"), also after a SIGKILL and a restart on the same database
    (the exchange keeps the account); a forced exit sells exactly what was bought and the
    balances on both sides match the exchange's trade list."""
    exchange = LoopbackProcess(tmp_path / "exchange", args=["--no-fees", "--log-requests"])
    bot = DryRunBot(tmp_path / "bot", exchange, pairs=["BTC/USDT"], live_trading=True)
    try:
        assert "--dry-run" not in bot.command()
        assert json.loads(bot.config.base.read_text())["dry_run"] is False
        bot.start()
        trade = bot.force_enter("BTC/USDT", "long")
        trade_id = int(trade["trade_id"])
        assert trade["fee_open_currency"] is None, trade
        status = bot.client.status() or []
        assert [t["trade_id"] for t in status] == [trade_id]
        entry = trade["orders"][0]
        on_exchange = exchange_orders(exchange)[entry["order_id"]]
        assert on_exchange["status"] == "FILLED" and on_exchange["side"] == "BUY"
        assert float(on_exchange["executedQty"]) == trade["amount"]
        assert exchange.balance("BTC") == trade["amount"]  # no fee taken in BTC
        bot.wait_for(lambda: bot.log_since_start().count("Updating buy-fee on trade") >= 2, 20,
                     "the entry fee to be re-handled on two loops")
        assert bot.trade(trade_id)["fee_open_currency"] is None
        # crash and restart: same database, same exchange account
        bot.kill()
        bot.start()
        assert [t["trade_id"] for t in bot.client.status() or []] == [trade_id]
        bot.wait_for(lambda: "Updating buy-fee on trade" in bot.log_since_start(), 20,
                     "the entry fee to be re-handled after the restart")
        exchange.set_price("BTC/USDT", round(trade["open_rate"] * 1.004, 2))
        closed = bot.force_exit(trade_id)
        assert closed["exit_reason"] == "force_exit" and closed["close_rate"] > trade["open_rate"]
        orders = exchange_orders(exchange)
        sells = [o for o in orders.values() if o["side"] == "SELL"]
        assert len(orders) == 2 and len(sells) == 1 and sells[0]["status"] == "FILLED"
        assert float(sells[0]["executedQty"]) == trade["amount"]
        assert exchange.balance("BTC") == 0
        assert_consistent(bot, exchange, 100_000)
        log = bot.log.read_text()
    finally:
        bot.stop()
        exchange.stop()
    assert log.count("===== start") == 2
    for marker in ("Traceback", "Outdated history", "Could not load markets"):
        assert marker not in log, marker
    assert "unknown endpoint" not in exchange.log.read_text()


@pytest.mark.slow
def test_freqtrade_live_spot_limit_entry_with_fees(tmp_path: Path) -> None:
    """``freqtrade trade`` live against ``exchange --live --balance USDT=20000``: a forced
    *limit* long below the price rests on the exchange (an open order in /status) until the
    price is moved through it, then fills at its limit price with a 0.1% fee in BTC, which
    Freqtrade takes from the trade's amount (``fee_open_currency`` BTC, no re-handling); the
    forced exit sells the rest and the balances match the exchange's trade list."""
    exchange = LoopbackProcess(tmp_path / "exchange", args=["--balance", "USDT=20000"])
    bot = DryRunBot(tmp_path / "bot", exchange, pairs=["BTC/USDT"], live_trading=True)
    try:
        bot.start()
        price = float(exchange.control("state")["symbols"]["BTCUSDT"]["price"])
        limit = round(price * 0.995, 2)
        answer = bot.client.forceenter("BTC/USDT", "long", limit, order_type="limit")
        assert isinstance(answer, dict) and answer.get("trade_id"), answer
        trade_id = int(answer["trade_id"])
        resting = bot.wait_for(
            lambda: next((o for o in exchange.account()["orders"] if o["status"] == "NEW"), None),
            15, "the limit order to rest on the exchange")
        assert float(resting["price"]) == limit
        assert bot.trade(trade_id)["has_open_orders"] is True
        exchange.set_price("BTC/USDT", round(limit * 0.999, 2))
        # Freqtrade commits the filled order (update_orders) before it reads the fee off it
        # (handle_order_fee, same loop): wait for both
        trade = bot.wait_for(
            lambda: (t := bot.trade(trade_id)) and not t["has_open_orders"]
            and t["fee_open_currency"] is not None and t, 20, "the limit entry to fill")
        assert trade["open_rate"] == limit, trade
        assert trade["fee_open_currency"] == "BTC" and trade["fee_open"] == FEE_RATE, trade
        fill = exchange.account()["trades"][0]
        assert fill["isMaker"] is True and fill["commissionAsset"] == "BTC"
        net = float(fill["qty"]) - float(fill["commission"])  # floored to the 0.00001 lot step
        assert net - 1e-5 < trade["amount"] <= net < float(fill["qty"]), (trade, fill)
        bot.wait_loops(2)
        assert "Updating buy-fee" not in bot.log.read_text()
        closed = bot.force_exit(trade_id)
        assert closed["fee_close_currency"] == "USDT", closed
        assert exchange.balance("BTC") < 1e-5  # at most dust below one lot step
        assert_consistent(bot, exchange, 20_000)
        log = bot.log.read_text()
    finally:
        bot.stop()
        exchange.stop()
    assert "Traceback" not in log
    assert "unknown endpoint" not in exchange.log.read_text()
