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
from freqtrade_metastrategy.fullinfo import FullInfoConfig
from freqtrade_metastrategy.regime import RegimeThresholds
from freqtrade_metastrategy.selector import SelectorConfig
from freqtrade_metastrategy.tuning.space import PARAMETERS, acts_on, configured_value

logger = logging.getLogger(__name__)

LIVE_MODES: Final = (RunMode.LIVE, RunMode.DRY_RUN)
#: Hyperoptable parameter -> (RegimeThresholds field, scale from parameter to field).
REGIME_PARAMETERS: dict[str, tuple[str, float]] = {
    n: (p.field, p.scale) for n, p in PARAMETERS.items() if p.space == "regime"}
#: Hyperoptable parameter -> SelectorConfig field (the seeds' bandit).
LEARNER_PARAMETERS: dict[str, str] = {
    n: p.field for n, p in PARAMETERS.items() if p.space == "learner"}
#: Hyperoptable parameter -> FullInfoConfig field (the full-information policies).
FULLINFO_PARAMETERS: dict[str, str] = {
    n: p.field for n, p in PARAMETERS.items() if p.space == "fullinfo"}
#: Hyperopt spaces that would replace the profiles' exits (MetaStrategy refuses them).
EXIT_SPACES: Final = ("roi", "stoploss", "trailing")


def _parameter(name: str) -> DecimalParameter | IntParameter:
    """Freqtrade's parameter for :data:`PARAMETERS` ``[name]`` (its space, range and grid)."""
    p = PARAMETERS[name]
    if p.is_int:
        return IntParameter(int(p.low), int(p.high), default=int(p.default), space=p.space)
    return DecimalParameter(p.low, p.high, default=p.default, decimals=p.decimals,
                            space=p.space)


