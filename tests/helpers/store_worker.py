"""Subprocess worker for tests/store/test_store.py (multi-process and crash tests).

Usage: ``python store_worker.py URL MODE N [PREFIX [PAUSE_S]]``

* ``distinct``: print ``ready``, wait for a line on stdin, apply N rewards with trade ids
  ``PREFIX0 .. PREFIX{N-1}`` to one cell, print ``done <applied>``.
* ``same``: like ``distinct`` (every worker is given the same PREFIX, so the same trade ids);
  ``reverse``: the same, last trade id first.
* ``PAUSE_S``: sleep this long after each update in ``distinct``/``same`` (a bot is not a
  tight loop; without pauses SQLite's busy handler lets one process win long bursts).
* ``crash``: apply rewards with trade ids ``PREFIX0, PREFIX1, ...`` (up to N) and print each
  index right after its commit, flushed, until killed.

Rewards are multiples of 0.25 so that any order of summation gives the same exact total.
"""

from __future__ import annotations

import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

CELL = ("BTC/USDT", "trend_up", "scalp")
ALPHA = 0.2
T0 = datetime(2024, 1, 1, tzinfo=UTC)


def reward_for(i: int) -> float:
    """The reward of the i-th update (exact in binary floating point)."""
    return ((i * 7) % 13 - 6) * 0.25


def main(argv: list[str]) -> int:
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository root
    from freqtrade_metastrategy.store import SqlStore

    url, mode, n = argv[0], argv[1], int(argv[2])
    prefix = argv[3] if len(argv) > 3 else "t"
    pause = float(argv[4]) if len(argv) > 4 else 0.0
    store = SqlStore(url)
    try:
        if mode == "crash":
            for i in range(n):
                store.apply_reward(*CELL, reward_for(i), alpha=ALPHA, trade_id=f"{prefix}{i}",
                                   at=T0 + timedelta(seconds=i))
                print(i, flush=True)
            return 0
        print("ready", flush=True)
        sys.stdin.readline()
        applied = 0
        order = range(n - 1, -1, -1) if mode == "reverse" else range(n)
        for i in order:
            done = store.apply_reward(*CELL, reward_for(i), alpha=ALPHA,
                                      trade_id=f"{prefix}{i}", at=T0 + timedelta(seconds=i))
            applied += done is not None
            if pause:
                time.sleep(pause)
        print(f"done {applied}", flush=True)
        return 0
    finally:
        store.close()


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
