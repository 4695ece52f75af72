"""The SQL store's tables, their checks, and the mapping between rows and dataclasses.

* ``metastrategy_meta`` (``app``, ``schema_version``, ``watermark``), ``metastrategy_qtable``
  (one row per :class:`~freqtrade_metastrategy.qtable.QEntry`), ``metastrategy_ledger`` (one
  row per :class:`~freqtrade_metastrategy.store.base.LedgerRow`) and ``metastrategy_learner``
  (one row, key ``"state"``: the full-information learner's state as JSON text, its
  ``generation`` and ``updated_at``; a reset stores the JSON ``null`` in it rather than deleting
  the row, so the generation only ever grows);
* :func:`check_schema` refuses another application's or a damaged schema; :func:`create_or_stamp`
  creates the tables, or stamps a legacy store's watermark;
* ``metastrategy_learner`` came after ``schema_version`` 1, as an additive migration that keeps
  the version at 1: a store created before gets the table at its first open by a version that
  knows it (:func:`create_learner_table`; a store that may only be read works without it and
  has no learner state). An older version ignores the table (it neither reads nor checks it),
  so it still opens the store, but its exports leave the learner state out and its ``reset``
  and ``import`` leave the learner state (and its generation) as they were;
* :data:`ENTRIES` / :data:`LEDGER` convert rows from the dataclass fields (times as ISO-8601
  text), and check at import that each table has exactly those columns.
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from collections.abc import Callable, Collection, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, ClassVar, Final, Generic, Protocol, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from freqtrade_metastrategy.errors import StoreError
from freqtrade_metastrategy.qtable import QEntry, QKey
from freqtrade_metastrategy.store.base import LedgerRow, check_time, content_start
from freqtrade_metastrategy.store.engine import StoreEngine

APP: Final = "freqtrade-metastrategy"
SCHEMA_VERSION: Final = 1
WATERMARK_KEY: Final = "watermark"
_PG_SCHEMA_LOCK: Final = 0x6D657461_7374  # pg_advisory_xact_lock key used while creating tables

# --------------------------------------------------------------------------------------------
# Tables
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

learner_table: Final = sa.Table(
    "metastrategy_learner",
    metadata,
    sa.Column("key", _Name, primary_key=True),
    sa.Column("generation", sa.Integer, nullable=False),
    # JSON text; the JSON null once a reset or an import without one cleared it.
    sa.Column("state", sa.Text, nullable=False),
    sa.Column("updated_at", sa.Text, nullable=True),
)
#: The key of the learner table's one row, and the stored text of "no learner state".
LEARNER_ROW: Final = "state"
NO_LEARNER: Final = "null"

TABLES: Final = (meta_table, qtable, ledger_table, learner_table)
KEY_COLUMNS: Final = ("symbol", "regime", "strategy")


def key_where(key: QKey) -> sa.ColumnElement[bool]:
    """The WHERE clause selecting one Q-table cell."""
    symbol, regime, strategy = key
    return sa.and_(
        qtable.c.symbol == symbol, qtable.c.regime == regime, qtable.c.strategy == strategy
    )


# --------------------------------------------------------------------------------------------
# Rows <-> dataclasses
# --------------------------------------------------------------------------------------------
def _iso(value: datetime | None) -> str | None:
    plain = check_time(value, "datetime")
    return None if plain is None else plain.isoformat()


def _from_iso(value: object) -> datetime:
    return datetime.fromisoformat(str(value))


def _same(value: object) -> object:
    return value


#: Field type -> (value to store, stored value back, the column's Python type).
_KINDS: Final[dict[type, tuple[Callable[[Any], Any], Callable[[Any], Any], type]]] = {
    str: (_same, str, str),
    int: (_same, int, int),
    float: (_same, float, float),
    datetime: (_iso, _from_iso, str),
}

class _Dataclass(Protocol):
    __dataclass_fields__: ClassVar[dict[str, Any]]


D = TypeVar("D", bound=_Dataclass)


def _optional(convert: Callable[[Any], Any]) -> Callable[[Any], Any]:
    return lambda value: None if value is None else convert(value)


class RowCodec(Generic[D]):
    """Rows of ``table`` <-> instances of the dataclass ``cls``, one column per field (same
    names, same order), built from the fields: str, int and float as they are, datetimes as
    ISO-8601 text, ``X | None`` as a nullable column. A table that does not match the fields
    raises ``TypeError`` when this module is imported.
    """

    def __init__(self, cls: type[D], table: sa.Table, what: str) -> None:
        self.table = table
        self._make: Callable[..., D] = cls
        self._what = what
        hints = typing.get_type_hints(cls)
        names = [f.name for f in dataclasses.fields(cls)]
        if names != [c.name for c in table.columns]:
            raise TypeError(f"{table.name} columns differ from the {cls.__name__} fields {names}")
        self._to: list[tuple[str, Callable[[Any], Any]]] = []
        self._from: list[tuple[str, Callable[[Any], Any]]] = []
        for name in names:
            kind, optional = self._kind(hints[name])
            to_db, from_db, stored = _KINDS[kind]
            column = table.c[name]
            if column.nullable != optional or column.type.python_type is not stored:
                raise TypeError(f"{table.name}.{name} does not store {cls.__name__}.{name}")
            self._to.append((name, _optional(to_db) if optional else to_db))
            self._from.append((name, _optional(from_db) if optional else from_db))

    @staticmethod
    def _kind(hint: Any) -> tuple[type, bool]:
        """``(X, optional)`` for a field typed ``X`` or ``X | None``."""
        args = typing.get_args(hint)
        optional = typing.get_origin(hint) in (types.UnionType, typing.Union) and \
            type(None) in args
        if optional:
            rest = [a for a in args if a is not type(None)]
            hint = rest[0] if len(rest) == 1 else hint
        if hint not in _KINDS:
            raise TypeError(f"no column type for a field of type {hint!r}")
        return hint, optional

    def values(self, obj: D, *, without: Collection[str] = ()) -> dict[str, Any]:
        """The column values of ``obj`` (except the columns named in ``without``)."""
        return {name: to_db(getattr(obj, name)) for name, to_db in self._to
                if name not in without}

    def from_row(self, row: Mapping[Any, Any], location: str) -> D:
        """The instance stored in ``row``; a malformed row raises StoreError naming it."""
        try:
            return self._make(**{name: from_db(row[name]) for name, from_db in self._from})
        except (TypeError, ValueError) as exc:
            raise StoreError(f"{location}: malformed {self._what} row {dict(row)!r} ({exc}).") \
                from exc


ENTRIES: Final = RowCodec(QEntry, qtable, "Q-table")
LEDGER: Final = RowCodec(LedgerRow, ledger_table, "ledger")


def read_entries(
    conn: Connection, location: str, symbol: str | None = None, regime: str | None = None
) -> list[QEntry]:
    """The cells (optionally of one symbol and/or regime), sorted by key."""
    stmt = sa.select(qtable)
    if symbol is not None:
        stmt = stmt.where(qtable.c.symbol == symbol)
    if regime is not None:
        stmt = stmt.where(qtable.c.regime == regime)
    # Sorted in Python: SQL collations (PostgreSQL locales) differ from str ordering.
    return sorted((ENTRIES.from_row(r, location) for r in conn.execute(stmt).mappings()),
                  key=lambda e: e.key)


def read_ledger(conn: Connection, location: str) -> list[LedgerRow]:
    """The ledger in ``seq`` order."""
    stmt = sa.select(ledger_table).order_by(ledger_table.c.seq)
    return [LEDGER.from_row(r, location) for r in conn.execute(stmt).mappings()]


# --------------------------------------------------------------------------------------------
# Checks, creation, watermark
# --------------------------------------------------------------------------------------------
def legacy_watermark(settled: Iterable[datetime | None], opened: datetime) -> datetime:
    """The watermark of a store written before watermarks existed: its earliest settlement
    (naive times are UTC), else ``opened``.

    >>> legacy_watermark([None], datetime(2025, 1, 1, tzinfo=UTC)).year
    2025
    """
    times = [t if t.utcoffset() is not None else t.replace(tzinfo=UTC)
             for t in settled if t is not None]
    return min(times).astimezone(UTC) if times else opened


def our_tables(conn: Connection) -> set[str]:
    """The names of this application's tables present in the database."""
    names = set(sa.inspect(conn).get_table_names())
    return {t.name for t in TABLES} & names


