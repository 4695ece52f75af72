"""Backtest overhead of MetaStrategy's trade callbacks, against two twins with the same entries.

Run from the repository root::

    .venv/bin/python bench/bench_backtest.py [--runs 5] [--data-dir DIR] [--timerange A-B]
        [--pairs BTC/USDT ...] [--variants ...] [--calibrate] [--breakdown] [--profile]
        [--keep] [--json FILE]

Variants (``bench/strategies/``):

* ``twin_a`` -- MetaStrategy's entries and indicators, static stoploss/minimal_roi, no trade
  callback overridden;
* ``twin_b`` -- twin A + exactly the callbacks MetaStrategy overrides, returning defaults
  (Freqtrade deep-copies the trade for each call: the floor any callback-driven strategy pays);
* ``meta``   -- ``user_data/strategies/MetaStrategy.py`` with ``config.example.json`` (enabled).

Method: every run of every variant is a fresh child process (this script with ``--child``)
that builds the config with Freqtrade's own ``setup_optimize_configuration``, runs
``Backtesting(config).start()`` in-process, and times ``Backtesting.backtest()`` -- the
candle loop, including populate_entry/exit_trend and the trade-list conversion, excluding
start-up, data loading, populate_indicators and the report -- with ``time.perf_counter``
(wall) and ``time.process_time`` (CPU). Freqtrade's own ``backtest_start_time`` /
``backtest_end_time`` are whole seconds and include populate_indicators, so they are not used.
Runs are interleaved (the variant order rotates each round); medians are reported.

Cost per open-trade candle beyond twin A = (t - t_A) / open-trade candles of that variant,
open-trade candles = sum over the exported trades of trade_duration / timeframe. The twins'
static exits should give about MetaStrategy's trades and open-trade candles: ``--calibrate``
picks them from a grid (the defaults in BenchTwins.py fit the bundled data).

``--breakdown`` re-runs twin B and the meta variants once with every callback body and
Freqtrade's ``deepcopy(trade)`` timed; ``--profile`` runs MetaStrategy once under cProfile.

A loopback exchange (``freqtrade_metastrategy.loopback.LoopbackExchange``) on a free port
serves the markets; the config (with a wallet that never runs dry), user_data dir and results
go to a temporary directory.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BENCH_STRATEGIES = ROOT / "bench" / "strategies"
USER_STRATEGIES = ROOT / "user_data" / "strategies"
BUNDLED_DATA = ROOT / "user_data" / "data" / "binance"
DEFAULT_TIMERANGE = "20220101-20240101"
OVERLAY_PORT = 18080
BENCH_WALLET = 10_000_000

VARIANTS: dict[str, tuple[str, Path]] = {
    "twin_a": ("TwinNoCallbacks", BENCH_STRATEGIES),
    "twin_b": ("TwinTrivialCallbacks", BENCH_STRATEGIES),
    "meta": ("MetaStrategy", USER_STRATEGIES),
}
LABELS = {
    "twin_a": "Twin A (no callbacks)",
    "twin_b": "Twin B (trivial callbacks)",
    "meta": "MetaStrategy",
}


# ----------------------------------------------------------------------------------------------
# child: one in-process backtest
# ----------------------------------------------------------------------------------------------
CALLBACKS = ("bot_start", "bot_loop_start", "confirm_trade_entry", "custom_stoploss",
             "adjust_trade_position", "custom_roi", "order_filled")
#: MetaStrategyBase helpers timed too (their time is inside the callbacks' above).
INTERNALS = ("_signal_row", "_freeze", "_settle")


def instrument(strat: Any) -> dict[str, Any]:
    """Time the strategy's own callback bodies and Freqtrade's per-call deepcopy(trade).

    Each overridden callback is wrapped on the instance (``functools.wraps`` keeps the
    ``__qualname__`` Freqtrade's wrapper tests, so it deep-copies exactly as before), and
    ``strategy_wrapper.deepcopy`` is replaced by a timed one. About 1 µs per call of overhead:
    use these figures for attribution, not for the timing table.
    """
    import functools

    from freqtrade.strategy import IStrategy, strategy_wrapper

    stats: dict[str, Any] = {"callbacks": {}, "deepcopy": {}}

    for name in CALLBACKS + INTERNALS:
        fn = getattr(strat, name, None)
        if fn is None or (name in CALLBACKS and getattr(type(strat), name) is getattr(
                IStrategy, name)):
            continue
        group = "callbacks" if name in CALLBACKS else "internals"
        acc = stats.setdefault(group, {}).setdefault(name, {"calls": 0, "seconds": 0.0})

        def timed(*a: Any, __fn: Any = fn, __acc: dict[str, Any] = acc, **k: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return __fn(*a, **k)
            finally:
                __acc["seconds"] += time.perf_counter() - t0
                __acc["calls"] += 1

        setattr(strat, name, functools.wraps(fn)(timed))

    inner_deepcopy = strategy_wrapper.deepcopy
    by_orders: dict[str, dict[str, float]] = stats["deepcopy"]

    def timed_deepcopy(obj: Any, *a: Any) -> Any:
        t0 = time.perf_counter()
        out = inner_deepcopy(obj, *a)
        dt = time.perf_counter() - t0
        acc = by_orders.setdefault(str(len(getattr(obj, "orders", ()))),
                                   {"calls": 0, "seconds": 0.0})
        acc["calls"] += 1
        acc["seconds"] += dt
        return out

    strategy_wrapper.deepcopy = timed_deepcopy
    return stats


# ----------------------------------------------------------------------------------------------
# (child main)
# ----------------------------------------------------------------------------------------------
def run_child(args: argparse.Namespace) -> None:
    import gc

    t_proc = time.perf_counter()
    from freqtrade.commands.optimize_commands import setup_optimize_configuration
    from freqtrade.data.btanalysis import load_backtest_data
    from freqtrade.enums import RunMode
    from freqtrade.exchange import timeframe_to_minutes
    from freqtrade.optimize.backtesting import Backtesting

    workdir = Path(args.child_dir)
    (workdir / "results").mkdir(exist_ok=True)  # must exist, or it is taken as a file prefix
    ft_args: dict[str, Any] = {
        "config": [args.child_config, *([args.child_extra_config] if args.child_extra_config
                                        else [])],
        # Configuration replaces the config's datadir by <user_data_dir>/data unless given here.
        "datadir": json.loads(Path(args.child_config).read_text())["datadir"],
        "strategy": args.strategy,
        "strategy_path": args.strategy_path,
        "timerange": args.timerange,
        "export": "trades",
        "exportdirectory": str(workdir / "results"),
        "backtest_cache": "none",
    }
    config = setup_optimize_configuration(ft_args, RunMode.BACKTEST)
    # A no-op progress callback disables rich's render thread (one core less noise).
    bt = Backtesting(config, progress_callback=lambda task: None)

    timing: dict[str, float] = {}
    sizes: dict[str, int] = {}
    profiler = None
    if args.profile_out:
        import cProfile

        profiler = cProfile.Profile()

    inner_backtest = bt.backtest

    def timed_backtest(processed: dict[str, Any], start_date: Any, end_date: Any) -> Any:
        gc.collect()
        if profiler is not None:
            profiler.enable()
        c0, t0 = time.process_time(), time.perf_counter()
        out = inner_backtest(processed=processed, start_date=start_date, end_date=end_date)
        t1, c1 = time.perf_counter(), time.process_time()
        if profiler is not None:
            profiler.disable()
        timing["backtest_wall"] = t1 - t0
        timing["backtest_cpu"] = c1 - c0
        # backtest() trimmed `processed` to the backtested range: these are the loop's candles.
        sizes["pair_candles"] = sum(len(df) for df in processed.values())
        sizes["pairs"] = sum(1 for df in processed.values() if len(df))
        return out

    bt.backtest = timed_backtest  # type: ignore[method-assign]

    strat = bt.strategylist[0]
    breakdown = instrument(strat) if args.breakdown else None
    inner_indicators = strat.advise_all_indicators

    def timed_indicators(data: dict[str, Any]) -> Any:
        t0 = time.perf_counter()
        out = inner_indicators(data)
        timing["indicators_wall"] = time.perf_counter() - t0
        return out

    strat.advise_all_indicators = timed_indicators  # type: ignore[method-assign]

    t0 = time.perf_counter()
    bt.start()
    timing["start_wall"] = time.perf_counter() - t0

    if profiler is not None:
        profiler.dump_stats(args.profile_out)

    trades = load_backtest_data(config["exportdirectory"], args.strategy)
    tf_min = timeframe_to_minutes(config["timeframe"])
    durations = trades["trade_duration"].astype(float) / tf_min  # minutes -> candles
    result = {
        "strategy": args.strategy,
        **timing,
        **sizes,
        "timeframe": config["timeframe"],
        "trades": len(trades),
        "open_trade_candles": float(durations.sum()),
        "mean_trade_candles": float(durations.mean()) if len(trades) else 0.0,
        "median_trade_candles": float(durations.median()) if len(trades) else 0.0,
        "profit_abs": float(trades["profit_abs"].sum()),
        "exit_reasons": {str(k): int(v) for k, v in trades["exit_reason"].value_counts().items()},
        "process_wall": time.perf_counter() - t_proc,
    }
    if breakdown is not None:
        result["breakdown"] = breakdown
    Path(args.child_out).write_text(json.dumps(result))


# ----------------------------------------------------------------------------------------------
# parent: config, loopback exchange, interleaved runs, table
# ----------------------------------------------------------------------------------------------
def deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def pairs_in(datadir: Path, timeframe: str, stake: str) -> list[str]:
    pat = re.compile(rf"^([A-Z0-9]+)_{stake}-{re.escape(timeframe)}\.feather$")
    return sorted(f"{m[1]}/{stake}" for p in datadir.iterdir() if (m := pat.match(p.name)))


def write_config(tmp: Path, port: int, datadir: Path,
                 pairs: list[str] | None) -> tuple[Path, dict[str, Any]]:
    base = json.loads((ROOT / "config.example.json").read_text())
    overlay_text = (ROOT / "user_data" / "config.loopback.json").read_text()
    overlay_text = overlay_text.replace(f"127.0.0.1:{OVERLAY_PORT}", f"127.0.0.1:{port}")
    if str(OVERLAY_PORT) in overlay_text:
        raise SystemExit(f"config.loopback.json: port {OVERLAY_PORT} left after replacement")
    config = deep_merge(base, json.loads(overlay_text))
    if pairs is None:
        pairs = pairs_in(datadir, config["timeframe"], config["stake_currency"])
    if not pairs:
        raise SystemExit(f"no {config['timeframe']} {config['stake_currency']} pairs in {datadir}")
    config["exchange"]["pair_whitelist"] = pairs
    user_data = tmp / "user_data"
    user_data.mkdir(parents=True, exist_ok=True)
    config["user_data_dir"] = str(user_data)
    config["datadir"] = str(datadir)
    config["api_server"]["enabled"] = False
    # A fixed stake and a wallet that never runs dry: the trades are decided by the signals
    # and exits alone (with the example's 10,000 USDT a losing variant stops trading).
    config["dry_run_wallet"] = BENCH_WALLET
    path = tmp / "config.bench.json"
    path.write_text(json.dumps(config, indent=2))
    return path, config


def run_one(variant: str, cfg: Path, tmp: Path, timerange: str, tag: str,
            profile_out: Path | None = None, twin_cfg: Path | None = None,
            breakdown: bool = False) -> dict[str, Any]:
    strategy, strategy_path = VARIANTS[variant]
    workdir = tmp / "runs" / f"{tag}-{variant}"
    workdir.mkdir(parents=True, exist_ok=True)
    out = workdir / "result.json"
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child",
           "--child-config", str(cfg), "--child-dir", str(workdir), "--child-out", str(out),
           "--strategy", strategy, "--strategy-path", str(strategy_path),
           "--timerange", timerange]
    if profile_out is not None:
        cmd += ["--profile-out", str(profile_out)]
    if twin_cfg is not None and variant.startswith("twin"):
        cmd += ["--child-extra-config", str(twin_cfg)]
    if breakdown:
        cmd += ["--breakdown"]
    env = dict(os.environ, NO_PROXY="127.0.0.1,localhost", no_proxy="127.0.0.1,localhost")
    log = workdir / "freqtrade.log"
    with log.open("w") as fh:
        proc = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env, cwd=tmp,
                              check=False)
    if proc.returncode or not out.exists():
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-30:])
        raise SystemExit(f"{variant} run {tag} failed (exit {proc.returncode}); log {log}:\n{tail}")
    result: dict[str, Any] = json.loads(out.read_text())
    return result


def twin_config(tmp: Path, stoploss: float | None, roi: float | None,
                quiet: bool = False) -> Path | None:
    """An extra config for the twins: Freqtrade lets the config override the static exits."""
    if stoploss is None and roi is None:
        return None
    twin: dict[str, Any] = {}
    if stoploss is not None:
        twin["stoploss"] = stoploss
    if roi is not None:
        twin["minimal_roi"] = {"0": roi}
    path = tmp / f"config.twins{stoploss}_{roi}.json"
    path.write_text(json.dumps(twin))
    if not quiet:
        print(f"twin exits overridden: {twin}")
    return path


# Geometric grids (x1.6): wide enough for 1h data from calm (2023) to wild (2020-21) years.
CAL_STOPLOSS = (-0.006, -0.01, -0.016, -0.025, -0.04)
CAL_ROI = (0.01, 0.016, 0.025, 0.04, 0.063)


def calibrate(cfg: Path, tmp: Path, timerange: str) -> tuple[float, float]:
    """Twin A's (stoploss, roi) whose trades and open-trade candles are closest to meta's."""
    import math

    meta = run_one("meta", cfg, tmp, timerange, "cal")
    print(f"calibration: meta {meta['trades']} trades, {meta['open_trade_candles']:.0f} "
          f"open-trade candles ({meta['mean_trade_candles']:.1f}/trade)")
    best: tuple[float, float, float] | None = None
    for sl in CAL_STOPLOSS:
        for roi in CAL_ROI:
            r = run_one("twin_a", cfg, tmp, timerange, f"cal{sl}_{roi}",
                        twin_cfg=twin_config(tmp, sl, roi, quiet=True))
            err = (abs(math.log(r["open_trade_candles"] / meta["open_trade_candles"]))
                   + abs(math.log(r["trades"] / meta["trades"])))
            print(f"  stoploss {sl:7.4f} roi {roi:6.3f}: {r['trades']:5d} trades, "
                  f"{r['open_trade_candles']:7.0f} open-trade candles, mismatch {err:.3f}",
                  flush=True)
            if best is None or err < best[0]:
                best = (err, sl, roi)
    assert best is not None
    print(f"calibration: twins use stoploss {best[1]}, minimal_roi {{'0': {best[2]}}}")
    return best[1], best[2]


def med(values: list[float]) -> float:
    return statistics.median(values)


def summarize(runs: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Medians, per-round paired costs and ratios: the table's numbers."""
    summary: dict[str, Any] = {"variants": {}, "ratios": {}}
    vs = summary["variants"]
    for v, rs in runs.items():
        walls = [r["backtest_wall"] for r in rs]
        cpus = [r["backtest_cpu"] for r in rs]
        first = rs[0]
        for key in ("trades", "open_trade_candles", "pair_candles"):
            if any(r[key] != first[key] for r in rs):
                print(f"WARNING: {v}: {key} differs between runs: {[r[key] for r in rs]}")
        vs[v] = {
            "wall_median": med(walls), "cpu_median": med(cpus), "walls": walls, "cpus": cpus,
            "startup_median": med([r["process_wall"] - r["backtest_wall"] for r in rs]),
            "indicators_median": med([r.get("indicators_wall", float("nan")) for r in rs]),
            **{k: first[k] for k in ("trades", "open_trade_candles", "mean_trade_candles",
                                     "median_trade_candles", "pair_candles", "pairs",
                                     "profit_abs", "exit_reasons")},
            "candles_per_s": first["pair_candles"] / med(walls),
            "candles_per_s_cpu": first["pair_candles"] / med(cpus),
        }
    if "twin_a" not in runs:
        return summary
    for v in runs:
        if v == "twin_a":
            continue
        s, sa, otc = vs[v], vs["twin_a"], vs[v]["open_trade_candles"]
        for clock in ("wall", "cpu"):
            k = f"backtest_{clock}"
            s[f"cost_us_{clock}"] = (s[f"{clock}_median"] - sa[f"{clock}_median"]) / otc * 1e6
            # the same difference taken within each round (the runs of a round are adjacent)
            s[f"cost_us_{clock}_rounds"] = [(r[k] - ra[k]) / otc * 1e6
                                            for r, ra in zip(runs[v], runs["twin_a"], strict=True)]
    if "twin_b" in runs:
        summary["ratios"] = ratios(vs)
    return summary


def ratios(vs: dict[str, Any]) -> dict[str, Any]:
    """Cost per open-trade candle of each meta* variant / twin B's."""
    out: dict[str, Any] = {}
    b = vs["twin_b"]
    for v, m in vs.items():
        if v.startswith("meta"):
            out[v] = {
                clock: {
                    "of_medians": m[f"cost_us_{clock}"] / b[f"cost_us_{clock}"],
                    "rounds": [x / y for x, y in zip(m[f"cost_us_{clock}_rounds"],
                                                     b[f"cost_us_{clock}_rounds"], strict=True)
                               if y],
                } for clock in ("wall", "cpu")
            }
    return out


def _range(values: list[float], fmt: str = ".1f") -> str:
    return f"{min(values):{fmt}}-{max(values):{fmt}}"


def print_table(summary: dict[str, Any], runs: int) -> None:
    vs = summary["variants"]
    print()
    print(f"backtest() time, median of {runs} interleaved runs (min-max); cost per open-trade "
          "candle beyond twin A = (t - t_A) / open-trade candles (median-based; min-max of the "
          "per-round differences)")
    print()
    print("| variant | wall s | CPU s | trades | open-trade candles | candles/trade | "
          "cost/OT candle, wall µs | cost/OT candle, CPU µs | candles/s (wall) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for v in [v for v in VARIANTS if v in vs]:
        s = vs[v]
        cost = {}
        for clock in ("wall", "cpu"):
            if f"cost_us_{clock}" in s:
                cost[clock] = (f"{s[f'cost_us_{clock}']:.0f} "
                               f"({_range(s[f'cost_us_{clock}_rounds'], '.0f')})")
            else:
                cost[clock] = "-"
        print(f"| {LABELS[v]} | {s['wall_median']:.2f} ({_range(s['walls'], '.2f')}) "
              f"| {s['cpu_median']:.2f} ({_range(s['cpus'], '.2f')}) | {s['trades']} "
              f"| {s['open_trade_candles']:,.0f} | {s['mean_trade_candles']:.1f} "
              f"| {cost['wall']} | {cost['cpu']} | {s['candles_per_s']:,.0f} |")
    if summary["ratios"]:
        print()
        for v, r in summary["ratios"].items():
            w, c = r["wall"], r["cpu"]
            print(f"{LABELS[v]} / Twin B, cost per open-trade candle: "
                  f"wall {w['of_medians']:.2f}x (rounds {_range(w['rounds'], '.2f')}), "
                  f"CPU {c['of_medians']:.2f}x (rounds {_range(c['rounds'], '.2f')}); goal <= 1.5x")
    any_v = next(iter(vs.values()))
    print(f"{any_v['pairs']} pairs, {any_v['pair_candles']:,} pair-candles in the loop. "
          "Per child outside backtest() (start-up, populate_indicators, report), median: "
          + ", ".join(f"{v} {s['startup_median']:.1f} s" for v, s in vs.items()))
    for v, s in vs.items():
        print(f"  {v}: exits {s['exit_reasons']}, profit {s['profit_abs']:.2f}, "
              f"median trade {s['median_trade_candles']:.0f} candles")


def print_breakdown(results: dict[str, dict[str, Any]]) -> None:
    print("\n--- attribution (one instrumented run each; ~1 µs/call instrumentation overhead) ---")
    print("| variant | item | calls | total s | µs/call | µs per open-trade candle |")
    print("|---|---|---:|---:|---:|---:|")
    for v, r in results.items():
        b, otc = r["breakdown"], r["open_trade_candles"]
        tot_cb = tot_dc = 0.0
        for name, acc in sorted(b["callbacks"].items(), key=lambda kv: -kv[1]["seconds"]):
            tot_cb += acc["seconds"]
            print(f"| {v} | {name} body | {acc['calls']} | {acc['seconds']:.3f} "
                  f"| {acc['seconds'] / max(acc['calls'], 1) * 1e6:.1f} "
                  f"| {acc['seconds'] / otc * 1e6:.1f} |")
        for n_orders, acc in sorted(b["deepcopy"].items(), key=lambda kv: int(kv[0])):
            tot_dc += acc["seconds"]
            print(f"| {v} | deepcopy(trade), {n_orders} orders | {acc['calls']} "
                  f"| {acc['seconds']:.3f} | {acc['seconds'] / acc['calls'] * 1e6:.1f} "
                  f"| {acc['seconds'] / otc * 1e6:.1f} |")
        for name, acc in b.get("internals", {}).items():
            print(f"| {v} | (inside the above) {name} | {acc['calls']} | {acc['seconds']:.3f} "
                  f"| {acc['seconds'] / max(acc['calls'], 1) * 1e6:.1f} "
                  f"| {acc['seconds'] / otc * 1e6:.1f} |")
        print(f"| {v} | **callback bodies** | | {tot_cb:.3f} | | {tot_cb / otc * 1e6:.1f} |")
        print(f"| {v} | **deepcopy(trade)** | | {tot_dc:.3f} | | {tot_dc / otc * 1e6:.1f} |")
        print(f"| {v} | backtest() wall (instrumented) | | {r['backtest_wall']:.3f} | | |")


def print_profile(path: Path, limit: int) -> None:
    import pstats

    print(f"\n--- cProfile of MetaStrategy's backtest() ({path}) ---")
    st = pstats.Stats(str(path))
    total = st.total_tt  # type: ignore[attr-defined]
    print(f"total {total:.2f} s (profiled; cProfile inflates small calls)")
    rows = []
    for (file, line, func), (_cc, nc, tt, ct, _callers) in st.stats.items():  # type: ignore[attr-defined]
        rows.append((ct, tt, nc, f"{Path(file).name}:{line}({func})", file))
    ours = [r for r in rows if "freqtrade_metastrategy" in r[4] or "MetaStrategy" in r[4]]
    print("\nour functions, by cumulative time:")
    print(f"{'cum s':>8} {'own s':>8} {'calls':>9}  function")
    for ct, tt, nc, name, _ in sorted(ours, reverse=True)[:limit]:
        print(f"{ct:8.3f} {tt:8.3f} {nc:9d}  {name}")
    print("\nall functions, by own time:")
    print(f"{'own s':>8} {'cum s':>8} {'calls':>9}  function")
    for ct, tt, nc, name, _ in sorted(rows, key=lambda r: r[1], reverse=True)[:limit]:
        print(f"{tt:8.3f} {ct:8.3f} {nc:9d}  {name}")
    wanted = ("deepcopy", "strategy_safe_wrapper", "wrapper", "custom_stoploss",
              "adjust_trade_position", "custom_roi", "order_filled", "_state", "get_custom_data",
              "get_analyzed_dataframe", "_signal_row")
    print("\nselected, by cumulative time:")
    for ct, tt, nc, name, _ in sorted(rows, reverse=True):
        if any(name.endswith(f"({w})") for w in wanted):
            print(f"{ct:8.3f} {tt:8.3f} {nc:9d}  {name}")


def code_state() -> str:
    """The code being measured: git HEAD (+ dirty) and a hash of strategy.py."""
    import hashlib

    try:
        head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, check=False).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain",
                                "freqtrade_metastrategy"],
                               capture_output=True, text=True, check=False).stdout.strip()
    except OSError:
        head, dirty = "?", ""
    strategy = ROOT / "freqtrade_metastrategy" / "strategy.py"
    digest = hashlib.sha256(strategy.read_bytes()).hexdigest()[:12]
    return f"git {head or '?'}{' (package modified)' if dirty else ''}, strategy.py {digest}"


