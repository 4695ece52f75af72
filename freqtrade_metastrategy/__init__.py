"""freqtrade-metastrategy: regime-aware TP/SL profile selection for Freqtrade.

The pure core (:mod:`~freqtrade_metastrategy.profiles`, :mod:`~freqtrade_metastrategy.regime`,
:mod:`~freqtrade_metastrategy.selector`, :mod:`~freqtrade_metastrategy.policies`,
:mod:`~freqtrade_metastrategy.store`) never imports Freqtrade.
"""

__version__ = "0.1.0"
