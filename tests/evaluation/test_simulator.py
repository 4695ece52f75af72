"""The counterfactual simulator (``freqtrade_metastrategy.evaluation.simulator``), fast, no
Freqtrade.

1. Every hand-built price path of ``tests/adapter/test_exits_e2e.py`` (whose fills are the ones
   Freqtrade produced), long and short, with and without tick rounding: the simulator's fills
   (fraction, price, tag, candle) and R are the expected ones, to the tolerances of that file.
2. :data:`EXTRA_CASES`: orderings the e2e paths do not pin (a trailing stop and TP3 in one
   candle, an after-fill stop and TP3 in one candle, a trailing stop hit, the forced exit at the
   end of the data filling at the last candle's *open*). Their expected fills are checked
   against real Freqtrade backtests in ``tests/evaluation/test_simulator_agreement.py``.
3. Properties on random walks: R units, all seven built-in profiles, fills inside their candle,
   causality (truncating the data after a trade's exit never changes it), long/short mirror
   symmetry, and the input checks.
"""

from __future__ import annotations

import math
import subprocess
import sys
from collections.abc import Sequence

import helpers.exit_paths as e2e
import numpy as np
import pandas as pd
import pytest
from conftest import REPO_ROOT
from helpers.exit_paths import (
    BASE,
    ENTRY_DATE,
    PAD,
    SIGNAL_DATE,
    TIMEFRAME,
    Bar,
    Case,
    Fill,
    Geometry,
    build_frame,
    independent_r,
    sign_of,
)

from freqtrade_metastrategy.evaluation import (
    EXIT_REASONS,
    Entry,
    infer_tick_sizes,
    simulate,
    simulate_with_fills,
)
from freqtrade_metastrategy.evaluation.simulator import FILL_TAGS
from freqtrade_metastrategy.indicators import compute_regime_features
from freqtrade_metastrategy.profiles import BUILTIN_PROFILES, ProfileRegistry

P = e2e.PROFILE  # moderate: stop 1R, TP1 2R (50%), TP2 3.5R (30%), TP3 5.5R, trail 1R after TP2
FEE = e2e.FEE
PRICE_TOL = e2e.PRICE_TOL
SIDES = ("long", "short")
TICKS = (0.01, None)

# ------------------------------------------------------------------------------------------
# extra hand-built paths (same conventions as tests/adapter/test_exits_e2e.py)
# ------------------------------------------------------------------------------------------
#: Replaces the last candle of a case's frame (the pad normally repeats the last close), in
#: favourable offsets: shows which price the forced exit at the end of the data takes.
LAST_CANDLE: dict[str, Bar] = {"force_exit_open": Bar(0.7, 0.9, 0.3, 0.4)}

EXTRA_CASES: list[Case] = [
    Case(
        "trail_then_roi", "BTC",
        # After TP2 the trailing stop is raised by a candle (4.4 - 1.02 = 3.38): Freqtrade now
        # calls a hit of it trailing_stop_loss, which should_exit lists AFTER the ROI. The next
        # candle touches both (low 3.0 <= 3.38, high 5.8 > TP3 5.61): it exits at TP3.
        "trailing stop raised, then one candle reaches it and TP3: TP3 wins",
        [*e2e.LADDER_TO_TP2, Bar(4.4, 5.8, 3.0, 5.0)],
        lambda g: [
            Fill(P.partial_close_tp1, g.px(2.2), "tp1", 2),
            Fill(P.partial_close_tp2, g.px(3.6), "tp2", 3),
            Fill(P.partial_close_tp3, g.level(P.r_tp3), "roi", 4),
        ],
    ),
    Case(
        "trail_then_stop", "ETH",
        "trailing stop raised by a candle, then hit: exit reason trailing_stop_loss",
        [*e2e.LADDER_TO_TP2, Bar(4.4, 4.5, 3.0, 3.1)],
        lambda g: [
            Fill(P.partial_close_tp1, g.px(2.2), "tp1", 2),
            Fill(P.partial_close_tp2, g.px(3.6), "tp2", 3),
            Fill(P.partial_close_tp3, e2e.trail(g, 4.4), "trailing_stop_loss", 4),
        ],
    ),
    Case(
        "afterfill_stop_and_roi", "SOL",
        # The stop placed by the after-fill call (1R behind 3.8) is a plain stop_loss, listed
        # BEFORE the ROI: the candle that also runs through TP3 exits at the stop.
        "TP1+TP2 at the open, then the candle hits the new stop and TP3: the stop wins",
        [e2e.RISING_ENTRY, Bar(0.6, 3.8, 0.5, 3.6), Bar(3.7, 6.0, 2.5, 5.0)],
        lambda g: [
            Fill(P.partial_close_tp1 + P.partial_close_tp2, g.px(3.7), "tp1+tp2", 2),
            Fill(P.partial_close_tp3, e2e.trail(g, 3.8), "stop_loss", 2),
        ],
    ),
    Case(
        "stop_and_roi_entry_candle", "XRP",
        "the entry candle reaches the initial stop and TP3: the stop wins",
        [Bar(0.0, 6.0, -1.5, 0.5)],
        lambda g: [Fill(1.0, g.level(-P.r_sl), "stop_loss", 0)],
    ),
    Case(
        "force_exit_open", "ADA",
        # Backtesting.handle_left_open exits at exit_row[OPEN_IDX]: the last candle's open.
        "still open when the data ends: force exit at the OPEN of the last candle",
        [e2e.RISING_ENTRY, Bar(0.6, 0.9, 0.2, 0.5)],
        lambda g: [Fill(1.0, g.px(LAST_CANDLE["force_exit_open"].open), "force_exit", 1 + PAD)],
    ),
]


