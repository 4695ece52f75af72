"""Q-table entries: the statistics kept per (symbol, regime, profile) cell and their update rule.

The update rule lives here, as a pure function, so that every store applies exactly the same
arithmetic inside its own transaction. The profile id is stored under the name ``strategy``
(the store's column, :attr:`QEntry.strategy` and the export JSON key): that name is part of
the file and table formats and stays.

>>> e = QEntry.empty("BTC/USDT", "trend_up", "scalp")
>>> e = e.updated(2.0, alpha=0.25)
>>> e = e.updated(-1.0, alpha=0.25)
>>> (e.count, e.ema_reward, e.avg_reward, e.win_count, e.loss_count, e.total_r)
(2, 1.25, 0.5, 1, 1, 1.0)
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from freqtrade_metastrategy.errors import MetaStrategyError

QKey = tuple[str, str, str]
"""(symbol, regime, profile id) -- regime and profile id as their string values."""


def check_reward(reward: float) -> float:
    """Return ``reward`` as a float (``-0.0`` as ``0.0``), or raise if it is not finite.

    >>> check_reward(1)
    1.0
    >>> check_reward(float("nan"))
    Traceback (most recent call last):
    ...
    freqtrade_metastrategy.errors.MetaStrategyError: reward: must be a finite number of R, got nan
    """
    try:
        value = float(reward)
    except (TypeError, ValueError):
        raise MetaStrategyError(
            f"reward: must be a finite number of R, got {reward!r}"
        ) from None
    if not math.isfinite(value):
        raise MetaStrategyError(f"reward: must be a finite number of R, got {value!r}")
    return value + 0.0  # -0.0 -> 0.0: SQL backends drop the sign of a zero


def check_alpha(alpha: float) -> float:
    """Return ``alpha`` if it is a valid EMA weight in (0, 1], else raise."""
    value = float(alpha)
    if not (0.0 < value <= 1.0):
        raise MetaStrategyError(f"alpha: must be in (0, 1], got {alpha!r}")
    return value


@dataclass(frozen=True, slots=True)
class QEntry:
    """Statistics of one (symbol, regime, profile) cell; ``strategy`` is the profile id (its
    persisted name).

    ``ema_reward`` starts at the first reward (not at 0) and then follows
    ``ema <- (1 - alpha) * ema + alpha * reward``. ``avg_reward`` is ``total_r / count``.
    A reward > 0 counts as a win, anything else as a loss (the seeds' rule).
    ``sum_sq_r`` (sum of squared rewards) lets policies estimate the reward variance.
    ``last_update`` is the time the caller passed with the reward (never the wall clock);
    ``None`` if no time was ever given.
    """

    symbol: str
    regime: str
    strategy: str
    count: int = 0
    ema_reward: float = 0.0
    avg_reward: float = 0.0
    win_count: int = 0
    loss_count: int = 0
    total_r: float = 0.0
    sum_sq_r: float = 0.0
    last_reward: float = 0.0
    last_update: datetime | None = None

    @classmethod
    def empty(cls, symbol: str, regime: str, profile_id: str) -> QEntry:
        return cls(symbol=symbol, regime=regime, strategy=profile_id)

    @property
    def key(self) -> QKey:
        return (self.symbol, self.regime, self.strategy)

    @property
    def win_rate(self) -> float:
        """Fraction of rewards > 0 (0.0 for an empty cell)."""
        return self.win_count / self.count if self.count else 0.0

    @property
    def variance(self) -> float:
        """Sample variance of the rewards (0.0 with fewer than two rewards)."""
        if self.count < 2:
            return 0.0
        mean = self.total_r / self.count
        return max(0.0, (self.sum_sq_r - self.count * mean * mean) / (self.count - 1))

    def updated(self, reward: float, *, alpha: float, at: datetime | None = None) -> QEntry:
        """Return the entry after one more reward (this entry is left unchanged)."""
        r = check_reward(reward)
        a = check_alpha(alpha)
        count = self.count + 1
        total = self.total_r + r
        ema = r if self.count == 0 else (1.0 - a) * self.ema_reward + a * r
        return replace(
            self,
            count=count,
            ema_reward=ema,
            avg_reward=total / count,
            win_count=self.win_count + (1 if r > 0 else 0),
            loss_count=self.loss_count + (0 if r > 0 else 1),
            total_r=total,
            sum_sq_r=self.sum_sq_r + r * r,
            last_reward=r,
            last_update=at if at is not None else self.last_update,
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict; floats are kept exact (JSON floats round-trip through ``repr``)."""
        return {
            "symbol": self.symbol,
            "regime": self.regime,
            "strategy": self.strategy,
            "count": self.count,
            "ema_reward": self.ema_reward,
            "avg_reward": self.avg_reward,
            "win_count": self.win_count,
            "loss_count": self.loss_count,
            "total_r": self.total_r,
            "sum_sq_r": self.sum_sq_r,
            "last_reward": self.last_reward,
            "last_update": self.last_update.isoformat() if self.last_update else None,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> QEntry:
        last = data.get("last_update")
        return cls(
            symbol=str(data["symbol"]),
            regime=str(data["regime"]),
            strategy=str(data["strategy"]),
            count=int(data["count"]),
            ema_reward=float(data["ema_reward"]),
            avg_reward=float(data["avg_reward"]),
            win_count=int(data["win_count"]),
            loss_count=int(data["loss_count"]),
            total_r=float(data["total_r"]),
            sum_sq_r=float(data.get("sum_sq_r", 0.0)),
            last_reward=float(data.get("last_reward", 0.0)),
            last_update=datetime.fromisoformat(last) if last else None,
        )


@dataclass(frozen=True, slots=True)
class PooledStats:
    """Statistics of one profile in one regime pooled over every symbol.

    ``ema_reward`` is the count-weighted mean of the symbols' EMAs; ``avg_reward`` and
    ``variance`` are those of all pooled rewards.
    """

    profile_id: str
    count: int
    ema_reward: float
    avg_reward: float
    variance: float


def pool(entries: Iterable[QEntry]) -> dict[str, PooledStats]:
    """Pool entries (typically all symbols of one regime) per profile.

    >>> a = QEntry.empty("A", "trend_up", "scalp").updated(1.0, alpha=0.5)
    >>> b = QEntry.empty("B", "trend_up", "scalp").updated(3.0, alpha=0.5).updated(3.0, alpha=0.5)
    >>> p = pool([a, b])["scalp"]
    >>> (p.count, round(p.ema_reward, 4), round(p.avg_reward, 4))
    (3, 2.3333, 2.3333)
    """
    acc: dict[str, list[float]] = {}
    for e in entries:
        if e.count == 0:
            continue
        n, w_ema, tot, sq = acc.setdefault(e.strategy, [0.0, 0.0, 0.0, 0.0])
        acc[e.strategy] = [n + e.count, w_ema + e.count * e.ema_reward, tot + e.total_r,
                           sq + e.sum_sq_r]
    out: dict[str, PooledStats] = {}
    for profile_id, (n, w_ema, tot, sq) in acc.items():
        mean = tot / n
        var = max(0.0, (sq - n * mean * mean) / (n - 1)) if n > 1 else 0.0
        out[profile_id] = PooledStats(profile_id, int(n), w_ema / n, mean, var)
    return out
