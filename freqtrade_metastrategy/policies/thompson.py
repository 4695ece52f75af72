"""Gaussian Thompson sampling on the mean reward.

Each profile's mean has a normal prior ``N(prior_mean, prior_var)``; rewards are treated as
normal with the profile's sample variance (at least ``min_var``). The posterior is sampled once
per profile and the largest sample wins. The probability of the choice is estimated with
``propensity_samples`` extra posterior draws (same seeded RNG, so it stays reproducible).
Until one candidate has data, the heuristic profile decides (the base class's opening).

>>> from random import Random
>>> stats = {"a": ProfileStats(count=40, mean=2.0, variance=1.0),
...          "b": ProfileStats(count=40, mean=-1.0, variance=1.0)}
>>> pull = GaussianThompson().pull(["a", "b"], stats, Random(3), fallback="b")
>>> pull.profile_id, pull.probability, pull.explored
('a', 1.0, False)
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from random import Random

from freqtrade_metastrategy.errors import ConfigError
from freqtrade_metastrategy.policies.base import Policy, ProfileStats, Pull, greedy_profile


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

    def posterior(self, s: ProfileStats) -> tuple[float, float]:
        """(mean, sd) of the posterior of the profile's mean reward."""
        if not s.known:
            return self.prior_mean, math.sqrt(self.prior_var)
        noise = max(s.variance, self.min_var)
        precision = 1.0 / self.prior_var + s.count / noise
        mean = (self.prior_mean / self.prior_var + s.count * s.mean / noise) / precision
        return mean, math.sqrt(1.0 / precision)

    def _draw(self, profile_ids: Sequence[str], post: Mapping[str, tuple[float, float]],
              rng: Random, fallback: str) -> str:
        samples = {p: rng.gauss(*post[p]) for p in profile_ids}
        return greedy_profile(profile_ids, samples, fallback)

    def _pull(self, profile_ids: Sequence[str], stats: Mapping[str, ProfileStats],
              rng: Random, *, fallback: str) -> Pull:
        post = {p: self.posterior(stats[p]) for p in profile_ids}
        pick = self._draw(profile_ids, post, rng, fallback)
        if self.propensity_samples:
            hits = sum(self._draw(profile_ids, post, rng, fallback) == pick
                       for _ in range(self.propensity_samples))
            prob = max(hits, 1) / self.propensity_samples
        else:
            prob = float("nan")
        best = greedy_profile(profile_ids, {p: post[p][0] for p in profile_ids}, fallback)
        return Pull(pick, prob, pick != best, False,
                    f"thompson: posterior mean={post[pick][0]:+.3f}R sd={post[pick][1]:.3f}")
