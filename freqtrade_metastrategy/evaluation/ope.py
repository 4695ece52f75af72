"""Off-policy evaluation (OPE) of a target policy from a logged policy's decisions.

A live bot logs, per trade, the context (pair, regime), the profile chosen, the probability
with which its policy chose it (the propensity ``mu(a|x)``; the store's ledger keeps it when
``update_reward(..., probability=)`` is given) and the realized reward. From such a log
:func:`off_policy_evaluate` estimates the mean reward per trade that a *target* policy ``pi``
would have earned -- without running it:

* **IPS** (inverse propensity scoring): ``V = mean(w_i r_i)``, ``w_i = pi(a_i|x_i) /
  mu(a_i|x_i)``. Unbiased when every action ``pi`` takes has ``mu > 0``, also for an adaptive
  logging policy as long as the logged propensities are the ones used at decision time.
* **SNIPS** (self-normalised IPS): ``V = sum(w_i r_i) / sum(w_i)``; slightly biased,
  usually much lower variance, invariant to a constant shift of the rewards.
* **DM** (direct method): ``V = mean_i sum_a pi(a|x_i) q(x_i, a)`` with a reward model ``q``.
* **DR** (doubly robust, Dudik et al. 2011): ``V = mean_i [sum_a pi(a|x_i) q(x_i, a) +
  w_i (r_i - q(x_i, a_i))]``: unbiased if the propensities are right (whatever ``q``), and
  of lower variance than IPS when ``q`` is good.

Reward model (decided): by default ``q(x, a)`` is the mean logged reward of the cell
(``model_keys`` of the row, default the regime; action), falling back to the action's mean,
then to the overall mean when a cell is empty. It is **cross-fitted** (``cross_fit=K``, default
5): the rows are split into K contiguous blocks (whole clusters when clustering, so a week
never predicts itself) and each block's ``q`` is fitted on the other blocks, so a row's own
reward never enters its own prediction (which would bias DR towards DM and shrink its SE).
``cross_fit=1`` fits on the whole log. A callable ``reward_model(context, action) -> float``
can be given instead (used as is).

Standard errors: each estimator is a mean of per-row terms (SNIPS: of its influence function
``w_i (r_i - V) / mean(w)``); ``se`` is their i.i.d. standard error and ``se_clustered`` the
CR1 cluster-robust one (see :mod:`.metrics`) when ``cluster`` is given (e.g. ``"week"`` of the
``time`` column). They ignore the estimation error of the reward model (DM's SE is therefore
optimistic). Diagnostics: ``ess`` = ``(sum w)^2 / sum w^2`` (effective sample size),
``mean_weight`` (should be close to 1), ``max_weight``, and ``match_rate`` (share of rows
where ``pi`` could take the logged action).

Missing, non-finite, zero or > 1 propensities are refused with an error naming the row: a
logged choice has probability > 0 by definition, and IPS/DR cannot work without it. A ledger
has rows without one (trades adopted without the decision's frozen data): leave them out first
with :func:`drop_missing_probability` (the ``ope`` command does, and reports how many).

Which logs support which targets: IPS/DR need ``mu(a|x) > 0`` wherever ``pi(a|x) > 0``. An
epsilon-greedy logger gives every candidate at least ``epsilon / k`` (weights up to ``k /
epsilon``, e.g. 70 for 7 arms at 0.10: expect wide intervals and watch ``ess``); a
deterministic logger (UCB1, the heuristic phase of Thompson sampling, a static profile) has
probability 1 on its choice and 0 elsewhere, so any target differing from it is unidentified
and the estimates silently miss that part (``match_rate`` shows it). Thompson sampling's
propensities are Monte-Carlo estimates (at least ``1 / propensity_samples``).

>>> log = pd.DataFrame({"pair": ["A"] * 4, "regime": ["trend_up"] * 4,
...                     "action": ["x", "y", "x", "y"], "probability": [0.5] * 4,
...                     "reward": [1.0, 0.0, 3.0, 0.0]})
>>> res = off_policy_evaluate(log, static_target("x"), cross_fit=1)
>>> res.ips.value, res.snips.value, res.dr.value
(2.0, 2.0, 2.0)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import pandas as pd

from freqtrade_metastrategy.errors import EvaluationError
from freqtrade_metastrategy.evaluation.metrics import CLUSTERINGS, cluster_ids, sum_stats
from freqtrade_metastrategy.evaluation.outcomes import FloatArray, IntArray
from freqtrade_metastrategy.evaluation.replay import ReplayResult
from freqtrade_metastrategy.store.base import LedgerRow

__all__ = [
    "ESTIMATORS",
    "Estimate",
    "OPEError",
    "OPEResult",
    "RewardModel",
    "TargetPolicy",
    "dr_estimate",
    "drop_missing_probability",
    "ips_estimate",
    "log_from_ledger",
    "log_from_replay",
    "mapping_target",
    "off_policy_evaluate",
    "snips_estimate",
    "static_target",
    "uniform_target",
]


#: A target policy: context (the row's context columns) -> {action: probability}.
TargetPolicy = Callable[[Mapping[str, Any]], Mapping[str, float]]
#: A reward model: (context, action) -> expected reward.
RewardModel = Callable[[Mapping[str, Any], str], float]

ESTIMATORS: Final[tuple[str, ...]] = ("ips", "snips", "dm", "dr")
_PROB_TOL: Final = 1e-6


class OPEError(EvaluationError):
    """The log or the target policy cannot be used for off-policy evaluation."""


# -- target policies ---------------------------------------------------------------------------
def static_target(action: str) -> TargetPolicy:
    """Always ``action``.

    >>> static_target("scalp")({"regime": "trend_up"})
    {'scalp': 1.0}
    """
    def target(_: Mapping[str, Any]) -> Mapping[str, float]:
        return {action: 1.0}

    return target


def mapping_target(
    mapping: Mapping[str, str], *, key: str = "regime", default: str | None = None
) -> TargetPolicy:
    """The action ``mapping[context[key]]`` (``default`` for unmapped values, else an error).

    >>> mapping_target({"trend_up": "ultra_aggressive"})({"regime": "trend_up"})
    {'ultra_aggressive': 1.0}
    """
    def target(ctx: Mapping[str, Any]) -> Mapping[str, float]:
        value = str(ctx[key])
        if value in mapping:
            return {mapping[value]: 1.0}
        if default is None:
            raise OPEError(f"mapping_target: no action for {key}={value!r} and no default")
        return {default: 1.0}

    return target


def uniform_target(
    actions: Sequence[str] | Callable[[Mapping[str, Any]], Sequence[str]],
) -> TargetPolicy:
    """Uniform over ``actions`` (a list, or a function of the context such as the regime's
    candidates).

    >>> uniform_target(["a", "b"])({})
    {'a': 0.5, 'b': 0.5}
    """
    def target(ctx: Mapping[str, Any]) -> Mapping[str, float]:
        acts = list(actions(ctx) if callable(actions) else actions)
        if not acts:
            raise OPEError("uniform_target: no action for this context")
        return dict.fromkeys(acts, 1.0 / len(acts))

    return target


# -- logs --------------------------------------------------------------------------------------
def log_from_ledger(rows: Iterable[LedgerRow]) -> pd.DataFrame:
    """A log from the store's ledger: columns ``trade_id``, ``pair``, ``regime``, ``action``,
    ``probability`` (NaN when not recorded), ``reward``, ``time`` (settlement time, UTC;
    NaT when not recorded -- clustering by week then needs another time column)."""
    recs = [
        {"trade_id": r.trade_id, "pair": r.symbol, "regime": r.regime, "action": r.strategy,
         "probability": math.nan if r.probability is None else r.probability,
         "reward": r.reward, "time": r.settled_at}
        for r in rows
    ]
    frame = pd.DataFrame(recs, columns=["trade_id", "pair", "regime", "action", "probability",
                                        "reward", "time"])
    frame["time"] = pd.to_datetime(frame["time"], utc=True)
    return frame


def drop_missing_probability(
    log: pd.DataFrame, probability: str = "probability"
) -> tuple[pd.DataFrame, int]:
    """The rows with a logging probability (missing = None/NaN), and how many were left out.

    >>> drop_missing_probability(pd.DataFrame({"probability": [0.5, None, 1.0]}))[1]
    1
    """
    missing = log[probability].isna().to_numpy()
    kept = log.loc[~missing].reset_index(drop=True)
    return kept, int(missing.sum())


def log_from_replay(
    result: ReplayResult, policy: str, *, unit: str | None = None
) -> pd.DataFrame:
    """The decisions of a replayed policy as a log (``time`` = signal time): lets OPE be
    checked against the exact full-information answer."""
    if policy not in result.choice:
        raise OPEError(f"unknown policy {policy!r}; replayed: {', '.join(result.policies)}")
    e = result.table.entries
    return pd.DataFrame({
        "entry_id": e["entry_id"].to_numpy(),
        "pair": e["pair"].to_numpy(),
        "regime": e["regime"].to_numpy(),
        "action": result.profiles_chosen(policy),
        "probability": result.probability[policy],
        "reward": result.rewards(policy, unit),
        "time": e["signal_time"],
    })


# -- estimates ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Estimate:
    """One estimate of the target's mean reward per trade."""

    estimator: str
    value: float
    se: float
    se_clustered: float
    n: int
    n_clusters: int

    def ci(self, z: float = 1.96, *, clustered: bool = False) -> tuple[float, float]:
        """``value -/+ z * SE`` (the clustered SE if asked and available)."""
        se = self.se_clustered if clustered and math.isfinite(self.se_clustered) else self.se
        return self.value - z * se, self.value + z * se

    def to_dict(self) -> dict[str, Any]:
        return {"estimator": self.estimator, "value": self.value, "se": self.se,
                "se_clustered": self.se_clustered, "n": self.n, "n_clusters": self.n_clusters}


