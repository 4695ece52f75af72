"""Uniform random choice among the candidates (a baseline, and the evaluation's control).

>>> from random import Random
>>> pull = UniformRandom().pull(["a", "b", "c", "d"], {}, Random(0), fallback="a")
>>> pull.arm, pull.probability
('d', 0.25)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from random import Random

from freqtrade_metastrategy.policies.base import ArmStats, Policy, Pull


class UniformRandom(Policy):
    name = "random"

    def pull(
        self,
        arms: Sequence[str],
        stats: Mapping[str, ArmStats],
        rng: Random,
        *,
        fallback: str,
    ) -> Pull:
        arm = arms[rng.randrange(len(arms))]
        return Pull(arm, 1.0 / len(arms), True, False, "random pick")
