"""MetaStrategyRLoss: Freqtrade hyperopt loss scoring trades in R (System Quality Number).

Freqtrade loads a hyperopt loss only from a file that defines the class itself, hence this
thin subclass; the loss is :mod:`freqtrade_metastrategy.hyperopt_loss` (see its docstring)::

    freqtrade hyperopt -s MetaStrategy --hyperopt-loss MetaStrategyRLoss \\
        --hyperopt-path user_data/hyperopts --spaces regime learner --min-trades 30
"""

from freqtrade_metastrategy.hyperopt_loss import MetaStrategyRLossBase


class MetaStrategyRLoss(MetaStrategyRLossBase):
    pass
