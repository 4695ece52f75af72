"""``tune`` -> its parameter file -> ``freqtrade backtesting``: the backtest makes the trial's
decisions (same policy code, same thresholds, same illiquid block).

Real processes, spot longs and futures shorts, both full-information policies, fees: ``tune``
installs the winner's file next to a copy of the strategy (keeping the existing file's other
spaces, a copy of it in ``--out``), then ``freqtrade backtesting`` of the fold's whole range
(train start to test end) runs with that file, and every decision it logged equals the decision
of the trial's replay of that fold (:meth:`TrialEvaluator.fold_decisions`). The illiquid volume
range is widened so that the winner's threshold drops some signals in both.
"""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import (
    REPO_ROOT,
    TEST_STRATEGY_PATH,
    module_runner,
    write_offline_config,
    write_offline_futures_config,
)

from freqtrade_metastrategy.commands.tune_commands import tune_data
from freqtrade_metastrategy.config import MetaStrategyConfig
from freqtrade_metastrategy.entries import load_config
from freqtrade_metastrategy.evaluation.walkforward import rolling_splits
from freqtrade_metastrategy.loopback import LoopbackExchange
from freqtrade_metastrategy.timerange import parse_timerange
from freqtrade_metastrategy.tuning.objective import Fold, TrialEvaluator
from freqtrade_metastrategy.tuning.space import search_space

pytestmark = pytest.mark.slow

TIMERANGE = "20230101-20230801"
WALK_FORWARD = ("120D", "92D")  # one fold: train Jan-Apr, test May-Jul
ILLIQUID = (30.0, 80.0)  # M quote volume: some SOL and XRP signals fall below
CASES = {
    ("spot", "walk_forward_static"): ("MetaStrategy", REPO_ROOT / "user_data" / "strategies",
                                      {}),
    ("futures", "contextual_ridge"): ("MetaFuturesStrategy", TEST_STRATEGY_PATH,
                                      {"fee": 0.0005}),
}


def _fold() -> list[Fold]:
    full = parse_timerange(TIMERANGE)
    splits = rolling_splits(full[0], full[1], train=WALK_FORWARD[0], test=WALK_FORWARD[1])
    return [Fold((tr[0].value, tr[1].value), (te[0].value, te[1].value)) for tr, te in splits]


def _run_case(root: Path, market: str, policy: str, futures_datadir: Path) -> dict[str, Any]:
    strategy, source_dir, extra = CASES[(market, policy)]
    strategies = root / "strategies"
    strategies.mkdir()
    shutil.copy2(source_dir / f"{strategy}.py", strategies / f"{strategy}.py")
    # an existing parameter file: its own space survives the install, ours is replaced
    (strategies / f"{strategy}.json").write_text(json.dumps({
        "strategy_name": strategy, "ft_stratparam_v": 1,
        "params": {"buy": {"my_entry_param": 7}, "regime": {"regime_trend_adx": 39.9}}}))
    section = {"policy": policy, "min_signals": 60, "half_life": 300,
               "backtest_qtable_file": str(root / "qtable.json")}
    overrides: dict[str, Any] = {"stake_amount": 1000, "dry_run_wallet": 10000,
                                 "max_open_trades": 4, "metastrategy": section, **extra}
    datadir = futures_datadir if market == "futures" else REPO_ROOT / "user_data" / "data" / (
        "binance")
    with LoopbackExchange(datadir, port=0) as ex:
        cfg = (write_offline_futures_config(root, ex.url, datadir=datadir, overrides=overrides)
               if market == "futures" else write_offline_config(root, ex.url,
                                                                overrides=overrides))
        tune = subprocess.run(
            [sys.executable, "-m", "freqtrade_metastrategy.cli", "tune", *cfg.config_args(),
             "--strategy", strategy, "--strategy-path", str(strategies),
             "--datadir", str(datadir), "--timerange", TIMERANGE,
             "--walk-forward", ":".join(WALK_FORWARD), "--trials", "6", "--seed", "5",
             "--param", f"regime_illiquid_volume_musd={ILLIQUID[0]:g}:{ILLIQUID[1]:g}",
             "--install", "--out", str(root / "tune"), "--cache-dir", str(root / "cache")],
            capture_output=True, text=True, timeout=600, cwd=root)
        assert tune.returncode == 0, tune.stderr[-3000:]
        run = module_runner()(cfg.backtest_args(strategy, TIMERANGE, strategies), timeout=600)
    assert run.ok, run.tail()
    logging.getLogger("freqtrade").setLevel(logging.ERROR)
    report = json.loads((root / "tune" / "report.json").read_text())
    config = load_config([cfg.base, cfg.overlay], strategy=strategy,
                         strategy_path=str(strategies), datadir=datadir)
    return {"market": market, "root": root, "strategy": strategy, "report": report,
            "config": config, "backtest_log": run.output,
            "decisions": json.loads((root / "metastrategy_decisions.json").read_text())}


