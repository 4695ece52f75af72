"""MetaStrategy run by Freqtrade, as users run it: CLI subprocesses against the loopback exchange.

One full backtest of the bundled data (2022-2023, four pairs) runs twice per session and is
shared by the assertions below; the other tests run short backtests or Freqtrade's analysis
commands.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from conftest import (
    DATADIR,
    REPO_ROOT,
    FreqtradeRun,
    OfflineConfig,
    module_runner,
    read_trades,
    write_offline_config,
)
from freqtrade.data.converter import ohlcv_fill_up_missing_data

from freqtrade_metastrategy.indicators import compute_regime_features
from freqtrade_metastrategy.loopback import LoopbackExchange

pytestmark = pytest.mark.slow

STRATEGY_PATH = REPO_ROOT / "user_data" / "strategies"
FULL_RANGE = "20220101-20240101"
SHORT_RANGE = "20230101-20230401"


def meta_config(tmp: Path, url: str, metastrategy: dict[str, Any] | None = None) -> OfflineConfig:
    section = {"seed": 42, "backtest_qtable_file": str(tmp / "qtable.json")}
    section.update(metastrategy or {})
    return write_offline_config(
        tmp, url,
        overrides={"stake_amount": 1000, "dry_run_wallet": 10000, "max_open_trades": 4,
                   "metastrategy": section},
    )


@dataclass
class Backtest:
    run: FreqtradeRun
    config: OfflineConfig
    trades: list[dict[str, Any]]
    qtable: dict[str, Any]

    @property
    def ledger(self) -> list[dict[str, Any]]:
        return list(self.qtable["ledger"])


def backtest(
    run_freqtrade: Callable[..., FreqtradeRun], cfg: OfflineConfig, timerange: str,
) -> Backtest:
    run = run_freqtrade(cfg.backtest_args("MetaStrategy", timerange, STRATEGY_PATH), timeout=300)
    assert run.ok, run.tail()
    qfile = cfg.directory / "qtable.json"
    qtable = json.loads(qfile.read_text()) if qfile.exists() else {"entries": [], "ledger": []}
    return Backtest(run, cfg, read_trades(cfg.backtest_dir), qtable)


@pytest.fixture(scope="module")
def full_runs(
    tmp_path_factory: pytest.TempPathFactory, loopback_module: LoopbackExchange,
) -> tuple[Backtest, Backtest]:
    runner = module_runner()
    runs = []
    for i in range(2):
        cfg = meta_config(tmp_path_factory.mktemp(f"full{i}"), loopback_module.url)
        runs.append(backtest(runner, cfg, FULL_RANGE))
    return runs[0], runs[1]


@pytest.fixture(scope="module")
def loopback_module() -> Any:
    with LoopbackExchange(DATADIR, port=0) as exchange:
        yield exchange


def ledger_by_trade(bt: Backtest) -> dict[tuple[str, str], dict[str, Any]]:
    """Ledger rows keyed by (pair, open date): the strategy's trade key starts with both."""
    out = {}
    for row in bt.ledger:
        pair, opened, _ = row["trade_id"].split("|")
        out[(pair, pd.Timestamp(opened).isoformat())] = row
    return out


def signal_atr(pair: str) -> pd.Series:
    """ATR(14) per candle on the data as Freqtrade loads it (missing candles filled)."""
    df = pd.read_feather(DATADIR / f"{pair.replace('/', '_')}-1h.feather")
    df = ohlcv_fill_up_missing_data(df, "1h", pair)
    feats = compute_regime_features(df, "1h")
    return pd.Series(feats["atr"].to_numpy(), index=df["date"])


def assert_reward_is_profit(
    t: dict[str, Any], rows: dict[tuple[str, str], dict[str, Any]], atr: dict[str, pd.Series]
) -> None:
    """settled R x 1R (ATR of the signal candle) x filled entry amount == Freqtrade's
    profit_abs (rounded by Freqtrade to 8 decimals) for trade ``t``."""
    opened = pd.Timestamp(t["open_date"])
    row = rows[(t["pair"], opened.isoformat())]
    one_r = atr[t["pair"]][opened - pd.Timedelta(hours=1)]
    amount = sum(o["amount"] for o in t["orders"] if o["ft_is_entry"])
    assert row["reward"] * one_r * amount == pytest.approx(t["profit_abs"], abs=1e-6), t