def path_frame(case: Case, side: str) -> pd.DataFrame:
    """The e2e frame of ``case`` (``build_frame``), with :data:`LAST_CANDLE` applied."""
    sign = sign_of(side)
    frame = build_frame(case.bars, sign)
    last = LAST_CANDLE.get(case.name)
    if last is not None:
        frame.loc[frame.index[-1], ["open", "high", "low", "close"]] = last.ohlc(sign)
    return frame


def signal_r(frame: pd.DataFrame) -> float:
    """1R as the strategy computes it: ATR(14) of the signal candle."""
    atr = compute_regime_features(frame, "1h")["atr"]
    return float(atr[frame.index[frame["date"] == SIGNAL_DATE][0]])


def check_path(case: Case, side: str, tick: float | None) -> None:
    sign = sign_of(side)
    pair = case.pair(side)
    frame = path_frame(case, side)
    r_unit = signal_r(frame)
    assert r_unit == pytest.approx(1.02, abs=1e-12)
    out, fills = simulate_with_fills(
        {pair: frame}, [Entry(pair, SIGNAL_DATE, side, r_unit, "trend_up")], {"moderate": P},
        fee=FEE, tick_size=None if tick is None else {pair: tick},
    )
    g = Geometry(sign, BASE, r_unit, 0.01)
    expected = case.exits(g)
    got = [(f.fraction, f.price, str(f.tag), f.time) for f in fills.itertuples()]
    want = [(f.fraction, f.price, f.tag, f.date) for f in expected]
    assert len(got) == len(want), f"{case.name} ({side}): {case.doc}\n{got}\n!= {want}"
    for a, b in zip(got, want, strict=True):
        assert a[0] == pytest.approx(b[0], abs=PRICE_TOL), (case.name, side, a, b)
        assert a[1] == pytest.approx(b[1], abs=PRICE_TOL), (case.name, side, a, b)
        assert a[2:] == b[2:], (case.name, side, a, b)
    _, r_expected = independent_r(
        sign=sign, entry_amount=1.0, entry_price=BASE,
        exits=[(f.fraction, f.price) for f in expected], fee=FEE, r_unit=r_unit,
    )
    row = out.iloc[0]
    assert row.r_atr == pytest.approx(r_expected, abs=e2e.MONEY_TOL)
    assert row.r_atr == pytest.approx(r_expected, abs=1e-9)
    assert row.r_risk == pytest.approx(r_expected / P.r_sl, abs=1e-12)
    assert row.entry_time == ENTRY_DATE and row.entry_price == BASE
    assert row.exit_time == expected[-1].date
    reason = {"trailing_stop_loss": "stop_loss"}.get(expected[-1].tag, expected[-1].tag)
    assert row.exit_reason == reason
    assert row.n_fills == len(expected)
    assert row.exit_price == pytest.approx(expected[-1].price, abs=PRICE_TOL)


@pytest.mark.parametrize("tick", TICKS, ids=["tick", "exact"])
@pytest.mark.parametrize("side", SIDES)
@pytest.mark.parametrize("case", e2e.CASES, ids=[c.name for c in e2e.CASES])
def test_e2e_paths(case: Case, side: str, tick: float | None) -> None:
    check_path(case, side, tick)