@pytest.fixture(scope="module", params=list(CASES), ids=lambda c: f"{c[0]}-{c[1]}")
def case(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
         futures_datadir: Path) -> dict[str, Any]:
    market, policy = request.param
    return _run_case(tmp_path_factory.mktemp(f"tune-{market}"), market, policy,
                     futures_datadir)


def test_the_installed_file_keeps_other_spaces_and_a_copy_of_the_old_one(
        case: dict[str, Any]) -> None:
    strategies = case["root"] / "strategies"
    installed = strategies / f"{case['strategy']}.json"
    assert case["report"]["installed"] == str(installed)
    doc = json.loads(installed.read_text())
    assert doc["params"]["buy"] == {"my_entry_param": 7}
    flat = {k: v for s, p in doc["params"].items() if s != "buy" for k, v in p.items()}
    assert flat == pytest.approx(case["report"]["winner"]["params"])
    olds = list((case["root"] / "tune").glob(f"{case['strategy']}.replaced-*.json"))
    assert len(olds) == 1 and json.loads(olds[0].read_text())["params"]["regime"] == {
        "regime_trend_adx": 39.9}
    # Freqtrade loaded it: the winner's thresholds are in the backtest's start-up log
    adx = case["report"]["winner"]["params"]["regime_trend_adx"]
    assert f"Strategy Parameter: regime_trend_adx = {adx}" in case["backtest_log"]


def test_the_backtest_makes_the_trials_decisions(case: dict[str, Any]) -> None:
    config = case["config"]
    data = tune_data(config, TIMERANGE)
    ms = MetaStrategyConfig.from_freqtrade_config(config)
    space = search_space(ms, overrides={"regime_illiquid_volume_musd": ILLIQUID})
    folds = _fold()
    assert len(folds) == 1
    ev = TrialEvaluator(data, space, folds, unit="r_atr", seed=5)
    winner = case["report"]["winner"]
    values = winner["params"]
    # the report's figures are this replay's
    assert ev.evaluate(values).summary() == pytest.approx(
        {k: winner[k] for k in ("is_total", "oos_total", "oos_sqn", "oos_entries",
                                "oos_traded")})
    rows, chosen = ev.fold_decisions(values, 0)
    ent = data.table.entries
    trial = {(str(ent["pair"].iat[r]), int(ent["signal_time"].iat[r].value),
              str(ent["side"].iat[r])): c for r, c in zip(rows.tolist(), chosen, strict=True)}
    log = case["decisions"]["decisions"]
    assert len(log) > 200
    backtest = {(d["pair"], d["signal_ns"], d["side"]): d["profile"] for d in log}
    # the backtest decides the signals it can take (no open trade on the pair); the learner
    # (and the trial) decide and learn every signal
    assert set(backtest) <= set(trial)
    assert len(backtest) > 0.5 * len(trial)
    mismatches = {k: (backtest[k], trial[k]) for k in backtest if backtest[k] != trial[k]}
    assert mismatches == {}
    # the winner's illiquid threshold dropped signals, in the trial and in the backtest
    sig = data.table.signal_ns
    in_fold = (sig >= folds[0].train[0]) & (sig < folds[0].test[1])
    keys = [(str(p), int(t.value), str(s)) for p, t, s, m in zip(
        ent["pair"], ent["signal_time"], ent["side"], in_fold, strict=True) if m]
    dropped = set(keys) - set(trial)
    assert dropped and not dropped & set(backtest)
    assert {k[0].split("/")[0] for k in dropped} <= {"SOL", "XRP"}
    assert any(c is None for c in chosen) and any(c is not None for c in chosen)
    sides = {k[2] for k in trial}
    assert sides == ({"long", "short"} if case["market"] == "futures" else {"long"})
