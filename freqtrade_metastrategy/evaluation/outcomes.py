"""The outcome table: what every profile would have earned on every entry, and its time handling.

The counterfactual simulator (:func:`~.simulator.simulate`) gives, for every entry signal, the
outcome of *every* profile: one row per (entry, profile) with the columns
:data:`OUTCOME_COLUMNS` (``entry_id``, ``pair``, ``side``, ``signal_time``, ``entry_time``,
``regime``, ``profile``, ``exit_time``, ``exit_reason``) and at least one reward unit of
:data:`UNITS` (``r_atr``, ``r_risk``, ``ret_pct``). :class:`OutcomeTable` validates that long
table and holds it in wide form (entries x profiles), entries in ``(signal_time, entry_id)``
order, which is what the replay, the hindsight baselines and the metrics read.

Times: the table's time columns must be tz-aware; every time is held as int64 nanoseconds
since the epoch (UTC). Scalar bounds (:func:`to_utc_timestamp`) may be naive and are then UTC.
:func:`synthetic_outcomes` makes a table for tests, doctests and examples.

>>> table = OutcomeTable.from_frame(synthetic_outcomes(n=4, seed=1))
>>> len(table), table.units, table.profiles[:2]
(4, ('r_atr', 'r_risk', 'ret_pct'), ('defensive', 'moderate'))
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import pandas as pd

from freqtrade_metastrategy.errors import EvaluationError
from freqtrade_metastrategy.profiles import BUILTIN_PROFILES
from freqtrade_metastrategy.timerange import to_utc_timestamp
from freqtrade_metastrategy.trade_math import REWARD_UNITS

__all__ = [
    "CONTEXT_PREFIX",
    "ENTRY_COLUMNS",
    "OUTCOME_COLUMNS",
    "UNITS",
    "BoolArray",
    "FloatArray",
    "IntArray",
    "OutcomeTable",
    "check_unit",
    "ns_to_datetime",
    "ns_to_times",
    "synthetic_outcomes",
    "to_utc_timestamp",
]

#: Array types of the evaluation package (rewards, times in ns / choices, masks).
FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

#: The three reward units of the outcome table.
UNITS: Final[tuple[str, ...]] = REWARD_UNITS  # the reward units (trade_math is their home)
#: Columns that are the same on every row of one entry.
ENTRY_COLUMNS: Final[tuple[str, ...]] = (
    "entry_id", "pair", "side", "signal_time", "entry_time", "regime",
)
#: Columns with this prefix are context features of the entry (see :mod:`..context`).
CONTEXT_PREFIX: Final = "ctx_"
#: Required columns of the outcome table (plus at least one of :data:`UNITS`).
OUTCOME_COLUMNS: Final[tuple[str, ...]] = (*ENTRY_COLUMNS, "profile", "exit_time", "exit_reason")


def check_unit(unit: str) -> None:
    """Refuse a reward unit that is not one of :data:`UNITS`."""
    if unit not in UNITS:
        raise EvaluationError(f"unit {unit!r}: must be one of {', '.join(UNITS)}")


# -- time handling -----------------------------------------------------------------------------
def _utc_ns(col: pd.Series, name: str) -> IntArray:
    """A tz-aware datetime column as int64 nanoseconds since the epoch (UTC)."""
    s = col
    if not isinstance(s.dtype, pd.DatetimeTZDtype):
        if pd.api.types.is_datetime64_dtype(s.dtype):
            raise EvaluationError(
                f"column {name!r} holds naive datetimes; give tz-aware UTC times "
                f"(e.g. df[{name!r}] = df[{name!r}].dt.tz_localize('UTC'))"
            )
        try:
            s = pd.to_datetime(s, utc=False)
        except (TypeError, ValueError) as exc:
            raise EvaluationError(f"column {name!r}: not datetimes ({exc})") from None
        if not isinstance(s.dtype, pd.DatetimeTZDtype):
            raise EvaluationError(f"column {name!r} must hold tz-aware (UTC) datetimes")
    if bool(s.isna().any()):
        raise EvaluationError(f"column {name!r} has missing times (NaT)")
    s = s.dt.tz_convert("UTC").dt.tz_localize(None).dt.as_unit("ns")
    out: IntArray = s.to_numpy(dtype="datetime64[ns]").view(np.int64)
    return out


def ns_to_times(ns: IntArray) -> pd.DatetimeIndex:
    """Nanoseconds since the epoch as a tz-aware (UTC) DatetimeIndex."""
    return pd.DatetimeIndex(pd.to_datetime(np.asarray(ns, dtype=np.int64), unit="ns", utc=True))


def ns_to_datetime(ns: int) -> datetime:
    """Nanoseconds since the epoch as a tz-aware (UTC) :class:`datetime`."""
    ts: datetime = pd.Timestamp(int(ns), unit="ns", tz="UTC").to_pydatetime(warn=False)
    return ts


# -- the outcome table ------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class OutcomeTable:
    """The validated outcome table in wide form, entries in ``(signal_time, entry_id)`` order.

    ``entries`` has one row per entry (columns :data:`ENTRY_COLUMNS`, RangeIndex = row in time
    order); ``profiles``: the built-in profiles present, in registry order, then any other
    profile in name order (independent of the input's row order; ties in hindsight choices
    go to the first); ``rewards[unit]``, ``exit_ns`` and ``exit_reason`` are ``(entries, profiles)``
    arrays, column ``j`` being ``profiles[j]``; ``signal_ns`` is the signal time in ns (UTC).
    """

    entries: pd.DataFrame
    profiles: tuple[str, ...]
    rewards: Mapping[str, FloatArray]
    exit_ns: IntArray
    exit_reason: npt.NDArray[np.object_]
    signal_ns: IntArray
    #: context features of the entries' signal candles (``(entries, len(feature_names))``):
    #: the input's :data:`CONTEXT_PREFIX` columns, constant per entry
    features: FloatArray = field(default_factory=lambda: np.zeros((0, 0)))
    feature_names: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.features.shape != (len(self.signal_ns), len(self.feature_names)):
            object.__setattr__(self, "features", np.zeros((len(self.signal_ns), 0))
                               if not self.feature_names else self.features)
        if self.features.shape != (len(self.signal_ns), len(self.feature_names)):
            raise EvaluationError("outcome table: features must have one row per entry and "
                                  "one column per feature name")

    @classmethod
    def from_frame(cls, outcomes: pd.DataFrame) -> OutcomeTable:  # noqa: C901 - flat checks
        """Validate the simulator's long table (see module doc) and reshape it."""
        if not isinstance(outcomes, pd.DataFrame):
            raise EvaluationError("outcomes: expected a pandas DataFrame (or an OutcomeTable)")
        missing = [c for c in OUTCOME_COLUMNS if c not in outcomes.columns]
        if missing:
            raise EvaluationError(f"outcome table: missing column(s) {', '.join(missing)}")
        units = [u for u in UNITS if u in outcomes.columns]
        if not units:
            raise EvaluationError(f"outcome table: no reward column (one of {', '.join(UNITS)})")
        if outcomes.empty:
            raise EvaluationError("outcome table: no rows")
        if not pd.api.types.is_integer_dtype(outcomes["entry_id"].dtype):
            raise EvaluationError("column 'entry_id' must hold integers")
        found = {str(p) for p in pd.unique(outcomes["profile"].astype(str))}
        profiles = (*(p for p in BUILTIN_PROFILES if p in found),
                    *sorted(found.difference(BUILTIN_PROFILES)))
        k = len(profiles)
        dup = outcomes.duplicated(["entry_id", "profile"])
        if bool(dup.any()):
            row = outcomes.loc[dup].iloc[0]
            raise EvaluationError(
                f"outcome table: entry {row['entry_id']} has several rows for profile "
                f"{row['profile']!r}"
            )
        codes = pd.Categorical(outcomes["profile"].astype(str), categories=list(profiles)).codes
        eid_all = outcomes["entry_id"].to_numpy(dtype=np.int64)
        counts = pd.Series(eid_all).value_counts()
        incomplete = counts[counts != k]
        if len(incomplete):
            bad = int(incomplete.index[0])
            have = set(outcomes.loc[outcomes["entry_id"] == bad, "profile"].astype(str))
            lacking = [p for p in profiles if p not in have]
            raise EvaluationError(
                f"outcome table: entry {bad} has no row for profile(s) {', '.join(lacking)}; "
                "every entry needs the outcome of every profile"
            )
        order = np.lexsort((codes, eid_all))
        n = len(outcomes) // k

        def wide(values: npt.NDArray[Any]) -> npt.NDArray[Any]:
            return values[order].reshape(n, k)

        sig = wide(_utc_ns(outcomes["signal_time"], "signal_time"))
        ent = wide(_utc_ns(outcomes["entry_time"], "entry_time"))
        ext = wide(_utc_ns(outcomes["exit_time"], "exit_time"))
        eid = wide(eid_all)
        per_entry: dict[str, npt.NDArray[Any]] = {
            "entry_id": eid, "signal_time": sig, "entry_time": ent,
        }
        for col in ("pair", "side", "regime"):
            per_entry[col] = wide(outcomes[col].astype(str).to_numpy(dtype=object))
        for col, arr in per_entry.items():
            mismatch = (arr != arr[:, :1]).any(axis=1)
            if bool(mismatch.any()):
                bad = int(eid[int(np.argmax(mismatch)), 0])
                raise EvaluationError(
                    f"outcome table: entry {bad} has different {col!r} values across profiles"
                )
        rewards: dict[str, FloatArray] = {}
        for u in units:
            try:
                vals = wide(outcomes[u].to_numpy(dtype=np.float64))
            except (TypeError, ValueError) as exc:
                raise EvaluationError(f"column {u!r}: not numbers ({exc})") from None
            finite = np.isfinite(vals)
            if not bool(finite.all()):
                i, j = np.argwhere(~finite)[0]
                raise EvaluationError(
                    f"column {u!r}: entry {eid[i, 0]} profile {profiles[j]!r} is not a finite "
                    "number"
                )
            rewards[u] = vals
        early = ext < sig
        if bool(early.any()):
            i, j = np.argwhere(early)[0]
            raise EvaluationError(
                f"outcome table: entry {eid[i, 0]} profile {profiles[j]!r} exits before its "
                "signal_time"
            )
        reasons = wide(outcomes["exit_reason"].astype(str).to_numpy(dtype=object))
        names = tuple(c for c in outcomes.columns if str(c).startswith(CONTEXT_PREFIX))
        feats = np.zeros((n, len(names)))
        for c, col in enumerate(names):
            try:
                vals = wide(outcomes[col].to_numpy(dtype=np.float64))
            except (TypeError, ValueError) as exc:
                raise EvaluationError(f"column {col!r}: not numbers ({exc})") from None
            if not bool(np.isfinite(vals).all()):
                raise EvaluationError(f"column {col!r}: every context value must be finite")
            feats[:, c] = vals[:, 0]
        torder = np.lexsort((eid[:, 0], sig[:, 0]))
        entries = pd.DataFrame({
            "entry_id": eid[torder, 0],
            "pair": per_entry["pair"][torder, 0],
            "side": per_entry["side"][torder, 0],
            "signal_time": ns_to_times(sig[torder, 0]),
            "entry_time": ns_to_times(ent[torder, 0]),
            "regime": per_entry["regime"][torder, 0],
        })
        return cls(
            entries=entries,
            profiles=profiles,
            rewards={u: np.ascontiguousarray(v[torder]) for u, v in rewards.items()},
            exit_ns=np.ascontiguousarray(ext[torder]),
            exit_reason=np.ascontiguousarray(reasons[torder]),
            signal_ns=np.ascontiguousarray(sig[torder, 0]),
            features=np.ascontiguousarray(feats[torder]),
            feature_names=names,
        )

    @classmethod
    def coerce(cls, outcomes: pd.DataFrame | OutcomeTable) -> OutcomeTable:
        return outcomes if isinstance(outcomes, OutcomeTable) else cls.from_frame(outcomes)

    def __len__(self) -> int:
        return len(self.signal_ns)

    @property
    def units(self) -> tuple[str, ...]:
        return tuple(self.rewards)

    def reward(self, unit: str) -> FloatArray:
        """The ``(entries, profiles)`` reward matrix in ``unit``."""
        if unit not in self.rewards:
            raise EvaluationError(
                f"unit {unit!r}: not in the outcome table (available: {', '.join(self.rewards)})"
            )
        return self.rewards[unit]

    def profile_index(self, profile: str) -> int:
        try:
            return self.profiles.index(profile)
        except ValueError:
            raise EvaluationError(
                f"profile {profile!r} has no outcomes in the table (profiles: "
                f"{', '.join(self.profiles)})"
            ) from None

    @property
    def close_ns(self) -> IntArray:
        """Per entry, when the last of its profiles' outcomes closed."""
        return np.asarray(self.exit_ns.max(axis=1), dtype=np.int64)

    def subset(self, mask: BoolArray) -> OutcomeTable:
        """The entries where ``mask`` (aligned with :attr:`entries`) is true, same order."""
        m = np.asarray(mask, dtype=bool)
        if m.shape != self.signal_ns.shape:
            raise EvaluationError("subset: mask must have one value per entry")
        return OutcomeTable(
            entries=self.entries.loc[m].reset_index(drop=True),
            profiles=self.profiles,
            rewards={u: v[m] for u, v in self.rewards.items()},
            exit_ns=self.exit_ns[m],
            exit_reason=self.exit_reason[m],
            signal_ns=self.signal_ns[m],
            features=self.features[m],
            feature_names=self.feature_names,
        )

    def between(self, start: object, end: object) -> OutcomeTable:
        """Entries with ``start <= signal_time < end`` (naive bounds are UTC)."""
        lo = to_utc_timestamp(start, "start").value
        hi = to_utc_timestamp(end, "end").value
        return self.subset((self.signal_ns >= lo) & (self.signal_ns < hi))

    @classmethod
    def concat(cls, tables: Sequence[OutcomeTable]) -> OutcomeTable:
        """The entries of ``tables`` one after the other (the first table's profiles and units;
        the order is kept as given, not re-sorted)."""
        first = tables[0]
        return cls(
            entries=pd.concat([t.entries for t in tables], ignore_index=True),
            profiles=first.profiles,
            rewards={u: np.concatenate([t.rewards[u] for t in tables]) for u in first.units},
            exit_ns=np.concatenate([t.exit_ns for t in tables]),
            exit_reason=np.concatenate([t.exit_reason for t in tables]),
            signal_ns=np.concatenate([t.signal_ns for t in tables]),
            features=np.concatenate([t.features for t in tables]),
            feature_names=first.feature_names,
        )