def machine() -> str:
    import numpy
    import pandas

    try:
        import freqtrade

        ft = freqtrade.__version__
    except ImportError:
        ft = "?"
    return (f"{platform.machine()} {os.cpu_count()} CPU, Python {platform.python_version()}, "
            f"freqtrade {ft}, pandas {pandas.__version__}, numpy {numpy.__version__}")


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--runs", type=int, default=5, help="runs per variant (interleaved)")
    ap.add_argument("--data-dir", type=Path, default=BUNDLED_DATA,
                    help="Freqtrade datadir (default: the bundled user_data/data/binance)")
    ap.add_argument("--timerange", default=DEFAULT_TIMERANGE)
    ap.add_argument("--pairs", nargs="+",
                    help="default: every <BASE>_USDT-1h.feather in --data-dir")
    ap.add_argument("--variants", nargs="+", default=["twin_a", "twin_b", "meta"],
                    choices=list(VARIANTS))
    ap.add_argument("--twin-stoploss", type=float,
                    help="override the twins' static stoploss (e.g. -0.01)")
    ap.add_argument("--twin-roi", type=float, help="override the twins' minimal_roi {'0': ROI}")
    ap.add_argument("--calibrate", action="store_true",
                    help="first pick the twins' stoploss/ROI from a grid so that twin A's trades "
                         "and open-trade candles match MetaStrategy's, then benchmark with them")
    ap.add_argument("--breakdown", action="store_true",
                    help="also run twin B and the meta variants once with their callbacks and "
                         "Freqtrade's deepcopy(trade) timed (attribution)")
    ap.add_argument("--profile", action="store_true",
                    help="also run MetaStrategy once under cProfile and print the hot spots")
    ap.add_argument("--no-timing", action="store_true",
                    help="skip the timed runs (only --calibrate/--breakdown/--profile)")
    ap.add_argument("--profile-limit", type=int, default=25)
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    ap.add_argument("--json", type=Path, help="write raw runs and the summary here")
    # child mode (internal)
    for name in ("--child-config", "--child-dir", "--child-out", "--child-extra-config",
                 "--strategy", "--strategy-path", "--profile-out"):
        ap.add_argument(name, help=argparse.SUPPRESS)
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    return ap.parse_args()


