"""Market regime detection: which of seven regimes a market is in, how sure we are, and why.

Two independent implementations of ONE rule:

* :meth:`RegimeDetector.detect_regime` -- the readable scalar path, one :class:`MarketContext`
  at a time (live trading, logging, tests);
* :func:`classify_regimes` -- the vectorised numpy path over arrays of precomputed features
  (backtests, hyperopt: it never recomputes indicators), and :func:`add_regime_columns`, which
  computes the features with TA-Lib (:mod:`freqtrade_metastrategy.indicators`) and classifies a
  whole Freqtrade dataframe.

The property tests check that both give the same regime and confidence on every input.

Classification rule (first match wins; thresholds are :class:`RegimeThresholds` fields)
-----------------------------------------------------------------------------------------

1. ``UNKNOWN`` -- any of ``atr_pct``, ``adx``, ``trend_strength``, ``volume_24h`` is missing
   (``None``) or not finite, or ``atr_pct < 0``, or ``volume_24h < 0``. Never an exception.
2. ``ILLIQUID`` -- ``volume_24h < illiquid_volume_threshold``, OR
   ``depth_5bps < illiquid_depth_threshold``, OR ``spread_bps > illiquid_spread_threshold``.
   Depth and spread count only when given and finite (backtests only have volume).
   NOTE: ANY ONE signal suffices -- the project's spec; the original detector this ports
   required 2 of the 3 signals.
3. ``HIGH_VOLATILITY`` -- ``atr_pct > extreme_vol_atr_pct_threshold``.
4. ``TREND_UP`` / ``TREND_DOWN`` -- ``adx > trend_adx_threshold`` and ``|trend_strength| >
   trend_strength_threshold``; up if ``trend_strength > 0``, else down.
5. Range -- ``RANGE_HIGH_VOL`` if ``atr_pct > high_vol_atr_pct_threshold``, ``RANGE_LOW_VOL`` if
   ``atr_pct < low_vol_atr_pct_threshold``. The band ``low <= atr_pct <= high`` in between (left
   undefined by the original -- this is our decision) is split at the geometric mean
   :attr:`RegimeThresholds.range_split_atr_pct` ``= sqrt(low * high)`` (2.449 % with the
   defaults): ``atr_pct >= split`` -> ``RANGE_HIGH_VOL``, else ``RANGE_LOW_VOL`` (so
   ``atr_pct == low`` is low-vol and ``atr_pct == high`` high-vol). There is no gap, and the
   regime of a range is simply ``atr_pct >= split``; ``low`` and ``high`` both move the split
   and shape the confidence.

``atr_pct`` is a FRACTION (``0.025`` = 2.5 %) and ``volume_24h`` is the 24 h QUOTE volume (USDT).

Confidence (deterministic, in [0, 1])
-------------------------------------

* ``UNKNOWN``: ``0.0``.
* ``ILLIQUID``: ``0.8`` / ``0.9`` / ``1.0`` when 1 / 2 / 3 illiquidity signals fire.
* ``HIGH_VOLATILITY``: ``0.5 + 0.5 * min(1, (atr_pct - extreme) / extreme)`` -- 0.5 just above
  the threshold, 1.0 from twice the threshold on.
* ``TREND_*``: ``0.5 + 0.25 * min(1, (adx - T_adx) / T_adx) + 0.25 * min(1, (|trend_strength| -
  T_ts) / (1 - T_ts))`` -- grows with the ADX excess (saturating at twice the threshold) and with
  ``|trend_strength|`` (saturating at 1).
* ``RANGE_*``: ``1.0`` outside the band; inside it ``0.5 + 0.5 * d`` where ``d`` is the distance
  from the split as a fraction of the half band on that side (``(atr_pct - split) / (high -
  split)`` above, ``(split - atr_pct) / (split - low)`` below): 0.5 at the split, 1.0 at the band
  edges, so the confidence is continuous in ``atr_pct``.

>>> detector = RegimeDetector()
>>> btc = MarketContext("BTC/USDT", "1h", current_price=40_000.0, atr=200.0, atr_pct=0.005,
...                     adx=35.0, trend_strength=0.6, volume_24h=50e6)
>>> result = detector.detect_regime(btc)
>>> result.regime, result.confidence
(<MarketRegime.TREND_UP: 'trend_up'>, 0.7071428571428571)
>>> result.reasoning
'Trending UP: ADX=35.0, trend_strength=0.60, ATR=0.50%'
>>> codes, confidence = classify_regimes([35.0, 15.0], [0.005, 0.03], [0.6, 0.1],
...                                      [50e6, 1.2e6], RegimeThresholds())
>>> [REGIMES[c].value for c in codes], confidence.tolist()
(['trend_up', 'illiquid'], [0.7071428571428571, 0.8])
"""

