"""UCB1 on the mean reward: ``mean + c * sqrt(2 ln N / n)``.

Deterministic: the probability of its choice is 1. Once one candidate has data, profiles
without data are tried first (the heuristic profile before the others). ``c`` is in R, since
rewards are not bounded to [0, 1].

>>> from random import Random
>>> stats = {"a": ProfileStats(count=50, mean=0.5), "b": ProfileStats(count=2, mean=0.3)}
>>> pull = UCB1(c=1.0).pull(["a", "b"], stats, Random(0), fallback="a")
>>> pull.profile_id, pull.probability, pull.explored
('b', 1.0, True)
>>> UCB1().pull(["a", "b", "c"], {"a": ProfileStats(count=5)}, Random(0), fallback="a")
Pull(profile_id='b', probability=1.0, explored=True, heuristic=False,
     reason='ucb1: trying a profile without data')
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from random import Random

from freqtrade_metastrategy.errors import ConfigError
from freqtrade_metastrategy.policies.base import Policy, ProfileStats, Pull, greedy_profile


class UCB1(Policy):
    name = "ucb1"

    def __init__(self, c: float = 1.0) -> None:
        if not (math.isfinite(c) and c >= 0):
            raise ConfigError("metastrategy.ucb_c", f"must be >= 0, got {c!r}")
        self.c = float(c)

    def params(self) -> dict[str, float | str | None]:
        return {"c": self.c}

    def _pull(self, profile_ids: Sequence[str], stats: Mapping[str, ProfileStats],
              rng: Random, *, fallback: str) -> Pull:
        untried = [p for p in profile_ids if not stats[p].known]
        if untried:
            pick = fallback if fallback in untried else untried[0]
            return Pull(pick, 1.0, True, False, "ucb1: trying a profile without data")
        log_n = math.log(sum(s.count for s in stats.values()))
        means = {p: stats[p].mean for p in profile_ids}
        bound = {p: means[p] + self.c * math.sqrt(2 * log_n / stats[p].count)
                 for p in profile_ids}
        pick = greedy_profile(profile_ids, bound, fallback)
        best_mean = greedy_profile(profile_ids, means, fallback)
        return Pull(pick, 1.0, pick != best_mean, False,
                    f"ucb1: mean={means[pick]:+.3f}R, bound={bound[pick]:+.3f}R")
