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
from conftest import REPO_ROOT, TEST_STRATEGY_PATH, make_offline_env
from helpers.dryrun import DryRunBot, LoopbackProcess, realized_r

from freqtrade_metastrategy.profiles import BUILTIN_PROFILES
from freqtrade_metastrategy.regime import REGIMES, MarketRegime
from freqtrade_metastrategy.store import SqlStore

pytestmark = pytest.mark.slow

#: The seeds' learner ("policy": "epsilon_greedy", one setting away from the default) with
#: epsilon 0 and an empty table: the per-regime heuristic decides, deterministically.
RIDER: dict[str, Any] = {
    "policy": "epsilon_greedy",
    "epsilon": 0.0,
    "profiles": {"trend_rider": {"suitable_for_ranging": True, "suitable_for_low_vol": True}},
    "heuristic": {r.value: "trend_rider" for r in REGIMES if r != MarketRegime.ILLIQUID},
}


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
    """The price ``r`` R from the entry in the trade's favour (below it for shorts)."""
    sign = -1.0 if plan["side"] == "short" else 1.0
    return float(plan["entry_price"]) + sign * r * float(plan["r_unit"])


def exits(trade: dict[str, Any]) -> list[dict[str, Any]]:
    """The trade's filled exit orders (sells of a long, buys of a short)."""
    side = "buy" if trade.get("is_short") else "sell"
    return [o for o in trade["orders"]
            if o["ft_order_side"] == side and o["status"] == "closed" and o.get("filled")]


sells = exits


def at_least(plan: dict[str, Any], stop: float, level: float) -> bool:
    """Whether ``stop`` is at ``level`` or better for the trade (above for longs, below for
    shorts), within the 1e-4 the exchange's rounding allows."""
    if plan["side"] == "short":
        return stop <= level * (1 + 1e-4)
    return stop >= level * (1 - 1e-4)


def rows_if(bot: DryRunBot, n: int) -> list[Any] | None:
    rows = ledger(bot)
    return rows if len(rows) == n else None


def trade_if(
    bot: DryRunBot, trade_id: int, condition: Callable[[dict[str, Any]], bool]
) -> dict[str, Any] | None:
    trade = bot.trade(trade_id)
    return trade if condition(trade) else None


ALL_REGIMES_OK = {"suitable_for_trending": True, "suitable_for_ranging": True,
                  "suitable_for_high_vol": True, "suitable_for_low_vol": True}
#: A user profile from config (its own levels, fractions, breakeven offset and trail).
USER_PROFILE: dict[str, Any] = {
    "r_sl": 1.2, "r_tp1": 1.5, "r_tp2": 2.5, "r_tp3": 4.0, "partial_close_tp1": 0.4,
    "partial_close_tp2": 0.4, "partial_close_tp3": 0.2, "breakeven_offset_r": 0.1,
    "trail_distance_r": 0.7,
}
LADDER_PROFILES = [*sorted(BUILTIN_PROFILES), "my_ladder"]


def pinned(profile: str) -> dict[str, Any]:
    """A config whose learner deterministically chooses ``profile`` in every liquid regime:
    the seeds' learner with epsilon 0, an empty table (so the per-regime heuristic decides),
    ``profile`` suitable
    everywhere and named by the heuristic for every regime."""
    spec = {**(USER_PROFILE if profile == "my_ladder" else {}), **ALL_REGIMES_OK}
    return {
        "policy": "epsilon_greedy",
        "epsilon": 0.0,
        "profiles": {profile: spec},
        "heuristic": {r.value: profile for r in REGIMES if r != MarketRegime.ILLIQUID},
    }


#: market -> (pair, side): a spot long and an isolated USDT-M futures short (dry-run), and a
#: spot long traded live (not dry-run) on the loopback exchange's account, which charges and
#: reports Binance's fees (in the base asset on buys: the position is the amount after fee).
MARKETS = {"long": ("BTC/USDT", "long"), "short": ("BTC/USDT:USDT", "short"),
           "live-long": ("BTC/USDT", "long")}
