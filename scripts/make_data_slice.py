#!/usr/bin/env python3
"""Cut the bundled OHLCV slice out of the shared development data set.

The slice is what ``user_data/data/binance`` ships: the 1h candles of BTC/USDT, ETH/USDT,
SOL/USDT and XRP/USDT from 2021-11-01 00:00 to 2023-12-31 23:00 UTC (two years of
backtest range plus two months of indicator start-up history).

Usage (from the repository root)::

    python scripts/make_data_slice.py --source ../shared/data/binance --dest user_data/data/binance
    python scripts/make_data_slice.py --check   # exit 1 if the bundled files differ in value

Output files are written exactly the way Freqtrade's feather data handler writes them
(``DataFrame.reset_index(drop=True)[date, open, high, low, close, volume].to_feather(
compression="lz4", compression_level=9)``), so ``freqtrade list-data`` and backtesting read
them like downloaded data. With the same pandas/pyarrow versions the output is
byte-for-byte identical (the feather schema metadata records those versions); across
versions it is value-for-value identical, which is what ``--check`` verifies.

This script only needs pandas + pyarrow (no Freqtrade).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

PAIRS = ("BTC/USDT", "ETH/USDT", "SOL/USDT", "XRP/USDT")
TIMEFRAMES = ("1h",)
START = pd.Timestamp("2021-11-01 00:00", tz="UTC")
END = pd.Timestamp("2023-12-31 23:00", tz="UTC")  # inclusive: last candle open time
COLUMNS = ["date", "open", "high", "low", "close", "volume"]

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SOURCE = REPO_ROOT.parent / "shared" / "data" / "binance"
DEFAULT_DEST = REPO_ROOT / "user_data" / "data" / "binance"


def file_name(pair: str, timeframe: str) -> str:
    """Freqtrade's spot file name for a pair, e.g. ``BTC_USDT-1h.feather``."""
    return f"{pair.replace('/', '_')}-{timeframe}.feather"


def cut(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows with START <= date <= END, in Freqtrade's column order, fresh RangeIndex."""
    mask = (frame["date"] >= START) & (frame["date"] <= END)
    return frame.loc[mask, COLUMNS].reset_index(drop=True)


def write_feather(frame: pd.DataFrame, path: Path) -> None:
    """Write like freqtrade's FeatherDataHandler._store_dataframe."""
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.reset_index(drop=True).loc[:, COLUMNS].to_feather(
        path, compression_level=9, compression="lz4"
    )


def make_slice(source: Path, dest: Path) -> list[tuple[Path, int]]:
    written: list[tuple[Path, int]] = []
    for pair in PAIRS:
        for timeframe in TIMEFRAMES:
            name = file_name(pair, timeframe)
            sliced = cut(pd.read_feather(source / name))
            if sliced.empty:
                raise SystemExit(f"{source / name}: no candles in {START} .. {END}")
            write_feather(sliced, dest / name)
            written.append((dest / name, len(sliced)))
    return written


def check_slice(source: Path, dest: Path) -> list[str]:
    """Value-for-value comparison of the bundled files with a fresh cut. Returns problems."""
    problems: list[str] = []
    for pair in PAIRS:
        for timeframe in TIMEFRAMES:
            name = file_name(pair, timeframe)
            expected = cut(pd.read_feather(source / name))
            try:
                actual = pd.read_feather(dest / name)
            except FileNotFoundError:
                problems.append(f"{name}: missing")
                continue
            try:
                pd.testing.assert_frame_equal(actual, expected, check_exact=True)
            except AssertionError as exc:
                problems.append(f"{name}: {exc}")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE)
    parser.add_argument("--dest", type=Path, default=DEFAULT_DEST)
    parser.add_argument(
        "--check", action="store_true", help="compare --dest with a fresh cut instead of writing"
    )
    args = parser.parse_args(argv)

    if args.check:
        problems = check_slice(args.source, args.dest)
        for problem in problems:
            print(problem, file=sys.stderr)
        print("slice OK" if not problems else f"{len(problems)} file(s) differ")
        return 1 if problems else 0

    total = 0
    for path, rows in make_slice(args.source, args.dest):
        size = path.stat().st_size
        total += size
        print(f"{path}: {rows} candles, {size / 1024:.0f} KiB")
    print(f"total {total / 1024 / 1024:.2f} MiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
