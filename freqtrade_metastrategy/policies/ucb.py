"""UCB1 on the mean reward: ``mean + c * sqrt(2 ln N / n)``.

Deterministic: the probability of its choice is 1. Arms without data are tried first (the
heuristic arm before the others). ``c`` is in R, since rewards are not bounded to [0, 1].

>>> from random import Random
>>> stats = {"a": ArmStats(count=50, mean=0.5), "b": ArmStats(count=2, mean=0.3)}
>>> pull = UCB1(c=1.0).pull(["a", "b"], stats, Random(0), fallback="a")
>>> pull.arm, pull.probability, pull.explored
('b', 1.0, True)
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from random import Random

from freqtrade_metastrategy.errors import ConfigError
from freqtrade_metastrategy.policies.base import ArmStats, Policy, Pull, greedy_arm, stat


class UCB1(Policy):
    name = "ucb1"

    def __init__(self, c: float = 1.0) -> None:
        if not (math.isfinite(c) and c >= 0):
            raise ConfigError("metastrategy.ucb_c", f"must be >= 0, got {c!r}")
        self.c = float(c)

    def params(self) -> dict[str, float | str | None]:
        return {"c": self.c}

    def pull(
        self,
        arms: Sequence[str],
        stats: Mapping[str, ArmStats],
        rng: Random,
        *,
        fallback: str,
    ) -> Pull:
        known = [a for a in arms if stat(stats, a).known]
        if not known:
            return Pull(fallback, 1.0, False, True, "heuristic (no arm has enough data)")
        unknown = [a for a in arms if a not in known]
        if unknown:
            arm = fallback if fallback in unknown else unknown[0]
            return Pull(arm, 1.0, True, False, "ucb1: trying an arm without data")
        total = sum(stat(stats, a).count for a in arms)
        log_n = math.log(total)
        ucb = {a: stat(stats, a).mean + self.c * math.sqrt(2 * log_n / stat(stats, a).count)
               for a in arms}
        means = {a: stat(stats, a).mean for a in arms}
        arm = greedy_arm(arms, ucb, fallback)
        best_mean = greedy_arm(arms, means, fallback)
        return Pull(arm, 1.0, arm != best_mean, False,
                    f"ucb1: mean={means[arm]:+.3f}R, bound={ucb[arm]:+.3f}R")
