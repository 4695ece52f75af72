"""Q-table entry arithmetic and pooling."""

from __future__ import annotations

import math
import statistics
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from freqtrade_metastrategy.errors import MetaStrategyError
from freqtrade_metastrategy.qtable import QEntry, pool

finite = st.floats(min_value=-50, max_value=50, allow_nan=False)


@given(st.lists(finite, min_size=1, max_size=60), st.floats(min_value=0.01, max_value=1.0))
def test_update_matches_reference(rewards: list[float], alpha: float) -> None:
    e = QEntry.empty("S", "trend_up", "scalp")
    ema = None
    for r in rewards:
        e = e.updated(r, alpha=alpha)
        ema = r if ema is None else (1 - alpha) * ema + alpha * r
    assert e.count == len(rewards)
    assert e.ema_reward == ema
    assert e.total_r == pytest.approx(math.fsum(rewards), abs=1e-9)
    assert e.avg_reward == pytest.approx(statistics.fmean(rewards), abs=1e-9)
    assert e.win_count == sum(r > 0 for r in rewards)
    assert e.win_count + e.loss_count == e.count
    if len(rewards) > 1:
        assert e.variance == pytest.approx(statistics.variance(rewards), rel=1e-6, abs=1e-6)


def test_first_reward_initialises_ema_even_when_zero() -> None:
    e = QEntry.empty("S", "r", "a").updated(0.0, alpha=0.2).updated(1.0, alpha=0.2)
    assert e.ema_reward == pytest.approx(0.2)  # not restarted at 1.0 (river's EWMean pitfall)


def test_time_comes_from_the_caller_only() -> None:
    e = QEntry.empty("S", "r", "a").updated(1.0, alpha=0.2)
    assert e.last_update is None
    t = datetime(2024, 1, 2, 3, tzinfo=UTC)
    e = e.updated(1.0, alpha=0.2, at=t).updated(2.0, alpha=0.2)
    assert e.last_update == t


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf"), "x", None])
def test_non_finite_reward_rejected(bad: object) -> None:
    with pytest.raises(MetaStrategyError, match="reward"):
        QEntry.empty("S", "r", "a").updated(bad, alpha=0.2)  # type: ignore[arg-type]


def test_dict_round_trip_is_exact() -> None:
    e = QEntry.empty("S", "r", "a").updated(0.1 + 0.2, alpha=0.3,
                                             at=datetime(2024, 5, 1, tzinfo=UTC))
    assert QEntry.from_dict(e.to_dict()) == e


def test_pool_weights_by_count_and_skips_empty() -> None:
    a = QEntry.empty("A", "r", "x").updated(1.0, alpha=0.2)
    b = QEntry.empty("B", "r", "x").updated(2.0, alpha=0.2).updated(4.0, alpha=0.2)
    c = QEntry.empty("C", "r", "y")
    pooled = pool([a, b, c])
    assert set(pooled) == {"x"}
    p = pooled["x"]
    assert p.count == 3
    assert p.ema_reward == pytest.approx((1.0 + 2 * b.ema_reward) / 3)
    assert p.avg_reward == pytest.approx(7.0 / 3)
    assert p.variance == pytest.approx(statistics.variance([1.0, 2.0, 4.0]))
