"""Cost of full-information learning (issue 12): this tree against a baseline revision, in one
run, as ratios.

Run from the repository root::

    .venv/bin/python bench/bench_learning.py [--baseline c0399da] [--runs 5]
        [--what backtest evaluate] [--dev-data ../shared/data/binance] [--json FILE]

* ``backtest``: ``freqtrade backtesting`` of MetaStrategy on the bundled data (2022-2023, four
  pairs, ``config.example.json``), as a whole process (start-up, data, indicators, the candle
  loop, the report), against the loopback exchange. This tree runs its default (the
  full-information ``walk_forward_static`` with stand-aside: context features, every signal
  simulated under every profile, the learner), the baseline revision its own default (the
  seeds' epsilon-greedy). Goal: at most 1.2x.
* ``backtest_no_aside``: the same, this tree with ``"stand_aside": false`` (it then trades
  about as many signals as the baseline: the cost of the learning itself, not of fewer trades).
* ``evaluate``: ``freqtrade-metastrategy evaluate --walk-forward 365D:365D`` on the 8-pair
  development set (``--dev-data``; skipped when absent), this tree (which also replays the
  full-information candidates and the configured policy) against the baseline. Goal: at most
  1.5x.

The baseline is checked out with ``git worktree`` into a temporary directory and run with the
same interpreter and packages (its package first on ``PYTHONPATH``). Runs alternate baseline /
this tree; the ratio is taken pair by pair and its median reported (the machine's speed drifts).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from freqtrade_metastrategy.loopback import LoopbackExchange  # noqa: E402

PAIRS8 = ["BTC/USDT", "ETH/USDT", "BNB/USDT", "SOL/USDT", "XRP/USDT", "ADA/USDT", "DOGE/USDT",
          "LTC/USDT"]


def _overlay(tmp: Path, url: str) -> Path:
    overlay = json.loads((ROOT / "user_data" / "config.loopback.json").read_text())
    text = json.dumps(overlay).replace("http://127.0.0.1:18080", url)
    path = tmp / "loopback.json"
    path.write_text(text)
    return path


def _backtest_cmd(tree: Path, tmp: Path, overlay: Path, tag: str,
                  section: dict[str, Any] | None = None) -> list[str]:
    user = tmp / f"user_data_{tag}"
    (user / "backtest_results").mkdir(parents=True, exist_ok=True)
    cfg = tmp / f"user_{tag}.json"
    cfg.write_text(json.dumps({"user_data_dir": str(user), "metastrategy": {
        "backtest_qtable_file": str(user / "qtable.json"), **(section or {})}}))
    return [str(Path(sys.executable).with_name("freqtrade")), "backtesting",
            "--config", str(tree / "config.example.json"), "--config", str(overlay),
            "--config", str(cfg), "--strategy", "MetaStrategy",
            "--strategy-path", str(tree / "user_data" / "strategies"),
            "--datadir", str(ROOT / "user_data" / "data" / "binance"),
            "--timerange", "20220101-20240101", "--cache", "none", "--export", "none"]


def _evaluate_cmd(tree: Path, tmp: Path, dev: Path, tag: str) -> list[str]:
    pairs = tmp / "pairs8.json"
    pairs.write_text(json.dumps({"exchange": {"pair_whitelist": PAIRS8}}))
    return [sys.executable, "-m", "freqtrade_metastrategy.cli", "evaluate",
            "-c", str(tree / "config.example.json"), "-c", str(pairs),
            "--strategy-path", str(tree / "user_data" / "strategies"),
            "--datadir", str(dev), "--timerange", "20180101-20231231",
            "--walk-forward", "365D:365D", "--out", str(tmp / f"eval_{tag}")]


def _time(cmd: list[str], env: dict[str, str], cwd: Path) -> float:
    t0 = time.perf_counter()
    done = subprocess.run(cmd, env=env, cwd=cwd, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True, check=False)
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"failed ({done.returncode}): {' '.join(cmd)}\n{done.stderr[-3000:]}")
    return wall


def _pairwise(name: str, base: list[str], new: list[str], env_base: dict[str, str],
              env_new: dict[str, str], cwd_base: Path, runs: int) -> dict[str, Any]:
    _time(base, env_base, cwd_base), _time(new, env_new, ROOT)  # warm-up
    tb, tn = [], []
    for _ in range(runs):
        tb.append(_time(base, env_base, cwd_base))
        tn.append(_time(new, env_new, ROOT))
    ratios = [n / b for b, n in zip(tb, tn, strict=True)]
    out = {"what": name, "runs": runs, "baseline_median_s": statistics.median(tb),
           "this_median_s": statistics.median(tn), "ratio_median": statistics.median(ratios),
           "ratio_min": min(ratios), "ratio_max": max(ratios)}
    print(f"{name}: baseline {out['baseline_median_s']:.2f} s, this tree "
          f"{out['this_median_s']:.2f} s, ratio median {out['ratio_median']:.2f} "
          f"(min {out['ratio_min']:.2f}, max {out['ratio_max']:.2f}) over {runs} pairs")
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--baseline", default="c0399da")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--what", nargs="+", default=["backtest", "evaluate"],
                    choices=["backtest", "backtest_no_aside", "evaluate"])
    ap.add_argument("--dev-data", default=str(ROOT.parent / "shared" / "data" / "binance"))
    ap.add_argument("--json")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-learning-"))
    base_tree = tmp / "baseline"
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(base_tree),
                    args.baseline], check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    env_new = {**os.environ, "NO_PROXY": "127.0.0.1,localhost", "PYTHONPATH": str(ROOT)}
    env_base = {**env_new, "PYTHONPATH": str(base_tree)}
    results = []
    try:
        if "backtest" in args.what:
            with LoopbackExchange(ROOT / "user_data" / "data" / "binance", port=0) as ex:
                overlay = _overlay(tmp, ex.url)
                results.append(_pairwise(
                    "backtest (bundled data, 2022-2023)",
                    _backtest_cmd(base_tree, tmp, overlay, "base"),
                    _backtest_cmd(ROOT, tmp, overlay, "new"), env_base, env_new, base_tree,
                    args.runs))
        if "backtest_no_aside" in args.what:
            with LoopbackExchange(ROOT / "user_data" / "data" / "binance", port=0) as ex:
                overlay = _overlay(tmp, ex.url)
                results.append(_pairwise(
                    "backtest, full information without stand-aside (trades every signal)",
                    _backtest_cmd(base_tree, tmp, overlay, "base2"),
                    _backtest_cmd(ROOT, tmp, overlay, "new2", {"stand_aside": False}),
                    env_base, env_new, base_tree, args.runs))
        dev = Path(args.dev_data)
        if "evaluate" in args.what:
            if not (dev / "BTC_USDT-1h.feather").exists():
                print(f"evaluate: skipped, no development set at {dev}")
            else:
                results.append(_pairwise(
                    "evaluate --walk-forward 365D:365D (8 pairs, 2018-2023)",
                    _evaluate_cmd(base_tree, tmp, dev, "base"),
                    _evaluate_cmd(ROOT, tmp, dev, "new"), env_base, env_new, base_tree,
                    args.runs))
    finally:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(base_tree)],
                       check=False)
        shutil.rmtree(tmp, ignore_errors=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