#: The restart at the end of the ladder: for two profiles (one whose TP1 closes half) per
#: market; restarts have their own tests below.
RESTART_PROFILES = ("ultra_aggressive", "trend_rider")
LADDER_CASES = [
    *((profile, market) for profile in LADDER_PROFILES for market in ("long", "short")),
    ("ultra_aggressive", "live-long"), ("trend_rider", "live-long"),
]


def ladder_bot(workdir: Path, exchange: LoopbackProcess, market: str,
               metastrategy: dict[str, Any]) -> DryRunBot:
    pair, side = MARKETS[market]
    if side == "short":
        return DryRunBot(workdir, exchange, pairs=[pair], metastrategy=metastrategy,
                         futures=True, strategy="MetaFuturesStrategy",
                         strategy_path=TEST_STRATEGY_PATH)
    return DryRunBot(workdir, exchange, pairs=[pair], metastrategy=metastrategy,
                     live_trading=market.startswith("live"))


def enter(bot: DryRunBot, pair: str, side: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Force an entry; wait for its fill and the plan frozen on it: (trade, plan)."""
    opened = bot.force_enter(pair, side)
    tid = int(opened["trade_id"])
    plan = bot.wait_for(lambda: bot.frozen(tid), 20, f"{pair} frozen plan")
    return opened, plan


@pytest.mark.parametrize(("profile", "market"), LADDER_CASES)
def test_tp_ladder_partials_breakeven_trailing_then_tp3_settles_once(
    tmp_path: Path, exchange: LoopbackProcess, bots: list[DryRunBot], profile: str, market: str
) -> None:
    """The whole ladder live, for every built-in profile and a user profile, a spot long and a
    futures short (and two profiles traded live with fees): TP1 closes its fraction (tag tp1)
    and moves the stop to breakeven, TP2 closes its fraction (tag tp2) and starts the trail,
    TP3 closes the rest (roi); one reward, the whole trade's R, signed for the side."""
    pair, side = MARKETS[market]
    bot = ladder_bot(tmp_path / "bot", exchange, market, pinned(profile))
    bots.append(bot)
    bot.start()
    opened, plan = enter(bot, pair, side)
    tid = int(opened["trade_id"])
    p = plan["profile"]
    assert p["strategy_id"] == profile, plan
    assert plan["side"] == side and opened["is_short"] is (side == "short")
    if profile == "my_ladder":
        assert {k: p[k] for k in USER_PROFILE} == USER_PROFILE
    assert plan["amount"] == pytest.approx(opened["amount"])
    entry, one_r = float(plan["entry_price"]), float(plan["r_unit"])
    assert entry == pytest.approx(opened["open_rate"]) and one_r > 0
    assert bot.trade(tid)["stop_loss_abs"] == pytest.approx(price_at(plan, -p["r_sl"]), rel=1e-4)
    x1 = p["r_tp1"] + min(0.5, (p["r_tp2"] - p["r_tp1"]) / 2)
    x2 = p["r_tp2"] + min(0.5, (p["r_tp3"] - p["r_tp2"]) / 2)
    x3 = p["r_tp3"] + 0.5
    f1, f2 = p["partial_close_tp1"], p["partial_close_tp2"]

    # TP1: its fraction closes, the stop moves to breakeven (+ offset); the trade stays open
    exchange.set_price(pair, price_at(plan, x1))
    breakeven = price_at(plan, p["breakeven_offset_r"])
    bot.wait_for(
        lambda: trade_if(bot, tid, lambda t: len(exits(t)) >= 1
                         and at_least(plan, t["stop_loss_abs"], breakeven)),
        20, "the TP1 partial and the breakeven stop",
    )
    bot.wait_loops(2)  # a second tp1 would show here (the live ladder once sold the rest)
    after_tp1 = bot.trade(tid)
    assert [o["ft_order_tag"] for o in exits(after_tp1)] == ["tp1"], bot.diagnostics()
    assert exits(after_tp1)[0]["filled"] == pytest.approx(f1 * plan["amount"], rel=1e-3)
    assert after_tp1["is_open"]
    assert after_tp1["stop_loss_abs"] == pytest.approx(breakeven, rel=1e-4)
    assert ledger(bot) == []  # a partial teaches nothing: the reward is the whole trade's

    # TP2: its fraction closes, the stop trails trail_distance_r behind the best price
    exchange.set_price(pair, price_at(plan, x2))
    trail = price_at(plan, x2 - p["trail_distance_r"])
    after_tp2 = bot.wait_for(
        lambda: trade_if(bot, tid, lambda t: len(exits(t)) == 2
                         and at_least(plan, t["stop_loss_abs"], trail)),
        20, "the TP2 partial and the trailing stop",
    )
    assert exits(after_tp2)[1]["ft_order_tag"] == "tp2"
    assert exits(after_tp2)[1]["filled"] == pytest.approx(f2 * plan["amount"], rel=1e-3)
    assert after_tp2["is_open"]
    assert after_tp2["stop_loss_abs"] == pytest.approx(trail, rel=1e-4)
    assert ledger(bot) == []

    # TP3: the rest closes
    exchange.set_price(pair, price_at(plan, x3))
    closed = bot.wait_for(lambda: bot.closed_trade(tid), 20, "the TP3 exit")
    assert closed["exit_reason"] == "roi"
    assert len(exits(closed)) == 3

    rows = bot.wait_for(lambda: ledger(bot), 10, "the reward in the store")
    assert len(rows) == 1
    row = rows[0]
    assert row.trade_id.startswith(f"{pair}|") and row.trade_id.endswith(f"|{tid}")
    assert (row.symbol, row.regime, row.strategy) == (pair, plan["regime"], profile)
    assert row.probability == pytest.approx(1.0)
    # the settled R is the whole trade's, fees and partials included, recomputed from the fills
    assert row.reward == pytest.approx(realized_r(closed, plan), rel=1e-6, abs=1e-9)
    assert row.reward == pytest.approx(
        closed["profit_abs"] / (plan["amount"] * one_r), rel=1e-6, abs=1e-9
    )
    # ... and close to the plan: each fraction at its price, minus ~0.2% fees; a winning
    # short is as positive as a winning long
    gross = f1 * x1 + f2 * x2 + (1 - f1 - f2) * x3
    fees = (closed["fee_open"] + closed["fee_close"]) * entry / one_r
    assert row.reward == pytest.approx(gross - fees, abs=0.05 + 0.2 * fees)

    # a few more loops (and a restart) settle nothing twice
    bot.wait_loops(2)
    if profile in RESTART_PROFILES:
        assert bot.stop() in (0, 130)
        bot.start()
        bot.wait_loops(2)
    assert len(ledger(bot)) == 1


@pytest.mark.parametrize("profile", ["moderate", "trend_rider"])
def test_live_restart_without_exchange_fees_keeps_the_plan_mid_ladder(
    tmp_path: Path, bots: list[DryRunBot], profile: str
) -> None:
    """Live trading (not dry-run) on an exchange that reports no fee: Freqtrade re-handles the
    entry fill at every loop, also right after a restart, before any candle is analysed. The
    bot is killed after TP1; the restarted bot (whose config now pins another profile) keeps
    the trade's plan, stage and breakeven stop, runs TP2 and TP3, and settles one reward.
    ``moderate`` closes 50% at TP1 (the remaining half equals the partial), ``trend_rider`` 30%.
    """
    exchange = LoopbackProcess(tmp_path / "exchange", args=["--no-fees"])
    try:
        bot = DryRunBot(tmp_path / "bot", exchange, pairs=["ETH/USDT"],
                        metastrategy=pinned(profile), live_trading=True)
        bots.append(bot)
        bot.start()
        opened, plan = enter(bot, "ETH/USDT", "long")
        tid = int(opened["trade_id"])
        p = plan["profile"]
        assert p["strategy_id"] == profile
        bot.wait_for(lambda: "Updating buy-fee on trade" in bot.log_since_start(), 20,
                     "Freqtrade re-handling the entry whose fee was not reported")

        exchange.set_price("ETH/USDT", price_at(plan, p["r_tp1"] + 0.3))
        bot.wait_for(
            lambda: trade_if(bot, tid, lambda t: len(exits(t)) == 1
                             and at_least(plan, t["stop_loss_abs"], float(plan["entry_price"]))),
            20, "the TP1 partial and the breakeven stop",
        )
        frozen = bot.frozen(tid)
        assert frozen is not None and frozen["stage"] == 1

        # crash; the restarted bot's config would choose another profile for a new trade
        bot.kill()
        config = json.loads(bot.config.base.read_text())
        config["metastrategy"].update(pinned("defensive"))
        bot.config.base.write_text(json.dumps(config))
        bot.start()
        bot.wait_for(lambda: "Updating buy-fee on trade" in bot.log_since_start(), 20,
                     "the entry re-handled after the restart")
        bot.wait_loops(2)
        assert bot.frozen(tid) == frozen, bot.diagnostics()  # frozen once, ever
        still = bot.trade(tid)
        assert still["is_open"] and len(exits(still)) == 1
        assert still["stop_loss_abs"] == pytest.approx(float(plan["entry_price"]), rel=1e-4)

        # the ladder goes on with the frozen plan
        x2 = p["r_tp2"] + 0.3
        exchange.set_price("ETH/USDT", price_at(plan, x2))
        bot.wait_for(
            lambda: trade_if(bot, tid, lambda t: len(exits(t)) == 2
                             and at_least(plan, t["stop_loss_abs"],
                                          price_at(plan, x2 - p["trail_distance_r"]))),
            20, "the TP2 partial and the trailing stop",
        )
        exchange.set_price("ETH/USDT", price_at(plan, p["r_tp3"] + 0.5))
        closed = bot.wait_for(lambda: bot.closed_trade(tid), 20, "the TP3 exit")
        assert [o["ft_order_tag"] for o in exits(closed)] == ["tp1", "tp2", "roi"]
        rows = bot.wait_for(lambda: ledger(bot), 10, "the reward in the store")
        assert len(rows) == 1
        assert (rows[0].strategy, rows[0].regime) == (profile, plan["regime"])
        assert rows[0].reward == pytest.approx(realized_r(closed, plan), rel=1e-6, abs=1e-9)
        bot.wait_loops(3)  # the closing fill is re-handled every loop too: no second reward
        assert len(ledger(bot)) == 1
        assert "already settled" not in bot.log_since_start()
    finally:
        for b in bots:
            b.stop()
        exchange.stop()


def test_reset_then_restart_with_old_closed_trades_brings_nothing_back(
    tmp_path: Path, exchange: LoopbackProcess, bots: list[DryRunBot]
) -> None:
    """``freqtrade-metastrategy reset`` forgets what the bot learned; the next start finds the
    old closed trades in Freqtrade's database and must not settle them again."""
    bot = DryRunBot(tmp_path / "bot", exchange, pairs=["BTC/USDT", "ETH/USDT"],
                    metastrategy=RIDER)
    bots.append(bot)
    bot.start()
    for pair in ("BTC/USDT", "ETH/USDT"):
        opened, _ = bot.force_entry(pair)
        tid = int(opened["trade_id"])
        bot.client.forceexit(tid)
        bot.wait_for(lambda tid=tid: bot.closed_trade(tid), 20, f"{pair} forced exit")
    bot.wait_for(lambda: rows_if(bot, 2), 15, "two rewards")
    assert bot.stop() in (0, 130)

    reset = subprocess.run(
        [sys.executable, "-m", "freqtrade_metastrategy.cli", "reset", "-c",
         str(bot.config.base), "--yes"],
        cwd=REPO_ROOT, env=make_offline_env(), capture_output=True, text=True, timeout=60,
    )
    assert reset.returncode == 0, reset.stderr
    assert ledger(bot) == []

    bot.start()
    bot.wait_loops(3)
    assert ledger(bot) == [], bot.diagnostics()
    start_log = bot.log.read_text().split(f"===== start {bot.starts} =====")[-1]
    assert "[RL] settled 0 closed trade(s) whose reward was missing" in start_log
    # the trades are still in Freqtrade's database: the store chose to forget them
    assert len(bot.client.trades()["trades"]) == 2


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
