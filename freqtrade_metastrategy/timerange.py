"""Time ranges: the one rule for parsing and validating a ``[start, end)`` range (core).

A range is a pair of tz-aware UTC timestamps with ``start < end``; naive times are UTC.
Text form: Freqtrade's ``--timerange`` with both ends given, each end ``YYYYMMDD``,
``YYYYMMDDTHHMM``, ``YYYYMMDDTHHMMSS`` or epoch seconds (10 digits) / milliseconds (13).
Errors are :class:`TimerangeError` and name the field. Never imports Freqtrade.

>>> parse_timerange("20230101-20230701T1200")
(Timestamp('2023-01-01 00:00:00+0000', tz='UTC'),
 Timestamp('2023-07-01 12:00:00+0000', tz='UTC'))
>>> utc_range(("2024-01-01", "2024-03-01"), "train")[1]
Timestamp('2024-03-01 00:00:00+0000', tz='UTC')
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Final, TypeAlias

import pandas as pd

from freqtrade_metastrategy.errors import EvaluationError

__all__ = ["TimerangeError", "UtcRange", "parse_timerange", "to_utc_timestamp", "utc_range"]

#: ``(start, end)``, both tz-aware UTC, ``start < end``.
UtcRange: TypeAlias = tuple[pd.Timestamp, pd.Timestamp]

#: One end of a text timerange: (pattern, strptime format or None for epoch digits), as
#: Freqtrade's ``TimeRange.parse_timerange`` accepts them.
_END_FORMATS: Final[tuple[tuple[re.Pattern[str], str | None], ...]] = (
    (re.compile(r"\d{8}"), "%Y%m%d"),
    (re.compile(r"\d{8}T\d{4}"), "%Y%m%dT%H%M"),
    (re.compile(r"\d{8}T\d{6}"), "%Y%m%dT%H%M%S"),
    (re.compile(r"\d{10}"), None),
    (re.compile(r"\d{13}"), None),
)


class TimerangeError(EvaluationError):
    """A time range is unusable; the message names the field and the expected form.

    An :class:`~freqtrade_metastrategy.errors.EvaluationError` (so a ``MetaStrategyError`` and
    a ``ValueError``): ranges are evaluation input.
    """


def to_utc_timestamp(value: object, what: str = "time") -> pd.Timestamp:
    """``value`` as a tz-aware UTC Timestamp; a naive value is taken to be UTC.

    >>> to_utc_timestamp("2024-01-02 03:00")
    Timestamp('2024-01-02 03:00:00+0000', tz='UTC')
    """
    try:
        ts = pd.Timestamp(value)  # type: ignore[arg-type]
    except (TypeError, ValueError) as exc:
        raise TimerangeError(f"{what}: not a time: {value!r} ({exc})") from None
    if pd.isna(ts):
        raise TimerangeError(f"{what}: missing time (NaT)")
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def utc_range(value: tuple[object, object], what: str) -> UtcRange:
    """A ``(start, end)`` pair of anything :func:`to_utc_timestamp` takes, checked.

    >>> utc_range(("2024-02-01", "2024-01-01"), "train")
    Traceback (most recent call last):
    ...
    freqtrade_metastrategy.timerange.TimerangeError: train: start 2024-02-01 00:00:00+00:00
    must be before end 2024-01-01 00:00:00+00:00
    """
    try:
        start, end = value
    except (TypeError, ValueError):
        raise TimerangeError(f"{what}: expected a (start, end) pair, got {value!r}") from None
    lo = to_utc_timestamp(start, f"{what} start")
    hi = to_utc_timestamp(end, f"{what} end")
    if not lo < hi:
        raise TimerangeError(f"{what}: start {lo} must be before end {hi}")
    return lo, hi


def _parse_end(text: str) -> pd.Timestamp:
    """One end of a text timerange; ValueError if it has none of the accepted forms."""
    for pattern, fmt in _END_FORMATS:
        if pattern.fullmatch(text):
            if fmt is None:  # epoch milliseconds are cut to seconds, as Freqtrade does
                seconds = int(text) // 1000 if len(text) == 13 else int(text)
                return pd.Timestamp(seconds, unit="s", tz="UTC")
            return pd.Timestamp(datetime.strptime(text, fmt).replace(tzinfo=UTC))
    raise ValueError(text)


def parse_timerange(text: str, what: str = "timerange") -> UtcRange:
    """``START-END`` (see module doc) as a checked UTC range; ``what`` names the field.

    >>> parse_timerange("1672531200-1688169600000")[1]
    Timestamp('2023-07-01 00:00:00+0000', tz='UTC')
    >>> parse_timerange("20230101-")
    Traceback (most recent call last):
    ...
    freqtrade_metastrategy.timerange.TimerangeError: timerange '20230101-':
    expected YYYYMMDD-YYYYMMDD
    """
    try:
        first, last = text.split("-")
        ends = (_parse_end(first), _parse_end(last))
    except ValueError:
        raise TimerangeError(f"{what} {text!r}: expected YYYYMMDD-YYYYMMDD") from None
    return utc_range(ends, f"{what} {text!r}")