def check_schema(conn: Connection, db: StoreEngine) -> dict[str, str]:
    """Refuse a foreign or damaged schema; returns the ``metastrategy_meta`` rows."""
    insp = sa.inspect(conn)
    names = set(insp.get_table_names())
    loc, hint = db.location, db.recover_hint
    if meta_table.name not in names:
        raise StoreError(
            f"{loc} has metastrategy_ tables but no {meta_table.name}: it was not "
            f"created by {APP} (or is damaged). {hint}"
        )
    _check_columns(insp, meta_table, db)
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
        _check_columns(insp, table, db)
    if learner_table.name in names:  # optional: created by the first open that knows it
        _check_columns(insp, learner_table, db)
    if WATERMARK_KEY in rows:
        parse_watermark(rows[WATERMARK_KEY], db)
    return rows


def _check_columns(insp: sa.Inspector, table: sa.Table, db: StoreEngine) -> None:
    have = {c["name"] for c in insp.get_columns(table.name)}
    missing = [c.name for c in table.columns if c.name not in have]
    if missing:
        raise StoreError(
            f"{db.location}: table {table.name} lacks column(s) {', '.join(missing)}: "
            f"not a {APP} schema_version {SCHEMA_VERSION} store. {db.recover_hint}"
        )


def create_or_stamp(conn: Connection, db: StoreEngine) -> None:
    """Create the tables with a watermark, or stamp a legacy store's (earliest
    settlement, else now), serialized against other processes doing the same."""
    if db.dialect == "postgresql":
        conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_PG_SCHEMA_LOCK)))
    if not our_tables(conn):
        metadata.create_all(conn)
        conn.execute(
            sa.insert(meta_table),
            [
                {"key": "app", "value": APP},
                {"key": "schema_version", "value": str(SCHEMA_VERSION)},
            ],
        )
        set_watermark(conn, content_start())
    elif WATERMARK_KEY not in check_schema(conn, db):  # created meanwhile, or legacy
        settled = (r.settled_at for r in read_ledger(conn, db.location))
        set_watermark(conn, legacy_watermark(settled, content_start()))