from __future__ import annotations

import difflib
import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass, fields
from enum import StrEnum
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import pandas as pd

from freqtrade_metastrategy.errors import ConfigError
from freqtrade_metastrategy.indicators import FEATURE_COLUMNS, compute_regime_features

__all__ = [
    "CLASSIFY_INPUTS",
    "REGIMES",
    "REGIME_VALUES",
    "MarketContext",
    "MarketRegime",
    "RegimeDetectionResult",
    "RegimeDetector",
    "RegimeThresholds",
    "add_regime_columns",
    "classify_frame",
    "classify_regimes",
    "compute_regime_features",
    "regime_from_code",
]


class MarketRegime(StrEnum):
    """The seven market regimes. Members are ``str`` (their value), so they compare equal to,
    and format as, ``"trend_up"`` etc. (``StrEnum`` is a ``str`` and an ``Enum``).

    Each regime has a stable integer :attr:`code` (its index in :data:`REGIMES`) used by the
    vectorised path; never reorder the members.

    >>> MarketRegime("range_low_vol"), MarketRegime.TREND_DOWN.code, f"{MarketRegime.ILLIQUID}"
    (<MarketRegime.RANGE_LOW_VOL: 'range_low_vol'>, 1, 'illiquid')
    """

    TREND_UP = "trend_up"
    TREND_DOWN = "trend_down"
    RANGE_LOW_VOL = "range_low_vol"
    RANGE_HIGH_VOL = "range_high_vol"
    HIGH_VOLATILITY = "high_volatility"
    ILLIQUID = "illiquid"
    UNKNOWN = "unknown"

    @property
    def code(self) -> int:
        """Stable integer code: the index of this regime in :data:`REGIMES`."""
        return _CODE_OF[self]


REGIMES: Final[tuple[MarketRegime, ...]] = tuple(MarketRegime)
"""All regimes in code order: ``REGIMES[code]`` is the regime with that integer code."""

_CODE_OF: Final[dict[MarketRegime, int]] = {regime: code for code, regime in enumerate(REGIMES)}
_TREND_UP: Final = np.int8(_CODE_OF[MarketRegime.TREND_UP])
_TREND_DOWN: Final = np.int8(_CODE_OF[MarketRegime.TREND_DOWN])
_RANGE_LOW_VOL: Final = np.int8(_CODE_OF[MarketRegime.RANGE_LOW_VOL])
_RANGE_HIGH_VOL: Final = np.int8(_CODE_OF[MarketRegime.RANGE_HIGH_VOL])
_HIGH_VOLATILITY: Final = np.int8(_CODE_OF[MarketRegime.HIGH_VOLATILITY])
_ILLIQUID: Final = np.int8(_CODE_OF[MarketRegime.ILLIQUID])
_UNKNOWN: Final = np.int8(_CODE_OF[MarketRegime.UNKNOWN])
#: The regime label of every code (``REGIME_VALUES[codes]`` labels a column of codes).
REGIME_VALUES: Final = np.array([regime.value for regime in REGIMES], dtype=object)

# Confidence of ILLIQUID indexed by the number of illiquidity signals that fire (0 unused).
_ILLIQUID_CONFIDENCE: Final = (0.0, 0.8, 0.9, 1.0)
_ILLIQUID_CONFIDENCE_ARRAY: Final = np.array(_ILLIQUID_CONFIDENCE, dtype=np.float64)


def regime_from_code(code: int) -> MarketRegime:
    """Return the regime with integer ``code`` (as produced by :func:`classify_regimes`).

    >>> regime_from_code(4)
    <MarketRegime.HIGH_VOLATILITY: 'high_volatility'>
    """
    return REGIMES[int(code)]


