"""Static-exit twin for ``bench/bench_hyperopt.py``: MetaStrategy's per-epoch signal work, no
trade callbacks and no learner.

:class:`HyperTwinStatic` is twin A of ``BenchTwins.py`` (:class:`TwinNoCallbacks`): static
``stoploss`` / ``minimal_roi`` (about MetaStrategy's trades and trade length on the bundled data),
no trade callback overridden, so no ``deepcopy(trade)`` and no learner. What makes the per-epoch
comparison fair:

* **The same hyperoptable parameters**: it inherits all nine from ``MetaStrategyBase`` (six in
  space ``regime``, three in ``learner``), so optuna samples the same space and Freqtrade assigns
  the same attributes every epoch. The ``learner`` ones are read by nothing here: the learner is
  what only MetaStrategy pays for.
* **The same per-epoch signal work**: it keeps ``MetaStrategyBase.advise_entry`` (twin A keeps
  the dataframe methods, asserted below), which reclassifies the regimes with the epoch's
  thresholds, then the same breakout entries with illiquid candles masked (MetaStrategy refuses
  those in ``confirm_trade_entry``), so ``regime_illiquid_volume_musd`` changes both alike.

So the difference in seconds per epoch is MetaStrategy's trade callbacks (TP/SL profiles,
partial exits, custom stop/ROI, with Freqtrade's trade deepcopy per call) and its learner.
Loaded from ``--strategy-path`` with ``BenchTwins.py`` next to it; needs the package installed.
"""

from __future__ import annotations

from BenchTwins import TwinNoCallbacks

from freqtrade_metastrategy.strategy import MetaStrategyBase


class HyperTwinStatic(TwinNoCallbacks):
    """MetaStrategy's parameters, per-epoch reclassification and entries; static exits."""


assert HyperTwinStatic.advise_entry is MetaStrategyBase.advise_entry
