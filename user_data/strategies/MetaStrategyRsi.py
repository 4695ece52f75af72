"""MetaStrategyRsi: MetaStrategy with a mean-reversion entry (freqtrade-metastrategy).

The second entry signal the project's evidence uses (README, "Which policy is the default"):
long when RSI(14) crosses back up through 30, short (``can_short``) when it crosses back down
through 70 (:func:`freqtrade_metastrategy.entry_signals.rsi_cross`). Exits, profile choice and
learning are MetaStrategy's.
"""

from freqtrade_metastrategy.entry_signals import rsi_cross
from freqtrade_metastrategy.strategy import MetaStrategyBase


class MetaStrategyRsi(MetaStrategyBase):
    def populate_entry_trend(self, dataframe, metadata):
        long_, short = rsi_cross(dataframe)
        dataframe.loc[long_, "enter_long"] = 1
        if self.can_short:
            dataframe.loc[short, "enter_short"] = 1
        return dataframe
