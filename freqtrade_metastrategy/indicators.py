"""Raw regime features computed from an OHLCV frame with TA-Lib (vectorised, no lookahead).

This module only *measures*; :mod:`freqtrade_metastrategy.regime` *classifies*. The features are
what :func:`~freqtrade_metastrategy.regime.classify_regimes` consumes, so hyperopt can compute
them once per pair and re-classify them every epoch with new thresholds.

Columns produced by :func:`compute_regime_features` (``n`` = period keyword arguments):

============== =============================================================================
``adx``        ``talib.ADX(high, low, close, adx_period)`` (0-100 scale)
``atr``        ``talib.ATR(high, low, close, atr_period)`` (price units)
``atr_pct``    ``atr / close`` -- a FRACTION: ``0.025`` means 2.5 %
``ema_fast``   ``talib.EMA(close, ema_fast_period)``
``ema_slow``   ``talib.EMA(close, ema_slow_period)``
``trend_strength`` ``clip((ema_fast - ema_slow) / (2 * atr), -1, 1)``
``volume_24h`` rolling 24 h QUOTE volume: sum of ``volume * close`` (see below)
============== =============================================================================

``trend_strength`` is the EMA-fast minus EMA-slow gap measured in ATRs, halved and bounded to
[-1, 1]: ``0.3`` means the fast EMA sits 0.6 ATR above the slow one, ``-1`` means it sits at
least 2 ATR below it. A zero ATR with a zero gap (a perfectly flat history) gives ``0 / 0``,
i.e. NaN, which the classifier reports as ``unknown``; a zero ATR with a non-zero gap gives
``+-1``.

``volume_24h`` (Freqtrade's ``volume`` is in the BASE asset, so ``volume * close`` is the quote
volume of a candle) is summed over ``window = candles_per_24h(timeframe)`` candles, the number of
candles closest to 24 h, ``max(1, round_half_up(86400 s / timeframe))``, with
``min_periods = window`` (NaN during warm-up), then multiplied by ``86400 s / (window *
timeframe)`` so it always estimates exactly 24 h: the factor is exactly 1 for every timeframe
that divides a day (1m ... 1d), ``1/3`` for ``3d`` (the candle's volume averaged per day) and
``24/21`` for ``7h`` (3 candles cover 21 h).

No lookahead: every TA-Lib function used is a causal recursion started at the first row, and the
rolling sum only looks back, so a candle's features depend on that candle and earlier ones only
(``tests/test_indicators.py`` checks this by truncation, bit for bit). As everywhere in TA-Lib, a
NaN price propagates into every later value of the recursive indicators.

>>> import numpy as np, pandas as pd
>>> close = np.linspace(100.0, 106.0, 80)  # a steady climb, every candle 2.0 high-low
>>> df = pd.DataFrame({"open": close, "high": close + 1.0, "low": close - 1.0,
...                    "close": close, "volume": np.full(80, 10.0)})
>>> f = compute_regime_features(df, "1h")
>>> list(f.columns)
['adx', 'atr', 'atr_pct', 'ema_fast', 'ema_slow', 'trend_strength', 'volume_24h']
>>> int(f["adx"].isna().sum()), int(f["ema_slow"].isna().sum()), int(f["volume_24h"].isna().sum())
(27, 49, 23)
>>> last = {k: round(float(v), 4) for k, v in f.iloc[-1].items()}
>>> last["atr"], last["atr_pct"], last["adx"]
(2.0, 0.0189, 100.0)
>>> gap = f["ema_fast"].iloc[-1] - f["ema_slow"].iloc[-1]  # 0.57 ATR
>>> round(float(gap), 4), last["trend_strength"]  # = gap / (2 * atr)
(1.1392, 0.2848)
>>> last["volume_24h"]  # 24 candles of 10 base units at ~105.1
25230.3797
"""

from __future__ import annotations

import math
import re
from typing import Final

import numpy as np
import pandas as pd
import talib

from freqtrade_metastrategy.errors import ConfigError, MetaStrategyError

__all__ = [
    "ADX_PERIOD",
    "ATR_PERIOD",
    "EMA_FAST_PERIOD",
    "EMA_SLOW_PERIOD",
    "FEATURE_COLUMNS",
    "OHLCV_COLUMNS",
    "candles_per_24h",
    "compute_regime_features",
    "timeframe_to_seconds",
]

ADX_PERIOD: Final = 14
"""Default period of ``talib.ADX``."""
ATR_PERIOD: Final = 14
"""Default period of ``talib.ATR``."""
EMA_FAST_PERIOD: Final = 20
"""Default period of the fast ``talib.EMA`` of the close."""
EMA_SLOW_PERIOD: Final = 50
"""Default period of the slow ``talib.EMA`` of the close."""

OHLCV_COLUMNS: Final = ("open", "high", "low", "close", "volume")
"""Columns :func:`compute_regime_features` reads (``open`` is only checked for presence)."""
FEATURE_COLUMNS: Final = (
    "adx",
    "atr",
    "atr_pct",
    "ema_fast",
    "ema_slow",
    "trend_strength",
    "volume_24h",
)
"""Columns :func:`compute_regime_features` returns, in this order."""

_SECONDS_PER_DAY: Final = 86_400
_UNIT_SECONDS: Final = {
    "s": 1,
    "m": 60,
    "h": 3_600,
    "d": 86_400,
    "w": 604_800,
    "M": 2_592_000,  # 30 days, as ccxt (and therefore Freqtrade) counts a month
}
_TIMEFRAME_RE: Final = re.compile(r"^([1-9][0-9]*)([smhdwM])$")


