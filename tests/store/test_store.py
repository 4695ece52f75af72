"""Q-table store tests: the contract on every store kind, then SQLite-specific durability,
concurrency, crash safety and refusal to open foreign files.

PostgreSQL runs the same contract and multi-process tests when ``METASTRATEGY_TEST_PG_URL``
points at a server where that role may CREATE DATABASE (each test gets its own database).
"""

from __future__ import annotations

import itertools
import json
import math
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from freqtrade_metastrategy.errors import MetaStrategyError, StoreError
from freqtrade_metastrategy.qtable import QEntry
from freqtrade_metastrategy.store import (
    FORMAT,
    LedgerRow,
    MemoryStore,
    QStore,
    SqlStore,
    StaleLearnerStateError,
    default_store_url,
    open_store,
)
from freqtrade_metastrategy.store.engine import default_pg_driver

PG_URL = os.environ.get("METASTRATEGY_TEST_PG_URL")
if not PG_URL and os.environ.get("METASTRATEGY_REQUIRE_PG"):
    raise RuntimeError("METASTRATEGY_REQUIRE_PG is set but METASTRATEGY_TEST_PG_URL is not")
# scripts/test.sh starts a throwaway server and sets both; a bare pytest run skips PostgreSQL.
needs_pg = pytest.mark.skipif(not PG_URL, reason="METASTRATEGY_TEST_PG_URL not set")
WORKER = Path(__file__).resolve().parents[1] / "helpers" / "store_worker.py"
CELL = ("BTC/USDT", "trend_up", "scalp")  # same as the worker's
ALPHA = 0.2
PAUSE = 0.002  # seconds between a worker's updates, so that the two processes interleave
AWKWARD = [0.1 + 0.2, 1e-300, -2.5e17, 5e-324, 1 / 3, -7.0, 2.0**-1074 * 3, 123456.789]
TZS = [UTC, timezone(timedelta(hours=5, minutes=30)), timezone(timedelta(hours=-3)),
       ZoneInfo("America/New_York"), None]


def reward_for(i: int) -> float:
    """Must match tests/helpers/store_worker.py: multiples of 0.25, exact in any sum order."""
    return ((i * 7) % 13 - 6) * 0.25


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


def dump(store: QStore) -> str:
    """The export as canonical JSON text: floats compare by repr, i.e. bit for bit."""
    return json.dumps(store.export_dict(), sort_keys=True, allow_nan=False)


def exported(doc: dict[str, Any]) -> str:
    """``doc`` as :func:`dump` shows it once imported: a document without a learner state
    (written before it existed) exports ``"learner": null``."""
    return json.dumps({"learner": None, **doc}, sort_keys=True, allow_nan=False)


def replay(ledger: list[LedgerRow], key: tuple[str, str, str], alpha: float) -> QEntry:
    e = QEntry.empty(*key)
    for row in ledger:
        if (row.symbol, row.regime, row.strategy) == key:
            e = e.updated(row.reward, alpha=alpha, at=row.settled_at)
    return e


# ---------------------------------------------------------------------------------------------
# Fixtures
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def pg_databases() -> Iterator[Callable[[], str]]:
    """Factory of fresh PostgreSQL databases (dropped at the end)."""
    assert PG_URL
    admin = sa.create_engine(default_pg_driver(sa.make_url(PG_URL)),
                             isolation_level="AUTOCOMMIT")
    created: list[str] = []

    def make() -> str:
        name = f"ms_test_{uuid.uuid4().hex[:12]}"
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        created.append(name)
        return sa.make_url(PG_URL).set(database=name).render_as_string(hide_password=False)

    yield make
    with admin.connect() as conn:
        for name in created:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.dispose()


@pytest.fixture(params=["memory", "sqlite", pytest.param("postgresql", marks=needs_pg)])
def new_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[], QStore]]:
    """Factory of fresh, empty stores of one kind."""
    kind = request.param
    pg = request.getfixturevalue("pg_databases") if kind == "postgresql" else None
    stores: list[QStore] = []
    counter = itertools.count()

    def make() -> QStore:
        store: QStore
        if kind == "memory":
            store = MemoryStore()
        elif kind == "sqlite":
            store = SqlStore(sqlite_url(tmp_path / f"store{next(counter)}.sqlite"))
        else:
            assert pg is not None
            store = SqlStore(pg())
        stores.append(store)
        return store

    yield make
    for store in stores:
        store.close()


@pytest.fixture
def store(new_store: Callable[[], QStore]) -> QStore:
    return new_store()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=needs_pg)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """URL of a fresh database for multi-process tests."""
    if request.param == "sqlite":
        return sqlite_url(tmp_path / "shared.sqlite")
    make: Callable[[], str] = request.getfixturevalue("pg_databases")
    return make()


def awkward_document() -> dict[str, Any]:
    """A document with hard-to-round-trip values: odd floats, many time zones, seq gaps."""
    entries = []
    for i, (sym, reg, strat) in enumerate(
        itertools.product(["ETH/USDT", "BTC/USDT:USDT"], ["range", "trend_up"], ["b", "a"])
    ):
        at = datetime(2024, 3, 10, 6, 59, 59, 999999 - i)
        tz = TZS[i % len(TZS)]
        entries.append(QEntry(
            sym, reg, strat, count=3 + i, ema_reward=AWKWARD[i % len(AWKWARD)],
            avg_reward=AWKWARD[(i + 1) % len(AWKWARD)], win_count=2, loss_count=1 + i,
            total_r=AWKWARD[(i + 2) % len(AWKWARD)], sum_sq_r=AWKWARD[(i + 3) % len(AWKWARD)],
            last_reward=AWKWARD[(i + 4) % len(AWKWARD)],
            last_update=None if tz is None else at.replace(tzinfo=tz),
        ).to_dict())
    ledger = []
    for j, seq in enumerate([3, 4, 9, 10, 57]):
        tz = TZS[j % len(TZS)]
        ledger.append(LedgerRow(
            seq, None if j == 2 else f"trade-{seq}", "ETH/USDT", "range", "a",
            AWKWARD[j], None if j % 2 else AWKWARD[j + 1] / 1e300,
            None if tz is None else datetime(2023, 11, 5, 1, 30, 0, 1, tzinfo=tz),
        ).to_dict())
    entries.sort(key=lambda e: (e["symbol"], e["regime"], e["strategy"]))  # export order
    return {"format": FORMAT, "version": 1, "entries": entries, "ledger": ledger}


# ---------------------------------------------------------------------------------------------
# Contract, on every store kind
# ---------------------------------------------------------------------------------------------
def test_update_math_matches_qentry(store: QStore) -> None:
    expected = QEntry.empty(*CELL)
    t0 = datetime(2024, 1, 1, tzinfo=UTC)
    for i, r in enumerate([1.5, -1.0, 0.0, *AWKWARD, 2]):
        at = t0 + timedelta(minutes=i) if i % 3 else None
        expected = expected.updated(r, alpha=ALPHA, at=at)
        got = store.apply_reward(*CELL, r, alpha=ALPHA, trade_id=i, at=at, probability=0.5)
        assert got == expected
        assert store.get(*CELL) == expected
    assert store.entries() == [expected]
    ledger = store.ledger()
    assert [r.seq for r in ledger] == list(range(1, len(ledger) + 1))
    assert replay(ledger, CELL, ALPHA) == expected


def test_returned_entry_is_exactly_what_is_stored(store: QStore) -> None:
    for i, r in enumerate([-0.0, 0.0, *AWKWARD, -0.0]):
        got = store.apply_reward(*CELL, r, alpha=0.5, trade_id=i)
        assert got is not None
        assert json.dumps(got.to_dict()) == json.dumps(store.get(*CELL).to_dict())  # type: ignore[union-attr]


def test_exactly_once_per_trade_id(store: QStore) -> None:
    first = store.apply_reward(*CELL, 2.0, alpha=ALPHA, trade_id=7)
    assert first is not None
    before = dump(store)
    # Freqtrade's int id and its string form are the same trade; other cells too.
    assert store.apply_reward(*CELL, 9.0, alpha=ALPHA, trade_id="7") is None
    assert store.apply_reward("ETH/USDT", "range", "swing", 9.0, alpha=ALPHA, trade_id=7) is None
    assert dump(store) == before
    assert store.get("ETH/USDT", "range", "swing") is None
    assert store.is_settled(7) and store.is_settled("7")
    assert not store.is_settled(8) and not store.is_settled(None)
    # Rewards without a trade id are never deduplicated.
    assert store.apply_reward(*CELL, 1.0, alpha=ALPHA) is not None
    assert store.apply_reward(*CELL, 1.0, alpha=ALPHA) is not None
    cell = store.get(*CELL)
    assert cell is not None and cell.count == 3
    assert [r.trade_id for r in store.ledger()] == ["7", None, None]


