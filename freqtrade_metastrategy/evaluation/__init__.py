"""Offline evaluation of profile selection (pure: numpy and pandas, never Freqtrade).

:mod:`~freqtrade_metastrategy.evaluation.simulator` replays every entry of a strategy's signals
under every TP/SL profile, with the exit rules :class:`~freqtrade_metastrategy.strategy.
MetaStrategyBase` applies in a Freqtrade backtest, so adaptive selection can be compared with
each fixed profile on exactly the same trades (full information: the reward of every arm).
Its output is the outcome table (:mod:`.outcomes`); :mod:`.replay` runs the policies of
:mod:`.specs` over it causally (:mod:`.runners`), next to the :mod:`.hindsight` baselines;
:mod:`.walkforward` splits it into train and test ranges; :mod:`.metrics`, :mod:`.ope` and
:mod:`.report` measure and present the results.
"""

from freqtrade_metastrategy.errors import EvaluationError
from freqtrade_metastrategy.evaluation.simulator import (
    EXIT_REASONS,
    Entry,
    infer_tick_sizes,
    simulate,
    simulate_with_fills,
)

__all__ = [
    "EXIT_REASONS",
    "Entry",
    "EvaluationError",
    "infer_tick_sizes",
    "simulate",
    "simulate_with_fills",
]