@dataclass(frozen=True, slots=True)
class MarketContext:
    """Everything the detector looks at for one market at one moment.

    :param symbol: pair, e.g. ``"BTC/USDT"`` (informational).
    :param timeframe: candle timeframe of the features, e.g. ``"1h"`` (informational).
    :param current_price: last price (informational).
    :param atr: Average True Range in price units (informational).
    :param atr_pct: ATR as a FRACTION of the price (``0.025`` = 2.5 %).
    :param adx: Average Directional Index, 0-100.
    :param trend_strength: signed trend strength in [-1, 1]; see
        :func:`~freqtrade_metastrategy.indicators.compute_regime_features`.
    :param volume_24h: 24 h QUOTE volume (USDT).
    :param depth_5bps: order-book depth within 5 bps of mid, in quote currency, if known.
    :param spread_bps: bid/ask spread in basis points, if known.

    Values are not validated: missing (``None``) or non-finite classification inputs make the
    detector answer ``UNKNOWN`` rather than raise.
    """

    symbol: str
    timeframe: str
    current_price: float | None
    atr: float | None
    atr_pct: float | None
    adx: float | None
    trend_strength: float | None
    volume_24h: float | None
    depth_5bps: float | None = None
    spread_bps: float | None = None


@dataclass(frozen=True, slots=True)
class RegimeDetectionResult:
    """What :meth:`RegimeDetector.detect_regime` concluded.

    :param regime: the detected regime.
    :param confidence: in [0, 1]; see the module docstring for the formula per regime.
    :param reasoning: one human-readable line explaining the decision.
    :param features: the classification inputs as floats (``nan`` where missing): ``atr_pct``,
        ``adx``, ``trend_strength``, ``volume_24h``, ``depth_5bps``, ``spread_bps``.
    """

    regime: MarketRegime
    confidence: float
    reasoning: str
    features: dict[str, float]


