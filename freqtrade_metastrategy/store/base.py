"""The store contract: what every Q-table store (in memory, SQLite, PostgreSQL) guarantees.

Save/load contract
------------------
* :meth:`QStore.apply_reward` is atomic: the cell's read-modify-write and the ledger row commit
  together or not at all. A ``trade_id`` already in the ledger makes it a no-op returning
  ``None`` (exactly-once rewards).
* :meth:`QStore.export_dict` / :meth:`QStore.import_dict` round-trip exactly (floats included).
  The JSON document format is ``{"format": FORMAT, "version": 1, "entries": [...],
  "ledger": [...]}``.
* Importing into a store that already holds data requires ``replace=True``: learned data is
  never overwritten by accident.
* :meth:`QStore.watermark` is the moment the current content began: set when the store is
  created and moved to "now" by every replacement (:meth:`QStore.reset`, an import), in the
  same transaction. The live strategy settles only trades closed at or after it, so a reset
  or a new store is not refilled from old trades. It is not part of the exported document.
* Every value is validated before anything is written: non-finite numbers (rewards,
  probabilities, imported statistics) and non-datetime times are refused, in every store.
* :class:`MemoryStore` is safe across threads, :class:`~.sql.SqlStore` also across processes
  (its export reads one snapshot). An import checks emptiness inside its write.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Self

from freqtrade_metastrategy.errors import MetaStrategyError, StoreError
from freqtrade_metastrategy.qtable import QEntry, QKey, check_alpha, check_reward

FORMAT = "freqtrade-metastrategy.qtable"
FORMAT_VERSION = 1


@dataclass(frozen=True, slots=True)
class LedgerRow:
    """One settled reward. ``seq`` orders rows; ``trade_id`` is unique when given."""

    seq: int
    trade_id: str | None
    symbol: str
    regime: str
    strategy: str
    reward: float
    probability: float | None
    settled_at: datetime | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "trade_id": self.trade_id,
            "symbol": self.symbol,
            "regime": self.regime,
            "strategy": self.strategy,
            "reward": self.reward,
            "probability": self.probability,
            "settled_at": self.settled_at.isoformat() if self.settled_at else None,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LedgerRow:
        at = data.get("settled_at")
        prob = data.get("probability")
        tid = data.get("trade_id")
        return cls(
            seq=int(data["seq"]),
            trade_id=None if tid is None else str(tid),
            symbol=str(data["symbol"]),
            regime=str(data["regime"]),
            strategy=str(data["strategy"]),
            reward=float(data["reward"]),
            probability=None if prob is None else float(prob),
            settled_at=datetime.fromisoformat(at) if at else None,
        )


def norm_trade_id(trade_id: object) -> str | None:
    """Trade ids are stored as strings (Freqtrade's are ints, other callers may use strings)."""
    return None if trade_id is None else str(trade_id)


ENTRY_FLOAT_FIELDS = ("ema_reward", "avg_reward", "total_r", "sum_sq_r", "last_reward")


def check_time(value: object, field: str) -> datetime | None:
    """``value`` as a plain :class:`datetime` (pandas Timestamps lose their nanoseconds)."""
    if value is None:
        return None
    if not isinstance(value, datetime):
        raise MetaStrategyError(f"{field}: must be a datetime or None, got {value!r}")
    if type(value) is datetime:
        return value
    try:
        return datetime(
            value.year, value.month, value.day, value.hour, value.minute, value.second,
            value.microsecond, value.tzinfo, fold=value.fold,
        )
    except (TypeError, ValueError):  # pandas.NaT is a datetime too
        raise MetaStrategyError(
            f"{field}: must be a valid datetime or None, got {value!r}"
        ) from None


def content_start(now: object = None) -> datetime:
    """A new watermark: ``now`` (timezone-aware) in UTC, default the current time."""
    if now is None:
        return datetime.now(UTC)
    plain = check_time(now, "now")
    if plain is None or plain.utcoffset() is None:
        raise MetaStrategyError(f"now: must be a timezone-aware datetime, got {now!r}")
    return plain.astimezone(UTC)


def not_empty_error(location: str, source: str) -> StoreError:
    """The refusal to import over learned data without ``replace``."""
    return StoreError(
        f"{location} already holds learned data; importing {source} would overwrite it. "
        "Export it first (`freqtrade-metastrategy export backup.json`) and pass "
        "replace=True / --replace to overwrite."
    )


def check_probability(probability: object) -> float | None:
    """A finite float, or None."""
    if probability is None:
        return None
    try:
        value = float(probability)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        value = math.nan
    if not math.isfinite(value):
        raise MetaStrategyError(
            f"probability: must be a finite number or None, got {probability!r}"
        )
    return value


def check_finite(entries: list[QEntry], ledger: list[LedgerRow], source: str) -> None:
    """Refuse NaN/inf anywhere (SQLite would turn NaN into NULL; exports refuse them)."""
    for e in entries:
        for name in ENTRY_FLOAT_FIELDS:
            if not math.isfinite(getattr(e, name)):
                raise StoreError(f"{source}: cell {e.key}: {name} is not a finite number.")
    for r in ledger:
        if not math.isfinite(r.reward) or (
            r.probability is not None and not math.isfinite(r.probability)
        ):
            raise StoreError(f"{source}: ledger row seq={r.seq}: non-finite reward/probability.")


def parse_document(data: object, source: str) -> tuple[list[QEntry], list[LedgerRow]]:
    """Validate an exported document; errors name ``source`` and the offending part."""
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise StoreError(
            f"{source}: not a freqtrade-metastrategy export (expected a JSON object with "
            f'"format": "{FORMAT}"). Export one with `freqtrade-metastrategy export FILE`.'
        )
    if data.get("version") != FORMAT_VERSION:
        raise StoreError(
            f"{source}: export version {data.get('version')!r} is not supported "
            f"(this version reads {FORMAT_VERSION})."
        )
    try:
        entries = [QEntry.from_dict(e) for e in data["entries"]]
        ledger = [LedgerRow.from_dict(r) for r in data["ledger"]]
    except (KeyError, TypeError, ValueError) as exc:
        raise StoreError(f"{source}: malformed entry or ledger row ({exc!r}).") from exc
    check_finite(entries, ledger, source)
    keys = [e.key for e in entries]
    if len(set(keys)) != len(keys):
        raise StoreError(f"{source}: duplicate (symbol, regime, strategy) entries.")
    tids = [r.trade_id for r in ledger if r.trade_id is not None]
    if len(set(tids)) != len(tids):
        raise StoreError(f"{source}: duplicate trade_id in the ledger.")
    seqs = [r.seq for r in ledger]
    if len(set(seqs)) != len(seqs):
        raise StoreError(f"{source}: duplicate seq in the ledger.")
    return entries, ledger


class QStore(ABC):
    """Abstract Q-table store. Subclasses implement the storage; the contract is above."""

    #: A short human description (file path or URL without password) used in messages.
    location: str = "memory"

    # -- reads ---------------------------------------------------------------------------
    @abstractmethod
    def get(self, symbol: str, regime: str, strategy: str) -> QEntry | None:
        """The cell, or ``None`` if it was never updated. Reads never create cells."""

    @abstractmethod
    def entries(self, *, symbol: str | None = None, regime: str | None = None) -> list[QEntry]:
        """All cells, optionally filtered, sorted by (symbol, regime, strategy)."""

    def iter_regime(self, regime: str) -> Iterator[QEntry]:
        """Cells of one regime in no particular order (used for pooling across symbols)."""
        return iter(self.entries(regime=regime))

    @abstractmethod
    def ledger(self) -> list[LedgerRow]:
        """All settled rewards in settlement order."""

    @abstractmethod
    def is_settled(self, trade_id: object) -> bool:
        """Whether a reward for ``trade_id`` is already in the ledger."""

    @abstractmethod
    def watermark(self) -> datetime:
        """When the current content began (UTC): only trades closed at or after it are
        settled into this store (see the module doc)."""

    # -- writes --------------------------------------------------------------------------
    def apply_reward(
        self,
        symbol: str,
        regime: str,
        strategy: str,
        reward: float,
        *,
        alpha: float,
        trade_id: object = None,
        at: datetime | None = None,
        probability: float | None = None,
        closed_at: datetime | None = None,
    ) -> QEntry | None:
        """Atomically update the cell and append the ledger row.

        Returns the updated entry, or ``None`` (and changes nothing) if ``trade_id`` was
        already settled, or if ``closed_at`` (the trade's close time) is before the watermark,
        checked in the same transaction as the write (a concurrent ``reset`` cannot let an
        older trade into the new content). Every argument is validated before anything is written
        (``check_reward`` also turns -0.0 into 0.0: SQL backends drop the sign of a zero, and
        the returned entry must be exactly what is stored).
        """
        return self._apply_reward(
            (symbol, regime, strategy),
            check_reward(reward),
            alpha=check_alpha(alpha),
            trade_id=norm_trade_id(trade_id),
            at=check_time(at, "at"),
            probability=check_probability(probability),
            closed_at=check_time(closed_at, "closed_at"),
        )

    @abstractmethod
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
        """:meth:`apply_reward` with validated arguments: the store's transaction."""

    @abstractmethod
    def _replace_all(
        self, entries: list[QEntry], ledger: list[LedgerRow], *, watermark: datetime,
        require_empty: bool, source: str,
    ) -> None:
        """Replace the whole content and set the watermark in one transaction; with
        ``require_empty``, raise :func:`not_empty_error` (inside it) if there is content."""

    def reset(self, *, now: datetime | None = None) -> None:
        """Delete every cell and ledger row; the watermark moves to ``now`` (default: the
        current time)."""
        self._replace_all([], [], watermark=content_start(now), require_empty=False,
                          source="reset")

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources (no-op by default)."""

    # -- import / export -------------------------------------------------------------------
    def is_empty(self) -> bool:
        return not self.entries() and not self.ledger()

    def export_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "entries": [e.to_dict() for e in self.entries()],
            "ledger": [r.to_dict() for r in self.ledger()],
        }

    def import_dict(
        self, data: object, *, replace: bool = False, source: str = "the imported data",
        now: datetime | None = None,
    ) -> None:
        """Load an exported document; the watermark moves to ``now`` (default: the current
        time). A store with content needs ``replace=True`` (checked atomically)."""
        entries, ledger = parse_document(data, source)
        self._replace_all(entries, ledger, watermark=content_start(now),
                          require_empty=not replace, source=source)

    def export_json(self, path: str | Path) -> Path:
        """Write the document durably and atomically (fsync'd temp file, rename, fsync dir)."""
        target = Path(path)
        text = json.dumps(self.export_dict(), indent=1, allow_nan=False) + "\n"
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent or ".")
        try:
            with os.fdopen(fd, "w") as fh:
                fh.write(text)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp_name, target)
        except BaseException:
            Path(tmp_name).unlink(missing_ok=True)
            raise
        dir_fd = os.open(target.parent or ".", os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        return target

    def import_json(
        self, path: str | Path, *, replace: bool = False, now: datetime | None = None
    ) -> None:
        p = Path(path)
        try:
            data = json.loads(p.read_text())
        except FileNotFoundError:
            raise StoreError(f"{p}: no such file.") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise StoreError(f"{p}: not valid JSON ({exc}).") from exc
        self.import_dict(data, replace=replace, source=str(p), now=now)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class MemoryStore(QStore):
    """In-memory store (backtests, hyperopt epochs, tests). Thread-safe.

    >>> s = MemoryStore()
    >>> s.apply_reward("BTC/USDT", "trend_up", "scalp", 1.5, alpha=0.2, trade_id=7).count
    1
    >>> s.apply_reward("BTC/USDT", "trend_up", "scalp", 9.9, alpha=0.2, trade_id=7) is None
    True
    >>> s.get("BTC/USDT", "trend_up", "scalp").total_r
    1.5
    """

    location = "memory"

    def __init__(self, *, now: datetime | None = None) -> None:
        self._cells: dict[QKey, QEntry] = {}
        self._ledger: list[LedgerRow] = []
        self._settled: set[str] = set()
        self._watermark = content_start(now)
        self._lock = threading.Lock()

    # Picklable (hyperopt -j 2 pickles the strategy, and so its store, into every epoch): the
    # lock is not state; the copy gets its own.
    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        del state["_lock"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def get(self, symbol: str, regime: str, strategy: str) -> QEntry | None:
        return self._cells.get((symbol, regime, strategy))

    def entries(self, *, symbol: str | None = None, regime: str | None = None) -> list[QEntry]:
        return [
            e
            for k, e in sorted(self._cells.items())
            if (symbol is None or k[0] == symbol) and (regime is None or k[1] == regime)
        ]

    def iter_regime(self, regime: str) -> Iterator[QEntry]:
        with self._lock:  # a snapshot: writers may run while the caller iterates
            return iter([e for k, e in self._cells.items() if k[1] == regime])

    def ledger(self) -> list[LedgerRow]:
        return list(self._ledger)

    def is_settled(self, trade_id: object) -> bool:
        tid = norm_trade_id(trade_id)
        return tid is not None and tid in self._settled

    def watermark(self) -> datetime:
        return self._watermark

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
        tid = trade_id
        with self._lock:
            if tid is not None and tid in self._settled:
                return None
            if closed_at is not None and closed_at < self._watermark:
                return None
            symbol, regime, strategy = key
            old = self._cells.get(key) or QEntry.empty(*key)
            new = old.updated(reward, alpha=alpha, at=at)
            self._cells[key] = new
            seq = self._ledger[-1].seq + 1 if self._ledger else 1
            self._ledger.append(
                LedgerRow(seq, tid, symbol, regime, strategy, new.last_reward, probability, at)
            )
            if tid is not None:
                self._settled.add(tid)
            return new

    def _replace_all(
        self, entries: list[QEntry], ledger: list[LedgerRow], *, watermark: datetime,
        require_empty: bool, source: str,
    ) -> None:
        with self._lock:
            if require_empty and (self._cells or self._ledger):
                raise not_empty_error(self.location, source)
            self._watermark = watermark
            self._cells = {e.key: e for e in entries}
            self._ledger = sorted(ledger, key=lambda r: r.seq)
            self._settled = {r.trade_id for r in ledger if r.trade_id is not None}
