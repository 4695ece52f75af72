"""Tests of freqtrade_metastrategy.context: definitions, bounds, HTF/leader merges, no lookahead."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import talib

from freqtrade_metastrategy.context import (
    CLIP,
    CONTEXT_FEATURES,
    DIRECTIONAL,
    NEUTRAL,
    compute_context,
    higher_timeframe,
)
from freqtrade_metastrategy.errors import ConfigError, MetaStrategyError
from freqtrade_metastrategy.indicators import compute_regime_features, timeframe_to_seconds
from freqtrade_metastrategy.regime import RegimeThresholds, classify_frame

DATA = Path(__file__).resolve().parents[2] / "user_data" / "data" / "binance"
HTF_COLUMNS = ["ctx_htf_trend", "ctx_htf_adx", "ctx_htf_atr_pct"]
LEAD_COLUMNS = ["ctx_lead_trend", "ctx_lead_atr_pct", "ctx_lead_ret_24h"]


def frame(
    n: int = 1200,
    *,
    seed: int = 1,
    freq: str = "h",
    timeframe: str = "1h",
    start: str = "2024-01-01",
    sigma: float = 0.01,
) -> pd.DataFrame:
    """Seeded OHLCV random walk (log-volatility ``sigma`` per candle) with a ``date`` column,
    the regime features and ``regime``."""
    rng = np.random.default_rng(seed)
    close = 50.0 * np.exp(np.cumsum(sigma * rng.standard_normal(n)))
    open_ = np.concatenate([[50.0], close[:-1]])
    df = pd.DataFrame(
        {
            "date": pd.date_range(start, periods=n, freq=freq, tz="UTC"),
            "open": open_,
            "high": np.maximum(open_, close) * (1.0 + 0.5 * sigma * rng.random(n)),
            "low": np.minimum(open_, close) * (1.0 - 0.5 * sigma * rng.random(n)),
            "close": close,
            "volume": rng.lognormal(8.0, 0.5, n),
        }
    )
    df = df.join(compute_regime_features(df, timeframe))
    return classify_frame(df, RegimeThresholds())


def finish(values: object, name: str) -> np.ndarray:
    """What compute_context does to a raw column: clip, then NaN -> neutral."""
    x = np.clip(np.asarray(values, dtype=np.float64), -CLIP, CLIP)
    return np.where(np.isnan(x), NEUTRAL[name], x)


def vol_return(close: pd.Series, atr_pct: pd.Series, n: int) -> np.ndarray:
    return np.asarray(np.log(close / close.shift(n)) / (atr_pct * math.sqrt(n)))


# --------------------------------------------------------------------------------- API shape


def test_columns_dtype_index_and_directional() -> None:
    df = frame(300)
    df.index = df.index + 1000  # a non-default index is kept
    ctx = compute_context(df, "1h")
    assert list(ctx.columns) == list(CONTEXT_FEATURES)
    assert len(set(CONTEXT_FEATURES)) == len(CONTEXT_FEATURES) == 21
    assert all(name.startswith("ctx_") for name in CONTEXT_FEATURES)
    assert (ctx.dtypes == np.float64).all()
    assert ctx.index.equals(df.index)
    assert set(CONTEXT_FEATURES) > DIRECTIONAL
    assert {"ctx_ret_24h", "ctx_dist_hi20", "ctx_trend", "ctx_rsi", "ctx_lead_trend"} <= DIRECTIONAL
    assert not {"ctx_atr_pct", "ctx_atr_rank", "ctx_adx", "ctx_vol_z", "ctx_fee_r"} & DIRECTIONAL
    assert not {"ctx_hour_sin", "ctx_hour_cos", "ctx_htf_adx", "ctx_lead_atr_pct"} & DIRECTIONAL
    assert set(NEUTRAL) == set(CONTEXT_FEATURES)


def test_input_frame_not_modified_and_empty_frame() -> None:
    df = frame(300)
    before = df.copy()
    compute_context(df, "1h", leader=frame(400, seed=2))
    pd.testing.assert_frame_equal(df, before)
    empty = compute_context(df.iloc[:0], "1h", leader=df)
    assert list(empty.columns) == list(CONTEXT_FEATURES) and len(empty) == 0


def test_warm_up_is_neutral() -> None:
    ctx = compute_context(frame(300), "1h", leader=frame(300, seed=2))
    first = ctx.iloc[0]
    for name in CONTEXT_FEATURES:
        if name not in ("ctx_hour_sin", "ctx_hour_cos"):
            assert first[name] == NEUTRAL[name], name
    assert NEUTRAL["ctx_atr_rank"] == 0.5
    assert all(NEUTRAL[name] == 0.0 for name in CONTEXT_FEATURES if name != "ctx_atr_rank")


@pytest.mark.parametrize(
    ("timeframe", "expected"),
    [("1m", "4h"), ("15m", "4h"), ("1h", "4h"), ("2h", "4h"), ("4h", "1d"), ("12h", "1d"),
     ("1d", "1w"), ("3d", "1w"), ("1w", "1w")],
)  # fmt: skip
def test_higher_timeframe(timeframe: str, expected: str) -> None:
    assert higher_timeframe(timeframe) == expected


def test_errors() -> None:
    df = frame(100)
    with pytest.raises(ConfigError, match="fee"):
        compute_context(df, "1h", fee=-0.001)
    with pytest.raises(ConfigError, match="fee"):
        compute_context(df, "1h", fee=math.nan)
    with pytest.raises(ConfigError, match="timeframe"):
        compute_context(df, "1H")
    with pytest.raises(MetaStrategyError, match="atr_pct"):
        compute_context(df.drop(columns="atr_pct"), "1h")
    with pytest.raises(MetaStrategyError, match="strictly increasing"):
        compute_context(df.iloc[::-1], "1h")
    with pytest.raises(MetaStrategyError, match="leader: missing column 'date'"):
        compute_context(df, "1h", leader=df.drop(columns="date"))


# ------------------------------------------------------------------------------- definitions


def test_own_features_match_their_definitions() -> None:
    df = frame(1500)
    fee = 0.00075
    ctx = compute_context(df, "1h", fee=fee)
    close, atr, atr_pct = df["close"], df["atr"], df["atr_pct"]
    rsi = talib.RSI(close.to_numpy(), timeperiod=14)
    expected = {
        "ctx_atr_pct": atr_pct * 100.0,
        "ctx_adx": df["adx"] / 50.0,
        "ctx_trend": df["trend_strength"],
        "ctx_rsi": (rsi - 50.0) / 50.0,
        "ctx_ret_24h": vol_return(close, atr_pct, 24),
        "ctx_ret_7d": vol_return(close, atr_pct, 168),
        "ctx_fee_r": 2.0 * fee * close / atr,
    }
    for n in (20, 100):
        unit = atr * math.sqrt(n)
        expected[f"ctx_dist_hi{n}"] = (close - df["high"].rolling(n).max()) / unit
        expected[f"ctx_dist_lo{n}"] = (close - df["low"].rolling(n).min()) / unit
    log_qv = np.log1p(df["volume"] * close)
    prev = log_qv.shift(1).rolling(100)
    expected["ctx_vol_z"] = (log_qv - prev.mean()) / prev.std()
    for name, values in expected.items():
        np.testing.assert_allclose(ctx[name], finish(values, name), rtol=1e-9, atol=1e-12)
        assert ctx[name].iloc[-300:].nunique() > 10, name  # not stuck at a neutral value

    # ATR rank: brute force over the 500-candle window ending at the current candle
    x = atr_pct.to_numpy()
    for i in (113, 114, 499, 513, 514, 777, 1499):
        window = x[max(0, i - 499) : i + 1]
        window = window[~np.isnan(window)]
        below, ties = np.sum(window < x[i]), np.sum(window == x[i]) - 1
        assert ctx["ctx_atr_rank"].iloc[i] == pytest.approx((below + ties / 2) / (window.size - 1))
    assert (ctx["ctx_atr_rank"].iloc[:113] == 0.5).all()  # 14 NaN ATRs + 99 ranked: too few
    assert ctx["ctx_atr_rank"].iloc[113] != 0.5


@pytest.mark.parametrize(("freq", "timeframe"), [("h", "1h"), ("15min", "15m"), ("D", "1d")])
def test_hour_is_the_close_time_on_the_unit_circle(freq: str, timeframe: str) -> None:
    df = frame(200, freq=freq, timeframe=timeframe)
    ctx = compute_context(df, timeframe)
    close_time = df["date"] + pd.Timedelta(timeframe_to_seconds(timeframe), "s")
    day_fraction = (close_time.dt.hour * 3600 + close_time.dt.minute * 60) / 86_400
    np.testing.assert_allclose(ctx["ctx_hour_sin"], np.sin(2 * np.pi * day_fraction), atol=1e-12)
    np.testing.assert_allclose(ctx["ctx_hour_cos"], np.cos(2 * np.pi * day_fraction), atol=1e-12)
    if timeframe == "1h":  # the 02:00 candle closes at 03:00
        row = ctx[df["date"].dt.hour.to_numpy() == 2].iloc[0]
        assert row["ctx_hour_sin"] == pytest.approx(math.sin(2 * math.pi * 3 / 24))


def test_finite_and_clipped_on_pathological_data() -> None:
    df = frame(900)
    cols = ["open", "high", "low", "close"]
    df.loc[300:420, cols] = 42.0  # flat: zero ATR, zero range, zero returns
    df.loc[300:420, "volume"] = 0.0  # and no volume
    df.loc[600:, cols] = df.loc[600:, cols] * 40.0  # a x40 jump
    df.loc[650:660, "volume"] = 1e12  # a volume spike
    df = df[["date", "open", "high", "low", "close", "volume"]]
    df = df.join(compute_regime_features(df, "1h"))
    ctx = compute_context(df, "1h", leader=df, fee=0.01)
    values = ctx.to_numpy()
    assert np.isfinite(values).all()
    assert (np.abs(values) <= CLIP).all()
    assert ctx["ctx_atr_rank"].between(0.0, 1.0).all()
    assert ctx["ctx_dist_hi100"].le(0.0).all() and ctx["ctx_dist_lo100"].ge(0.0).all()
    assert ctx["ctx_ret_24h"].iloc[600] == CLIP  # the jump, clipped
    assert ctx["ctx_vol_z"].iloc[650] == CLIP
    assert ctx["ctx_fee_r"].max() == CLIP  # zero ATR: infinite fee in R, clipped
    assert (np.abs(values) == CLIP).any(axis=0).sum() >= 4


# ----------------------------------------------------------------------- higher-timeframe merge


def expected_htf(df: pd.DataFrame, timeframe: str, rule: str, htf: str) -> pd.DataFrame:
    """Independent implementation with pandas resample + merge_asof on availability time."""
    naive = df.assign(date=df["date"].dt.tz_localize(None))  # origin needs a naive index
    bars = (
        naive.set_index("date")[["open", "high", "low", "close", "volume"]]
        .resample(rule, label="left", closed="left", origin=pd.Timestamp("2024-01-01"))
        .agg({"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"})
    )
    feats = compute_regime_features(bars, htf)
    avail = pd.DataFrame(
        {
            "available": bars.index.tz_localize("UTC") + pd.Timedelta(rule),
            "ctx_htf_trend": feats["trend_strength"].to_numpy(),
            "ctx_htf_adx": feats["adx"].to_numpy() / 50.0,
            "ctx_htf_atr_pct": feats["atr_pct"].to_numpy() * 100.0,
        }
    )
    left = pd.DataFrame({"closes": df["date"] + pd.Timedelta(timeframe_to_seconds(timeframe), "s")})
    merged = pd.merge_asof(left, avail, left_on="closes", right_on="available")
    return pd.DataFrame({name: finish(merged[name], name) for name in HTF_COLUMNS})


@pytest.mark.parametrize(
    ("freq", "timeframe", "rule", "htf", "n", "sigma"),
    [
        ("h", "1h", "4h", "4h", 800, 0.01),
        ("15min", "15m", "4h", "4h", 3000, 0.005),
        ("4h", "4h", "1D", "1d", 500, 0.008),
        ("D", "1d", "7D", "1w", 500, 0.008),  # weeks start on Monday (2024-01-01)
    ],
)
def test_htf_features_match_pandas_resample(
    freq: str, timeframe: str, rule: str, htf: str, n: int, sigma: float
) -> None:
    df = frame(n, freq=freq, timeframe=timeframe, sigma=sigma)
    ctx = compute_context(df, timeframe)
    expected = expected_htf(df, timeframe, rule, htf)
    for name in HTF_COLUMNS:
        np.testing.assert_allclose(ctx[name].to_numpy(), expected[name], rtol=1e-12, atol=0)
        assert ctx[name].nunique() > 5 and (ctx[name].abs() < CLIP).mean() > 0.9, name


def test_htf_merge_boundary_is_the_close_of_the_base_candle() -> None:
    df = frame(800)
    ctx = compute_context(df, "1h").set_index(df["date"])
    bars = (
        df.set_index("date")[["open", "high", "low", "close", "volume"]]
        .resample("4h", label="left", closed="left")
        .agg({"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"})
    )
    trend = compute_regime_features(bars, "4h")["trend_strength"]
    day = pd.Timestamp("2024-01-20", tz="UTC")
    h = pd.Timedelta(1, "h")
    # 01:00 and 02:00 (closing at 02:00, 03:00) still see the 20:00-24:00 bar of the day before
    for hour in (0, 1, 2):
        assert ctx.loc[day + hour * h, "ctx_htf_trend"] == trend[day - 4 * h]
    # 03:00 closes at 04:00, when the 00:00-04:00 bar is complete
    for hour in (3, 4, 5, 6):
        assert ctx.loc[day + hour * h, "ctx_htf_trend"] == trend[day]
    assert ctx.loc[day + 7 * h, "ctx_htf_trend"] == trend[day + 4 * h]
    assert trend[day] != trend[day - 4 * h]


def test_htf_first_period_entered_late_is_dropped() -> None:
    late = frame(600, start="2024-01-01 02:00")  # the 00:00-04:00 bar would have 2 candles
    aligned = late[late["date"] >= pd.Timestamp("2024-01-01 04:00", tz="UTC")]
    ctx_late = compute_context(late, "1h")
    ctx_aligned = compute_context(aligned, "1h")
    assert (ctx_late.loc[:1, HTF_COLUMNS] == 0.0).all().all()  # 02:00, 03:00: nothing complete
    np.testing.assert_array_equal(
        ctx_late.loc[aligned.index, HTF_COLUMNS].to_numpy(), ctx_aligned[HTF_COLUMNS].to_numpy()
    )
    assert ctx_aligned["ctx_htf_adx"].iloc[-1] != 0.0


# --------------------------------------------------------------------------------- leader


def test_leader_merge_by_date() -> None:
    pair = frame(600, start="2024-01-10")
    leader = frame(900, seed=7, start="2024-01-05")  # starts earlier, ends later
    ctx = compute_context(pair, "1h", leader=leader)
    lead = leader.set_index("date")
    expected = {
        "ctx_lead_trend": lead["trend_strength"],
        "ctx_lead_atr_pct": lead["atr_pct"] * 100.0,
        "ctx_lead_ret_24h": pd.Series(
            vol_return(leader["close"], leader["atr_pct"], 24), index=lead.index
        ),
    }
    for name, series in expected.items():
        np.testing.assert_array_equal(
            ctx[name].to_numpy(), finish(series.loc[pair["date"]].to_numpy(), name)
        )
        assert ctx[name].nunique() > 100, name

    none = compute_context(pair, "1h")
    assert (none[LEAD_COLUMNS] == 0.0).all().all()
    own = [name for name in CONTEXT_FEATURES if name not in LEAD_COLUMNS]
    np.testing.assert_array_equal(none[own].to_numpy(), ctx[own].to_numpy())


def test_leader_partial_coverage_gap_and_staleness() -> None:
    pair = frame(600, start="2024-01-10")
    leader = frame(900, seed=7, start="2024-01-05")
    d = pair["date"]
    later = leader[leader["date"] >= d.iloc[100]]  # starts inside the pair's span
    ctx = compute_context(pair, "1h", leader=later)
    assert (ctx.loc[:99, LEAD_COLUMNS] == 0.0).all().all()
    assert ctx.loc[100:, "ctx_lead_atr_pct"].ne(0.0).sum() > 400

    gap = leader[leader["date"] != d.iloc[300]]  # one leader candle missing: use the previous
    with_gap = compute_context(pair, "1h", leader=gap)
    full = compute_context(pair, "1h", leader=leader)
    assert (
        with_gap.loc[300, "ctx_lead_trend"]
        == gap.set_index("date").loc[d.iloc[299], "trend_strength"]
    )
    np.testing.assert_array_equal(with_gap.loc[:299].to_numpy(), full.loc[:299].to_numpy())

    short = leader[leader["date"] <= d.iloc[400]]  # the leader stops: 24 h stale at most
    stale = compute_context(pair, "1h", leader=short)
    assert (stale.loc[401:424, "ctx_lead_trend"] == stale.loc[400, "ctx_lead_trend"]).all()
    assert (stale.loc[425:, LEAD_COLUMNS] == 0.0).all().all()


# --------------------------------------------------------------------------------- causality


@pytest.mark.parametrize(
    ("freq", "timeframe", "start", "sigma"),
    [
        ("h", "1h", "2024-01-01", 0.01),
        ("h", "1h", "2024-01-01 02:00", 0.01),  # enters its first 4h period late
        ("15min", "15m", "2024-01-01 00:45", 0.005),
        ("4h", "4h", "2024-01-01 08:00", 0.008),
        ("D", "1d", "2024-01-03", 0.008),  # a Wednesday
    ],
)
def test_no_lookahead_truncation_is_bit_for_bit(
    freq: str, timeframe: str, start: str, sigma: float
) -> None:
    n = 3000 if timeframe == "15m" else 1200
    df = frame(n, freq=freq, timeframe=timeframe, start=start, sigma=sigma)
    # the leader starts 100 candles earlier and ends 300 candles later than the pair
    lead_start = pd.Timestamp(start) - 100 * pd.Timedelta(timeframe_to_seconds(timeframe), "s")
    leader = frame(
        n + 400, seed=9, freq=freq, timeframe=timeframe, start=str(lead_start), sigma=sigma
    )
    full = compute_context(df, timeframe, leader=leader)
    live = full.iloc[-200:].drop(columns=["ctx_hour_sin", "ctx_hour_cos"]).nunique()
    assert (live > 5).all(), live  # every feature is live at the end
    # truncation points cut inside hours, 4h periods, days and weeks (17 consecutive k: every
    # position inside a 4h period of 15m candles, a day of 4h candles, a week of 1d candles)
    for k in (1, 2, 27, 101, 250, 502, *range(700, 717), 1001, 1199, n - 1):
        part = compute_context(df.iloc[:k], timeframe, leader=leader)
        np.testing.assert_array_equal(part.to_numpy(), full.iloc[:k].to_numpy(), err_msg=f"k={k}")
        assert part.index.equals(df.index[:k])

    # changing any leader candle after the pair's last one changes nothing
    future = leader.copy()
    after = future["date"] > df["date"].iloc[-1]
    future.loc[after, ["open", "high", "low", "close"]] *= 3.0
    future.loc[after, "volume"] *= 0.1
    future = future[["date", "open", "high", "low", "close", "volume"]]
    np.testing.assert_array_equal(
        compute_context(df, timeframe, leader=future).to_numpy(), full.to_numpy()
    )

    # changing the pair's candles after row k changes nothing before k (own + HTF features)
    k = 503
    changed = df[["date", "open", "high", "low", "close", "volume"]].copy()
    changed.loc[k:, ["open", "high", "low", "close"]] *= 0.5
    changed = changed.join(compute_regime_features(changed, timeframe))
    np.testing.assert_array_equal(
        compute_context(changed, timeframe, leader=leader).iloc[:k].to_numpy(),
        full.iloc[:k].to_numpy(),
    )


# --------------------------------------------------------------------------------- real data


def load(pair: str) -> pd.DataFrame:
    path = DATA / f"{pair}_USDT-1h.feather"
    if not path.exists():
        pytest.skip(f"{path} not bundled")
    df = pd.read_feather(path)
    df = df.join(compute_regime_features(df, "1h"))
    return classify_frame(df, RegimeThresholds())


def test_real_data_eth_with_btc_leader() -> None:
    eth, btc = load("ETH"), load("BTC")
    ctx = compute_context(eth, "1h", leader=btc)
    values = ctx.to_numpy()
    assert ctx.shape == (len(eth), len(CONTEXT_FEATURES))
    assert np.isfinite(values).all() and (np.abs(values) <= CLIP).all()
    live = ctx.iloc[500:]
    clipped = (live.abs() >= CLIP).mean()
    assert (clipped < 0.05).all(), clipped[clipped >= 0.05]
    assert (live.abs().median() < 3.0).all()  # O(1) magnitudes
    assert live.std().gt(0.1).all()
    merged = eth[["date"]].merge(btc[["date", "trend_strength"]], on="date", how="left")
    np.testing.assert_array_equal(
        ctx["ctx_lead_trend"].to_numpy(),
        finish(merged["trend_strength"].to_numpy(), "ctx_lead_trend"),
    )
    assert live["ctx_trend"].corr(live["ctx_lead_trend"]) > 0.5  # ETH follows BTC
    assert live["ctx_ret_24h"].corr(live["ctx_lead_ret_24h"]) > 0.5
    assert live["ctx_trend"].corr(live["ctx_htf_trend"]) > 0.3
    assert live["ctx_rsi"].corr(live["ctx_ret_24h"]) > 0.3