@pytest.mark.parametrize("tick", TICKS, ids=["tick", "exact"])
@pytest.mark.parametrize("side", SIDES)
@pytest.mark.parametrize("case", EXTRA_CASES, ids=[c.name for c in EXTRA_CASES])
def test_extra_paths(case: Case, side: str, tick: float | None) -> None:
    check_path(case, side, tick)


def test_all_cases_in_one_call_equal_one_by_one() -> None:
    """Simulations do not interact: every path in one call (both sides, many pairs)."""
    cases = [*e2e.CASES, *EXTRA_CASES]
    candles, entries = {}, []
    for side in SIDES:
        for case in cases:
            pair = f"{case.name}/{side}"
            candles[pair] = path_frame(case, side)
            entries.append(Entry(pair, SIGNAL_DATE, side, signal_r(candles[pair]), "x"))
    ticks = dict.fromkeys(candles, 0.01)
    together = simulate(candles, entries, {"moderate": P}, fee=FEE, tick_size=ticks)
    for i, entry in enumerate(entries):
        alone = simulate({entry.pair: candles[entry.pair]}, [entry], {"moderate": P}, fee=FEE,
                         tick_size=ticks)
        for col in ("r_atr", "exit_time", "exit_reason", "n_fills", "exit_price"):
            assert together.loc[i, col] == alone.loc[0, col], (entry.pair, col)


# ------------------------------------------------------------------------------------------
# random walks
# ------------------------------------------------------------------------------------------
def random_walk(n: int, seed: int, start: float = 100.0, vol: float = 0.01) -> pd.DataFrame:
    """A 1h OHLCV frame on a 0.01 price grid."""
    rng = np.random.default_rng(seed)
    close = np.round(start * np.exp(np.cumsum(rng.normal(0.0, vol, n))), 2)
    open_ = np.round(np.concatenate([[start], close[:-1]]), 2)
    # some gaps: the open jumps away from the previous close
    jump = rng.random(n) < 0.05
    open_[jump] = np.round(open_[jump] * np.exp(rng.normal(0.0, 2 * vol, jump.sum())), 2)
    wick = np.abs(rng.normal(0.0, vol / 2, (2, n)))
    high = np.round(np.maximum(open_, close) * (1 + wick[0]), 2)
    low = np.round(np.minimum(open_, close) * (1 - wick[1]), 2)
    dates = pd.date_range("2023-01-01", periods=n, freq="1h", tz="UTC")
    return pd.DataFrame({"date": dates, "open": open_, "high": high, "low": low, "close": close,
                         "volume": 1000.0})