def _from_terms(name: str, value: float, terms: FloatArray,
                clusters: IntArray | None) -> Estimate:
    s = sum_stats(terms, clusters)
    return Estimate(name, value, s.se_mean_iid, s.se_mean_clustered, s.n,
                    s.n_clusters if clusters is not None else 0)


def ips_estimate(rewards: FloatArray, weights: FloatArray,
                 clusters: IntArray | None = None) -> Estimate:
    """IPS: the mean of ``w * r``.

    >>> ips_estimate(np.array([1.0, 2.0]), np.array([2.0, 0.0])).value
    1.0
    """
    terms = np.asarray(weights, dtype=np.float64) * np.asarray(rewards, dtype=np.float64)
    return _from_terms("ips", float(terms.mean()), terms, clusters)


def snips_estimate(rewards: FloatArray, weights: FloatArray,
                   clusters: IntArray | None = None) -> Estimate:
    """Self-normalised IPS with a delta-method SE (NaN if every weight is 0).

    >>> snips_estimate(np.array([1.0, 2.0, 5.0]), np.array([2.0, 0.0, 2.0])).value
    3.0
    """
    w = np.asarray(weights, dtype=np.float64)
    r = np.asarray(rewards, dtype=np.float64)
    wsum = float(w.sum())
    if not wsum > 0:
        nan = math.nan
        return Estimate("snips", nan, nan, nan, len(r), 0)
    value = float((w * r).sum()) / wsum
    influence = w * (r - value) / (wsum / len(w))
    return _from_terms("snips", value, influence, clusters)


