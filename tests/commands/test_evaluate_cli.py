"""``freqtrade-metastrategy evaluate`` / ``ope`` and the entry extraction, on the bundled data."""

from __future__ import annotations

import itertools
import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from freqtrade_metastrategy.cli import main
from freqtrade_metastrategy.config import MetaStrategyConfig
from freqtrade_metastrategy.entries import EntrySet, load_config, load_entries
from freqtrade_metastrategy.evaluation.replay import replay
from freqtrade_metastrategy.evaluation.simulator import infer_tick_sizes, simulate
from freqtrade_metastrategy.evaluation.specs import DEFAULT_LEARNERS, LearnerSpec
from freqtrade_metastrategy.profiles import BUILTIN_PROFILES

REPO_ROOT = Path(__file__).resolve().parents[2]
TIMERANGE = "20230101-20230701"


@pytest.fixture(scope="module")
def configs(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    root = tmp_path_factory.mktemp("evaluate")
    overlay = root / "overlay.json"
    overlay.write_text(json.dumps({
        "user_data_dir": str(root / "user_data"),
        "datadir": str(REPO_ROOT / "user_data" / "data" / "binance"),
        "strategy_path": str(REPO_ROOT / "user_data" / "strategies"),
    }))
    (root / "user_data").mkdir()
    return [str(REPO_ROOT / "config.example.json"), str(overlay)]


@pytest.fixture(scope="module")
def entry_set(configs: list[str]) -> EntrySet:
    return load_entries(load_config(configs), TIMERANGE)


@pytest.fixture(scope="module")
def report(configs: list[str], tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("report")
    cmd = [sys.executable, "-m", "freqtrade_metastrategy.cli", "evaluate",
           *[a for c in configs for a in ("-c", c)], "--timerange", TIMERANGE,
           "--train", "20230101-20230401", "--test", "20230401-20230701", "--seed", "1",
           "--walk-forward", "60D:30D", "--out", str(out)]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=REPO_ROOT)
    assert run.returncode == 0, run.stderr[-3000:]
    return out, run.stdout


def _independent_signals(pair: str) -> pd.DataFrame:
    """Breakout signals recomputed here from the raw file (gap-filled as Freqtrade loads it)."""
    from freqtrade.data.converter import ohlcv_fill_up_missing_data

    df = pd.read_feather(REPO_ROOT / "user_data" / "data" / "binance"
                         / f"{pair.replace('/', '_')}-1h.feather")
    df = ohlcv_fill_up_missing_data(df, "1h", pair)
    upper = df["high"].rolling(20).max().shift(1)
    broke = df["close"] > upper
    signal = broke & ~broke.shift(1, fill_value=True) & (df["volume"] > 0)
    dates = pd.to_datetime(df["date"], utc=True)
    m = signal & (dates >= pd.Timestamp("2023-01-01", tz="UTC")) & (
        dates < pd.Timestamp("2023-07-01", tz="UTC"))
    return df.loc[m]


def test_entries_are_every_breakout_signal(entry_set: EntrySet) -> None:
    assert entry_set.fee == pytest.approx(0.001)
    assert set(entry_set.candles) == {"BTC/USDT", "ETH/USDT", "SOL/USDT", "XRP/USDT"}
    for pair, candles in entry_set.candles.items():
        # trimmed to the timerange, on the regular 1h grid
        assert candles["date"].iloc[0] == pd.Timestamp("2023-01-01", tz="UTC")
        assert candles["date"].iloc[-1] < pd.Timestamp("2023-07-01", tz="UTC")
        assert (candles["date"].diff().dropna() == pd.Timedelta("1h")).all()
        expected = _independent_signals(pair)
        got = [e for e in entry_set.entries if e.pair == pair]
        assert entry_set.signals[pair] == len(expected)
        assert {e.signal_time for e in got} <= set(pd.to_datetime(expected["date"], utc=True))
        assert all(e.side == "long" and math.isfinite(e.r_unit) and e.r_unit > 0 for e in got)
    assert entry_set.dropped_illiquid == sum(entry_set.signals.values()) - len(
        entry_set.entries)
    times = [e.signal_time for e in entry_set.entries]
    assert times == sorted(times)


def test_entries_match_the_analysed_dataframe(configs: list[str], entry_set: EntrySet) -> None:
    """Count enter_long == 1 rows of the strategy's own analysed frame over the timerange."""
    from freqtrade.data.history import load_pair_history
    from freqtrade.resolvers import StrategyResolver

    config = load_config(configs)
    strat = StrategyResolver.load_strategy(config)
    pair = "ETH/USDT"
    from freqtrade.configuration import TimeRange

    tr = TimeRange.parse_timerange("20220901-20230701")  # > 400 startup candles
    df = load_pair_history(pair=pair, timeframe="1h", datadir=Path(config["datadir"]),
                           timerange=tr, fill_up_missing=True)
    frame = strat.ft_advise_signals(strat.advise_all_indicators({pair: df})[pair],
                                    {"pair": pair})
    m = (frame["date"] >= pd.Timestamp("2023-01-01", tz="UTC")) & (frame["enter_long"] == 1)
    rows = frame.loc[m]
    liquid = rows[rows["regime"] != "illiquid"]
    got = [e for e in entry_set.entries if e.pair == pair]
    assert len(got) == len(liquid)
    assert [e.r_unit for e in got] == pytest.approx(liquid["atr"].tolist())
    assert [e.regime for e in got] == liquid["regime"].astype(str).tolist()


@pytest.mark.slow
def test_evaluate_writes_the_reports(report: tuple[Path, str]) -> None:
    out, stdout = report
    doc = json.loads((out / "report.json").read_text())
    unit = doc["units"]["r_atr"]
    summary = {row["policy"]: row for row in unit["full"]["summary"]}
    expected = {f"static:{p}" for p in BUILTIN_PROFILES} | {
        "random", "walk_forward_static", *DEFAULT_LEARNERS,
        "best_static", "oracle_regime", "oracle_trade"}
    assert expected <= set(summary), expected - set(summary)
    assert len([p for p in summary if p.startswith("static:")]) == 7
    for row in summary.values():
        assert isinstance(row["total"], float) and math.isfinite(row["total"])
    for row in unit["full"]["regret"]:
        if row["policy"] != "best_static" or row["comparator"] != "best_static":
            assert row["se_total_clustered"] is not None
            assert row["se_total_iid"] is not None
    test = {row["policy"]: row for row in unit["walk_forward"]["test"]["summary"]}
    assert {"eps_greedy[frozen]", "eps_greedy[online]", "static_train_best",
            "regime_train_best"} <= set(test)
    assert doc["meta"]["signals"] > 100
    # the full-information candidates and the policy the config selects (here the default)
    assert {"wfs_disc+aside", "ridge+aside", "configured"} <= set(summary)
    meta = doc["meta"]
    assert meta["configured_policy"]["name"] == "configured"
    assert meta["configured_policy"]["policy"] == "walk_forward_static"
    assert meta["default_policy"]["name"] == "wfs_disc+aside"
    assert summary["configured"]["total"] == summary["wfs_disc+aside"]["total"]
    # a stand-aside counts as an entry at 0 R: traded + stood aside = entries, per policy
    for name in ("configured", "ridge+aside"):
        row, counts = summary[name], unit["choice_counts"][name]
        assert counts["stand_aside"] == row["trades"] - row["traded"]
        assert sum(counts.values()) == row["trades"]
    # on this slice the ridge gate declines some entries (the default's 200-signal warm-up
    # trades them all): the traded share is not a copy of the entry count
    assert 0 < summary["ridge+aside"]["traded"] < summary["ridge+aside"]["trades"]
    html = (out / "report.html").read_text()
    assert html.count("<script") >= 1 and len(html) > 1_000_000  # plotly.js inlined
    for title in ("Cumulative reward per policy", "Regret vs best static", "Regime mix",
                  "Q-values per regime over time"):
        assert title in html, title
    assert (out / "report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "eps_greedy[frozen]" in stdout and "static_train_best" in stdout
    # with --walk-forward 60D:30D the plan is chosen on the latest fold at least 15 days long
    latest = doc["units"]["r_atr"]["rolling"]["folds"][3]
    assert latest["test_range"][1] == "2023-06-30T00:00:00+00:00"
    statics = {r["policy"][len("static:"):]: r["total"] for r in latest["test"]["summary"]
               if r["policy"].startswith("static:")}
    plan = doc["meta"]["next_fixed_plan"]["r_atr"]
    assert statics[plan] == max(statics.values())
    assert f'"default_strategy": "{plan}"' in stdout
    assert "fixed plan for after 2023-06-30" in stdout
    overlay = json.loads((out / "fixed_plan.json").read_text())
    assert overlay == {"metastrategy": {"enabled": False, "default_strategy": plan}}
    assert not MetaStrategyConfig.from_dict(overlay["metastrategy"]).enabled  # a valid section


def test_evaluate_rolling_walk_forward(report: tuple[Path, str]) -> None:
    out, stdout = report
    doc = json.loads((out / "report.json").read_text())
    splits = doc["meta"]["rolling"]["folds"]
    rolling = doc["units"]["r_atr"]["rolling"]
    # 2023-01-01..07-01, train 60 days, test 30 days: tests 03-02, 04-01, 05-01, 05-31 and
    # 06-30, the last clipped to one day at the end of the timerange
    assert len(splits) == len(rolling["folds"]) == 5
    assert splits[0] == [["2023-01-01T00:00:00+00:00", "2023-03-02T00:00:00+00:00"],
                         ["2023-03-02T00:00:00+00:00", "2023-04-01T00:00:00+00:00"]]
    for (_, a), (_, b) in itertools.pairwise(splits):
        assert a[1] == b[0]  # the test ranges tile
    assert splits[-1][1][1] == "2023-07-01T00:00:00+00:00"
    # the out-of-sample result is the concatenation of the folds' test ranges
    per_fold = [{r["policy"]: r for r in f["test"]["summary"]} for f in rolling["folds"]]
    oos = {r["policy"]: r for r in rolling["oos"]["summary"]}
    for policy in ("random", "eps_greedy[frozen]", "static_train_best"):
        assert oos[policy]["trades"] == sum(f[policy]["trades"] for f in per_fold)
        assert oos[policy]["total"] == pytest.approx(sum(f[policy]["total"] for f in per_fold))
    assert "rolling walk-forward 60D:30D: folds" in stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--walk-forward", "30D"], "expected TRAIN:TEST"),
        (["--walk-forward", "30D:0D"], "not a positive duration"),
        (["--walk-forward", "a:b"], "--walk-forward"),
        (["--walk-forward", "30D:30D:30D:30D"], "expected TRAIN:TEST"),
        (["--walk-forward", "30D:30D:10D"], "STEP shorter than TEST"),
        (["--walk-forward", "3m:3m"], "folds (more than 500)"),
        (["--walk-forward", "365D:30D"], "no fold fits"),
        (["--anchored"], "--anchored needs --walk-forward"),
    ],
)
def test_evaluate_rejects_a_bad_walk_forward(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Refused before any candle is loaded."""
    code = main(["evaluate", "-c", "config.example.json", "--timerange", "20230101-20230701",
                 *args])
    assert code == 2
    assert message in capsys.readouterr().err


def test_evaluate_anchored_walk_forward(configs: list[str], tmp_path: Path) -> None:
    # a subprocess: a full evaluate in this process would leave Freqtrade's logging set-up
    # behind for the tests that follow
    run = subprocess.run(
        [sys.executable, "-m", "freqtrade_metastrategy.cli", "evaluate",
         *[a for c in configs for a in ("-c", c)], "--timerange", TIMERANGE,
         "--walk-forward", "60D:30D", "--anchored", "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=300, cwd=REPO_ROOT)
    assert run.returncode == 0, run.stderr[-3000:]
    folds = json.loads((tmp_path / "report.json").read_text())["meta"]["rolling"]["folds"]
    assert len(folds) == 5
    assert {tr[0] for tr, _ in folds} == {"2023-01-01T00:00:00+00:00"}  # expanding windows
    assert [tr[1] for tr, _ in folds] == [te[0] for _, te in folds]


def _ledger_file(entry_set: EntrySet, path: Path) -> Path:
    outcomes = simulate(entry_set.candles, entry_set.entries, dict(entry_set.profiles),
                        fee=entry_set.fee, tick_size=infer_tick_sizes(entry_set.candles))
    res = replay(outcomes, [LearnerSpec("eps_greedy", DEFAULT_LEARNERS["eps_greedy"])],
                 unit="r_atr", seed=3, profiles=entry_set.profiles, hindsight=False)
    res.selectors["eps_greedy"].store.export_json(path)
    return path


def test_ope_from_a_ledger(entry_set: EntrySet, tmp_path: Path,
                           capsys: pytest.CaptureFixture[str]) -> None:
    ledger = _ledger_file(entry_set, tmp_path / "ledger.json")
    doc: dict[str, Any] = json.loads(ledger.read_text())
    assert len(doc["ledger"]) > 100
    assert main(["ope", "--file", str(ledger), "--target", "uniform"]) == 0
    text = capsys.readouterr().out
    for name in ("ips", "snips", "dr"):
        assert name in text
    assert main(["ope", "--file", str(ledger), "--target", "static:trend_rider", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    est = {e["estimator"]: e for e in res["estimates"]}
    for name in ("ips", "snips", "dr"):
        assert np.isfinite(est[name]["value"]) and est[name]["se"] > 0
    assert res["cluster"] == "week"
    assert res["support_gap"] > 0  # trend_rider is not a candidate in range regimes
    assert main(["ope", "--file", str(ledger), "--target", "uniform", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["support_gap"] == 0
    assert main(["ope", "--file", str(ledger), "--target", "static:nope"]) == 2


def test_ope_reads_a_store_and_a_config(entry_set: EntrySet, tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    ledger = _ledger_file(entry_set, tmp_path / "ledger.json")
    url = f"sqlite:///{tmp_path / 'q.sqlite'}"
    assert main(["import", "--store", url, str(ledger)]) == 0
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps({"metastrategy": {"store_url": url}}))
    values = []
    for where in (["--file", str(ledger)], ["--store", url], ["-c", str(cfg)]):
        capsys.readouterr()
        assert main(["ope", *where, "--target", "uniform", "--json"]) == 0
        doc = json.loads(capsys.readouterr().out)
        values.append([e["value"] for e in doc["estimates"]])
    assert values[0] == pytest.approx(values[1]) and values[1] == pytest.approx(values[2])
