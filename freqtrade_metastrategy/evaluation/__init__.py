"""Offline evaluation of profile selection (pure: numpy and pandas, never Freqtrade).

:mod:`~freqtrade_metastrategy.evaluation.simulator` replays every entry of a strategy's signals
under every TP/SL profile, with the exit rules :class:`~freqtrade_metastrategy.strategy.
MetaStrategyBase` applies in a Freqtrade backtest, so adaptive selection can be compared with
each fixed profile on exactly the same trades (full information: the reward of every arm).
"""

from freqtrade_metastrategy.evaluation.simulator import (
    EXIT_REASONS,
    Entry,
    infer_tick_sizes,
    simulate,
    simulate_with_fills,
)

__all__ = ["EXIT_REASONS", "Entry", "infer_tick_sizes", "simulate", "simulate_with_fills"]
