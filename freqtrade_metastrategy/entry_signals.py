"""Entry signals the project ships (pure: a frame in, boolean masks out; no Freqtrade).

The selector chooses *how* to trade an entry, never *whether there is* one: the entry signal is
the user's. Two are shipped, because a selector's merit must be shown on more than one entry:

* :func:`breakout` (``MetaStrategy``'s default entry): the first close above the previous
  ``n`` candles' highest high (long), below their lowest low (short). It fires in every regime.
* :func:`rsi_cross` (``MetaStrategyRsi``, written for the evidence of issue 12): a
  mean-reversion entry, long when RSI(14) crosses back up through 30 (the close leaves
  oversold), short when it crosses back down through 70. Opposite in spirit to the breakout
  (it buys weakness), so a policy that only suits breakouts shows it.

Both need the candle to have volume, and look only at the current and earlier candles.

>>> import numpy as np, pandas as pd
>>> close = pd.Series([1.0, 2.0, 3.0, 2.5, 3.5, 3.6])
>>> df = pd.DataFrame({"high": close + 0.1, "low": close - 0.1, "close": close,
...                    "volume": 1.0})
>>> long_, short = breakout(df, 2)
>>> long_.tolist(), short.tolist()
([False, False, True, False, True, False], [False, False, False, False, False, False])
"""

from __future__ import annotations

from typing import Final

import numpy as np
import pandas as pd
import talib

__all__ = ["RSI_HIGH", "RSI_LOW", "RSI_PERIOD", "breakout", "rsi_cross"]

RSI_PERIOD: Final = 14
RSI_LOW: Final = 30.0
RSI_HIGH: Final = 70.0


def breakout(df: pd.DataFrame, n: int) -> tuple[pd.Series, pd.Series]:
    """(long, short) masks: the first close beyond the previous ``n`` candles' range."""
    close = df["close"]
    live = df["volume"] > 0
    upper = df["high"].rolling(n).max().shift(1)
    lower = df["low"].rolling(n).min().shift(1)
    up = close > upper
    down = close < lower
    return (up & ~up.shift(1, fill_value=True) & live,
            down & ~down.shift(1, fill_value=True) & live)


def rsi_cross(df: pd.DataFrame, period: int = RSI_PERIOD, low: float = RSI_LOW,
              high: float = RSI_HIGH) -> tuple[pd.Series, pd.Series]:
    """(long, short) masks: RSI crossing back up through ``low`` / down through ``high``.

    >>> close = pd.Series(np.r_[np.linspace(100, 80, 30), [81.0, 83.0, 85.0]])
    >>> long_, _ = rsi_cross(pd.DataFrame({"close": close, "volume": 1.0}))
    >>> np.flatnonzero(long_.to_numpy()).tolist()   # the third up-close lifts RSI past 30
    [32]
    """
    rsi = pd.Series(talib.RSI(df["close"].to_numpy(dtype=np.float64), timeperiod=period),
                    index=df.index)
    prev = rsi.shift(1)
    live = df["volume"] > 0
    return ((prev < low) & (rsi >= low) & live, (prev > high) & (rsi <= high) & live)
