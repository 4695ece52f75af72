"""Full-information learning in Freqtrade backtests: the backtest makes, on every signal it
decided, the same decision as ``evaluate``'s replay of the configured policy (one
implementation), spot longs and futures shorts, with fees, both full-information policies.

Real processes: ``freqtrade backtesting`` against the loopback exchange; the replay runs
``evaluate``'s own pipeline (entries, simulator, replay) on the same config files.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from conftest import (
    REPO_ROOT,
    TEST_STRATEGY_PATH,
    module_runner,
    read_trades,
    write_offline_config,
    write_offline_futures_config,
)

from freqtrade_metastrategy.entries import load_config, load_entries
from freqtrade_metastrategy.evaluation.replay import replay
from freqtrade_metastrategy.evaluation.specs import CONFIGURED, configured_spec
from freqtrade_metastrategy.loopback import LoopbackExchange

pytestmark = pytest.mark.slow

TIMERANGE = "20230101-20230801"
STRATEGY_PATH = REPO_ROOT / "user_data" / "strategies"

CASES = {
    # (market, policy): settings beyond the defaults. Fees: spot, the exchange's 0.1% per fill
    # (the config has none: Freqtrade and the strategy take the market's, evaluate 0.1%);
    # futures, the config's 0.05% (Binance USD-M's taker fee), which all three use.
    ("spot", "walk_forward_static"): {},
    ("spot", "contextual_ridge"): {"min_signals": 60},
    ("futures", "walk_forward_static"): {"stand_aside_margin": -0.05},
    ("futures", "contextual_ridge"): {"min_signals": 60, "estimator": "mean"},
}
FUTURES_FEE = 0.0005


def _run_case(root: Path, market: str, policy: str, extra: dict[str, Any],
              futures_datadir: Path) -> dict[str, Any]:
    section = {"policy": policy, "min_signals": 100, "half_life": 300,
               "backtest_qtable_file": str(root / "qtable.json"), **extra}
    overrides: dict[str, Any] = {"stake_amount": 1000, "dry_run_wallet": 10000,
                                 "max_open_trades": 4, "metastrategy": section}
    if market == "futures":
        overrides["fee"] = FUTURES_FEE
    runner = module_runner()
    if market == "spot":
        with LoopbackExchange(REPO_ROOT / "user_data" / "data" / "binance", port=0) as ex:
            cfg = write_offline_config(root, ex.url, overrides=overrides)
            strategy, path = "MetaStrategy", STRATEGY_PATH
            run = runner(cfg.backtest_args(strategy, TIMERANGE, path), timeout=300)
    else:
        with LoopbackExchange(futures_datadir, port=0) as ex:
            cfg = write_offline_futures_config(root, ex.url, datadir=futures_datadir,
                                               overrides=overrides)
            strategy, path = "MetaFuturesStrategy", TEST_STRATEGY_PATH
            run = runner(cfg.backtest_args(strategy, TIMERANGE, path), timeout=300)
    assert run.ok, run.tail()
    decisions = json.loads((root / "metastrategy_decisions.json").read_text())
    ledger = json.loads((root / "qtable.json").read_text())["ledger"]
    trades = read_trades(cfg.backtest_dir, strategy)
    logging.getLogger("freqtrade").setLevel(logging.ERROR)
    config = load_config([cfg.base, cfg.overlay], strategy=strategy, strategy_path=path,
                         datadir=cfg.datadir)
    es = load_entries(config, TIMERANGE)
    out = es.simulated_outcomes()
    assert es.fee == (FUTURES_FEE if market == "futures" else 0.001)
    res = replay(out, [configured_spec(es.ms_config)], unit="r_atr", seed=0,
                 profiles=es.profiles, hindsight=False)
    return {"decisions": decisions, "ledger": ledger, "trades": trades, "replay": res}


@pytest.fixture(scope="module", params=list(CASES), ids=lambda c: f"{c[0]}-{c[1]}")
def case(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
         futures_datadir: Path) -> dict[str, Any]:
    market, policy = request.param
    root = tmp_path_factory.mktemp(f"learn-{market}-{policy}")
    return {"market": market, **_run_case(root, market, policy, CASES[request.param],
                                          futures_datadir)}


def test_backtest_decides_like_evaluates_replay_on_every_signal(case: dict[str, Any]) -> None:
    res = case["replay"]
    ent = res.table.entries
    chosen = res.profiles_chosen(CONFIGURED)
    index = {(p, int(t.value), s): i for i, (p, t, s) in
             enumerate(zip(ent["pair"], ent["signal_time"], ent["side"], strict=True))}
    log = case["decisions"]["decisions"]
    assert len(log) > 200
    warm = sum(d["released"] < 100 for d in log)
    assert 0 < warm < len(log)
    mismatches = [(d, chosen[index[(d["pair"], d["signal_ns"], d["side"])]]) for d in log
                  if chosen[index[(d["pair"], d["signal_ns"], d["side"])]]
                  != (d["profile"] or "stand_aside")]
    assert mismatches == []
    sides = {d["side"] for d in log}
    assert sides == ({"long", "short"} if case["market"] == "futures" else {"long"})
    stood = sum(d["profile"] is None for d in log)
    assert 0 < stood < len(log)
    per_regime = case["decisions"]["per_regime"]
    assert sum(v["decisions"] for v in per_regime.values()) == len(log)
    assert sum(v["stand_aside"] for v in per_regime.values()) == stood


def test_every_trade_uses_the_profile_the_policy_chose(case: dict[str, Any]) -> None:
    """The trades Freqtrade opened are exactly the signals the policy did not stand aside on
    (and had a slot for), each with the chosen profile; every one settles a reward once."""
    by_signal = {(d["pair"], d["signal_ns"], d["side"]): d for d in case["decisions"]["decisions"]}
    rows = {}
    for r in case["ledger"]:
        pair, opened_at, _ = r["trade_id"].split("|")
        rows[(pair, _utc(opened_at))] = r
    assert len(rows) == len(case["trades"]) > 20
    for t in case["trades"]:
        opened = _utc(t["open_date"])
        signal = opened - pd.Timedelta(hours=1)
        side = "short" if t["is_short"] else "long"
        d = by_signal[(t["pair"], signal.value, side)]
        assert d["profile"] is not None, t
        assert rows[(t["pair"], opened)]["strategy"] == d["profile"]


def _utc(value: str) -> pd.Timestamp:
    ts = pd.Timestamp(value)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def test_a_bandit_with_stand_aside_in_a_backtest(tmp_path: Path) -> None:
    """``"policy": "epsilon_greedy", "stand_aside": true``: the seeds' learner declines the
    entries whose exploited cell expects less than the margin (logged), trades the rest, and
    settles every trade once; without ``stand_aside`` the same config never declines."""
    runs = {}
    with LoopbackExchange(REPO_ROOT / "user_data" / "data" / "binance", port=0) as ex:
        for name, extra in (("seeds", {}), ("aside", {"stand_aside": True})):
            root = tmp_path / name
            cfg = write_offline_config(root, ex.url, overrides={
                "stake_amount": 1000, "dry_run_wallet": 10000, "max_open_trades": 4,
                "metastrategy": {"policy": "epsilon_greedy", "min_samples": 3,
                                 "backtest_qtable_file": str(root / "qtable.json"), **extra}})
            run = module_runner()([*cfg.backtest_args("MetaStrategy", TIMERANGE, STRATEGY_PATH),
                                   "-v"], timeout=300)
            assert run.ok, run.tail()
            ledger = json.loads((root / "qtable.json").read_text())["ledger"]
            runs[name] = (run, read_trades(cfg.backtest_dir), ledger)
    seeds_run, seeds_trades, _ = runs["seeds"]
    aside_run, aside_trades, aside_ledger = runs["aside"]
    assert "stand aside: best predicted" not in seeds_run.output
    assert "stand aside: best predicted" in aside_run.output
    assert 20 < len(aside_trades) < len(seeds_trades)
    assert len(aside_ledger) == len(aside_trades)