# ---------------------------------------------------------------------------------------------
def test_backtest_learns_from_every_closed_trade(full_runs: tuple[Backtest, Backtest]) -> None:
    bt, _ = full_runs
    # the default policy stands aside on about half of the ~1,000 signals it may take
    assert len(bt.trades) > 100
    assert all(not t["is_open"] for t in bt.trades)
    # exactly one settled reward per closed trade
    assert len(bt.ledger) == len(bt.trades)
    assert len({r["trade_id"] for r in bt.ledger}) == len(bt.ledger)
    assert sum(e["count"] for e in bt.qtable["entries"]) == len(bt.trades)
    # the default (walk-forward static) trades the warm-up profile, then its best so far
    profiles = Counter(r["strategy"] for r in bt.ledger)
    assert len(profiles) >= 2, profiles
    # the learned table is written where the log says
    m = re.search(r"\[RL\] backtest Q-table \((\d+) rewards\) written to (\S+)", bt.run.output)
    assert m and int(m.group(1)) == len(bt.trades)
    assert Path(m.group(2)) == bt.config.directory / "qtable.json"


def test_reward_times_risk_is_freqtrades_profit(full_runs: tuple[Backtest, Backtest]) -> None:
    """settled R x 1R x filled entry amount == Freqtrade's profit_abs, for every trade."""
    bt, _ = full_runs
    rows = ledger_by_trade(bt)
    atr = {pair: signal_atr(pair) for pair in {t["pair"] for t in bt.trades}}
    exits = Counter()
    for t in bt.trades:
        assert_reward_is_profit(t, rows, atr)
        exits.update(o["ft_order_tag"] for o in t["orders"] if not o["ft_is_entry"])
    # the whole exit ladder was exercised
    assert {"tp1", "stop_loss", "roi"} <= set(exits), exits
    assert any(tag.startswith("tp2") or tag == "tp1+tp2" for tag in exits), exits


def test_two_backtests_are_identical(full_runs: tuple[Backtest, Backtest]) -> None:
    a, b = full_runs
    keys = ("pair", "open_date", "close_date", "open_rate", "close_rate", "amount", "profit_abs",
            "exit_reason")
    assert [[t[k] for k in keys] for t in a.trades] == [[t[k] for k in keys] for t in b.trades]
    assert a.qtable == b.qtable


def test_backtests_never_touch_the_live_store(full_runs: tuple[Backtest, Backtest]) -> None:
    for bt in full_runs:
        assert not list(bt.config.user_data_dir.rglob("metastrategy.sqlite*"))


def test_list_strategies_shows_metastrategy(
    run_freqtrade: Callable[..., FreqtradeRun], offline_config: OfflineConfig
) -> None:
    run = run_freqtrade(["list-strategies", "--strategy-path", str(STRATEGY_PATH),
                         *offline_config.config_args()])
    assert run.ok, run.tail()
    line = next(ln for ln in run.output.splitlines() if "MetaStrategy" in ln)
    assert "OK" in line


def test_lookahead_analysis_finds_no_bias(
    run_freqtrade: Callable[..., FreqtradeRun], tmp_path: Path, loopback_exchange: LoopbackExchange
) -> None:
    cfg = meta_config(tmp_path, loopback_exchange.url)
    run = run_freqtrade(["lookahead-analysis", "--strategy", "MetaStrategy", "--strategy-path",
                         str(STRATEGY_PATH), "--datadir", str(DATADIR), *cfg.config_args(),
                         "--timerange", SHORT_RANGE, "--targeted-trade-amount", "20",
                         "--minimum-trade-amount", "10"], timeout=300)
    assert run.ok, run.tail()
    row = next(ln for ln in run.output.splitlines() if "│ MetaStrategy.py" in ln)
    cells = [c.strip() for c in row.split("│")[1:-1]]
    # filename, strategy, has_bias, total_signals, biased_entry, biased_exit, biased_indicators
    assert cells[2] == "No" and int(cells[3]) >= 10, row
    assert cells[4:7] == ["0", "0", ""], row