def dr_estimate(
    rewards: FloatArray, weights: FloatArray, q_logged: FloatArray, q_target: FloatArray,
    clusters: IntArray | None = None,
) -> Estimate:
    """Doubly robust: mean of ``q_target + w * (r - q_logged)``, where ``q_target[i] =
    sum_a pi(a|x_i) q(x_i, a)`` and ``q_logged[i] = q(x_i, a_i)``.

    >>> dr_estimate(np.array([1.0]), np.array([2.0]), np.array([0.5]), np.array([0.7])).value
    1.7
    """
    terms = np.asarray(q_target, dtype=np.float64) + np.asarray(weights, dtype=np.float64) * (
        np.asarray(rewards, dtype=np.float64) - np.asarray(q_logged, dtype=np.float64)
    )
    return _from_terms("dr", float(terms.mean()), terms, clusters)


@dataclass(frozen=True)
class OPEResult:
    """IPS, SNIPS, DM and DR estimates of the target's mean reward per trade, the logged
    policy's own mean (``logged``) and weight diagnostics (see module doc)."""

    ips: Estimate
    snips: Estimate
    dm: Estimate
    dr: Estimate
    logged: Estimate
    n: int
    ess: float
    mean_weight: float
    max_weight: float
    match_rate: float
    reward_model: str

    @property
    def estimates(self) -> tuple[Estimate, ...]:
        return (self.ips, self.snips, self.dm, self.dr, self.logged)

    def table(self) -> pd.DataFrame:
        return pd.DataFrame([e.to_dict() for e in self.estimates]).set_index("estimator")

    def to_dict(self) -> dict[str, Any]:
        return {
            "estimates": [e.to_dict() for e in self.estimates],
            "n": self.n, "ess": self.ess, "mean_weight": self.mean_weight,
            "max_weight": self.max_weight, "match_rate": self.match_rate,
            "reward_model": self.reward_model,
        }