class MetaHyperMixin(IStrategy):  # type: ignore[misc]  # freqtrade is untyped (Any)
    """Hyperoptable regime thresholds and learner settings, and the values in effect."""

    #: The plugin's configuration (set by the strategy's ``__init__``).
    ms_config: MetaStrategyConfig

    # -- hyperoptable (``freqtrade hyperopt --spaces regime learner``) ------------------------
    # Defaults are the seeds'. Precedence for each: the value hyperopt is trying (in its own
    # run), else the strategy's parameter file (``MetaStrategy.json``, written by hyperopt),
    # else ``metastrategy.thresholds`` / the learner keys of the config, else the default.
    # The ATR% ranges do not overlap, so every sample keeps low < high < extreme.
    # Ranges, grids and defaults: :data:`freqtrade_metastrategy.tuning.space.PARAMETERS` (the
    # search space ``freqtrade-metastrategy tune`` shares).
    regime_trend_adx = _parameter("regime_trend_adx")
    regime_trend_strength = _parameter("regime_trend_strength")
    regime_low_vol_atr_pct = _parameter("regime_low_vol_atr_pct")
    regime_high_vol_atr_pct = _parameter("regime_high_vol_atr_pct")
    regime_extreme_vol_atr_pct = _parameter("regime_extreme_vol_atr_pct")
    regime_illiquid_volume_musd = _parameter("regime_illiquid_volume_musd")
    learner_epsilon = _parameter("learner_epsilon")
    learner_alpha = _parameter("learner_alpha")
    learner_min_samples = _parameter("learner_min_samples")
    fullinfo_half_life = _parameter("fullinfo_half_life")
    fullinfo_alpha = _parameter("fullinfo_alpha")
    fullinfo_min_signals = _parameter("fullinfo_min_signals")
    fullinfo_stand_aside_margin = _parameter("fullinfo_stand_aside_margin")
    fullinfo_switch_margin = _parameter("fullinfo_switch_margin")
    fullinfo_ridge_lambda = _parameter("fullinfo_ridge_lambda")

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

    def full_info_config(self) -> FullInfoConfig | None:
        """The full-information policy's settings in effect (hyperopt epoch, parameter file,
        config, default), or None when the config selects a bandit."""
        base = self.ms_config.full_info
        if base is None:
            return None
        values: dict[str, Any] = {
            field: self._tuned(name, float(getattr(base, field)))
            for name, field in FULLINFO_PARAMETERS.items()
        }
        values["min_signals"] = round(values["min_signals"])
        try:
            return dataclasses.replace(base, **values)
        except ConfigError as exc:
            raise OperationalException(f"Full-information settings: {exc}") from exc

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
        return {name: configured_value(self.ms_config, name) for name in PARAMETERS}

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
            if from_file is not None and configured != configured_value(defaults, name) and (
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
        Every corner of each space's search box is tried: each constraint is monotone in each
        parameter, and only compares parameters of one space (each space sets one settings
        object), so the spaces' corners need not be combined.
        """
        tuned = [n for n in PARAMETERS if self._is_tuned(n)]
        if not tuned:
            return
        saved = {n: getattr(self, n)._value for n in tuned}
        spaces: dict[str, list[str]] = {}
        for n in tuned:
            spaces.setdefault(PARAMETERS[n].space, []).append(n)
        try:
            # constraints compare parameters with each other (low < high < extreme ATR%), so a
            # mixed corner can be the bad one
            for names in spaces.values():
                for corner in itertools.product(("low", "high"), repeat=len(names)):
                    for n, end in zip(names, corner, strict=True):
                        getattr(self, n)._value = getattr(getattr(self, n), end)
                    try:
                        self.selector_config()
                        self.regime_thresholds()
                        self.full_info_config()
                    except OperationalException as exc:
                        at = ", ".join(f"{n}={getattr(self, n)._value}" for n in names)
                        raise OperationalException(
                            f"hyperopt --spaces {' '.join(self.config.get('spaces') or ())}: "
                            f"the settings are invalid at a corner of the search ranges ({at}): "
                            f"{exc}. Change that config key, or leave the space out."
                        ) from exc
                for n in names:
                    getattr(self, n)._value = saved[n]
        finally:
            for n, value in saved.items():
                getattr(self, n)._value = value
        sel = self.ms_config.selector
        if "learner_epsilon" in tuned and not acts_on("learner_epsilon", self.ms_config):
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
        if "fullinfo" in spaces and full_info is None:
            raise OperationalException(
                f"--spaces fullinfo tunes the full-information policy (half-life, warm-up, "
                f"margins, ridge), but metastrategy.policy is "
                f"{self.ms_config.selector.policy!r} (a bandit), which does not use them: drop "
                "'fullinfo' from --spaces, or tune 'learner' (the bandit's settings)"
            )
        if "fullinfo" in spaces and full_info is not None and self.ms_config.pretrained and (
                full_info.estimator in ("discounted", "ema")):
            raise OperationalException(
                "--spaces fullinfo tunes the learner's memory (fullinfo_half_life / "
                "fullinfo_alpha), but metastrategy.pretrained starts every epoch from a "
                "learner that already learned with its own memory: pretrain once per "
                "candidate instead, or drop metastrategy.pretrained for the hyperopt, or use "
                "freqtrade-metastrategy tune (it replays from an empty learner per fold)"
            )
        if "learner" in spaces and full_info is not None:
            raise OperationalException(
                f"--spaces learner tunes the seeds' bandit (epsilon, alpha, min_samples), but "
                f"metastrategy.policy is {full_info.policy!r} (full information), which does "
                "not use them: tune 'fullinfo' instead, or set \"policy\": "
                "\"epsilon_greedy\" to tune the seeds' learner"
            )

    def _log_settings(self) -> None:
        level = logging.INFO if self._live or self._runmode in (
            RunMode.BACKTEST, RunMode.HYPEROPT) else logging.DEBUG
        if self._runmode == RunMode.HYPEROPT:
            spaces = set(self.config.get("spaces") or ())
            tuned = [name for name in PARAMETERS if getattr(self, name).space in spaces]
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
        fi = self.full_info_config()
        if fi is not None:
            logger.log(level, "[RL] learner: %s (full information), %s estimator, half-life %g, "
                       "min_signals %d, stand aside %s (margin %g R)%s", fi.policy, fi.estimator,
                       fi.half_life, fi.min_signals, fi.stand_aside, fi.stand_aside_margin,
                       f", ridge lambda {fi.ridge_lambda:g}, switch margin {fi.switch_margin:g}"
                       if fi.policy == "contextual_ridge" else "")
            return
        logger.log(level, "[RL] learner: %s, epsilon %g, alpha %g, min_samples %d, seed %s",
                   sel.policy, sel.epsilon, sel.alpha, sel.min_samples, sel.seed)


__all__ = ["EXIT_SPACES", "FULLINFO_PARAMETERS", "LEARNER_PARAMETERS", "LIVE_MODES",
           "REGIME_PARAMETERS", "MetaHyperMixin"]