def interleaved(args: argparse.Namespace, cfg: Path, tmp: Path, twin_cfg: Path | None,
                state: str) -> dict[str, list[dict[str, Any]]]:
    """``--runs`` rounds; each round runs every variant once, in a rotating order."""
    runs: dict[str, list[dict[str, Any]]] = {v: [] for v in args.variants}
    order = list(args.variants)
    for i in range(args.runs):
        for v in order:
            r = run_one(v, cfg, tmp, args.timerange, f"r{i}", twin_cfg=twin_cfg)
            runs[v].append(r)
            print(f"  round {i + 1}/{args.runs} {v:18s} backtest {r['backtest_wall']:6.2f} s "
                  f"wall {r['backtest_cpu']:6.2f} s CPU, {r['trades']} trades, "
                  f"{r['open_trade_candles']:.0f} open-trade candles", flush=True)
        order = order[1:] + order[:1]
        if code_state() != state:
            print(f"WARNING: the package changed during the benchmark: {code_state()}")
    return runs


def diagnostics(args: argparse.Namespace, cfg: Path, tmp: Path, twin_cfg: Path | None,
                summary: dict[str, Any]) -> None:
    if args.breakdown:
        wanted = [v for v in VARIANTS
                  if v != "twin_a" and (v in args.variants or v in ("twin_b", "meta"))]
        bd = {v: run_one(v, cfg, tmp, args.timerange, "breakdown", twin_cfg=twin_cfg,
                         breakdown=True) for v in wanted}
        print_breakdown(bd)
        summary["breakdown"] = {v: r["breakdown"] for v, r in bd.items()}
    if args.profile:
        prof = tmp / "meta.pstats"
        r = run_one("meta", cfg, tmp, args.timerange, "profile", profile_out=prof)
        print(f"\nprofiled run: backtest {r['backtest_wall']:.2f} s wall under cProfile")
        print_profile(prof, args.profile_limit)
        if args.keep:
            print(f"pstats: {prof}")


