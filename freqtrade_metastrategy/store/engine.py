"""Opening a store's database: URL checks, the SQLite file and engine, PostgreSQL's driver.

:func:`open_engine` turns ``metastrategy.store_url`` into a SQLAlchemy engine, refusing before
anything is written what it cannot use (bad URL, unsupported driver, a file that is not SQLite);
its messages never show a password. SQLite engines run WAL, ``synchronous=FULL``, a 30 s busy
timeout and ``BEGIN IMMEDIATE`` for writes; :func:`db_error` and :func:`is_read_only` read
database errors for the store's messages.
"""

from __future__ import annotations

import importlib.util
import os
import stat
import threading
import time
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import StaticPool

from freqtrade_metastrategy.errors import StoreError

BUSY_TIMEOUT_S: Final = 30.0
STORE_URL_FIELD: Final = "metastrategy.store_url"
SQLITE_MAGIC: Final = b"SQLite format 3\x00"
SQLITE_SYNCHRONOUS: Final = ("FULL", "EXTRA", "NORMAL")
#: Execution option of a connection whose transaction writes (SQLite: ``BEGIN IMMEDIATE``).
WRITE_OPTION: Final = "metastrategy_write"
URL_EXAMPLES: Final = (
    'Use "memory", sqlite:////absolute/path/metastrategy.sqlite or '
    "postgresql://user:password@host/dbname."
)


@dataclass(frozen=True, slots=True)
class StoreEngine:
    """An engine and what the store's messages and transactions need to know about it."""

    engine: Engine
    #: The URL's backend name: "sqlite", "postgresql", "mysql", ...
    dialect: str
    #: The file path, "sqlite in-memory database" or the URL without its password.
    location: str
    #: The database file of a file-backed SQLite store, else ``None``.
    sqlite_file: Path | None
    #: Held around every transaction (the in-memory SQLite's one shared connection).
    lock: AbstractContextManager[Any]

    @property
    def recover_hint(self) -> str:
        """What to do about a store that cannot be used (appended to refusals)."""
        return recover_hint(self.sqlite_file)


def recover_hint(sqlite_file: Path | None) -> str:
    if sqlite_file is not None:
        return (
            "Move it aside or set metastrategy.store_url to another file; if it is a "
            "backup JSON, load it with `freqtrade-metastrategy import FILE`."
        )
    return "Point metastrategy.store_url at another database."


def mask_password(url: str) -> str:
    """Best-effort masking of ``user:password@`` in a string that is not a parsable URL.

    >>> mask_password("postgresql://ft:p@ss/w:rd@db/ft"), mask_password("ft:pw@host")
    ('postgresql://ft:***@db/ft', 'ft:***@host')
    """
    if "@" not in url:
        return url
    head, host = url.rsplit("@", 1)
    scheme, sep, userinfo = head.partition("://")
    if not sep:
        scheme, userinfo = "", head
    return f"{scheme}{sep}{userinfo.split(':', 1)[0]}:***@{host}"


def db_error(exc: BaseException) -> str:
    """The first line of a database error (the driver's, when SQLAlchemy wraps one)."""
    orig = getattr(exc, "orig", None) or exc
    text = str(orig).strip().splitlines()
    return text[0] if text else type(orig).__name__


def is_read_only(exc: BaseException) -> bool:
    """Whether a failed write was refused because the store may only be read."""
    text = db_error(exc).lower()
    return any(k in text for k in ("readonly", "read-only", "read only", "permission denied"))


def default_pg_driver(url: sa.URL) -> sa.URL:
    """``postgresql://`` means psycopg 3 since SQLAlchemy 2.1 (psycopg2 before): use whichever
    of the two is installed, preferring psycopg 3."""
    if url.drivername != "postgresql":
        return url
    for module, driver in (("psycopg", "postgresql+psycopg"), ("psycopg2", "postgresql+psycopg2")):
        if importlib.util.find_spec(module) is not None:
            return url.set(drivername=driver)
    return url


def parse_url(url: str) -> sa.URL:
    """``url`` as a SQLAlchemy URL; a refusal never repeats the password."""
    if not isinstance(url, str) or not url.strip():
        raise StoreError(f"{STORE_URL_FIELD}: must be a database URL, got {url!r}. "
                         f"{URL_EXAMPLES}")
    try:
        return sa.make_url(url.strip())
    except (sa.exc.ArgumentError, ValueError, TypeError):
        # The exception text would repeat the URL unmasked: leave it out.
        raise StoreError(
            f"{STORE_URL_FIELD}: {mask_password(url)!r} is not a database URL. "
            f"{URL_EXAMPLES}"
        ) from None


