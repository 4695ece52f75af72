"""Selection policies, one per module, chosen by name.

>>> sorted(POLICIES)
['epsilon_greedy', 'random', 'thompson', 'ucb1']
>>> make_policy("ucb1", c=0.5).params()
{'c': 0.5}
"""

from __future__ import annotations

from typing import Any

from freqtrade_metastrategy.errors import ConfigError
from freqtrade_metastrategy.policies.base import NO_DATA, ArmStats, Policy, Pull, greedy_arm
from freqtrade_metastrategy.policies.epsilon_greedy import EpsilonGreedy
from freqtrade_metastrategy.policies.thompson import GaussianThompson
from freqtrade_metastrategy.policies.ucb import UCB1
from freqtrade_metastrategy.policies.uniform import UniformRandom

POLICIES: dict[str, type[Policy]] = {
    cls.name: cls for cls in (EpsilonGreedy, UCB1, GaussianThompson, UniformRandom)
}


def make_policy(name: str, **params: Any) -> Policy:
    """Build a policy by name; unknown names or parameters raise a ConfigError."""
    try:
        cls = POLICIES[name]
    except KeyError:
        raise ConfigError(
            "metastrategy.policy", f"unknown policy {name!r}; allowed: {', '.join(POLICIES)}"
        ) from None
    try:
        return cls(**params)
    except TypeError as exc:
        raise ConfigError("metastrategy.policy_params", f"{name}: {exc}") from None


__all__ = [
    "NO_DATA",
    "POLICIES",
    "UCB1",
    "ArmStats",
    "EpsilonGreedy",
    "GaussianThompson",
    "Policy",
    "Pull",
    "UniformRandom",
    "greedy_arm",
    "make_policy",
]
