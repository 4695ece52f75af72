"""Tests of freqtrade_metastrategy.tuning.overfit: PBO by CSCV against a brute-force reference and
on constructions with a known answer; the deflated Sharpe against scipy and the paper's example."""

from __future__ import annotations

import itertools
import json
import math
import statistics
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from scipy import stats

from freqtrade_metastrategy.errors import EvaluationError
from freqtrade_metastrategy.tuning.overfit import (
    EULER_GAMMA,
    PBO_METRICS,
    DSRResult,
    PBOResult,
    deflated_sharpe,
    deflated_sharpe_of,
    expected_max_sharpe,
    pbo_cscv,
    sharpe_stats,
)


# -- brute-force reference ---------------------------------------------------------------------
def _metric(values: list[float], metric: str) -> float:
    if metric == "total":
        return sum(values)
    if metric == "mean":
        return sum(values) / len(values)
    mean = statistics.fmean(values)
    if max(values) == min(values):  # zero variance: 0 for a zero mean, else +-inf
        return 0.0 if values[0] == 0 else math.copysign(math.inf, values[0])
    return mean / statistics.stdev(values)


def brute_pbo(perf: np.ndarray, n_splits: int, metric: str) -> dict[str, Any]:
    """CSCV with plain loops: every combination, every trial, ranks counted one by one."""
    n_rows, n_trials = perf.shape
    x = perf[n_rows % n_splits :].tolist()  # the first T % S rows are dropped
    size = len(x) // n_splits
    blocks = [x[i * size : (i + 1) * size] for i in range(n_splits)]
    out: dict[str, list[Any]] = {k: [] for k in ("lam", "sel", "rank", "is", "oos")}
    for combo in itertools.combinations(range(n_splits), n_splits // 2):
        is_rows = [row for i in combo for row in blocks[i]]
        oos_rows = [row for i in range(n_splits) if i not in combo for row in blocks[i]]
        is_m = [_metric([r[j] for r in is_rows], metric) for j in range(n_trials)]
        oos_m = [_metric([r[j] for r in oos_rows], metric) for j in range(n_trials)]
        best = 0
        for j in range(1, n_trials):
            if is_m[j] > is_m[best]:
                best = j
        below = sum(1 for v in oos_m if v < oos_m[best])
        tied = sum(1 for v in oos_m if v == oos_m[best])
        rank = below + (tied + 1) / 2
        omega = rank / (n_trials + 1)
        out["lam"].append(math.log(omega / (1 - omega)))
        out["sel"].append(best)
        out["rank"].append(rank)
        out["is"].append(is_m[best])
        out["oos"].append(oos_m[best])
    lam = out["lam"]
    return {
        **out,
        "pbo": sum(1 for v in lam if v <= 0) / len(lam),
        "prob_loss": sum(1 for v in out["oos"] if v < 0) / len(lam),
    }


def _noise_case() -> np.ndarray:
    return np.random.default_rng(11).normal(0.1, 1.0, size=(45, 5))


def _ties_case() -> np.ndarray:
    x = np.random.default_rng(12).integers(-3, 4, size=(45, 6)).astype(np.float64)
    x[:, 3] = x[:, 1]  # identical trials: ties in sample and out of sample
    x[:, 5] = x[:, 0]
    return x


def _constant_case() -> np.ndarray:
    x = np.random.default_rng(13).normal(size=(45, 6))
    x[:, 0] = 0.0  # Sharpe 0 everywhere
    x[3:24, 1] = 0.1  # constant in blocks 0-2 (rows 3.. after the 3 dropped), noise after
    x[:, 2] = -0.7  # Sharpe -inf everywhere
    x[3:17, 4] = 0.25  # constant in blocks 0-1 only: never a constant half
    x[:, 5] = 0.3  # Sharpe +inf everywhere
    return x


CASES: dict[str, Callable[[], np.ndarray]] = {
    "noise": _noise_case,
    "ties": _ties_case,
    "constant": _constant_case,
}


@pytest.mark.parametrize("metric", PBO_METRICS)
@pytest.mark.parametrize("case", sorted(CASES))
def test_pbo_matches_brute_force(case: str, metric: str) -> None:
    perf = CASES[case]()
    ref = brute_pbo(perf, 6, metric)
    res = pbo_cscv(perf, n_splits=6, metric=metric)
    assert res.n_combinations == math.comb(6, 3) == len(ref["lam"])
    assert (res.n_periods, res.n_dropped, res.metric) == (42, 3, metric)
    assert res.n_trials == perf.shape[1]
    np.testing.assert_array_equal(res.lambdas, np.array(ref["lam"]))  # bit for bit
    np.testing.assert_array_equal(res.selected, ref["sel"])
    np.testing.assert_array_equal(res.oos_rank, ref["rank"])
    assert res.pbo == ref["pbo"]
    assert res.prob_loss == ref["prob_loss"]
    np.testing.assert_allclose(res.is_metric, ref["is"], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(res.oos_metric, ref["oos"], rtol=1e-12, atol=1e-12)
    assert res.is_blocks.tolist() == [list(c) for c in itertools.combinations(range(6), 3)]


def test_pbo_tie_and_constant_conventions() -> None:
    ties = pbo_cscv(_ties_case(), n_splits=6, metric="total")
    assert 3 not in ties.selected and 5 not in ties.selected  # a tie goes to the lower index
    assert np.any(ties.oos_rank % 1 == 0.5)  # tied OOS trials share their average rank
    const = pbo_cscv(_constant_case(), n_splits=6)
    combos = const.is_blocks.tolist()
    # Column 5 (constant 0.3) has Sharpe +inf in every half; column 1 (0.1 in blocks 0-2)
    # too when the half is blocks 0-2. IS = blocks 0-2: the tie goes to column 1.
    first = combos.index([0, 1, 2])
    assert const.selected[first] == 1
    assert np.all(np.delete(const.selected, first) == 5)
    assert np.all(const.is_metric == np.inf)
    last = combos.index([3, 4, 5])  # OOS = blocks 0-2: columns 1 and 5 tie at +inf
    assert const.oos_rank[last] == 5.5  # they share ranks 5 and 6
    assert const.oos_metric[last] == np.inf
    assert set(np.delete(const.oos_rank, [first, last]).tolist()) == {6.0}


def test_pbo_lambda_zero_counts_as_overfit_and_zero_is_no_loss() -> None:
    res = pbo_cscv(np.array([[1.0, 0.5], [0.0, 0.0]]), 2, metric="total")
    # IS = row 0: trial 0 wins, ties OOS at 0 (rank 1.5 of 2, ω = 1/2, λ = 0: overfit).
    # IS = row 1: a tie at 0 goes to trial 0, best OOS (rank 2, λ = ln 2).
    assert res.selected.tolist() == [0, 0]
    assert res.oos_rank.tolist() == [1.5, 2.0]
    assert res.lambdas[0] == 0.0 and res.lambdas[1] == pytest.approx(math.log(2.0), abs=1e-15)
    assert res.pbo == 0.5
    assert res.prob_loss == 0.0  # an OOS metric of exactly 0 is not a loss


def test_pbo_pure_noise_is_near_one_half() -> None:
    # iid noise, same distribution for every trial: the IS winner's OOS rank is uniform.
    # PBO of one data set varies a lot (combinations share blocks), so average 20 data sets.
    pbos = [
        pbo_cscv(np.random.default_rng(seed).normal(size=(480, 50)), 16).pbo
        for seed in range(20)
    ]
    assert 0.4 < float(np.mean(pbos)) < 0.6
    assert 0.3 < float(np.median(pbos)) < 0.7


def test_pbo_persistent_edge_is_near_zero() -> None:
    rng = np.random.default_rng(5)
    perf = rng.normal(size=(480, 50))
    perf[:, 17] += 0.5  # a genuine edge in every period
    for metric in PBO_METRICS:
        res = pbo_cscv(perf, 16, metric=metric)
        assert res.pbo <= 0.01, metric
        assert np.mean(res.selected == 17) > 0.99
        assert res.prob_loss == 0.0
        assert res.to_dict()["lambda_quantiles"]["p05"] > 0


def _reversal(noise: float, seed: int = 3) -> np.ndarray:
    """Each trial's block means sum to zero: what it gains in some blocks it loses in the
    others, so the IS best is the OOS worst (the alternating-sign construction, shuffled)."""
    rng = np.random.default_rng(seed)
    n_splits, size, n_trials = 16, 30, 50
    block_means = rng.normal(size=(n_splits, n_trials))
    block_means -= block_means.mean(axis=0)
    rows = np.repeat(block_means, size, axis=0)
    return rows + noise * rng.normal(size=rows.shape)


def test_pbo_reversal_is_near_one() -> None:
    exact = pbo_cscv(_reversal(0.0), 16, metric="total")
    assert exact.pbo == 1.0
    assert np.all(exact.oos_rank == 1.0)  # always the OOS worst
    assert exact.prob_loss == 1.0
    assert exact.lambdas.max() == pytest.approx(math.log(1 / 50))
    noisy = pbo_cscv(_reversal(0.2), 16, metric="sharpe")
    assert noisy.pbo > 0.95
    assert noisy.to_dict()["mean_oos_metric"] < 0 < noisy.to_dict()["mean_is_metric"]


def test_pbo_drops_the_first_rows_and_is_scale_free() -> None:
    perf = np.random.default_rng(8).normal(size=(96, 7))
    base = pbo_cscv(perf, 8)
    junk = np.full((7, 7), 1e6)  # fewer rows than n_splits, prepended: dropped
    padded = pbo_cscv(np.vstack([junk, perf]), 8)
    assert (padded.n_dropped, padded.n_periods) == (7, 96)
    np.testing.assert_array_equal(padded.lambdas, base.lambdas)
    np.testing.assert_array_equal(pbo_cscv(perf * 4.0, 8).lambdas, base.lambdas)
    appended = pbo_cscv(np.vstack([perf, junk]), 8)  # at the end they would be kept
    assert appended.n_dropped == 7 and not np.array_equal(appended.lambdas, base.lambdas)


def test_pbo_result_is_frozen_and_json_ready() -> None:
    res = pbo_cscv(np.random.default_rng(2).normal(size=(64, 10)), 8)
    assert isinstance(res, PBOResult)
    with pytest.raises(AttributeError):
        res.pbo = 0.0  # type: ignore[misc]
    with pytest.raises(ValueError):
        res.lambdas[0] = 1.0
    d = json.loads(json.dumps(res.to_dict()))
    assert d["pbo"] == res.pbo and d["n_combinations"] == 70 and d["metric"] == "sharpe"
    assert list(d["lambda_quantiles"]) == ["p05", "p25", "p50", "p75", "p95"]
    q = list(d["lambda_quantiles"].values())
    assert q == sorted(q) and q[2] == float(np.median(res.lambdas))
    assert d["mean_oos_metric"] == pytest.approx(float(np.mean(res.oos_metric)))


def test_pbo_at_the_tuners_size_t300_n200_s16() -> None:
    """The size ``tune`` reports (its speed is a benchmark: bench/bench_tune.py)."""
    perf = np.random.default_rng(0).normal(size=(300, 200))
    res = pbo_cscv(perf, 16)
    assert res.n_combinations == 12_870 and len(res.lambdas) == 12_870
    assert 0.0 <= res.pbo <= 1.0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"performance": np.zeros((40, 1))}, r"performance: needs at least 2 trials"),
        ({"performance": np.zeros(40)}, r"performance: must be a 2-D"),
        ({"performance": np.zeros((40, 3)), "n_splits": 5}, r"n_splits 5: must be an even"),
        ({"performance": np.zeros((40, 3)), "n_splits": 0}, r"n_splits 0: must be an even"),
        ({"performance": np.zeros((40, 3)), "n_splits": 4.0}, r"n_splits 4.0: must be an even"),
        ({"performance": np.zeros((10, 3))}, r"performance: 10 periods \(rows\) < n_splits=16"),
        ({"performance": np.zeros((3, 3)), "n_splits": 2}, r"3 periods .*metric='mean'"),
        ({"performance": np.zeros((40, 3)), "metric": "sortino"}, r"metric 'sortino'"),
        (
            {"performance": np.array([[0.0, 1.0]] * 19 + [[0.0, np.nan]])},
            r"performance: 1 non-finite value\(s\), the first at row 19, trial 1",
        ),
    ],
)
def test_pbo_validation_names_the_argument(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(EvaluationError, match=message):
        pbo_cscv(**kwargs)


def test_pbo_short_halves_are_fine_for_the_mean() -> None:
    res = pbo_cscv(np.array([[1.0, 0.0], [0.0, 1.0]]), 2, metric="mean")
    omega = 1 / 3  # rank 1 of 2: ω = 1/3, λ = ln(ω / (1 - ω)) ≈ ln(1/2)
    assert res.pbo == 1.0 and res.lambdas.tolist() == [math.log(omega / (1 - omega))] * 2


# -- deflated Sharpe ---------------------------------------------------------------------------
def _reference_dsr(
    sr: float, n: int, t: int, v: float, skew: float, kurt: float
) -> tuple[float, float]:
    if n == 1:
        sr0 = 0.0
    else:
        sr0 = math.sqrt(v) * (
            (1 - np.euler_gamma) * stats.norm.ppf(1 - 1 / n)
            + np.euler_gamma * stats.norm.ppf(1 - 1 / (n * np.e))
        )
    z = (sr - sr0) * math.sqrt(t - 1) / math.sqrt(1 - skew * sr + (kurt - 1) / 4 * sr**2)
    return float(sr0), float(stats.norm.cdf(z))


@pytest.mark.parametrize("sr", [-0.1, 0.05, 0.2])
@pytest.mark.parametrize("n", [1, 2, 10, 1000])
@pytest.mark.parametrize("t", [2, 50, 1250])
@pytest.mark.parametrize("v", [0.0, 0.001, 0.02])
@pytest.mark.parametrize(("skew", "kurt"), [(0.0, 3.0), (-1.0, 6.0), (0.5, 2.5)])
def test_dsr_matches_scipy(sr: float, n: int, t: int, v: float, skew: float, kurt: float) -> None:
    res = deflated_sharpe(sr, n, t, sharpe_variance=v, skew=skew, kurtosis=kurt)
    sr0, dsr = _reference_dsr(sr, n, t, v, skew, kurt)
    assert res.sr0 == pytest.approx(sr0, rel=1e-12, abs=1e-15)
    assert res.dsr == pytest.approx(dsr, rel=1e-9, abs=1e-15)
    assert (res.sharpe, res.n_trials, res.n_obs, res.sharpe_variance) == (sr, n, t, v)
    assert (res.skew, res.kurtosis) == (skew, kurt)


def test_euler_gamma() -> None:
    assert pytest.approx(np.euler_gamma, abs=1e-16) == EULER_GAMMA


def test_dsr_paper_example() -> None:
    # Bailey & López de Prado (2014): annual SR 2.5, 5 years of daily data, skew -3,
    # kurtosis 10, 100 trials whose annual SRs have variance 0.5 -> DSR 0.9004.
    res = deflated_sharpe(
        2.5 / math.sqrt(250), 100, 1250, sharpe_variance=0.5 / 250, skew=-3.0, kurtosis=10.0
    )
    assert round(res.dsr, 4) == 0.9004
    assert res.sr0 * math.sqrt(250) == pytest.approx(1.7894, abs=1e-4)  # annualised SR0


def test_dsr_monotonicity() -> None:
    def run(sr: float = 0.1, n: int = 10, v: float = 0.01) -> DSRResult:
        return deflated_sharpe(sr, n, 250, sharpe_variance=v, skew=-0.5, kurtosis=5.0)

    by_n = [run(n=n) for n in (1, 2, 5, 10, 100, 1000, 10**6)]
    assert all(a.sr0 < b.sr0 for a, b in itertools.pairwise(by_n))
    assert all(a.dsr > b.dsr for a, b in itertools.pairwise(by_n))
    by_sr = [run(sr=s).dsr for s in (-0.05, 0.0, 0.05, 0.1, 0.2, 0.4)]
    assert by_sr == sorted(by_sr) and len(set(by_sr)) == len(by_sr)
    by_v = [run(v=v).dsr for v in (0.0, 0.001, 0.01, 0.05)]
    assert by_v == sorted(by_v, reverse=True) and len(set(by_v)) == len(by_v)


def test_single_trial_is_the_psr() -> None:
    res = deflated_sharpe(0.08, 1, 500, sharpe_variance=0.3, skew=-1.0, kurtosis=7.0)
    assert res.sr0 == 0.0 == expected_max_sharpe(1, 0.3)
    psr = stats.norm.cdf(0.08 * math.sqrt(499) / math.sqrt(1 + 0.08 + 1.5 * 0.08**2))
    assert res.dsr == pytest.approx(psr, rel=1e-12)
    assert deflated_sharpe(0.0, 1, 500, sharpe_variance=0.0).dsr == 0.5


def test_sharpe_stats_matches_scipy() -> None:
    x = np.random.default_rng(4).standard_t(5, size=400) * 0.02 + 0.003
    s = sharpe_stats(x)
    assert s.n == 400
    assert s.sharpe == pytest.approx(x.mean() / x.std(ddof=1), rel=1e-12)
    assert s.skew == pytest.approx(stats.skew(x, bias=True), rel=1e-10)
    assert s.kurtosis == pytest.approx(stats.kurtosis(x, fisher=False, bias=True), rel=1e-10)


def test_deflated_sharpe_of() -> None:
    rng = np.random.default_rng(6)
    trials = rng.normal(0.001, 0.01, size=(300, 40))
    trials[:, 9] += 0.004
    sharpes = trials.mean(axis=0) / trials.std(axis=0, ddof=1)
    res = deflated_sharpe_of(trials[:, 9], sharpes.tolist())
    s = sharpe_stats(trials[:, 9])
    manual = deflated_sharpe(
        s.sharpe, 40, 300, sharpe_variance=float(np.var(sharpes, ddof=1)),
        skew=s.skew, kurtosis=s.kurtosis,
    )
    assert res == manual
    assert res.sharpe == pytest.approx(sharpes[9], rel=1e-12)
    alone = deflated_sharpe_of(trials[:, 9], [sharpes[9]])
    assert alone.n_trials == 1 and alone.sharpe_variance == 0.0 and alone.sr0 == 0.0
    assert alone.dsr > res.dsr  # the same winner, deflated for 40 trials
    d = json.loads(json.dumps(res.to_dict()))
    assert d == {k: getattr(res, k) for k in d} and "dsr" in d and "sr0" in d


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: deflated_sharpe(0.1, 0, 100, sharpe_variance=0.1), r"n_trials 0: must be"),
        (lambda: deflated_sharpe(0.1, 2.0, 100, sharpe_variance=0.1), r"n_trials 2.0"),  # type: ignore[arg-type]
        (lambda: deflated_sharpe(0.1, 5, 1, sharpe_variance=0.1), r"n_obs 1: must be"),
        (lambda: deflated_sharpe(0.1, 5, 100, sharpe_variance=-0.1), r"sharpe_variance: must"),
        (lambda: deflated_sharpe(math.nan, 5, 100, sharpe_variance=0.1), r"sharpe: must be fin"),
        (lambda: deflated_sharpe(0.1, 5, 100, sharpe_variance=0.1, skew=math.inf), r"skew:"),
        (
            lambda: deflated_sharpe(1.0, 5, 100, sharpe_variance=0.1, kurtosis=-5.0),
            r"kurtosis=-5.0: .*non-excess kurtosis",
        ),
        (lambda: sharpe_stats([1.0]), r"returns: needs at least 2 values"),
        (lambda: sharpe_stats([0.1, 0.1, 0.1]), r"returns: constant series"),
        (lambda: sharpe_stats([[1.0, 2.0]]), r"returns: must be 1-D"),
        (lambda: sharpe_stats([1.0, math.inf]), r"returns: 1 non-finite"),
        (lambda: deflated_sharpe_of([1.0, 2.0, 4.0], []), r"trial_sharpes: needs at least 1"),
    ],
)
def test_dsr_validation_names_the_argument(call: Callable[[], object], message: str) -> None:
    with pytest.raises(EvaluationError, match=message):
        call()