# -- validation and the reward model --------------------------------------------------------
def _propensities(log: pd.DataFrame, col: str) -> FloatArray:
    raw = pd.to_numeric(log[col], errors="coerce").to_numpy(dtype=np.float64)
    bad = ~np.isfinite(raw)
    if bool(bad.any()):
        i = int(np.argmax(bad))
        raise OPEError(
            f"row {i}: logging probability {log[col].iloc[i]!r} is missing or not a number; "
            "IPS/DR need the probability of every logged choice (record it with "
            "update_reward(..., probability=decision.probability)) -- drop such rows or "
            "evaluate them with another method"
        )
    bad = (raw <= 0.0) | (raw > 1.0 + _PROB_TOL)
    if bool(bad.any()):
        i = int(np.argmax(bad))
        raise OPEError(
            f"row {i}: logging probability {raw[i]!r} is outside (0, 1]; a logged choice "
            "was taken, so its probability cannot be 0 (check how the log was built)"
        )
    out: FloatArray = np.minimum(raw, 1.0)
    return out


def _target_probs(
    target: TargetPolicy, contexts: Sequence[Mapping[str, Any]]
) -> list[dict[str, float]]:
    out: list[dict[str, float]] = []
    for ctx in contexts:
        dist = {str(a): float(p) for a, p in target(ctx).items()}
        vals = np.array(list(dist.values()), dtype=np.float64)
        if not len(vals) or not bool(np.isfinite(vals).all()) or bool((vals < 0).any()):
            raise OPEError(f"target policy: invalid probabilities {dist!r} for context {ctx}")
        if abs(float(vals.sum()) - 1.0) > _PROB_TOL:
            raise OPEError(
                f"target policy: probabilities sum to {vals.sum():.6g}, not 1, for context "
                f"{dict(ctx)}"
            )
        out.append({a: p for a, p in dist.items() if p > 0})
    return out