def bench_setup(data_dir: Path, prefix: str) -> tuple[Path, Path, str]:
    """Parent set-up shared by the benchmarks: the package importable, the data directory
    checked, a temporary directory, and the machine and code state printed.
    Returns (datadir, tmp, code state)."""
    sys.path.insert(0, str(ROOT))
    datadir = data_dir.resolve()
    if not datadir.is_dir():
        raise SystemExit(f"--data-dir {datadir} does not exist")
    tmp = Path(tempfile.mkdtemp(prefix=prefix))
    state = code_state()
    print(machine())
    print(state)
    return datadir, tmp, state


def bench_finish(json_path: Path | None, payload: dict[str, Any], tmp: Path, keep: bool) -> None:
    """Write the raw results (``--json``) and remove the temporary directory (unless kept)."""
    if json_path:
        json_path.write_text(json.dumps(payload, indent=1, default=str))
    if keep:
        print(f"kept {tmp}")
    else:
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    args = parse_args()
    if args.child:
        run_child(args)
        return

    datadir, tmp, state = bench_setup(args.data_dir, "bench_backtest_")
    from freqtrade_metastrategy.loopback import LoopbackExchange

    print(f"data {datadir}, timerange {args.timerange}, {args.runs} runs, tmp {tmp}")
    runs: dict[str, list[dict[str, Any]]] = {}
    summary: dict[str, Any] = {}
    try:
        with LoopbackExchange(datadir, port=0) as exchange:
            cfg, config = write_config(tmp, exchange.port, datadir, args.pairs)
            print(f"loopback exchange on port {exchange.port}; pairs "
                  f"{', '.join(config['exchange']['pair_whitelist'])}")
            sl, roi = args.twin_stoploss, args.twin_roi
            if args.calibrate:
                sl, roi = calibrate(cfg, tmp, args.timerange)
            twin_cfg = twin_config(tmp, sl, roi)
            if not args.no_timing:
                runs = interleaved(args, cfg, tmp, twin_cfg, state)
                summary = summarize(runs)
                print_table(summary, args.runs)
            diagnostics(args, cfg, tmp, twin_cfg, summary)
    finally:
        bench_finish(args.json, {"code": state, "runs": runs, "summary": summary}, tmp, args.keep)


if __name__ == "__main__":
    main()
