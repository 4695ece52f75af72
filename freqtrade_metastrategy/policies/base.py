"""The policy interface shared by every selection policy, and its shared opening.

A policy is stateless apart from its parameters: everything it learns lives in the Q-table,
so a restarted bot (or a fresh hyperopt worker) makes the same choice from the same table and
the same RNG state. The selector hands it the candidate profile ids, per-profile statistics
(already gated by ``min_samples``) and the heuristic profile to fall back on.

:meth:`Policy.pull` is a template method: it gives every candidate its statistics
(:data:`NO_DATA` if the selector has none) and, if no candidate has data, lets
:meth:`Policy._pull_without_data` decide (by default: the heuristic profile, probability 1);
otherwise :meth:`Policy._pull`, the policy's own rule, decides.

>>> from random import Random
>>> class FirstCandidate(Policy):
...     name = "first"
...     def _pull(self, profile_ids, stats, rng, *, fallback):
...         return Pull(profile_ids[0], 1.0, False, False, f"first, count={stats['a'].count}")
>>> policy = FirstCandidate()
>>> policy.pull(["a", "b"], {}, Random(0), fallback="b")
Pull(profile_id='b', probability=1.0, explored=False, heuristic=True,
     reason='heuristic (no profile has enough data)')
>>> policy.pull(["a", "b"], {"z": ProfileStats(count=9)}, Random(0), fallback="b").heuristic
True
>>> policy.pull(["a", "b"], {"b": ProfileStats(count=3)}, Random(0), fallback="b")
Pull(profile_id='a', probability=1.0, explored=False, heuristic=False, reason='first, count=0')
>>> policy.pull(["a", "b"], {}, Random(0), fallback="c")
Traceback (most recent call last):
...
ValueError: fallback profile 'c' is not one of the candidates ['a', 'b']
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from random import Random
from typing import ClassVar

NO_DATA_REASON = "heuristic (no profile has enough data)"


@dataclass(frozen=True, slots=True)
class ProfileStats:
    """What a policy knows about one profile. ``count == 0`` means "no usable data yet"."""

    count: int = 0
    ema: float = 0.0
    mean: float = 0.0
    variance: float = 0.0
    source: str = "none"  # "cell", "pool" or "none"

    @property
    def known(self) -> bool:
        return self.count > 0


NO_DATA = ProfileStats()


@dataclass(frozen=True, slots=True)
class Pull:
    """A policy's choice.

    ``probability`` is the probability that the policy picks ``profile_id`` in this state
    (needed for off-policy evaluation); ``explored`` says whether the pick departs from the
    policy's current best estimate; ``heuristic`` that the heuristic profile decided (no
    candidate had data, or the policy did not trust its estimates).
    """

    profile_id: str
    probability: float
    explored: bool
    heuristic: bool
    reason: str


def heuristic_pull(fallback: str, reason: str = NO_DATA_REASON) -> Pull:
    """The heuristic profile, chosen with probability 1 (not an exploration)."""
    return Pull(fallback, 1.0, False, True, reason)


class Policy(ABC):
    """Base class: subclasses implement :meth:`_pull` (and may override
    :meth:`_pull_without_data`); callers use :meth:`pull`."""

    name: ClassVar[str]

    def pull(self, profile_ids: Sequence[str], stats: Mapping[str, ProfileStats],
             rng: Random, *, fallback: str) -> Pull:
        """Choose one of ``profile_ids`` (non-empty; ``fallback`` is one of them).

        ``stats`` may leave profiles out (they have no data) and hold others (ignored).
        """
        if fallback not in profile_ids:
            raise ValueError(
                f"fallback profile {fallback!r} is not one of the candidates {list(profile_ids)}"
            )
        seen = {p: stats.get(p, NO_DATA) for p in profile_ids}
        if any(s.known for s in seen.values()):
            return self._pull(profile_ids, seen, rng, fallback=fallback)
        return self._pull_without_data(profile_ids, seen, rng, fallback=fallback)

    @abstractmethod
    def _pull(self, profile_ids: Sequence[str], stats: Mapping[str, ProfileStats],
              rng: Random, *, fallback: str) -> Pull:
        """The policy's rule, once at least one candidate has data (``stats`` holds every
        candidate)."""

    def _pull_without_data(self, profile_ids: Sequence[str], stats: Mapping[str, ProfileStats],
                           rng: Random, *, fallback: str) -> Pull:
        """No candidate has data (every ``stats`` value is :data:`NO_DATA`): the heuristic
        profile, without touching ``rng``."""
        return heuristic_pull(fallback)

    def params(self) -> dict[str, float | str | None]:
        """The policy's parameters (for logs and reports)."""
        return {}


def greedy_profile(
    profile_ids: Sequence[str], values: Mapping[str, float], fallback: str
) -> str:
    """The profile with the highest value; ties go to ``fallback``, then to the first in order.

    >>> greedy_profile(["a", "b", "c"], {"a": 1.0, "b": 2.0, "c": 2.0}, fallback="c")
    'c'
    >>> greedy_profile(["a", "b", "c"], {"a": 1.0, "b": 2.0, "c": 2.0}, fallback="a")
    'b'
    """
    best = max(values[p] for p in profile_ids)
    if values[fallback] == best:
        return fallback
    return next(p for p in profile_ids if values[p] == best)
