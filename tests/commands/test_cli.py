"""The ``freqtrade-metastrategy`` console script, run as a user runs it (subprocess)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from freqtrade_metastrategy.selector import MetaStrategySelector
from freqtrade_metastrategy.store import SqlStore

EXE = shutil.which("freqtrade-metastrategy", path=str(Path(sys.executable).parent))
CMD = [EXE] if EXE else [sys.executable, "-m", "freqtrade_metastrategy.cli"]


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CMD, *args], capture_output=True, text=True, cwd=cwd, stdin=subprocess.DEVNULL,
        timeout=60,
    )


def fill(url: str, trades: int = 40) -> None:
    """Learn from a few simulated trades on two pairs, as a live bot would."""
    t0 = datetime(2024, 1, 1, tzinfo=UTC)
    with SqlStore(url) as store:
        sel = MetaStrategySelector(seed=3, store=store)
        for i in range(trades):
            pair = "BTC/USDT" if i % 2 else "ETH/USDT"
            regime = "trend_up" if i % 3 else "range_low_vol"
            d = sel.choose_strategy(pair, regime)
            reward = 1.5 if d.strategy_id in ("ultra_aggressive", "scalp") else -1.0
            sel.update_reward(pair, regime, d.strategy_id, reward, trade_id=i,
                              at=t0 + timedelta(hours=i), probability=d.probability)


@pytest.fixture
def filled(tmp_path: Path) -> tuple[str, Path]:
    db = tmp_path / "user_data" / "metastrategy.sqlite"
    url = f"sqlite:///{db}"
    fill(url)
    return url, db


def test_show_prints_the_q_table(filled: tuple[str, Path]) -> None:
    url, db = filled
    res = run("show", "--store", url)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines[0] == f"Q-table: {db}"
    with SqlStore(url) as store:
        entries = store.entries()
        since = store.watermark()
    assert lines[1] == f"settles trades closed since {since:%Y-%m-%d %H:%M:%S} UTC"
    assert lines[2].split() == ["symbol", "regime", "strategy", "count", "EMA", "R", "win",
                                "rate", "total", "R"]
    rows = lines[4:4 + len(entries)]
    for e, row in zip(entries, rows, strict=True):
        cols = row.split()
        assert cols[:4] == [e.symbol, e.regime, e.strategy, str(e.count)]
        assert cols[4] == f"{e.ema_reward:+.2f}" and cols[6] == f"{e.total_r:+.2f}"
    assert lines[-1].startswith(f"{len(entries)} cells, 40 rewards")


def test_show_filters_and_json(filled: tuple[str, Path]) -> None:
    url, _ = filled
    res = run("show", "--store", url, "--symbol", "BTC/USDT", "--regime", "trend_up", "--json")
    data = json.loads(res.stdout)
    assert data and {(d["symbol"], d["regime"]) for d in data} == {("BTC/USDT", "trend_up")}


def test_show_reads_the_store_named_by_a_freqtrade_config(
    tmp_path: Path, filled: tuple[str, Path]
) -> None:
    url, db = filled
    cfg = tmp_path / "config.json"
    cfg.write_text(
        f'{{\n // Freqtrade allows comments\n "metastrategy": {{"store_url": "{url}"}},\n}}'
    )
    res = run("show", "-c", str(cfg))
    assert res.returncode == 0, res.stderr
    assert f"Q-table: {db}" in res.stdout
    # Without store_url the default file under user_data_dir is used.
    cfg.write_text(json.dumps({"user_data_dir": str(db.parent)}))
    assert f"Q-table: {db}" in run("show", "-c", str(cfg)).stdout


def test_default_store_missing_is_a_clear_error(tmp_path: Path) -> None:
    res = run("show", cwd=tmp_path)
    assert res.returncode == 2
    assert "no Q-table store at" in res.stderr and "--store" in res.stderr
    assert not (tmp_path / "user_data").exists()  # reading never creates a store


def test_export_import_round_trip(tmp_path: Path, filled: tuple[str, Path]) -> None:
    url, _ = filled
    out = tmp_path / "backup.json"
    assert run("export", "--store", url, str(out)).returncode == 0
    new_url = f"sqlite:///{tmp_path / 'other.sqlite'}"
    res = run("import", "--store", new_url, str(out))
    assert res.returncode == 0, res.stderr
    again = tmp_path / "again.json"
    run("export", "--store", new_url, str(again))
    assert json.loads(again.read_text()) == json.loads(out.read_text())


def test_import_never_overwrites_silently(tmp_path: Path, filled: tuple[str, Path]) -> None:
    url, db = filled
    other = f"sqlite:///{tmp_path / 'other.sqlite'}"
    fill(other, trades=5)
    doc = tmp_path / "other.json"
    run("export", "--store", other, str(doc))
    before = run("export", "--store", url, str(tmp_path / "before.json"))
    assert before.returncode == 0
    res = run("import", "--store", url, str(doc))
    assert res.returncode == 2 and "--replace" in res.stderr
    res = run("import", "--store", url, str(doc), "--replace")  # no terminal, no --yes
    assert res.returncode == 2 and "--yes" in res.stderr
    with SqlStore(url) as store:
        assert sum(e.count for e in store.entries()) == 40  # unchanged
    with SqlStore(url) as store:
        before_import = store.watermark()
    res = run("import", "--store", url, str(doc), "--replace", "--yes")
    assert res.returncode == 0, res.stderr
    assert "settles trades closed since" in res.stdout
    backups = list(db.parent.glob("metastrategy.backup-*.json"))
    assert len(backups) == 1
    assert json.loads(backups[0].read_text()) == json.loads((tmp_path / "before.json").read_text())
    with SqlStore(url) as store:
        assert sum(e.count for e in store.entries()) == 5
        assert store.watermark() > before_import  # the import is a new content start


def test_reset_asks_and_backs_up(filled: tuple[str, Path]) -> None:
    url, db = filled
    res = run("reset", "--store", url)
    assert res.returncode == 2 and "--yes" in res.stderr
    with SqlStore(url) as store:
        assert not store.is_empty()
        created = store.watermark()
    before = datetime.now(UTC)
    res = run("reset", "--store", url, "--yes")
    assert res.returncode == 0, res.stderr
    with SqlStore(url) as store:
        assert store.is_empty()
        # the strategy settles only trades closed from now on: the reset is not undone
        assert created < before <= store.watermark() <= datetime.now(UTC)
        assert f"settles trades closed since {store.watermark():%Y-%m-%d %H:%M:%S}" in res.stdout
    [backup] = db.parent.glob("metastrategy.backup-*.json")
    assert len(json.loads(backup.read_text())["ledger"]) == 40


def test_bad_files_are_named(tmp_path: Path) -> None:
    junk = tmp_path / "junk.sqlite"
    junk.write_text("not a database")
    res = run("show", "--store", f"sqlite:///{junk}")
    assert res.returncode == 2 and str(junk) in res.stderr
    assert junk.read_text() == "not a database"
    bad_json = tmp_path / "bad.json"
    bad_json.write_text("{")
    res = run("import", "--store", f"sqlite:///{tmp_path / 'x.sqlite'}", str(bad_json))
    assert res.returncode == 2 and str(bad_json) in res.stderr


def test_exchange_subcommand_is_wired() -> None:
    res = run("exchange", "--help")
    assert res.returncode == 0 and "--datadir" in res.stdout


def test_ope_leaves_out_ledger_rows_without_probability(tmp_path: Path,
                                                        filled: tuple[str, Path]) -> None:
    """Trades adopted without decision data are settled without a probability: ``ope`` leaves
    them out, says how many, and refuses a ledger that has nothing else."""
    url, _ = filled
    t0 = datetime(2024, 3, 1, tzinfo=UTC)
    with SqlStore(url) as store:
        for i in range(3):
            store.apply_reward("BTC/USDT", "trend_up", "scalp", 1.0, alpha=0.2,
                               trade_id=f"adopted-{i}", at=t0 + timedelta(hours=i))
        assert sum(r.probability is None for r in store.ledger()) == 3
    res = run("ope", "--store", url, "--target", "uniform", "--json")
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    assert doc["skipped_no_probability"] == 3 and doc["n"] == 40
    res = run("ope", "--store", url, "--target", "uniform")
    assert res.returncode == 0, res.stderr
    assert "left out 3 ledger row(s) without a logging probability" in res.stdout
    assert "40 logged trades" in res.stdout
    bare = f"sqlite:///{tmp_path / 'bare.sqlite'}"
    with SqlStore(bare) as store:
        store.apply_reward("BTC/USDT", "trend_up", "scalp", 1.0, alpha=0.2, trade_id=1)
    res = run("ope", "--store", bare, "--target", "uniform")
    assert res.returncode == 2
    assert "no ledger row has a logging probability (1 left out" in res.stderr
    empty = f"sqlite:///{tmp_path / 'empty.sqlite'}"
    SqlStore(empty).close()
    res = run("ope", "--store", empty, "--target", "uniform")
    assert res.returncode == 2 and "the ledger is empty" in res.stderr


def test_both_entry_points_and_every_command_module_stand_alone() -> None:
    """``python -m freqtrade_metastrategy.cli`` is the console script; each command module
    imports on its own in a fresh interpreter (no import cycle among them)."""
    script = run("--help")
    module = subprocess.run([sys.executable, "-m", "freqtrade_metastrategy.cli", "--help"],
                            capture_output=True, text=True, timeout=60)
    assert script.returncode == module.returncode == 0
    assert script.stdout == module.stdout
    for name in ("shared", "store_commands", "evaluate_commands", "parser"):
        subprocess.run([sys.executable, "-c", f"import freqtrade_metastrategy.commands.{name}"],
                       check=True, timeout=60)
