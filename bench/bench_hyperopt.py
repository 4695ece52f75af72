"""Hyperopt seconds per epoch: MetaStrategy against a static-exit twin doing the same per-epoch
signal work.

Run from the repository root::

    .venv/bin/python bench/bench_hyperopt.py [--rounds 2] [--epochs 8] [--jobs 1 2]
        [--timerange 20220101-20240101] [--data-dir DIR] [--pairs BTC/USDT ...]
        [--loss MetaStrategyRLoss] [--variants twin meta] [--profile] [--keep] [--json FILE]

Variants, both ``freqtrade hyperopt --spaces regime learner`` with the same loss, random state
(so optuna samples the same parameter sets in the same order) and ``--min-trades``:

* ``twin`` -- ``HyperTwinStatic`` (``bench/strategies/BenchHyperTwin.py``): MetaStrategy's
  indicators, entries and nine hyperoptable parameters, the regimes reclassified per epoch with
  the same ``classify_frame``, static stoploss/minimal_roi, no trade callback, no learner;
* ``meta`` -- ``user_data/strategies/MetaStrategy.py`` with ``config.example.json`` and
  ``"policy": "epsilon_greedy"`` (the seeds' bandit, the policy the ``learner`` space tunes).

Method: every hyperopt is a fresh child process (this script with ``--child``) that builds the
config with Freqtrade's own ``setup_optimize_configuration`` (run mode HYPEROPT) and runs
``Hyperopt(config).start()`` in-process, as ``freqtrade hyperopt`` does. The strategy files are
copied into the temporary directory and ``--disable-param-export`` is set, so nothing is written
into the repository. Start-up (data load, ``populate_indicators`` once, the data pickle, worker
start) is excluded:

* ``-j 1``: joblib runs the epochs in the child itself; each call of
  ``HyperOptimizer.generate_optimizer`` (one epoch: assign the parameters, load the data pickle,
  ``backtest()`` including ``advise_entry``/``advise_exit``, statistics and loss) is timed with
  ``time.perf_counter`` (wall) and ``time.process_time`` (CPU), and split into pickle load,
  signals (``Backtesting._get_ohlcv_as_lists``), the candle loop (rest of ``backtest()``) and
  statistics + loss. Seconds per epoch = median over the epochs after the first.
* ``-j 2``: the epochs run in joblib worker processes, two at a time; each batch
  (``Hyperopt.run_optimizer_parallel``) is timed in the parent. Seconds per epoch = wall of
  the batches after the first (which pays the workers' start) / their epochs: throughput, what a
  user waits per epoch.

Runs are interleaved: each round runs every (jobs, variant), the variant order rotating; medians
of the per-run figures are reported, and the ratio meta / twin per round. ``--profile`` runs
MetaStrategy once more at ``-j 1`` with cProfile on during the epochs after the first.

A loopback exchange (``freqtrade_metastrategy.loopback.LoopbackExchange``) on a free port
serves the markets; config, user_data and results go to a temporary directory (the same config
as ``bench_backtest.py``: the example config, the loopback overlay, a wallet that never runs dry).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_backtest import bench_finish, bench_setup, code_state, write_config

ROOT = Path(__file__).resolve().parents[1]
BENCH_STRATEGIES = ROOT / "bench" / "strategies"
USER_STRATEGIES = ROOT / "user_data" / "strategies"
BUNDLED_DATA = ROOT / "user_data" / "data" / "binance"
DEFAULT_TIMERANGE = "20220101-20240101"
SPACES = ["regime", "learner"]

#: variant -> (strategy class, files copied into its strategy dir)
VARIANTS: dict[str, tuple[str, list[Path]]] = {
    "twin": ("HyperTwinStatic", [BENCH_STRATEGIES / "BenchHyperTwin.py",
                                 BENCH_STRATEGIES / "BenchTwins.py"]),
    "meta": ("MetaStrategy", [USER_STRATEGIES / "MetaStrategy.py"]),
}
LABELS = {"twin": "static-exit twin", "meta": "MetaStrategy"}


# ----------------------------------------------------------------------------------------------
# child: one in-process hyperopt
# ----------------------------------------------------------------------------------------------
def run_child(args: argparse.Namespace) -> None:
    t_proc = time.perf_counter()
    from freqtrade.commands.optimize_commands import setup_optimize_configuration
    from freqtrade.enums import RunMode
    from freqtrade.optimize.backtesting import Backtesting
    from freqtrade.optimize.hyperopt import Hyperopt
    from freqtrade.optimize.hyperopt import hyperopt_optimizer as ho

    workdir = Path(args.child_dir)
    ft_args: dict[str, Any] = {
        "config": [args.child_config],
        "datadir": json.loads(Path(args.child_config).read_text())["datadir"],
        "strategy": args.strategy,
        "strategy_path": args.strategy_path,
        "timerange": args.timerange,
        "spaces": SPACES,
        "epochs": args.epochs,
        "hyperopt_jobs": args.jobs,
        "hyperopt_loss": args.loss,
        "hyperopt_path": str(ROOT / "user_data" / "hyperopts"),
        "hyperopt_random_state": args.random_state,
        "hyperopt_min_trades": args.min_trades,
        "disableparamexport": True,
    }
    config = setup_optimize_configuration(ft_args, RunMode.HYPEROPT)

    epochs: list[dict[str, float]] = []
    cur: dict[str, float] = {}
    profiler = None
    if args.profile_out:
        import cProfile

        profiler = cProfile.Profile()

    def timed(name: str, fn: Any) -> Any:
        def wrapper(*a: Any, **k: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                cur[name] = cur.get(name, 0.0) + time.perf_counter() - t0
        return wrapper

    # Class-level wraps: with -j 1 joblib calls generate_optimizer in this process.
    inner_gen = ho.HyperOptimizer.generate_optimizer

    def gen(self: Any, params_dict: dict[str, Any]) -> dict[str, Any]:
        cur.clear()
        if profiler is not None and epochs:
            profiler.enable()
        c0, t0 = time.process_time(), time.perf_counter()
        out = inner_gen(self, params_dict)
        t1, c1 = time.perf_counter(), time.process_time()
        if profiler is not None:
            profiler.disable()
        epochs.append({"wall": t1 - t0, "cpu": c1 - c0, **cur})
        return out

    ho.HyperOptimizer.generate_optimizer = gen  # type: ignore[method-assign]
    ho.load = timed("pickle_load", ho.load)
    Backtesting.backtest = timed("backtest", Backtesting.backtest)  # type: ignore[method-assign]
    Backtesting._get_ohlcv_as_lists = timed(  # type: ignore[method-assign]
        "signals", Backtesting._get_ohlcv_as_lists)
    ho.HyperOptimizer._get_results_dict = timed(  # type: ignore[method-assign]
        "stats_loss", ho.HyperOptimizer._get_results_dict)

    t0 = time.perf_counter()
    hyperopt = Hyperopt(config)
    batches: list[dict[str, float]] = []
    results: list[dict[str, Any]] = []
    inner_batch = hyperopt.run_optimizer_parallel

    def batch(parallel: Any, asked: list[Any]) -> list[dict[str, Any]]:
        b0 = time.perf_counter()
        out = inner_batch(parallel, asked)
        batches.append({"wall": time.perf_counter() - b0, "epochs": len(asked)})
        return out

    hyperopt.run_optimizer_parallel = batch  # type: ignore[method-assign]
    inner_eval = hyperopt.evaluate_result

    def evaluate(val: dict[str, Any], current: int, is_random: bool) -> None:
        results.append({"trades": int(val["results_metrics"]["total_trades"]),
                        "loss": float(val["loss"]), "params": val["params_dict"]})
        inner_eval(val, current, is_random)

    hyperopt.evaluate_result = evaluate  # type: ignore[method-assign]
    hyperopt.start()
    start_wall = time.perf_counter() - t0
    if profiler is not None:
        profiler.dump_stats(args.profile_out)

    later = batches[1:]
    result = {
        "strategy": args.strategy, "jobs": args.jobs, "epochs_run": len(results),
        "start_wall": start_wall, "process_wall": time.perf_counter() - t_proc,
        "epochs": epochs, "batches": batches, "results": results,
        "s_per_epoch_batches": (sum(b["wall"] for b in later) / sum(b["epochs"] for b in later)
                                if later else float("nan")),
        "startup_wall": start_wall - sum(b["wall"] for b in batches),
    }
    if epochs:
        after = epochs[1:] or epochs
        result["s_per_epoch"] = statistics.median(e["wall"] for e in after)
        result["cpu_per_epoch"] = statistics.median(e["cpu"] for e in after)
        for k in ("pickle_load", "signals", "backtest", "stats_loss"):
            result[f"{k}_per_epoch"] = statistics.median(e.get(k, 0.0) for e in after)
    (workdir / "result.json").write_text(json.dumps(result))


# ----------------------------------------------------------------------------------------------
# parent
# ----------------------------------------------------------------------------------------------
def strategy_dir(tmp: Path, variant: str) -> Path:
    d = tmp / f"strategies_{variant}"
    if not d.exists():
        d.mkdir(parents=True)
        for f in VARIANTS[variant][1]:
            shutil.copy2(f, d / f.name)
    return d


def run_one(args: argparse.Namespace, variant: str, jobs: int, cfg: Path, tmp: Path, tag: str,
            profile_out: Path | None = None) -> dict[str, Any]:
    strategy = VARIANTS[variant][0]
    workdir = tmp / "runs" / f"{tag}-j{jobs}-{variant}"
    workdir.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child",
           "--child-config", str(cfg), "--child-dir", str(workdir),
           "--strategy", strategy, "--strategy-path", str(strategy_dir(tmp, variant)),
           "--timerange", args.timerange, "--epochs", str(args.epochs), "--jobs", str(jobs),
           "--loss", args.loss, "--random-state", str(args.random_state),
           "--min-trades", str(args.min_trades)]
    if profile_out is not None:
        cmd += ["--profile-out", str(profile_out)]
    env = dict(os.environ, NO_PROXY="127.0.0.1,localhost", no_proxy="127.0.0.1,localhost")
    log = workdir / "freqtrade.log"
    with log.open("w") as fh:
        proc = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env, cwd=workdir,
                              check=False)
    out = workdir / "result.json"
    if proc.returncode or not out.exists():
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-30:])
        raise SystemExit(f"{variant} -j {jobs} run {tag} failed (exit {proc.returncode}); "
                         f"log {log}:\n{tail}")
    r: dict[str, Any] = json.loads(out.read_text())
    if r["epochs_run"] != args.epochs:
        print(f"WARNING: {variant} -j {jobs}: {r['epochs_run']} of {args.epochs} epochs ran")
    return r


def per_run(r: dict[str, Any]) -> float:
    """Seconds per epoch of one run: per-epoch median (-j 1), batch throughput (-j > 1)."""
    return float(r["s_per_epoch"] if r["jobs"] == 1 and "s_per_epoch" in r
                 else r["s_per_epoch_batches"])


def summarize(runs: dict[tuple[int, str], list[dict[str, Any]]]) -> dict[str, Any]:
    med = statistics.median
    out: dict[str, Any] = {}
    for (jobs, v), rs in runs.items():
        trades = [x["trades"] for x in rs[0]["results"]]
        s: dict[str, Any] = {
            "s_per_epoch": med(per_run(r) for r in rs),
            "s_per_epoch_runs": [per_run(r) for r in rs],
            "startup_wall": med(r["startup_wall"] for r in rs),
            "trades_mean": statistics.fmean(trades), "trades_min": min(trades),
            "trades_max": max(trades),
            "losses": [x["loss"] for x in rs[0]["results"]],
        }
        if jobs == 1:
            s["s_per_epoch_batches"] = med(r["s_per_epoch_batches"] for r in rs)
            for k in ("cpu", "pickle_load", "signals", "backtest", "stats_loss"):
                s[f"{k}_per_epoch"] = med(r[f"{k}_per_epoch"] for r in rs)
        if any([x["trades"] for x in r["results"]] != trades for r in rs):
            print(f"WARNING: {v} -j {jobs}: trades per epoch differ between runs")
        out[f"j{jobs}_{v}"] = s
    for jobs in sorted({j for j, _ in runs}):
        if (jobs, "meta") in runs and (jobs, "twin") in runs:
            m, t = out[f"j{jobs}_meta"], out[f"j{jobs}_twin"]
            out[f"j{jobs}_ratio"] = {
                "of_medians": m["s_per_epoch"] / t["s_per_epoch"],
                "rounds": [a / b for a, b in zip(m["s_per_epoch_runs"], t["s_per_epoch_runs"],
                                                 strict=True)],
            }
            same = ([r["params"] for r in runs[(jobs, "meta")][0]["results"]]
                    == [r["params"] for r in runs[(jobs, "twin")][0]["results"]])
            out[f"j{jobs}_ratio"]["same_parameter_sets"] = same
    return out


def print_table(summary: dict[str, Any], args: argparse.Namespace) -> None:
    print()
    print(f"hyperopt --spaces {' '.join(SPACES)}, {args.epochs} epochs, loss {args.loss}, "
          f"timerange {args.timerange}, median of {args.rounds} interleaved runs (min-max)")
    print()
    print("| -j | variant | s/epoch | s/epoch CPU | pickle load | signals | candle loop "
          "| stats + loss | trades/epoch (min-max) | start-up s |")
    print("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for key, s in summary.items():
        if key.endswith("_ratio"):
            continue
        jobs, v = key[1:].split("_", 1)
        runs = s["s_per_epoch_runs"]
        if jobs == "1":
            parts = [f"{s['cpu_per_epoch']:.2f}", f"{s['pickle_load_per_epoch']:.2f}",
                     f"{s['signals_per_epoch']:.2f}",
                     f"{s['backtest_per_epoch'] - s['signals_per_epoch']:.2f}",
                     f"{s['stats_loss_per_epoch']:.2f}"]
        else:
            parts = ["-"] * 5
        print(f"| {jobs} | {LABELS[v]} | {s['s_per_epoch']:.2f} ({min(runs):.2f}-{max(runs):.2f})"
              f" | {' | '.join(parts)} | {s['trades_mean']:.0f} ({s['trades_min']}-"
              f"{s['trades_max']}) | {s['startup_wall']:.1f} |")
    print()
    for key, r in summary.items():
        if key.endswith("_ratio"):
            rr = r["rounds"]
            print(f"-j {key[1:].split('_')[0]}: MetaStrategy / twin seconds per epoch "
                  f"{r['of_medians']:.2f}x (rounds {min(rr):.2f}-{max(rr):.2f}); goal <= 1.3x"
                  f"{'' if r['same_parameter_sets'] else ' (WARNING: parameter sets differ)'}")


def print_profile(path: Path, limit: int) -> None:
    import pstats

    st = pstats.Stats(str(path))
    total = st.total_tt  # type: ignore[attr-defined]
    print(f"\n--- cProfile of MetaStrategy's epochs after the first, -j 1 ({total:.1f} s "
          "profiled; cProfile inflates small calls) ---")
    rows = [(ct, tt, nc, f"{Path(f).name}:{line}({fn})", f)
            for (f, line, fn), (_cc, nc, tt, ct, _c) in st.stats.items()]  # type: ignore[attr-defined]
    print("\nour functions (freqtrade_metastrategy), by cumulative time:")
    print(f"{'cum s':>8} {'own s':>8} {'calls':>9}  function")
    for ct, tt, nc, name, _ in sorted((r for r in rows if "freqtrade_metastrategy" in r[4]),
                                      reverse=True)[:limit]:
        print(f"{ct:8.2f} {tt:8.2f} {nc:9d}  {name}")
    print("\nFreqtrade's backtest loop and the wrapper, by cumulative time:")
    for ct, tt, nc, name, f in sorted(rows, reverse=True)[:limit * 2]:
        if "freqtrade/" in f and "metastrategy" not in f:
            print(f"{ct:8.2f} {tt:8.2f} {nc:9d}  {name}")
    print("\nall functions, by own time:")
    print(f"{'own s':>8} {'cum s':>8} {'calls':>9}  function")
    for ct, tt, nc, name, _ in sorted(rows, key=lambda r: r[1], reverse=True)[:limit]:
        print(f"{tt:8.2f} {ct:8.2f} {nc:9d}  {name}")


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--rounds", type=int, default=2, help="runs per (jobs, variant), interleaved")
    ap.add_argument("--epochs", type=int, default=8, help="hyperopt epochs per run")
    ap.add_argument("--jobs", type=int, nargs="+", default=[1, 2], help="hyperopt -j values")
    ap.add_argument("--data-dir", type=Path, default=BUNDLED_DATA)
    ap.add_argument("--timerange", default=DEFAULT_TIMERANGE)
    ap.add_argument("--pairs", nargs="+",
                    help="default: every <BASE>_USDT-1h.feather in --data-dir")
    ap.add_argument("--variants", nargs="+", default=["twin", "meta"], choices=list(VARIANTS))
    ap.add_argument("--loss", default="MetaStrategyRLoss",
                    help="hyperopt loss for both variants (e.g. SharpeHyperOptLoss)")
    ap.add_argument("--random-state", type=int, default=1)
    ap.add_argument("--min-trades", type=int, default=20)
    ap.add_argument("--profile", action="store_true",
                    help="also run MetaStrategy once at -j 1 under cProfile")
    ap.add_argument("--profile-limit", type=int, default=25)
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    ap.add_argument("--json", type=Path, help="write raw runs and the summary here")
    for name in ("--child-config", "--child-dir", "--strategy", "--strategy-path",
                 "--profile-out"):
        ap.add_argument(name, help=argparse.SUPPRESS)
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    return ap.parse_args()


def main() -> None:
    args = parse_args()
    if args.child:
        args.jobs = args.jobs[0]
        run_child(args)
        return

    datadir, tmp, state = bench_setup(args.data_dir, "bench_hyperopt_")
    from freqtrade_metastrategy.loopback import LoopbackExchange

    print(f"data {datadir}, timerange {args.timerange}, {args.epochs} epochs, jobs {args.jobs}, "
          f"{args.rounds} rounds, tmp {tmp}")
    runs: dict[tuple[int, str], list[dict[str, Any]]] = {}
    summary: dict[str, Any] = {}
    try:
        with LoopbackExchange(datadir, port=0) as exchange:
            cfg, config = write_config(tmp, exchange.port, datadir, args.pairs)
            # the `learner` space tunes the seeds' bandit (what this benchmark measured); the
            # default full-information policy refuses it (its space is `fullinfo`)
            config.setdefault("metastrategy", {})["policy"] = "epsilon_greedy"
            cfg.write_text(json.dumps(config, indent=2))
            print(f"loopback exchange on port {exchange.port}; pairs "
                  f"{', '.join(config['exchange']['pair_whitelist'])}", flush=True)
            order = list(args.variants)
            for i in range(args.rounds):
                for jobs in args.jobs:
                    for v in order:
                        r = run_one(args, v, jobs, cfg, tmp, f"r{i}")
                        runs.setdefault((jobs, v), []).append(r)
                        trades = [x["trades"] for x in r["results"]]
                        print(f"  round {i + 1}/{args.rounds} -j {jobs} {v:5s} "
                              f"{per_run(r):6.2f} s/epoch, start-up {r['startup_wall']:5.1f} s, "
                              f"trades/epoch {statistics.fmean(trades):.0f}", flush=True)
                    order = order[1:] + order[:1]
                if code_state() != state:
                    print(f"WARNING: the package changed during the benchmark: {code_state()}")
            if runs:
                summary = summarize(runs)
                print_table(summary, args)
            if args.profile:
                prof = tmp / "meta.pstats"
                run_one(args, "meta", 1, cfg, tmp, "profile", profile_out=prof)
                print_profile(prof, args.profile_limit)
    finally:
        bench_finish(args.json, {
            "code": state, "args": {k: str(v) for k, v in vars(args).items()},
            "runs": {f"j{j}_{v}": rs for (j, v), rs in runs.items()}, "summary": summary,
        }, tmp, args.keep)


if __name__ == "__main__":
    main()
