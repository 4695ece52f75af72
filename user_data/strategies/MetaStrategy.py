"""MetaStrategy: regime-aware TP/SL profile selection (freqtrade-metastrategy).

Freqtrade loads a strategy only from a file that defines the class itself, hence this thin
subclass. Override ``populate_entry_trend`` for your own entries; set ``can_short = True`` for
futures. Configuration: the ``metastrategy`` section of your config (see config.example.json).
"""

from freqtrade_metastrategy.strategy import MetaStrategyBase


class MetaStrategy(MetaStrategyBase):
    pass
