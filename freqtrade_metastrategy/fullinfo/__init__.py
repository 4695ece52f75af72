"""Full-information learning: every profile's outcome on every signal, released at its virtual
exit, estimators with memory, a contextual ridge, and the stand-aside gate.

Pure core (never imports Freqtrade): :mod:`.estimators` (running, discounted and EMA means),
:mod:`.ridge` (ridge regression per profile as sufficient statistics), :mod:`.config`
(:class:`FullInfoConfig`) and :mod:`.learner` (:class:`FullInfoLearner`, shared by ``evaluate``
and the strategy).
"""

from freqtrade_metastrategy.fullinfo.config import FULL_INFO_POLICIES, FullInfoConfig
from freqtrade_metastrategy.fullinfo.estimators import ESTIMATORS, ProfileMeans
from freqtrade_metastrategy.fullinfo.learner import (
    FullInfoDecision,
    FullInfoLearner,
    SignalKey,
    stand_aside_reason,
)
from freqtrade_metastrategy.fullinfo.ridge import RidgeStats

__all__ = [
    "ESTIMATORS",
    "FULL_INFO_POLICIES",
    "FullInfoConfig",
    "FullInfoDecision",
    "FullInfoLearner",
    "ProfileMeans",
    "RidgeStats",
    "SignalKey",
    "stand_aside_reason",
]