def parse_watermark(value: object, db: StoreEngine) -> datetime:
    """A stored watermark (timezone-aware ISO-8601) in UTC; anything else is a damaged store."""
    try:
        at: datetime | None = datetime.fromisoformat(str(value))
    except ValueError:
        at = None
    if at is None or at.utcoffset() is None:
        raise StoreError(f"{db.location}: malformed {WATERMARK_KEY} {value!r} in "
                         f"{meta_table.name} (damaged store). {db.recover_hint}")
    return at.astimezone(UTC)


def stored_watermark(conn: Connection) -> object:
    """The watermark's stored text, ``None`` if there is none."""
    return conn.execute(
        sa.select(meta_table.c.value).where(meta_table.c.key == WATERMARK_KEY)
    ).scalar()


def set_watermark(conn: Connection, at: datetime) -> None:
    value = at.isoformat()
    stmt = sa.update(meta_table).where(meta_table.c.key == WATERMARK_KEY)
    if conn.execute(stmt.values(value=value)).rowcount == 0:
        conn.execute(sa.insert(meta_table).values(key=WATERMARK_KEY, value=value))


# --------------------------------------------------------------------------------------------
# The learner state (metastrategy_learner)
# --------------------------------------------------------------------------------------------
def has_learner_table(conn: Connection) -> bool:
    return sa.inspect(conn).has_table(learner_table.name)


def may_create_tables(conn: Connection, db: StoreEngine) -> bool:
    """Whether creating a table can succeed here, asked without trying (a read-only file or
    transaction, a role without CREATE on its schema answer no)."""
    if db.sqlite_file is not None:
        return os.access(db.sqlite_file, os.W_OK)
    if db.dialect == "postgresql":
        return bool(conn.exec_driver_sql(
            "SELECT current_setting('transaction_read_only') = 'off' AND "
            "COALESCE(has_schema_privilege(current_schema(), 'CREATE'), false)"
        ).scalar())
    return True


def create_learner_table(conn: Connection, db: StoreEngine) -> None:
    """Add ``metastrategy_learner`` to a store created before it existed (serialized like the
    table creation; a no-op when another process created it meanwhile)."""
    if db.dialect == "postgresql":
        conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_PG_SCHEMA_LOCK)))
    learner_table.create(conn, checkfirst=True)


def read_learner(conn: Connection, location: str) -> tuple[str | None, int]:
    """The learner state's JSON text (``None``: none) and its generation (0: no row)."""
    row = conn.execute(
        sa.select(learner_table.c.generation, learner_table.c.state)
        .where(learner_table.c.key == LEARNER_ROW)
    ).first()
    if row is None:
        return None, 0
    generation, state = row
    if not isinstance(generation, int) or not isinstance(state, str):
        raise StoreError(f"{location}: malformed {learner_table.name} row (generation "
                         f"{generation!r}): damaged store.")
    return (None if state == NO_LEARNER else state), generation


def replace_learner(conn: Connection, text: str | None) -> None:
    """Set the learner state (``None``: clear it) and bump its generation, whatever it was."""
    values = {"state": NO_LEARNER if text is None else text,
              "updated_at": content_start().isoformat()}
    stmt = sa.update(learner_table).where(learner_table.c.key == LEARNER_ROW)
    bumped = stmt.values(generation=learner_table.c.generation + 1, **values)
    if conn.execute(bumped).rowcount == 0:
        conn.execute(sa.insert(learner_table).values(key=LEARNER_ROW, generation=1, **values))
