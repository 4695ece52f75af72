"""The hyperoptable settings of :class:`~freqtrade_metastrategy.strategy.MetaStrategyBase`.

:class:`MetaHyperMixin` declares the regime thresholds and learner settings as Freqtrade
parameters (``freqtrade hyperopt --spaces regime learner``), decides which are tuned in this
run, and gives the value in effect for each: the value a hyperopt epoch tries, else the
strategy's parameter file, else the ``metastrategy`` config, else the default (the seeds'). It
also checks the hyperopt spaces and search ranges and logs the settings at start-up. Every use
of Freqtrade's private parameter internals (``_ft_params_from_file``, ``param._value``) is here.

Freqtrade keeps ``HyperStrategyMixin`` apart from ``IStrategy`` the same way, but this mixin
derives from ``IStrategy``: Freqtrade's hyperopt registers the module of every base class of
the strategy down to ``IStrategy`` for pickling by value, and a plain mixin would drag
``builtins`` (the module of ``object``) in, which cloudpickle cannot pickle by value.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import math
from typing import Any, Final

from freqtrade.enums import RunMode
from freqtrade.exceptions import OperationalException
from freqtrade.strategy import DecimalParameter, IntParameter, IStrategy

from freqtrade_metastrategy.config import MetaStrategyConfig
from freqtrade_metastrategy.errors import ConfigError
from freqtrade_metastrategy.regime import RegimeThresholds
from freqtrade_metastrategy.selector import SelectorConfig

logger = logging.getLogger(__name__)

LIVE_MODES: Final = (RunMode.LIVE, RunMode.DRY_RUN)
#: Hyperoptable parameter -> (RegimeThresholds field, scale from parameter to field).
REGIME_PARAMETERS: dict[str, tuple[str, float]] = {
    "regime_trend_adx": ("trend_adx_threshold", 1.0),
    "regime_trend_strength": ("trend_strength_threshold", 1.0),
    "regime_low_vol_atr_pct": ("low_vol_atr_pct_threshold", 1.0),
    "regime_high_vol_atr_pct": ("high_vol_atr_pct_threshold", 1.0),
    "regime_extreme_vol_atr_pct": ("extreme_vol_atr_pct_threshold", 1.0),
    "regime_illiquid_volume_musd": ("illiquid_volume_threshold", 1e6),
}
#: Hyperoptable parameter -> SelectorConfig field.
LEARNER_PARAMETERS: dict[str, str] = {
    "learner_epsilon": "epsilon",
    "learner_alpha": "alpha",
    "learner_min_samples": "min_samples",
}
#: Hyperopt spaces that would replace the profiles' exits (MetaStrategy refuses them).
EXIT_SPACES: Final = ("roi", "stoploss", "trailing")


class MetaHyperMixin(IStrategy):  # type: ignore[misc]  # freqtrade is untyped (Any)
    """Hyperoptable regime thresholds and learner settings, and the values in effect."""

    #: The plugin's configuration (set by the strategy's ``__init__``).
    ms_config: MetaStrategyConfig

    # -- hyperoptable (``freqtrade hyperopt --spaces regime learner``) ------------------------
    # Defaults are the seeds'. Precedence for each: the value hyperopt is trying (in its own
    # run), else the strategy's parameter file (``MetaStrategy.json``, written by hyperopt),
    # else ``metastrategy.thresholds`` / the learner keys of the config, else the default.
    # The ATR% ranges do not overlap, so every sample keeps low < high < extreme.
    regime_trend_adx = DecimalParameter(15.0, 40.0, default=25.0, decimals=1, space="regime")
    regime_trend_strength = DecimalParameter(0.10, 0.60, default=0.30, decimals=2,
                                             space="regime")
    regime_low_vol_atr_pct = DecimalParameter(0.005, 0.020, default=0.015, decimals=3,
                                              space="regime")
    regime_high_vol_atr_pct = DecimalParameter(0.025, 0.055, default=0.040, decimals=3,
                                               space="regime")
    regime_extreme_vol_atr_pct = DecimalParameter(0.060, 0.120, default=0.060, decimals=3,
                                                  space="regime")
    regime_illiquid_volume_musd = DecimalParameter(0.0, 10.0, default=2.0, decimals=1,
                                                   space="regime")
    learner_epsilon = DecimalParameter(0.0, 0.30, default=0.10, decimals=2, space="learner")
    learner_alpha = DecimalParameter(0.05, 0.50, default=0.20, decimals=2, space="learner")
    learner_min_samples = IntParameter(1, 20, default=5, space="learner")

    # ------------------------------------------------------------------------------------------
    # run mode (what is tuned depends on it)
    # ------------------------------------------------------------------------------------------
    @property
    def _runmode(self) -> RunMode | None:
        mode = self.config.get("runmode")
        return mode if isinstance(mode, RunMode) else None

    @property
    def _live(self) -> bool:
        return self._runmode in LIVE_MODES

    # ------------------------------------------------------------------------------------------
    # values in effect
    # ------------------------------------------------------------------------------------------
    def _is_tuned(self, name: str) -> bool:
        """Whether this hyperopt run tunes parameter ``name`` (its space is in ``--spaces``).

        Decided from the config, not from Freqtrade's ``in_space`` flag: parameters are class
        attributes shared by every instance in the process, and the flag is only reset after
        ``bot_start``.
        """
        param = getattr(self, name)
        return (self._runmode == RunMode.HYPEROPT and bool(param.optimize)
                and param.space in (self.config.get("spaces") or ()))

    def _tuned(self, name: str, configured: float, *, static: bool = False) -> float:
        """The effective value of hyperoptable parameter ``name`` (see the class body).

        ``static``: never the value a hyperopt epoch tries (populate_indicators runs once for
        the whole hyperopt; the placeholder learner of ``__init__``/``bot_start`` is replaced
        at the first candle of every backtest).
        """
        if self._is_tuned(name):
            return configured if static else float(getattr(self, name).value)
        param = getattr(self, name)
        from_file = (getattr(self, "_ft_params_from_file", None) or {}).get(param.space) or {}
        if name in from_file:
            return float(from_file[name])
        return configured

    def regime_thresholds(self, *, static: bool = False) -> RegimeThresholds:
        """The regime thresholds in effect (hyperopt epoch, parameter file, config, default)."""
        base = self.ms_config.thresholds
        values = {
            field: self._tuned(name, getattr(base, field) / scale, static=static) * scale
            for name, (field, scale) in REGIME_PARAMETERS.items()
        }
        try:
            return dataclasses.replace(base, **values)
        except ConfigError as exc:
            raise OperationalException(
                f"Regime thresholds from the strategy parameter file and metastrategy.thresholds "
                f"do not fit together: {exc}. Fix the parameter file or the config."
            ) from exc

    def selector_config(self, *, static: bool = False) -> SelectorConfig:
        """The learner settings in effect (hyperopt epoch, parameter file, config, default)."""
        base = self.ms_config.selector
        values: dict[str, Any] = {
            field: self._tuned(name, float(getattr(base, field)), static=static)
            for name, field in LEARNER_PARAMETERS.items()
        }
        values["min_samples"] = round(values["min_samples"])
        try:
            return dataclasses.replace(base, **values)
        except ConfigError as exc:
            raise OperationalException(f"Learner settings: {exc}") from exc

    # ------------------------------------------------------------------------------------------
    # start-up: parameter values, checks, settings log
    # ------------------------------------------------------------------------------------------
    def _start_settings(self) -> None:
        """At ``bot_start``: give untuned parameters their configured values, check a
        hyperopt's spaces and search ranges (an error stops the run), log the settings."""
        self._sync_parameter_values()
        if self._runmode == RunMode.HYPEROPT:
            self._check_hyperopt_spaces()
            self._check_tuning_ranges()
        self._log_settings()

    def _our_parameters(self) -> dict[str, float]:
        """Each hyperoptable parameter of ours -> its configured value (config or default)."""
        return {name: self._configured(self.ms_config, name)
                for name in (*REGIME_PARAMETERS, *LEARNER_PARAMETERS)}

    @staticmethod
    def _configured(cfg: MetaStrategyConfig, name: str) -> float:
        """Parameter ``name``'s value in ``cfg`` (in the parameter's unit)."""
        if name in REGIME_PARAMETERS:
            field, scale = REGIME_PARAMETERS[name]
            return float(getattr(cfg.thresholds, field)) / scale
        return float(getattr(cfg.selector, LEARNER_PARAMETERS[name]))

    def _sync_parameter_values(self) -> None:
        """Give parameters without a value in the parameter file the configured value.

        Freqtrade writes every parameter's ``.value`` into the parameter file after a
        hyperopt, the tuned ones and the others; without this the others would be written
        with their class default, and a hyperopt of ``--spaces learner`` would silently
        replace the config's regime thresholds with the defaults in the next backtest.
        (Parameters are class attributes shared by the process's instances; Freqtrade runs
        one strategy per process.)
        """
        file_params = getattr(self, "_ft_params_from_file", None) or {}
        defaults = MetaStrategyConfig()
        for name, configured in self._our_parameters().items():
            param = getattr(self, name)
            from_file = (file_params.get(param.space) or {}).get(name)
            if from_file is not None and configured != self._configured(defaults, name) and (
                    not math.isclose(float(from_file), configured)):
                logger.warning("%s: the strategy parameter file's %s (%s) overrides the config "
                               "(%s); delete the file or the key to choose", name,
                               name, from_file, configured)
            if from_file is None:
                # Not through the ``value`` setter: DecimalParameter rounds to its decimals,
                # and the file would then carry (and later impose) 22.2 for a configured 22.25.
                param._value = (round(configured) if isinstance(param, IntParameter)
                                else configured)

    def _check_tuning_ranges(self) -> None:
        """Hyperopt: every value the tuned parameters can take must give valid settings.

        Checked here, where an error stops the run, not per epoch (``bot_loop_start`` errors
        are only logged by Freqtrade, and the epoch would run with the previous learner).
        Every corner of the search box is tried: each constraint is monotone in each parameter.
        """
        tuned = [n for n in (*REGIME_PARAMETERS, *LEARNER_PARAMETERS) if self._is_tuned(n)]
        if not tuned:
            return
        saved = {n: getattr(self, n)._value for n in tuned}
        try:
            # every corner of the search box (at most 2^9): constraints compare parameters
            # with each other (low < high < extreme ATR%), so a mixed corner can be the bad one
            for corner in itertools.product(("low", "high"), repeat=len(tuned)):
                for n, end in zip(tuned, corner, strict=True):
                    getattr(self, n)._value = getattr(getattr(self, n), end)
                try:
                    self.selector_config()
                    self.regime_thresholds()
                except OperationalException as exc:
                    at = ", ".join(f"{n}={getattr(self, n)._value}" for n in tuned)
                    raise OperationalException(
                        f"hyperopt --spaces {' '.join(self.config.get('spaces') or ())}: the "
                        f"settings are invalid at a corner of the search ranges ({at}): {exc}. "
                        "Change that config key, or leave the space out."
                    ) from exc
        finally:
            for n, value in saved.items():
                getattr(self, n)._value = value
        sel = self.ms_config.selector
        if "learner_epsilon" in tuned and (sel.policy != "epsilon_greedy"
                                           or "epsilon" in sel.policy_params):
            logger.warning("[RL] learner_epsilon is tuned but has no effect: policy %s%s",
                           sel.policy, " with policy_params.epsilon" if sel.policy ==
                           "epsilon_greedy" else "")

    def _check_hyperopt_spaces(self) -> None:
        spaces = [str(s) for s in (self.config.get("spaces") or ["default"])]
        wrong = sorted({s for s in spaces if s in (*EXIT_SPACES, "all", "default")})
        if wrong:
            raise OperationalException(
                f"--spaces {' '.join(wrong)}: {type(self).__name__} exits through its TP/SL "
                f"profiles, and hyperopting {'/'.join(EXIT_SPACES)} would replace them. Use "
                "--spaces regime learner (regime thresholds, learner settings), plus buy/sell "
                "for parameters of your own entry signals."
            )
        full_info = self.ms_config.full_info
        if "learner" in spaces and full_info is not None:
            raise OperationalException(
                f"--spaces learner tunes the seeds' bandit (epsilon, alpha, min_samples), but "
                f"metastrategy.policy is {full_info.policy!r} (full information), which does "
                "not use them: drop 'learner' from --spaces, or set \"policy\": "
                "\"epsilon_greedy\" to tune the seeds' learner"
            )

    def _log_settings(self) -> None:
        level = logging.INFO if self._live or self._runmode in (
            RunMode.BACKTEST, RunMode.HYPEROPT) else logging.DEBUG
        if self._runmode == RunMode.HYPEROPT:
            spaces = set(self.config.get("spaces") or ())
            tuned = [name for name in (*REGIME_PARAMETERS, *LEARNER_PARAMETERS)
                     if getattr(self, name).space in spaces]
            logger.log(level, "[REGIME] hyperopt tunes %s per epoch; every epoch learns from "
                       "a fresh %s table, seed %s", ", ".join(tuned) or "nothing of ours",
                       "pretrained" if self.ms_config.pretrained else "empty",
                       self.ms_config.selector.seed)
            return
        t, sel = self.regime_thresholds(), self.selector_config()
        logger.log(level, "[REGIME] thresholds: ADX > %g, |trend strength| > %g, ATR%% low "
                   "%g / high %g / extreme %g, 24h volume >= %g", t.trend_adx_threshold,
                   t.trend_strength_threshold, t.low_vol_atr_pct_threshold,
                   t.high_vol_atr_pct_threshold, t.extreme_vol_atr_pct_threshold,
                   t.illiquid_volume_threshold)
        logger.log(level, "[RL] learner: %s, epsilon %g, alpha %g, min_samples %d, seed %s",
                   sel.policy, sel.epsilon, sel.alpha, sel.min_samples, sel.seed)


__all__ = ["EXIT_SPACES", "LEARNER_PARAMETERS", "LIVE_MODES", "REGIME_PARAMETERS",
           "MetaHyperMixin"]
