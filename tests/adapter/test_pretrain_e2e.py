"""``freqtrade-metastrategy pretrain`` end to end: a learner built from 2022's signals, that a
2023 backtest starts from (learning on, or frozen), that a live store imports and ``show``
prints; a pretrained learner that does not fit the config stops the backtest with the key."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import DATADIR, REPO_ROOT, FreqtradeRun, make_offline_env, write_offline_config

from freqtrade_metastrategy.loopback import LoopbackExchange

pytestmark = pytest.mark.slow

EXE = shutil.which("freqtrade-metastrategy", path=str(Path(sys.executable).parent))
CMD = [EXE] if EXE else [sys.executable, "-m", "freqtrade_metastrategy.cli"]
STRATEGIES = REPO_ROOT / "user_data" / "strategies"


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CMD, *args], capture_output=True, text=True, cwd=REPO_ROOT,
                          env=make_offline_env(), stdin=subprocess.DEVNULL, timeout=300)


def backtest(run_freqtrade: Callable[..., FreqtradeRun], tmp: Path, url: str,
             section: dict[str, Any]) -> tuple[FreqtradeRun, dict[str, Any] | None]:
    cfg = write_offline_config(tmp, url, overrides={
        "stake_amount": 1000, "dry_run_wallet": 10000, "max_open_trades": 4,
        "metastrategy": {"backtest_qtable_file": str(tmp / "qtable.json"), **section}})
    run = run_freqtrade(cfg.backtest_args("MetaStrategy", "20230101-20230401", STRATEGIES),
                        timeout=300)
    path = tmp / "metastrategy_decisions.json"
    return run, (json.loads(path.read_text()) if path.exists() else None)


def test_pretrain_then_backtest_import_and_show(
    tmp_path: Path, run_freqtrade: Callable[..., FreqtradeRun],
    loopback_exchange: LoopbackExchange,
) -> None:
    out = tmp_path / "pretrained.json"
    done = cli("pretrain", "-c", str(REPO_ROOT / "config.example.json"), "--strategy-path",
               str(STRATEGIES), "--datadir", str(DATADIR), "--timerange", "20220101-20230101",
               "--out", str(out))
    assert done.returncode == 0, done.stderr
    doc = json.loads(out.read_text())
    state = doc["learner"]["learner"]
    assert state["released"] > 500 and state["pending"] == []
    assert state["meta"]["reward_unit"] == "r_atr" and state["meta"]["timeframe"] == "1h"
    assert f"pretrained walk_forward_static on {state['released']} signals" in done.stdout

    # a 2023 backtest starts from it: no warm-up, every decision sees the 2022 signals
    run, learned = backtest(run_freqtrade, tmp_path / "warm", loopback_exchange.url,
                            {"pretrained": str(out)})
    assert run.ok, run.tail()
    assert learned is not None
    first = learned["decisions"][0]
    assert first["released"] >= state["released"] and "warm-up" not in first["reason"]
    assert max(d["released"] for d in learned["decisions"]) > state["released"]
    # frozen: decides from it, learns nothing more
    run, frozen = backtest(run_freqtrade, tmp_path / "frozen", loopback_exchange.url,
                           {"pretrained": str(out), "freeze_learner": True})
    assert run.ok, run.tail()
    assert frozen is not None
    assert {d["released"] for d in frozen["decisions"]} == {state["released"]}
    # learned with another memory: the backtest stops at start-up, naming the key
    run, _ = backtest(run_freqtrade, tmp_path / "bad", loopback_exchange.url,
                      {"pretrained": str(out), "half_life": 500})
    assert not run.ok
    assert "metastrategy.pretrained" in run.output and "metastrategy.estimator" in run.output

    # a live store imports it; show prints the learner
    store = tmp_path / "live.sqlite"
    imported = cli("import", str(out), "--store", f"sqlite:///{store}")
    assert imported.returncode == 0, imported.stderr
    shown = cli("show", "--store", f"sqlite:///{store}")
    assert shown.returncode == 0, shown.stderr
    assert "full-information learner: walk_forward_static" in shown.stdout
    assert f"{state['released']} signals learned" in shown.stdout


def test_pretrain_refuses_a_bandit_policy(tmp_path: Path) -> None:
    cfg = tmp_path / "seeds.json"
    cfg.write_text(json.dumps({"metastrategy": {"policy": "epsilon_greedy"}}))
    done = cli("pretrain", "-c", str(REPO_ROOT / "config.example.json"), "-c", str(cfg),
               "--strategy-path", str(STRATEGIES), "--datadir", str(DATADIR),
               "--timerange", "20230101-20230201", "--out", str(tmp_path / "x.json"))
    assert done.returncode == 2
    assert "metastrategy.policy is 'epsilon_greedy'" in done.stderr
    assert not (tmp_path / "x.json").exists()