def _folds(n: int, k: int, clusters: IntArray | None) -> IntArray:
    """Contiguous blocks of rows (or of clusters, in cluster-id order)."""
    if clusters is None:
        return np.asarray(np.arange(n) * k // max(n, 1), dtype=np.int64)
    _, codes = np.unique(clusters, return_inverse=True)
    g = int(codes.max()) + 1
    return np.asarray(codes * min(k, g) // g, dtype=np.int64)


class _CellMeans:
    """Mean reward per (key, action) with fallbacks to the action mean and the overall mean."""

    def __init__(self, keys: Sequence[tuple[Any, ...]], actions: Sequence[str],
                 rewards: FloatArray) -> None:
        cell: dict[tuple[tuple[Any, ...], str], list[float]] = {}
        act: dict[str, list[float]] = {}
        for key, a, r in zip(keys, actions, rewards, strict=True):
            c = cell.setdefault((key, a), [0.0, 0.0])
            c[0] += r
            c[1] += 1
            b = act.setdefault(a, [0.0, 0.0])
            b[0] += r
            b[1] += 1
        self.cell = {k: s / c for k, (s, c) in cell.items()}
        self.act = {k: s / c for k, (s, c) in act.items()}
        self.overall = float(np.mean(rewards)) if len(rewards) else 0.0

    def __call__(self, key: tuple[Any, ...], action: str) -> float:
        got = self.cell.get((key, action))
        if got is not None:
            return got
        return self.act.get(action, self.overall)


def _model_predictions(
    keys: list[tuple[Any, ...]], actions: list[str], rewards: FloatArray,
    target: list[dict[str, float]], folds: IntArray,
) -> tuple[FloatArray, FloatArray]:
    n = len(rewards)
    q_logged = np.empty(n)
    q_target = np.empty(n)
    for f in np.unique(folds):
        test = np.flatnonzero(folds == f)
        train = np.flatnonzero(folds != f) if len(np.unique(folds)) > 1 else test
        model = _CellMeans([keys[i] for i in train], [actions[i] for i in train],
                           rewards[train])
        for i in test:
            q_logged[i] = model(keys[i], actions[i])
            q_target[i] = sum(p * model(keys[i], a) for a, p in target[i].items())
    return q_logged, q_target


# -- the entry point ---------------------------------------------------------------------------
def off_policy_evaluate(  # noqa: C901 - validation then four estimators
    log: pd.DataFrame,
    target: TargetPolicy,
    *,
    context: Sequence[str] = ("pair", "regime"),
    action: str = "action",
    probability: str = "probability",
    reward: str = "reward",
    model_keys: Sequence[str] = ("regime",),
    reward_model: RewardModel | None = None,
    cross_fit: int = 5,
    cluster: str | None = None,
    time: str = "time",
) -> OPEResult:
    """Estimate the mean reward per trade of ``target`` from ``log`` (see module doc).

    :param log: one row per logged decision with the ``context`` columns, ``action``,
        ``probability`` (the logging propensity) and ``reward`` columns.
    :param target: context dict -> {action: probability} (see :func:`static_target`,
        :func:`mapping_target`, :func:`uniform_target`).
    :param model_keys: columns of the built-in cell-mean reward model (with the action).
    :param reward_model: a callable ``(context, action) -> reward`` instead of it.
    :param cross_fit: folds of the built-in model (1 = no cross-fitting).
    :param cluster: ``week``, ``day``, ``month`` (of the ``time`` column) or ``None``.
    """
    if not isinstance(log, pd.DataFrame):
        raise OPEError("log: expected a pandas DataFrame")
    need = [*context, action, probability, reward]
    if reward_model is None:
        need += list(model_keys)
    missing = [c for c in dict.fromkeys(need) if c not in log.columns]
    if missing:
        raise OPEError(f"log: missing column(s) {', '.join(missing)}")
    n = len(log)
    if n == 0:
        raise OPEError("log: no rows")
    if isinstance(cross_fit, bool) or not isinstance(cross_fit, int) or cross_fit < 1:
        raise OPEError(f"cross_fit: must be an integer >= 1, got {cross_fit!r}")
    mu = _propensities(log, probability)
    r = pd.to_numeric(log[reward], errors="coerce").to_numpy(dtype=np.float64)
    if not bool(np.isfinite(r).all()):
        i = int(np.argmax(~np.isfinite(r)))
        raise OPEError(f"row {i}: reward {log[reward].iloc[i]!r} is not a finite number")
    acts = [str(a) for a in log[action]]

    clusters: IntArray | None = None
    if cluster is not None:
        if cluster not in CLUSTERINGS:
            raise OPEError(f"cluster {cluster!r}: must be one of {', '.join(CLUSTERINGS)}")
        if time not in log.columns:
            raise OPEError(f"cluster={cluster!r} needs a {time!r} column")
        times = pd.to_datetime(log[time], utc=True)
        if bool(times.isna().any()):
            raise OPEError(f"cluster={cluster!r}: column {time!r} has missing times")
        clusters = cluster_ids(pd.DatetimeIndex(times), cluster)

    # target probabilities, one call per distinct context
    ctx_frame = log[list(context)]
    ctx_keys = list(ctx_frame.itertuples(index=False, name=None))
    uniq = list(dict.fromkeys(ctx_keys))
    dists = _target_probs(target, [dict(zip(context, k, strict=True)) for k in uniq])
    by_ctx = dict(zip(uniq, dists, strict=True))
    pi_rows = [by_ctx[k] for k in ctx_keys]
    pi_logged = np.array([d.get(a, 0.0) for d, a in zip(pi_rows, acts, strict=True)])
    w = pi_logged / mu

    if reward_model is None:
        mkeys = list(log[list(model_keys)].itertuples(index=False, name=None))
        folds = (_folds(n, cross_fit, clusters) if cross_fit > 1
                 else np.zeros(n, dtype=np.int64))
        q_logged, q_target = _model_predictions(mkeys, acts, r, pi_rows, folds)
        k = len(np.unique(folds))
        model_name = (f"cell means by ({', '.join(model_keys)}, action)"
                      + (f", {k}-fold cross-fitted" if k > 1 else ", in-sample"))
    else:
        ctx_dicts = {k: dict(zip(context, k, strict=True)) for k in uniq}
        q_logged = np.array([float(reward_model(ctx_dicts[k], a))
                             for k, a in zip(ctx_keys, acts, strict=True)])
        q_target = np.array([sum(p * float(reward_model(ctx_dicts[k], a)) for a, p in d.items())
                             for k, d in zip(ctx_keys, pi_rows, strict=True)])
        model_name = "user reward model"
        if not (bool(np.isfinite(q_logged).all()) and bool(np.isfinite(q_target).all())):
            raise OPEError("reward_model returned a non-finite value")

    wsum = float(w.sum())
    wsq = float((w * w).sum())
    return OPEResult(
        ips=ips_estimate(r, w, clusters),
        snips=snips_estimate(r, w, clusters),
        dm=_from_terms("dm", float(q_target.mean()), q_target, clusters),
        dr=dr_estimate(r, w, q_logged, q_target, clusters),
        logged=_from_terms("logged", float(r.mean()), r, clusters),
        n=n,
        ess=wsum * wsum / wsq if wsq > 0 else 0.0,
        mean_weight=wsum / n,
        max_weight=float(w.max()),
        match_rate=float((pi_logged > 0).mean()),
        reward_model=model_name,
    )
