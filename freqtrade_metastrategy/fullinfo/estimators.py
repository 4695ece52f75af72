"""Estimators with memory: the expected reward of every profile from the signals released so far.

Full-information learning sees one reward *per profile* for every signal (every profile is
simulated on every signal), so the statistics are one vector per estimator, updated with one
vector of rewards at a time. Three kinds, chosen by name:

* ``mean`` -- the running mean: every released signal weighs the same, forever;
* ``discounted`` -- a discounted mean whose weights halve every ``half_life`` signals:
  ``s <- d*s + r``, ``w <- d*w + 1``, estimate ``s / w`` with ``d = 0.5 ** (1 / half_life)``;
* ``ema`` -- the seeds' exponential moving average: the first reward, then
  ``e <- (1 - alpha) * e + alpha * r``.

:attr:`ProfileMeans.decay` is the weight an old signal keeps at each new one (1 for ``mean``,
``d`` for ``discounted``, ``1 - alpha`` for ``ema``): the contextual model applies the same
memory to its sufficient statistics (:mod:`.ridge`).

>>> m = ProfileMeans(2, "discounted", half_life=1.0)
>>> m.update(np.array([1.0, -1.0])); m.update(np.array([4.0, -1.0]))
>>> m.values().tolist(), m.count     # (0.5*1 + 4) / (0.5 + 1) = 3
([3.0, -1.0], 2)
>>> e = ProfileMeans(1, "ema", alpha=0.25)
>>> e.update(np.array([2.0])); e.update(np.array([-1.0]))
>>> e.values().tolist()              # the seeds' EMA: 0.75 * 2 + 0.25 * -1
[1.25]
>>> r = ProfileMeans.from_dict(e.to_dict())
>>> r.values().tolist(), r.count, r.kind
([1.25], 2, 'ema')
"""

from __future__ import annotations

import math
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from freqtrade_metastrategy.errors import ConfigError

FloatArray = npt.NDArray[np.float64]

#: The estimator names (``metastrategy.estimator``).
ESTIMATORS: Final[tuple[str, ...]] = ("mean", "discounted", "ema")


def decay_of(kind: str, *, half_life: float | None = None, alpha: float | None = None) -> float:
    """The weight an old signal keeps at each new one (see module doc).

    >>> decay_of("mean"), decay_of("discounted", half_life=2.0) ** 2, decay_of("ema", alpha=0.2)
    (1.0, 0.5000000000000001, 0.8)
    """
    if kind == "mean":
        return 1.0
    if kind == "discounted":
        if half_life is None or not (math.isfinite(half_life) and half_life > 0):
            raise ConfigError("metastrategy.half_life",
                              f"must be a number of signals > 0, got {half_life!r}")
        return float(0.5 ** (1.0 / half_life))
    if kind == "ema":
        if alpha is None or not (0.0 < alpha <= 1.0):
            raise ConfigError("metastrategy.alpha", f"must be in (0, 1], got {alpha!r}")
        return 1.0 - float(alpha)
    raise ConfigError("metastrategy.estimator",
                      f"unknown estimator {kind!r}; allowed: {', '.join(ESTIMATORS)}")


class ProfileMeans:
    """One estimate per profile (see module doc); ``values()`` is NaN before any update."""

    def __init__(self, k: int, kind: str, *, half_life: float | None = None,
                 alpha: float | None = None) -> None:
        self.kind = kind
        self.half_life = half_life
        self.alpha = alpha
        self.decay = decay_of(kind, half_life=half_life, alpha=alpha)
        self.s: FloatArray = np.zeros(k)
        self.w = 0.0
        self.count = 0

    def update(self, rewards: FloatArray) -> None:
        """Apply one signal's rewards (one per profile)."""
        r = np.asarray(rewards, dtype=np.float64)
        if self.kind == "ema":
            a = 1.0 - self.decay
            self.s = r.copy() if self.count == 0 else self.decay * self.s + a * r
            self.w = 1.0
        else:
            self.s = self.decay * self.s + r
            self.w = self.decay * self.w + 1.0
        self.count += 1

    def values(self) -> FloatArray:
        """The estimates (NaN while nothing was applied)."""
        if self.count == 0:
            return np.full(len(self.s), np.nan)
        out: FloatArray = self.s / self.w
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready state (floats exact through ``repr``)."""
        return {"kind": self.kind, "half_life": self.half_life, "alpha": self.alpha,
                "s": [float(x) for x in self.s], "w": self.w, "count": self.count}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ProfileMeans:
        out = cls(len(data["s"]), str(data["kind"]), half_life=data.get("half_life"),
                  alpha=data.get("alpha"))
        out.s = np.asarray(data["s"], dtype=np.float64)
        out.w = float(data["w"])
        out.count = int(data["count"])
        return out
