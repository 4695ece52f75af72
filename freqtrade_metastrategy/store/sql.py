"""SQL Q-table store: a SQLite file, PostgreSQL, or any SQLAlchemy URL (SQLAlchemy Core only).

Tables (all prefixed ``metastrategy_`` so they can share a database with other applications):

* ``metastrategy_meta``: ``key``/``value`` rows ``app = freqtrade-metastrategy``,
  ``schema_version = 1`` and ``watermark`` (ISO-8601, UTC; see :meth:`SqlStore.watermark`);
* ``metastrategy_qtable``: one row per (symbol, regime, strategy) cell with every
  :class:`~freqtrade_metastrategy.qtable.QEntry` field; floats as double precision,
  ``last_update`` as ISO-8601 text (time zones round-trip exactly);
* ``metastrategy_ledger``: one row per settled reward; ``seq`` is the autoincrement key,
  ``trade_id`` is UNIQUE (NULLs allowed), ``settled_at`` is ISO-8601 text.

Durability and concurrency
--------------------------
SQLite: WAL journal, ``synchronous=FULL`` (a committed reward survives a power cut), a 30 s busy
timeout, and every write transaction starts with ``BEGIN IMMEDIATE`` (pysqlite's own
transaction handling is switched off), so read-modify-write from several processes is
serialized by SQLite's write lock: no lost update and no "database is locked" on a lock upgrade.

PostgreSQL: READ COMMITTED; the cell is created if missing with ``INSERT ... ON CONFLICT DO
NOTHING`` and locked with ``SELECT ... FOR UPDATE`` before it is rewritten.

:meth:`SqlStore.apply_reward` is one transaction: ledger row first (a ``trade_id`` already
present makes it roll back and return ``None``), then the cell. If it raises
:class:`~freqtrade_metastrategy.errors.StoreError` because the connection failed, the outcome
may be unknown (e.g. the connection dropped during COMMIT); retrying with the same
``trade_id`` is always safe.

Opening never replaces, truncates or recreates anything: a file that is not a SQLite
database, another application's ``metastrategy_meta``, an unknown ``schema_version`` or missing
columns raise :class:`~freqtrade_metastrategy.errors.StoreError` before anything is written.
Only a database without any ``metastrategy_`` table (new or empty file, or a database holding
other applications' tables) gets the tables created. A store written before the watermark existed
gets one at its first open (the earliest ``settled_at`` in its ledger, else the time of that
open), serialized like the table creation.
"""

from __future__ import annotations

import importlib.util
import os
import stat
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg
from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import StaticPool

from freqtrade_metastrategy.errors import StoreError
from freqtrade_metastrategy.qtable import QEntry, QKey
from freqtrade_metastrategy.store.base import (
    ENTRY_FLOAT_FIELDS,
    FORMAT,
    FORMAT_VERSION,
    LedgerRow,
    QStore,
    check_finite,
    check_time,
    content_start,
    norm_trade_id,
    not_empty_error,
)

APP: Final = "freqtrade-metastrategy"
SCHEMA_VERSION: Final = 1
BUSY_TIMEOUT_S: Final = 30.0
STORE_URL_FIELD: Final = "metastrategy.store_url"
WATERMARK_KEY: Final = "watermark"
SQLITE_MAGIC: Final = b"SQLite format 3\x00"
SQLITE_SYNCHRONOUS: Final = ("FULL", "EXTRA", "NORMAL")
_PG_SCHEMA_LOCK: Final = 0x6D657461_7374  # pg_advisory_xact_lock key used while creating tables
_WRITE_OPTION: Final = "metastrategy_write"
_URL_EXAMPLES: Final = (
    'Use "memory", sqlite:////absolute/path/metastrategy.sqlite or '
    "postgresql://user:password@host/dbname."
)

# --------------------------------------------------------------------------------------------
# Schema
# --------------------------------------------------------------------------------------------
#: Text columns that are part of a key: unbounded TEXT, VARCHAR(255) where keys need a length.
_Name = sa.Text().with_variant(sa.String(255), "mysql", "mariadb")

metadata: Final = sa.MetaData()

