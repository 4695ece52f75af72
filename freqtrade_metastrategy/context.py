"""Causal context features of every candle, the inputs of the contextual (ridge) learner.

:func:`compute_context` turns a Freqtrade OHLCV frame that already has the regime feature columns
(:func:`~freqtrade_metastrategy.indicators.compute_regime_features`) into :data:`CONTEXT_FEATURES`,
float64 columns scaled so typical magnitudes are O(1) (the ridge regression does no per-feature
scaling). ``n24`` / ``n7d`` = candles closest to 24 h / 7 days (at least 1, rounded half up, as
:func:`~freqtrade_metastrategy.indicators.candles_per_24h`); ``atr_pct`` is a fraction;
``vol(x, n)`` = ``log(close / close n candles earlier) / (atr_pct * sqrt(n))``.

====================== ======================================================================
``ctx_atr_pct``        ``atr_pct * 100`` (percent)
``ctx_atr_rank``       rank of ``atr_pct`` in the last 500 candles (current included; at least
                       100 valid): ``(rank - 1) / (count - 1)``, ties averaged, in [0, 1]
``ctx_adx``            ``adx / 50``
``ctx_trend``          ``trend_strength`` (in [-1, 1])
``ctx_rsi``            ``(talib.RSI(close, 14) - 50) / 50`` (in [-1, 1])
``ctx_ret_24h``        ``vol(close, n24)``: 24 h log return in volatility units
``ctx_ret_7d``         ``vol(close, n7d)``
``ctx_dist_hi20``      ``(close - max(high of the last 20 candles, current included)) /
                       (atr * sqrt(20))``: in volatility units, ``<= 0``
``ctx_dist_lo20``      ``(close - min(low of the last 20 candles)) / (atr * sqrt(20))``, ``>= 0``
``ctx_dist_hi100``     idem over 100 candles, ``/ (atr * sqrt(100))``
``ctx_dist_lo100``     idem over 100 candles
``ctx_vol_z``          z-score of ``log1p(volume * close)`` against the PREVIOUS 100 candles
``ctx_fee_r``          round-trip fee in R: ``2 * fee * close / atr``
``ctx_hour_sin/cos``   time of day of the candle's CLOSE (``date + timeframe``) on the circle
``ctx_htf_trend``      ``trend_strength`` of the higher timeframe (see below)
``ctx_htf_adx``        its ``adx / 50``
``ctx_htf_atr_pct``    its ``atr_pct * 100``
``ctx_lead_trend``     the leader's (BTC's) ``trend_strength`` at the same candle
``ctx_lead_atr_pct``   the leader's ``atr_pct * 100``
``ctx_lead_ret_24h``   the leader's ``vol(close, n24)``
====================== ======================================================================

Every value is finite and in ``[-CLIP, CLIP]`` = [-5, 5]: infinities (a zero ATR) clip to the
bound and NaN (warm-up, missing data) becomes the NEUTRAL value, 0.5 for ``ctx_atr_rank`` and 0
for every other column. :data:`DIRECTIONAL` lists the columns a short trade negates.

Higher timeframe (:func:`higher_timeframe`: 4h below 4h, 1d from 4h to below 1d, 1w from 1d on):
the frame's own candles are resampled into UTC-aligned periods labelled by their start (weeks
start on Monday) -- first open, max high, min low, last close, summed volume -- a first period
the data enters late is dropped, the regime features are computed on them, and a candle opening
at ``d`` sees the last period with ``start + htf <= d + timeframe`` (complete when the candle
closes; Freqtrade's ``merge_informative_pair`` with ffill). Leader: its regime features are
computed from its OHLCV and a candle at ``d`` takes the leader row with the latest date ``<= d``
(``merge_asof`` backward; at most 24 h or one candle stale), else the neutral 0.

No lookahead: every feature of a row depends on that row and earlier ones only (TA-Lib
recursions and rolling windows started at the first row), so truncating the frame leaves the
remaining rows bit-for-bit unchanged (``tests/core/test_context.py`` checks this). The frame's
``regime`` column, if any, is not read.

>>> import numpy as np, pandas as pd
>>> from freqtrade_metastrategy.indicators import compute_regime_features
>>> close = np.linspace(100.0, 106.0, 60)  # a steady climb, every candle 2.0 high-low
>>> df = pd.DataFrame({"date": pd.date_range("2024-01-01", periods=60, freq="h", tz="UTC"),
...                    "open": close, "high": close + 1.0, "low": close - 1.0,
...                    "close": close, "volume": np.full(60, 10.0)})
>>> df = df.join(compute_regime_features(df, "1h"))
>>> ctx = compute_context(df, "1h")
>>> ctx.shape, bool(np.isfinite(ctx.to_numpy()).all())
((60, 21), True)
>>> last = {k: round(float(v), 4) for k, v in ctx.iloc[-1].items()}
>>> last["ctx_atr_pct"], last["ctx_adx"], last["ctx_fee_r"], last["ctx_rsi"]
(1.8868, 2.0, 0.106, 1.0)
>>> last["ctx_ret_24h"], last["ctx_dist_hi20"], last["ctx_dist_lo20"]
(0.252, -0.1118, 0.3278)
>>> last["ctx_hour_sin"], last["ctx_hour_cos"]  # the 11:00 candle closes at 12:00
(0.0, -1.0)
>>> last["ctx_atr_rank"], last["ctx_ret_7d"], last["ctx_htf_trend"], last["ctx_lead_trend"]
(0.5, 0.0, 0.0, 0.0)
"""