@dataclass(frozen=True, slots=True)
class RegimeThresholds:
    """Validated thresholds of the classification rule (immutable).

    :param trend_adx_threshold: trend needs ``adx >`` this; in (0, 100).
    :param trend_strength_threshold: trend needs ``|trend_strength| >`` this; in (0, 1).
    :param low_vol_atr_pct_threshold: range is low-vol below this ``atr_pct`` (fraction).
    :param high_vol_atr_pct_threshold: range is high-vol above this ``atr_pct`` (fraction).
    :param extreme_vol_atr_pct_threshold: ``HIGH_VOLATILITY`` above this ``atr_pct`` (fraction).
        Requires ``0 < low < high < extreme``.
    :param illiquid_volume_threshold: ``ILLIQUID`` below this 24 h quote volume (USDT); >= 0.
    :param illiquid_depth_threshold: ``ILLIQUID`` below this 5 bps depth (quote); >= 0.
    :param illiquid_spread_threshold: ``ILLIQUID`` above this spread in bps; >= 0.
    :raises ConfigError: naming the offending field and the allowed range.

    >>> RegimeThresholds(trend_adx_threshold=30).trend_adx_threshold
    30.0
    >>> RegimeThresholds(high_vol_atr_pct_threshold=4.0)
    Traceback (most recent call last):
    ...
    freqtrade_metastrategy.errors.ConfigError: extreme_vol_atr_pct_threshold: must be greater \
than high_vol_atr_pct_threshold (4.0), got 0.06; ...
    >>> round(RegimeThresholds().range_split_atr_pct, 6)
    0.024495
    """

    trend_adx_threshold: float = 25.0
    trend_strength_threshold: float = 0.3
    low_vol_atr_pct_threshold: float = 0.015
    high_vol_atr_pct_threshold: float = 0.04
    extreme_vol_atr_pct_threshold: float = 0.06
    illiquid_volume_threshold: float = 2_000_000.0
    illiquid_depth_threshold: float = 50_000.0
    illiquid_spread_threshold: float = 10.0

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                raise ConfigError(f.name, f"must be a number, got {value!r}")
            value = float(value)
            if not math.isfinite(value):
                raise ConfigError(f.name, f"must be a finite number, got {value!r}")
            object.__setattr__(self, f.name, value)

        if not 0.0 < self.trend_adx_threshold < 100.0:
            raise ConfigError(
                "trend_adx_threshold",
                f"must be in (0, 100) (ADX scale), got {self.trend_adx_threshold!r}",
            )
        if not 0.0 < self.trend_strength_threshold < 1.0:
            raise ConfigError(
                "trend_strength_threshold",
                "must be in (0, 1) (|trend_strength| scale), "
                f"got {self.trend_strength_threshold!r}",
            )
        fraction_hint = "atr_pct thresholds are fractions (0.04 = 4%)"
        if not self.low_vol_atr_pct_threshold > 0.0:
            raise ConfigError(
                "low_vol_atr_pct_threshold",
                f"must be > 0, got {self.low_vol_atr_pct_threshold!r}; {fraction_hint}",
            )
        if not self.high_vol_atr_pct_threshold > self.low_vol_atr_pct_threshold:
            raise ConfigError(
                "high_vol_atr_pct_threshold",
                "must be greater than low_vol_atr_pct_threshold "
                f"({self.low_vol_atr_pct_threshold!r}), got {self.high_vol_atr_pct_threshold!r}; "
                f"{fraction_hint}",
            )
        if not self.extreme_vol_atr_pct_threshold > self.high_vol_atr_pct_threshold:
            raise ConfigError(
                "extreme_vol_atr_pct_threshold",
                "must be greater than high_vol_atr_pct_threshold "
                f"({self.high_vol_atr_pct_threshold!r}), got "
                f"{self.extreme_vol_atr_pct_threshold!r}; {fraction_hint}",
            )
        for name in (
            "illiquid_volume_threshold",
            "illiquid_depth_threshold",
            "illiquid_spread_threshold",
        ):
            if getattr(self, name) < 0.0:
                raise ConfigError(name, f"must be >= 0, got {getattr(self, name)!r}")

    @property
    def range_split_atr_pct(self) -> float:
        """The ``atr_pct`` splitting the mid band into low/high-vol range: ``sqrt(low * high)``.

        Computed as ``sqrt(low) * sqrt(high)`` (no overflow/underflow) and clamped into
        ``[low, high]`` against rounding.
        """
        low = self.low_vol_atr_pct_threshold
        high = self.high_vol_atr_pct_threshold
        return min(high, max(low, math.sqrt(low) * math.sqrt(high)))

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        """Names of all threshold fields, in declaration order."""
        return tuple(f.name for f in fields(cls))

    @classmethod
    def from_dict(
        cls, d: Mapping[str, Any], prefix: str = "metastrategy.thresholds"
    ) -> RegimeThresholds:
        """Build thresholds from a config mapping; absent keys keep their defaults.

        :param d: mapping of field name to number.
        :param prefix: dotted config path of ``d``, used to name fields in errors.
        :raises ConfigError: unknown key (listing the allowed keys) or invalid value, with the
            field named ``<prefix>.<key>``.

        >>> RegimeThresholds.from_dict({"trend_adx_threshold": 20}).trend_adx_threshold
        20.0
        >>> RegimeThresholds.from_dict({"adx_threshold": 20})
        Traceback (most recent call last):
        ...
        freqtrade_metastrategy.errors.ConfigError: metastrategy.thresholds.adx_threshold: \
unknown key (did you mean 'trend_adx_threshold'?); allowed keys: trend_adx_threshold, ...
        """

        def path(key: str) -> str:
            return f"{prefix}.{key}" if prefix else key

        if not isinstance(d, Mapping):
            raise ConfigError(prefix or "thresholds", f"must be a mapping, got {type(d).__name__}")
        allowed = cls.field_names()
        for key in d:
            if key not in allowed:
                close = difflib.get_close_matches(str(key), allowed, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise ConfigError(
                    path(str(key)), f"unknown key{hint}; allowed keys: {', '.join(allowed)}"
                )
        try:
            return cls(**d)
        except ConfigError as exc:
            raise ConfigError(path(exc.field), exc.message) from None

    def to_dict(self) -> dict[str, float]:
        """Return the thresholds as a plain dict (round-trips through :meth:`from_dict`).

        >>> RegimeThresholds.from_dict(RegimeThresholds().to_dict()) == RegimeThresholds()
        True
        """
        return {name: getattr(self, name) for name in self.field_names()}


# ---------------------------------------------------------------------------------------------
# Scalar path
# ---------------------------------------------------------------------------------------------


def _as_float(value: object) -> float:
    """``value`` as a float; ``nan`` for ``None`` or anything not convertible."""
    if value is None:
        return math.nan
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return math.nan


def _usd(value: float) -> str:
    """Compact dollar amount: ``$1.2M``, ``$50.0K``, ``$3.4B``, ``$999``."""
    for scale, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "K")):
        if abs(value) >= scale:
            return f"${value / scale:.1f}{suffix}"
    return f"${value:.0f}"