meta_table: Final = sa.Table(
    "metastrategy_meta",
    metadata,
    sa.Column("key", _Name, primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)

qtable: Final = sa.Table(
    "metastrategy_qtable",
    metadata,
    sa.Column("symbol", _Name, primary_key=True),
    sa.Column("regime", _Name, primary_key=True),
    sa.Column("strategy", _Name, primary_key=True),
    sa.Column("count", sa.Integer, nullable=False),
    sa.Column("ema_reward", sa.Double, nullable=False),
    sa.Column("avg_reward", sa.Double, nullable=False),
    sa.Column("win_count", sa.Integer, nullable=False),
    sa.Column("loss_count", sa.Integer, nullable=False),
    sa.Column("total_r", sa.Double, nullable=False),
    sa.Column("sum_sq_r", sa.Double, nullable=False),
    sa.Column("last_reward", sa.Double, nullable=False),
    sa.Column("last_update", sa.Text, nullable=True),
)

ledger_table: Final = sa.Table(
    "metastrategy_ledger",
    metadata,
    # Plain INTEGER PRIMARY KEY: a rowid alias on SQLite (next seq = max + 1, like
    # MemoryStore), SERIAL on PostgreSQL.
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("trade_id", _Name, nullable=True),
    sa.Column("symbol", _Name, nullable=False),
    sa.Column("regime", _Name, nullable=False),
    sa.Column("strategy", _Name, nullable=False),
    sa.Column("reward", sa.Double, nullable=False),
    sa.Column("probability", sa.Double, nullable=True),
    sa.Column("settled_at", sa.Text, nullable=True),
    sa.UniqueConstraint("trade_id", name="uq_metastrategy_ledger_trade_id"),
)

_TABLES: Final = (meta_table, qtable, ledger_table)
_KEY_COLUMNS: Final = ("symbol", "regime", "strategy")
_FLOAT_FIELDS: Final = ENTRY_FLOAT_FIELDS
_INT_FIELDS: Final = ("count", "win_count", "loss_count")


# --------------------------------------------------------------------------------------------
# Value conversion
# --------------------------------------------------------------------------------------------
def _iso(value: datetime | None) -> str | None:
    plain = check_time(value, "datetime")
    return None if plain is None else plain.isoformat()


def _from_iso(value: object) -> datetime | None:
    return None if value is None else datetime.fromisoformat(str(value))


def legacy_watermark(settled: Iterable[datetime | None], opened: datetime) -> datetime:
    """The watermark of a store written before watermarks existed: its earliest settlement
    (naive times are UTC), else ``opened``.

    >>> legacy_watermark([None], datetime(2025, 1, 1, tzinfo=UTC)).year
    2025
    """
    times = [t if t.utcoffset() is not None else t.replace(tzinfo=UTC)
             for t in settled if t is not None]
    return min(times).astimezone(UTC) if times else opened


def _entry_values(e: QEntry) -> dict[str, Any]:
    return {
        "symbol": e.symbol,
        "regime": e.regime,
        "strategy": e.strategy,
        "count": e.count,
        "ema_reward": e.ema_reward,
        "avg_reward": e.avg_reward,
        "win_count": e.win_count,
        "loss_count": e.loss_count,
        "total_r": e.total_r,
        "sum_sq_r": e.sum_sq_r,
        "last_reward": e.last_reward,
        "last_update": _iso(e.last_update),
    }


def _entry_from_row(m: sa.RowMapping) -> QEntry:
    return QEntry(
        symbol=str(m["symbol"]),
        regime=str(m["regime"]),
        strategy=str(m["strategy"]),
        count=int(m["count"]),
        ema_reward=float(m["ema_reward"]),
        avg_reward=float(m["avg_reward"]),
        win_count=int(m["win_count"]),
        loss_count=int(m["loss_count"]),
        total_r=float(m["total_r"]),
        sum_sq_r=float(m["sum_sq_r"]),
        last_reward=float(m["last_reward"]),
        last_update=_from_iso(m["last_update"]),
    )


def _ledger_values(r: LedgerRow) -> dict[str, Any]:
    return {
        "seq": r.seq,
        "trade_id": r.trade_id,
        "symbol": r.symbol,
        "regime": r.regime,
        "strategy": r.strategy,
        "reward": r.reward,
        "probability": r.probability,
        "settled_at": _iso(r.settled_at),
    }


def _ledger_from_row(m: sa.RowMapping) -> LedgerRow:
    prob = m["probability"]
    tid = m["trade_id"]
    return LedgerRow(
        seq=int(m["seq"]),
        trade_id=None if tid is None else str(tid),
        symbol=str(m["symbol"]),
        regime=str(m["regime"]),
        strategy=str(m["strategy"]),
        reward=float(m["reward"]),
        probability=None if prob is None else float(prob),
        settled_at=_from_iso(m["settled_at"]),
    )


def _key_where(key: QKey) -> sa.ColumnElement[bool]:
    symbol, regime, strategy = key
    return sa.and_(
        qtable.c.symbol == symbol, qtable.c.regime == regime, qtable.c.strategy == strategy
    )


def _mask_password(url: str) -> str:
    """Best-effort masking of ``user:password@`` in a string that is not a parsable URL.

    >>> _mask_password("postgresql://ft:p@ss/w:rd@db/ft"), _mask_password("ft:pw@host")
    ('postgresql://ft:***@db/ft', 'ft:***@host')
    """
    if "@" not in url:
        return url
    head, host = url.rsplit("@", 1)
    scheme, sep, userinfo = head.partition("://")
    if not sep:
        scheme, userinfo = "", head
    return f"{scheme}{sep}{userinfo.split(':', 1)[0]}:***@{host}"


def _db_error(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None) or exc
    text = str(orig).strip().splitlines()
    return text[0] if text else type(orig).__name__


def _read_only(exc: BaseException) -> bool:
    """Whether a failed write was refused because the store may only be read."""
    text = _db_error(exc).lower()
    return any(k in text for k in ("readonly", "read-only", "read only", "permission denied"))


def _default_pg_driver(url: sa.URL) -> sa.URL:
    """``postgresql://`` means psycopg 3 since SQLAlchemy 2.1 (psycopg2 before): use whichever
    of the two is installed, preferring psycopg 3."""
    if url.drivername != "postgresql":
        return url
    for module, driver in (("psycopg", "postgresql+psycopg"), ("psycopg2", "postgresql+psycopg2")):
        if importlib.util.find_spec(module) is not None:
            return url.set(drivername=driver)
    return url


class _AlreadySettled(Exception):
    """Raised inside the apply_reward transaction to roll it back (duplicate trade_id)."""


# --------------------------------------------------------------------------------------------
# The store
# --------------------------------------------------------------------------------------------
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
        self._lock: AbstractContextManager[Any] = nullcontext()
        self._sqlite_file: Path | None = None
        #: Test hook: use the portable savepoint code path instead of the dialect upserts.
        self._generic = False
        self.journal_mode: str | None = None
        parsed = self._parse_url(url)
        self.dialect = parsed.get_backend_name()
        self._is_pg = self.dialect == "postgresql"
        if self.dialect == "sqlite":
            sync = str(sqlite_synchronous).upper()
            if sync not in SQLITE_SYNCHRONOUS:
                raise StoreError(
                    f"sqlite_synchronous: must be one of {', '.join(SQLITE_SYNCHRONOUS)}, "
                    f"got {sqlite_synchronous!r}"
                )
            self._engine = self._sqlite_engine(parsed, create, sync)
        else:
            self.location = parsed.render_as_string(hide_password=True)
            parsed = _default_pg_driver(parsed)
            kwargs: dict[str, Any] = {"pool_pre_ping": True}
            if self._is_pg:
                kwargs["isolation_level"] = "READ COMMITTED"
            self._engine = self._create_engine(parsed, **kwargs)
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
    @staticmethod
    def _parse_url(url: str) -> sa.URL:
        if not isinstance(url, str) or not url.strip():
            raise StoreError(f"{STORE_URL_FIELD}: must be a database URL, got {url!r}. "
                             f"{_URL_EXAMPLES}")
        try:
            return sa.make_url(url.strip())
        except (sa.exc.ArgumentError, ValueError, TypeError):
            # The exception text would repeat the URL unmasked: leave it out.
            raise StoreError(
                f"{STORE_URL_FIELD}: {_mask_password(url)!r} is not a database URL. "
                f"{_URL_EXAMPLES}"
            ) from None

    def _create_engine(self, url: sa.URL, **kwargs: Any) -> Engine:
        try:
            return sa.create_engine(url, **kwargs)
        except sa.exc.NoSuchModuleError:
            raise StoreError(
                f"{STORE_URL_FIELD}: unknown database type {url.drivername!r} in "
                f"{self.location}. {_URL_EXAMPLES}"
            ) from None
        except ImportError as exc:
            raise StoreError(
                f"{STORE_URL_FIELD}: the database driver for {self.location} is not installed "
                f"({exc}); install it (PostgreSQL: pip install 'psycopg[binary]' or "
                "psycopg2-binary)."
            ) from exc
        except (sa.exc.ArgumentError, TypeError, ValueError) as exc:
            raise StoreError(f"{STORE_URL_FIELD}: invalid URL {self.location} ({exc}).") from exc

    def _sqlite_engine(self, url: sa.URL, create: bool, sync: str) -> Engine:
        driver = url.get_driver_name()
        if driver != "pysqlite":
            raise StoreError(
                f"{STORE_URL_FIELD}: SQLite driver {driver!r} is not supported; use "
                "sqlite:////absolute/path/metastrategy.sqlite."
            )
        if url.query.get("uri"):
            raise StoreError(
                f"{STORE_URL_FIELD}: SQLite URI filenames (uri=true) are not supported; use "
                "sqlite:////absolute/path/metastrategy.sqlite."
            )
        database = url.database or ""
        kwargs: dict[str, Any] = {"connect_args": {"timeout": BUSY_TIMEOUT_S}}
        if database in ("", ":memory:"):
            self.location = "sqlite in-memory database"
            kwargs["poolclass"] = StaticPool  # one shared connection = one database
            kwargs["connect_args"]["check_same_thread"] = False
            self._lock = threading.RLock()
        else:
            path = Path(os.path.abspath(Path(database).expanduser()))
            self.location = str(path)
            self._sqlite_file = path
            self._check_sqlite_file(path, create)
            # Absolute path: a later chdir must not make new connections open another file.
            url = url.set(database=str(path))
        engine = self._create_engine(url, **kwargs)
        busy_ms = int(BUSY_TIMEOUT_S * 1000)

        def on_connect(dbapi_conn: Any, _record: Any) -> None:
            # Take over transaction control from pysqlite (SQLAlchemy's documented recipe);
            # these PRAGMAs are per connection and never touch the file.
            dbapi_conn.isolation_level = None
            cursor = dbapi_conn.cursor()
            try:
                cursor.execute(f"PRAGMA busy_timeout = {busy_ms}")
                cursor.execute(f"PRAGMA synchronous = {sync}")
            finally:
                cursor.close()

        def on_begin(conn: Connection) -> None:
            write = conn.get_execution_options().get(_WRITE_OPTION, False)
            conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

        sa.event.listen(engine, "connect", on_connect)
        sa.event.listen(engine, "begin", on_begin)
        return engine

    def _recover_hint(self) -> str:
        if self._sqlite_file is not None:
            return (
                "Move it aside or set metastrategy.store_url to another file; if it is a "
                "backup JSON, load it with `freqtrade-metastrategy import FILE`."
            )
        return "Point metastrategy.store_url at another database."

    def _check_sqlite_file(self, path: Path, create: bool) -> None:
        """Refuse anything that is not an (empty or) SQLite file, before SQLite touches it."""
        try:
            st = path.stat()
        except FileNotFoundError:
            if not create:
                raise StoreError(
                    f"{path}: no such Q-table store (create=False). Check "
                    f"{STORE_URL_FIELD}."
                ) from None
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(
                    f"{path}: cannot create its directory ({exc}). Set {STORE_URL_FIELD} to "
                    "a writable location."
                ) from exc
            return
        except OSError as exc:
            raise StoreError(f"{path}: cannot access it ({exc}).") from exc
        if not stat.S_ISREG(st.st_mode):
            raise StoreError(f"{path} is not a regular file. {self._recover_hint()}")
        if st.st_size == 0:
            return  # a new/empty file: SQLite treats it as an empty database
        try:
            with path.open("rb") as fh:
                head = fh.read(len(SQLITE_MAGIC))
        except OSError as exc:
            raise StoreError(f"{path}: cannot read it ({exc}).") from exc
        if head != SQLITE_MAGIC:
            raise StoreError(f"{path} is not a SQLite database. {self._recover_hint()}")

    def _open(self, create: bool) -> None:
        if self._sqlite_file is None:
            try:
                with self._engine.connect():
                    pass
            except sa.exc.SQLAlchemyError as exc:
                raise StoreError(
                    f"{self.location}: cannot connect ({_db_error(exc)}). Check "
                    f"{STORE_URL_FIELD} and that the database server is running."
                ) from exc
        with self._errors("opening", hint=True):
            with self._tx() as conn:
                present = self._our_tables(conn)
                stamped = bool(present) and WATERMARK_KEY in self._check_schema(conn)
            if not present and not create:
                raise StoreError(
                    f"{self.location} holds no freqtrade-metastrategy tables and "
                    f"create=False. Check {STORE_URL_FIELD}."
                )
            if not stamped and not present:
                with self._tx(write=True) as conn:
                    self._create_or_stamp(conn)
            elif not stamped:
                try:
                    with self._tx(write=True) as conn:
                        self._create_or_stamp(conn)
                except (sa.exc.OperationalError, sa.exc.ProgrammingError) as exc:
                    if not _read_only(exc):
                        raise
                    # A legacy store we may only read (a read-only file, a SELECT-only role):
                    # its watermark is computed, not stamped; nothing can be settled into it.
                    with self._tx() as conn:
                        settled = (r.settled_at for r in self._read_ledger(conn))
                        self._unstamped = legacy_watermark(settled, content_start())
            if self._sqlite_file is not None:
                self._enable_wal()

    def _create_or_stamp(self, conn: Connection) -> None:
        """Create the tables with a watermark, or stamp a legacy store's (earliest
        settlement, else now), serialized against other processes doing the same."""
        if self._is_pg:
            conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_PG_SCHEMA_LOCK)))
        if not self._our_tables(conn):
            metadata.create_all(conn)
            conn.execute(
                sa.insert(meta_table),
                [
                    {"key": "app", "value": APP},
                    {"key": "schema_version", "value": str(SCHEMA_VERSION)},
                ],
            )
            self._set_watermark(conn, content_start())
        elif WATERMARK_KEY not in self._check_schema(conn):  # created meanwhile, or legacy
            settled = (r.settled_at for r in self._read_ledger(conn))
            self._set_watermark(conn, legacy_watermark(settled, content_start()))

    @staticmethod
    def _our_tables(conn: Connection) -> set[str]:
        names = set(sa.inspect(conn).get_table_names())
        return {t.name for t in _TABLES} & names

    def _check_schema(self, conn: Connection) -> dict[str, str]:
        """Refuse a foreign or damaged schema; returns the ``metastrategy_meta`` rows."""
        insp = sa.inspect(conn)
        names = set(insp.get_table_names())
        loc, hint = self.location, self._recover_hint()
        if meta_table.name not in names:
            raise StoreError(
                f"{loc} has metastrategy_ tables but no {meta_table.name}: it was not "
                f"created by {APP} (or is damaged). {hint}"
            )
        self._check_columns(insp, meta_table)
        rows = {str(k): str(v) for k, v in conn.execute(sa.select(meta_table.c.key,
                                                                   meta_table.c.value))}
        app = rows.get("app")
        if app != APP:
            raise StoreError(
                f"{loc}: its {meta_table.name} table belongs to {app!r}, not {APP}. {hint}"
            )
        version = rows.get("schema_version")
        if version != str(SCHEMA_VERSION):
            raise StoreError(
                f"{loc}: Q-table schema_version {version!r} cannot be read by this version of "
                f"{APP} (it reads schema_version {SCHEMA_VERSION}). If a newer "
                f"{APP} wrote it, upgrade; or export it to JSON with the version that wrote "
                f"it and import that here. {hint}"
            )
        for table in (qtable, ledger_table):
            if table.name not in names:
                raise StoreError(f"{loc}: table {table.name} is missing (damaged store). {hint}")
            self._check_columns(insp, table)
        if WATERMARK_KEY in rows:
            self._parse_watermark(rows[WATERMARK_KEY])
        return rows

    def _check_columns(self, insp: sa.Inspector, table: sa.Table) -> None:
        have = {c["name"] for c in insp.get_columns(table.name)}
        missing = [c.name for c in table.columns if c.name not in have]
        if missing:
            raise StoreError(
                f"{self.location}: table {table.name} lacks column(s) {', '.join(missing)}: "
                f"not a {APP} schema_version {SCHEMA_VERSION} store. {self._recover_hint()}"
            )

    def _enable_wal(self) -> None:
        """Switch the file to WAL (persistent; a no-op when it already is).

        The switch needs the file to itself, and SQLite answers "database is locked" at once,
        without waiting out the busy timeout, while another process opens or writes the same
        store (two bots starting together): retried with a short back-off for up to the busy
        timeout.
        """
        deadline = time.monotonic() + BUSY_TIMEOUT_S
        delay = 0.01
        while True:
            raw = self._engine.raw_connection()
            try:
                cursor = raw.cursor()
                cursor.execute("PRAGMA journal_mode = WAL")
                row = cursor.fetchone()
                cursor.close()
                break
            except self._engine.dialect.loaded_dbapi.Error as exc:
                if "locked" in str(exc).lower() and time.monotonic() < deadline:
                    time.sleep(delay)
                    delay = min(delay * 2, 0.5)
                    continue
                raise StoreError(
                    f"{self.location}: cannot switch to WAL journal mode ({exc})."
                ) from exc
            finally:
                raw.close()
        self.journal_mode = str(row[0]).lower() if row else None

    # -- plumbing ------------------------------------------------------------------------
    @contextmanager
    def _tx(self, *, write: bool = False, snapshot: bool = False) -> Iterator[Connection]:
        """One transaction; ``write`` = BEGIN IMMEDIATE on SQLite, ``snapshot`` = one
        consistent view over several statements (REPEATABLE READ on PostgreSQL)."""
        if self._closed:
            raise StoreError(f"{self.location}: the store is closed.")
        with self._lock, self._engine.connect() as conn:
            if write:
                conn.execution_options(**{_WRITE_OPTION: True})
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
            extra = f" {self._recover_hint()}" if hint else ""
            raise StoreError(
                f"{self.location}: {action} failed ({_db_error(exc)}).{extra}"
            ) from exc

    def _entry(self, row: sa.RowMapping) -> QEntry:
        try:
            return _entry_from_row(row)
        except (TypeError, ValueError) as exc:
            raise StoreError(f"{self.location}: malformed Q-table row {dict(row)!r} ({exc}).") \
                from exc

    def _ledger_row(self, row: sa.RowMapping) -> LedgerRow:
        try:
            return _ledger_from_row(row)
        except (TypeError, ValueError) as exc:
            raise StoreError(f"{self.location}: malformed ledger row {dict(row)!r} ({exc}).") \
                from exc

    def _read_entries(
        self, conn: Connection, symbol: str | None = None, regime: str | None = None
    ) -> list[QEntry]:
        stmt = sa.select(qtable)
        if symbol is not None:
            stmt = stmt.where(qtable.c.symbol == symbol)
        if regime is not None:
            stmt = stmt.where(qtable.c.regime == regime)
        # Sorted in Python: SQL collations (PostgreSQL locales) differ from str ordering.
        return sorted((self._entry(r) for r in conn.execute(stmt).mappings()),
                      key=lambda e: e.key)

    def _read_ledger(self, conn: Connection) -> list[LedgerRow]:
        stmt = sa.select(ledger_table).order_by(ledger_table.c.seq)
        return [self._ledger_row(r) for r in conn.execute(stmt).mappings()]

    # -- reads ---------------------------------------------------------------------------
    def get(self, symbol: str, regime: str, strategy: str) -> QEntry | None:
        with self._errors("reading a Q-table cell"), self._tx() as conn:
            stmt = sa.select(qtable).where(_key_where((symbol, regime, strategy)))
            row = conn.execute(stmt).mappings().first()
        return None if row is None else self._entry(row)

    def entries(self, *, symbol: str | None = None, regime: str | None = None) -> list[QEntry]:
        with self._errors("reading the Q-table"), self._tx() as conn:
            return self._read_entries(conn, symbol, regime)

    def iter_regime(self, regime: str) -> Iterator[QEntry]:
        """Cells of one regime (same as MemoryStore.iter_regime; used for pooling)."""
        return iter(self.entries(regime=regime))

    def ledger(self) -> list[LedgerRow]:
        with self._errors("reading the ledger"), self._tx() as conn:
            return self._read_ledger(conn)

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
        value = conn.execute(
            sa.select(meta_table.c.value).where(meta_table.c.key == WATERMARK_KEY)
        ).scalar()
        if value is None:
            if self._unstamped is not None:  # a read-only legacy store
                return self._unstamped
            raise StoreError(f"{self.location}: {meta_table.name} has no {WATERMARK_KEY} "
                             f"(damaged store). {self._recover_hint()}")
        return self._parse_watermark(value)

    def _parse_watermark(self, value: object) -> datetime:
        try:
            at: datetime | None = datetime.fromisoformat(str(value))
        except ValueError:
            at = None
        if at is None or at.utcoffset() is None:
            raise StoreError(f"{self.location}: malformed {WATERMARK_KEY} {value!r} in "
                             f"{meta_table.name} (damaged store). {self._recover_hint()}")
        return at.astimezone(UTC)

    @staticmethod
    def _set_watermark(conn: Connection, at: datetime) -> None:
        value = at.isoformat()
        stmt = sa.update(meta_table).where(meta_table.c.key == WATERMARK_KEY)
        if conn.execute(stmt.values(value=value)).rowcount == 0:
            conn.execute(sa.insert(meta_table).values(key=WATERMARK_KEY, value=value))

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
        row = {
            "trade_id": tid,
            "symbol": symbol,
            "regime": regime,
            "strategy": strategy,
            "reward": r,
            "probability": prob,
            "settled_at": _iso(when),
        }
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
                values = _entry_values(new)
                if exists:
                    for k in _KEY_COLUMNS:
                        del values[k]
                    conn.execute(sa.update(qtable).where(_key_where(key)).values(**values))
                else:
                    conn.execute(sa.insert(qtable).values(**values))
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
        where = _key_where(key)
        if self.dialect == "sqlite" and not self._generic:
            # BEGIN IMMEDIATE already holds the database's write lock.
            row = conn.execute(sa.select(qtable).where(where)).mappings().first()
            if row is None:
                return QEntry.empty(*key), False
            return self._entry(row), True
        empty = _entry_values(QEntry.empty(*key))
        if self._is_pg and not self._generic:
            conn.execute(
                pg.insert(qtable).values(**empty).on_conflict_do_nothing(
                    index_elements=list(_KEY_COLUMNS)
                )
            )
        else:
            try:
                with conn.begin_nested():
                    conn.execute(sa.insert(qtable).values(**empty))
            except sa.exc.IntegrityError:
                pass  # exists already (possibly created by a concurrent transaction)
        row = conn.execute(sa.select(qtable).where(where).with_for_update()).mappings().one()
        return self._entry(row), True

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
            self._set_watermark(conn, watermark)
            conn.execute(sa.delete(ledger_table))
            conn.execute(sa.delete(qtable))
            if entries:
                conn.execute(sa.insert(qtable), [_entry_values(e) for e in entries])
            if ledger:
                conn.execute(sa.insert(ledger_table), [_ledger_values(r) for r in ledger])
            if self._is_pg:  # the next seq continues after the highest imported one
                conn.exec_driver_sql(
                    "SELECT setval(pg_get_serial_sequence('metastrategy_ledger', 'seq'), "
                    "COALESCE(MAX(seq), 0) + 1, false) FROM metastrategy_ledger"
                )

    # -- import / export -----------------------------------------------------------------
    def export_dict(self) -> dict[str, Any]:
        """Like :meth:`QStore.export_dict`, but cells and ledger come from one snapshot."""
        with self._errors("export"), self._tx(snapshot=True) as conn:
            entries = self._read_entries(conn)
            ledger = self._read_ledger(conn)
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
