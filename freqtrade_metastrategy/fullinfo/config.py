"""Settings of the full-information policies, validated once (frozen, dict round trip).

>>> cfg = FullInfoConfig.from_dict({"policy": "walk_forward_static", "stand_aside": False})
>>> cfg.policy, cfg.estimator, cfg.stand_aside, FullInfoConfig().stand_aside
('walk_forward_static', 'discounted', False, True)
>>> FullInfoConfig.from_dict(cfg.to_dict()) == cfg
True
>>> FullInfoConfig.from_dict({"half_life": -3})
Traceback (most recent call last):
...
freqtrade_metastrategy.errors.ConfigError: metastrategy.half_life: must be a number > 0, got -3.0
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any, Final

from freqtrade_metastrategy.errors import ConfigError
from freqtrade_metastrategy.fullinfo.estimators import ESTIMATORS, decay_of
from freqtrade_metastrategy.profiles import DEFAULT_STRATEGY

#: The full-information policies (``metastrategy.policy``); every other name is a bandit.
FULL_INFO_POLICIES: Final[tuple[str, ...]] = ("walk_forward_static", "contextual_ridge")


def _number(p: str, key: str, value: object, *, low: float, strict: bool = False) -> float:
    ok = (isinstance(value, int | float) and not isinstance(value, bool)
          and math.isfinite(value) and (value > low if strict else value >= low))
    if not ok:
        rel = ">" if strict else ">="
        raise ConfigError(f"{p}.{key}", f"must be a number {rel} {low:g}, got {value!r}")
    return float(value)  # type: ignore[arg-type]


@dataclass(frozen=True)
class FullInfoConfig:
    """A full-information policy and its settings. The defaults are the product's default
    policy, chosen by the out-of-sample rule (:mod:`freqtrade_metastrategy.evaluation.evidence`,
    README "Which policy is the default"): the walk-forward static on a discounted mean
    (half-life 1,000 signals) that stands aside when no profile is expected to pay.

    * ``policy``: ``walk_forward_static`` (the profile with the best estimated reward over every
      released signal, all pairs) or ``contextual_ridge`` (a ridge regression per profile on the
      signal's context; its best predicted profile replaces the walk-forward leader only when it
      is predicted to beat it by ``switch_margin`` R).
    * ``estimator`` (``mean``, ``discounted``, ``ema``), ``half_life`` (signals, discounted),
      ``alpha`` (ema): the memory of the estimates and of the ridge's statistics.
    * ``ridge_lambda``: the ridge prior's weight, in signals.
    * ``min_signals``: released signals before the estimates decide (before: ``default_profile``,
      never standing aside).
    * ``stand_aside`` / ``stand_aside_margin``: decline the entry when the chosen profile's
      expected reward is below the margin (R).
    """

    policy: str = "walk_forward_static"
    estimator: str = "discounted"
    half_life: float = 1000.0
    alpha: float = 0.2
    ridge_lambda: float = 100.0
    min_signals: int = 200
    switch_margin: float = 0.05
    stand_aside: bool = True
    stand_aside_margin: float = 0.0
    default_profile: str = DEFAULT_STRATEGY

    def __post_init__(self) -> None:
        self.check()

    def check(self, prefix: str = "metastrategy") -> None:
        """Raise a :class:`ConfigError` naming the first invalid key."""
        p = prefix
        if self.policy not in FULL_INFO_POLICIES:
            raise ConfigError(f"{p}.policy", f"not a full-information policy: {self.policy!r}; "
                              f"allowed: {', '.join(FULL_INFO_POLICIES)}")
        if self.estimator not in ESTIMATORS:
            raise ConfigError(f"{p}.estimator", f"unknown estimator {self.estimator!r}; "
                              f"allowed: {', '.join(ESTIMATORS)}")
        _number(p, "half_life", self.half_life, low=0.0, strict=True)
        _number(p, "ridge_lambda", self.ridge_lambda, low=0.0)
        _number(p, "switch_margin", self.switch_margin, low=0.0)
        if not (isinstance(self.stand_aside_margin, int | float)
                and not isinstance(self.stand_aside_margin, bool)
                and math.isfinite(self.stand_aside_margin)):
            raise ConfigError(f"{p}.stand_aside_margin",
                              f"must be a finite number of R, got {self.stand_aside_margin!r}")
        if isinstance(self.min_signals, bool) or not isinstance(self.min_signals, int) or (
            self.min_signals < 1
        ):
            raise ConfigError(f"{p}.min_signals",
                              f"must be an integer >= 1, got {self.min_signals!r}")
        if not isinstance(self.stand_aside, bool):
            raise ConfigError(f"{p}.stand_aside", f"must be true or false, got "
                              f"{self.stand_aside!r}")
        if not isinstance(self.default_profile, str):
            raise ConfigError(f"{p}.default_strategy",
                              f"must be a profile name, got {self.default_profile!r}")
        decay_of(self.estimator, half_life=self.half_life, alpha=self.alpha)

    @property
    def decay(self) -> float:
        """The weight an old signal keeps at each new one (see :mod:`.estimators`)."""
        return decay_of(self.estimator, half_life=self.half_life, alpha=self.alpha)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, prefix: str = "metastrategy") -> FullInfoConfig:
        allowed = {f.name for f in fields(cls)}
        for key in data:
            if key not in allowed:
                raise ConfigError(f"{prefix}.{key}",
                                  f"unknown key; allowed: {', '.join(sorted(allowed))}")
        values = dict(data)
        for key in ("half_life", "alpha", "ridge_lambda", "switch_margin", "stand_aside_margin"):
            if isinstance(values.get(key), int) and not isinstance(values.get(key), bool):
                values[key] = float(values[key])
        return cls(**values)
