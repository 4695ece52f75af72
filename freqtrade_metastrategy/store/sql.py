"""SQL Q-table store (:class:`SqlStore`): the store's transactions on SQLite, PostgreSQL or any
SQLAlchemy URL (SQLAlchemy Core only; opening in :mod:`.engine`, tables in :mod:`.schema`).

:meth:`SqlStore.apply_reward` is one transaction (SQLite: ``BEGIN IMMEDIATE``; PostgreSQL: the
cell locked ``FOR UPDATE``): the ledger row first (an already settled ``trade_id`` rolls it
back and returns ``None``), then the cell, so retrying after an unknown outcome is safe.
Replacements (reset, import) swap the whole content and the watermark in one transaction;
an export reads one snapshot. Opening never replaces, truncates or recreates anything.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg
from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import Connection

from freqtrade_metastrategy.errors import StoreError
from freqtrade_metastrategy.qtable import QEntry, QKey
from freqtrade_metastrategy.store.base import (
    FORMAT,
    FORMAT_VERSION,
    LedgerRow,
    QStore,
    check_finite,
    content_start,
    norm_trade_id,
    not_empty_error,
)
from freqtrade_metastrategy.store.engine import (
    STORE_URL_FIELD,
    WRITE_OPTION,
    db_error,
    enable_wal,
    is_read_only,
    open_engine,
)
from freqtrade_metastrategy.store.schema import (
    ENTRIES,
    KEY_COLUMNS,
    LEDGER,
    WATERMARK_KEY,
    check_schema,
    create_or_stamp,
    key_where,
    ledger_table,
    legacy_watermark,
    meta_table,
    our_tables,
    parse_watermark,
    qtable,
    read_entries,
    read_ledger,
    set_watermark,
    stored_watermark,
)


class _AlreadySettled(Exception):
    """Raised inside the apply_reward transaction to roll it back (duplicate trade_id)."""


class SqlStore(QStore):
    """Q-table store in a SQL database (see the module docstring for the guarantees).

    ``url`` is any SQLAlchemy URL (``sqlite:////abs/path.sqlite``, ``postgresql://...``).
    ``create=False`` refuses to create a missing SQLite file or missing tables.
    ``sqlite_synchronous`` is for benchmarks/tuning only: ``FULL`` (default) makes every
    committed reward survive a power cut; ``NORMAL`` may lose the last commits on power loss
    (never on a process crash) but never corrupts the file.

    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> with SqlStore(f"sqlite:///{d}/q.sqlite") as s:
    ...     s.apply_reward("BTC/USDT", "trend_up", "scalp", 1.5, alpha=0.2, trade_id=7).count
    1
    >>> with SqlStore(f"sqlite:///{d}/q.sqlite") as s:
    ...     s.apply_reward("BTC/USDT", "trend_up", "scalp", 9.9, alpha=0.2, trade_id=7) is None
    True
    """

    def __init__(
        self, url: str, *, create: bool = True, sqlite_synchronous: str = "FULL"
    ) -> None:
        self._closed = False
        self._unstamped: datetime | None = None  # a read-only legacy store's computed watermark
        #: Test hook: use the portable savepoint code path instead of the dialect upserts.
        self._generic = False
        self.journal_mode: str | None = None
        self._db = open_engine(url, create=create, sqlite_synchronous=sqlite_synchronous)
        self._engine = self._db.engine
        self._lock = self._db.lock
        self._sqlite_file = self._db.sqlite_file
        self.location = self._db.location
        self.dialect = self._db.dialect
        self._is_pg = self.dialect == "postgresql"
        try:
            self._open(create)
        except BaseException:
            self._engine.dispose()
            raise

    def __repr__(self) -> str:
        return f"SqlStore({self.location!r})"

    @property
    def path(self) -> Path | None:
        """The database file for a file-backed SQLite store, else ``None``."""
        return self._sqlite_file

    # -- opening -------------------------------------------------------------------------
    def _open(self, create: bool) -> None:
        if self._sqlite_file is None:
            try:
                with self._engine.connect():
                    pass
            except sa.exc.SQLAlchemyError as exc:
                raise StoreError(
                    f"{self.location}: cannot connect ({db_error(exc)}). Check "
                    f"{STORE_URL_FIELD} and that the database server is running."
                ) from exc
        with self._errors("opening", hint=True):
            with self._tx() as conn:
                present = our_tables(conn)
                stamped = bool(present) and WATERMARK_KEY in check_schema(conn, self._db)
            if not present and not create:
                raise StoreError(
                    f"{self.location} holds no freqtrade-metastrategy tables and "
                    f"create=False. Check {STORE_URL_FIELD}."
                )
            if not stamped and not present:
                with self._tx(write=True) as conn:
                    create_or_stamp(conn, self._db)
            elif not stamped:
                try:
                    with self._tx(write=True) as conn:
                        create_or_stamp(conn, self._db)
                except (sa.exc.OperationalError, sa.exc.ProgrammingError) as exc:
                    if not is_read_only(exc):
                        raise
                    # A legacy store we may only read (a read-only file, a SELECT-only role):
                    # its watermark is computed, not stamped; nothing can be settled into it.
                    with self._tx() as conn:
                        settled = (r.settled_at for r in read_ledger(conn, self.location))
                        self._unstamped = legacy_watermark(settled, content_start())
            if self._sqlite_file is not None:
                self.journal_mode = enable_wal(self._engine, self.location)

    # -- plumbing ------------------------------------------------------------------------
    @contextmanager
    def _tx(self, *, write: bool = False, snapshot: bool = False) -> Iterator[Connection]:
        """One transaction; ``write`` = BEGIN IMMEDIATE on SQLite, ``snapshot`` = one
        consistent view over several statements (REPEATABLE READ on PostgreSQL)."""
        if self._closed:
            raise StoreError(f"{self.location}: the store is closed.")
        with self._lock, self._engine.connect() as conn:
            if write:
                conn.execution_options(**{WRITE_OPTION: True})
            elif snapshot and self._is_pg:
                conn.execution_options(isolation_level="REPEATABLE READ",
                                       postgresql_readonly=True)
            with conn.begin():
                yield conn

    @contextmanager
    def _errors(self, action: str, *, hint: bool = False) -> Iterator[None]:
        """Turn database errors into StoreError naming the store."""
        try:
            yield
        except sa.exc.SQLAlchemyError as exc:
            extra = f" {self._db.recover_hint}" if hint else ""
            raise StoreError(
                f"{self.location}: {action} failed ({db_error(exc)}).{extra}"
            ) from exc

    # -- reads ---------------------------------------------------------------------------
    def get(self, symbol: str, regime: str, strategy: str) -> QEntry | None:
        with self._errors("reading a Q-table cell"), self._tx() as conn:
            stmt = sa.select(qtable).where(key_where((symbol, regime, strategy)))
            row = conn.execute(stmt).mappings().first()
        return None if row is None else ENTRIES.from_row(row, self.location)

    def entries(self, *, symbol: str | None = None, regime: str | None = None) -> list[QEntry]:
        with self._errors("reading the Q-table"), self._tx() as conn:
            return read_entries(conn, self.location, symbol, regime)

    def iter_regime(self, regime: str) -> Iterator[QEntry]:
        """Cells of one regime (same as MemoryStore.iter_regime; used for pooling)."""
        return iter(self.entries(regime=regime))

    def ledger(self) -> list[LedgerRow]:
        with self._errors("reading the ledger"), self._tx() as conn:
            return read_ledger(conn, self.location)

    def is_settled(self, trade_id: object) -> bool:
        tid = norm_trade_id(trade_id)
        if tid is None:
            return False
        with self._errors("reading the ledger"), self._tx() as conn:
            return self._settled(conn, tid)

    def watermark(self) -> datetime:
        with self._errors("reading the watermark"), self._tx() as conn:
            return self._read_watermark(conn)

    def _read_watermark(self, conn: Connection) -> datetime:
        value = stored_watermark(conn)
        if value is None:
            if self._unstamped is not None:  # a read-only legacy store
                return self._unstamped
            raise StoreError(f"{self.location}: {meta_table.name} has no {WATERMARK_KEY} "
                             f"(damaged store). {self._db.recover_hint}")
        return parse_watermark(value, self._db)

    @staticmethod
    def _settled(conn: Connection, tid: str) -> bool:
        stmt = sa.select(ledger_table.c.seq).where(ledger_table.c.trade_id == tid).limit(1)
        return conn.execute(stmt).first() is not None

    def is_empty(self) -> bool:
        with self._errors("reading the store"), self._tx() as conn:
            return not self._has_data(conn)

    @staticmethod
    def _has_data(conn: Connection) -> bool:
        for table in (qtable, ledger_table):
            if conn.execute(sa.select(sa.literal(1)).select_from(table).limit(1)).first():
                return True
        return False

    # -- writes --------------------------------------------------------------------------
    def _apply_reward(
        self,
        key: QKey,
        reward: float,
        *,
        alpha: float,
        trade_id: str | None,
        at: datetime | None,
        probability: float | None,
        closed_at: datetime | None,
    ) -> QEntry | None:
        r, a, prob, when, tid = reward, alpha, probability, at, trade_id
        symbol, regime, strategy = key
        row = LEDGER.values(LedgerRow(0, tid, symbol, regime, strategy, r, prob, when),
                            without=("seq",))
        try:
            with self._errors("apply_reward"), self._tx(write=True) as conn:
                if not self._insert_ledger(conn, row):
                    raise _AlreadySettled
                # After the ledger insert, which waited for any replacement in progress
                # (SQLite: one writer at a time; PostgreSQL: its EXCLUSIVE table lock), so the
                # watermark read here is the one this reward is committed under.
                if closed_at is not None and closed_at < self._read_watermark(conn):
                    raise _AlreadySettled  # rolls back: closed before this content began
                old, exists = self._lock_cell(conn, key)
                new = old.updated(r, alpha=a, at=when)
                if exists:
                    values = ENTRIES.values(new, without=KEY_COLUMNS)
                    conn.execute(sa.update(qtable).where(key_where(key)).values(**values))
                else:
                    conn.execute(sa.insert(qtable).values(**ENTRIES.values(new)))
                return new
        except _AlreadySettled:
            return None
        except StoreError as exc:
            # Safety net: a concurrent duplicate that surfaced as a unique violation.
            if (tid is not None and isinstance(exc.__cause__, sa.exc.IntegrityError)
                    and self.is_settled(tid)):
                return None
            raise

    def _insert_ledger(self, conn: Connection, row: dict[str, Any]) -> bool:
        """Insert the ledger row; ``False`` if its trade_id is already settled."""
        if not self._generic and self.dialect in ("sqlite", "postgresql"):
            insert = sqlite.insert if self.dialect == "sqlite" else pg.insert
            stmt = insert(ledger_table).values(**row).on_conflict_do_nothing(
                index_elements=["trade_id"]
            )
            return conn.execute(stmt).rowcount == 1
        try:
            with conn.begin_nested():
                conn.execute(sa.insert(ledger_table).values(**row))
        except sa.exc.IntegrityError:
            if row["trade_id"] is not None and self._settled(conn, row["trade_id"]):
                return False
            raise
        return True

    def _lock_cell(self, conn: Connection, key: QKey) -> tuple[QEntry, bool]:
        """The cell to update (locked against concurrent writers) and whether its row exists."""
        where = key_where(key)
        if self.dialect == "sqlite" and not self._generic:
            # BEGIN IMMEDIATE already holds the database's write lock.
            row = conn.execute(sa.select(qtable).where(where)).mappings().first()
            if row is None:
                return QEntry.empty(*key), False
            return ENTRIES.from_row(row, self.location), True
        empty = ENTRIES.values(QEntry.empty(*key))
        if self._is_pg and not self._generic:
            conn.execute(
                pg.insert(qtable).values(**empty).on_conflict_do_nothing(
                    index_elements=list(KEY_COLUMNS)
                )
            )
        else:
            try:
                with conn.begin_nested():
                    conn.execute(sa.insert(qtable).values(**empty))
            except sa.exc.IntegrityError:
                pass  # exists already (possibly created by a concurrent transaction)
        row = conn.execute(sa.select(qtable).where(where).with_for_update()).mappings().one()
        return ENTRIES.from_row(row, self.location), True

    def _replace_all(
        self, entries: list[QEntry], ledger: list[LedgerRow], *, watermark: datetime,
        require_empty: bool, source: str,
    ) -> None:
        check_finite(entries, ledger, source)
        with self._errors(f"replacing the content ({source}; nothing was changed)"), \
                self._tx(write=True) as conn:
            if self._is_pg:
                conn.exec_driver_sql(
                    # the order apply_reward takes them in (ledger, then cell): no deadlock
                    "LOCK TABLE metastrategy_ledger, metastrategy_qtable IN EXCLUSIVE MODE"
                )
            # Checked inside the write transaction, so no concurrent writer can slip in.
            if require_empty and self._has_data(conn):
                raise not_empty_error(self.location, source)
            set_watermark(conn, watermark)
            conn.execute(sa.delete(ledger_table))
            conn.execute(sa.delete(qtable))
            if entries:
                conn.execute(sa.insert(qtable), [ENTRIES.values(e) for e in entries])
            if ledger:
                conn.execute(sa.insert(ledger_table), [LEDGER.values(r) for r in ledger])
            if self._is_pg:  # the next seq continues after the highest imported one
                conn.exec_driver_sql(
                    "SELECT setval(pg_get_serial_sequence('metastrategy_ledger', 'seq'), "
                    "COALESCE(MAX(seq), 0) + 1, false) FROM metastrategy_ledger"
                )

    # -- import / export -----------------------------------------------------------------
    def export_dict(self) -> dict[str, Any]:
        """Like :meth:`QStore.export_dict`, but cells and ledger come from one snapshot."""
        with self._errors("export"), self._tx(snapshot=True) as conn:
            entries = read_entries(conn, self.location)
            ledger = read_ledger(conn, self.location)
        return {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "entries": [e.to_dict() for e in entries],
            "ledger": [r.to_dict() for r in ledger],
        }

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._engine.dispose()
