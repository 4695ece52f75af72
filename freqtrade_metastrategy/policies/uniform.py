"""Uniform random choice among the candidates (a baseline, and the evaluation's control).

It ignores the statistics, with or without data.

>>> from random import Random
>>> pull = UniformRandom().pull(["a", "b", "c", "d"], {}, Random(0), fallback="a")
>>> pull.profile_id, pull.probability, pull.heuristic
('d', 0.25, False)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from random import Random

from freqtrade_metastrategy.policies.base import Policy, ProfileStats, Pull


class UniformRandom(Policy):
    name = "random"

    def _pull(self, profile_ids: Sequence[str], stats: Mapping[str, ProfileStats],
              rng: Random, *, fallback: str) -> Pull:
        pick = profile_ids[rng.randrange(len(profile_ids))]
        return Pull(pick, 1.0 / len(profile_ids), True, False, "random pick")

    def _pull_without_data(self, profile_ids: Sequence[str], stats: Mapping[str, ProfileStats],
                           rng: Random, *, fallback: str) -> Pull:
        return self._pull(profile_ids, stats, rng, fallback=fallback)
