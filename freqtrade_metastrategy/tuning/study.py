"""The Optuna study of a ``tune`` run: storage, the study's identity, trials, and reading back.

A study is kept in memory (one worker, like ``freqtrade hyperopt``) or in Optuna's RDB storage
(``--storage postgresql://...`` or ``sqlite:///file``), where several workers, on one machine
or many, add trials to one study and any of them reads the same best trial.

**Identity.** A study records what its trials mean (:func:`study_identity`: the search space
with its ranges, the objective, the reward unit, the walk-forward, the policy and the key of
the data); a worker whose identity differs is refused before it runs a trial, so one study
never mixes trials of two spaces. **Sampling.** Optuna's TPE, seeded: the same seed and
settings give the same trials. With a shared storage, the constant-liar heuristic keeps
workers from sampling the same point while a trial runs; give each worker its own ``--seed``.

Each trial stores its in-sample and out-of-sample figures and its weekly OOS series (the
periods of the overfitting checks) as user attributes, so the report can be rebuilt from the
storage alone, whichever worker ran the trial.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import numpy as np
import numpy.typing as npt

from freqtrade_metastrategy.errors import ConfigError
from freqtrade_metastrategy.tuning.objective import FIGURES, TrialEvaluator, TrialResult
from freqtrade_metastrategy.tuning.space import Parameter, SearchSpace

if TYPE_CHECKING:
    import optuna

__all__ = [
    "IDENTITY_ATTR",
    "CompletedTrial",
    "completed_trials",
    "open_storage",
    "open_study",
    "run_trials",
    "study_identity",
]

FloatArray = npt.NDArray[np.float64]
#: The study user attribute holding :func:`study_identity`.
IDENTITY_ATTR: Final = "metastrategy_tune"
#: Attempts at opening a reachable storage (two workers creating Optuna's tables at once on a
#: new database collide: the second retries and finds them).
_STORAGE_ATTEMPTS: Final = 5


def study_identity(space: SearchSpace, *, objective: str, unit: str, walk_forward: str,
                   data_key: str) -> dict[str, Any]:
    """What a study's trials mean (a worker with another identity is refused)."""
    cfg = space.base
    policy = cfg.full_info.policy if cfg.full_info is not None else cfg.selector.policy
    return {"space": space.signature(), "objective": objective, "unit": unit,
            "walk_forward": walk_forward, "policy": policy, "data": data_key}


def _describe_difference(old: Mapping[str, Any], new: Mapping[str, Any]) -> str:
    diffs = []
    for key in sorted(set(old) | set(new)):
        if old.get(key) != new.get(key):
            if key == "space":
                o, n = old.get(key) or {}, new.get(key) or {}
                added = sorted(set(n) - set(o))
                gone = sorted(set(o) - set(n))
                ranged = sorted(k for k in set(o) & set(n) if o[k] != n[k])
                parts = ([f"adds {', '.join(added)}"] if added else []) + (
                    [f"drops {', '.join(gone)}"] if gone else []) + (
                    [f"changes the range of {', '.join(ranged)}"] if ranged else [])
                diffs.append(f"the search space ({'; '.join(parts)})")
            elif key == "data":
                diffs.append("the data (strategy, config, candles, timerange or the plugin's "
                             "version)")
            else:
                diffs.append(f"{key} ({old.get(key)!r} in the study, {new.get(key)!r} now)")
    return ", ".join(diffs)


def open_storage(url: str | None) -> optuna.storages.BaseStorage | None:
    """Optuna's RDB storage at ``url`` (connected and checked), or None (in memory).

    :raises ConfigError: ``--storage``, password masked, when it cannot be reached.
    """
    if url is None:
        return None
    import optuna
    import sqlalchemy as sa

    from freqtrade_metastrategy.store.engine import db_error, default_pg_driver, mask_password

    shown = mask_password(url)
    try:
        parsed = default_pg_driver(sa.make_url(url))
    except (sa.exc.ArgumentError, ValueError) as exc:
        raise ConfigError(f"--storage {shown}", f"is not a database URL ({type(exc).__name__}); "
                          "e.g. postgresql://user:password@host:5432/db or "
                          "sqlite:///user_data/tune.sqlite") from None
    engine_kwargs: dict[str, Any] = {"pool_pre_ping": True}
    if parsed.get_backend_name() == "postgresql":
        engine_kwargs["connect_args"] = {"connect_timeout": 10}
    last: Exception = RuntimeError("no attempt")
    for attempt in range(_STORAGE_ATTEMPTS):
        try:
            return optuna.storages.RDBStorage(parsed.render_as_string(hide_password=False),
                                              engine_kwargs=engine_kwargs)
        except sa.exc.OperationalError as exc:  # no connection: no point in retrying
            last = exc
            break
        except Exception as exc:  # workers creating Optuna's tables at once collide
            last = exc
            time.sleep(0.2 * (attempt + 1))
    raise ConfigError(
        f"--storage {shown}",
        f"cannot be reached ({db_error(last).replace(url, shown)}); check the host, port, "
        "user, password and that the database exists, or leave --storage out to keep "
        "the study in memory") from None


