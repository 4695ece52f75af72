"""``timerange``: the one parsing / validation rule for time ranges, with exact results."""

from __future__ import annotations

import re
import subprocess
import sys
from datetime import UTC, datetime

import pandas as pd
import pytest

from freqtrade_metastrategy.errors import EvaluationError, MetaStrategyError
from freqtrade_metastrategy.timerange import (
    TimerangeError,
    parse_timerange,
    to_utc_timestamp,
    utc_range,
)


def ts(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="UTC")


@pytest.mark.parametrize(
    ("text", "start", "end"),
    [
        ("20230101-20230701", "2023-01-01 00:00", "2023-07-01 00:00"),
        ("20230101T0930-20230102T1745", "2023-01-01 09:30", "2023-01-02 17:45"),
        ("20230101T093015-20230101T093016", "2023-01-01 09:30:15", "2023-01-01 09:30:16"),
        ("1672531200-1688169600", "2023-01-01 00:00", "2023-07-01 00:00"),
        ("1672531200999-1688169600000", "2023-01-01 00:00", "2023-07-01 00:00"),  # ms cut to s
        ("20230101-1688169600", "2023-01-01 00:00", "2023-07-01 00:00"),  # forms mix per end
    ],
)
def test_parse_timerange(text: str, start: str, end: str) -> None:
    assert parse_timerange(text) == (ts(start), ts(end))


def test_parse_timerange_gives_utc_timestamps() -> None:
    lo, hi = parse_timerange("20240229-20240301")
    assert repr(lo) == "Timestamp('2024-02-29 00:00:00+0000', tz='UTC')"
    assert repr(hi) == "Timestamp('2024-03-01 00:00:00+0000', tz='UTC')"
    assert hi - lo == pd.Timedelta("1D")


@pytest.mark.parametrize(
    "text",
    ["", "20230101", "20230101-", "-20230701", "2023-01-01", "20230101-20230701-20240101",
     "2023010-20230701", "20230101T09-20230701", "20231301-20240101", "20230230-20230301",
     "123456789-1688169600", " 20230101-20230701", "20230101 - 20230701", "abc-def"],
)
def test_parse_timerange_rejects_bad_syntax(text: str) -> None:
    with pytest.raises(TimerangeError) as info:
        parse_timerange(text)
    assert str(info.value) == f"timerange {text!r}: expected YYYYMMDD-YYYYMMDD"


def test_parse_timerange_names_the_field_and_checks_the_order() -> None:
    with pytest.raises(TimerangeError) as info:
        parse_timerange("x", "--train")
    assert str(info.value) == "--train 'x': expected YYYYMMDD-YYYYMMDD"
    for text in ("20230701-20230101", "20230101-20230101"):
        with pytest.raises(TimerangeError) as info:
            parse_timerange(text)
        lo, hi = text.split("-")
        assert str(info.value) == (
            f"timerange {text!r}: start {pd.Timestamp(lo, tz='UTC')} must be before end "
            f"{pd.Timestamp(hi, tz='UTC')}"
        )
    assert str(info.value) == ("timerange '20230101-20230101': start 2023-01-01 00:00:00+00:00 "
                               "must be before end 2023-01-01 00:00:00+00:00")


def test_utc_range() -> None:
    assert utc_range(("2024-01-01", "2024-03-01"), "train") == (ts("2024-01-01"), ts("2024-03-01"))
    berlin = pd.Timestamp("2024-01-01 01:00", tz="Europe/Berlin")
    assert utc_range((berlin, datetime(2024, 1, 2, tzinfo=UTC)), "test") == (
        ts("2024-01-01 00:00"), ts("2024-01-02 00:00"))
    assert utc_range((ts("2024-01-01"), "2024-01-01 00:00:01"), "x")[1] == ts(
        "2024-01-01 00:00:01")


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (("2024-01-01",), "train: expected a (start, end) pair, got ('2024-01-01',)"),
        (None, "train: expected a (start, end) pair, got None"),
        (("2024-02-01", "2024-01-01"), "train: start 2024-02-01 00:00:00+00:00 must be before "
                                       "end 2024-01-01 00:00:00+00:00"),
        ((None, "2024-01-01"), "train start: missing time (NaT)"),
        (("2024-01-01", pd.NaT), "train end: missing time (NaT)"),
    ],
)
def test_utc_range_errors(value: object, message: str) -> None:
    with pytest.raises(TimerangeError, match=f"^{re.escape(message)}$"):
        utc_range(value, "train")  # type: ignore[arg-type]


def test_to_utc_timestamp() -> None:
    assert to_utc_timestamp("2024-01-02") == ts("2024-01-02")
    assert to_utc_timestamp(pd.Timestamp("2024-01-02 01:00", tz="Europe/Berlin")) == ts(
        "2024-01-02 00:00")
    assert to_utc_timestamp(datetime(2024, 1, 2)).tzinfo is not None
    with pytest.raises(TimerangeError, match=r"^when: not a time: 'soon' \("):
        to_utc_timestamp("soon", "when")
    with pytest.raises(TimerangeError, match=r"^time: missing time \(NaT\)$"):
        to_utc_timestamp(None)


def test_the_error_is_an_evaluation_error() -> None:
    """``except EvaluationError`` (walk-forward ranges), ``MetaStrategyError`` (the command
    line's ``error: ...``, exit 2) and ``ValueError`` all catch it."""
    assert issubclass(TimerangeError, EvaluationError)
    assert issubclass(TimerangeError, MetaStrategyError)
    assert issubclass(TimerangeError, ValueError)


def test_the_module_never_imports_freqtrade() -> None:
    code = ("import sys, freqtrade_metastrategy.timerange; "
            "bad = [m for m in sys.modules if m == 'freqtrade' or m.startswith('freqtrade.')]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)