def test_reads_do_not_create_cells(store: QStore) -> None:
    assert store.get(*CELL) is None
    assert store.entries() == [] and store.entries(symbol="BTC/USDT", regime="x") == []
    assert store.ledger() == []
    assert not store.is_settled(1)
    assert store.is_empty()
    store.apply_reward("ETH/USDT", "range", "a", 1.0, alpha=ALPHA, trade_id=1)
    assert store.get(*CELL) is None
    assert [e.key for e in store.entries()] == [("ETH/USDT", "range", "a")]


def test_entries_filtering_and_sorting(store: QStore) -> None:
    keys = list(itertools.product(["b/USDT", "a/USDT", "B/USDT"], ["trend_up", "range"],
                                  ["z", "scalp", "Swing"]))
    for n, key in enumerate(reversed(keys)):
        store.apply_reward(*key, float(n), alpha=ALPHA, trade_id=n)
    assert [e.key for e in store.entries()] == sorted(keys)  # str order, not a SQL collation
    assert [e.key for e in store.entries(symbol="a/USDT")] == sorted(
        k for k in keys if k[0] == "a/USDT")
    assert [e.key for e in store.entries(regime="range")] == sorted(
        k for k in keys if k[1] == "range")
    assert [e.key for e in store.entries(symbol="B/USDT", regime="trend_up")] == sorted(
        k for k in keys if k[:2] == ("B/USDT", "trend_up"))
    assert store.entries(symbol="nope") == []


def test_reset(store: QStore) -> None:
    for i in range(3):
        store.apply_reward(*CELL, 1.0, alpha=ALPHA, trade_id=i)
    store.reset()
    assert store.is_empty() and store.get(*CELL) is None and not store.is_settled(0)
    # After a reset the same trade can be settled again and seq restarts.
    assert store.apply_reward(*CELL, 1.0, alpha=ALPHA, trade_id=0) is not None
    assert [r.seq for r in store.ledger()] == [1]


def test_export_import_round_trip_is_exact(new_store: Callable[[], QStore]) -> None:
    doc = awkward_document()
    src = new_store()
    src.import_dict(doc)
    text = dump(src)
    assert json.loads(text) == json.loads(exported(doc))
    assert text == exported(doc)  # nothing reordered or reformatted
    dst = new_store()
    dst.import_dict(src.export_dict())
    assert dump(dst) == text
    # Updates appended after an import continue the ledger after the highest seq.
    dst.apply_reward(*CELL, 0.1 + 0.2, alpha=ALPHA, trade_id="new")
    assert dst.ledger()[-1].seq == 58


def test_export_import_round_trip_of_learned_data(new_store: Callable[[], QStore],
                                                  tmp_path: Path) -> None:
    src = new_store()
    for i, r in enumerate(AWKWARD * 3):
        tz = TZS[i % len(TZS)]
        at = datetime(2024, 6, 1, 12, 0, 0, i, tzinfo=tz) if tz else None
        src.apply_reward(f"S{i % 3}", "range", f"p{i % 2}", r, alpha=0.35, trade_id=i, at=at,
                         probability=1 / (i + 3))
    text = dump(src)
    path = src.export_json(tmp_path / "backup.json")
    dst = new_store()
    dst.import_json(path)
    assert dump(dst) == text
    # Through the other kinds too (memory <-> SQL must agree bit for bit).
    mem = MemoryStore()
    mem.import_dict(dst.export_dict())
    assert dump(mem) == text
    sql = SqlStore(sqlite_url(tmp_path / "via.sqlite"))
    try:
        sql.import_dict(mem.export_dict())
        assert dump(sql) == text
    finally:
        sql.close()


def test_import_into_non_empty_store_needs_replace(new_store: Callable[[], QStore]) -> None:
    store = new_store()
    store.apply_reward(*CELL, 1.0, alpha=ALPHA, trade_id=1)
    before = dump(store)
    doc = awkward_document()
    with pytest.raises(StoreError, match="already holds learned data"):
        store.import_dict(doc)
    assert dump(store) == before
    # A ledger-only store counts as non-empty too.
    only_ledger = new_store()
    only_ledger.import_dict({**doc, "entries": []})
    with pytest.raises(StoreError):
        only_ledger.import_dict(doc)
    store.import_dict(doc, replace=True)
    assert dump(store) == exported(doc)


def test_invalid_import_changes_nothing(store: QStore) -> None:
    store.apply_reward(*CELL, 1.0, alpha=ALPHA, trade_id=1)
    before = dump(store)
    doc = awkward_document()
    bad_docs = [
        {"format": "other", "version": 1, "entries": [], "ledger": []},
        {**doc, "version": 2},
        {**doc, "ledger": [*doc["ledger"], doc["ledger"][0]]},
        {**doc, "entries": [{"symbol": "x"}]},
    ]
    for bad in bad_docs:
        with pytest.raises(StoreError):
            store.import_dict(bad, replace=True)
        assert dump(store) == before


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, "1.0x", None])
def test_non_finite_reward_raises_and_writes_nothing(store: QStore, bad: object) -> None:
    store.apply_reward(*CELL, 1.0, alpha=ALPHA, trade_id=1)
    before = dump(store)
    with pytest.raises(MetaStrategyError, match="reward"):
        store.apply_reward(*CELL, bad, alpha=ALPHA, trade_id=2)  # type: ignore[arg-type]
    with pytest.raises(MetaStrategyError, match="reward"):
        store.apply_reward("NEW/USDT", "range", "a", bad, alpha=ALPHA)  # type: ignore[arg-type]
    with pytest.raises(MetaStrategyError, match="alpha"):
        store.apply_reward(*CELL, 1.0, alpha=0.0, trade_id=2)
    assert dump(store) == before
    assert not store.is_settled(2)  # the trade can still be settled with a valid reward
    assert store.apply_reward(*CELL, 1.0, alpha=ALPHA, trade_id=2) is not None


def test_context_manager_and_iter_regime(store: QStore) -> None:
    store.apply_reward(*CELL, 1.0, alpha=ALPHA, trade_id=1)
    store.apply_reward("ETH/USDT", "range", "a", 1.0, alpha=ALPHA, trade_id=2)
    iter_regime = getattr(store, "iter_regime")  # noqa: B009 - not part of QStore
    assert [e.key for e in iter_regime("trend_up")] == [CELL]
    with store as s:
        assert s is store


# ---------------------------------------------------------------------------------------------
# The settlement watermark, on every store kind
# ---------------------------------------------------------------------------------------------
T1 = datetime(2030, 1, 1, 12, 0, 0, 250000, tzinfo=ZoneInfo("Asia/Tokyo"))
T2 = datetime(2031, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)
T3 = datetime(2032, 2, 29, 23, 59, 59, 999999, tzinfo=timezone(timedelta(hours=-3)))


def assert_utc(at: datetime) -> None:
    assert at.tzinfo is not None and at.utcoffset() == timedelta(0)


def test_watermark_is_set_when_the_store_is_created(new_store: Callable[[], QStore]) -> None:
    before = datetime.now(UTC)
    store = new_store()
    after = datetime.now(UTC)
    assert before <= store.watermark() <= after
    assert_utc(store.watermark())


def test_watermark_moves_only_when_the_content_is_replaced(store: QStore,
                                                           tmp_path: Path) -> None:
    start = store.watermark()
    # apply_reward never moves it, whatever the settlement time (earlier, later, duplicate)
    store.apply_reward(*CELL, 1.0, alpha=ALPHA, trade_id=1, at=start - timedelta(days=30))
    store.apply_reward(*CELL, 2.0, alpha=ALPHA, trade_id=2, at=start + timedelta(days=1))
    assert store.apply_reward(*CELL, 3.0, alpha=ALPHA, trade_id=1) is None
    assert store.watermark() == start
    # refused replacements leave it where it was
    doc = awkward_document()
    with pytest.raises(StoreError, match="already holds learned data"):
        store.import_dict(doc, now=T1)
    with pytest.raises(StoreError):
        store.import_dict({**doc, "version": 2}, replace=True, now=T1)
    with pytest.raises(MetaStrategyError, match="timezone-aware"):
        store.reset(now=datetime(2030, 1, 1))
    assert store.watermark() == start and len(store.ledger()) == 2
    # import --replace, reset, and an import into the empty store move it (to UTC)
    store.import_dict(doc, replace=True, now=T1)
    assert store.watermark() == T1
    assert_utc(store.watermark())
    store.reset(now=T2)
    assert store.watermark() == T2 and store.is_empty()
    store.import_dict(doc, now=T3)
    assert store.watermark() == T3
    path = store.export_json(tmp_path / "doc.json")
    assert set(json.loads(path.read_text())) == {"format", "version", "entries", "ledger",
                                                 "learner"}
    store.import_json(path, replace=True, now=T1)
    assert store.watermark() == T1
    # by default: the current time
    before = datetime.now(UTC)
    store.reset()
    assert before <= store.watermark() <= datetime.now(UTC)
    before = datetime.now(UTC)
    store.import_json(path)
    assert before <= store.watermark() <= datetime.now(UTC)


