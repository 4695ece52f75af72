"""The SQL store's row mapping (store/schema.py) and URL helpers (store/engine.py): rows are
built from the dataclass fields, and a table that does not match its dataclass is refused at
import time instead of losing a field in one direction."""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from freqtrade_metastrategy.errors import StoreError
from freqtrade_metastrategy.qtable import QEntry
from freqtrade_metastrategy.store.base import LedgerRow
from freqtrade_metastrategy.store.engine import default_pg_driver, mask_password, parse_url
from freqtrade_metastrategy.store.schema import (
    ENTRIES,
    KEY_COLUMNS,
    LEDGER,
    RowCodec,
    ledger_table,
    qtable,
)


def test_tables_have_one_column_per_field_in_field_order() -> None:
    assert [c.name for c in qtable.columns] == [f.name for f in fields(QEntry)]
    assert [c.name for c in ledger_table.columns] == [f.name for f in fields(LedgerRow)]


def test_rows_round_trip_with_times_as_iso_text() -> None:
    at = datetime(2024, 5, 1, 8, 0, 0, 123456, tzinfo=timezone(timedelta(hours=5, minutes=30)))
    entry = QEntry("BTC/USDT", "trend_up", "scalp", 3, 0.1 + 0.2, 1 / 3, 2, 1, 5e-324,
                   -2.5e17, 1.0, at)
    values = ENTRIES.values(entry)
    assert values["last_update"] == "2024-05-01T08:00:00.123456+05:30"
    assert values["count"] == 3 and values["ema_reward"] == 0.1 + 0.2
    assert ENTRIES.from_row(values, "here") == entry
    assert list(ENTRIES.values(entry, without=KEY_COLUMNS)) == [
        f.name for f in fields(QEntry) if f.name not in KEY_COLUMNS]

    row = LedgerRow(7, None, "BTC/USDT", "trend_up", "scalp", -1.5, None, None)
    values = LEDGER.values(row)
    assert values["trade_id"] is None and values["settled_at"] is None
    assert LEDGER.from_row(values, "here") == row
    naive = LedgerRow(8, "42", "A", "b", "c", 0.0, 0.5, datetime(2024, 1, 2, 3, 4, 5))
    assert LEDGER.from_row(LEDGER.values(naive), "here") == naive


def test_malformed_row_names_the_store() -> None:
    values = ENTRIES.values(QEntry.empty("A", "b", "c"))
    values["count"] = "many"
    with pytest.raises(StoreError, match=r"^here: malformed Q-table row"):
        ENTRIES.from_row(values, "here")


@dataclass(frozen=True)
class _Row:
    name: str
    size: float
    at: datetime | None


def _table(*columns: sa.Column[object]) -> sa.Table:
    return sa.Table("t", sa.MetaData(), *columns)


def test_a_table_that_does_not_match_its_dataclass_is_refused() -> None:
    good = RowCodec(_Row, _table(sa.Column("name", sa.Text, primary_key=True),
                                 sa.Column("size", sa.Double, nullable=False),
                                 sa.Column("at", sa.Text, nullable=True)), "test")
    assert good.values(_Row("x", 1.0, datetime(2024, 1, 1, tzinfo=UTC)))["at"] == (
        "2024-01-01T00:00:00+00:00")
    with pytest.raises(TypeError, match="columns differ"):  # a field without its column
        RowCodec(_Row, _table(sa.Column("name", sa.Text, primary_key=True),
                              sa.Column("size", sa.Double, nullable=False)), "test")
    with pytest.raises(TypeError, match=r"t\.at does not store"):  # NULL not allowed
        RowCodec(_Row, _table(sa.Column("name", sa.Text, primary_key=True),
                              sa.Column("size", sa.Double, nullable=False),
                              sa.Column("at", sa.Text, nullable=False)), "test")
    with pytest.raises(TypeError, match=r"t\.size does not store"):  # wrong column type
        RowCodec(_Row, _table(sa.Column("name", sa.Text, primary_key=True),
                              sa.Column("size", sa.Integer, nullable=False),
                              sa.Column("at", sa.Text, nullable=True)), "test")


def test_url_helpers_never_show_the_password() -> None:
    assert mask_password("postgresql://ft:secret@db/ft") == "postgresql://ft:***@db/ft"
    with pytest.raises(StoreError) as err:
        parse_url("postgresql://ft:secret@db:notaport/ft")
    assert "secret" not in str(err.value)
    url = default_pg_driver(sa.make_url("postgresql://ft@db/ft"))
    assert url.drivername in ("postgresql+psycopg", "postgresql+psycopg2", "postgresql")
    assert default_pg_driver(sa.make_url("sqlite://")).drivername == "sqlite"
