"""The full-information learner: every signal's outcome under every profile, released when the
virtual trades would have closed, and the decision (a profile, or stand aside) for a new signal.

One implementation for every caller: ``evaluate``'s replay (:mod:`..evaluation.runners`) and
the Freqtrade strategy drive the same :class:`FullInfoLearner`:

1. :meth:`FullInfoLearner.add` -- a signal (taken, refused for lack of a slot, or stood aside)
   with its context and its simulated reward under every profile, and the time its last
   virtual trade closes (``release_ns``). It is held back until then: nothing about a signal
   is used before every profile's virtual trade has closed, so every profile is always scored
   on the same signals (a per-profile release would favour the quick exits).
2. :meth:`FullInfoLearner.advance` -- releases, in ``(release_ns, signal_ns, pair, side)``
   order (the canonical order: the same in a backtest, a replay and live, whatever the order
   the signals were added in), every pending signal with ``release_ns <= now``: each one
   updates the profile estimates (:mod:`.estimators`) and the ridge statistics (:mod:`.ridge`)
   exactly once.
3. :meth:`FullInfoLearner.decide` -- for a new signal's context: ``walk_forward_static``
   chooses the profile with the best estimate; ``contextual_ridge`` chooses its best predicted
   profile when that beats the estimate leader's prediction by ``switch_margin``, else the
   leader. With ``stand_aside`` it declines when the chosen profile's expected reward is below
   ``stand_aside_margin``. Before ``min_signals`` signals were released: ``default_profile``.

Context (the ridge's design row, :meth:`FullInfoLearner.design`): the signal candle's context
features (:mod:`freqtrade_metastrategy.context`; for a short the mirrored pairs swap and the
directional ones are negated, so a short's "24 h return" is positive when the price fell and
its "distance from the high" is the distance from the low), the side (+1 long, -1 short) and a
one-hot of the regime label.

>>> learner = FullInfoLearner(FullInfoConfig(policy="walk_forward_static", min_signals=1),
...                           ["scalp", "ultra_aggressive"])
>>> learner.decide(learner.design(None, "long", "trend_up")).profile  # nothing released yet
'ultra_aggressive'
>>> x = learner.design(None, "long", "trend_up")
>>> learner.add(("BTC/USDT", 0, "long"), 10, x, np.array([-0.5, -1.0]))
True
>>> learner.pending, learner.released  # held back until 10
(1, 0)
>>> learner.advance(10)
1
>>> d = learner.decide(x)
>>> d.profile, d.reason
(None, 'stand aside: best predicted -0.50 R (scalp) < margin 0.00')
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from freqtrade_metastrategy.errors import ConfigError
from freqtrade_metastrategy.fullinfo.config import FullInfoConfig
from freqtrade_metastrategy.fullinfo.estimators import ProfileMeans
from freqtrade_metastrategy.fullinfo.ridge import RidgeStats
from freqtrade_metastrategy.regime import MarketRegime

FloatArray = npt.NDArray[np.float64]

#: (pair, signal time in ns, side): one signal, learned at most once.
SignalKey = tuple[str, int, str]

REGIMES: Final[tuple[str, ...]] = tuple(r.value for r in MarketRegime)

#: State format of :meth:`FullInfoLearner.to_dict`.
STATE_VERSION: Final = 1


def stands_aside(expected: float, margin: float) -> bool:
    """The stand-aside rule, for every policy: decline when the chosen profile's expected
    reward is below ``margin`` (R)."""
    return expected < margin


def stand_aside_reason(profile: str, expected: float, margin: float) -> str | None:
    """:func:`stands_aside`'s reason logged, or None to trade.

    >>> stand_aside_reason("moderate", -0.123, 0.0)
    'stand aside: best predicted -0.12 R (moderate) < margin 0.00'
    >>> stand_aside_reason("moderate", 0.2, 0.0) is None
    True
    """
    if stands_aside(expected, margin):
        return f"stand aside: best predicted {expected:.2f} R ({profile}) < margin {margin:.2f}"
    return None


@dataclass(frozen=True)
class FullInfoDecision:
    """A full-information decision: ``profile`` is None when the policy stands aside."""

    profile: str | None
    chosen: str
    predicted: Mapping[str, float]
    leader: str
    reason: str
    released: int
    warm_up: bool = False

    @property
    def stand_aside(self) -> bool:
        return self.profile is None


#: A held-back signal: (release_ns, signal_ns, pair, side, x, rewards); a heap of these
#: pops in the canonical order (the first four fields are unique per signal, so the arrays
#: are never compared).
_Pending = tuple[int, int, str, str, FloatArray, FloatArray]


class FullInfoLearner:
    """See the module doc. ``profiles``: the profile ids the rewards are given for, in order;
    ``features``: the names of the context features :meth:`design` receives (may be empty);
    ``directional``: those whose sign flips for shorts."""

    def __init__(self, config: FullInfoConfig, profiles: Sequence[str],
                 features: Sequence[str] = (), directional: Collection[str] = (),
                 mirrored: Mapping[str, str] | None = None,
                 meta: Mapping[str, Any] | None = None) -> None:
        if not profiles:
            raise ConfigError("metastrategy.profiles", "the learner needs at least one profile")
        self.config = config
        #: what the outcomes were learned under (reward unit, profile parameters, timeframe):
        #: checked when a stored learner is loaded (:meth:`from_dict`)
        self.meta: dict[str, Any] = dict(meta or {})
        self.profiles = tuple(profiles)
        self.features = tuple(features)
        self._sign_mask = np.array([f in directional for f in self.features], dtype=bool)
        # a short's view: column j takes column _short_src[j] (mirrored pairs swapped)
        mir = dict(mirrored or {})
        index = {f: i for i, f in enumerate(self.features)}
        self._short_src = np.array([index.get(mir.get(f, f), i)
                                    for i, f in enumerate(self.features)], dtype=np.int64)
        self._mirrored = {f: g for f, g in mir.items() if f in index and g in index}
        self.d = len(self.features) + 1 + len(REGIMES)
        k = len(self.profiles)
        self.means = ProfileMeans(k, config.estimator, half_life=config.half_life,
                                  alpha=config.alpha)
        self.ridge = RidgeStats(self.d, k, config.ridge_lambda)
        self.default = (self.profiles.index(config.default_profile)
                        if config.default_profile in self.profiles else 0)
        self._pending: list[_Pending] = []
        self._known: set[SignalKey] = set()
        self.released = 0

    # -- context ---------------------------------------------------------------------------
    def design(self, context: FloatArray | None, side: str, regime: str) -> FloatArray:
        """The design row of one signal (see module doc); ``context`` in :attr:`features`
        order (None: no context features)."""
        x = np.zeros(self.d)
        n = len(self.features)
        sign = -1.0 if side == "short" else 1.0
        if n:
            c = np.asarray(context, dtype=np.float64)
            if sign < 0:
                c = c[self._short_src]
            x[:n] = np.where(self._sign_mask, sign * c, c)
        x[n] = sign
        if regime in REGIMES:
            x[n + 1 + REGIMES.index(regime)] = 1.0
        return x

    def design_matrix(self, context: FloatArray | None, sides: Sequence[str],
                      regimes: Sequence[str]) -> FloatArray:
        """:meth:`design` for many signals at once (rows aligned with ``sides``)."""
        m = len(sides)
        x = np.zeros((m, self.d))
        n = len(self.features)
        sign = np.where(np.asarray(sides, dtype=object) == "short", -1.0, 1.0)
        if n:
            c = np.asarray(context, dtype=np.float64).reshape(m, n)
            c = np.where(sign[:, None] < 0, c[:, self._short_src], c)
            x[:, :n] = np.where(self._sign_mask[None, :], sign[:, None] * c, c)
        x[:, n] = sign
        lookup = {r: i for i, r in enumerate(REGIMES)}
        for i, r in enumerate(regimes):
            j = lookup.get(str(r))
            if j is not None:
                x[i, n + 1 + j] = 1.0
        return x

    # -- learning --------------------------------------------------------------------------
    @property
    def pending(self) -> int:
        """Signals added and not yet released."""
        return len(self._pending)

    def add(self, key: SignalKey, release_ns: int, x: FloatArray, rewards: FloatArray) -> bool:
        """Hold one signal until ``release_ns``; False (and nothing changes) if ``key`` was
        already added."""
        if key in self._known:
            return False
        r = np.asarray(rewards, dtype=np.float64)
        if r.shape != (len(self.profiles),) or not np.isfinite(r).all():
            raise ValueError(f"signal {key}: need one finite reward per profile "
                             f"({len(self.profiles)}), got {r!r}")
        x = np.asarray(x, dtype=np.float64)
        if x.shape != (self.d,):
            raise ValueError(f"signal {key}: need a design row of {self.d} values (see "
                             f"design()), got shape {x.shape}")
        self._known.add(key)
        heapq.heappush(self._pending, (int(release_ns), int(key[1]), key[0], key[2], x, r))
        return True

    def advance(self, now_ns: int) -> int:
        """Release every pending signal with ``release_ns <= now_ns`` (canonical order)."""
        pending = self._pending
        if not pending or pending[0][0] > now_ns:
            return 0
        n = 0
        decay = self.config.decay
        while pending and pending[0][0] <= now_ns:
            p = heapq.heappop(pending)
            self.means.update(p[5])
            self.ridge.update(p[4], p[5], decay)
            n += 1
        self.released += n
        return n

    # -- deciding --------------------------------------------------------------------------
    def _leader(self, values: FloatArray) -> int:
        j = int(values.argmax())
        return self.default if values[self.default] == values[j] else j

    def _rule(self, x: FloatArray) -> tuple[int, int, FloatArray | None, bool]:
        """The decision rule (see module doc): ``(chosen, leader, predictions, stand aside)``;
        predictions None in warm-up."""
        cfg = self.config
        if self.released < cfg.min_signals:
            return self.default, self.default, None, False
        means = self.means.values()
        leader = self._leader(means)
        if cfg.policy == "contextual_ridge":
            pred = self.ridge.predict(x)
            best = int(pred.argmax())
            j = best if pred[best] > pred[leader] + cfg.switch_margin else leader
        else:
            pred, j = means, leader
        aside = cfg.stand_aside and stands_aside(float(pred[j]), cfg.stand_aside_margin)
        return j, leader, pred, aside

    def choose(self, x: FloatArray) -> tuple[int, float, bool]:
        """:meth:`decide` without its record, for replays of thousands of signals: the chosen
        profile's index (-1: stand aside), its expected reward (NaN in warm-up) and whether
        this is the warm-up's default."""
        j, _, pred, aside = self._rule(x)
        if pred is None:
            return j, math.nan, True
        return (-1 if aside else j), float(pred[j]), False

    def decide(self, x: FloatArray) -> FullInfoDecision:
        """The decision for a signal with design row ``x`` (see module doc), with its reason."""
        cfg = self.config
        names = self.profiles
        j, leader, pred, aside = self._rule(x)
        if pred is None:
            return FullInfoDecision(
                names[j], names[j], {}, names[j],
                f"warm-up ({self.released} of {cfg.min_signals} signals released): default "
                "profile", self.released, warm_up=True)
        predicted = {p: float(v) for p, v in zip(names, pred, strict=True)}
        if aside:
            reason = stand_aside_reason(names[j], float(pred[j]), cfg.stand_aside_margin)
            assert reason is not None
            return FullInfoDecision(None, names[j], predicted, names[leader], reason,
                                    self.released)
        if cfg.policy == "contextual_ridge":
            why = (f"ridge: {names[j]} predicted {pred[j]:+.2f} R"
                   + ("" if j != leader else f" (leader {names[leader]})"))
        else:
            why = f"best so far: {names[j]} {pred[j]:+.2f} R over {self.released} signals"
        return FullInfoDecision(names[j], names[j], predicted, names[leader], why,
                                self.released)

    # -- persistence -----------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The whole state (statistics and pending signals), JSON-ready."""
        return {
            "version": STATE_VERSION,
            "config": self.config.to_dict(),
            "profiles": list(self.profiles),
            "features": list(self.features),
            "directional": [f for f, s in zip(self.features, self._sign_mask, strict=True)
                            if s],
            "mirrored": dict(self._mirrored),
            "released": self.released,
            "meta": self.meta,
            "means": self.means.to_dict(),
            "ridge": self.ridge.to_dict(),
            "pending": [{"release_ns": rel, "signal_ns": sig, "pair": pair, "side": side,
                         "x": x.tolist(), "rewards": r.tolist()}
                        for rel, sig, pair, side, x, r in sorted(self._pending)],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], config: FullInfoConfig | None = None,
                  *, profiles: Sequence[str] | None = None,
                  features: Sequence[str] | None = None,
                  meta: Mapping[str, Any] | None = None) -> FullInfoLearner:
        """The learner saved by :meth:`to_dict`. With ``config`` (and the ``profiles`` and
        ``features`` the caller uses), the saved statistics must have been learned with the
        same profiles, features and memory (estimator, half-life or alpha): a
        :class:`~freqtrade_metastrategy.errors.ConfigError` says what differs; the decision
        settings (margins, stand-aside, ridge_lambda, min_signals) are ``config``'s."""
        if data.get("version") != STATE_VERSION:
            raise ValueError(f"learner state version {data.get('version')!r}: this version "
                             f"reads {STATE_VERSION}")
        saved = FullInfoConfig.from_dict(data["config"])
        if config is not None:
            _check_compatible(saved, config, data, profiles, features)
        stored_meta = dict(data.get("meta") or {})
        if meta is not None:
            differs = sorted(k for k in {*meta, *stored_meta}
                             if meta.get(k) != stored_meta.get(k))
            if differs:
                raise ConfigError(
                    f"metastrategy.{differs[0]}",
                    f"the stored learner's outcomes were learned with other {', '.join(differs)}"
                    " than the config's; restore them, or start over with "
                    "`freqtrade-metastrategy reset`")
        out = cls(config or saved, data["profiles"],
                  data["features"], set(data["directional"]), data.get("mirrored"),
                  stored_meta)
        out.released = int(data["released"])
        out.means = ProfileMeans.from_dict(data["means"])
        out.ridge = RidgeStats.from_dict(data["ridge"])
        out.ridge.lam = out.config.ridge_lambda
        for p in data["pending"]:
            out.add((str(p["pair"]), int(p["signal_ns"]), str(p["side"])), int(p["release_ns"]),
                    np.asarray(p["x"], dtype=np.float64),
                    np.asarray(p["rewards"], dtype=np.float64))
        return out


def _check_compatible(saved: FullInfoConfig, config: FullInfoConfig, data: Mapping[str, Any],
                      profiles: Sequence[str] | None, features: Sequence[str] | None) -> None:
    """Refuse statistics learned under another memory, other profiles or other features."""
    fix = ("; the learned statistics only fit the settings they were learned with: restore "
           "them, or start over with `freqtrade-metastrategy reset`")
    if saved.estimator != config.estimator or saved.decay != config.decay:
        raise ConfigError(
            "metastrategy.estimator",
            f"the stored learner was learned with estimator {saved.estimator!r} (half_life "
            f"{saved.half_life:g}, alpha {saved.alpha:g}), the config says "
            f"{config.estimator!r} (half_life {config.half_life:g}, alpha {config.alpha:g})"
            + fix)
    if profiles is not None and list(profiles) != list(data["profiles"]):
        raise ConfigError("metastrategy.profiles",
                          f"the stored learner knows profiles {list(data['profiles'])}, the "
                          f"config has {list(profiles)}" + fix)
    if features is not None and list(features) != list(data["features"]):
        raise ConfigError("metastrategy", "the stored learner was learned on other context "
                          "features (another version of the plugin)" + fix)