# -- synthetic data (tests, doctests, examples) ------------------------------------------------
_SYN_MEANS: Final[Mapping[str, Mapping[str, float]]] = {
    "trend_up": {"ultra_aggressive": 0.8, "trend_rider": 0.5, "moderate": 0.2, "defensive": 0.1,
                 "scalp": -0.3, "moderate_aggressive": 0.3, "balanced_aggressive": 0.4},
    "range_low_vol": {"ultra_aggressive": -0.4, "trend_rider": -0.6, "moderate": 0.2,
                      "defensive": 0.3, "scalp": 0.6, "moderate_aggressive": -0.2,
                      "balanced_aggressive": -0.3},
}


def synthetic_outcomes(
    n: int = 200,
    *,
    seed: int = 0,
    means: Mapping[str, Mapping[str, float]] | None = None,
    pairs: Sequence[str] = ("BTC/USDT", "ETH/USDT"),
    start: str = "2024-01-01",
    spacing: str = "4h",
    hold: tuple[str, str] = ("2h", "30h"),
    noise: float = 1.0,
) -> pd.DataFrame:
    """A synthetic outcome table: ``n`` entries, regimes drawn uniformly from ``means``' keys,
    reward ``r_atr`` ~ N(means[regime][profile], noise), ``r_risk`` = ``r_atr`` / 1.2,
    ``ret_pct`` = ``r_atr`` * 0.8; holding times uniform in ``hold``, per profile.

    >>> df = synthetic_outcomes(n=3)
    >>> len(df), df["entry_id"].nunique(), sorted(df.columns)[:3]
    (21, 3, ['entry_id', 'entry_time', 'exit_reason'])
    """
    m = _SYN_MEANS if means is None else means
    rng = np.random.default_rng(seed)
    regimes = list(m)
    profiles = list(next(iter(m.values())))
    t0 = to_utc_timestamp(start)
    step = pd.Timedelta(spacing)
    lo, hi = pd.Timedelta(hold[0]), pd.Timedelta(hold[1])
    rows: list[dict[str, Any]] = []
    for e in range(n):
        regime = regimes[int(rng.integers(len(regimes)))]
        sig = t0 + e * step
        for p in profiles:
            r = float(rng.normal(m[regime][p], noise))
            held = lo + (hi - lo) * float(rng.random())
            rows.append({
                "entry_id": e, "pair": pairs[e % len(pairs)], "side": "long",
                "signal_time": sig, "entry_time": sig, "regime": regime, "profile": p,
                "r_atr": r, "r_risk": r / 1.2, "ret_pct": 0.8 * r,
                "exit_time": sig + held, "exit_reason": "tp" if r > 0 else "sl",
            })
    return pd.DataFrame(rows)