def test_recursive_analysis_shows_no_drift_at_the_startup_count(
    run_freqtrade: Callable[..., FreqtradeRun], tmp_path: Path, loopback_exchange: LoopbackExchange
) -> None:
    cfg = meta_config(tmp_path, loopback_exchange.url)
    run = run_freqtrade(["recursive-analysis", "--strategy", "MetaStrategy", "--strategy-path",
                         str(STRATEGY_PATH), "--datadir", str(DATADIR), *cfg.config_args(),
                         "--timerange", SHORT_RANGE, "--startup-candle", "100", "1400"])
    assert run.ok, run.tail()
    header = next(ln for ln in run.output.splitlines() if "Indicators" in ln)
    assert "1400 (from strategy)" in header
    rows = [ln for ln in run.output.splitlines()
            if ln.startswith("│") and "%" in ln]
    assert any("adx" in r for r in rows)
    for r in rows:
        cells = [c.strip() for c in r.split("│")[1:-1]]
        at_startup = cells[2]
        assert at_startup in ("-", "0.000%", "-0.000%"), r


@pytest.mark.parametrize(
    ("section", "key"),
    [
        ({"epsilon": 2.0}, "metastrategy.epsilon"),
        ({"polcy": "ucb1"}, "metastrategy.polcy"),
        ({"profiles": {"wide": {"base": "moderate", "r_tp2": 1.0}}},
         "metastrategy.profiles.wide.r_tp2"),
        ({"thresholds": {"trend_adx_threshold": 150}},
         "metastrategy.thresholds.trend_adx_threshold"),
        ({"default_strategy": "yolo"}, "metastrategy.default_strategy"),
    ],
)
def test_invalid_config_stops_at_start_up_naming_the_key(
    run_freqtrade: Callable[..., FreqtradeRun], tmp_path: Path,
    loopback_exchange: LoopbackExchange, section: dict[str, Any], key: str,
) -> None:
    cfg = meta_config(tmp_path, loopback_exchange.url, section)
    run = run_freqtrade(cfg.backtest_args("MetaStrategy", SHORT_RANGE, STRATEGY_PATH))
    assert run.returncode == 2, run.tail()
    assert f"Invalid metastrategy config: {key}:" in run.output, run.tail()
    assert not list(cfg.backtest_dir.glob("*.zip"))


def test_disabled_uses_the_default_strategy_for_every_trade(
    run_freqtrade: Callable[..., FreqtradeRun], tmp_path: Path, loopback_exchange: LoopbackExchange
) -> None:
    cfg = meta_config(tmp_path, loopback_exchange.url,
                      {"enabled": False, "default_strategy": "trend_rider"})
    bt = backtest(run_freqtrade, cfg, SHORT_RANGE)
    assert bt.trades
    assert {r["strategy"] for r in bt.ledger} == {"trend_rider"}
    assert len(bt.ledger) == len(bt.trades)


@pytest.mark.parametrize("block", [True, False])
def test_illiquid_blocks_entries(
    run_freqtrade: Callable[..., FreqtradeRun], tmp_path: Path,
    loopback_exchange: LoopbackExchange, block: bool,
) -> None:
    # A volume floor no pair reaches makes every candle illiquid.
    cfg = meta_config(tmp_path, loopback_exchange.url, {
        "block_illiquid": block, "thresholds": {"illiquid_volume_threshold": 1e15}})
    bt = backtest(run_freqtrade, cfg, SHORT_RANGE)
    if block:
        assert bt.trades == []
    else:
        assert bt.trades and {r["regime"] for r in bt.ledger} == {"illiquid"}


