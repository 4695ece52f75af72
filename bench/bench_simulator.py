"""Throughput of the counterfactual simulator (``freqtrade_metastrategy.evaluation``).

Usage::

    python bench/bench_simulator.py [--entries random|signals] [--n 10000] [--repeats 5]
                                    [--data-dir DIR] [--no-ticks]

Simulates ``N`` entries under the seven built-in profiles (``N`` x 7 simulations) on the
bundled 1h data (``user_data/data/binance``, four pairs, 2021-11 .. 2023-12, missing candles
filled as Freqtrade does) and prints the best wall time of ``R`` runs and the throughput in
(entries x profiles) per second, for :func:`simulate` and for :func:`simulate_with_fills`.

Entries:

* ``random`` (default): ``N`` random (pair, signal candle, side) draws, seeded; 1R = ATR(14)
  of the signal candle, regime from ``add_regime_columns``.
* ``signals``: every breakout signal of the default strategy (close above the previous 20
  highs, long; below the previous 20 lows, short) on every pair, cycled up to ``N`` if there
  are fewer (4,354 signals on the bundled data).

Ticks are inferred from the prices (``infer_tick_sizes``) unless ``--no-ticks``. The run time
depends on the number of simulations and on the longest trade (the loop advances all open
simulations one candle at a time): the script prints the holding-time distribution too.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from freqtrade.data.converter import ohlcv_fill_up_missing_data

from freqtrade_metastrategy.evaluation import (
    infer_tick_sizes,
    simulate,
    simulate_with_fills,
)
from freqtrade_metastrategy.profiles import BUILTIN_PROFILES
from freqtrade_metastrategy.regime import add_regime_columns

DEFAULT_DATA_DIR = Path(__file__).resolve().parents[1] / "user_data" / "data" / "binance"
BREAKOUT = 20


def load(data_dir: Path) -> tuple[dict[str, pd.DataFrame], dict[str, pd.DataFrame]]:
    """(candles, features) per pair: the filled OHLCV frame and its regime columns."""
    candles, features = {}, {}
    for path in sorted(data_dir.glob("*-1h.feather")):
        pair = path.name.removesuffix("-1h.feather").replace("_", "/")
        df = ohlcv_fill_up_missing_data(pd.read_feather(path), "1h", pair)
        candles[pair] = df
        features[pair] = add_regime_columns(df.copy(), "1h")
    if not candles:
        raise SystemExit(f"no *-1h.feather files in {data_dir}")
    return candles, features


def random_entries(features: dict[str, pd.DataFrame], n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    pairs = sorted(features)
    parts = []
    counts = np.bincount(rng.integers(len(pairs), size=n), minlength=len(pairs))
    for pair, k in zip(pairs, counts, strict=True):
        f = features[pair]
        idx = rng.integers(100, len(f) - 2, size=k)
        parts.append(pd.DataFrame({
            "pair": pair, "signal_time": f["date"].to_numpy()[idx],
            "side": np.where(rng.random(k) < 0.5, "long", "short"),
            "r_unit": f["atr"].to_numpy()[idx], "regime": f["regime"].to_numpy()[idx],
        }))
    return pd.concat(parts, ignore_index=True)


def signal_entries(features: dict[str, pd.DataFrame], n: int) -> pd.DataFrame:
    parts = []
    for pair, f in sorted(features.items()):
        live = f["volume"] > 0
        for side, broke in (
            ("long", f["close"] > f["high"].rolling(BREAKOUT).max().shift(1)),
            ("short", f["close"] < f["low"].rolling(BREAKOUT).min().shift(1)),
        ):
            sel = broke & ~broke.shift(1, fill_value=True) & live
            sel.iloc[-2:] = False  # no entry candle / entry on the last candle
            rows = f.loc[sel]
            parts.append(pd.DataFrame({"pair": pair, "signal_time": rows["date"], "side": side,
                                       "r_unit": rows["atr"], "regime": rows["regime"]}))
    signals = pd.concat(parts, ignore_index=True).sort_values("signal_time", kind="stable")
    print(f"breakout signals: {len(signals)}")
    reps = -(-n // len(signals))
    return pd.concat([signals] * reps, ignore_index=True).iloc[:n].reset_index(drop=True)


def best_time(fn: object, repeats: int) -> tuple[float, pd.DataFrame]:
    times, out = [], pd.DataFrame()
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()  # type: ignore[operator]
        times.append(time.perf_counter() - start)
    return min(times), out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--entries", choices=("random", "signals"), default="random")
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    ap.add_argument("--no-ticks", action="store_true")
    args = ap.parse_args()

    print(f"python {platform.python_version()}, numpy {np.__version__}, pandas {pd.__version__},"
          f" {os.cpu_count()} CPUs")
    candles, features = load(args.data_dir)
    entries = (random_entries(features, args.n, args.seed) if args.entries == "random"
               else signal_entries(features, args.n))
    ticks = None if args.no_ticks else infer_tick_sizes(candles)
    sims = len(entries) * len(BUILTIN_PROFILES)
    print(f"{len(candles)} pairs, {sum(len(c) for c in candles.values()):,} candles; "
          f"{len(entries):,} {args.entries} entries x {len(BUILTIN_PROFILES)} profiles = "
          f"{sims:,} simulations; ticks {ticks}")

    secs, out = best_time(lambda: simulate(candles, entries, BUILTIN_PROFILES, fee=0.001,
                                           tick_size=ticks), args.repeats)
    print(f"simulate:            {secs * 1000:8.1f} ms  {sims / secs:12,.0f} (entries x "
          f"profiles)/s")
    secs_f, _ = best_time(lambda: simulate_with_fills(candles, entries, BUILTIN_PROFILES,
                                                      fee=0.001, tick_size=ticks)[0],
                          args.repeats)
    print(f"simulate_with_fills: {secs_f * 1000:8.1f} ms  {sims / secs_f:12,.0f} (entries x "
          f"profiles)/s")

    held = (out["exit_time"] - out["entry_time"]) / pd.Timedelta(hours=1)
    q = held.quantile([0.5, 0.9, 0.99]).to_numpy()
    print(f"candles held: median {q[0]:.0f}, p90 {q[1]:.0f}, p99 {q[2]:.0f}, max {held.max():.0f}")
    print("exit reasons:", out["exit_reason"].value_counts().to_dict())
    print("mean R (r_atr) per profile:")
    print(out.groupby("profile", observed=True)["r_atr"].agg(["mean", "count"]).round(4)
          .to_string())


if __name__ == "__main__":
    main()