class RegimeDetector:
    """Classify a :class:`MarketContext` into a :class:`MarketRegime` (the scalar path).

    :param thresholds: thresholds to use; defaults to ``RegimeThresholds()``.
    :param overrides: individual threshold fields replacing those of ``thresholds``, e.g.
        ``RegimeDetector(trend_adx_threshold=30)``; validated like the thresholds.
    :raises ConfigError: unknown override name or invalid value.

    >>> RegimeDetector(trend_adx_threshold=30).thresholds.trend_adx_threshold
    30.0
    >>> RegimeDetector(adx=30)
    Traceback (most recent call last):
    ...
    freqtrade_metastrategy.errors.ConfigError: adx: unknown key; allowed keys: ...
    """

    def __init__(self, thresholds: RegimeThresholds | None = None, **overrides: float) -> None:
        base = thresholds if thresholds is not None else RegimeThresholds()
        if overrides:
            base = RegimeThresholds.from_dict({**base.to_dict(), **overrides}, prefix="")
        self.thresholds: Final[RegimeThresholds] = base

    def __repr__(self) -> str:
        return f"RegimeDetector({self.thresholds!r})"

    def detect_regime(self, context: MarketContext) -> RegimeDetectionResult:
        """Classify one market. Never raises on missing or non-finite inputs (-> ``UNKNOWN``).

        :param context: the market's current features.
        :return: regime, confidence in [0, 1], one-line reasoning and the input features.

        >>> d = RegimeDetector()
        >>> def ctx(atr_pct, adx, ts, vol, **kw):
        ...     return MarketContext("X/USDT", "1h", 1.0, atr_pct, atr_pct, adx, ts, vol, **kw)
        >>> d.detect_regime(ctx(0.01, 15.0, 0.1, 30e6)).reasoning
        'Ranging LOW VOL: ADX=15.0, trend_strength=0.10, ATR=1.00% < 1.50%'
        >>> r = d.detect_regime(ctx(0.08, 30.0, 0.5, 20e6))
        >>> r.regime.value, round(r.confidence, 4), r.reasoning
        ('high_volatility', 0.6667, 'Extreme volatility: ATR=8.00% > 6.00%')
        >>> r = d.detect_regime(ctx(0.01, 30.0, 0.5, 1.2e6, spread_bps=12.0))
        >>> r.regime.value, r.confidence, r.reasoning
        ('illiquid', 0.9, 'Illiquid: volume_24h=$1.2M < $2.0M, spread=12.0bps > 10.0bps')
        >>> r = d.detect_regime(ctx(0.03, 20.0, -0.2, 30e6))
        >>> r.regime.value, round(r.confidence, 4), r.reasoning
        ('range_high_vol', 0.6775, 'Ranging HIGH VOL: ADX=20.0, trend_strength=-0.20, \
ATR=3.00% >= split 2.45% (mid band 1.50%-4.00%)')
        >>> r = d.detect_regime(ctx(float("nan"), None, 0.1, 30e6))
        >>> r.regime.value, r.confidence, r.reasoning
        ('unknown', 0.0, 'Unknown: missing or non-finite inputs (atr_pct, adx)')
        """
        atr_pct = _as_float(context.atr_pct)
        adx = _as_float(context.adx)
        trend_strength = _as_float(context.trend_strength)
        volume_24h = _as_float(context.volume_24h)
        depth = _as_float(context.depth_5bps)
        spread = _as_float(context.spread_bps)
        features = {
            "atr_pct": atr_pct,
            "adx": adx,
            "trend_strength": trend_strength,
            "volume_24h": volume_24h,
            "depth_5bps": depth,
            "spread_bps": spread,
        }
        t = self.thresholds

        def result(regime: MarketRegime, confidence: float, why: str) -> RegimeDetectionResult:
            return RegimeDetectionResult(regime, confidence, why, features)

        missing = [
            name
            for name in ("atr_pct", "adx", "trend_strength", "volume_24h")
            if not math.isfinite(features[name])
        ]
        if missing:
            return result(
                MarketRegime.UNKNOWN,
                0.0,
                f"Unknown: missing or non-finite inputs ({', '.join(missing)})",
            )
        negative = [name for name in ("atr_pct", "volume_24h") if features[name] < 0.0]
        if negative:
            values = ", ".join(f"{name}={features[name]!r}" for name in negative)
            return result(MarketRegime.UNKNOWN, 0.0, f"Unknown: negative inputs ({values})")

        illiquid_signals = self._illiquid_signals(volume_24h, depth, spread)
        if illiquid_signals:
            return result(
                MarketRegime.ILLIQUID,
                _ILLIQUID_CONFIDENCE[len(illiquid_signals)],
                f"Illiquid: {', '.join(illiquid_signals)}",
            )

        if atr_pct > t.extreme_vol_atr_pct_threshold:
            extreme = t.extreme_vol_atr_pct_threshold
            return result(
                MarketRegime.HIGH_VOLATILITY,
                0.5 + 0.5 * min(1.0, (atr_pct - extreme) / extreme),
                f"Extreme volatility: ATR={atr_pct * 100:.2f}% > {extreme * 100:.2f}%",
            )

        state = f"ADX={adx:.1f}, trend_strength={trend_strength:.2f}, ATR={atr_pct * 100:.2f}%"
        if adx > t.trend_adx_threshold and abs(trend_strength) > t.trend_strength_threshold:
            adx_score = min(1.0, (adx - t.trend_adx_threshold) / t.trend_adx_threshold)
            strength_score = min(
                1.0,
                (abs(trend_strength) - t.trend_strength_threshold)
                / (1.0 - t.trend_strength_threshold),
            )
            confidence = 0.5 + 0.25 * adx_score + 0.25 * strength_score
            if trend_strength > 0.0:
                return result(MarketRegime.TREND_UP, confidence, f"Trending UP: {state}")
            return result(MarketRegime.TREND_DOWN, confidence, f"Trending DOWN: {state}")

        regime, confidence, why = self._range(atr_pct)
        label = "HIGH VOL" if regime is MarketRegime.RANGE_HIGH_VOL else "LOW VOL"
        return result(regime, confidence, f"Ranging {label}: {state}{why}")

    def _illiquid_signals(self, volume_24h: float, depth: float, spread: float) -> list[str]:
        """Descriptions of the illiquidity signals that fire (empty if none)."""
        t = self.thresholds
        signals = []
        if volume_24h < t.illiquid_volume_threshold:
            signals.append(f"volume_24h={_usd(volume_24h)} < {_usd(t.illiquid_volume_threshold)}")
        if math.isfinite(depth) and depth < t.illiquid_depth_threshold:
            signals.append(f"depth_5bps={_usd(depth)} < {_usd(t.illiquid_depth_threshold)}")
        if math.isfinite(spread) and spread > t.illiquid_spread_threshold:
            signals.append(f"spread={spread:.1f}bps > {t.illiquid_spread_threshold:.1f}bps")
        return signals

    def _range(self, atr_pct: float) -> tuple[MarketRegime, float, str]:
        """Range regime, confidence and the ATR comparison suffix of the reasoning."""
        t = self.thresholds
        low = t.low_vol_atr_pct_threshold
        high = t.high_vol_atr_pct_threshold
        split = t.range_split_atr_pct
        band = f"(mid band {low * 100:.2f}%-{high * 100:.2f}%)"
        if atr_pct > high:
            return MarketRegime.RANGE_HIGH_VOL, 1.0, f" > {high * 100:.2f}%"
        if atr_pct < low:
            return MarketRegime.RANGE_LOW_VOL, 1.0, f" < {low * 100:.2f}%"
        if atr_pct >= split:
            distance = (atr_pct - split) / (high - split) if high > split else 1.0
            return (
                MarketRegime.RANGE_HIGH_VOL,
                0.5 + 0.5 * distance,
                f" >= split {split * 100:.2f}% {band}",
            )
        distance = (split - atr_pct) / (split - low) if split > low else 1.0
        return (
            MarketRegime.RANGE_LOW_VOL,
            0.5 + 0.5 * distance,
            f" < split {split * 100:.2f}% {band}",
        )


