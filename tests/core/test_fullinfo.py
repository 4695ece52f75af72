"""The full-information learner: estimators with memory, the ridge as sufficient statistics,
release at the virtual exit in the canonical order, stand-aside, persistence."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

from freqtrade_metastrategy.context import CONTEXT_FEATURES, DIRECTIONAL, MIRRORED
from freqtrade_metastrategy.errors import ConfigError
from freqtrade_metastrategy.fullinfo import (
    FullInfoConfig,
    FullInfoLearner,
    ProfileMeans,
    RidgeStats,
)
from freqtrade_metastrategy.fullinfo import ridge as ridge_module

PROFILES = ["defensive", "scalp", "trend_rider"]


# -- estimators -------------------------------------------------------------------------------
def test_running_mean_is_the_mean() -> None:
    rng = np.random.default_rng(0)
    r = rng.normal(size=(50, 3))
    m = ProfileMeans(3, "mean")
    for row in r:
        m.update(row)
    np.testing.assert_allclose(m.values(), r.mean(axis=0), rtol=1e-12)


def test_discounted_mean_halves_weights_every_half_life() -> None:
    h = 7.0
    r = np.arange(30, dtype=float)[:, None]
    m = ProfileMeans(1, "discounted", half_life=h)
    for row in r:
        m.update(row)
    w = 0.5 ** (np.arange(29, -1, -1) / h)  # the newest weighs 1, one half-life older 0.5
    assert m.values()[0] == pytest.approx(float((w * r[:, 0]).sum() / w.sum()), rel=1e-12)


def test_ema_is_the_seeds_ema() -> None:
    m = ProfileMeans(1, "ema", alpha=0.2)
    ema = None
    for x in (1.0, -2.0, 0.5, 3.0):
        m.update(np.array([x]))
        ema = x if ema is None else 0.8 * ema + 0.2 * x
    assert m.values()[0] == pytest.approx(ema, rel=1e-15)


def test_estimator_settings_are_checked_with_the_key() -> None:
    with pytest.raises(ConfigError, match=r"metastrategy\.estimator"):
        FullInfoConfig(estimator="median")
    with pytest.raises(ConfigError, match=r"metastrategy\.half_life"):
        FullInfoConfig(half_life=0.0)
    with pytest.raises(ConfigError, match=r"metastrategy\.min_signals"):
        FullInfoConfig(min_signals=0)
    with pytest.raises(ConfigError, match=r"metastrategy\.stand_aside_margin"):
        FullInfoConfig(stand_aside_margin=float("nan"))


# -- ridge ------------------------------------------------------------------------------------
def _ridge_reference(x: np.ndarray, y: np.ndarray, w: np.ndarray, lam: float,
                     at: np.ndarray) -> np.ndarray:
    """Weighted ridge on standardised features, solved directly (the definition)."""
    ws = w / w.sum()
    mu = ws @ x
    sd = np.sqrt(ws @ (x - mu) ** 2)
    z = (x - mu) / sd
    ybar = ws @ y
    a = (z * ws[:, None]).T @ z + (lam / w.sum()) * np.eye(x.shape[1])
    b = np.linalg.solve(a, (z * ws[:, None]).T @ (y - ybar))
    return np.asarray(ybar + ((at - mu) / sd) @ b)


@pytest.mark.parametrize("decay", [1.0, 0.97])
def test_ridge_from_sufficient_statistics_is_the_ridge(decay: float) -> None:
    rng = np.random.default_rng(1)
    n, d, k = 300, 5, 3
    x = rng.normal(size=(n, d)) * [1, 10, 0.1, 3, 1]
    y = x @ rng.normal(size=(d, k)) + rng.normal(size=(n, k))
    r = RidgeStats(d, k, lam=25.0)
    for i in range(n):
        r.update(x[i], y[i], decay)
    weights = decay ** np.arange(n - 1, -1, -1)
    at = rng.normal(size=d)
    np.testing.assert_allclose(r.predict(at), _ridge_reference(x, y, weights, 25.0, at),
                               rtol=1e-8, atol=1e-10)


def test_ridge_leaves_out_a_constant_feature_and_survives_a_round_trip() -> None:
    r = RidgeStats(2, 1, lam=1.0)
    for v in (0.0, 1.0, 2.0, 3.0):
        r.update(np.array([v, 5.0]), np.array([2 * v]))
    before = r.predict(np.array([1.5, 123.0]))
    back = RidgeStats.from_dict(json.loads(json.dumps(r.to_dict())))
    assert np.isfinite(before).all()
    np.testing.assert_array_equal(back.predict(np.array([1.5, 123.0])), before)


@pytest.mark.parametrize("decay", [1.0, 0.97])
def test_queued_ridge_updates_are_bit_identical_to_applying_each_at_once(
        decay: float, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(4)
    x, y = rng.normal(size=(257, 4)), rng.normal(size=(257, 2))
    eager, lazy, capped = (RidgeStats(4, 2, lam=3.0) for _ in range(3))
    for i in range(len(x)):
        eager.update(x[i], y[i], decay)
        assert eager.to_dict()["w"] > 0  # reading the moments applies the queue: one at a time
        lazy.update(x[i], y[i], decay)
    monkeypatch.setattr(ridge_module, "MAX_QUEUED", 10)
    for i in range(len(x)):
        capped.update(x[i], y[i], decay)
    assert len(capped._queue) == 257 % 10
    for r in (lazy, capped):
        assert r.count == eager.count == 257
        assert r.to_dict() == eager.to_dict()
        np.testing.assert_array_equal(r.predict(x[0]), eager.predict(x[0]))
    with pytest.raises(ValueError, match="need 4 features and 2 rewards"):
        lazy.update(x[0][:3], y[0], decay)
    assert lazy.count == 257 and lazy.to_dict() == eager.to_dict()  # nothing queued
    # the reference: the moments' definition, summed once
    w = decay ** np.arange(256, -1, -1)
    np.testing.assert_allclose(lazy.to_dict()["sxx"], (x * w[:, None]).T @ x, rtol=1e-10)


# -- the learner ------------------------------------------------------------------------------
def _signals(n: int, seed: int) -> list[tuple[tuple[str, int, str], int, np.ndarray,
                                              np.ndarray, str, str]]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        side = "short" if rng.random() < 0.4 else "long"
        regime = ["trend_up", "range_low_vol", "unknown"][int(rng.integers(3))]
        ctx = rng.normal(size=len(CONTEXT_FEATURES))
        rewards = rng.normal(size=len(PROFILES)) + (0.5 if ctx[0] > 0 else -0.5) * np.array(
            [1.0, -1.0, 0.2])
        sig = 3_600_000_000_000 * i
        release = sig + 3_600_000_000_000 * int(rng.integers(1, 40))
        out.append(((["A", "B"][i % 2], sig, side), release, ctx, rewards, side, regime))
    return out


def _learner(**kw: object) -> FullInfoLearner:
    cfg = FullInfoConfig(**{"policy": "contextual_ridge", "min_signals": 20, **kw})  # type: ignore[arg-type]
    return FullInfoLearner(cfg, PROFILES, CONTEXT_FEATURES, DIRECTIONAL, MIRRORED)


def _run(learner: FullInfoLearner, sigs: list, order: list[int]) -> list[str | None]:
    """Add the signals in ``order`` up front, then decide each in time order."""
    for i in order:
        key, release, ctx, rewards, side, regime = sigs[i]
        learner.add(key, release, learner.design(ctx, side, regime), rewards)
    out = []
    for key, _release, ctx, _rewards, side, regime in sigs:
        learner.advance(key[1])
        out.append(learner.decide(learner.design(ctx, side, regime)).profile)
    return out


@pytest.mark.parametrize("estimator", ["mean", "discounted", "ema"])
def test_release_order_is_canonical_whatever_the_order_signals_arrive(estimator: str) -> None:
    sigs = _signals(200, 3)
    order = list(range(len(sigs)))
    a = _run(_learner(estimator=estimator, half_life=30.0), sigs, order)
    random.Random(5).shuffle(order)
    b = _run(_learner(estimator=estimator, half_life=30.0), sigs, order)
    assert a == b
    assert {None} < set(a)  # stood aside sometimes, traded sometimes


def test_a_signal_is_learned_once_and_only_after_its_release() -> None:
    learner = _learner(min_signals=1)
    x = learner.design(np.zeros(len(CONTEXT_FEATURES)), "long", "trend_up")
    assert learner.add(("A", 0, "long"), 100, x, np.array([1.0, 2.0, 3.0]))
    assert not learner.add(("A", 0, "long"), 100, x, np.array([9.0, 9.0, 9.0]))
    assert learner.advance(99) == 0 and learner.released == 0
    assert learner.advance(100) == 1 and learner.advance(10**18) == 0
    assert learner.means.values().tolist() == [1.0, 2.0, 3.0]
    with pytest.raises(ValueError, match="one finite reward per profile"):
        learner.add(("A", 1, "long"), 100, x, np.array([1.0, float("nan"), 3.0]))
    with pytest.raises(ValueError, match="design row"):
        learner.add(("A", 2, "long"), 100, x[:-1], np.array([1.0, 2.0, 3.0]))
    assert learner.pending == 0


def test_warm_up_uses_the_default_profile_and_never_stands_aside() -> None:
    learner = FullInfoLearner(FullInfoConfig(policy="walk_forward_static", min_signals=3,
                                             default_profile="scalp"), PROFILES)
    x = learner.design(None, "long", "unknown")
    for i in range(2):
        learner.add(("A", i, "long"), i, x, np.array([-1.0, -1.0, -1.0]))
    learner.advance(10)
    d = learner.decide(x)
    assert (d.profile, d.warm_up) == ("scalp", True)
    learner.add(("A", 2, "long"), 2, x, np.array([-1.0, -0.5, -1.0]))
    learner.advance(10)
    d = learner.decide(x)
    assert d.profile is None and d.chosen == "scalp" and not d.warm_up
    assert d.reason == "stand aside: best predicted -0.83 R (scalp) < margin 0.00"
    off = FullInfoLearner.from_dict(learner.to_dict(), FullInfoConfig(
        policy="walk_forward_static", min_signals=3, default_profile="scalp",
        stand_aside=False))
    assert off.decide(x).profile == "scalp"


def test_shorts_see_the_mirrored_context() -> None:
    learner = _learner()
    ctx = np.arange(len(CONTEXT_FEATURES), dtype=float) + 1.0
    long_x = learner.design(ctx, "long", "trend_up")
    short_x = learner.design(ctx, "short", "trend_up")
    i = {f: j for j, f in enumerate(CONTEXT_FEATURES)}
    assert short_x[i["ctx_ret_24h"]] == -long_x[i["ctx_ret_24h"]]
    assert short_x[i["ctx_dist_hi20"]] == -ctx[i["ctx_dist_lo20"]]
    assert short_x[i["ctx_atr_pct"]] == long_x[i["ctx_atr_pct"]]
    np.testing.assert_array_equal(
        learner.design_matrix(np.vstack([ctx, ctx]), ["long", "short"], ["trend_up"] * 2),
        np.vstack([long_x, short_x]))


def test_state_round_trip_mid_run_continues_identically() -> None:
    sigs = _signals(160, 8)
    whole = _learner(estimator="discounted", half_life=25.0)
    ref = _run(whole, sigs, list(range(len(sigs))))
    a = _learner(estimator="discounted", half_life=25.0)
    for key, release, ctx, rewards, side, regime in sigs:
        a.add(key, release, a.design(ctx, side, regime), rewards)
    got = []
    for n, (key, _r, ctx, _w, side, regime) in enumerate(sigs):
        if n % 40 == 39:  # save and restore (through JSON) every 40 decisions
            a = FullInfoLearner.from_dict(json.loads(json.dumps(a.to_dict())), a.config,
                                          profiles=PROFILES, features=CONTEXT_FEATURES)
        a.advance(key[1])
        got.append(a.decide(a.design(ctx, side, regime)).profile)
    assert got == ref


def test_stored_statistics_refuse_another_memory_or_other_profiles() -> None:
    state = _learner(estimator="discounted", half_life=25.0).to_dict()
    with pytest.raises(ConfigError, match=r"metastrategy\.estimator.*half_life 25"):
        FullInfoLearner.from_dict(state, FullInfoConfig(estimator="discounted", half_life=50.0))
    with pytest.raises(ConfigError, match=r"metastrategy\.profiles"):
        FullInfoLearner.from_dict(state, FullInfoConfig(estimator="discounted", half_life=25.0),
                                  profiles=["scalp"])
    ok = FullInfoLearner.from_dict(state, FullInfoConfig(estimator="discounted", half_life=25.0,
                                                         stand_aside_margin=0.3))
    assert ok.config.stand_aside_margin == 0.3


@pytest.mark.parametrize(("policy", "stand_aside", "min_signals"),
                         [("contextual_ridge", True, 20), ("contextual_ridge", False, 1),
                          ("walk_forward_static", True, 20), ("walk_forward_static", False, 5)])
def test_choose_is_decide_without_the_record(policy: str, stand_aside: bool,
                                             min_signals: int) -> None:
    """The replay's fast path (``choose``) and the strategy's ``decide`` are one rule."""
    sigs = _signals(150, 11)
    learner = _learner(policy=policy, stand_aside=stand_aside, min_signals=min_signals,
                       switch_margin=0.05)
    seen = set()
    for key, release, ctx, rewards, side, regime in sigs:
        learner.advance(key[1])
        x = learner.design(ctx, side, regime)
        d = learner.decide(x)
        j, value, warm_up = learner.choose(x)
        assert (PROFILES[j] if j >= 0 else None) == d.profile
        assert warm_up == d.warm_up
        if d.warm_up:
            assert np.isnan(value) and d.predicted == {}
        else:
            assert value == d.predicted[d.chosen]
        seen.add((d.warm_up, d.profile is None))
        learner.add(key, release, x, rewards)
    assert (True, False) in seen and (False, False) in seen
    assert ((False, True) in seen) == stand_aside