def test_memory_store_watermark_clock_and_pickle() -> None:
    import pickle

    store = MemoryStore(now=T1)
    assert store.watermark() == T1
    assert pickle.loads(pickle.dumps(store)).watermark() == T1
    with pytest.raises(MetaStrategyError, match="now"):
        MemoryStore(now="2030-01-01")  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------
# SqlStore specifics
# ---------------------------------------------------------------------------------------------
def test_sqlite_settings_and_persistence(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "er" / "q.sqlite"  # parent directories are created
    store = SqlStore(sqlite_url(path))
    assert store.location == str(path)
    assert store.journal_mode == "wal"
    with store._engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000
    expected = store.apply_reward(*CELL, 0.1 + 0.2, alpha=ALPHA, trade_id=1,
                                  at=datetime(2024, 1, 1, tzinfo=ZoneInfo("Europe/Paris")))
    store.close()
    with pytest.raises(StoreError, match="closed"):
        store.get(*CELL)
    with SqlStore(sqlite_url(path)) as again:
        assert again.get(*CELL) == expected
        assert again.is_settled(1)
    with sqlite3.connect(path) as raw:
        tables = {r[0] for r in raw.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        assert tables == {"metastrategy_meta", "metastrategy_qtable", "metastrategy_ledger",
                          "metastrategy_learner"}
        meta = dict(raw.execute("SELECT key, value FROM metastrategy_meta"))
        watermark = meta.pop("watermark")  # ISO-8601 text in UTC
        assert meta == {"app": "freqtrade-metastrategy", "schema_version": "1"}
        assert datetime.fromisoformat(watermark).utcoffset() == timedelta(0)
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_sqlite_writes_begin_immediate_and_reads_do_not(tmp_path: Path) -> None:
    """Writes take the write lock up front (no lock upgrade, so no SQLITE_BUSY deadlock);
    reads stay deferred (WAL readers never block the writer)."""
    store = SqlStore(sqlite_url(tmp_path / "b.sqlite"))
    with store:
        seen: list[str] = []

        def record(_c: object, _cur: object, statement: str, *_: object) -> None:
            seen.append(statement.split()[0].upper() + (
                " IMMEDIATE" if "IMMEDIATE" in statement.upper() else ""))

        sa.event.listen(store._engine, "before_cursor_execute", record)
        store.apply_reward(*CELL, 1.0, alpha=ALPHA, trade_id=1)
        assert seen[0] == "BEGIN IMMEDIATE" and "INSERT" in seen
        seen.clear()
        store.apply_reward(*CELL, 1.0, alpha=ALPHA, trade_id=1)  # duplicate: rolled back
        assert seen[0] == "BEGIN IMMEDIATE" and "UPDATE" not in seen
        seen.clear()
        store.get(*CELL)
        store.entries()
        assert seen.count("BEGIN") == 2 and "BEGIN IMMEDIATE" not in seen
        seen.clear()
        store.import_dict(store.export_dict(), replace=True)
        assert seen.count("BEGIN IMMEDIATE") == 1


def test_sqlite_relative_path_and_pandas_like_timestamps(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    store = SqlStore("sqlite:///rel.sqlite")
    try:
        assert store.location == str(tmp_path / "rel.sqlite")

        class Stamp(datetime):  # a datetime subclass, like pandas.Timestamp
            pass

        at = Stamp(2024, 5, 1, 8, 0, 0, 123456, tzinfo=UTC)
        got = store.apply_reward(*CELL, 1.0, alpha=ALPHA, trade_id=1, at=at)
        assert got is not None and type(got.last_update) is datetime and got.last_update == at
        assert store.get(*CELL) == got
        with pytest.raises(MetaStrategyError, match="at"):
            store.apply_reward(*CELL, 1.0, alpha=ALPHA, at="2024-01-01")  # type: ignore[arg-type]
        with pytest.raises(MetaStrategyError, match="probability"):
            store.apply_reward(*CELL, 1.0, alpha=ALPHA, probability=math.nan)
        assert store.get(*CELL) == got
    finally:
        store.close()


def test_generic_dialect_code_path(tmp_path: Path) -> None:
    """The savepoint-based path used for databases other than SQLite/PostgreSQL."""
    store = SqlStore(sqlite_url(tmp_path / "g.sqlite"))
    store._generic = True
    try:
        expected = QEntry.empty(*CELL)
        for i, r in enumerate(AWKWARD):
            expected = expected.updated(r, alpha=ALPHA)
            assert store.apply_reward(*CELL, r, alpha=ALPHA, trade_id=i) == expected
        assert store.apply_reward(*CELL, 5.0, alpha=ALPHA, trade_id=0) is None
        assert store.get(*CELL) == expected
        assert len(store.ledger()) == len(AWKWARD)
    finally:
        store.close()


def test_threads_share_one_store(tmp_path: Path) -> None:
    store = SqlStore(sqlite_url(tmp_path / "t.sqlite"))
    try:
        def work(k: int) -> None:
            for i in range(40):
                store.apply_reward(*CELL, reward_for(i), alpha=ALPHA, trade_id=f"{k}-{i}")

        threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        cell = store.get(*CELL)
        assert cell is not None and cell.count == 160 == len(store.ledger())
        assert cell.total_r == 4 * sum(reward_for(i) for i in range(40))
        assert replay(store.ledger(), CELL, ALPHA) == cell
    finally:
        store.close()


def test_sqlite_in_memory_url() -> None:
    with SqlStore("sqlite://") as store:
        assert store.apply_reward(*CELL, 1.0, alpha=ALPHA, trade_id=1) is not None
        assert store.entries()[0].count == 1


@pytest.mark.parametrize("damage", ["duplicate_seq", "nan_total", "inf_probability"])
def test_import_of_damaged_document_changes_nothing(store: QStore, damage: str) -> None:
    """Damaged documents are refused by every store kind, before anything is written."""
    doc = awkward_document()
    if damage == "duplicate_seq":
        doc["ledger"][1]["seq"] = doc["ledger"][0]["seq"]
    elif damage == "nan_total":
        doc["entries"][0]["total_r"] = math.nan
    else:
        doc["ledger"][0]["probability"] = math.inf
    store.apply_reward(*CELL, 1.0, alpha=ALPHA, trade_id=1)
    before = dump(store)
    with pytest.raises(StoreError, match=r"duplicate seq|not a finite|non-finite"):
        store.import_dict(doc, replace=True)
    assert dump(store) == before


def _make_legacy(url: str) -> None:
    """Turn a store into what an earlier version left: no watermark row."""
    engine = sa.create_engine(default_pg_driver(sa.make_url(url)))
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql("DELETE FROM metastrategy_meta WHERE key = 'watermark'")
    finally:
        engine.dispose()


def test_watermark_is_persisted(db_url: str, tmp_path: Path) -> None:
    with SqlStore(db_url) as store:
        created = store.watermark()
        store.apply_reward(*CELL, 1.0, alpha=ALPHA, trade_id=1)
    with SqlStore(db_url) as store, SqlStore(db_url) as other:
        assert store.watermark() == created
        store.reset(now=T2)
        assert other.watermark() == T2  # read from the database, never cached
        store.apply_reward(*CELL, 1.0, alpha=ALPHA, trade_id=1)
        path = store.export_json(tmp_path / "doc.json")
        other.import_json(path, replace=True, now=T3)
    with SqlStore(db_url) as store:
        assert store.watermark() == T3 and store.is_settled(1)


def test_legacy_store_watermark_is_its_earliest_settlement(db_url: str) -> None:
    times = [
        datetime(2024, 3, 1, 12, 0, tzinfo=ZoneInfo("Europe/Paris")),  # 11:00 UTC
        datetime(2024, 3, 1, 10, 30, tzinfo=timezone(timedelta(hours=-1))),  # 11:30 UTC
        None,
        datetime(2024, 3, 1, 10, 45),  # naive: read as UTC, the earliest (not as text)
        datetime(2024, 3, 2, tzinfo=UTC),
    ]
    with SqlStore(db_url) as store:
        for i, at in enumerate(times):
            store.apply_reward(*CELL, 1.0, alpha=ALPHA, trade_id=i, at=at)
    _make_legacy(db_url)
    earliest = datetime(2024, 3, 1, 10, 45, tzinfo=UTC)
    with SqlStore(db_url) as store:
        assert store.watermark() == earliest
        assert_utc(store.watermark())
        store.apply_reward(*CELL, 1.0, alpha=ALPHA, trade_id="x", at=datetime(2020, 1, 1,
                                                                              tzinfo=UTC))
    with SqlStore(db_url, create=False) as store:  # persisted at the first open, kept
        assert store.watermark() == earliest


def test_legacy_store_without_settlement_times_gets_its_first_open(db_url: str) -> None:
    with SqlStore(db_url) as store:
        store.apply_reward(*CELL, 1.0, alpha=ALPHA, trade_id=1)  # no settlement time
    _make_legacy(db_url)
    before = datetime.now(UTC)
    with SqlStore(db_url) as store:
        first = store.watermark()
    assert before <= first <= datetime.now(UTC)
    with SqlStore(db_url) as store:
        assert store.watermark() == first
        store.reset(now=T1)  # a legacy empty store, too
    _make_legacy(db_url)
    with SqlStore(db_url) as store:
        assert before < store.watermark() <= datetime.now(UTC)


def test_damaged_watermark_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "w.sqlite"
    url = sqlite_url(path)
    store = SqlStore(url)
    for value in ("yesterday", "2024-01-01T00:00:00"):  # not a time; no time zone
        with sqlite3.connect(path) as raw:
            raw.execute("UPDATE metastrategy_meta SET value = ? WHERE key = 'watermark'",
                        (value,))
        raw.close()
        with pytest.raises(StoreError, match=f"malformed watermark '{value}'") as info:
            SqlStore(url)
        assert str(path) in str(info.value)
        with pytest.raises(StoreError, match="malformed watermark"):
            store.watermark()
    with sqlite3.connect(path) as raw:
        raw.execute("DELETE FROM metastrategy_meta WHERE key = 'watermark'")
    raw.close()
    with pytest.raises(StoreError, match="has no watermark"):
        store.watermark()  # removed behind an open store's back: not silently re-created
    store.close()


# ---------------------------------------------------------------------------------------------
# Opening: URLs, defaults, foreign files
# ---------------------------------------------------------------------------------------------
def test_default_store_url_and_open_store(tmp_path: Path) -> None:
    ud = tmp_path / "user data"
    url = default_store_url(ud)
    assert url.startswith("sqlite:////") and url.endswith("/metastrategy.sqlite")
    assert sa.make_url(url).database == str(ud / "metastrategy.sqlite")
    assert isinstance(open_store("memory"), MemoryStore)
    store = open_store(None, user_data_dir=ud)
    try:
        assert isinstance(store, SqlStore)
        assert store.location == str(ud / "metastrategy.sqlite")
        assert (ud / "metastrategy.sqlite").is_file()
    finally:
        store.close()
    other = open_store(sqlite_url(tmp_path / "o.sqlite"), user_data_dir=ud)
    assert other.location == str(tmp_path / "o.sqlite")
    other.close()


@pytest.mark.parametrize("url", [None, "", "just/a/path.sqlite", "nosuchdb://x/y",
                                 "sqlite+aiosqlite:////tmp/x.sqlite"])
def test_open_store_bad_urls_name_the_setting(url: str | None) -> None:
    with pytest.raises(StoreError, match=r"metastrategy\.store_url"):
        open_store(url)


def test_unreachable_server_error_hides_password() -> None:
    with pytest.raises(StoreError) as info:
        SqlStore("postgresql+psycopg2://ft:s3cr3t-pw@127.0.0.1:1/ft")
    assert "s3cr3t-pw" not in str(info.value)
    assert "127.0.0.1" in str(info.value) and "metastrategy.store_url" in str(info.value)
    with pytest.raises(StoreError) as info2:
        open_store("ft:s3cr3t-pw@not a url")
    assert "s3cr3t-pw" not in str(info2.value)


def test_create_false_refuses_to_create(tmp_path: Path) -> None:
    path = tmp_path / "missing.sqlite"
    with pytest.raises(StoreError, match=r"missing\.sqlite"):
        SqlStore(sqlite_url(path), create=False)
    assert not path.exists()
    SqlStore(sqlite_url(path)).close()
    SqlStore(sqlite_url(path), create=False).close()


def _foreign_meta(path: Path, rows: dict[str, str]) -> None:
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE metastrategy_meta (key TEXT PRIMARY KEY, value TEXT)")
        conn.executemany("INSERT INTO metastrategy_meta VALUES (?, ?)", rows.items())
    conn.close()


def _make_text(p: Path) -> None:
    p.write_text('{"format": "freqtrade-metastrategy.qtable", "version": 1}\n')


def _make_random(p: Path) -> None:
    p.write_bytes(os.urandom(8192))


def _make_truncated_header(p: Path) -> None:
    p.write_bytes(b"SQLite format 3\x00" + os.urandom(40))


def _make_version_99(p: Path) -> None:
    _foreign_meta(p, {"app": "freqtrade-metastrategy", "schema_version": "99"})


def _make_other_app(p: Path) -> None:
    _foreign_meta(p, {"app": "someone-else", "schema_version": "1"})


def _make_tables_without_meta(p: Path) -> None:
    with sqlite3.connect(p) as conn:
        conn.execute("CREATE TABLE metastrategy_qtable (symbol TEXT)")
    conn.close()


def _make_missing_columns(p: Path) -> None:
    store = SqlStore(sqlite_url(p))
    store.close()
    with sqlite3.connect(p) as conn:
        conn.execute("PRAGMA journal_mode = DELETE")
        conn.execute("ALTER TABLE metastrategy_qtable DROP COLUMN sum_sq_r")
    conn.close()


def _make_damaged_learner(p: Path) -> None:
    store = SqlStore(sqlite_url(p))
    store.close()
    with sqlite3.connect(p) as conn:
        conn.execute("PRAGMA journal_mode = DELETE")
        conn.execute("DROP TABLE metastrategy_learner")
        conn.execute("CREATE TABLE metastrategy_learner (key TEXT PRIMARY KEY, doc TEXT)")
    conn.close()


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (_make_text, "is not a SQLite database"),
        (_make_random, "is not a SQLite database"),
        (_make_truncated_header, "freqtrade-metastrategy import"),
        (_make_version_99, "schema_version '99'"),
        (_make_other_app, "someone-else"),
        (_make_tables_without_meta, "no metastrategy_meta"),
        (_make_missing_columns, "sum_sq_r"),
        (_make_damaged_learner, r"metastrategy_learner lacks column\(s\) generation, state"),
    ],
)
def test_foreign_files_are_refused_and_left_untouched(
    tmp_path: Path, make: Callable[[Path], None], message: str
) -> None:
    path = tmp_path / "store.sqlite"
    make(path)
    before = path.read_bytes()
    listing = sorted(p.name for p in tmp_path.iterdir())
    for create in (True, False):
        with pytest.raises(StoreError, match=message) as info:
            SqlStore(sqlite_url(path), create=create)
        assert str(path) in str(info.value)
        assert "metastrategy.store_url" in str(info.value)
    with pytest.raises(StoreError, match=message):
        open_store(sqlite_url(path))
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == listing


def test_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="not a regular file"):
        SqlStore(sqlite_url(tmp_path))


