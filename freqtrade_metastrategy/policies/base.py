"""The policy interface shared by every selection policy.

A policy is stateless apart from its parameters: everything it learns lives in the Q-table,
so a restarted bot (or a fresh hyperopt worker) makes the same choice from the same table and
the same RNG state. The selector hands it the candidate arms, per-arm statistics (already
gated by ``min_samples``) and the heuristic arm to fall back on.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from random import Random
from typing import ClassVar


@dataclass(frozen=True, slots=True)
class ArmStats:
    """What a policy knows about one arm. ``count == 0`` means "no usable data yet"."""

    count: int = 0
    ema: float = 0.0
    mean: float = 0.0
    variance: float = 0.0
    source: str = "none"  # "cell", "pool" or "none"

    @property
    def known(self) -> bool:
        return self.count > 0


NO_DATA = ArmStats()


@dataclass(frozen=True, slots=True)
class Pull:
    """A policy's choice.

    ``probability`` is the probability that the policy picks ``arm`` in this state (needed for
    off-policy evaluation); ``explored`` says whether the pick departs from the policy's current
    best estimate; ``heuristic`` that no arm had data and the fallback decided.
    """

    arm: str
    probability: float
    explored: bool
    heuristic: bool
    reason: str


class Policy(ABC):
    """Base class: subclasses implement :meth:`pull`."""

    name: ClassVar[str]

    @abstractmethod
    def pull(
        self,
        arms: Sequence[str],
        stats: Mapping[str, ArmStats],
        rng: Random,
        *,
        fallback: str,
    ) -> Pull:
        """Choose one of ``arms`` (non-empty; ``fallback`` is one of them)."""

    def params(self) -> dict[str, float | str | None]:
        """The policy's parameters (for logs and reports)."""
        return {}


def greedy_arm(
    arms: Sequence[str], values: Mapping[str, float], fallback: str
) -> str:
    """The arm with the highest value; ties go to ``fallback``, then to the first in order.

    >>> greedy_arm(["a", "b", "c"], {"a": 1.0, "b": 2.0, "c": 2.0}, fallback="c")
    'c'
    >>> greedy_arm(["a", "b", "c"], {"a": 1.0, "b": 2.0, "c": 2.0}, fallback="a")
    'b'
    """
    best = max(values[a] for a in arms)
    if values[fallback] == best:
        return fallback
    return next(a for a in arms if values[a] == best)


def stat(stats: Mapping[str, ArmStats], arm: str) -> ArmStats:
    return stats.get(arm, NO_DATA)
