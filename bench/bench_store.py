"""Latency of one durable ``apply_reward`` (and of a ``get``) per Q-table store configuration.

Run from the repository root::

    .venv/bin/python bench/bench_store.py [--n 2000] [--dir DIR] [--pg-url URL]

Each update is its own committed transaction (ledger row + cell), spread over
10 symbols x 3 regimes x 4 strategies with distinct trade ids. SQLite files are created in a
fresh temporary directory under ``--dir`` (default: the system temp dir): put it on the disk
the bot will use, since fsync cost dominates.
"""

from __future__ import annotations

import argparse
import itertools
import platform
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from freqtrade_metastrategy.store import MemoryStore, QStore, SqlStore

KEYS = list(itertools.product([f"C{i}/USDT" for i in range(10)],
                              ["trend_up", "trend_down", "range"],
                              ["scalp", "swing", "runner", "tight"]))
T0 = datetime(2024, 1, 1, tzinfo=UTC)
WARMUP = 50


def measure(store: QStore, n: int) -> tuple[list[float], list[float]]:
    """Milliseconds per apply_reward and per get."""
    for i in range(WARMUP):
        store.apply_reward(*KEYS[i % len(KEYS)], 0.5, alpha=0.2, trade_id=f"w{i}")
    updates: list[float] = []
    for i in range(n):
        key = KEYS[(i * 7) % len(KEYS)]
        t = time.perf_counter_ns()
        store.apply_reward(*key, ((i % 9) - 4) * 0.37, alpha=0.2, trade_id=f"b{i}",
                           at=T0 + timedelta(minutes=i), probability=0.25)
        updates.append((time.perf_counter_ns() - t) / 1e6)
    reads: list[float] = []
    for i in range(min(n, 1000)):
        t = time.perf_counter_ns()
        store.get(*KEYS[i % len(KEYS)])
        reads.append((time.perf_counter_ns() - t) / 1e6)
    assert len(store.ledger()) == n + WARMUP
    return updates, reads


def pct(values: list[float], p: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[p - 1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=2000, help="timed updates per store (default 2000)")
    ap.add_argument("--dir", default=None, help="directory for the SQLite files")
    ap.add_argument("--pg-url", default=None,
                    help="also measure this PostgreSQL database (its Q-table is reset!)")
    ap.add_argument("--keep", action="store_true", help="keep the SQLite files")
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="bench_store_", dir=args.dir))
    configs: list[tuple[str, Callable[[], QStore]]] = [
        ("MemoryStore", MemoryStore),
        ("SQLite WAL, synchronous=FULL (default)",
         lambda: SqlStore(f"sqlite:///{tmp}/full.sqlite")),
        ("SQLite WAL, synchronous=NORMAL",
         lambda: SqlStore(f"sqlite:///{tmp}/normal.sqlite", sqlite_synchronous="NORMAL")),
    ]
    if args.pg_url:
        configs.append(("PostgreSQL (READ COMMITTED)", lambda: SqlStore(args.pg_url)))

    print(f"# bench_store: {args.n} updates/store, Python {platform.python_version()}, "
          f"SQLite {sqlite3.sqlite_version}, files in {tmp}")
    header = ("| store | update p50 ms | update p99 ms | update mean ms | update max ms "
              "| updates/s | get p50 ms |")
    print(header)
    print("|" + "---|" * header.count(" | ") + "---|")
    try:
        for label, factory in configs:
            store = factory()
            try:
                if label.startswith("PostgreSQL"):
                    store.reset()
                upd, rd = measure(store, args.n)
            finally:
                store.close()
            mean = statistics.fmean(upd)
            print(f"| {label} | {pct(upd, 50):.3f} | {pct(upd, 99):.3f} | {mean:.3f} | "
                  f"{max(upd):.3f} | {1000 / mean:,.0f} | {pct(rd, 50):.3f} |")
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