def test_database_of_another_app_gets_our_tables(tmp_path: Path) -> None:
    path = tmp_path / "shared.sqlite"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE trades (id INTEGER PRIMARY KEY, pair TEXT)")
        conn.execute("INSERT INTO trades (pair) VALUES ('BTC/USDT')")
    conn.close()
    with SqlStore(sqlite_url(path)) as store:
        store.apply_reward(*CELL, 1.0, alpha=ALPHA, trade_id=1)
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT pair FROM trades").fetchall() == [("BTC/USDT",)]
    conn.close()


def test_empty_file_is_initialised(tmp_path: Path) -> None:
    path = tmp_path / "empty.sqlite"
    path.touch()
    with SqlStore(sqlite_url(path)) as store:
        assert store.is_empty()


@needs_pg
def test_postgresql_opening(pg_databases: Callable[[], str]) -> None:
    url = pg_databases()
    engine = sa.create_engine(default_pg_driver(sa.make_url(url)))
    try:
        with engine.begin() as conn:  # another application's table, none of ours
            conn.exec_driver_sql("CREATE TABLE trades (id serial PRIMARY KEY, pair text)")
            conn.exec_driver_sql("INSERT INTO trades (pair) VALUES ('BTC/USDT')")
        with SqlStore(url) as store:
            assert store.location == sa.make_url(url).render_as_string(hide_password=True)
            store.apply_reward(*CELL, 1.0, alpha=ALPHA, trade_id=1)
        with engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT pair FROM trades").all() == [("BTC/USDT",)]
            conn.exec_driver_sql("UPDATE metastrategy_meta SET value = '99' "
                                 "WHERE key = 'schema_version'")
            conn.commit()
        with pytest.raises(StoreError, match="schema_version '99'") as info:
            SqlStore(url)
        assert store.location in str(info.value)
        with engine.connect() as conn:  # nothing was recreated or dropped
            assert conn.exec_driver_sql("SELECT count(*) FROM metastrategy_ledger").scalar() == 1
    finally:
        engine.dispose()


