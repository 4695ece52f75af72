"""Epsilon-greedy on the EMA of rewards (the seeds' policy).

With probability ``epsilon_t`` a uniformly random candidate is explored; otherwise the
candidate with the highest value (EMA by default) is exploited. Profiles without data are
valued at ``unknown_value`` (0 R: "a plan never tried is assumed to break even"). If no
candidate has data, the heuristic profile is the exploit choice (and epsilon still explores).
``epsilon_t = max(min_epsilon, epsilon * exp(-decay * n))`` with ``n`` the number of rewards
behind the candidates' estimates (persisted, so the schedule survives restarts).
``exploit_min_q`` reproduces the seeds' rule "exploit only if the best Q >= 0.40 R, else the
heuristic" (off by default).

>>> from random import Random
>>> p = EpsilonGreedy(epsilon=0.1)
>>> stats = {"a": ProfileStats(count=6, ema=0.5, mean=0.4),
...          "b": ProfileStats(count=6, ema=1.2, mean=1.0)}
>>> pull = p.pull(["a", "b"], stats, Random(1), fallback="a")
>>> pull.profile_id, round(pull.probability, 3), pull.explored
('b', 0.95, False)

Without data the heuristic profile (here ``b``) is the greedy choice; an exploration may pick
it too (then it is reported as explored, with the same probability):

>>> rng = Random(0)
>>> [(q.profile_id, q.probability, q.explored, q.heuristic)
...  for q in (EpsilonGreedy(0.5).pull(["a", "b"], {}, rng, fallback="b") for _ in range(4))]
[('b', 0.75, False, True), ('b', 0.75, False, True), ('b', 0.75, True, False),
 ('b', 0.75, False, True)]
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import replace
from random import Random

from freqtrade_metastrategy.errors import ConfigError
from freqtrade_metastrategy.policies.base import (
    Policy,
    ProfileStats,
    Pull,
    greedy_profile,
    heuristic_pull,
)


class EpsilonGreedy(Policy):
    name = "epsilon_greedy"

    def __init__(
        self,
        epsilon: float = 0.10,
        *,
        decay: float = 0.0,
        min_epsilon: float = 0.0,
        value: str = "ema",
        unknown_value: float = 0.0,
        exploit_min_q: float | None = None,
    ) -> None:
        if not 0.0 <= epsilon <= 1.0:
            raise ConfigError("metastrategy.epsilon", f"must be in [0, 1], got {epsilon!r}")
        if not (math.isfinite(decay) and decay >= 0.0):
            raise ConfigError("metastrategy.epsilon_decay", f"must be >= 0, got {decay!r}")
        if not 0.0 <= min_epsilon <= epsilon:
            raise ConfigError(
                "metastrategy.min_epsilon",
                f"must be in [0, epsilon={epsilon}], got {min_epsilon!r}",
            )
        if value not in ("ema", "mean"):
            raise ConfigError("metastrategy.value", f"must be 'ema' or 'mean', got {value!r}")
        self.epsilon = float(epsilon)
        self.decay = float(decay)
        self.min_epsilon = float(min_epsilon)
        self.value = value
        self.unknown_value = float(unknown_value)
        self.exploit_min_q = exploit_min_q

    def params(self) -> dict[str, float | str | None]:
        return {
            "epsilon": self.epsilon,
            "decay": self.decay,
            "min_epsilon": self.min_epsilon,
            "value": self.value,
            "exploit_min_q": self.exploit_min_q,
        }

    def current_epsilon(self, experience: int) -> float:
        """``epsilon_t`` after ``experience`` rewards.

        >>> round(EpsilonGreedy(0.2, decay=0.01, min_epsilon=0.05).current_epsilon(100), 4)
        0.0736
        """
        return max(self.min_epsilon, self.epsilon * math.exp(-self.decay * experience))

    def _value(self, s: ProfileStats) -> float:
        if not s.known:
            return self.unknown_value
        return s.ema if self.value == "ema" else s.mean

    def _pull(self, profile_ids: Sequence[str], stats: Mapping[str, ProfileStats],
              rng: Random, *, fallback: str) -> Pull:
        eps = self.current_epsilon(sum(s.count for s in stats.values()))
        values = {p: self._value(stats[p]) for p in profile_ids}
        target = greedy_profile(profile_ids, values, fallback)
        if self.exploit_min_q is not None and values[target] < self.exploit_min_q:
            greedy = heuristic_pull(
                fallback, f"heuristic (best {self.value} < exploit_min_q={self.exploit_min_q}R)"
            )
        else:
            greedy = Pull(target, 1.0, False, False,
                          f"exploit: highest {self.value}={values[target]:+.3f}R")
        return self._explore_or(greedy, profile_ids, eps, rng)

    def _pull_without_data(self, profile_ids: Sequence[str], stats: Mapping[str, ProfileStats],
                           rng: Random, *, fallback: str) -> Pull:
        """The heuristic profile is the greedy choice, and epsilon still explores."""
        return self._explore_or(heuristic_pull(fallback), profile_ids, self.current_epsilon(0),
                                rng)

    @staticmethod
    def _explore_or(greedy: Pull, profile_ids: Sequence[str], eps: float, rng: Random) -> Pull:
        """With probability ``eps`` a uniformly random candidate, else ``greedy``."""
        k = len(profile_ids)
        if rng.random() < eps:
            pick = profile_ids[rng.randrange(k)]
            prob = eps / k + (1.0 - eps) * (pick == greedy.profile_id)
            return Pull(pick, prob, True, False, f"explore (epsilon={eps:.3f}): random pick")
        return replace(greedy, probability=eps / k + (1.0 - eps))
