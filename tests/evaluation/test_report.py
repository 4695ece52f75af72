"""evaluation/report.py: the tables and JSON of the ``evaluate`` command, on a seeded replay of
a synthetic outcome table (every number checked against the replay it renders)."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from freqtrade_metastrategy.evaluation.metrics import compute_metrics
from freqtrade_metastrategy.evaluation.outcomes import synthetic_outcomes
from freqtrade_metastrategy.evaluation.replay import replay
from freqtrade_metastrategy.evaluation.report import (
    json_safe,
    markdown_table,
    num,
    q_history,
    summary_rows,
    year_rows,
)


@pytest.fixture(scope="module")
def result():  # type: ignore[no-untyped-def]
    return replay(synthetic_outcomes(300, seed=3), seed=7)


def test_summary_rows_show_each_policys_total(result) -> None:  # type: ignore[no-untyped-def]
    m = compute_metrics(result)
    header, rows = summary_rows(m)
    assert header[0] == "policy" and len(rows) == len(m.summary)
    totals = {row[0]: row for row in rows}
    for policy in result.policies:
        if policy in totals:
            total = float(np.sum(result.rewards(policy)))
            assert num(total) in totals[policy], (policy, totals[policy])


def test_year_rows_split_the_totals_by_calendar_year(result) -> None:  # type: ignore[no-untyped-def]
    header, rows = year_rows(compute_metrics(result))
    assert header[0] == "policy" and len(header) >= 2 and rows


def test_markdown_table_and_number_format() -> None:
    assert markdown_table(["a", "b"], [["x", "1"], ["y", "2"]]).splitlines() == [
        "| a | b |", "|---|---:|", "| x | 1 |", "| y | 2 |"]
    assert num(1.234) == "+1.23" and num(None) == "-"


def test_json_safe_makes_everything_serialisable() -> None:
    doc = json_safe({"a": np.float64(1.5), "b": [np.int64(2), math.nan, math.inf],
                     "t": pd.Timestamp("2024-01-01", tz="UTC"), 3: (np.bool_(True),)})
    assert doc == {"a": 1.5, "b": [2, None, None], "t": "2024-01-01T00:00:00+00:00",
                   "3": [True]}
    json.dumps(doc, allow_nan=False)


def test_q_history_replays_the_ema_of_the_settled_rewards(result) -> None:  # type: ignore[no-untyped-def]
    learner = "eps_greedy"  # the seeds' learner, alpha 0.2
    hist = q_history(result, learner, alpha=0.2)
    assert list(hist.columns) == ["time", "regime", "profile", "q"]
    decided = result.decisions(learner)
    assert len(hist) == len(decided)
    first = hist.groupby(["regime", "profile"]).head(1)
    firsts = decided.sort_values(["exit_time", "signal_time"], kind="stable").groupby(
        [decided["regime"].astype(str), decided["profile"].astype(str)]).head(1)
    assert sorted(first["q"].round(12)) == sorted(firsts["reward"].astype(float).round(12))
