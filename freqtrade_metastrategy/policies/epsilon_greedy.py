"""Epsilon-greedy on the EMA of rewards (the seeds' policy).

With probability ``epsilon_t`` a uniformly random candidate is explored; otherwise the
candidate with the highest value (EMA by default) is exploited. Arms without data are valued
at ``unknown_value`` (0 R: "a plan never tried is assumed to break even"). If no candidate has
data, the heuristic arm is the exploit choice. ``epsilon_t = max(min_epsilon,
epsilon * exp(-decay * n))`` with ``n`` the number of rewards behind the candidates' estimates
(persisted, so the schedule survives restarts). ``exploit_min_q`` reproduces the seeds' rule
"exploit only if the best Q >= 0.40 R, else the heuristic" (off by default).

>>> from random import Random
>>> p = EpsilonGreedy(epsilon=0.1)
>>> stats = {"a": ArmStats(count=6, ema=0.5, mean=0.4), "b": ArmStats(count=6, ema=1.2, mean=1.0)}
>>> pull = p.pull(["a", "b"], stats, Random(1), fallback="a")
>>> pull.arm, round(pull.probability, 3), pull.explored
('b', 0.95, False)
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from random import Random

from freqtrade_metastrategy.errors import ConfigError
from freqtrade_metastrategy.policies.base import ArmStats, Policy, Pull, greedy_arm, stat


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

    def _value(self, s: ArmStats) -> float:
        if not s.known:
            return self.unknown_value
        return s.ema if self.value == "ema" else s.mean

    def pull(
        self,
        arms: Sequence[str],
        stats: Mapping[str, ArmStats],
        rng: Random,
        *,
        fallback: str,
    ) -> Pull:
        known = [a for a in arms if stat(stats, a).known]
        eps = self.current_epsilon(sum(stat(stats, a).count for a in arms))
        values = {a: self._value(stat(stats, a)) for a in arms}
        if not known:
            target, heuristic = fallback, True
            why = "heuristic (no arm has enough data)"
        else:
            target = greedy_arm(arms, values, fallback)
            heuristic = False
            why = f"exploit: highest {self.value}={values[target]:+.3f}R"
            if self.exploit_min_q is not None and values[target] < self.exploit_min_q:
                target, heuristic = fallback, True
                why = f"heuristic (best {self.value} < exploit_min_q={self.exploit_min_q}R)"
        k = len(arms)
        draw = rng.random()
        if draw < eps:
            arm = arms[rng.randrange(k)]
            prob = eps / k + (1.0 - eps) * (arm == target)
            return Pull(arm, prob, True, False, f"explore (epsilon={eps:.3f}): random pick")
        return Pull(target, eps / k + (1.0 - eps), False, heuristic, why)