# ---------------------------------------------------------------------------------------------
# Several processes, crash safety
# ---------------------------------------------------------------------------------------------
def _start_worker(url: str, mode: str, n: int, prefix: str,
                  pause: float = 0.0) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(WORKER), url, mode, str(n), prefix, str(pause)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def _run_together(url: str, jobs: list[tuple[str, int, str]]) -> list[int]:
    """Start the workers, release them at once, return how many rewards each applied."""
    # No store is opened beforehand: the workers also race to create the schema.
    procs = [_start_worker(url, mode, n, prefix, PAUSE) for mode, n, prefix in jobs]
    try:
        for p in procs:
            assert p.stdout is not None
            line = p.stdout.readline()
            assert line == "ready\n", (line, p.stderr.read() if p.stderr else "")
        for p in procs:
            assert p.stdin is not None
            p.stdin.write("go\n")
            p.stdin.flush()
        applied = []
        for p in procs:
            out, err = p.communicate(timeout=120)
            assert p.returncode == 0, err
            applied.append(int(out.split()[-1]))
        return applied
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()


def _is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


@pytest.mark.slow
def test_two_processes_never_lose_an_update(db_url: str) -> None:
    n = 500
    assert _run_together(db_url, [("distinct", n, "A"), ("distinct", n, "B")]) == [n, n]
    with SqlStore(db_url) as store:
        cell = store.get(*CELL)
        ledger = store.ledger()
        assert cell is not None and cell.count == 2 * n == len(ledger)
        assert cell.total_r == 2 * sum(reward_for(i) for i in range(n))
        assert cell.sum_sq_r == 2 * sum(reward_for(i) ** 2 for i in range(n))
        assert cell.win_count == 2 * sum(reward_for(i) > 0 for i in range(n))
        assert len({r.trade_id for r in ledger}) == 2 * n
        if _is_sqlite(db_url):  # seq order is the order the cell was updated in
            assert replay(ledger, CELL, ALPHA) == cell


@pytest.mark.slow
def test_processes_racing_on_same_trade_ids_settle_once(db_url: str) -> None:
    n = 300
    applied = _run_together(db_url, [("same", n, "T"), ("same", n, "T"), ("reverse", n, "T")])
    assert sum(applied) == n
    with SqlStore(db_url) as store:
        cell = store.get(*CELL)
        ledger = store.ledger()
        assert cell is not None and cell.count == n == len(ledger)
        assert sorted(r.trade_id or "" for r in ledger) == sorted(f"T{i}" for i in range(n))
        assert cell.total_r == sum(reward_for(i) for i in range(n))
        if _is_sqlite(db_url):
            assert replay(ledger, CELL, ALPHA) == cell


@pytest.mark.slow
def test_sigkill_mid_stream_loses_nothing_committed(db_url: str) -> None:
    SqlStore(db_url).close()
    proc = _start_worker(db_url, "crash", 100_000, "c")
    printed: list[int] = []
    try:
        assert proc.stdout is not None
        while len(printed) < 200:
            line = proc.stdout.readline()
            assert line, proc.stderr.read() if proc.stderr else ""
            printed.append(int(line))
        proc.send_signal(signal.SIGKILL)
        rest, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    printed += [int(x) for x in rest.split()]  # committed before the kill, still in the pipe
    assert printed == list(range(len(printed)))
    with SqlStore(db_url) as store:
        cell = store.get(*CELL)
        ledger = store.ledger()
        assert cell is not None and cell.count == len(ledger)
        # Everything printed was committed; at most the one in flight more.
        assert len(printed) <= len(ledger) <= len(printed) + 1
        assert [r.trade_id for r in ledger] == [f"c{i}" for i in range(len(ledger))]
        assert cell.total_r == sum(reward_for(i) for i in range(len(ledger)))
        assert replay(ledger, CELL, ALPHA) == cell
        # The store keeps working after the crash.
        assert store.apply_reward(*CELL, 1.0, alpha=ALPHA, trade_id="after") is not None
    if _is_sqlite(db_url):
        path = sa.make_url(db_url).database
        assert path is not None
        with sqlite3.connect(path) as raw:
            assert raw.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        raw.close()


def _open_at_barrier(url: str, barrier: Any, results: Any) -> None:
    barrier.wait()
    try:
        with SqlStore(url) as store:
            results.put(store.journal_mode)
    except Exception as exc:  # reported to the parent
        results.put(f"{type(exc).__name__}: {exc}")