def open_study(storage: optuna.storages.BaseStorage | None, name: str,
               identity: Mapping[str, Any], seed: int) -> optuna.Study:
    """The study ``name`` in ``storage`` (created if absent), sampled by a seeded TPE.

    :raises ConfigError: ``--study NAME`` exists with another identity (nothing is written).
    """
    import optuna

    optuna.logging.set_verbosity(logging.WARNING)
    sampler = optuna.samplers.TPESampler(seed=seed, constant_liar=storage is not None)
    identity = json.loads(json.dumps(identity))
    if storage is not None:
        try:
            sid = storage.get_study_id_from_name(name)
        except KeyError:
            sid = None
        if sid is not None:
            _check_identity(storage.get_study_user_attrs(sid).get(IDENTITY_ATTR), identity,
                            name)
    study = optuna.create_study(study_name=name, storage=storage, sampler=sampler,
                                direction="maximize", load_if_exists=True)
    stored = study.user_attrs.get(IDENTITY_ATTR)
    if stored is None:
        study.set_user_attr(IDENTITY_ATTR, identity)
        # two workers creating it at once: the first identity written wins, check again
        stored = optuna.load_study(study_name=name, storage=study._storage).user_attrs.get(
            IDENTITY_ATTR)
    _check_identity(stored, identity, name)
    return study


def _check_identity(stored: Any, identity: Mapping[str, Any], name: str) -> None:
    if stored is None or stored == identity:
        return
    raise ConfigError(
        f"--study {name}",
        f"was created with other settings: {_describe_difference(stored, identity)}; give "
        "another --study name, or run with the study's settings to resume it")


def _suggest(trial: optuna.Trial, p: Parameter) -> float:
    """``p``'s value for ``trial``: sampled continuous over the range widened by half a step
    at each end, then snapped to the grid (every grid point, the ends too, gets a whole
    step's share, as Optuna's own stepped sampling); the trial evaluates it and the parameter
    file holds it. A stepped or integer parameter would cost TPE a pure-Python Gaussian mass
    per grid bin (most of a trial's time); a continuous one is scored in closed form."""
    half = p.step / 2.0
    raw = trial.suggest_float(p.name, p.low - half, p.high + half, log=p.log)
    return p.sampled(raw)


def run_trials(study: optuna.Study, evaluator: TrialEvaluator, *, n_trials: int,
               objective: str, callback: Callable[[TrialResult], None] | None = None) -> None:
    """Run ``n_trials`` trials of ``evaluator`` in ``study`` (each keeps its figures)."""
    import optuna

    optuna.logging.set_verbosity(logging.WARNING)

    def run(trial: optuna.Trial) -> float:
        values = {p.name: _suggest(trial, p) for p in evaluator.space.parameters}
        res = evaluator.evaluate(values)
        for key, value in res.summary().items():
            trial.set_user_attr(key, value)
        trial.set_user_attr("weekly", [round(float(v), 10)
                                       for v in evaluator.weekly(res.oos)])
        if callback is not None:
            callback(res)
        return res.objective(objective)

    if n_trials > 0:
        study.optimize(run, n_trials=n_trials, gc_after_trial=False)


@dataclass(frozen=True)
class CompletedTrial:
    """A completed trial as stored (whichever worker ran it)."""

    number: int
    value: float
    params: Mapping[str, float]
    figures: Mapping[str, float]
    weekly: FloatArray


def completed_trials(study: optuna.Study) -> list[CompletedTrial]:
    """Every completed trial of ``study``, by number."""
    import optuna

    out = []
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
        if t.value is None or "weekly" not in t.user_attrs:
            continue
        out.append(CompletedTrial(
            number=t.number, value=float(t.value),
            params={k: float(v) for k, v in t.params.items()},
            figures={k: float(t.user_attrs[k]) for k in FIGURES if k in t.user_attrs},
            weekly=np.asarray(t.user_attrs["weekly"], dtype=np.float64)))
    return sorted(out, key=lambda c: c.number)
