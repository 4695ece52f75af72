"""Q-table stores, and :func:`open_store` to open the one ``metastrategy.store_url`` names.

* :mod:`.base`: the store contract (:class:`QStore`), :class:`LedgerRow`, the JSON document,
  the learner state's compare-and-swap (:class:`StaleLearnerStateError`) and
  :class:`MemoryStore` (backtests, hyperopt, tests);
* :mod:`.engine`: from a URL to a SQLAlchemy engine: URL checks and password masking, the
  SQLite file checks and its WAL / ``synchronous`` / ``BEGIN IMMEDIATE`` engine, PostgreSQL's
  driver, database error messages;
* :mod:`.schema`: the ``metastrategy_*`` tables, their version and column checks, creation and
  watermark stamping, and the rows <-> dataclass mapping derived from the dataclass fields;
* :mod:`.sql`: :class:`SqlStore`, the store's transactions (rewards, replacements, reads).

This package never imports Freqtrade.

>>> default_store_url("/srv/ft/user_data")
'sqlite:////srv/ft/user_data/metastrategy.sqlite'
>>> open_store("memory")  # doctest: +ELLIPSIS
<freqtrade_metastrategy.store.base.MemoryStore object at ...>
"""

from __future__ import annotations

import os
from pathlib import Path

import sqlalchemy as sa

from freqtrade_metastrategy.errors import StoreError
from freqtrade_metastrategy.store.base import (
    FORMAT,
    LedgerRow,
    MemoryStore,
    QStore,
    StaleLearnerStateError,
)
from freqtrade_metastrategy.store.engine import STORE_URL_FIELD
from freqtrade_metastrategy.store.sql import SqlStore

__all__ = [
    "FORMAT",
    "LedgerRow",
    "MemoryStore",
    "QStore",
    "SqlStore",
    "StaleLearnerStateError",
    "default_store_url",
    "open_store",
]

DEFAULT_FILENAME = "metastrategy.sqlite"


def default_store_url(user_data_dir: str | Path) -> str:
    """``sqlite:///<absolute user_data_dir>/metastrategy.sqlite`` (special characters escaped)."""
    path = Path(os.path.abspath(Path(user_data_dir).expanduser())) / DEFAULT_FILENAME
    return sa.URL.create("sqlite", database=str(path)).render_as_string(hide_password=False)


def open_store(url: str | None, *, user_data_dir: str | Path | None = None) -> QStore:
    """Open the store named by ``metastrategy.store_url``.

    ``"memory"`` gives a :class:`MemoryStore`; ``None`` the default SQLite file in
    ``user_data_dir``; anything else is a SQLAlchemy URL opened with :class:`SqlStore`.
    Every failure raises :class:`StoreError` saying what to change.
    """
    if url is None:
        if user_data_dir is None:
            raise StoreError(
                f"{STORE_URL_FIELD}: not set, and no user_data_dir to keep the default "
                f"{DEFAULT_FILENAME} in. Set {STORE_URL_FIELD} (\"memory\", "
                "sqlite:////absolute/path/metastrategy.sqlite or postgresql://...)."
            )
        url = default_store_url(user_data_dir)
    elif not isinstance(url, str):
        raise StoreError(f"{STORE_URL_FIELD}: must be a string, got {url!r}.")
    if url.strip() == "memory":
        return MemoryStore()
    return SqlStore(url)