from __future__ import annotations

import math
from typing import Final

import numpy as np
import numpy.typing as npt
import pandas as pd
import talib

from freqtrade_metastrategy.errors import ConfigError, MetaStrategyError
from freqtrade_metastrategy.indicators import (
    OHLCV_COLUMNS,
    candles_per_24h,
    compute_regime_features,
    timeframe_to_seconds,
)

__all__ = [
    "CLIP",
    "CONTEXT_FEATURES",
    "DIRECTIONAL",
    "NEUTRAL",
    "compute_context",
    "higher_timeframe",
]

Floats = npt.NDArray[np.float64]

CONTEXT_FEATURES: Final[tuple[str, ...]] = (
    "ctx_atr_pct",
    "ctx_atr_rank",
    "ctx_adx",
    "ctx_trend",
    "ctx_rsi",
    "ctx_ret_24h",
    "ctx_ret_7d",
    "ctx_dist_hi20",
    "ctx_dist_lo20",
    "ctx_dist_hi100",
    "ctx_dist_lo100",
    "ctx_vol_z",
    "ctx_fee_r",
    "ctx_hour_sin",
    "ctx_hour_cos",
    "ctx_htf_trend",
    "ctx_htf_adx",
    "ctx_htf_atr_pct",
    "ctx_lead_trend",
    "ctx_lead_atr_pct",
    "ctx_lead_ret_24h",
)
"""Columns :func:`compute_context` returns, in this order."""

DIRECTIONAL: Final[frozenset[str]] = frozenset(
    {
        "ctx_trend",
        "ctx_rsi",
        "ctx_ret_24h",
        "ctx_ret_7d",
        "ctx_dist_hi20",
        "ctx_dist_lo20",
        "ctx_dist_hi100",
        "ctx_dist_lo100",
        "ctx_htf_trend",
        "ctx_lead_trend",
        "ctx_lead_ret_24h",
    }
)
"""Columns whose sign flips for a short trade (the learner multiplies them by -1)."""

#: For a short, these pairs swap before :data:`DIRECTIONAL` negates them (a short's "distance
#: from the high" is the long's distance from the low, mirrored).
MIRRORED: Final[dict[str, str]] = {
    "ctx_dist_hi20": "ctx_dist_lo20", "ctx_dist_lo20": "ctx_dist_hi20",
    "ctx_dist_hi100": "ctx_dist_lo100", "ctx_dist_lo100": "ctx_dist_hi100",
}
CLIP: Final = 5.0
"""Every feature is clipped to ``[-CLIP, CLIP]``."""
NEUTRAL: Final[dict[str, float]] = {
    name: 0.5 if name == "ctx_atr_rank" else 0.0 for name in CONTEXT_FEATURES
}
"""Value replacing NaN (warm-up, missing higher-timeframe or leader data) per column."""

REQUIRED_COLUMNS: Final = ("date", *OHLCV_COLUMNS, "adx", "atr", "atr_pct", "trend_strength")
RSI_PERIOD: Final = 14
RANK_WINDOW: Final = 500
RANK_MIN_PERIODS: Final = 100
VOLUME_Z_WINDOW: Final = 100
SHORT_RANGE: Final = 20
LONG_RANGE: Final = 100
_DAY: Final = 86_400
_WEEK: Final = 7 * _DAY
_WEEK_OFFSET: Final = 4 * _DAY  # 1970-01-01 was a Thursday: weeks start on Mondays
_NS: Final = 1_000_000_000


def higher_timeframe(timeframe: str) -> str:
    """Return the higher timeframe of the ``ctx_htf_*`` features.

    >>> [higher_timeframe(tf) for tf in ("5m", "1h", "4h", "12h", "1d", "1w")]
    ['4h', '4h', '1d', '1d', '1w', '1w']
    """
    seconds = timeframe_to_seconds(timeframe)
    return "4h" if seconds < 4 * 3_600 else "1d" if seconds < _DAY else "1w"


