"""Errors raised by the core. Every message names the offending field and the fix."""

from __future__ import annotations


class MetaStrategyError(Exception):
    """Base class of every error this package raises on purpose."""


class ConfigError(MetaStrategyError, ValueError):
    """A configuration value is invalid.

    ``field`` is the dotted path of the offending key (for example
    ``metastrategy.profiles.my_plan.r_tp2``) so the message can be acted on directly.

    >>> str(ConfigError("metastrategy.epsilon", "must be in [0, 1], got 1.5"))
    'metastrategy.epsilon: must be in [0, 1], got 1.5'
    """

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}")


class StoreError(MetaStrategyError):
    """The Q-table store cannot be opened or used; the message says how to recover."""


class EvaluationError(MetaStrategyError, ValueError):
    """The evaluation input is unusable; the message names the column/row and the fix."""
