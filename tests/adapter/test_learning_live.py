"""Full-information learning live (dry-run, real processes): signals are watched as candles
close, learned when every virtual trade has closed, persisted once per loop; a SIGKILL loses
nothing and counts nothing twice; ``reset`` by another process stays reset.

The store is created with its watermark ten days back, so the bot learns from the signals in
the candles it downloads at start-up (the loopback exchange replays the bundled candles on the
wall clock; a new 1h candle would take an hour).
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from conftest import REPO_ROOT, make_offline_env
from helpers.dryrun import DryRunBot, LoopbackProcess

from freqtrade_metastrategy.config import MetaStrategyConfig
from freqtrade_metastrategy.evaluation.simulator import infer_tick_sizes
from freqtrade_metastrategy.profiles import BUILTIN_PROFILES
from freqtrade_metastrategy.store import SqlStore
from freqtrade_metastrategy.virtual_trades import signal_rows, simulate_signals

pytestmark = pytest.mark.slow

PAIRS = ["BTC/USDT", "ETH/USDT"]
SETTINGS = {"min_signals": 5, "half_life": 50}


@pytest.fixture
def bot(tmp_path: Path, exchange: LoopbackProcess) -> Iterator[DryRunBot]:
    b = DryRunBot(tmp_path / "bot", exchange, pairs=PAIRS, metastrategy=SETTINGS)
    with SqlStore(b.store_url) as store:
        store.reset(now=datetime.now(UTC) - timedelta(days=10))
    try:
        yield b
    finally:
        b.stop()


def logged(bot: DryRunBot) -> str:
    """The log since the last start, lines re-joined (the console handler wraps them)."""
    return " ".join(bot.log_since_start().split())


def state(bot: DryRunBot) -> tuple[dict[str, Any] | None, int]:
    with SqlStore(bot.store_url) as store:
        return store.learner_state()


def saved_after(bot: DryRunBot, generation: int) -> dict[str, Any] | None:
    doc, gen = state(bot)
    return doc if doc is not None and gen > generation else None


def expected(bot: DryRunBot, since: datetime) -> tuple[set[tuple[str, int, str]],
                                                       set[tuple[str, int, str]]]:
    """Independently, from the bot's own analysed candles (REST): the signals since the
    watermark whose virtual trades all closed, and those still open."""
    ms = MetaStrategyConfig.from_dict(SETTINGS)
    profiles = {p: ms.profiles[p] for p in BUILTIN_PROFILES}
    done: set[tuple[str, int, str]] = set()
    open_: set[tuple[str, int, str]] = set()
    for pair in PAIRS:
        raw = bot.client.pair_candles(pair, "1h")
        frame = pd.DataFrame(raw["data"], columns=raw["columns"])
        frame["date"] = pd.to_datetime(frame["date"], utc=True)
        first = int(np.searchsorted(frame["date"].to_numpy(dtype="datetime64[ns]").astype("int64"),
                                    int(since.timestamp() * 1e9)))
        rows = signal_rows(frame, block_illiquid=True, start=first)
        tick = infer_tick_sizes({pair: frame})[pair]
        for s in simulate_signals(frame, pair, rows, profiles, fee=0.001, unit="r_atr",
                                  tick_size=tick, open_at_end=True):
            (done if s.release_ns is not None else open_).add(s.key)
    return done, open_


def keys(doc: dict[str, Any]) -> tuple[int, set[tuple[str, int, str]]]:
    """(signals learned or waiting for release, the watched signals' keys)."""
    lrn = doc["learner"]
    watched = {(w["pair"], int(w["signal_ns"]), w["side"]) for w in doc["tracker"]["watching"]}
    return lrn["released"] + len(lrn["pending"]), watched


def test_live_learner_learns_every_closed_signal_once_across_a_sigkill(
    bot: DryRunBot, tmp_path: Path
) -> None:
    with SqlStore(bot.store_url) as store:
        since = store.watermark()
    bot.start()
    doc1 = bot.wait_for(lambda: saved_after(bot, 0), 60, "the learner's first save")
    done, still_open = expected(bot, since)
    assert len(done) > 10, (done, still_open)
    learned, watched = keys(doc1)
    assert learned == len(done)
    assert watched == still_open
    assert set(doc1["tracker"]["seen_through"]) == set(PAIRS)
    assert "[RL] full-information learner (walk_forward_static): starts empty" in logged(bot)

    bot.kill()  # SIGKILL
    bot.start()
    bot.wait_for(lambda: "signals learned" in logged(bot), 60, "the reload")
    bot.wait_loops(3)
    doc2, _ = state(bot)
    assert doc2 is not None
    assert keys(doc2) == keys(doc1)  # nothing lost, nothing twice
    assert doc2["learner"]["means"] == doc1["learner"]["means"]
    assert doc2["learner"]["released"] == doc1["learner"]["released"]

    # a forced entry is never stood aside, whatever the policy predicts (its signal candle
    # carries no entry signal): it trades the profile the policy ranks first
    _, gen = state(bot)
    opened = bot.force_enter("ETH/USDT")
    plan = bot.frozen(int(opened["trade_id"]))
    assert plan is not None and plan["profile"]["strategy_id"] in BUILTIN_PROFILES
    assert "[STRATEGY] ETH/USDT stand aside" not in logged(bot)
    # deciding released what had closed by the signal candle; the next loop saved it
    doc3 = bot.wait_for(lambda: saved_after(bot, gen), 30, "the save after the decision")
    assert doc3["learner"]["released"] > 0
    assert keys(doc3) == keys(doc1)
    assert doc3["tracker"]["counts"] == {}  # a forced entry is not the policy's decision

    shown = subprocess.run(
        [sys.executable, "-m", "freqtrade_metastrategy.cli", "show", "-c", str(bot.config.base)],
        cwd=REPO_ROOT, env=make_offline_env(), capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0, shown.stderr
    assert "full-information learner: walk_forward_static" in shown.stdout
    assert f"{doc3['learner']['released']} signals learned" in shown.stdout


def test_reset_while_the_bot_runs_is_not_overwritten(bot: DryRunBot) -> None:
    bot.start()
    bot.wait_for(lambda: saved_after(bot, 0), 60, "the learner's first save")
    _, gen = state(bot)
    reset = subprocess.run(
        [sys.executable, "-m", "freqtrade_metastrategy.cli", "reset", "-c", str(bot.config.base),
         "--yes"], cwd=REPO_ROOT, env=make_offline_env(), capture_output=True, text=True,
        timeout=60)
    assert reset.returncode == 0, reset.stderr
    doc, gen_after = state(bot)
    assert doc is None and gen_after > gen
    # The running bot still holds its old learner. A forced entry makes it decide (and so
    # change its state): its next save finds the store reset and reloads instead of writing
    # the old learner back.
    bot.force_enter("BTC/USDT")
    bot.wait_for(lambda: "reloading the full-information learner" in logged(bot), 30,
                 "the reload after the reset")
    bot.wait_loops(2)
    doc, _ = state(bot)
    assert doc is None or doc["learner"]["released"] == 0, doc