def timeframe_to_seconds(timeframe: str) -> int:
    """Return the length of a Freqtrade/ccxt timeframe string in seconds.

    Units: ``s``, ``m`` (minute), ``h``, ``d``, ``w`` and ``M`` (month = 30 days, as ccxt).

    :param timeframe: e.g. ``"5m"``, ``"1h"``, ``"1d"``.
    :raises ConfigError: (field ``timeframe``) if the string is not ``<positive int><unit>``.

    >>> timeframe_to_seconds("15m"), timeframe_to_seconds("4h"), timeframe_to_seconds("1w")
    (900, 14400, 604800)
    >>> timeframe_to_seconds("1H")
    Traceback (most recent call last):
    ...
    freqtrade_metastrategy.errors.ConfigError: timeframe: must look like '5m', '1h', '1d' ...
    """
    match = _TIMEFRAME_RE.match(timeframe) if isinstance(timeframe, str) else None
    if match is None:
        raise ConfigError(
            "timeframe",
            "must look like '5m', '1h', '1d' (a positive integer followed by one of "
            f"s, m, h, d, w, M), got {timeframe!r}",
        )
    return int(match.group(1)) * _UNIT_SECONDS[match.group(2)]


def candles_per_24h(timeframe: str) -> int:
    """Return the rolling window of ``volume_24h``: the number of candles closest to 24 h.

    ``max(1, round_half_up(86400 / seconds(timeframe)))``; timeframes of 1 day or longer use a
    single candle (whose volume :func:`compute_regime_features` then rescales to one day).

    >>> [candles_per_24h(tf) for tf in ("1m", "5m", "15m", "1h", "4h", "7h", "1d", "3d")]
    [1440, 288, 96, 24, 6, 3, 1, 1]
    """
    seconds = timeframe_to_seconds(timeframe)
    return max(1, math.floor(_SECONDS_PER_DAY / seconds + 0.5))


def _check_period(field: str, value: int, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise ConfigError(field, f"must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _column(df: pd.DataFrame, name: str) -> np.ndarray:
    return np.ascontiguousarray(df[name].to_numpy(dtype=np.float64, na_value=np.nan))


def compute_regime_features(
    df: pd.DataFrame,
    timeframe: str,
    *,
    adx_period: int = ADX_PERIOD,
    atr_period: int = ATR_PERIOD,
    ema_fast_period: int = EMA_FAST_PERIOD,
    ema_slow_period: int = EMA_SLOW_PERIOD,
) -> pd.DataFrame:
    """Compute the raw regime features of every candle of an OHLCV frame.

    See the module docstring for the exact definition of each column. Rows are NaN during the
    indicators' warm-up (``2 * adx_period - 1`` rows for ADX, ``ema_slow_period - 1`` for the slow
    EMA, ``window - 1`` for ``volume_24h``); the classifier labels such rows ``unknown``.

    :param df: frame with float columns ``open, high, low, close, volume`` (volume in the BASE
        asset, as Freqtrade stores it), one row per candle in time order. Not modified.
    :param timeframe: candle length, e.g. ``"5m"`` or ``"1h"``; sets the 24 h volume window.
    :param adx_period: period of ``talib.ADX`` (>= 2).
    :param atr_period: period of ``talib.ATR`` (>= 1).
    :param ema_fast_period: period of the fast EMA (>= 2).
    :param ema_slow_period: period of the slow EMA (> ``ema_fast_period``).
    :return: a new frame with :data:`FEATURE_COLUMNS` (float64) and ``df``'s index.
    :raises ConfigError: bad ``timeframe`` or period.
    :raises MetaStrategyError: ``df`` lacks one of :data:`OHLCV_COLUMNS`.
    """
    window = candles_per_24h(timeframe)
    scale = _SECONDS_PER_DAY / (window * timeframe_to_seconds(timeframe))
    adx_period = _check_period("adx_period", adx_period, 2)
    atr_period = _check_period("atr_period", atr_period, 1)
    ema_fast_period = _check_period("ema_fast_period", ema_fast_period, 2)
    ema_slow_period = _check_period("ema_slow_period", ema_slow_period, ema_fast_period + 1)
    missing = [name for name in OHLCV_COLUMNS if name not in df.columns]
    if missing:
        raise MetaStrategyError(
            f"dataframe: missing column(s) {missing}; need {list(OHLCV_COLUMNS)} "
            "(volume in the base asset)"
        )

    high = _column(df, "high")
    low = _column(df, "low")
    close = _column(df, "close")
    volume = _column(df, "volume")

    adx = np.asarray(talib.ADX(high, low, close, timeperiod=adx_period), dtype=np.float64)
    atr = np.asarray(talib.ATR(high, low, close, timeperiod=atr_period), dtype=np.float64)
    ema_fast = np.asarray(talib.EMA(close, timeperiod=ema_fast_period), dtype=np.float64)
    ema_slow = np.asarray(talib.EMA(close, timeperiod=ema_slow_period), dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        atr_pct = atr / close
        trend_strength = np.clip((ema_fast - ema_slow) / (2.0 * atr), -1.0, 1.0)
    volume_24h = (
        pd.Series(volume * close, copy=False)
        .rolling(window, min_periods=window)
        .sum()
        .to_numpy(dtype=np.float64)
    )
    if scale != 1.0:
        volume_24h = volume_24h * scale

    return pd.DataFrame(
        {
            "adx": adx,
            "atr": atr,
            "atr_pct": atr_pct,
            "ema_fast": ema_fast,
            "ema_slow": ema_slow,
            "trend_strength": trend_strength,
            "volume_24h": volume_24h,
        },
        index=df.index,
    )