def test_pretrained_table_is_the_starting_point(
    run_freqtrade: Callable[..., FreqtradeRun], tmp_path: Path,
    loopback_exchange: LoopbackExchange, full_runs: tuple[Backtest, Backtest],
) -> None:
    pretrained = tmp_path / "pretrained.json"
    pretrained.write_text(json.dumps(full_runs[0].qtable))
    before = pretrained.read_bytes()
    seeds = {"policy": "epsilon_greedy"}  # the bandit's Q-table is what is pretrained here
    cold = backtest(run_freqtrade, meta_config(tmp_path / "cold", loopback_exchange.url, seeds),
                    SHORT_RANGE)
    warm = backtest(run_freqtrade, meta_config(
        tmp_path / "warm", loopback_exchange.url, {**seeds, "pretrained": str(pretrained)}),
        SHORT_RANGE)
    assert pretrained.read_bytes() == before  # read, never written
    # the warm run's cells hold the pretrained rewards plus its own; its ledger only its own
    pre = sum(e["count"] for e in full_runs[0].qtable["entries"])
    assert sum(e["count"] for e in warm.qtable["entries"]) == pre + len(warm.trades)
    assert len(warm.ledger) == len(warm.trades)
    cold_choice = [r["strategy"] for r in cold.ledger]
    warm_choice = [r["strategy"] for r in warm.ledger]
    assert cold_choice != warm_choice  # experience changed the decisions


def test_plot_dataframe_shows_regime_and_levels(
    run_freqtrade: Callable[..., FreqtradeRun], tmp_path: Path, loopback_exchange: LoopbackExchange
) -> None:
    cfg = meta_config(tmp_path, loopback_exchange.url)
    run = run_freqtrade(["plot-dataframe", "--strategy", "MetaStrategy", "--strategy-path",
                         str(STRATEGY_PATH), "--datadir", str(DATADIR), *cfg.config_args(),
                         "--timerange", "20231001-20231101", "-p", "BTC/USDT",
                         "--trade-source", "DB"])
    assert run.ok, run.tail()
    [html] = (cfg.user_data_dir / "plot").glob("*.html")
    names = set(re.findall(r'"name":"([^"]+)"', html.read_text()))
    assert {"regime_code", "adx", "trend_strength", "atr_pct", "ms_stop_long", "ms_tp1_long",
            "ms_tp2_long", "ms_tp3_long"} <= names


def test_futures_r_is_signed_per_side_and_independent_of_leverage(
    run_freqtrade: Callable[..., FreqtradeRun], tmp_path: Path,
    futures_loopback_exchange: LoopbackExchange, futures_datadir: Path,
) -> None:
    from conftest import TEST_STRATEGY_PATH, write_offline_futures_config

    runs = {}
    for lev in (1, 3):
        cfg = write_offline_futures_config(
            tmp_path / f"lev{lev}", futures_loopback_exchange.url, datadir=futures_datadir,
            overrides={"stake_amount": 1000, "dry_run_wallet": 10000, "max_open_trades": 4,
                       "test_leverage": lev,
                       "metastrategy": {"backtest_qtable_file": str(tmp_path / f"q{lev}.json")}},
        )
        run = run_freqtrade(cfg.backtest_args("MetaFuturesStrategy", SHORT_RANGE,
                                              TEST_STRATEGY_PATH), timeout=300)
        assert run.ok, run.tail()
        trades = read_trades(cfg.backtest_dir, "MetaFuturesStrategy")
        ledger = json.loads((tmp_path / f"q{lev}.json").read_text())["ledger"]
        assert len(ledger) == len(trades)
        runs[lev] = (trades, {tuple(r["trade_id"].split("|")[:2]): r for r in ledger})
    (t1, l1), (t3, l3) = runs[1], runs[3]
    assert {t["is_short"] for t in t1} == {True, False}
    assert [t["leverage"] for t in t3] == [3.0] * len(t3)
    assert [(t["pair"], t["open_date"]) for t in t1] == [(t["pair"], t["open_date"]) for t in t3]
    for a, b in zip(t1, t3, strict=True):
        key = (a["pair"], pd.Timestamp(a["open_date"]).isoformat())
        r1, r3 = l1[key]["reward"], l3[key]["reward"]
        # Same R whatever the leverage. Not bit-identical: amounts are whole lots, so a partial
        # close is up to one lot off its fraction (e.g. TP1 closed 778 of 2596 XRP at 1x,
        # 2337 of 7790 at 3x: 29.97% vs 30.00%), which moves R by up to ~1/778 = 1.3e-3.
        # A winning short and a winning long are both > 0.
        assert r1 == pytest.approx(r3, rel=5e-3, abs=1e-3), (a, b)
        assert (r1 > 0) == (a["profit_abs"] > 0)
        assert b["profit_abs"] == pytest.approx(3 * a["profit_abs"], rel=1e-2, abs=1e-2)


