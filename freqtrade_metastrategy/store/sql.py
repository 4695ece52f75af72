"""SQL Q-table store (:class:`SqlStore`): the store's transactions on SQLite, PostgreSQL or any
SQLAlchemy URL (SQLAlchemy Core only; opening in :mod:`.engine`, tables in :mod:`.schema`).

:meth:`SqlStore.apply_reward` is one transaction (SQLite: ``BEGIN IMMEDIATE``; PostgreSQL: the
cell locked ``FOR UPDATE``): the ledger row first (an already settled ``trade_id`` rolls it
back and returns ``None``), then the cell, so retrying after an unknown outcome is safe.
Replacements (reset, import) swap the whole content, the learner state (bumping its
generation) and the watermark in one transaction; an export reads one snapshot.
:meth:`SqlStore.save_learner_state` is one compare-and-swap transaction: ``UPDATE ... WHERE
generation = <the caller's>`` (PostgreSQL: the row lock, and READ COMMITTED re-checks the
condition on the newest row version), or the first row's ``INSERT ... ON CONFLICT DO NOTHING``.
Opening never replaces, truncates or recreates anything; it adds ``metastrategy_learner`` to a
store created before that table existed, unless the store may only be read (then there is no
learner state, and saving one says why not).

Lock order, PostgreSQL (SQLite: every write is ``BEGIN IMMEDIATE``, one writer at a time, so
no deadlock there): ``metastrategy_ledger``, then ``metastrategy_qtable``, then
``metastrategy_learner``, then the watermark row of ``metastrategy_meta``. ``apply_reward``
takes the ledger then its cell (and only reads the watermark); ``save_learner_state`` takes
only the learner row; reset and import take the three tables in one ``LOCK TABLE`` in that
order, then write the watermark. Every transaction takes its locks in this one order, so no
wait cycle, and so no deadlock, can form.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
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
    LEARNER_KEY,
    LedgerRow,
    QStore,
    StaleLearnerStateError,
    check_finite,
    content_start,
    decode_learner,
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
    LEARNER_ROW,
    LEDGER,
    NO_LEARNER,
    WATERMARK_KEY,
    check_schema,
    create_learner_table,
    create_or_stamp,
    has_learner_table,
    key_where,
    learner_table,
    ledger_table,
    legacy_watermark,
    may_create_tables,
    meta_table,
    our_tables,
    parse_watermark,
    qtable,
    read_entries,
    read_learner,
    read_ledger,
    replace_learner,
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
        #: Whether metastrategy_learner is known to exist (False: a read-only store of an
        #: earlier version; looked for again before each use).
        self._learner_ready = False
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
            self._learner_ready = learner_table.name in present or self._add_learner_table()
            if self._sqlite_file is not None:
                self.journal_mode = enable_wal(self._engine, self.location)

    def _add_learner_table(self) -> bool:
        """Create ``metastrategy_learner`` if it is missing and this store may be written (the
        additive migration of a store created before it existed); whether it exists now."""
        with self._tx() as conn:
            if has_learner_table(conn):
                return True
            if not may_create_tables(conn, self._db):
                return False  # a store we may only read: not even tried
        try:
            with self._tx(write=True) as conn:
                create_learner_table(conn, self._db)
        except sa.exc.DBAPIError as exc:
            if not is_read_only(exc):
                raise
            return False
        return True

    def _has_learner_table(self, conn: Connection) -> bool:
        if not self._learner_ready:  # another process may have created it since
            self._learner_ready = has_learner_table(conn)
        return self._learner_ready

    def _need_learner_table(self, action: str) -> None:
        """Make sure ``metastrategy_learner`` exists before ``action`` writes into it."""
        if not self._learner_ready:
            with self._errors(f"creating the {learner_table.name} table"):
                self._learner_ready = self._add_learner_table()
        if not self._learner_ready:
            raise StoreError(
                f"{self.location}: table {learner_table.name} is missing and cannot be created "
                f"here (the store may only be read, or this account may not create tables), so "
                f"{action} is not possible; nothing was changed. Open the store once with an "
                "account that may create tables (any command of this version adds it)."
            )

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
            return not self._has_data(conn, learner=self._has_learner_table(conn))

    @staticmethod
    def _has_data(conn: Connection, *, learner: bool) -> bool:
        """Cells, ledger rows, or (``learner``: the table exists) a learner state."""
        for table in (qtable, ledger_table):
            if conn.execute(sa.select(sa.literal(1)).select_from(table).limit(1)).first():
                return True
        if learner:
            stmt = sa.select(sa.literal(1)).where(learner_table.c.key == LEARNER_ROW,
                                                  learner_table.c.state != NO_LEARNER)
            return conn.execute(stmt).first() is not None
        return False

    def _learner_text(self) -> tuple[str | None, int]:
        with self._errors("reading the learner state"), self._tx() as conn:
            if not self._has_learner_table(conn):
                return None, 0  # a read-only store of an earlier version: none
            return read_learner(conn, self.location)

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

    def _insert_unless_present(self, conn: Connection, table: sa.Table, row: dict[str, Any],
                               key: str, present: Callable[[], bool]) -> bool:
        """Insert ``row``; ``False`` if a row with its unique ``key`` exists already (SQLite,
        PostgreSQL: ``ON CONFLICT DO NOTHING``; other databases: an integrity error for which
        ``present()`` says so, else the error is raised)."""
        if not self._generic and self.dialect in ("sqlite", "postgresql"):
            insert = sqlite.insert if self.dialect == "sqlite" else pg.insert
            stmt = insert(table).values(**row).on_conflict_do_nothing(index_elements=[key])
            return conn.execute(stmt).rowcount == 1
        try:
            with conn.begin_nested():
                conn.execute(sa.insert(table).values(**row))
        except sa.exc.IntegrityError:
            if present():
                return False
            raise
        return True

    def _insert_ledger(self, conn: Connection, row: dict[str, Any]) -> bool:
        """Insert the ledger row; ``False`` if its trade_id is already settled."""
        tid = row["trade_id"]
        return self._insert_unless_present(
            conn, ledger_table, row, "trade_id",
            lambda: tid is not None and self._settled(conn, tid))

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

    def _save_learner_text(self, text: str, generation: int) -> int:
        self._need_learner_table("saving the learner state")
        with self._errors("saving the learner state (nothing was written)"), \
                self._tx(write=True) as conn:
            if not self._swap_learner(conn, text, generation):
                # Raised inside the transaction: it rolls back (it wrote nothing anyway).
                stored = read_learner(conn, self.location)[1]
                raise StaleLearnerStateError(self.location, generation, stored)
        return generation + 1

    def _swap_learner(self, conn: Connection, text: str, generation: int) -> bool:
        """Write ``text`` as generation ``generation + 1`` if ``generation`` is the stored
        one; ``False`` (nothing written) if it is not."""
        values = {"state": text, "updated_at": content_start().isoformat()}
        stmt = sa.update(learner_table).where(learner_table.c.key == LEARNER_ROW,
                                              learner_table.c.generation == generation)
        if conn.execute(stmt.values(generation=generation + 1, **values)).rowcount == 1:
            return True
        if generation != 0:
            return False
        # Generation 0: no row yet, unless another process inserted it meanwhile.
        row = {"key": LEARNER_ROW, "generation": 1, **values}
        return self._insert_unless_present(conn, learner_table, row, "key", lambda: True)

    def _replace_all(
        self, entries: list[QEntry], ledger: list[LedgerRow], *, watermark: datetime,
        require_empty: bool, source: str, learner: str | None,
    ) -> None:
        check_finite(entries, ledger, source)
        if learner is not None:
            self._need_learner_table(f"importing the learner state of {source}")
        elif not self._learner_ready:  # try, so that the generation is bumped
            with self._errors(f"creating the {learner_table.name} table"):
                self._learner_ready = self._add_learner_table()
        with self._errors(f"replacing the content ({source}; nothing was changed)"), \
                self._tx(write=True) as conn:
            with_learner = self._has_learner_table(conn)
            if self._is_pg:
                # The lock order (module doc): ledger, Q-table, learner, as apply_reward
                # (ledger, then cell) and save_learner_state (learner only): no deadlock.
                tables = ["metastrategy_ledger", "metastrategy_qtable"]
                if with_learner:
                    tables.append(learner_table.name)
                conn.exec_driver_sql(f"LOCK TABLE {', '.join(tables)} IN EXCLUSIVE MODE")
            # Checked inside the write transaction, so no concurrent writer can slip in.
            if require_empty and self._has_data(conn, learner=with_learner):
                raise not_empty_error(self.location, source)
            set_watermark(conn, watermark)
            if with_learner:
                replace_learner(conn, learner)
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
            learner = (read_learner(conn, self.location)[0]
                       if self._has_learner_table(conn) else None)
        return {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "entries": [e.to_dict() for e in entries],
            "ledger": [r.to_dict() for r in ledger],
            LEARNER_KEY: None if learner is None else decode_learner(learner, self.location),
        }

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._engine.dispose()