# ---------------------------------------------------------------------------------------------
# Vectorised path (written independently of the scalar path; the tests check they agree)
# ---------------------------------------------------------------------------------------------

FloatArray = npt.NDArray[np.float64]
CodeArray = npt.NDArray[np.int8]


#: The per-candle features :func:`classify_regimes` reads, in its argument order (besides the
#: live-only order-book depth and spread).
CLASSIFY_INPUTS: Final[tuple[str, ...]] = ("adx", "atr_pct", "trend_strength", "volume_24h")


def classify_regimes(
    adx: npt.ArrayLike,
    atr_pct: npt.ArrayLike,
    trend_strength: npt.ArrayLike,
    volume_24h: npt.ArrayLike,
    thresholds: RegimeThresholds | None,
    depth_5bps: npt.ArrayLike | None = None,
    spread_bps: npt.ArrayLike | None = None,
) -> tuple[CodeArray, FloatArray]:
    """Classify arrays of precomputed features, element by element, without Python loops.

    This is what hyperopt calls every epoch: it only compares and combines the given arrays
    (no indicator is recomputed). Same rule and confidence as :meth:`RegimeDetector.
    detect_regime` (see the module docstring); ``None`` elements (object arrays) count as NaN.

    :param adx: ADX per candle.
    :param atr_pct: ATR as a fraction of price per candle.
    :param trend_strength: signed trend strength per candle.
    :param volume_24h: 24 h quote volume per candle.
    :param thresholds: thresholds to apply; ``None`` means ``RegimeThresholds()``.
    :param depth_5bps: optional depth per candle (NaN = unknown, ignored).
    :param spread_bps: optional spread per candle (NaN = unknown, ignored).
    :return: ``(codes, confidence)``: int8 regime codes (index into :data:`REGIMES`) and float64
        confidences, both with the broadcast shape of the inputs.

    >>> codes, conf = classify_regimes([35.0, 35.0, 15.0, np.nan], [0.005, 0.07, 0.02, 0.01],
    ...                                [-0.65, 0.5, 0.0, 0.0], [5e7, 5e7, 5e7, 5e7], None)
    >>> [REGIMES[c].value for c in codes]
    ['trend_down', 'high_volatility', 'range_low_vol', 'unknown']
    >>> np.round(conf, 4).tolist()
    [0.725, 0.5833, 0.7367, 0.0]
    """
    t = thresholds if thresholds is not None else RegimeThresholds()
    inputs = [np.asarray(a, dtype=np.float64) for a in (adx, atr_pct, trend_strength, volume_24h)]
    if depth_5bps is not None:
        inputs.append(np.asarray(depth_5bps, dtype=np.float64))
    if spread_bps is not None:
        inputs.append(np.asarray(spread_bps, dtype=np.float64))
    arrays = np.broadcast_arrays(*inputs)
    adx_a, atr_a, ts_a, vol_a = arrays[:4]
    extra = iter(arrays[4:])
    depth_a = next(extra) if depth_5bps is not None else None
    spread_a = next(extra) if spread_bps is not None else None

    with np.errstate(all="ignore"):
        unknown = ~(np.isfinite(adx_a) & np.isfinite(atr_a) & np.isfinite(ts_a))
        unknown |= ~np.isfinite(vol_a)
        unknown |= atr_a < 0.0
        unknown |= vol_a < 0.0

        n_illiquid = (vol_a < t.illiquid_volume_threshold).astype(np.int8)
        if depth_a is not None:
            n_illiquid += np.isfinite(depth_a) & (depth_a < t.illiquid_depth_threshold)
        if spread_a is not None:
            n_illiquid += np.isfinite(spread_a) & (spread_a > t.illiquid_spread_threshold)
        illiquid = n_illiquid > 0

        extreme = t.extreme_vol_atr_pct_threshold
        high_volatility = atr_a > extreme

        abs_ts = np.abs(ts_a)
        trend = (adx_a > t.trend_adx_threshold) & (abs_ts > t.trend_strength_threshold)

        low = t.low_vol_atr_pct_threshold
        high = t.high_vol_atr_pct_threshold
        split = t.range_split_atr_pct
        range_high = atr_a >= split  # == (atr > high) | (low <= atr <= high & atr >= split)

        codes = np.select(
            [unknown, illiquid, high_volatility, trend & (ts_a > 0.0), trend],
            [_UNKNOWN, _ILLIQUID, _HIGH_VOLATILITY, _TREND_UP, _TREND_DOWN],
            default=np.where(range_high, _RANGE_HIGH_VOL, _RANGE_LOW_VOL),
        ).astype(np.int8, copy=False)

        illiquid_conf = _ILLIQUID_CONFIDENCE_ARRAY[n_illiquid]
        hv_conf = 0.5 + 0.5 * np.minimum(1.0, (atr_a - extreme) / extreme)
        t_adx = t.trend_adx_threshold
        t_ts = t.trend_strength_threshold
        trend_conf = (
            0.5
            + 0.25 * np.minimum(1.0, (adx_a - t_adx) / t_adx)
            + 0.25 * np.minimum(1.0, (abs_ts - t_ts) / (1.0 - t_ts))
        )
        above = (atr_a - split) / (high - split) if high > split else np.ones_like(atr_a)
        below = (split - atr_a) / (split - low) if split > low else np.ones_like(atr_a)
        in_band = (atr_a >= low) & (atr_a <= high)
        range_conf = np.where(in_band, 0.5 + 0.5 * np.where(range_high, above, below), 1.0)

        confidence = np.select(
            [unknown, illiquid, high_volatility, trend],
            [0.0, illiquid_conf, hv_conf, trend_conf],
            default=range_conf,
        ).astype(np.float64, copy=False)
    return codes, confidence