@pytest.mark.parametrize("unit", ["r_risk", "ret_pct"])
def test_reward_unit_changes_what_the_learner_is_taught(
    run_freqtrade: Callable[..., FreqtradeRun], tmp_path: Path,
    loopback_exchange: LoopbackExchange, unit: str,
) -> None:
    # trend_rider: r_sl = 2, so r_risk = R / 2
    cfg = meta_config(tmp_path, loopback_exchange.url, {
        "enabled": False, "default_strategy": "trend_rider", "reward_unit": unit})
    bt = backtest(run_freqtrade, cfg, SHORT_RANGE)
    rows = ledger_by_trade(bt)
    atr = {pair: signal_atr(pair) for pair in {t["pair"] for t in bt.trades}}
    assert bt.trades and len(rows) == len(bt.trades)
    for t in bt.trades:
        opened = pd.Timestamp(t["open_date"])
        reward = rows[(t["pair"], opened.isoformat())]["reward"]
        amount = sum(o["amount"] for o in t["orders"] if o["ft_is_entry"])
        if unit == "r_risk":
            one_r = atr[t["pair"]][opened - pd.Timedelta(hours=1)]
            assert reward * 2.0 * one_r * amount == pytest.approx(t["profit_abs"], abs=1e-6)
        else:
            assert reward == pytest.approx(100 * t["profit_abs"] / (amount * t["open_rate"]),
                                           abs=1e-6)


@pytest.fixture(scope="module")
def funding_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Backtest]:
    """One spot and one futures backtest (longs and shorts) of the bundled data, the futures with
    a large funding rate (0.2% per 8h) so that funding is a visible part of every futures trade."""
    from conftest import TEST_STRATEGY_PATH, write_offline_futures_config

    from freqtrade_metastrategy.loopback.derive import derive_futures

    root = tmp_path_factory.mktemp("funding")
    datadir = root / "data"
    derive_futures(DATADIR, datadir, funding_rate=0.002)
    runner = module_runner()
    out: dict[str, Backtest] = {}
    with LoopbackExchange(DATADIR, port=0) as spot:
        cfg = meta_config(root / "spot", spot.url)
        out["spot"] = backtest(runner, cfg, SHORT_RANGE)
    with LoopbackExchange(datadir, port=0) as fut:
        qfile = root / "futures" / "qtable.json"
        cfg = write_offline_futures_config(
            root / "futures", fut.url, datadir=datadir,
            overrides={"stake_amount": 1000, "dry_run_wallet": 10000, "max_open_trades": 4,
                       "metastrategy": {"seed": 42, "backtest_qtable_file": str(qfile)}},
        )
        run = runner(cfg.backtest_args("MetaFuturesStrategy", SHORT_RANGE, TEST_STRATEGY_PATH),
                     timeout=300)
        assert run.ok, run.tail()
        out["futures"] = Backtest(run, cfg, read_trades(cfg.backtest_dir, "MetaFuturesStrategy"),
                                  json.loads(qfile.read_text()))
    return out


@pytest.mark.parametrize("market", ["spot", "futures"])
def test_reward_is_freqtrades_profit_with_funding_and_partials(
    funding_runs: dict[str, Backtest], market: str
) -> None:
    """reward x 1R x filled entry amount == Freqtrade's profit_abs on every trade, spot and
    futures (longs and shorts, non-zero funding), including trades closed in several fills:
    the funding of segments closed by partials is counted once."""
    bt = funding_runs[market]
    rows = ledger_by_trade(bt)
    assert len(rows) == len(bt.trades) > 20
    atr = {pair: signal_atr(pair.split(":")[0]) for pair in {t["pair"] for t in bt.trades}}
    partial_with_funding = 0
    for t in bt.trades:
        assert_reward_is_profit(t, rows, atr)
        exits = [o for o in t["orders"] if not o["ft_is_entry"]]
        if len(exits) > 1 and abs(t.get("funding_fees") or 0.0) > 1e-6:
            partial_with_funding += 1
    if market == "futures":
        assert {t["is_short"] for t in bt.trades} == {True, False}
        assert partial_with_funding >= 5, partial_with_funding
    else:
        assert all(not t.get("funding_fees") for t in bt.trades)