def _floats(df: pd.DataFrame, name: str) -> Floats:
    return np.ascontiguousarray(df[name].to_numpy(dtype=np.float64, na_value=np.nan))


def _dates_ns(df: pd.DataFrame, what: str) -> npt.NDArray[np.int64]:
    if "date" not in df.columns:
        raise MetaStrategyError(f"{what}: missing column 'date' (candle open time, UTC)")
    ns = np.asarray(pd.DatetimeIndex(df["date"]).as_unit("ns").asi8, dtype=np.int64)
    if ns.size > 1 and not bool(np.all(np.diff(ns) > 0)):
        raise MetaStrategyError(f"{what}: 'date' must be strictly increasing (sort, dedupe)")
    return ns


def _vol_return(close: Floats, atr_pct: Floats, n: int) -> Floats:
    """``log(close / close n rows earlier) / (atr_pct * sqrt(n))`` (NaN for the first n rows)."""
    out = np.full(close.shape, np.nan)
    if close.size > n:
        with np.errstate(divide="ignore", invalid="ignore"):
            out[n:] = np.log(close[n:] / close[:-n]) / (atr_pct[n:] * math.sqrt(n))
    return out


def _regime_features(
    frame: pd.DataFrame, timeframe: str, n24: int
) -> tuple[Floats, Floats, Floats, Floats]:
    """``trend_strength, adx / 50, atr_pct * 100, 24 h vol return`` of an OHLCV frame."""
    f = compute_regime_features(frame, timeframe)
    atr_pct = f["atr_pct"].to_numpy(dtype=np.float64)
    ret = _vol_return(_floats(frame, "close"), atr_pct, n24)
    trend = f["trend_strength"].to_numpy(dtype=np.float64)
    return trend, f["adx"].to_numpy(dtype=np.float64) / 50.0, atr_pct * 100.0, ret


def _htf(df: pd.DataFrame, ns: npt.NDArray[np.int64], timeframe: str, tf_s: int) -> list[Floats]:
    """The ``ctx_htf_*`` columns (NaN where no complete higher-timeframe candle exists)."""
    htf = higher_timeframe(timeframe)
    htf_s = timeframe_to_seconds(htf)
    offset = _WEEK_OFFSET if htf_s == _WEEK else 0
    start = (ns - offset * _NS) // (htf_s * _NS) * (htf_s * _NS) + offset * _NS
    idx = np.flatnonzero(np.r_[True, start[1:] != start[:-1]])
    if start[0] != ns[0]:  # the data enters the first period late: it is not a full candle
        idx = idx[1:]
    out = [np.full(ns.shape, np.nan) for _ in range(3)]
    if idx.size == 0:
        return out
    last = np.r_[idx[1:], ns.size] - 1
    bars = pd.DataFrame(
        {
            "open": _floats(df, "open")[idx],
            "high": np.maximum.reduceat(_floats(df, "high"), idx),
            "low": np.minimum.reduceat(_floats(df, "low"), idx),
            "close": _floats(df, "close")[last],
            "volume": np.add.reduceat(_floats(df, "volume"), idx),
        }
    )
    trend, adx, atr_pct, _ = _regime_features(bars, htf, 1)
    j = np.searchsorted(start[idx] + htf_s * _NS, ns + tf_s * _NS, side="right") - 1
    seen = j >= 0
    for column, values in zip(out, (trend, adx, atr_pct), strict=True):
        column[seen] = values[j[seen]]
    return out


def _lead(
    leader: pd.DataFrame, ns: npt.NDArray[np.int64], timeframe: str, n24: int, tf_s: int
) -> list[Floats]:
    """The ``ctx_lead_*`` columns: leader row with the latest date ``<= d`` (NaN if none)."""
    out = [np.full(ns.shape, np.nan) for _ in range(3)]
    lead_ns = _dates_ns(leader, "leader")
    if lead_ns.size == 0:
        return out
    trend, _, atr_pct, ret = _regime_features(leader, timeframe, n24)
    j = np.searchsorted(lead_ns, ns, side="right") - 1
    jc = np.maximum(j, 0)
    seen = (j >= 0) & (ns - lead_ns[jc] <= max(tf_s, _DAY) * _NS)
    for column, values in zip(out, (trend, atr_pct, ret), strict=True):
        column[seen] = values[jc[seen]]
    return out


