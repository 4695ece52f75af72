"""Gaussian Thompson sampling on the mean reward.

Each arm's mean has a normal prior ``N(prior_mean, prior_var)``; rewards are treated as normal
with the arm's sample variance (at least ``min_var``). The posterior is sampled once per arm
and the largest sample wins. The probability of the choice is estimated with
``propensity_samples`` extra posterior draws (same seeded RNG, so it stays reproducible).

>>> from random import Random
>>> stats = {"a": ArmStats(count=40, mean=2.0, variance=1.0),
...          "b": ArmStats(count=40, mean=-1.0, variance=1.0)}
>>> pull = GaussianThompson().pull(["a", "b"], stats, Random(3), fallback="b")
>>> pull.arm, pull.probability, pull.explored
('a', 1.0, False)
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from random import Random

from freqtrade_metastrategy.errors import ConfigError
from freqtrade_metastrategy.policies.base import ArmStats, Policy, Pull, greedy_arm, stat


class GaussianThompson(Policy):
    name = "thompson"

    def __init__(
        self,
        *,
        prior_mean: float = 0.0,
        prior_var: float = 1.0,
        min_var: float = 0.25,
        propensity_samples: int = 200,
    ) -> None:
        if not (math.isfinite(prior_var) and prior_var > 0):
            raise ConfigError("metastrategy.thompson_prior_var", f"must be > 0, got {prior_var!r}")
        if not (math.isfinite(min_var) and min_var > 0):
            raise ConfigError("metastrategy.thompson_min_var", f"must be > 0, got {min_var!r}")
        if propensity_samples < 0:
            raise ConfigError("metastrategy.propensity_samples", "must be >= 0")
        self.prior_mean = float(prior_mean)
        self.prior_var = float(prior_var)
        self.min_var = float(min_var)
        self.propensity_samples = int(propensity_samples)

    def params(self) -> dict[str, float | str | None]:
        return {"prior_mean": self.prior_mean, "prior_var": self.prior_var,
                "min_var": self.min_var}

    def posterior(self, s: ArmStats) -> tuple[float, float]:
        """(mean, sd) of the posterior of the arm's mean reward."""
        if not s.known:
            return self.prior_mean, math.sqrt(self.prior_var)
        noise = max(s.variance, self.min_var)
        precision = 1.0 / self.prior_var + s.count / noise
        mean = (self.prior_mean / self.prior_var + s.count * s.mean / noise) / precision
        return mean, math.sqrt(1.0 / precision)

    def _draw(self, arms: Sequence[str], post: Mapping[str, tuple[float, float]],
              rng: Random, fallback: str) -> str:
        samples = {a: rng.gauss(*post[a]) for a in arms}
        return greedy_arm(arms, samples, fallback)

    def pull(
        self,
        arms: Sequence[str],
        stats: Mapping[str, ArmStats],
        rng: Random,
        *,
        fallback: str,
    ) -> Pull:
        if not any(stat(stats, a).known for a in arms):
            return Pull(fallback, 1.0, False, True, "heuristic (no arm has enough data)")
        post = {a: self.posterior(stat(stats, a)) for a in arms}
        arm = self._draw(arms, post, rng, fallback)
        if self.propensity_samples:
            hits = sum(self._draw(arms, post, rng, fallback) == arm
                       for _ in range(self.propensity_samples))
            prob = max(hits, 1) / self.propensity_samples
        else:
            prob = float("nan")
        best = greedy_arm(arms, {a: post[a][0] for a in arms}, fallback)
        return Pull(arm, prob, arm != best, False,
                    f"thompson: posterior mean={post[arm][0]:+.3f}R sd={post[arm][1]:.3f}")
