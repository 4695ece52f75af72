"""Metrics of replayed policies, with standard errors clustered by week.

Per policy (:attr:`Metrics.summary`), over the entries of a :class:`~.replay.ReplayResult`
and in its reward unit:

* ``trades``, ``total`` (the plain sum of per-trade rewards -- for ``ret_pct`` a sum of
  percentages, not a compounded return), ``mean``, ``sd`` (ddof=1);
* ``sharpe``: ``mean / sd`` of the *per-trade* reward. It is not annualised (trades are
  irregular in time); multiply by ``sqrt(trades per year)`` for an i.i.d. annual figure;
* ``win_rate``: share of trades with reward > 0 (a zero reward is not a win);
* ``max_drawdown``: the largest peak-to-trough fall of the cumulative reward, trades taken in
  ``exit_time`` order (ties in decision order), starting from 0 (a first loss is a drawdown);
  reported as a positive number in the reward unit;
* ``se_mean_iid`` / ``se_mean_clustered`` of the mean reward and their ratio.

Regret (:attr:`Metrics.regret`), for each policy against each comparator (by default the best
static profile in hindsight and the per-regime oracle): the paired per-entry differences
``d_i = comparator_i - policy_i`` (positive = the policy did worse), ``regret_total = sum d_i``
and ``regret_mean = mean d_i``.

Standard errors. With ``n`` entries, ``u_i = d_i - mean(d)``, clusters ``g`` (default: the ISO
week of ``signal_time``; ``G`` clusters):

* i.i.d.: ``SE(mean) = sd(d) / sqrt(n)`` and ``SE(total) = n * SE(mean) = sqrt(n) * sd(d)``;
* clustered (CR1, the Stata/``statsmodels`` cluster-robust variance of a regression on a
  constant): ``SE(mean) = sqrt(G / (G - 1) * sum_g (sum_{i in g} u_i)^2) / n`` and
  ``SE(total) = n * SE(mean) = sqrt(G / (G - 1) * sum_g (sum_{i in g} u_i)^2)``.

The residuals are centred; the uncentred form ``sum_g (sum_{i in g} d_i)^2`` (the variance
under the null "no regret") coincides when ``mean(d) = 0`` and is larger otherwise. Trades of
the same week share the market, so their differences are correlated; the i.i.d. SE then
understates the uncertainty (by 1.5-3x on real data per the prior art) -- ``se_ratio`` =
clustered / i.i.d. shows by how much. With fewer than ~30 clusters CR1 is itself biased down;
with one cluster it is undefined (NaN). The SEs are conditional on the comparator: the
hindsight choice of "the best static profile" is not accounted for.

:attr:`Metrics.by_year` breaks the same numbers down per calendar year (UTC) of
``signal_time`` (regret against the comparators chosen on the whole range, so the yearly
regrets add up to the total).

>>> stats = sum_stats(np.array([1.0, 2.0, 3.0, 4.0]), np.array([0, 0, 1, 1]))
>>> stats.total, stats.mean, round(stats.se_mean_iid, 4), round(stats.se_mean_clustered, 4)
(10.0, 2.5, 0.6455, 1.0)
>>> max_drawdown(np.array([1.0, -2.0, 3.0, -1.0, -1.0, -1.0]))
3.0
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import pandas as pd

from freqtrade_metastrategy.errors import EvaluationError
from freqtrade_metastrategy.evaluation.outcomes import FloatArray, IntArray
from freqtrade_metastrategy.evaluation.replay import ReplayResult

__all__ = [
    "CLUSTERINGS",
    "DEFAULT_COMPARATORS",
    "Metrics",
    "SumStats",
    "cluster_ids",
    "compute_metrics",
    "max_drawdown",
    "policy_stats",
    "sharpe",
    "sum_stats",
]


#: How trades can be clustered for the standard errors.
CLUSTERINGS: Final[tuple[str, ...]] = ("week", "day", "month", "none")
#: Regret comparators used when present in the replay.
DEFAULT_COMPARATORS: Final[tuple[str, ...]] = ("best_static", "oracle_regime")


# -- elementary statistics ---------------------------------------------------------------------
def cluster_ids(times: pd.DatetimeIndex | pd.Series | IntArray, how: str = "week") -> IntArray:
    """An integer cluster id per time: ISO ``week`` (year*100 + ISO week: 2021-01-03, a
    Sunday, is in week 53 of 2020), calendar ``day`` or ``month`` (UTC), or ``none`` (every
    trade its own cluster). Integers are taken as ns since the epoch.

    >>> t = pd.DatetimeIndex(["2020-12-31", "2021-01-03", "2021-01-04"], tz="UTC")
    >>> cluster_ids(t).tolist()
    [202053, 202053, 202101]
    """
    if how not in CLUSTERINGS:
        raise EvaluationError(f"cluster {how!r}: must be one of {', '.join(CLUSTERINGS)}")
    if isinstance(times, np.ndarray):
        idx = pd.DatetimeIndex(pd.to_datetime(times.astype(np.int64), unit="ns", utc=True))
    else:
        idx = pd.DatetimeIndex(times)
        idx = idx.tz_localize("UTC") if idx.tz is None else idx.tz_convert("UTC")
    n = len(idx)
    if how == "none":
        return np.arange(n, dtype=np.int64)
    if how == "day":
        return np.asarray(idx.year * 10000 + idx.month * 100 + idx.day, dtype=np.int64)
    if how == "month":
        return np.asarray(idx.year * 100 + idx.month, dtype=np.int64)
    iso = idx.isocalendar()
    return np.asarray(iso["year"].to_numpy() * 100 + iso["week"].to_numpy(), dtype=np.int64)


@dataclass(frozen=True)
class SumStats:
    """Total and mean of a sample with i.i.d. and cluster-robust (CR1) standard errors."""

    n: int
    total: float
    mean: float
    sd: float
    se_mean_iid: float
    se_mean_clustered: float
    n_clusters: int

    @property
    def se_total_iid(self) -> float:
        return self.n * self.se_mean_iid

    @property
    def se_total_clustered(self) -> float:
        return self.n * self.se_mean_clustered

    @property
    def se_ratio(self) -> float:
        """Clustered / i.i.d. standard error (NaN if undefined)."""
        if not (self.se_mean_iid > 0) or math.isnan(self.se_mean_clustered):
            return math.nan
        return self.se_mean_clustered / self.se_mean_iid

    def to_dict(self) -> dict[str, float | int]:
        return {
            "n": self.n, "total": self.total, "mean": self.mean, "sd": self.sd,
            "se_mean_iid": self.se_mean_iid, "se_mean_clustered": self.se_mean_clustered,
            "se_total_iid": self.se_total_iid, "se_total_clustered": self.se_total_clustered,
            "se_ratio": self.se_ratio, "n_clusters": self.n_clusters,
        }


def sum_stats(values: FloatArray, clusters: IntArray | None = None) -> SumStats:
    """:class:`SumStats` of ``values``; ``clusters`` (same length) enables the CR1 SE.

    >>> s = sum_stats(np.array([1.0, 1.0, -1.0, -1.0]), np.array([7, 7, 9, 9]))
    >>> s.se_total_clustered, round(s.se_total_iid, 4)
    (4.0, 2.3094)
    """
    v = np.asarray(values, dtype=np.float64)
    n = len(v)
    if n == 0:
        return SumStats(0, 0.0, math.nan, math.nan, math.nan, math.nan, 0)
    total = float(v.sum())
    mean = total / n
    sd = float(v.std(ddof=1)) if n > 1 else math.nan
    se_iid = sd / math.sqrt(n) if n > 1 else math.nan
    se_cl = math.nan
    g = 0
    if clusters is not None:
        c = np.asarray(clusters)
        if c.shape != v.shape:
            raise EvaluationError("sum_stats: clusters must have one id per value")
        _, codes = np.unique(c, return_inverse=True)
        g = int(codes.max()) + 1
        if g >= 2:
            sums = np.bincount(codes, weights=v - mean, minlength=g)
            se_cl = math.sqrt(g / (g - 1) * float(np.dot(sums, sums))) / n
    return SumStats(n, total, mean, sd, se_iid, se_cl, g)


def sharpe(values: FloatArray) -> float:
    """Per-trade Sharpe ratio ``mean / sd`` (ddof=1); NaN with < 2 trades or zero sd.

    >>> round(sharpe(np.array([1.0, 3.0])), 6)
    1.414214
    """
    v = np.asarray(values, dtype=np.float64)
    if len(v) < 2:
        return math.nan
    sd = float(v.std(ddof=1))
    return float(v.mean()) / sd if sd > 0 else math.nan


def max_drawdown(values: FloatArray, order_by: npt.NDArray[Any] | None = None) -> float:
    """Largest peak-to-trough fall of the cumulative sum (from 0), as a positive number.

    ``order_by``: sort keys (e.g. exit times); the sort is stable, so ties keep the given
    order.

    >>> max_drawdown(np.array([-1.0, 2.0]))
    1.0
    >>> max_drawdown(np.array([1.0, -2.0]), order_by=np.array([2, 1]))
    2.0
    """
    v = np.asarray(values, dtype=np.float64)
    if order_by is not None:
        v = v[np.argsort(np.asarray(order_by), kind="stable")]
    if len(v) == 0:
        return 0.0
    cum = np.concatenate(([0.0], np.cumsum(v)))
    return float((np.maximum.accumulate(cum) - cum).max())


def policy_stats(
    rewards: FloatArray, exit_order: npt.NDArray[Any], clusters: IntArray | None
) -> dict[str, float | int]:
    """The per-policy summary row (see module doc)."""
    s = sum_stats(rewards, clusters)
    return {
        "trades": s.n,
        "total": s.total,
        "mean": s.mean,
        "sd": s.sd,
        "sharpe": sharpe(rewards),
        "win_rate": float((rewards > 0).mean()) if len(rewards) else math.nan,
        "max_drawdown": max_drawdown(rewards, exit_order),
        "se_mean_iid": s.se_mean_iid,
        "se_mean_clustered": s.se_mean_clustered,
        "se_ratio": s.se_ratio,
        "n_clusters": s.n_clusters,
    }


def regret_stats(
    policy: FloatArray, comparator: FloatArray, clusters: IntArray | None
) -> dict[str, float | int]:
    """Regret of ``policy`` against ``comparator`` (paired, per entry; see module doc)."""
    s = sum_stats(comparator - policy, clusters)
    t = s.total / s.se_total_clustered if s.se_total_clustered > 0 else math.nan
    return {
        "n": s.n,
        "regret_total": s.total,
        "regret_mean": s.mean,
        "se_total_clustered": s.se_total_clustered,
        "se_total_iid": s.se_total_iid,
        "se_mean_clustered": s.se_mean_clustered,
        "se_mean_iid": s.se_mean_iid,
        "se_ratio": s.se_ratio,
        "t_clustered": t,
        "n_clusters": s.n_clusters,
    }


# -- the report object -------------------------------------------------------------------------
def _jsonable(frame: pd.DataFrame) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for rec in frame.to_dict(orient="records"):
        row: dict[str, Any] = {}
        for k, v in rec.items():
            if isinstance(v, np.generic):
                v = v.item()
            if isinstance(v, float) and not math.isfinite(v):
                v = None
            row[str(k)] = v
        out.append(row)
    return out


@dataclass(frozen=True, eq=False)
class Metrics:
    """Metrics of one replayed range.

    * ``summary``: one row per policy (index ``policy``; columns ``kind``, ``trades``
      (entries decided, stood-aside ones included at 0 R), ``traded`` (entries traded),
      ``total``, ``mean``, ``sd``, ``sharpe``, ``win_rate``, ``max_drawdown``,
      ``se_mean_iid``, ``se_mean_clustered``, ``se_ratio``, ``n_clusters``);
    * ``regret``: one row per (policy, comparator), policy != comparator (columns ``policy``,
      ``comparator``, ``n``, ``regret_total``, ``regret_mean``, ``se_total_clustered``,
      ``se_total_iid``, ``se_mean_clustered``, ``se_mean_iid``, ``se_ratio``, ``t_clustered``,
      ``n_clusters``);
    * ``by_year``: one row per (policy, year) (columns ``policy``, ``year``, ``trades``,
      ``total``, ``mean``, ``sd``, ``sharpe``, ``win_rate``, ``max_drawdown``, ...,
      ``regret[<comparator>]``, ``regret_se[<comparator>]`` (clustered SE of the total)).
    """

    unit: str
    cluster: str
    comparators: tuple[str, ...]
    summary: pd.DataFrame
    regret: pd.DataFrame
    by_year: pd.DataFrame

    def regret_of(self, policy: str, comparator: str) -> dict[str, Any]:
        """The regret row of ``policy`` against ``comparator`` as a dict."""
        m = (self.regret["policy"] == policy) & (self.regret["comparator"] == comparator)
        if not bool(m.any()):
            raise EvaluationError(f"no regret row for {policy!r} vs {comparator!r}")
        return {str(k): v for k, v in self.regret.loc[m].iloc[0].to_dict().items()}

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (NaN -> None)."""
        return {
            "unit": self.unit,
            "cluster": self.cluster,
            "comparators": list(self.comparators),
            "summary": _jsonable(self.summary.reset_index()),
            "regret": _jsonable(self.regret),
            "by_year": _jsonable(self.by_year),
        }


