"""``freqtrade trade --dry-run --strategy MetaStrategy`` end to end, the way a user runs it.

Real processes: the loopback exchange in live mode (``python -m freqtrade_metastrategy.loopback
--live``, prices moved through its ``/_control`` endpoints) and Freqtrade's bot with its REST
API, driven through Freqtrade's own client (``freqtrade_client.FtRestClient``). The learned
table is read back from the bot's SQLite store, and with ``freqtrade-metastrategy show`` while
the bot runs.

The learner is made deterministic so every price is known in advance: epsilon 0 and an empty
table let the per-regime heuristic choose, and the config sends every liquid regime to
``trend_rider`` (made suitable for ranges too): stop 2 R, TP 5 / 8 / 12 R closing 30 / 30 / 40%,
breakeven after TP1, trailing 1.5 R after TP2. 1R is the ATR of the signal candle, read from the
plan the strategy froze on the trade (custom data).
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO_ROOT, make_offline_env
from helpers.dryrun import DryRunBot, LoopbackProcess, realized_r

from freqtrade_metastrategy.regime import REGIMES, MarketRegime
from freqtrade_metastrategy.store import SqlStore

pytestmark = pytest.mark.slow

RIDER: dict[str, Any] = {
    "epsilon": 0.0,
    "profiles": {"trend_rider": {"suitable_for_ranging": True, "suitable_for_low_vol": True}},
    "heuristic": {r.value: "trend_rider" for r in REGIMES if r != MarketRegime.ILLIQUID},
}


@pytest.fixture
def exchange(tmp_path: Path) -> Iterator[LoopbackProcess]:
    proc = LoopbackProcess(tmp_path / "exchange")
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture
def bots() -> Iterator[list[DryRunBot]]:
    """Bots a test starts; all are stopped at the end, whatever happened."""
    started: list[DryRunBot] = []
    try:
        yield started
    finally:
        for bot in started:
            bot.stop()


def ledger(bot: DryRunBot) -> list[Any]:
    with SqlStore(bot.store_url) as store:
        return list(store.ledger())


def price_at(plan: dict[str, Any], r: float) -> float:
    return float(plan["entry_price"]) + r * float(plan["r_unit"])


def sells(trade: dict[str, Any]) -> list[dict[str, Any]]:
    return [o for o in trade["orders"]
            if o["ft_order_side"] == "sell" and o["status"] == "closed" and o.get("filled")]


def rows_if(bot: DryRunBot, n: int) -> list[Any] | None:
    rows = ledger(bot)
    return rows if len(rows) == n else None


def trade_if(
    bot: DryRunBot, trade_id: int, condition: Callable[[dict[str, Any]], bool]
) -> dict[str, Any] | None:
    trade = bot.trade(trade_id)
    return trade if condition(trade) else None


def test_tp_ladder_partials_breakeven_trailing_then_tp3_settles_once(
    tmp_path: Path, exchange: LoopbackProcess, bots: list[DryRunBot]
) -> None:
    bot = DryRunBot(tmp_path / "bot", exchange, pairs=["BTC/USDT"], metastrategy=RIDER)
    bots.append(bot)
    bot.start()
    opened, plan = bot.force_entry("BTC/USDT")
    tid = int(opened["trade_id"])
    assert plan["profile"]["strategy_id"] == "trend_rider", plan
    assert plan["amount"] == pytest.approx(opened["amount"])
    entry, one_r = float(plan["entry_price"]), float(plan["r_unit"])
    assert entry == pytest.approx(opened["open_rate"]) and one_r > 0
    assert bot.trade(tid)["stop_loss_abs"] == pytest.approx(entry - 2 * one_r, rel=1e-4)

    # TP1 (5 R): 30% closes, the stop moves to breakeven
    exchange.set_price("BTC/USDT", price_at(plan, 5.5))
    after_tp1 = bot.wait_for(
        lambda: trade_if(bot, tid, lambda t: len(sells(t)) == 1
                         and t["stop_loss_abs"] >= entry * (1 - 1e-6)),
        20, "the TP1 partial and the breakeven stop",
    )
    assert sells(after_tp1)[0]["ft_order_tag"] == "tp1"
    assert sells(after_tp1)[0]["filled"] == pytest.approx(0.3 * plan["amount"], rel=1e-3)
    assert after_tp1["is_open"]

    # TP2 (8 R): another 30%, the stop trails 1.5 R behind the best price
    exchange.set_price("BTC/USDT", price_at(plan, 8.5))
    after_tp2 = bot.wait_for(
        lambda: trade_if(bot, tid, lambda t: len(sells(t)) == 2
                         and t["stop_loss_abs"] >= price_at(plan, 8.5 - 1.5) * (1 - 1e-4)),
        20, "the TP2 partial and the trailing stop",
    )
    assert sells(after_tp2)[1]["ft_order_tag"] == "tp2"
    assert after_tp2["is_open"]
    assert ledger(bot) == []  # partial exits teach nothing: the reward is the whole trade's

    # TP3 (12 R): the rest closes
    exchange.set_price("BTC/USDT", price_at(plan, 12.5))
    closed = bot.wait_for(lambda: bot.closed_trade(tid), 20, "the TP3 exit")
    assert closed["exit_reason"] == "roi"
    assert len(sells(closed)) == 3

    rows = bot.wait_for(lambda: ledger(bot), 10, "the reward in the store")
    assert len(rows) == 1
    row = rows[0]
    assert row.trade_id.startswith("BTC/USDT|") and row.trade_id.endswith(f"|{tid}")
    assert (row.symbol, row.regime, row.strategy) == ("BTC/USDT", plan["regime"], "trend_rider")
    assert row.probability == pytest.approx(1.0)
    # the settled R is the whole trade's, fees and partials included, recomputed from the fills
    assert row.reward == pytest.approx(realized_r(closed, plan), rel=1e-6, abs=1e-9)
    assert row.reward == pytest.approx(
        closed["profit_abs"] / (plan["amount"] * one_r), rel=1e-6, abs=1e-9
    )
    # ... and close to the plan: 30% at 5.5 R, 30% at 8.5 R, 40% at 12.5 R, minus ~0.2% fees
    gross = 0.3 * 5.5 + 0.3 * 8.5 + 0.4 * 12.5
    fees = (closed["fee_open"] + closed["fee_close"]) * entry / one_r
    assert row.reward == pytest.approx(gross - fees, abs=0.05 + 0.2 * fees)

    # a few more loops and a restart settle nothing twice
    bot.wait_loops(2)
    assert bot.stop() in (0, 130)
    bot.start()
    bot.wait_loops(2)
    assert len(ledger(bot)) == 1


def test_sigkill_then_price_through_stop_closes_on_frozen_stop_once(
    tmp_path: Path, exchange: LoopbackProcess, bots: list[DryRunBot]
) -> None:
    bot = DryRunBot(tmp_path / "bot", exchange, pairs=["ETH/USDT"],
                    metastrategy={**RIDER, "default_strategy": "scalp"})
    bots.append(bot)
    bot.start()
    opened, plan = bot.force_entry("ETH/USDT")
    tid = int(opened["trade_id"])
    assert plan["profile"]["strategy_id"] == "trend_rider"
    bot.wait_for(lambda: bot.trade(tid)["stop_loss_abs"] > 0, 10, "the initial stop")

    # crash; the price falls 1.5 R: below what the default profile (scalp, 0.8 R) would
    # tolerate, above the frozen trend_rider stop (2 R)
    bot.kill()
    exchange.set_price("ETH/USDT", price_at(plan, -1.5))
    bot.start()
    bot.wait_loops(3)
    still = bot.trade(tid)
    assert still["is_open"], f"closed on a stop that was not frozen:\n{bot.diagnostics()}"
    assert still["stop_loss_abs"] == pytest.approx(price_at(plan, -2.0), rel=1e-4)
    assert "has no frozen metastrategy data" not in bot.log.read_text()

    # crash again; the price moves through the frozen stop while the bot is down
    bot.kill()
    exchange.set_price("ETH/USDT", price_at(plan, -2.3))
    bot.start()
    closed = bot.wait_for(lambda: bot.closed_trade(tid), 20, "the stop-loss exit after restart")
    assert closed["exit_reason"] in ("stop_loss", "trailing_stop_loss"), closed
    assert closed["close_rate"] == pytest.approx(price_at(plan, -2.3), rel=1e-3)

    rows = bot.wait_for(lambda: ledger(bot), 10, "the reward in the store")
    assert len(rows) == 1
    assert (rows[0].regime, rows[0].strategy) == (plan["regime"], "trend_rider")
    assert rows[0].reward == pytest.approx(realized_r(closed, plan), rel=1e-6, abs=1e-9)
    assert rows[0].reward < -2.3  # the whole fall, plus fees
    bot.wait_loops(2)
    assert len(ledger(bot)) == 1


def test_two_pairs_stopped_in_one_loop_and_a_forced_exit_settle_once_each(
    tmp_path: Path, exchange: LoopbackProcess, bots: list[DryRunBot]
) -> None:
    pairs = ["BTC/USDT", "ETH/USDT", "SOL/USDT"]
    bot = DryRunBot(tmp_path / "bot", exchange, pairs=pairs, metastrategy=RIDER)
    bots.append(bot)
    bot.start()
    entries = {pair: bot.force_entry(pair) for pair in pairs}

    # BTC and ETH through their stops for the same loop: the bot is paused (/stop) so that no
    # loop can see one pair moved and not the other, both move at once, /start resumes
    bot.client.stop()
    bot.wait_for(lambda: (bot.client.show_config() or {}).get("state") == "stopped", 15,
                 "the bot to pause")
    exchange.set_prices({p: price_at(entries[p][1], -2.5) for p in ("BTC/USDT", "ETH/USDT")})
    bot.client.start()
    closed = {
        p: bot.wait_for(lambda p=p: bot.closed_trade(int(entries[p][0]["trade_id"])), 20,
                        f"{p} stop")
        for p in ("BTC/USDT", "ETH/USDT")
    }
    # SOL closed by hand through the REST API
    sol_id = int(entries["SOL/USDT"][0]["trade_id"])
    answer = bot.client.forceexit(sol_id)
    assert isinstance(answer, dict) and "result" in answer, answer
    closed["SOL/USDT"] = bot.wait_for(lambda: bot.closed_trade(sol_id), 20, "the forced exit")
    assert closed["SOL/USDT"]["exit_reason"] == "force_exit"

    rows = bot.wait_for(lambda: rows_if(bot, 3), 15, "three rewards")
    by_pair = {row.symbol: row for row in rows}
    assert set(by_pair) == set(pairs)
    for pair in pairs:
        trade, plan = closed[pair], entries[pair][1]
        assert by_pair[pair].trade_id.endswith(f"|{trade['trade_id']}")
        assert by_pair[pair].reward == pytest.approx(realized_r(trade, plan), rel=1e-6,
                                                     abs=1e-9)

    # freqtrade-metastrategy show reads the live store while the bot runs (SQLite WAL)
    shown = subprocess.run(
        [sys.executable, "-m", "freqtrade_metastrategy.cli", "show", "-c",
         str(bot.config.base), "--json"],
        cwd=REPO_ROOT, env=make_offline_env(), capture_output=True, text=True, timeout=60,
    )
    assert shown.returncode == 0, shown.stderr
    cells = json.loads(shown.stdout)
    assert sum(c["count"] for c in cells) == 3
    assert {c["symbol"] for c in cells} == set(pairs)
    assert bot.proc is not None and bot.proc.poll() is None  # still running
    bot.wait_loops(2)
    assert len(ledger(bot)) == 3


def file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize(
    ("bad", "named"),
    [
        ({"epsilon": 1.5}, "metastrategy.epsilon"),
        ({"thresholds": {"trend_adx_treshold": 30}}, "metastrategy.thresholds.trend_adx_treshold"),
    ],
)
def test_wrong_metastrategy_config_refuses_to_start_and_leaves_the_store(
    tmp_path: Path, exchange: LoopbackProcess, bots: list[DryRunBot], bad: dict[str, Any],
    named: str,
) -> None:
    bot = DryRunBot(tmp_path / "bot", exchange, pairs=["BTC/USDT"], metastrategy=bad)
    bots.append(bot)
    store_path = tmp_path / "bot" / "metastrategy.sqlite"
    with SqlStore(bot.store_url) as store:
        store.apply_reward("BTC/USDT", "trend_up", "moderate", 1.25, alpha=0.2,
                           trade_id="BTC/USDT|earlier|1")
    before = file_digest(store_path), store_path.stat().st_mtime_ns
    bot.start(wait=False)
    code = bot.wait_exit(timeout=60)
    output = bot.log.read_text()
    assert code == 2, output  # OperationalException: Freqtrade exits 2
    assert named in output, output
    assert "Changing state to: RUNNING" not in output
    assert (file_digest(store_path), store_path.stat().st_mtime_ns) == before
    with SqlStore(bot.store_url) as store:
        assert [row.reward for row in store.ledger()] == [1.25]


def test_thin_order_book_makes_the_entry_illiquid_and_blocks_it(
    tmp_path: Path, exchange: LoopbackProcess, bots: list[DryRunBot]
) -> None:
    """Live only: the candles say BTC is liquid, its order book says otherwise."""
    bot = DryRunBot(tmp_path / "bot", exchange, pairs=["BTC/USDT", "ETH/USDT"],
                    metastrategy=RIDER)
    bots.append(bot)
    exchange.set_book("BTC/USDT", depth_scale=0.01)
    exchange.set_book("ETH/USDT", spread_bps=25)
    bot.start()
    for pair in ("BTC/USDT", "ETH/USDT"):
        answer = bot.client.forceenter(pair, "long")
        assert not (isinstance(answer, dict) and answer.get("trade_id")), answer
    bot.wait_loops(2)
    assert bot.client.status() == []
    log = bot.log.read_text()
    assert "[REGIME] BTC/USDT illiquid (order book: depth_5bps=$" in log, bot.diagnostics()
    eth = next(line for line in log.splitlines() if "[REGIME] ETH/USDT illiquid" in line)
    assert "spread=25.0bps > 10.0bps" in eth, eth  # (and no depth within 5 bps of the mid)
    # a normal book again: the entry goes through
    exchange.control("book", {"symbol": "BTC/USDT", "reset": True})
    _, plan = bot.force_entry("BTC/USDT")
    assert plan["regime"] != "illiquid"
