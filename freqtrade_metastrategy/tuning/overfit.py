"""Overfitting checks of a tuner: the probability of backtest overfitting and the deflated Sharpe.

A tuner that ran ``N`` trials and keeps the best one has selected on noise as well as on skill.
Both statistics below take every trial into account, not only the winner (pure numpy and the
standard library's :class:`statistics.NormalDist`; no scipy).

**Probability of backtest overfitting** (:func:`pbo_cscv`; D. H. Bailey, J. M. Borwein,
M. López de Prado and Q. J. Zhu, "The Probability of Backtest Overfitting", *Journal of
Computational Finance* 20(4), 2017, SSRN 2326253, 2015), by combinatorially symmetric
cross-validation (CSCV). ``performance`` is a ``T x N`` matrix: one row per period (e.g. one
week of out-of-sample rewards), one column per trial. Its rows are cut into ``S`` contiguous
blocks of equal size ``T // S``; the ``T % S`` *first* rows are dropped (the most recent
periods are kept). Each of the ``C(S, S/2)`` ways to pick ``S/2`` blocks is an in-sample (IS)
set, the other ``S/2`` blocks its out-of-sample (OOS) set. Per combination:

* the metric of every trial on the IS rows: ``"sharpe"`` (``mean / std``, ``ddof=1``; a
  zero ``std`` gives ``0`` if the mean is ``0``, else ``+inf`` or ``-inf`` by the mean's sign),
  ``"mean"`` or ``"total"`` (the sum);
* the IS-best trial (``argmax``; ties go to the lowest trial index);
* its rank among the ``N`` trials on the OOS rows, ``1`` = worst ... ``N`` = best, tied
  trials sharing their average rank; ``ω = rank / (N + 1)`` and the logit
  ``λ = ln(ω / (1 - ω))``;

``PBO = P(λ <= 0)``, the share of combinations whose IS-best trial is at or below the OOS
median. The paper writes ``PBO = ∫_{-∞}^0 f(λ) dλ``; the rank ``(N + 1) / 2`` (``λ = 0``
exactly, possible with an odd ``N`` or ties) is counted as overfit. A PBO near 0 means the IS
choice carries over; near 0.5, the choice is no better than picking a trial at random; above
0.5, the IS choice is worse than random OOS. The result also keeps the "performance
degradation" pairs (IS metric, OOS metric of the IS-best trial, one per combination) and the
probability of loss ``P(OOS metric < 0)``.

**Deflated Sharpe ratio** (:func:`deflated_sharpe`; D. H. Bailey and M. López de Prado, "The
Deflated Sharpe Ratio: Correcting for Selection Bias, Backtest Overfitting and Non-Normality",
*Journal of Portfolio Management* 40(5), 2014). Every Sharpe ratio is *per period* (not
annualised). The expected maximum of ``N`` trial Sharpe ratios with true Sharpe 0 and variance
``V`` across trials is ::

    SR0 = sqrt(V) * ((1 - γ) Φ⁻¹(1 - 1/N) + γ Φ⁻¹(1 - 1/(N e)))      (γ = 0.5772156649...)

and ``DSR = Φ((SR - SR0) sqrt(T - 1) / sqrt(1 - skew SR + (kurtosis - 1) / 4 SR²))`` with
the winner's skewness and (non-excess, normal = 3) kurtosis over its ``T`` periods: the
probability that its true Sharpe exceeds ``SR0``. With ``N = 1``, ``SR0 = 0`` and the DSR is
the probabilistic Sharpe ratio (PSR). The paper's example (annual SR 2.5, 5 years of daily
data ``T = 1250``, skew -3, kurtosis 10, 100 trials of annual SR variance 0.5; per day:
``SR = 2.5 / sqrt(250)``, ``V = 0.5 / 250``) gives 0.9004:

>>> round(deflated_sharpe(2.5 / 250**0.5, 100, 1250, sharpe_variance=0.5 / 250,
...                       skew=-3.0, kurtosis=10.0).dsr, 4)
0.9004

A trial that wins IS and loses OOS in both halves: PBO 1.

>>> perf = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
>>> res = pbo_cscv(perf, n_splits=2, metric="total")
>>> res.pbo, res.n_combinations, res.selected.tolist(), res.oos_rank.tolist()
(1.0, 2, [0, 1], [1.0, 1.0])
>>> pbo_cscv(perf[:, ::-1] + np.array([[0.0, 2.0]]), n_splits=2, metric="total").pbo
0.0
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any, Final, NamedTuple

import numpy as np
import numpy.typing as npt

from freqtrade_metastrategy.errors import EvaluationError

__all__ = [
    "EULER_GAMMA",
    "PBO_METRICS",
    "DSRResult",
    "PBOResult",
    "SharpeStats",
    "deflated_sharpe",
    "deflated_sharpe_of",
    "expected_max_sharpe",
    "pbo_cscv",
    "sharpe_stats",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

#: The Euler–Mascheroni constant γ.
EULER_GAMMA: Final[float] = 0.5772156649015329
#: The per-trial metrics :func:`pbo_cscv` can rank trials by.
PBO_METRICS: Final[tuple[str, ...]] = ("sharpe", "mean", "total")
#: Quantiles of λ reported by :meth:`PBOResult.to_dict`.
_LAMBDA_QUANTILES: Final[tuple[tuple[str, float], ...]] = (
    ("p05", 0.05), ("p25", 0.25), ("p50", 0.5), ("p75", 0.75), ("p95", 0.95),
)
#: Cap of the (combinations x trials) elements processed at once (memory bound).
_CHUNK_ELEMENTS: Final[int] = 1 << 20
_NORMAL: Final[NormalDist] = NormalDist()


# -- probability of backtest overfitting -----------------------------------------------------
@dataclass(frozen=True, eq=False)
class PBOResult:
    """Outcome of :func:`pbo_cscv`. Arrays (read-only) have one entry per combination, in the
    order of ``itertools.combinations(range(n_splits), n_splits // 2)`` (row ``i`` of
    ``is_blocks`` lists the IS blocks of combination ``i``; block 0 = the earliest rows kept).
    """

    pbo: float
    n_combinations: int
    n_splits: int
    n_trials: int
    n_periods: int  # rows used (a multiple of n_splits)
    n_dropped: int  # first rows dropped so that the blocks have equal size
    metric: str
    prob_loss: float  # share of combinations whose IS-best trial has an OOS metric < 0
    lambdas: FloatArray  # logit of the IS-best trial's relative OOS rank
    oos_rank: FloatArray  # its OOS rank, 1 = worst .. n_trials = best (ties: average rank)
    selected: IntArray  # the IS-best trial's column index
    is_metric: FloatArray  # its IS metric
    oos_metric: FloatArray  # its OOS metric
    is_blocks: IntArray  # (n_combinations, n_splits // 2) IS block indices

    def lambda_quantiles(self) -> dict[str, float]:
        """The 5/25/50/75/95 % quantiles of λ (numpy's default linear interpolation)."""
        qs = np.quantile(self.lambdas, [q for _, q in _LAMBDA_QUANTILES])
        return {name: float(v) for (name, _), v in zip(_LAMBDA_QUANTILES, qs, strict=True)}

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (plain floats and ints; the per-combination arrays are
        summarised; an infinite Sharpe metric stays ``inf``)."""
        return {
            "pbo": self.pbo,
            "n_combinations": self.n_combinations,
            "n_splits": self.n_splits,
            "n_trials": self.n_trials,
            "n_periods": self.n_periods,
            "n_dropped": self.n_dropped,
            "metric": self.metric,
            "lambda_quantiles": self.lambda_quantiles(),
            "prob_loss": self.prob_loss,
            "mean_is_metric": float(np.mean(self.is_metric)),
            "mean_oos_metric": float(np.mean(self.oos_metric)),
        }


@dataclass(frozen=True, eq=False)
class _BlockStats:
    """Per-block sufficient statistics, ``(S, N)`` each, of a ``T x N`` performance matrix."""

    size: int  # rows per block
    half: int  # blocks per half (S / 2)
    sums: FloatArray
    dev: FloatArray  # block mean - the trial's mean over all kept rows
    dev2: FloatArray  # dev ** 2
    m2: FloatArray  # within-block sum of squared deviations from the block mean
    lo: FloatArray  # block minimum
    hi: FloatArray  # block maximum
    const_trials: IntArray  # trials with >= S/2 constant blocks (a half may be constant)


def _block_stats(x: FloatArray, n_splits: int) -> _BlockStats:
    n_rows, n_trials = x.shape
    size = n_rows // n_splits
    blocks = x.reshape(n_splits, size, n_trials)
    sums = blocks.sum(axis=1)
    means = sums / size
    m2 = ((blocks - means[:, None, :]) ** 2).sum(axis=1)
    dev = means - x.mean(axis=0)
    lo = blocks.min(axis=1)
    hi = blocks.max(axis=1)
    n_const = (lo == hi).sum(axis=0)
    const_trials = np.flatnonzero(n_const >= n_splits // 2).astype(np.int64)
    return _BlockStats(size, n_splits // 2, sums, dev, dev * dev, m2, lo, hi, const_trials)


def _signed_inf(values: FloatArray) -> FloatArray:
    """The Sharpe of a zero-variance sample: 0 for a zero mean, else ±inf by its sign."""
    out: FloatArray = np.where(values == 0.0, 0.0, np.copysign(np.inf, values))
    return out


def _half_metric(mask: BoolArray, bs: _BlockStats, metric: str) -> FloatArray:
    """The metric of every trial (columns) on the blocks of each row of ``mask`` (``(c, S)``,
    ``S / 2`` blocks per row): sums over blocks, so one matrix product per statistic.

    The Sharpe's variance combines the within-block sums of squares with the spread of the
    block means around the trial's overall mean (no ``sum x² - n mean²`` cancellation). A half
    whose values are all equal is detected exactly (block minima and maxima) and gets the
    zero-variance convention of :func:`_signed_inf`.
    """
    weights = mask.astype(np.float64)
    total: FloatArray = weights @ bs.sums
    if metric == "total":
        return total
    n = bs.size * bs.half
    mean: FloatArray = total / n
    if metric == "mean":
        return mean
    dev_sum = weights @ bs.dev
    # (n - 1) * variance = within-block + between-block sums of squares, computed in place.
    var = weights @ bs.dev2
    dev_sum *= dev_sum
    dev_sum /= bs.half
    var -= dev_sum
    var *= bs.size
    var += weights @ bs.m2
    var /= n - 1
    zero = ~(var > 0.0)  # rounding can leave a tiny negative instead of 0
    var[zero] = 1.0
    np.sqrt(var, out=var)
    out: FloatArray = mean / var
    out[zero] = _signed_inf(mean[zero])
    cand = bs.const_trials
    if cand.size:
        lo = np.full((mask.shape[0], cand.size), np.inf)
        hi = np.full((mask.shape[0], cand.size), -np.inf)
        for s in range(mask.shape[1]):  # S iterations over (c, candidates) arrays
            in_half = mask[:, s : s + 1]
            lo = np.where(in_half, np.minimum(lo, bs.lo[s, cand]), lo)
            hi = np.where(in_half, np.maximum(hi, bs.hi[s, cand]), hi)
        sub = out[:, cand]
        const = lo == hi
        sub[const] = _signed_inf(lo[const])
        out[:, cand] = sub
    return out


def _validate_performance(performance: npt.ArrayLike, n_splits: int, metric: str) -> FloatArray:
    if metric not in PBO_METRICS:
        raise EvaluationError(f"metric {metric!r}: must be one of {', '.join(PBO_METRICS)}")
    if isinstance(n_splits, bool) or not isinstance(n_splits, int | np.integer):
        raise EvaluationError(f"n_splits {n_splits!r}: must be an even integer >= 2, e.g. 16")
    if n_splits < 2 or n_splits % 2:
        raise EvaluationError(
            f"n_splits {n_splits}: must be an even integer >= 2 (the in-sample and "
            "out-of-sample halves have the same number of blocks), e.g. 16"
        )
    x = np.asarray(performance, dtype=np.float64)
    if x.ndim != 2:
        raise EvaluationError(
            f"performance: must be a 2-D (periods x trials) array, got {x.ndim} dimension(s); "
            "pass one column per trial"
        )
    n_rows, n_trials = x.shape
    if n_trials < 2:
        raise EvaluationError(
            f"performance: needs at least 2 trials (columns), got {n_trials}; "
            "pass one column per trial"
        )
    if n_rows < n_splits:
        raise EvaluationError(
            f"performance: {n_rows} periods (rows) < n_splits={n_splits}; "
            "pass more periods or lower n_splits"
        )
    if metric == "sharpe" and (n_rows // n_splits) * (n_splits // 2) < 2:
        raise EvaluationError(
            f"performance: {n_rows} periods leave 1 period per half with n_splits={n_splits}; "
            "the Sharpe needs 2, so pass more periods or use metric='mean'"
        )
    bad = ~np.isfinite(x)
    if bad.any():
        row, col = (int(i) for i in np.argwhere(bad)[0])
        raise EvaluationError(
            f"performance: {int(bad.sum())} non-finite value(s), the first at row {row}, "
            f"trial {col} ({x[row, col]}); fill or drop them (a period without trades is 0)"
        )
    return x


def pbo_cscv(
    performance: npt.ArrayLike, n_splits: int = 16, *, metric: str = "sharpe"
) -> PBOResult:
    """Probability of backtest overfitting of ``performance`` (``T`` periods x ``N`` trials)
    by CSCV over ``n_splits`` blocks (see the module docstring for the conventions).

    The first ``T % n_splits`` rows are dropped. Cost: ``C(S, S/2)`` combinations (12,870 for
    ``S = 16``, 184,756 for 20) times ``N``; vectorised over both, processed in chunks.

    >>> rng = np.random.default_rng(0)
    >>> perf = rng.normal(size=(50, 4))
    >>> perf[:, 2] += 1.0  # a genuine edge in every period
    >>> res = pbo_cscv(perf, n_splits=4)
    >>> res.pbo, res.n_combinations, res.n_periods, res.n_dropped, np.unique(res.selected).tolist()
    (0.0, 6, 48, 2, [2])
    """
    x = _validate_performance(performance, n_splits, metric)
    n_rows, n_trials = x.shape
    n_splits = int(n_splits)
    n_dropped = n_rows % n_splits
    bs = _block_stats(x[n_dropped:], n_splits)

    combos = np.array(list(itertools.combinations(range(n_splits), n_splits // 2)), np.int64)
    n_comb = len(combos)
    in_sample = np.zeros((n_comb, n_splits), dtype=np.bool_)
    in_sample[np.arange(n_comb)[:, None], combos] = True

    selected = np.empty(n_comb, dtype=np.int64)
    rank2 = np.empty(n_comb, dtype=np.int64)  # twice the average OOS rank (an integer)
    is_best = np.empty(n_comb, dtype=np.float64)
    oos_best = np.empty(n_comb, dtype=np.float64)
    chunk = max(1, _CHUNK_ELEMENTS // n_trials)
    for start in range(0, n_comb, chunk):
        part = slice(start, min(start + chunk, n_comb))
        is_m = _half_metric(in_sample[part], bs, metric)
        oos_m = _half_metric(~in_sample[part], bs, metric)
        rows = np.arange(is_m.shape[0])
        sel = np.argmax(is_m, axis=1)  # first maximum: ties go to the lowest index
        oos_sel = oos_m[rows, sel]
        below = (oos_m < oos_sel[:, None]).sum(axis=1)
        tied = (oos_m == oos_sel[:, None]).sum(axis=1)  # includes the selected trial
        selected[part] = sel
        rank2[part] = 2 * below + tied + 1
        is_best[part] = is_m[rows, sel]
        oos_best[part] = oos_sel

    # λ per possible (half-integer) rank, in plain floats: the same value for the same rank.
    table = np.zeros(2 * n_trials + 1, dtype=np.float64)
    for r2 in range(2, 2 * n_trials + 1):
        omega = (r2 / 2) / (n_trials + 1)
        table[r2] = math.log(omega / (1 - omega))
    lambdas = table[rank2]
    oos_rank = rank2 / 2.0
    for arr in (lambdas, oos_rank, selected, is_best, oos_best, combos):
        arr.setflags(write=False)
    return PBOResult(
        pbo=float(np.mean(rank2 <= n_trials + 1)),  # rank <= (N + 1) / 2  <=>  λ <= 0
        n_combinations=n_comb,
        n_splits=n_splits,
        n_trials=n_trials,
        n_periods=n_rows - n_dropped,
        n_dropped=n_dropped,
        metric=metric,
        prob_loss=float(np.mean(oos_best < 0.0)),
        lambdas=lambdas,
        oos_rank=oos_rank,
        selected=selected,
        is_metric=is_best,
        oos_metric=oos_best,
        is_blocks=combos,
    )


# -- deflated Sharpe ratio -------------------------------------------------------------------
@dataclass(frozen=True)
class DSRResult:
    """Outcome of :func:`deflated_sharpe`: its inputs, ``sr0`` (the expected maximum Sharpe of
    ``n_trials`` zero-skill trials), the standardised ``z`` and ``dsr = Φ(z)``."""

    sharpe: float
    sr0: float
    z: float
    dsr: float
    n_trials: int
    n_obs: int
    sharpe_variance: float
    skew: float
    kurtosis: float

    def to_dict(self) -> dict[str, float | int]:
        return {
            "sharpe": self.sharpe, "sr0": self.sr0, "z": self.z, "dsr": self.dsr,
            "n_trials": self.n_trials, "n_obs": self.n_obs,
            "sharpe_variance": self.sharpe_variance, "skew": self.skew,
            "kurtosis": self.kurtosis,
        }


class SharpeStats(NamedTuple):
    """Per-period Sharpe (``ddof=1``), skewness, non-excess kurtosis and length of a series."""

    sharpe: float
    skew: float
    kurtosis: float
    n: int


def _finite(name: str, value: float) -> float:
    v = float(value)
    if not math.isfinite(v):
        raise EvaluationError(f"{name}: must be finite, got {v}")
    return v


def _int_at_least(name: str, value: int, low: int, fix: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < low:
        raise EvaluationError(f"{name} {value!r}: must be an integer >= {low}; {fix}")
    return int(value)


def expected_max_sharpe(n_trials: int, sharpe_variance: float) -> float:
    """``SR0``: the expected maximum Sharpe of ``n_trials`` trials whose true Sharpe is 0 and
    whose estimated Sharpes have variance ``sharpe_variance`` (0 for a single trial).

    >>> round(expected_max_sharpe(100, 1.0), 6), expected_max_sharpe(1, 4.0)
    (2.530603, 0.0)
    """
    n = _int_at_least("n_trials", n_trials, 1, "count every trial the tuner ran")
    v = _finite("sharpe_variance", sharpe_variance)
    if v < 0:
        raise EvaluationError(f"sharpe_variance: must be >= 0, got {v}")
    if n == 1:
        return 0.0
    return math.sqrt(v) * (
        (1 - EULER_GAMMA) * _NORMAL.inv_cdf(1 - 1 / n)
        + EULER_GAMMA * _NORMAL.inv_cdf(1 - 1 / (n * math.e))
    )


def deflated_sharpe(
    sharpe: float,
    n_trials: int,
    n_obs: int,
    *,
    sharpe_variance: float,
    skew: float = 0.0,
    kurtosis: float = 3.0,
) -> DSRResult:
    """Deflated Sharpe ratio of a winner with per-period ``sharpe`` over ``n_obs`` periods,
    chosen among ``n_trials`` trials whose per-period Sharpes have variance
    ``sharpe_variance``; ``skew`` and non-excess ``kurtosis`` (normal: 0 and 3) of the
    winner's returns.

    >>> r = deflated_sharpe(0.1, 1, 101, sharpe_variance=0.0)  # one trial: the PSR
    >>> r.sr0, round(r.z, 6), round(r.dsr, 6)
    (0.0, 0.997509, 0.840741)
    """
    sr = _finite("sharpe", sharpe)
    g3 = _finite("skew", skew)
    g4 = _finite("kurtosis", kurtosis)
    t = _int_at_least("n_obs", n_obs, 2, "the Sharpe needs at least 2 periods")
    sr0 = expected_max_sharpe(n_trials, sharpe_variance)
    denom = 1 - g3 * sr + (g4 - 1) / 4 * sr * sr
    if not denom > 0:
        raise EvaluationError(
            f"skew={g3}, kurtosis={g4}: give a non-positive Sharpe variance factor "
            f"1 - skew*SR + (kurtosis-1)/4*SR^2 = {denom} at SR={sr}; kurtosis must be the "
            "non-excess kurtosis (normal = 3), not the excess"
        )
    z = (sr - sr0) * math.sqrt(t - 1) / math.sqrt(denom)
    return DSRResult(
        sharpe=sr, sr0=sr0, z=z, dsr=_NORMAL.cdf(z), n_trials=int(n_trials), n_obs=t,
        sharpe_variance=float(sharpe_variance), skew=g3, kurtosis=g4,
    )


def _series(name: str, values: npt.ArrayLike, min_len: int, fix: str) -> FloatArray:
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 1:
        raise EvaluationError(f"{name}: must be 1-D, got {v.ndim} dimension(s)")
    if len(v) < min_len:
        raise EvaluationError(f"{name}: needs at least {min_len} values, got {len(v)}; {fix}")
    if not np.isfinite(v).all():
        raise EvaluationError(
            f"{name}: {int((~np.isfinite(v)).sum())} non-finite value(s); fill or drop them"
        )
    return v


def sharpe_stats(returns: npt.ArrayLike) -> SharpeStats:
    """:class:`SharpeStats` of a per-period series: Sharpe ``mean / std`` (``ddof=1``),
    skewness ``m3 / m2^1.5`` and non-excess kurtosis ``m4 / m2²`` from the *population*
    central moments ``m_k = mean((x - mean)^k)`` (scipy's ``skew`` and
    ``kurtosis(fisher=False)`` with ``bias=True``).

    >>> s = sharpe_stats([1.0, 2.0, 3.0, 6.0])  # mean 3, deviations -2 -1 0 3
    >>> round(s.sharpe, 6), round(s.skew, 6), s.kurtosis, s.n  # 3/sqrt(14/3), 4.5/3.5**1.5
    (1.38873, 0.687243, 2.0, 4)
    """
    x = _series("returns", returns, 2, "the Sharpe needs at least 2 periods")
    if x.max() == x.min():  # exact: the mean of equal floats need not equal them
        raise EvaluationError(
            "returns: constant series, its Sharpe ratio is undefined; pass the winner's "
            "per-period returns"
        )
    mean = float(x.mean())
    d = x - mean
    m2 = float(np.mean(d**2))
    sd = math.sqrt(m2 * len(x) / (len(x) - 1))
    return SharpeStats(
        sharpe=mean / sd,
        skew=float(np.mean(d**3)) / m2**1.5,
        kurtosis=float(np.mean(d**4)) / (m2 * m2),
        n=len(x),
    )


def deflated_sharpe_of(
    winner_returns: npt.ArrayLike, trial_sharpes: Sequence[float] | npt.ArrayLike
) -> DSRResult:
    """:func:`deflated_sharpe` of the winning trial from its per-period series and the
    per-period Sharpe of **every** trial (winner included): ``N = len(trial_sharpes)``,
    ``V`` = their variance (``ddof=1``; 0 with a single trial, where ``SR0 = 0`` anyway).

    >>> r = deflated_sharpe_of([1.0, 2.0, 3.0, 6.0], [1.3887301496588271, 0.5, 0.2])
    >>> r.n_trials, r.n_obs, round(r.sharpe_variance, 6), round(r.sr0, 6), round(r.dsr, 4)
    (3, 4, 0.382153, 0.527191, 0.98)
    """
    stats = sharpe_stats(winner_returns)
    sharpes = _series("trial_sharpes", trial_sharpes, 1, "pass the Sharpe of every trial")
    variance = float(np.var(sharpes, ddof=1)) if len(sharpes) > 1 else 0.0
    return deflated_sharpe(
        stats.sharpe, len(sharpes), stats.n,
        sharpe_variance=variance, skew=stats.skew, kurtosis=stats.kurtosis,
    )