def compute_context(
    df: pd.DataFrame,
    timeframe: str,
    *,
    leader: pd.DataFrame | None = None,
    fee: float = 0.001,
) -> pd.DataFrame:
    """Compute the :data:`CONTEXT_FEATURES` of every candle (see the module docstring).

    :param df: Freqtrade frame sorted by ``date`` (candle OPEN time, UTC) with ``open, high, low,
        close, volume`` (volume in the base asset) and the regime feature columns ``adx, atr,
        atr_pct, trend_strength``. Not modified.
    :param timeframe: candle length of ``df`` (and of ``leader``), e.g. ``"1h"``.
    :param leader: OHLCV frame (with ``date``) of the leader market, e.g. BTC/USDT, at the same
        timeframe; any date span. ``None``: the ``ctx_lead_*`` columns are neutral (0).
    :param fee: fee rate per side (``0.001`` = 0.1 %), >= 0.
    :return: a new frame with ``df``'s index and float64 :data:`CONTEXT_FEATURES`, all finite and
        in ``[-CLIP, CLIP]``.
    :raises ConfigError: bad ``timeframe`` or ``fee``.
    :raises MetaStrategyError: a missing column or unsorted dates.
    """
    tf_s = timeframe_to_seconds(timeframe)
    if isinstance(fee, bool) or not isinstance(fee, int | float) or not 0.0 <= fee < math.inf:
        raise ConfigError("fee", f"must be a finite number >= 0 (0.001 = 0.1 %), got {fee!r}")
    missing = [name for name in REQUIRED_COLUMNS if name not in df.columns]
    if missing:
        raise MetaStrategyError(
            f"dataframe: missing column(s) {missing}; run indicators.compute_regime_features first"
        )
    ns = _dates_ns(df, "dataframe")
    if ns.size == 0:
        return pd.DataFrame({name: np.empty(0) for name in CONTEXT_FEATURES}, index=df.index)
    n24 = candles_per_24h(timeframe)
    n7d = max(1, math.floor(_WEEK / tf_s + 0.5))
    high, low, close = _floats(df, "high"), _floats(df, "low"), _floats(df, "close")
    atr, atr_pct = _floats(df, "atr"), _floats(df, "atr_pct")
    cols: dict[str, Floats] = {}

    cols["ctx_atr_pct"] = atr_pct * 100.0
    s = pd.Series(atr_pct).rolling(RANK_WINDOW, min_periods=RANK_MIN_PERIODS)
    with np.errstate(divide="ignore", invalid="ignore"):
        cols["ctx_atr_rank"] = (s.rank().to_numpy() - 1.0) / (s.count().to_numpy() - 1.0)
    cols["ctx_adx"] = _floats(df, "adx") / 50.0
    cols["ctx_trend"] = _floats(df, "trend_strength")
    rsi = np.asarray(talib.RSI(close, timeperiod=RSI_PERIOD), dtype=np.float64)
    cols["ctx_rsi"] = (rsi - 50.0) / 50.0
    cols["ctx_ret_24h"] = _vol_return(close, atr_pct, n24)
    cols["ctx_ret_7d"] = _vol_return(close, atr_pct, n7d)
    with np.errstate(divide="ignore", invalid="ignore"):
        for n in (SHORT_RANGE, LONG_RANGE):
            hi = pd.Series(high).rolling(n, min_periods=n).max().to_numpy(np.float64)
            lo = pd.Series(low).rolling(n, min_periods=n).min().to_numpy(np.float64)
            unit = atr * math.sqrt(n)  # the range of a random walk grows as sqrt(n)
            cols[f"ctx_dist_hi{n}"] = (close - hi) / unit
            cols[f"ctx_dist_lo{n}"] = (close - lo) / unit
        log_volume = np.log1p(np.maximum(_floats(df, "volume") * close, 0.0))
        roll = pd.Series(log_volume).rolling(VOLUME_Z_WINDOW, min_periods=VOLUME_Z_WINDOW)
        mean = np.r_[np.nan, roll.mean().to_numpy(np.float64)[:-1]]
        std = np.r_[np.nan, roll.std().to_numpy(np.float64)[:-1]]
        cols["ctx_vol_z"] = np.where(std > 1e-9, (log_volume - mean) / std, np.nan)
        cols["ctx_fee_r"] = 2.0 * float(fee) * close / atr
    angle = 2.0 * math.pi * ((((ns // _NS) + tf_s) % _DAY) / _DAY)
    cols["ctx_hour_sin"], cols["ctx_hour_cos"] = np.sin(angle), np.cos(angle)
    htf = _htf(df, ns, timeframe, tf_s)
    cols["ctx_htf_trend"], cols["ctx_htf_adx"], cols["ctx_htf_atr_pct"] = htf
    lead = [np.full(ns.shape, np.nan)] * 3
    if leader is not None:
        lead = _lead(leader, ns, timeframe, n24, tf_s)
    cols["ctx_lead_trend"], cols["ctx_lead_atr_pct"], cols["ctx_lead_ret_24h"] = lead

    out = {}
    for name in CONTEXT_FEATURES:
        values = np.clip(cols[name], -CLIP, CLIP)
        out[name] = np.where(np.isnan(values), NEUTRAL[name], values).astype(np.float64)
    return pd.DataFrame(out, index=df.index)