def random_entries(candles: dict[str, pd.DataFrame], n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    pairs = sorted(candles)
    atr = {p: compute_regime_features(candles[p], "1h")["atr"].to_numpy() for p in pairs}
    for _ in range(n):
        pair = pairs[int(rng.integers(len(pairs)))]
        i = int(rng.integers(20, len(candles[pair]) - 2))
        rows.append((pair, candles[pair]["date"].iloc[i], "short" if rng.random() < 0.5
                     else "long", float(atr[pair][i]), "range_low_vol" if i % 2 else "trend_up"))
    return pd.DataFrame(rows, columns=["pair", "signal_time", "side", "r_unit", "regime"])


@pytest.fixture(scope="module")
def walk() -> tuple[dict[str, pd.DataFrame], pd.DataFrame]:
    candles = {"AAA/USDT": random_walk(3000, 1), "BBB/USDT": random_walk(3000, 2, 2.5, 0.02)}
    return candles, random_entries(candles, 400, 3)


@pytest.fixture(scope="module")
def grid(walk: tuple[dict[str, pd.DataFrame], pd.DataFrame]
         ) -> tuple[pd.DataFrame, pd.DataFrame]:
    candles, entries = walk
    return simulate_with_fills(candles, entries, BUILTIN_PROFILES, fee=FEE,
                               tick_size=dict.fromkeys(candles, 0.01))


def test_profile_grid_gives_finite_consistent_outcomes(
    walk: tuple[dict[str, pd.DataFrame], pd.DataFrame], grid: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    candles, entries = walk
    out, fills = grid
    assert len(out) == len(entries) * len(BUILTIN_PROFILES)
    assert list(out["profile"].cat.categories) == list(BUILTIN_PROFILES)
    assert (out["entry_id"].to_numpy() == np.repeat(np.arange(len(entries)), 7)).all()
    for col in ("r_atr", "r_risk", "ret_pct", "entry_price", "exit_price", "r_unit"):
        assert np.isfinite(out[col].to_numpy()).all(), col
    assert set(out["exit_reason"].astype(str)) <= set(EXIT_REASONS[:3])
    assert {"stop_loss", "roi"} <= set(out["exit_reason"].astype(str))
    assert (out["exit_time"] >= out["entry_time"]).all()
    assert (out["entry_time"] == out["signal_time"] + TIMEFRAME).all()
    assert out["n_fills"].between(1, 3).all()
    # every profile's ladder was exercised
    tags = set(fills["tag"].astype(str))
    assert {"tp1", "tp2", "stop_loss", "trailing_stop_loss", "roi"} <= tags, tags
    # fills: fractions sum to 1, each price inside its candle, the last one at exit_time
    per = fills.groupby(["entry_id", "profile"], observed=True)
    assert np.allclose(per["fraction"].sum().to_numpy(), 1.0, atol=1e-12)
    assert (per.size().to_numpy() == out["n_fills"].to_numpy()).all()
    pair_of = entries["pair"].to_numpy()
    for pair, frame in candles.items():
        mine = fills[pair_of[fills["entry_id"].to_numpy()] == pair]
        bar = frame.set_index("date").loc[mine["time"]]
        assert (mine["price"].to_numpy() >= bar["low"].to_numpy() - 1e-9).all(), pair
        assert (mine["price"].to_numpy() <= bar["high"].to_numpy() + 1e-9).all(), pair
    last = per.tail(1).set_index(["entry_id", "profile"])
    key = out.set_index(["entry_id", "profile"])
    assert (last["time"] == key.loc[last.index, "exit_time"]).all()


def test_r_units(walk: tuple[dict[str, pd.DataFrame], pd.DataFrame],
                 grid: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    """r_risk = r_atr / r_sl; ret_pct = r_atr x 1R / entry x 100; R is the fills' R."""
    _, entries = walk
    out, fills = grid
    r_sl = out["profile"].astype(str).map({k: p.r_sl for k, p in BUILTIN_PROFILES.items()})
    assert np.allclose(out["r_risk"], out["r_atr"] / r_sl, rtol=1e-12, atol=0)
    assert np.allclose(out["ret_pct"], out["r_atr"] * out["r_unit"] / out["entry_price"] * 100,
                       rtol=1e-9, atol=1e-12)
    assert (out["r_unit"].to_numpy() == np.repeat(entries["r_unit"].to_numpy(), 7)).all()
    by_trade = {k: g for k, g in fills.groupby(["entry_id", "profile"], observed=True)}
    for row in out.iloc[::37].itertuples():
        f = by_trade[(row.entry_id, row.profile)]
        _, r = independent_r(sign=sign_of(str(row.side)), entry_amount=1.0,
                             entry_price=row.entry_price,
                             exits=list(zip(f["fraction"], f["price"], strict=True)), fee=FEE,
                             r_unit=row.r_unit)
        assert row.r_atr == pytest.approx(r, abs=1e-9)


def _same(a: pd.DataFrame, b: pd.DataFrame, cols: Sequence[str]) -> None:
    for col in cols:
        assert (a[col].to_numpy() == b[col].to_numpy()).all(), col


def test_causality_truncating_after_an_exit_changes_nothing_before_it(
    walk: tuple[dict[str, pd.DataFrame], pd.DataFrame], grid: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    candles, entries = walk
    full, full_fills = grid
    cols = ("r_atr", "exit_time", "exit_reason", "n_fills", "exit_price", "tps_filled")
    rng = np.random.default_rng(5)
    closed = full[full["exit_reason"] != "force_exit"]
    picks = closed.iloc[rng.choice(len(closed), 12, replace=False)]
    for row in picks.itertuples():
        # Cut right after this trade's exit candle (the entry candle must not be the last one:
        # Freqtrade never enters there).
        cut = max(row.exit_time, row.entry_time + TIMEFRAME)
        trunc = {p: f[f["date"] <= cut].reset_index(drop=True) for p, f in candles.items()}
        keep = np.flatnonzero((entries["signal_time"] + TIMEFRAME < cut).to_numpy())
        res, res_fills = simulate_with_fills(trunc, entries.iloc[keep], BUILTIN_PROFILES,
                                             fee=FEE, tick_size=dict.fromkeys(candles, 0.01))
        res["entry_id"] = keep[res["entry_id"].to_numpy()]
        res_fills["entry_id"] = keep[res_fills["entry_id"].to_numpy()]
        # this trade, and every trade that closed by the cut, is unchanged
        before = full[(full["entry_id"].isin(keep)) & (full["exit_time"] <= cut)
                      & (full["exit_reason"] != "force_exit")]
        assert (row.entry_id, row.profile) in set(zip(before["entry_id"], before["profile"],
                                                      strict=True))
        got = res.set_index(["entry_id", "profile"]).loc[
            before.set_index(["entry_id", "profile"]).index].reset_index()
        _same(got, before.reset_index(drop=True), cols)
        wanted = full_fills.merge(before[["entry_id", "profile"]])
        mine = res_fills.merge(before[["entry_id", "profile"]])
        _same(mine, wanted, ("entry_id", "profile", "bar", "fraction", "price", "tag"))


def _mirror(frame: pd.DataFrame, level: float) -> pd.DataFrame:
    """Prices reflected around ``level`` (a long's path becomes a short's), on the 0.01 grid."""
    m = frame.copy()
    for col, src in (("open", "open"), ("close", "close"), ("high", "low"), ("low", "high")):
        m[col] = np.round(2 * level - frame[src], 2)
    return m


@pytest.mark.parametrize("tick", TICKS, ids=["tick", "exact"])
def test_short_mirrors_long(tick: float | None) -> None:
    """Without fees a short on the reflected path is the long, reflected: same fills, same R."""
    candles = {"AAA/USDT": random_walk(2000, 7)}
    level = 150.0  # the walk stays well below 300: reflected prices stay positive
    assert candles["AAA/USDT"]["high"].max() < 2 * level
    mirrored = {"AAA/USDT": _mirror(candles["AAA/USDT"], level)}
    longs = random_entries(candles, 150, 8).assign(side="long")
    shorts = longs.assign(side="short")
    ticks = None if tick is None else {"AAA/USDT": tick}
    a, fa = simulate_with_fills(candles, longs, BUILTIN_PROFILES, fee=0.0, tick_size=ticks)
    b, fb = simulate_with_fills(mirrored, shorts, BUILTIN_PROFILES, fee=0.0, tick_size=ticks)
    assert np.allclose(a["r_atr"], b["r_atr"], atol=1e-9, rtol=0)
    _same(a, b, ("exit_time", "exit_reason", "n_fills"))
    _same(fa, fb, ("entry_id", "bar", "tag"))
    assert np.allclose(fa["price"], 2 * level - fb["price"], atol=1e-9, rtol=0)


# ------------------------------------------------------------------------------------------
# inputs
# ------------------------------------------------------------------------------------------
def test_entries_as_frame_or_objects_give_the_same_table(
    walk: tuple[dict[str, pd.DataFrame], pd.DataFrame], grid: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    candles, entries = walk
    objs = [Entry(r.pair, r.signal_time, r.side, r.r_unit, r.regime)
            for r in entries.iloc[:50].itertuples()]
    a = simulate(candles, objs, BUILTIN_PROFILES, fee=FEE, tick_size=dict.fromkeys(candles, 0.01))
    b = grid[0].iloc[:50 * 7].reset_index(drop=True)
    pd.testing.assert_frame_equal(a, b)


def test_entries_without_an_entry_candle() -> None:
    """Signals on the last two candles: no entry candle, or only the last one (Freqtrade never
    enters there). Left out by default, kept as ``no_entry`` on request."""
    frame = random_walk(100, 9)
    candles = {"AAA/USDT": frame}
    dates = frame["date"]
    entries = [Entry("AAA/USDT", dates.iloc[i], "long", 1.0, "x") for i in (50, 98, 99, 97)]
    profiles = {"moderate": P, "scalp": BUILTIN_PROFILES["scalp"]}
    out = simulate(candles, entries, profiles, fee=FEE)
    assert out["entry_id"].tolist() == [0, 0, 3, 3]
    assert out["exit_reason"].notna().all() and out["exit_time"].notna().all()
    # the entry on the second-to-last candle runs two candles at most; if still open, it is
    # force-exited at the last candle's open
    last = out[out["entry_id"] == 3]
    assert last["exit_time"].isin([dates.iloc[98], dates.iloc[99]]).all()
    forced = last[last["exit_reason"] == "force_exit"]
    assert (forced["exit_time"] == dates.iloc[99]).all()
    assert (forced["exit_price"] == frame["open"].iloc[99]).all()
    kept = simulate(candles, entries, profiles, fee=FEE, keep_unfilled=True)
    assert kept["entry_id"].tolist() == [0, 0, 1, 1, 2, 2, 3, 3]
    gone = kept[kept["entry_id"].isin([1, 2])]
    assert (gone["exit_reason"] == "no_entry").all()
    assert gone["r_atr"].isna().all() and gone["exit_time"].isna().all()
    assert (gone["n_fills"] == 0).all()
    assert gone.loc[gone["entry_id"] == 2, "entry_time"].isna().all()


def test_missing_r_unit_falls_back_to_one_percent_of_the_entry() -> None:
    frame = random_walk(200, 10)
    entry = Entry("AAA/USDT", frame["date"].iloc[30], "short", math.nan, "x")
    out = simulate({"AAA/USDT": frame}, [entry], {"moderate": P}, fee=FEE)
    assert out.loc[0, "r_unit"] == pytest.approx(0.01 * frame["open"].iloc[31])
    assert np.isfinite(out.loc[0, "r_atr"])


def test_tick_sizes_are_inferred_from_the_prices() -> None:
    frames = {"AAA/USDT": random_walk(500, 11), "P/USDT": path_frame(e2e.CASES[0], "long")}
    odd = random_walk(50, 12)
    odd[["open", "high", "low", "close"]] = np.round(odd[["open", "high", "low", "close"]]
                                                     / 25, 4)
    frames["XRP/USDT"] = odd
    assert infer_tick_sizes(frames) == {"AAA/USDT": 0.01, "P/USDT": 0.01, "XRP/USDT": 0.0001}


def test_bad_inputs_are_refused() -> None:
    frame = random_walk(100, 13)
    candles = {"AAA/USDT": frame}
    ok = Entry("AAA/USDT", frame["date"].iloc[10], "long", 1.0, "x")
    prof = {"moderate": P}
    with pytest.raises(ValueError, match="no candles"):
        simulate(candles, [Entry("ZZZ/USDT", ok.signal_time, "long", 1.0, "x")], prof, fee=0)
    with pytest.raises(ValueError, match="is not a candle"):
        simulate(candles, [Entry("AAA/USDT", ok.signal_time + pd.Timedelta(minutes=30), "long",
                                 1.0, "x")], prof, fee=0)
    with pytest.raises(ValueError, match="side"):
        simulate(candles, [Entry("AAA/USDT", ok.signal_time, "buy", 1.0, "x")], prof, fee=0)
    with pytest.raises(ValueError, match="regular grid"):
        simulate({"AAA/USDT": frame.drop(index=50)}, [ok], prof, fee=0)
    with pytest.raises(ValueError, match="fee"):
        simulate(candles, [ok], prof, fee=-0.1)
    with pytest.raises(ValueError, match="tick_size"):
        simulate(candles, [ok], prof, fee=0, tick_size={"AAA/USDT": 0.0})
    with pytest.raises(ValueError, match="profiles"):
        simulate(candles, [ok], {}, fee=0)
    with pytest.raises(ValueError, match="missing column"):
        simulate(candles, pd.DataFrame({"pair": ["AAA/USDT"]}), prof, fee=0)


def test_user_profiles_and_labels() -> None:
    """Any profile works (e.g. from the config); the ``profile`` column holds the mapping keys."""
    reg = ProfileRegistry.from_config({"wide": {"base": "moderate", "r_sl": 2.0,
                                                "breakeven_after_tp": 0, "trail_after_tp": 1}})
    frame = random_walk(500, 14)
    entries = random_entries({"AAA/USDT": frame}, 40, 15)
    out = simulate({"AAA/USDT": frame}, entries, {"A": reg["wide"], "B": reg["moderate"]},
                   fee=FEE)
    assert out["profile"].astype(str).tolist() == ["A", "B"] * 40
    a = out[out["profile"] == "A"]
    assert np.allclose(a["r_risk"], a["r_atr"] / 2.0)


def test_empty_entries() -> None:
    out, fills = simulate_with_fills({}, [], {"moderate": P}, fee=FEE)
    assert out.empty and fills.empty
    assert "r_atr" in out.columns and set(FILL_TAGS) >= set(fills["tag"].astype(str))


def test_the_core_never_imports_freqtrade() -> None:
    code = ("import sys, freqtrade_metastrategy.evaluation.simulator, "
            "freqtrade_metastrategy.evaluation.walkforward, "
            "freqtrade_metastrategy.evaluation.report; "
            "bad = [m for m in sys.modules if m == 'freqtrade' or m.startswith('freqtrade.')]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO_ROOT)
