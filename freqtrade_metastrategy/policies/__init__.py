"""Selection policies, one per module, chosen by name: each picks one TP/SL profile among
the regime's candidates (the shared opening and interface are in :mod:`.base`).

>>> sorted(POLICIES)
['epsilon_greedy', 'random', 'thompson', 'ucb1']
>>> make_policy("ucb1", c=0.5).params()
{'c': 0.5}
"""

from __future__ import annotations

import inspect
import math
from typing import Any

from freqtrade_metastrategy.errors import ConfigError
from freqtrade_metastrategy.policies.base import (
    NO_DATA,
    Policy,
    ProfileStats,
    Pull,
    greedy_profile,
    heuristic_pull,
)
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
    _check_numbers(cls, name, params)
    try:
        return cls(**params)
    except ConfigError:
        raise
    except (TypeError, ValueError) as exc:
        raise ConfigError("metastrategy.policy_params", f"{name}: {exc}") from None


def _check_numbers(cls: type[Policy], name: str, params: dict[str, Any]) -> None:
    """Parameters whose default is a number must be numbers (int ones integers), so a string
    in ``policy_params`` is refused at start-up, not at the first decision.

    >>> make_policy("thompson", propensity_samples=2.7)
    Traceback (most recent call last):
    ...
    freqtrade_metastrategy.errors.ConfigError: metastrategy.policy_params.propensity_samples: ...
    """
    signature = inspect.signature(cls.__init__)
    for key, value in params.items():
        spec = signature.parameters.get(key)
        if spec is None or value is None:
            continue  # unknown names: the constructor's TypeError names them
        default = spec.default
        numeric = isinstance(default, int | float) and not isinstance(default, bool)
        if not numeric and key != "exploit_min_q":  # exploit_min_q: float | None
            continue
        wants_int = isinstance(default, int) and not isinstance(default, bool)
        ok = (isinstance(value, int | float) and not isinstance(value, bool)
              and math.isfinite(value) and (not wants_int or isinstance(value, int)))
        if not ok:
            kind = "an integer" if wants_int else "a finite number"
            raise ConfigError(f"metastrategy.policy_params.{key}",
                              f"{name}: must be {kind}, got {value!r}")


__all__ = [
    "NO_DATA",
    "POLICIES",
    "UCB1",
    "EpsilonGreedy",
    "GaussianThompson",
    "Policy",
    "ProfileStats",
    "Pull",
    "UniformRandom",
    "greedy_profile",
    "heuristic_pull",
    "make_policy",
]
