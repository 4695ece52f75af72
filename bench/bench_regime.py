"""Throughput of the vectorised regime detector, and the regime mix on real 1h data.

Usage::

    python bench/bench_regime.py [--data-dir DIR] [--candles N] [--repeats R]

Measures, on ``N`` (default 1,000,000) candles:

(a) ``classify_regimes`` alone on precomputed features (what hyperopt calls every epoch);
(b) ``compute_regime_features`` alone (TA-Lib + 24 h volume);
(c) ``add_regime_columns`` (features + classification + the string ``regime`` column).

The candles are real 1h Binance candles from ``DIR`` (default ``../shared/data/binance``):
the pairs one after another, cycled until ``N`` candles, each pair segment computed separately
as Freqtrade does. Without that folder a seeded random walk cut into 50,000-candle segments is
used instead. With real data the script also prints the regime mix (percent of candles per
regime) of every ``*-1h.feather`` pair, each taken once (other timeframes with
``--mix-timeframes 5m,1h,4h``).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import talib

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from freqtrade_metastrategy.indicators import compute_regime_features
from freqtrade_metastrategy.regime import (
    REGIMES,
    RegimeThresholds,
    add_regime_columns,
    classify_regimes,
)

DEFAULT_DATA_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "binance"
OHLCV = ["open", "high", "low", "close", "volume"]


def load_pairs(data_dir: Path, timeframe: str = "1h") -> dict[str, pd.DataFrame]:
    """Every ``<PAIR>-<timeframe>.feather`` in ``data_dir`` (empty if the folder is absent)."""
    if not data_dir.is_dir():
        return {}
    suffix = f"-{timeframe}.feather"
    return {
        path.name.removesuffix(suffix).replace("_", "/"): pd.read_feather(path)
        for path in sorted(data_dir.glob(f"*{suffix}"))
    }


def random_walk(n: int, seed: int = 42) -> pd.DataFrame:
    """Seeded hourly random walk with regime-like changes of drift and volatility."""
    rng = np.random.default_rng(seed)
    block = 500
    n_blocks = -(-n // block)
    drift = np.repeat(rng.choice([-0.002, 0.0, 0.0, 0.002], n_blocks), block)[:n]
    sigma = np.repeat(rng.choice([0.003, 0.008, 0.02, 0.05], n_blocks), block)[:n]
    close = 100.0 * np.exp(np.cumsum(drift + sigma * rng.standard_normal(n)))
    open_ = np.concatenate([[100.0], close[:-1]])
    high = np.maximum(open_, close) * np.exp(0.5 * sigma * np.abs(rng.standard_normal(n)))
    low = np.minimum(open_, close) * np.exp(-0.5 * sigma * np.abs(rng.standard_normal(n)))
    volume = 2e6 / close * rng.lognormal(0.0, 0.5, n)
    return pd.DataFrame({"open": open_, "high": high, "low": low, "close": close, "volume": volume})


def segments(pairs: dict[str, pd.DataFrame], n: int) -> list[pd.DataFrame]:
    """Pair frames one after another, cycled, the last one cut so the total is ``n``."""
    if not pairs:
        walk = random_walk(n)
        step = 50_000
        return [walk.iloc[i : i + step].reset_index(drop=True) for i in range(0, n, step)]
    out: list[pd.DataFrame] = []
    total = 0
    while total < n:
        for frame in pairs.values():
            take = min(len(frame), n - total)
            out.append(frame[OHLCV].iloc[:take].reset_index(drop=True))
            total += take
            if total == n:
                break
    return out


def best_of(repeats: int, fn: Callable[[], object]) -> float:
    """Fastest wall-clock time of ``repeats`` calls of ``fn``."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def machine() -> str:
    cpu = platform.processor() or "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{cpu}, nproc={os.cpu_count()}, Python {platform.python_version()}, "
        f"numpy {np.__version__}, pandas {pd.__version__}, TA-Lib {talib.__version__}"
    )


def throughput(pairs: dict[str, pd.DataFrame], n: int, repeats: int) -> None:
    parts = segments(pairs, n)
    source = f"real 1h data, {len(pairs)} pairs cycled" if pairs else "seeded random walk"
    print(f"Throughput on {n:,} candles ({source}, {len(parts)} segments)")
    print(f"Machine: {machine()}\n")

    features = [compute_regime_features(part, "1h") for part in parts]
    columns = {
        name: np.concatenate([f[name].to_numpy() for f in features])
        for name in ("adx", "atr_pct", "trend_strength", "volume_24h")
    }
    thresholds = RegimeThresholds()

    def classify() -> None:
        classify_regimes(
            columns["adx"],
            columns["atr_pct"],
            columns["trend_strength"],
            columns["volume_24h"],
            thresholds,
        )

    def compute() -> None:
        for part in parts:
            compute_regime_features(part, "1h")

    copies: list[pd.DataFrame] = []

    def prepare() -> None:
        copies[:] = [part.copy() for part in parts]

    def full() -> None:
        for frame in copies:
            add_regime_columns(frame, "1h", thresholds)

    full_times = []
    for _ in range(max(1, repeats // 2)):
        prepare()  # fresh frames, not timed
        full_times.append(best_of(1, full))

    rows = [
        ("(a) classify_regimes (precomputed features)", best_of(repeats, classify)),
        ("(b) compute_regime_features", best_of(max(1, repeats // 2), compute)),
        ("(c) add_regime_columns (features + classify)", min(full_times)),
    ]
    print(f"{'stage':<48} {'best time':>10} {'candles/s':>14}")
    print("-" * 74)
    for label, seconds in rows:
        print(f"{label:<48} {seconds * 1e3:>8.1f}ms {n / seconds:>14,.0f}")
    print()


def regime_mix(pairs: dict[str, pd.DataFrame], timeframe: str) -> None:
    names = [r.value for r in REGIMES]
    per_pair = {
        pair: add_regime_columns(frame[OHLCV].copy(), timeframe)["regime"]
        for pair, frame in pairs.items()
    }
    per_pair["ALL"] = pd.concat(list(per_pair.values()), ignore_index=True)
    mix = pd.DataFrame(
        {
            pair: regimes.value_counts(normalize=True).reindex(names, fill_value=0.0) * 100
            for pair, regimes in per_pair.items()
        }
    ).T
    mix.insert(0, "candles", [len(regimes) for regimes in per_pair.values()])
    print(f"Regime mix, % of {timeframe} candles per pair (default thresholds):")
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(mix.round(1).to_string(float_format=lambda x: f"{x:5.1f}"))
    top = mix[names].max(axis=1)
    print(f"Largest single-regime share: {top.max():.1f}% ({top.idxmax()})\n")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    parser.add_argument("--candles", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument(
        "--mix-timeframes",
        default="1h",
        help="comma-separated timeframes whose regime mix to print (default: 1h)",
    )
    args = parser.parse_args(argv)
    throughput(load_pairs(args.data_dir), args.candles, args.repeats)
    for timeframe in args.mix_timeframes.split(","):
        pairs = load_pairs(args.data_dir, timeframe)
        if pairs:
            regime_mix(pairs, timeframe)
        else:
            print(f"(no *-{timeframe}.feather in {args.data_dir}: regime mix skipped)")


if __name__ == "__main__":
    main()
