"""The store contract: what every Q-table store (in memory, SQLite, PostgreSQL) guarantees.

Save/load contract
------------------
* :meth:`QStore.apply_reward` is atomic: the cell's read-modify-write and the ledger row commit
  together or not at all. A ``trade_id`` already in the ledger makes it a no-op returning
  ``None`` (exactly-once rewards).
* :meth:`QStore.export_dict` / :meth:`QStore.import_dict` round-trip exactly (floats included).
  The JSON document format is ``{"format": FORMAT, "version": 1, "entries": [...],
  "ledger": [...], "learner": {...} or null}``; a document without ``"learner"`` (written
  before the learner state existed) imports as ``"learner": null``.
* Importing into a store that already holds data (cells, ledger rows or a learner state)
  requires ``replace=True``: learned data is never overwritten by accident.
* The full-information learner's state is one opaque JSON object with a *generation*
  (:meth:`QStore.learner_state`). :meth:`QStore.save_learner_state` is a compare-and-swap: it
  writes only if the stored generation is still the one the caller loaded, else it raises
  :class:`StaleLearnerStateError` and writes nothing. Every replacement (reset, import) clears
  or replaces the state and bumps the generation in its transaction, so a bot still holding
  the state it had before can never write it back. The state is stored as JSON text
  (``allow_nan=False``): it reads back as ``json.loads(json.dumps(state))``, floats bit for
  bit (tuples come back as lists, and keys must be strings to come back unchanged).
* :meth:`QStore.watermark` is the moment the current content began: set when the store is
  created and moved to "now" by every replacement (:meth:`QStore.reset`, an import), in the
  same transaction. The live strategy settles only trades closed at or after it, so a reset
  or a new store is not refilled from old trades. It is not part of the exported document.
* Every value is validated before anything is written: non-finite numbers (rewards,
  probabilities, imported statistics) and non-datetime times are refused, in every store.
* :class:`MemoryStore` is safe across threads, :class:`~.sql.SqlStore` also across processes
  (its export reads one snapshot). An import checks emptiness inside its write.

>>> s = MemoryStore()
>>> s.learner_state()
(None, 0)
>>> s.save_learner_state({"w": [0.1 + 0.2, 1e-300]}, generation=0)
1
>>> s.learner_state()
({'w': [0.30000000000000004, 1e-300]}, 1)
>>> s.save_learner_state({"w": []}, generation=0)  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
freqtrade_metastrategy.store.base.StaleLearnerStateError: memory: the learner state was changed...
>>> s.reset()
>>> s.learner_state()
(None, 2)
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Self

from freqtrade_metastrategy.errors import MetaStrategyError, StoreError
from freqtrade_metastrategy.qtable import QEntry, QKey, check_alpha, check_reward

FORMAT = "freqtrade-metastrategy.qtable"
FORMAT_VERSION = 1
#: The document key of the learner state (absent in documents written before it existed).
LEARNER_KEY = "learner"


class StaleLearnerStateError(StoreError):
    """:meth:`QStore.save_learner_state` was given a generation that is no longer the stored
    one: another process reset, imported or saved meanwhile. Nothing was written; the caller
    reloads :meth:`QStore.learner_state`."""

    def __init__(self, location: str, expected: int, stored: int) -> None:
        self.location = location
        self.expected = expected
        self.stored = stored
        super().__init__(
            f"{location}: the learner state was changed by another process (a `reset`, an "
            f"`import` or another bot) since this one loaded it (generation {expected}, now "
            f"{stored}); nothing was written, the learner reloads the stored state."
        )

    def __reduce__(self) -> tuple[Any, ...]:  # picklable (its __init__ takes three arguments)
        return type(self), (self.location, self.expected, self.stored)


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


def encode_learner(state: object, what: str) -> str:
    """``state`` (a JSON object) as the JSON text stored; StoreError if it is not one.

    >>> encode_learner({"a": [1, 0.1]}, "x")
    '{"a": [1, 0.1]}'
    >>> encode_learner({"a": float("nan")}, "x")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    freqtrade_metastrategy.errors.StoreError: x: the learner state contains NaN or infinity...
    """
    if not isinstance(state, Mapping):
        raise StoreError(f"{what}: the learner state must be a JSON object (a dict), got "
                         f"{type(state).__name__}; nothing was written.")
    try:
        return json.dumps(dict(state), allow_nan=False)
    except ValueError as exc:
        problem = ("contains NaN or infinity, which JSON cannot hold"
                   if "out of range float" in str(exc).lower() else f"is not JSON ({exc})")
        raise StoreError(f"{what}: the learner state {problem}; nothing was written.") \
            from exc
    except (TypeError, RecursionError) as exc:
        raise StoreError(f"{what}: the learner state is not JSON-serialisable ({exc}); "
                         "nothing was written.") from exc


def decode_learner(text: str, what: str) -> dict[str, Any]:
    """The stored JSON text back as a fresh dict; StoreError if it is not a JSON object."""
    try:
        state = json.loads(text)
    except ValueError as exc:
        raise StoreError(f"{what}: the stored learner state is not valid JSON ({exc}): "
                         "damaged store.") from exc
    if not isinstance(state, dict):
        raise StoreError(f"{what}: the stored learner state is not a JSON object: damaged "
                         "store.")
    return state


def check_generation(generation: object) -> int:
    """A generation as returned by :meth:`QStore.learner_state` (an int >= 0)."""
    if isinstance(generation, bool) or not isinstance(generation, int) or generation < 0:
        raise StoreError(f"generation: must be the int >= 0 learner_state() returned, got "
                         f"{generation!r}")
    return generation


def parse_learner(data: object, source: str) -> str | None:
    """The document's learner state as JSON text (``None``: none, or an older document)."""
    state = data.get(LEARNER_KEY) if isinstance(data, dict) else None
    return None if state is None else encode_learner(state, source)


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
        require_empty: bool, source: str, learner: str | None,
    ) -> None:
        """Replace the whole content (``learner``: the learner state's JSON text, ``None``
        clears it; its generation is bumped either way) and set the watermark in one
        transaction; with ``require_empty``, raise :func:`not_empty_error` (inside it) if
        there is content."""

    def reset(self, *, now: datetime | None = None) -> None:
        """Delete every cell, ledger row and the learner state (its generation is bumped);
        the watermark moves to ``now`` (default: the current time)."""
        self._replace_all([], [], watermark=content_start(now), require_empty=False,
                          source="reset", learner=None)

    # -- the learner state ---------------------------------------------------------------
    def learner_state(self) -> tuple[dict[str, Any] | None, int]:
        """The stored learner state (a fresh copy; ``None`` if there is none) and its
        generation (0 for a store that never had one), read together."""
        text, generation = self._learner_text()
        return (None if text is None else decode_learner(text, self.location)), generation

    def save_learner_state(self, state: Mapping[str, Any], *, generation: int) -> int:
        """Store ``state`` if the stored generation is still ``generation`` (compare-and-swap,
        one transaction) and return the new generation, ``generation + 1``.

        Raises :class:`StaleLearnerStateError` (writing nothing) if another process reset,
        imported or saved meanwhile, and :class:`StoreError` (writing nothing) if ``state`` is
        not a JSON object without NaN/infinity.
        """
        text = encode_learner(state, self.location)
        return self._save_learner_text(text, check_generation(generation))

    @abstractmethod
    def _learner_text(self) -> tuple[str | None, int]:
        """The stored learner state's JSON text (``None``: none) and its generation."""

    @abstractmethod
    def _save_learner_text(self, text: str, generation: int) -> int:
        """:meth:`save_learner_state` with a validated state: the store's transaction."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources (no-op by default)."""

    # -- import / export -------------------------------------------------------------------
    def is_empty(self) -> bool:
        """No cell, no ledger row and no learner state (a store holding only a learner state
        is not empty: importing into it needs ``replace``)."""
        return not self.entries() and not self.ledger() and self._learner_text()[0] is None

    def export_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "entries": [e.to_dict() for e in self.entries()],
            "ledger": [r.to_dict() for r in self.ledger()],
            LEARNER_KEY: self.learner_state()[0],
        }

    def import_dict(
        self, data: object, *, replace: bool = False, source: str = "the imported data",
        now: datetime | None = None,
    ) -> None:
        """Load an exported document; the watermark moves to ``now`` (default: the current
        time) and the learner state becomes the document's (``None`` if it has none; its
        generation is bumped). A store with content (cells, ledger rows or a learner state)
        needs ``replace=True`` (checked atomically)."""
        entries, ledger = parse_document(data, source)
        learner = parse_learner(data, source)
        self._replace_all(entries, ledger, watermark=content_start(now),
                          require_empty=not replace, source=source, learner=learner)

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
        self._learner: str | None = None  # the learner state's JSON text
        self._generation = 0
        self._lock = threading.Lock()

    # Picklable (hyperopt -j 2 pickles the strategy, and so its store, into every epoch): the
    # lock is not state; the copy gets its own.
    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        del state["_lock"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update({"_learner": None, "_generation": 0, **state})
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

    def _learner_text(self) -> tuple[str | None, int]:
        with self._lock:
            return self._learner, self._generation

    def _save_learner_text(self, text: str, generation: int) -> int:
        with self._lock:
            if self._generation != generation:
                raise StaleLearnerStateError(self.location, generation, self._generation)
            self._learner = text
            self._generation += 1
            return self._generation

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
        require_empty: bool, source: str, learner: str | None,
    ) -> None:
        with self._lock:
            if require_empty and (self._cells or self._ledger or self._learner is not None):
                raise not_empty_error(self.location, source)
            self._watermark = watermark
            self._learner = learner
            self._generation += 1
            self._cells = {e.key: e for e in entries}
            self._ledger = sorted(ledger, key=lambda r: r.seq)
            self._settled = {r.trade_id for r in ledger if r.trade_id is not None}
