"""``freqtrade-metastrategy tune`` trials per second against ``freqtrade hyperopt`` epochs per
second: the same strategy, data, timerange and search space.

Run from the repository root::

    .venv/bin/python bench/bench_tune.py [--rounds 2] [--epochs 3 13] [--trials 20 420]
        [--timerange 20220101-20240101] [--walk-forward 365D:365D] [--jobs 1 2]
        [--data-dir user_data/data/binance] [--json FILE] [--keep]
    # the 8-pair development set, 200 trials (the 5-minute goal):
    .venv/bin/python bench/bench_tune.py --dev8 --data-dir ../shared/data/binance \\
        --timerange 20180101-20231231 --trials 200

Method (one run, interleaved rounds, every figure a whole process timed with
``time.perf_counter``):

* **hyperopt**: ``freqtrade hyperopt --strategy MetaStrategy --spaces regime fullinfo
  --hyperopt-loss MetaStrategyRLoss --random-state 1 -j J`` against the loopback exchange, once
  with the smaller and once with the larger ``--epochs``. Seconds per epoch = difference of the
  two walls / difference of the epochs: start-up (config, markets, data load,
  ``populate_indicators``, the data pickle, the workers' start) cancels out.
* **tune**: ``freqtrade-metastrategy tune --walk-forward W --spaces regime fullinfo`` on the
  same config, data cache warm (one untimed run fills it), once with each ``--trials``.
  Seconds per trial = difference of the walls / difference of the trials. One process, one
  core (several workers would share a study through ``--storage``).

Ratio = epochs' seconds / trials' seconds, per round and of the medians. The search box is the
same Freqtrade parameters (``tuning.space.PARAMETERS``); hyperopt's epoch is one in-sample
backtest of the whole timerange, a tune trial is the walk-forward replay of every fold.
``--dev8`` times only ``tune`` (the whole command, data cached) on the 8-pair development set.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_backtest import bench_finish, bench_setup, write_config

from freqtrade_metastrategy.loopback import LoopbackExchange

ROOT = Path(__file__).resolve().parents[1]
SPACES = ["regime", "fullinfo"]
TUNE = [sys.executable, "-m", "freqtrade_metastrategy.cli", "tune"]
FREQTRADE = [sys.executable, "-m", "freqtrade"]


def _env() -> dict[str, str]:
    return dict(os.environ, NO_PROXY="127.0.0.1,localhost", no_proxy="127.0.0.1,localhost")


def timed(cmd: list[str], cwd: Path, log: Path) -> float:
    t0 = time.perf_counter()
    with log.open("w") as fh:
        proc = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, cwd=cwd, env=_env(),
                              check=False)
    wall = time.perf_counter() - t0
    if proc.returncode:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-30:])
        raise SystemExit(f"{' '.join(cmd[:4])} failed (exit {proc.returncode}); {log}:\n{tail}")
    return wall


def hyperopt_cmd(cfg: Path, tmp: Path, args: argparse.Namespace, epochs: int,
                 jobs: int) -> list[str]:
    return [*FREQTRADE, "hyperopt", "-c", str(cfg), "--strategy", "MetaStrategy",
            "--strategy-path", str(ROOT / "user_data" / "strategies"),
            "--hyperopt-path", str(ROOT / "user_data" / "hyperopts"),
            "--datadir", str(args.data_dir.resolve()),
            "--hyperopt-loss", "MetaStrategyRLoss", "--spaces", *SPACES,
            "--timerange", args.timerange, "-e", str(epochs), "-j", str(jobs),
            "--random-state", "1", "--min-trades", "1", "--disable-param-export",
            "--print-all", "--no-color"]


def tune_cmd(cfg: Path, tmp: Path, args: argparse.Namespace, trials: int,
             extra: list[str] | None = None) -> list[str]:
    return [*TUNE, "-c", str(cfg), *(extra or []), "--strategy", "MetaStrategy",
            "--strategy-path", str(ROOT / "user_data" / "strategies"),
            "--timerange", args.timerange,
            "--walk-forward", args.walk_forward, "--spaces", *SPACES,
            "--trials", str(trials), "--seed", "1", "--out", str(tmp / "tune_out"),
            "--cache-dir", str(tmp / "tune_cache")]


def bench_ratio(args: argparse.Namespace, tmp: Path, datadir: Path) -> dict[str, Any]:
    rounds: list[dict[str, Any]] = []
    with LoopbackExchange(datadir, port=0) as ex:
        cfg, _ = write_config(tmp, ex.port, datadir, args.pairs)
        timed(tune_cmd(cfg, tmp, args, 1), tmp, tmp / "tune-warm.log")  # fills the cache
        e1, e2 = args.epochs
        t1, t2 = args.trials
        for r in range(args.rounds):
            row: dict[str, Any] = {}
            order = ["tune", *[f"hyperopt-j{j}" for j in args.jobs]]
            order = order[r % len(order):] + order[:r % len(order)]
            for what in order:
                if what == "tune":
                    a = timed(tune_cmd(cfg, tmp, args, t1), tmp, tmp / f"tune-{r}-a.log")
                    b = timed(tune_cmd(cfg, tmp, args, t2), tmp, tmp / f"tune-{r}-b.log")
                    row["tune_s_per_trial"] = (b - a) / (t2 - t1)
                    row["tune_walls"] = [a, b]
                else:
                    j = int(what.rsplit("j", 1)[1])
                    a = timed(hyperopt_cmd(cfg, tmp, args, e1, j), tmp, tmp / f"{what}-{r}a.log")
                    b = timed(hyperopt_cmd(cfg, tmp, args, e2, j), tmp, tmp / f"{what}-{r}b.log")
                    row[f"hyperopt_j{j}_s_per_epoch"] = (b - a) / (e2 - e1)
                    row[f"hyperopt_j{j}_walls"] = [a, b]
            for j in args.jobs:
                row[f"ratio_j{j}"] = row[f"hyperopt_j{j}_s_per_epoch"] / row["tune_s_per_trial"]
            rounds.append(row)
            print(json.dumps(row))
    med = statistics.median
    summary: dict[str, Any] = {"tune_s_per_trial": med(r["tune_s_per_trial"] for r in rounds)}
    for j in args.jobs:
        s = med(r[f"hyperopt_j{j}_s_per_epoch"] for r in rounds)
        summary[f"hyperopt_j{j}_s_per_epoch"] = s
        summary[f"ratio_j{j}"] = s / summary["tune_s_per_trial"]
        summary[f"ratio_j{j}_rounds"] = [r[f"ratio_j{j}"] for r in rounds]
    print()
    print(f"spaces {' '.join(SPACES)}, timerange {args.timerange}, tune --walk-forward "
          f"{args.walk_forward}, {args.rounds} interleaved rounds (medians)")
    print("| command | s per trial/epoch | per second | tune's speed-up |")
    print("|---|---:|---:|---:|")
    ts = summary["tune_s_per_trial"]
    print(f"| tune (1 process) | {ts:.3f} | {1 / ts:.2f} | - |")
    for j in args.jobs:
        s = summary[f"hyperopt_j{j}_s_per_epoch"]
        rr = summary[f"ratio_j{j}_rounds"]
        print(f"| freqtrade hyperopt -j {j} | {s:.2f} | {1 / s:.3f} | "
              f"{summary[f'ratio_j{j}']:.0f}x ({min(rr):.0f}-{max(rr):.0f}) |")
    return {"rounds": rounds, "summary": summary}


def bench_dev8(args: argparse.Namespace, tmp: Path, datadir: Path) -> dict[str, Any]:
    extra = ["-c", str(ROOT / "config.example.json"), "-c",
             str(ROOT / "user_data" / "config.dev8.json"), "--datadir", str(datadir)]
    cmd = [*TUNE, *extra, "--timerange", args.timerange, "--walk-forward", args.walk_forward,
           "--trials", str(args.trials[-1]), "--seed", "1", "--out", str(tmp / "dev8_out"),
           "--cache-dir", str(tmp / "dev8_cache")]
    cold = timed(cmd, ROOT, tmp / "dev8-cold.log")
    warm = timed(cmd, ROOT, tmp / "dev8-warm.log")
    report = json.loads((tmp / "dev8_out" / "report.json").read_text())
    meta = report["meta"]
    out = {"cold_wall": cold, "warm_wall": warm, "trials": args.trials[-1],
           "trials_seconds": meta["trials_seconds"], "signals": meta["signals"],
           "verdict": report["verdict"]["reasons"], "winner": report["winner"],
           "defaults": report["defaults"]}
    print(f"8 pairs {args.timerange}, {args.trials[-1]} trials, --walk-forward "
          f"{args.walk_forward}: {cold:.0f} s with the data computed, {warm:.0f} s from the "
          f"cache ({meta['trials_seconds']:.0f} s in trials, {meta['signals']} signals)")
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--epochs", type=int, nargs=2, default=[3, 13])
    p.add_argument("--trials", type=int, nargs="+", default=[20, 420])
    p.add_argument("--jobs", type=int, nargs="+", default=[1, 2])
    p.add_argument("--timerange", default="20220101-20240101")
    p.add_argument("--walk-forward", default="365D:365D")
    p.add_argument("--data-dir", type=Path, default=ROOT / "user_data" / "data" / "binance")
    p.add_argument("--pairs", nargs="+")
    p.add_argument("--dev8", action="store_true")
    p.add_argument("--json", type=Path)
    p.add_argument("--keep", action="store_true")
    args = p.parse_args()
    datadir, tmp, state = bench_setup(args.data_dir, "bench-tune-")
    result = bench_dev8(args, tmp, datadir) if args.dev8 else bench_ratio(args, tmp, datadir)
    bench_finish(args.json, {"code": state, "args": vars(args), **result}, tmp, args.keep)


if __name__ == "__main__":
    main()
