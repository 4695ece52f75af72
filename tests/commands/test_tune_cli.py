"""``freqtrade-metastrategy tune`` as a user runs it: real processes on the bundled data.

A run writes report.json / report.html / the parameter file; the same seed gives the same
trials (the second run from the cache); bad input ends with exit code 2, a message naming what
to change, and nothing written; a study resumes in its storage and refuses another space; two
workers share one PostgreSQL study (when the test PostgreSQL is available: scripts/test.sh).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
TIMERANGE = "20220101-20240101"
WALK_FORWARD = "240D:120D"
PG_URL = os.environ.get("METASTRATEGY_TEST_PG_URL")
if not PG_URL and os.environ.get("METASTRATEGY_REQUIRE_PG"):
    raise RuntimeError("METASTRATEGY_REQUIRE_PG is set but METASTRATEGY_TEST_PG_URL is not")
needs_pg = pytest.mark.skipif(not PG_URL, reason="METASTRATEGY_TEST_PG_URL not set")


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("tune")
    (root / "user_data").mkdir()
    # a copy of the strategy: a winner that clears is installed next to it, not in the repo
    (root / "strategies").mkdir()
    shutil.copy2(REPO_ROOT / "user_data" / "strategies" / "MetaStrategy.py",
                 root / "strategies" / "MetaStrategy.py")
    (root / "overlay.json").write_text(json.dumps({
        "user_data_dir": str(root / "user_data"),
        "datadir": str(REPO_ROOT / "user_data" / "data" / "binance"),
        "strategy_path": str(root / "strategies"),
    }))
    return root


def tune(workdir: Path, *extra: str, out: str = "out", trials: int = 8,
         timeout: float = 300) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "freqtrade_metastrategy.cli", "tune",
           "-c", str(REPO_ROOT / "config.example.json"), "-c", str(workdir / "overlay.json"),
           "--timerange", TIMERANGE, "--walk-forward", WALK_FORWARD,
           "--trials", str(trials), "--out", str(workdir / out),
           "--cache-dir", str(workdir / "cache"), *extra]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=workdir)


def report(workdir: Path, out: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((workdir / out / "report.json").read_text())
    return doc


@pytest.fixture(scope="module")
def first(workdir: Path) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    run = tune(workdir, "--seed", "3", out="first")
    assert run.returncode == 0, run.stderr[-3000:]
    return run, report(workdir, "first")


def test_a_run_writes_the_report_and_freqtrades_parameter_file(
        workdir: Path, first: tuple[subprocess.CompletedProcess[str], dict[str, Any]]) -> None:
    from freqtrade.optimize.hyperopt_tools import HyperoptTools

    run, rep = first
    meta = rep["meta"]
    assert meta["trials_in_study"] == meta["trials_run_here"] == 8 == len(rep["trials"])
    assert meta["from_cache"] is False and meta["oos_weeks"] > 40
    assert len(meta["folds"]) == 5
    assert set(rep["winner"]["params"]) == set(meta["space"]) == {
        "regime_trend_adx", "regime_trend_strength", "regime_low_vol_atr_pct",
        "regime_high_vol_atr_pct", "regime_extreme_vol_atr_pct",
        "regime_illiquid_volume_musd", "fullinfo_half_life", "fullinfo_min_signals",
        "fullinfo_stand_aside_margin"}
    best = max(rep["trials"], key=lambda t: (t["value"], -t["number"]))
    assert rep["winner"]["number"] == best["number"]
    assert rep["winner"]["oos_total"] == pytest.approx(best["value"])
    for t in rep["trials"]:
        assert {"is_total", "oos_total", "oos_sqn", "oos_entries", "oos_traded"} <= set(t)
    v = rep["verdict"]
    assert v["pbo"]["n_trials"] == 8 and 0.0 <= v["pbo"]["pbo"] <= 1.0
    assert v["dsr"]["n_trials"] == 8
    assert [c["against"] for c in v["comparisons"]] == ["defaults", "static_train_best"]
    assert v["clears"] == (not v["reasons"])
    assert ("does NOT clear" in run.stdout) == (not v["clears"])
    assert "PBO (CSCV" in run.stdout and "deflated Sharpe" in run.stdout
    params = HyperoptTools.load_params_from_file(workdir / "first" / "MetaStrategy.json")
    assert params["strategy_name"] == "MetaStrategy"
    flat = {k: v for space in params["params"].values() for k, v in space.items()}
    assert flat == pytest.approx(rep["winner"]["params"])
    assert set(params["params"]) == {"regime", "fullinfo"}
    assert isinstance(params["params"]["fullinfo"]["fullinfo_min_signals"], int)
    html = (workdir / "first" / "report.html").read_text()
    assert "plotly" in html.lower() and "Optimization History" in html
    # nothing installed next to the repository's strategy unless the winner cleared
    installed = workdir / "strategies" / "MetaStrategy.json"
    assert (rep["installed"] == str(installed)) == v["clears"] == installed.exists()


def test_the_same_seed_gives_the_same_trials_from_the_cache(
        workdir: Path, first: tuple[subprocess.CompletedProcess[str], dict[str, Any]]) -> None:
    run = tune(workdir, "--seed", "3", out="again")
    assert run.returncode == 0, run.stderr[-3000:]
    again = report(workdir, "again")
    assert again["meta"]["from_cache"] is True
    assert again["trials"] == first[1]["trials"]
    assert again["verdict"] == first[1]["verdict"]
    other = tune(workdir, "--seed", "4", out="other", trials=3)
    assert other.returncode == 0, other.stderr[-3000:]
    assert report(workdir, "other")["trials"][0]["params"] != first[1]["trials"][0]["params"]


@pytest.mark.parametrize(("args", "message"), [
    (["--param", "regime_low_vol_atr_pct=0.01:0.03"],
     "--param regime_low_vol_atr_pct=0.01:0.03: overlaps regime_high_vol_atr_pct"),
    (["--param", "regime_nope=1:2"], "--param regime_nope: unknown parameter"),
    (["--param", "regime_trend_adx"], "expected NAME=LOW:HIGH"),
    (["--param", "learner_epsilon=0:0.2"], "has no effect on metastrategy.policy"),
    (["--storage", "postgresql://ft:s3cr3t-pw@127.0.0.1:1/ft"],
     "--storage postgresql://ft:***@127.0.0.1:1/ft: cannot be reached"),
    (["--storage", "sqlite:////nonexistent-dir/x/tune.sqlite"], "cannot be reached"),
    (["--study", "x"], "--study x: resumes a study kept in --storage"),
    (["--walk-forward", "900D:30D"], "no fold fits"),
    (["--param", "regime_trend_adx=20.05:30"], "is on a grid of 1 decimal(s)"),
])
def test_bad_input_is_refused_before_anything_is_written(
        workdir: Path, args: list[str], message: str) -> None:
    run = tune(workdir, *args, out="bad", timeout=120)
    assert run.returncode == 2, run.stdout[-2000:] + run.stderr[-2000:]
    assert message in run.stderr
    assert "s3cr3t" not in run.stderr + run.stdout
    assert not (workdir / "bad").exists()


def test_a_study_resumes_in_its_storage_and_refuses_another_space(workdir: Path) -> None:
    import optuna

    url = f"sqlite:///{workdir / 'studies.sqlite'}"
    base = ["--storage", url, "--study", "s1", "--spaces", "regime", "fullinfo"]
    a = tune(workdir, *base, "--seed", "1", out="s1a", trials=3)
    assert a.returncode == 0, a.stderr[-3000:]
    b = tune(workdir, *base, "--seed", "2", out="s1b", trials=2)
    assert b.returncode == 0, b.stderr[-3000:]
    assert report(workdir, "s1b")["meta"]["trials_in_study"] == 5
    for extra, what in ((["--param", "regime_trend_adx=20:30"],
                         "changes the range of regime_trend_adx"),
                        (["--objective", "sqn"], "objective ('total' in the study, 'sqn' now)")):
        c = tune(workdir, *base, *extra, out="s1c", trials=2)
        assert c.returncode == 2, c.stdout[-2000:]
        assert "--study s1: was created with other settings" in c.stderr and what in c.stderr
        assert not (workdir / "s1c").exists()
    c = tune(workdir, "--storage", url, "--study", "s1", "--spaces", "regime", out="s1c",
             trials=2)
    assert c.returncode == 2 and "drops fullinfo_half_life" in c.stderr
    study = optuna.load_study(study_name="s1", storage=url)
    assert len(study.trials) == 5
    # report only: reads the study, runs nothing
    d = tune(workdir, *base, out="s1d", trials=0)
    assert d.returncode == 0, d.stderr[-3000:]
    assert report(workdir, "s1d")["winner"] == report(workdir, "s1b")["winner"]


@pytest.fixture
def pg_database() -> Iterator[str]:
    import sqlalchemy as sa

    from freqtrade_metastrategy.store.engine import default_pg_driver

    assert PG_URL
    admin = sa.create_engine(default_pg_driver(sa.make_url(PG_URL)),
                             isolation_level="AUTOCOMMIT")
    name = f"ms_tune_{uuid.uuid4().hex[:12]}"
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        yield sa.make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


@needs_pg
@pytest.mark.slow
def test_two_workers_share_one_postgresql_study(workdir: Path, pg_database: str,
                                                first: Any) -> None:
    """Two worker processes at once: the study holds exactly the sum of their trials (none
    lost, none duplicated) and either worker reads the same best trial."""
    import optuna

    common = ["--storage", pg_database, "--study", "shared"]

    def start(seed: int, out: str) -> subprocess.Popen[str]:
        cmd = [sys.executable, "-m", "freqtrade_metastrategy.cli", "tune",
               "-c", str(REPO_ROOT / "config.example.json"), "-c", str(workdir / "overlay.json"),
               "--timerange", TIMERANGE, "--walk-forward", WALK_FORWARD, "--trials", "7",
               "--seed", str(seed), "--out", str(workdir / out),
               "--cache-dir", str(workdir / "cache"), *common]
        return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                cwd=workdir)

    workers = [start(11, "w1"), start(12, "w2")]
    for w in workers:
        out, err = w.communicate(timeout=600)
        assert w.returncode == 0, err[-3000:]
    import sqlalchemy as sa

    from freqtrade_metastrategy.store.engine import default_pg_driver

    driver_url = default_pg_driver(sa.make_url(pg_database)).render_as_string(
        hide_password=False)  # the workers were given the plain postgresql:// URL
    study = optuna.load_study(study_name="shared", storage=driver_url)
    trials = study.get_trials(deepcopy=False)
    assert len(trials) == 14
    assert sorted(t.number for t in trials) == list(range(14))
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    assert len({t.datetime_start for t in trials}) == 14
    done = [report(workdir, w)["meta"]["trials_run_here"] for w in ("w1", "w2")]
    assert sum(done) == 14
    # read back from either worker (report only): the same best trial
    winners = []
    for seed, out in ((11, "r1"), (12, "r2")):
        run = tune(workdir, *common, "--seed", str(seed), out=out, trials=0)
        assert run.returncode == 0, run.stderr[-3000:]
        rep = report(workdir, out)
        assert rep["meta"]["trials_in_study"] == 14
        winners.append((rep["winner"]["number"], rep["winner"]["params"]))
    best = max(trials, key=lambda t: (t.value, -t.number))
    assert winners[0] == winners[1]
    assert winners[0][0] == best.number