def open_engine(url: str, *, create: bool, sqlite_synchronous: str) -> StoreEngine:
    """The engine for ``url``; connects to nothing yet except the checks of a SQLite file
    (``create=False`` refuses a missing one)."""
    parsed = parse_url(url)
    if parsed.get_backend_name() == "sqlite":
        sync = str(sqlite_synchronous).upper()
        if sync not in SQLITE_SYNCHRONOUS:
            raise StoreError(
                f"sqlite_synchronous: must be one of {', '.join(SQLITE_SYNCHRONOUS)}, "
                f"got {sqlite_synchronous!r}"
            )
        return _sqlite_engine(parsed, create, sync)
    dialect = parsed.get_backend_name()
    location = parsed.render_as_string(hide_password=True)
    parsed = default_pg_driver(parsed)
    kwargs: dict[str, Any] = {"pool_pre_ping": True}
    if dialect == "postgresql":
        kwargs["isolation_level"] = "READ COMMITTED"
    engine = _create_engine(parsed, location, **kwargs)
    return StoreEngine(engine, dialect, location, None, nullcontext())


def _create_engine(url: sa.URL, location: str, **kwargs: Any) -> Engine:
    try:
        return sa.create_engine(url, **kwargs)
    except sa.exc.NoSuchModuleError:
        raise StoreError(
            f"{STORE_URL_FIELD}: unknown database type {url.drivername!r} in "
            f"{location}. {URL_EXAMPLES}"
        ) from None
    except ImportError as exc:
        raise StoreError(
            f"{STORE_URL_FIELD}: the database driver for {location} is not installed "
            f"({exc}); install it (PostgreSQL: pip install 'psycopg[binary]' or "
            "psycopg2-binary)."
        ) from exc
    except (sa.exc.ArgumentError, TypeError, ValueError) as exc:
        raise StoreError(f"{STORE_URL_FIELD}: invalid URL {location} ({exc}).") from exc


def _sqlite_engine(url: sa.URL, create: bool, sync: str) -> StoreEngine:
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
    lock: AbstractContextManager[Any] = nullcontext()
    path: Path | None = None
    if database in ("", ":memory:"):
        location = "sqlite in-memory database"
        kwargs["poolclass"] = StaticPool  # one shared connection = one database
        kwargs["connect_args"]["check_same_thread"] = False
        lock = threading.RLock()
    else:
        path = Path(os.path.abspath(Path(database).expanduser()))
        location = str(path)
        check_sqlite_file(path, create)
        # Absolute path: a later chdir must not make new connections open another file.
        url = url.set(database=str(path))
    engine = _create_engine(url, location, **kwargs)
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
        write = conn.get_execution_options().get(WRITE_OPTION, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

    sa.event.listen(engine, "connect", on_connect)
    sa.event.listen(engine, "begin", on_begin)
    return StoreEngine(engine, "sqlite", location, path, lock)


def check_sqlite_file(path: Path, create: bool) -> None:
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
        raise StoreError(f"{path} is not a regular file. {recover_hint(path)}")
    if st.st_size == 0:
        return  # a new/empty file: SQLite treats it as an empty database
    try:
        with path.open("rb") as fh:
            head = fh.read(len(SQLITE_MAGIC))
    except OSError as exc:
        raise StoreError(f"{path}: cannot read it ({exc}).") from exc
    if head != SQLITE_MAGIC:
        raise StoreError(f"{path} is not a SQLite database. {recover_hint(path)}")


def enable_wal(engine: Engine, location: str) -> str | None:
    """Switch the file to WAL (persistent; a no-op when it already is); returns the journal
    mode SQLite reports.

    The switch needs the file to itself, and SQLite answers "database is locked" at once,
    without waiting out the busy timeout, while another process opens or writes the same
    store (two bots starting together): retried with a short back-off for up to the busy
    timeout.
    """
    deadline = time.monotonic() + BUSY_TIMEOUT_S
    delay = 0.01
    while True:
        raw = engine.raw_connection()
        try:
            cursor = raw.cursor()
            cursor.execute("PRAGMA journal_mode = WAL")
            row = cursor.fetchone()
            cursor.close()
            break
        except engine.dialect.loaded_dbapi.Error as exc:
            if "locked" in str(exc).lower() and time.monotonic() < deadline:
                time.sleep(delay)
                delay = min(delay * 2, 0.5)
                continue
            raise StoreError(f"{location}: cannot switch to WAL journal mode ({exc}).") from exc
        finally:
            raw.close()
    return str(row[0]).lower() if row else None