def compute_metrics(
    result: ReplayResult,
    *,
    comparators: Sequence[str] | None = None,
    cluster: str = "week",
    policies: Sequence[str] | None = None,
) -> Metrics:
    """:class:`Metrics` of ``result`` (all its policies unless ``policies`` is given).

    ``comparators``: policies of ``result`` to measure regret against (default: those of
    :data:`DEFAULT_COMPARATORS` present). ``cluster``: one of :data:`CLUSTERINGS`.
    """
    if cluster not in CLUSTERINGS:
        raise EvaluationError(f"cluster {cluster!r}: must be one of {', '.join(CLUSTERINGS)}")
    names = tuple(result.policies if policies is None else policies)
    comps = tuple(
        [c for c in DEFAULT_COMPARATORS if c in result.choice]
        if comparators is None else comparators
    )
    for p in (*names, *comps):
        if p not in result.choice:
            raise EvaluationError(
                f"unknown policy {p!r}; replayed: {', '.join(result.policies)}"
            )
    signal = result.table.signal_ns
    clusters = cluster_ids(signal, cluster) if len(signal) else np.zeros(0, dtype=np.int64)
    years = (
        np.asarray(pd.DatetimeIndex(result.table.entries["signal_time"]).year, dtype=np.int64)
    )
    rewards = {p: result.rewards(p) for p in {*names, *comps}}
    exits = {p: result.exit_ns(p) for p in names}

    summary = pd.DataFrame.from_dict(
        {p: {"kind": result.kinds[p], **policy_stats(rewards[p], exits[p], clusters)}
         for p in names},
        orient="index",
    )
    summary.index.name = "policy"
    # entries traded (a policy may stand aside: those entries count, at 0 R, in ``trades``)
    summary.insert(2, "traded", [int(result.traded(p).sum()) for p in names])

    regret_rows = [
        {"policy": p, "comparator": c, **regret_stats(rewards[p], rewards[c], clusters)}
        for p in names for c in comps if c != p
    ]
    regret = pd.DataFrame(regret_rows, columns=[
        "policy", "comparator", "n", "regret_total", "regret_mean", "se_total_clustered",
        "se_total_iid", "se_mean_clustered", "se_mean_iid", "se_ratio", "t_clustered",
        "n_clusters",
    ])

    year_rows: list[dict[str, Any]] = []
    for p in names:
        for y in np.unique(years):
            m = years == y
            row: dict[str, Any] = {"policy": p, "year": int(y)}
            row.update(policy_stats(rewards[p][m], exits[p][m], clusters[m]))
            for c in comps:
                rs = regret_stats(rewards[p][m], rewards[c][m], clusters[m])
                row[f"regret[{c}]"] = rs["regret_total"]
                row[f"regret_se[{c}]"] = rs["se_total_clustered"]
            year_rows.append(row)
    by_year = pd.DataFrame(year_rows)
    return Metrics(
        unit=result.unit, cluster=cluster, comparators=comps, summary=summary,
        regret=regret, by_year=by_year,
    )


def summary_table(metrics: Mapping[str, Metrics]) -> pd.DataFrame:
    """Side-by-side ``total``/``mean`` of several ranges (e.g. ``{"train": m1, "test": m2}``)."""
    cols = {
        (name, col): m.summary[col] for name, m in metrics.items() for col in ("total", "mean")
    }
    return pd.DataFrame(cols)