def add_regime_columns(
    df: pd.DataFrame, timeframe: str = "1h", thresholds: RegimeThresholds | None = None
) -> pd.DataFrame:
    """Add the regime features, ``regime`` and ``regime_confidence`` to a Freqtrade dataframe.

    Computes :func:`~freqtrade_metastrategy.indicators.compute_regime_features` (columns
    ``adx, atr, atr_pct, ema_fast, ema_slow, trend_strength, volume_24h`` -- existing columns of
    these names are OVERWRITTEN) and classifies every candle with :func:`classify_regimes`,
    using the frame's ``depth_5bps`` / ``spread_bps`` columns if it has them. No lookahead.

    :param df: OHLCV frame (``open, high, low, close, volume``; volume in the base asset).
    :param timeframe: candle timeframe, e.g. ``"5m"``; sets the 24 h volume window.
    :param thresholds: thresholds to apply; ``None`` means ``RegimeThresholds()``.
    :return: ``df`` itself, modified in place (Freqtrade's ``populate_indicators`` style);
        ``regime`` holds the string values of :class:`MarketRegime`, ``regime_confidence``
        floats in [0, 1].
    """
    features = compute_regime_features(df, timeframe)
    for name in FEATURE_COLUMNS:
        df[name] = features[name].to_numpy()
    return classify_frame(df, thresholds)