def test_processes_creating_one_sqlite_store_at_once_all_open_it(tmp_path: Path) -> None:
    """Two bots starting together on a new store: SQLite answers the WAL switch with "database
    is locked" at once while another process holds the file; without the retry about 2% of
    these rounds failed (4 of 200 measured)."""
    import multiprocessing

    ctx = multiprocessing.get_context("fork")
    for i in range(150):  # ~95% chance to catch the 2% failure, ~12 s
        url = f"sqlite:///{tmp_path / f'race{i}.sqlite'}"
        barrier, results = ctx.Barrier(4), ctx.Queue()
        procs = [ctx.Process(target=_open_at_barrier, args=(url, barrier, results))
                 for _ in range(4)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(timeout=60)
        assert [results.get(timeout=5) for _ in procs] == ["wal"] * 4, f"round {i}"


def _watermark_at_barrier(url: str, barrier: Any, results: Any) -> None:
    barrier.wait()
    try:
        with SqlStore(url) as store:
            results.put(store.watermark().isoformat())
    except Exception as exc:  # reported to the parent
        results.put(f"{type(exc).__name__}: {exc}")


def test_processes_opening_a_legacy_store_at_once_agree_on_its_watermark(db_url: str) -> None:
    """The first open stamps an (empty-ledger) legacy store with its own clock: the stamping
    is serialized like the table creation, so every process ends up with the same one."""
    import multiprocessing

    SqlStore(db_url).close()
    ctx = multiprocessing.get_context("fork")
    for i in range(15):
        _make_legacy(db_url)
        barrier, results = ctx.Barrier(4), ctx.Queue()
        procs = [ctx.Process(target=_watermark_at_barrier, args=(db_url, barrier, results))
                 for _ in range(4)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(timeout=60)
        got = [results.get(timeout=5) for _ in procs]
        with SqlStore(db_url) as store:
            assert got == [store.watermark().isoformat()] * 4, f"round {i}: {got}"


# -- the watermark under concurrency (review of the live-fidelity change) ---------------------
def test_a_reward_for_a_trade_closed_before_the_watermark_is_refused_in_its_transaction(
    new_store: Callable[[], QStore],
) -> None:
    """``closed_at`` before the watermark: nothing is written, whatever the caller checked
    before (a ``reset`` by another process can land between the caller's check and the write)."""
    store = new_store()
    mark = datetime(2026, 6, 1, 12, tzinfo=UTC)
    store.reset(now=mark)
    before = mark - timedelta(microseconds=1)
    assert store.apply_reward("BTC/USDT", "trend_up", "moderate", 1.0, alpha=0.2,
                              trade_id="old", closed_at=before) is None
    assert store.is_empty() and not store.is_settled("old")
    assert store.apply_reward("BTC/USDT", "trend_up", "moderate", 1.0, alpha=0.2,
                              trade_id="at", closed_at=mark) is not None
    assert [r.trade_id for r in store.ledger()] == ["at"]


@needs_pg
def test_reset_while_a_reward_is_being_written_does_not_deadlock_on_postgresql(
    pg_databases: Callable[[], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """apply_reward locks the ledger, then the cell; a reset must take its table locks in the
    same order (it used to lock the Q-table first: "deadlock detected")."""
    url = pg_databases()
    bot, cli = SqlStore(url), SqlStore(url)
    real = SqlStore._lock_cell
    inserted = threading.Event()

    def slow_lock(self: SqlStore, conn: Any, key: Any) -> Any:
        inserted.set()  # the ledger row is inserted; hold the transaction open a moment
        time.sleep(0.5)
        return real(self, conn, key)

    monkeypatch.setattr(bot, "_lock_cell", slow_lock.__get__(bot))
    out: dict[str, Any] = {}
    worker = threading.Thread(target=lambda: out.update(entry=bot.apply_reward(
        "BTC/USDT", "trend_up", "moderate", 1.0, alpha=0.2, trade_id="t1")))
    worker.start()
    assert inserted.wait(10)
    cli.reset()  # waits for the reward's transaction, then empties the store
    worker.join(10)
    assert out["entry"] is not None
    assert cli.is_empty()
    bot.close()
    cli.close()


@needs_pg
def test_read_only_legacy_store_still_opens(pg_databases: Callable[[], str]) -> None:
    """A store written before watermarks existed, opened by a role that may only read it
    (e.g. `freqtrade-metastrategy show` with a reporting account): it opens, shows its data and
    reports a computed watermark (the earliest settlement) without writing anything."""
    url = pg_databases()
    first = datetime(2025, 3, 1, tzinfo=UTC)
    with SqlStore(url) as writer:
        writer.apply_reward("BTC/USDT", "trend_up", "moderate", 1.0, alpha=0.2,
                            trade_id="t1", at=first)
        with writer._engine.begin() as conn:  # as an earlier version left it
            conn.exec_driver_sql("DELETE FROM metastrategy_meta WHERE key = 'watermark'")
            role = f"ms_reader_{uuid.uuid4().hex[:8]}"
            conn.exec_driver_sql(f"CREATE ROLE {role} LOGIN PASSWORD 'reader'")
            conn.exec_driver_sql(f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role}")
    reader_url = sa.make_url(url).set(username=role, password="reader")
    with SqlStore(reader_url.render_as_string(hide_password=False), create=False) as reader:
        assert reader.watermark() == first
        assert [r.trade_id for r in reader.ledger()] == ["t1"]
    engine = sa.create_engine(default_pg_driver(sa.make_url(url)))
    with engine.begin() as conn:
        rows = dict(conn.exec_driver_sql("SELECT key, value FROM metastrategy_meta").all())
        assert "watermark" not in rows  # nothing was written by the reader
        conn.exec_driver_sql(f"DROP OWNED BY {role}")
        conn.exec_driver_sql(f"DROP ROLE {role}")
    engine.dispose()


# ---------------------------------------------------------------------------------------------
# The full-information learner's state (QStore.learner_state / save_learner_state)
# ---------------------------------------------------------------------------------------------
def learner_doc(i: int = 0) -> dict[str, Any]:
    """A learner state of about 50 KB with values that are hard to round-trip (odd floats,
    -0.0, nested and empty containers, non-ASCII keys); ``i`` makes each one unique."""
    return {
        "i": i,
        "learner": {
            "version": 1, "released": i,
            "means": {"s": [0.1 + 0.2, 1e-300, -2.5e17, 5e-324, -0.0, 2.0**-1074 * 3],
                      "w": 1 / 3},
            "ridge": {"sxx": [[(i + 37 * r + c) / 7 for c in range(40)] for r in range(40)],
                      "lam": 1e-12},
            "pending": [],
        },
        "tracker": {
            "watching": [{"pair": "BTC/USDT:USDT", "signal_ns": 1_700_000_000_000_000_000 + k,
                          "side": "long", "x": [k / 3, -0.0, 123456.789]} for k in range(300)],
            "seen_through": {"BTC/USDT:USDT": 1_700_000_000_000_000_000 + i},
            "counts": {"trend_up": [i, 1], "range": [0, 0]},
        },
        "nested": [[], [[]], {"": None, "ü": True, "f": False}, "x" * 100, 2**70],
    }


def as_text(state: object) -> str:
    """Bit-for-bit comparison (floats by repr, -0.0 included) that also sees key order."""
    return json.dumps(state, allow_nan=False)


def test_learner_doc_is_about_50_kb() -> None:
    assert 40_000 < len(as_text(learner_doc(7))) < 80_000


def test_learner_state_round_trips_exactly(store: QStore) -> None:
    assert store.learner_state() == (None, 0)
    assert store.is_empty()
    doc = learner_doc(3)
    assert store.save_learner_state(doc, generation=0) == 1
    got, generation = store.learner_state()
    assert generation == 1 and got == doc and as_text(got) == as_text(doc)
    assert got is not doc
    got["i"] = -1  # the caller's copies are its own: neither changes the stored state
    doc["i"] = -2
    assert store.learner_state() == (learner_doc(3), 1)
    assert not store.is_empty()  # a learner state is learned data
    assert store.export_dict()["learner"] == learner_doc(3)
    assert store.save_learner_state(learner_doc(4), generation=1) == 2
    assert as_text(store.learner_state()) == as_text([learner_doc(4), 2])
    assert store.entries() == [] and store.ledger() == []  # the Q-table is another thing


def test_learner_state_is_a_compare_and_swap_on_its_generation(store: QStore) -> None:
    assert store.save_learner_state(learner_doc(1), generation=0) == 1
    for stale in (0, 2, 99):
        with pytest.raises(StaleLearnerStateError) as info:
            store.save_learner_state(learner_doc(2), generation=stale)
        assert isinstance(info.value, StoreError)
        assert (info.value.expected, info.value.stored) == (stale, 1)
        message = str(info.value)
        assert store.location in message
        for words in ("changed by another process", "reset", "import", "nothing was written",
                      "reloads"):
            assert words in message
    for bad in (-1, True, "1", 1.0, None):
        with pytest.raises(StoreError, match="generation"):
            store.save_learner_state(learner_doc(2), generation=bad)  # type: ignore[arg-type]
    assert as_text(store.learner_state()) == as_text([learner_doc(1), 1])


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_learner_state_is_refused_and_nothing_written(store: QStore,
                                                                 bad: float) -> None:
    store.save_learner_state(learner_doc(1), generation=0)
    doc = learner_doc(2)
    doc["learner"]["ridge"]["sxx"][39][39] = bad
    with pytest.raises(StoreError, match="learner state contains NaN or infinity") as info:
        store.save_learner_state(doc, generation=1)
    assert store.location in str(info.value) and "nothing was written" in str(info.value)
    assert as_text(store.learner_state()) == as_text([learner_doc(1), 1])
    # Not a JSON object, or not JSON at all: refused the same way.
    for wrong, match in (([1, 2], "must be a JSON object"), ({"s": {1, 2}}, "not JSON"),
                         ({"a": object()}, "not JSON")):
        with pytest.raises(StoreError, match=match):
            store.save_learner_state(wrong, generation=1)  # type: ignore[arg-type]
    assert store.save_learner_state(learner_doc(3), generation=1) == 2  # still generation 1


def test_reset_clears_the_learner_state_and_bumps_its_generation(store: QStore) -> None:
    # A bot that loaded the fresh store (generation 0) and learned in memory must not be able
    # to write that back after a reset either: every reset bumps the generation.
    store.reset()
    assert store.learner_state() == (None, 1)
    with pytest.raises(StaleLearnerStateError):
        store.save_learner_state(learner_doc(1), generation=0)
    assert store.save_learner_state(learner_doc(1), generation=1) == 2
    assert not store.is_empty()  # only a learner state: not empty
    store.apply_reward(*CELL, 1.0, alpha=ALPHA, trade_id=1)
    store.reset(now=T2)
    assert store.learner_state() == (None, 3)
    assert store.is_empty() and store.watermark() == T2
    with pytest.raises(StaleLearnerStateError):  # the bot's pre-reset state stays out
        store.save_learner_state(learner_doc(2), generation=2)
    assert store.learner_state() == (None, 3)
    assert store.save_learner_state(learner_doc(3), generation=3) == 4


def test_export_import_with_a_learner_state(new_store: Callable[[], QStore],
                                            tmp_path: Path) -> None:
    src = new_store()
    src.import_dict(awkward_document())
    src.save_learner_state(learner_doc(5), generation=1)
    text = dump(src)
    path = src.export_json(tmp_path / "with-learner.json")
    document = json.loads(path.read_text())
    assert set(document) == {"format", "version", "entries", "ledger", "learner"}
    assert as_text(document["learner"]) == as_text(learner_doc(5))
    dst = new_store()
    dst.import_json(path, now=T1)
    assert dump(dst) == text and dst.watermark() == T1
    assert dst.learner_state() == (learner_doc(5), 1)  # an import bumps the generation
    # Through the other kinds too (memory <-> SQL agree bit for bit).
    mem = MemoryStore()
    mem.import_dict(dst.export_dict())
    assert dump(mem) == text
    with SqlStore(sqlite_url(tmp_path / "via.sqlite")) as sql:
        sql.import_dict(mem.export_dict())
        assert dump(sql) == text
    # --replace: the document's learner state, or none, replaces the stored one.
    dst.import_dict({**document, "learner": learner_doc(6)}, replace=True)
    assert as_text(dst.learner_state()) == as_text([learner_doc(6), 2])
    dst.import_dict({**document, "learner": None}, replace=True)
    assert dst.learner_state() == (None, 3)
    assert not dst.is_empty() and dump(dst) == exported({**document, "learner": None})


def test_old_export_without_learner_state_still_imports(new_store: Callable[[], QStore],
                                                        tmp_path: Path) -> None:
    old = awkward_document()  # as exports were written before the learner state existed
    assert "learner" not in old
    path = tmp_path / "old.json"
    path.write_text(json.dumps(old, indent=1))
    store = new_store()
    store.import_json(path)
    assert dump(store) == exported(old) and store.learner_state() == (None, 1)
    # replacing a store that has a learner state with an old export clears it
    store.save_learner_state(learner_doc(1), generation=1)
    store.import_json(path, replace=True)
    assert store.learner_state() == (None, 3) and dump(store) == exported(old)


def test_import_without_replace_never_drops_a_learner_state(
    new_store: Callable[[], QStore],
) -> None:
    doc = {**awkward_document(), "learner": learner_doc(9)}
    only_learner = new_store()
    only_learner.save_learner_state(learner_doc(1), generation=0)
    before = dump(only_learner)
    for incoming in (doc, awkward_document(), {**doc, "entries": [], "ledger": []}):
        with pytest.raises(StoreError, match="already holds learned data") as info:
            only_learner.import_dict(incoming, now=T1)
        assert "--replace" in str(info.value)
        assert dump(only_learner) == before
        assert only_learner.learner_state()[1] == 1 and only_learner.watermark() != T1
    # Cells only: refused as before, the document's learner state is not merged in.
    cells = new_store()
    cells.apply_reward(*CELL, 1.0, alpha=ALPHA, trade_id=1)
    with pytest.raises(StoreError, match="already holds learned data"):
        cells.import_dict(doc)
    assert cells.learner_state() == (None, 0)
    # An empty store takes the document's learner state.
    empty = new_store()
    empty.import_dict(doc)
    assert as_text(empty.learner_state()) == as_text([learner_doc(9), 1])


def test_import_of_a_document_with_a_bad_learner_state_changes_nothing(store: QStore) -> None:
    store.apply_reward(*CELL, 1.0, alpha=ALPHA, trade_id=1)
    store.save_learner_state(learner_doc(1), generation=0)
    before = dump(store)
    # json.loads reads NaN/Infinity: a hand-edited file can hold them
    nan_doc = json.loads(json.dumps({**awkward_document(), "learner": {"w": [1.0, math.nan]}}))
    for bad, match in ((nan_doc, "NaN or infinity"),
                       ({**awkward_document(), "learner": [1, 2]}, "must be a JSON object")):
        with pytest.raises(StoreError, match=match) as info:
            store.import_dict(bad, replace=True, source="bad.json")
        assert str(info.value).startswith("bad.json: ")
        assert dump(store) == before and store.learner_state()[1] == 1


def test_memory_store_pickles_its_learner_state() -> None:
    import pickle

    store = MemoryStore()
    store.save_learner_state(learner_doc(2), generation=0)
    copy = pickle.loads(pickle.dumps(store))
    assert copy.learner_state() == (learner_doc(2), 1)
    assert copy.save_learner_state(learner_doc(3), generation=1) == 2
    assert store.learner_state() == (learner_doc(2), 1)


# -- SQL: several store objects, the table, read-only stores, crashes -------------------------
def test_two_store_objects_on_one_database_compare_and_swap(db_url: str) -> None:
    with SqlStore(db_url) as bot, SqlStore(db_url) as other:
        assert bot.learner_state() == other.learner_state() == (None, 0)
        assert bot.save_learner_state(learner_doc(1), generation=0) == 1
        with pytest.raises(StaleLearnerStateError):
            other.save_learner_state(learner_doc(2), generation=0)  # loaded before bot saved
        assert other.learner_state() == (learner_doc(1), 1)  # nothing written
        assert other.save_learner_state(learner_doc(2), generation=1) == 2
        with pytest.raises(StaleLearnerStateError):
            bot.save_learner_state(learner_doc(3), generation=1)
        other.reset()
        with pytest.raises(StaleLearnerStateError):
            bot.save_learner_state(learner_doc(3), generation=2)
        assert bot.learner_state() == (None, 3)
    with SqlStore(db_url) as again:  # persisted
        assert again.learner_state() == (None, 3)


def test_concurrent_saves_each_win_one_generation(db_url: str) -> None:
    """Writers that reload on StaleLearnerStateError: every successful save got its own
    generation, none was lost (PostgreSQL: the row lock under READ COMMITTED)."""
    SqlStore(db_url).close()
    won: list[int] = []
    errors: list[BaseException] = []

    def work(k: int) -> None:
        try:
            with SqlStore(db_url) as store:
                saves = 0
                while saves < 15:
                    _state, generation = store.learner_state()
                    try:
                        won.append(store.save_learner_state({"by": k, "n": saves},
                                                            generation=generation))
                        saves += 1
                    except StaleLearnerStateError:
                        pass
        except BaseException as exc:  # reported to the main thread
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    assert sorted(won) == list(range(1, 46))
    with SqlStore(db_url) as store:
        state, generation = store.learner_state()
        assert generation == 45 and state is not None and state["n"] == 14


def test_sqlite_learner_writes_begin_immediate_and_generic_path(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path / "l.sqlite")
    with SqlStore(url) as store, SqlStore(url) as other:
        seen: list[str] = []

        def record(_c: object, _cur: object, statement: str, *_: object) -> None:
            seen.append(statement.split()[0].upper() + (
                " IMMEDIATE" if "IMMEDIATE" in statement.upper() else ""))

        sa.event.listen(store._engine, "before_cursor_execute", record)
        store.save_learner_state(learner_doc(1), generation=0)
        assert seen[0] == "BEGIN IMMEDIATE" and "INSERT" in seen
        seen.clear()
        store.learner_state()
        assert seen[0] == "BEGIN"
        # The portable savepoint path (databases other than SQLite/PostgreSQL)
        store.reset()
        other._generic = True
        with pytest.raises(StaleLearnerStateError):
            other.save_learner_state(learner_doc(2), generation=0)
        assert other.save_learner_state(learner_doc(2), generation=2) == 3
        fresh = SqlStore(sqlite_url(tmp_path / "g.sqlite"))
        fresh._generic = True
        assert fresh.save_learner_state(learner_doc(3), generation=0) == 1
        with pytest.raises(StaleLearnerStateError):
            fresh.save_learner_state(learner_doc(4), generation=0)
        assert fresh.learner_state() == (learner_doc(3), 1)
        fresh.close()


def _drop_learner_table(url: str) -> None:
    """Turn a store into what the version before the learner state left: no such table."""
    engine = sa.create_engine(default_pg_driver(sa.make_url(url)))
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("DROP TABLE metastrategy_learner"))
    finally:
        engine.dispose()


def _has_learner_table(url: str) -> bool:
    engine = sa.create_engine(default_pg_driver(sa.make_url(url)))
    try:
        with engine.connect() as conn:
            return sa.inspect(conn).has_table("metastrategy_learner")
    finally:
        engine.dispose()


def test_a_store_created_before_the_learner_state_gets_its_table(db_url: str,
                                                                 tmp_path: Path) -> None:
    with SqlStore(db_url) as store:
        store.apply_reward(*CELL, 1.0, alpha=ALPHA, trade_id=1)
        text, mark = dump(store), store.watermark()
    _drop_learner_table(db_url)
    assert not _has_learner_table(db_url)
    with SqlStore(db_url, create=False) as store:  # an existing store: migrated even so
        assert _has_learner_table(db_url)
        assert dump(store) == text and store.watermark() == mark
        assert store.learner_state() == (None, 0) and not store.is_empty()
        assert store.save_learner_state(learner_doc(1), generation=0) == 1
    # An old export imported into it, and an export of it read by the old format's parser
    with SqlStore(db_url) as store:
        assert store.learner_state() == (learner_doc(1), 1)
        path = store.export_json(tmp_path / "x.json")
        store.import_dict({k: v for k, v in json.loads(path.read_text()).items()
                           if k != "learner"}, replace=True)
        assert store.learner_state() == (None, 2)


def _open_read_only(path: str, results: Any) -> None:
    """In a child process that may only read ``path`` (root: as ``nobody``)."""
    import pwd

    from freqtrade_metastrategy.store import sql

    try:
        if os.geteuid() == 0:
            nobody = pwd.getpwnam("nobody")
            os.setgid(nobody.pw_gid)
            os.setuid(nobody.pw_uid)
        attempts: list[str] = []
        sql.create_learner_table = lambda *_: attempts.append("create")  # type: ignore[assignment]
        with SqlStore(sqlite_url(Path(path)), create=False) as store:
            out: dict[str, Any] = {"state": store.learner_state(),
                                   "cells": len(store.entries()),
                                   "empty": store.is_empty(),
                                   "learner": store.export_dict()["learner"]}
            for what, call in (("save", lambda: store.save_learner_state({"a": 1},
                                                                         generation=0)),
                               ("reset", store.reset)):
                try:
                    call()
                    out[what] = "done"
                except StoreError as exc:
                    out[what] = str(exc)
        out["attempts"] = attempts
        results.put(out)
    except BaseException as exc:  # reported to the parent
        results.put(f"{type(exc).__name__}: {exc}")


def test_read_only_sqlite_store_without_learner_table_opens(tmp_path: Path) -> None:
    """A store of the previous version that this process may only read (e.g. `show` on a
    file owned by the bot's user): it opens, has no learner state, and the table is not even
    tried (SQLite needs the directory writable for a WAL store's -shm file, as before)."""
    import multiprocessing
    import pwd
    import shutil
    import tempfile

    if os.geteuid() == 0:
        try:
            pwd.getpwnam("nobody")
        except KeyError:
            pytest.skip("running as root without a 'nobody' user to read the store as")
    folder = Path(tempfile.mkdtemp(prefix="ms-ro-"))  # reachable by 'nobody' (root's run)
    try:
        folder.chmod(0o777)
        path = folder / "ro.sqlite"
        with SqlStore(sqlite_url(path)) as store:
            store.apply_reward(*CELL, 1.0, alpha=ALPHA, trade_id=1)
        _drop_learner_table(sqlite_url(path))
        path.chmod(0o444)
        ctx = multiprocessing.get_context("fork")
        results = ctx.Queue()
        child = ctx.Process(target=_open_read_only, args=(str(path), results))
        child.start()
        out = results.get(timeout=60)
        child.join(30)
        assert isinstance(out, dict), out
        assert out["state"] == (None, 0) and out["learner"] is None
        assert out["cells"] == 1 and out["empty"] is False
        assert out["attempts"] == []  # never tried to create the table
        assert "metastrategy_learner is missing and cannot be created" in out["save"]
        assert "nothing was changed" in out["save"]
        assert "readonly" in out["reset"]  # as before: a read-only store cannot be reset
        assert not _has_learner_table(sqlite_url(path))
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@needs_pg
def test_read_only_postgresql_role_without_learner_table(pg_databases: Callable[[], str],
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Like test_read_only_legacy_store_still_opens, for the learner table: a SELECT-only role
    opens a store of the previous version, sees no learner state, never tries CREATE TABLE."""
    from freqtrade_metastrategy.store import sql

    url = pg_databases()
    with SqlStore(url) as writer:
        writer.apply_reward(*CELL, 1.0, alpha=ALPHA, trade_id="t1")
    _drop_learner_table(url)
    role = f"ms_reader_{uuid.uuid4().hex[:8]}"
    engine = sa.create_engine(default_pg_driver(sa.make_url(url)))
    with engine.begin() as conn:
        conn.exec_driver_sql(f"CREATE ROLE {role} LOGIN PASSWORD 'reader'")
        conn.exec_driver_sql(f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role}")
    attempts: list[object] = []
    monkeypatch.setattr(sql, "create_learner_table", lambda *a: attempts.append(a))
    reader_url = sa.make_url(url).set(username=role, password="reader")
    try:
        with SqlStore(reader_url.render_as_string(hide_password=False), create=False) as reader:
            assert reader.learner_state() == (None, 0)
            assert reader.export_dict()["learner"] is None and not reader.is_empty()
            with pytest.raises(StoreError, match="cannot be created here"):
                reader.save_learner_state({"a": 1}, generation=0)
        assert attempts == [] and not _has_learner_table(url)
    finally:
        with engine.begin() as conn:
            conn.exec_driver_sql(f"DROP OWNED BY {role}")
            conn.exec_driver_sql(f"DROP ROLE {role}")
        engine.dispose()


@needs_pg
def test_reset_while_the_learner_state_is_being_saved_does_not_deadlock_on_postgresql(
    pg_databases: Callable[[], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The save holds the learner row; a reset (ledger, Q-table, learner) waits for it, then
    clears the state and bumps the generation past the one the bot just got."""
    url = pg_databases()
    bot, cli = SqlStore(url), SqlStore(url)
    bot.apply_reward(*CELL, 1.0, alpha=ALPHA, trade_id="t0")
    real = SqlStore._swap_learner
    swapped = threading.Event()

    def slow_swap(self: SqlStore, conn: Any, text: str, generation: int) -> bool:
        done = real(self, conn, text, generation)
        swapped.set()  # the row is updated and locked; hold the transaction open a moment
        time.sleep(0.5)
        return done

    monkeypatch.setattr(bot, "_swap_learner", slow_swap.__get__(bot))
    out: dict[str, Any] = {}
    saver = threading.Thread(target=lambda: out.update(
        generation=bot.save_learner_state(learner_doc(1), generation=0)))
    other = SqlStore(url)  # a reward settling meanwhile (ledger, then its cell)
    rewarder = threading.Thread(target=lambda: out.update(entry=other.apply_reward(
        *CELL, 1.0, alpha=ALPHA, trade_id="t1")))
    saver.start()
    assert swapped.wait(10)
    rewarder.start()
    cli.reset()  # waits for the save, then empties the store
    saver.join(10)
    rewarder.join(10)
    assert out["generation"] == 1 and "entry" in out
    assert cli.learner_state() == (None, 2)
    with pytest.raises(StaleLearnerStateError):
        bot.save_learner_state(learner_doc(2), generation=1)
    for store in (bot, cli, other):
        store.close()


def _save_learner_states(url: str, fd: int) -> None:
    """Child process: save learner_doc(0), learner_doc(1), ... and report each index on
    ``fd`` right after its commit, until killed."""
    store = SqlStore(url)
    generation = 0
    for i in itertools.count():
        generation = store.save_learner_state(learner_doc(i), generation=generation)
        os.write(fd, f"{i}\n".encode())


@pytest.mark.slow
def test_sigkill_mid_save_leaves_a_complete_learner_state(db_url: str) -> None:
    import multiprocessing

    SqlStore(db_url).close()
    ctx = multiprocessing.get_context("fork")
    read_fd, write_fd = os.pipe()
    child = ctx.Process(target=_save_learner_states, args=(db_url, write_fd))
    child.start()
    os.close(write_fd)
    printed: list[int] = []
    with os.fdopen(read_fd) as reports:
        try:
            while len(printed) < 40:
                line = reports.readline()
                assert line, "the child stopped"
                printed.append(int(line))
            child.kill()  # SIGKILL, most likely inside a save (they are most of its time)
            child.join(30)
            printed += [int(x) for x in reports.read().split()]  # committed, still in the pipe
        finally:
            if child.is_alive():
                child.kill()
                child.join()
    assert child.exitcode == -signal.SIGKILL
    assert printed == list(range(len(printed)))
    with SqlStore(db_url) as store:
        state, generation = store.learner_state()
        assert state is not None
        i = state["i"]
        # A complete state: the last one reported, or the one in flight when it was killed.
        assert len(printed) - 1 <= i <= len(printed)
        assert as_text(state) == as_text(learner_doc(i))
        assert generation == i + 1
        assert store.save_learner_state(learner_doc(-1), generation=generation) == i + 2
    if _is_sqlite(db_url):
        path = sa.make_url(db_url).database
        assert path is not None
        with sqlite3.connect(path) as raw:
            assert raw.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        raw.close()
