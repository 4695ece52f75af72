"""freqtrade_metastrategy.hyper: the hyperoptable settings live in their own layer, Freqtrade
still finds them on the strategy, and hyperopt can still pickle the strategy."""

from __future__ import annotations

import pickle
import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import cloudpickle
import pytest
from freqtrade.optimize.hyperopt.hyperopt_optimizer import HyperOptimizer
from freqtrade.strategy import IStrategy
from freqtrade.strategy.hyper import detect_all_parameters

from freqtrade_metastrategy import hyper
from freqtrade_metastrategy.hyper import (
    FULLINFO_PARAMETERS,
    LEARNER_PARAMETERS,
    REGIME_PARAMETERS,
    MetaHyperMixin,
)
from freqtrade_metastrategy.strategy import MetaStrategyBase

PACKAGE = Path(hyper.__file__).resolve().parent


class MetaStrategy(MetaStrategyBase):
    """What a user file defines."""


def test_freqtrade_detects_the_parameters_on_a_user_subclass() -> None:
    found = detect_all_parameters(MetaStrategy)
    assert set(found["regime"]) == set(REGIME_PARAMETERS)
    assert set(found["learner"]) == set(LEARNER_PARAMETERS)
    assert set(found["fullinfo"]) == set(FULLINFO_PARAMETERS)
    assert set(found) == {"regime", "learner", "fullinfo"}
    # declared once, on the hyper layer, and inherited
    for name in (*REGIME_PARAMETERS, *LEARNER_PARAMETERS, *FULLINFO_PARAMETERS):
        assert name in vars(MetaHyperMixin) and name not in vars(MetaStrategyBase), name
        assert getattr(MetaStrategy, name) is vars(MetaHyperMixin)[name]


def test_every_layer_sits_on_istrategy() -> None:
    """Freqtrade's hyperopt registers the module of every base class down to ``IStrategy``
    for pickling by value; a base that is not an IStrategy reaches ``object`` and registers
    ``builtins``, and then no class can be pickled any more."""
    def layers(cls: type) -> list[type]:
        return [c for c in cls.__mro__ if c.__module__.startswith("freqtrade_metastrategy.")]

    for cls in layers(MetaStrategy):
        assert issubclass(cls, IStrategy), cls


def test_hyperopt_can_pickle_the_strategy_class() -> None:
    from cloudpickle import cloudpickle as cp  # the registry Freqtrade's magic writes to

    before = set(cp._PICKLE_BY_VALUE_MODULES)
    optimizer: Any = SimpleNamespace()
    optimizer.hyperopt_pickle_magic = lambda bases: HyperOptimizer.hyperopt_pickle_magic(
        optimizer, bases)
    try:
        optimizer.hyperopt_pickle_magic(MetaStrategy.__bases__)
        added = set(cp._PICKLE_BY_VALUE_MODULES) - before
        assert "builtins" not in added
        assert {"freqtrade_metastrategy.strategy", "freqtrade_metastrategy.hyper"} <= added
        # by value (its module is registered): every layer down to IStrategy goes along
        data = cloudpickle.dumps(MetaStrategyBase)
        assert len(data) > 10_000  # the class itself, not a reference to it
        assert set(detect_all_parameters(pickle.loads(data))) == {"regime", "learner", "fullinfo"}
    finally:
        for name in set(cp._PICKLE_BY_VALUE_MODULES) - before:
            cp._PICKLE_BY_VALUE_MODULES.discard(name)


@pytest.mark.parametrize("internal", [r"_ft_params_from_file", r"(?<!self)\._value\b"])
def test_freqtrade_parameter_internals_are_only_touched_in_hyper(internal: str) -> None:
    users = sorted(str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py")
                   if re.search(internal, p.read_text(encoding="utf-8")))
    assert users == ["hyper.py"]