def classify_frame(
    df: pd.DataFrame, thresholds: RegimeThresholds | None = None, *, code_column: str | None = None
) -> pd.DataFrame:
    """(Re)classify a frame that already has the feature columns (see
    :func:`add_regime_columns`): set ``regime`` and ``regime_confidence`` under ``thresholds``.

    The split lets a strategy compute the features once and apply new thresholds cheaply, e.g.
    once per hyperopt epoch (classification runs at tens of millions of candles per second).
    Uses the frame's ``depth_5bps`` / ``spread_bps`` columns if it has them. ``code_column``:
    also store the regime's code (:meth:`MarketRegime.code`, int8) in that column.

    >>> import pandas as pd
    >>> frame = pd.DataFrame({"adx": [30.0, 30.0], "atr_pct": [0.02, 0.02],
    ...                       "trend_strength": [0.5, 0.5], "volume_24h": [5e6, 5e6]})
    >>> list(classify_frame(frame)["regime"])
    ['trend_up', 'trend_up']
    >>> list(classify_frame(frame, RegimeThresholds(trend_adx_threshold=35))["regime"])
    ['range_low_vol', 'range_low_vol']
    >>> classify_frame(frame, code_column="code")["code"].tolist() == [
    ...     MarketRegime.TREND_UP.code] * 2
    True
    """
    depth = df["depth_5bps"].to_numpy(dtype=np.float64) if "depth_5bps" in df.columns else None
    spread = df["spread_bps"].to_numpy(dtype=np.float64) if "spread_bps" in df.columns else None
    codes, confidence = classify_regimes(
        df["adx"].to_numpy(dtype=np.float64),
        df["atr_pct"].to_numpy(dtype=np.float64),
        df["trend_strength"].to_numpy(dtype=np.float64),
        df["volume_24h"].to_numpy(dtype=np.float64),
        thresholds,
        depth_5bps=depth,
        spread_bps=spread,
    )
    df["regime"] = REGIME_VALUES[codes]
    df["regime_confidence"] = confidence
    if code_column is not None:
        df[code_column] = codes
    return df
