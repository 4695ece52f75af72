"""``tune``: regime thresholds and the configured policy's settings, searched walk-forward.

The strategy's signals, every profile's outcome on each and their regime features are computed
once (:func:`tune_data`) and cached in ``--cache-dir`` under a key of everything they depend
on (:func:`data_key`); each trial then reclassifies the regimes and replays the configured
policy (:mod:`freqtrade_metastrategy.tuning`), so no trial runs a Freqtrade backtest.

Order of work: every argument, the search space, the storage and the study's identity are
checked **before** anything is computed or written (a bad input ends with exit code 2 and
no file). Then data, trials, the overfitting checks (:mod:`~.tuning.verdict`), and the
outputs in ``--out``: ``report.json``, ``report.html`` (optimisation history, parameter
importances) and the strategy's parameter file (``<Strategy>.json``, Freqtrade's own
format). That file is also installed next to the strategy file (where ``freqtrade
backtesting`` and ``freqtrade trade`` read it) when the winner clears the checks, or with
``--install``; the file it replaces is copied to ``--out`` first, and its other spaces (your
entry's ``buy``/``sell`` parameters) are kept.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from freqtrade_metastrategy.commands.shared import (
    add_strategy_arguments,
    parse_walk_forward,
    quiet_freqtrade,
    rich_console,
    run_with_freqtrade,
    strategy_config,
    walk_forward_splits,
)
from freqtrade_metastrategy.config import MetaStrategyConfig
from freqtrade_metastrategy.errors import ConfigError, MetaStrategyError
from freqtrade_metastrategy.evaluation.replay import UNITS
from freqtrade_metastrategy.timerange import parse_timerange
from freqtrade_metastrategy.tuning.objective import (
    CACHE_VERSION,
    OBJECTIVES,
    Fold,
    TrialEvaluator,
    TrialResult,
    TuneData,
)
from freqtrade_metastrategy.tuning.space import PARAMETERS, SPACES, SearchSpace, search_space

if TYPE_CHECKING:
    import optuna

__all__ = ["DEFAULT_CACHE", "DEFAULT_OUT", "add_tune_parser", "cmd_tune", "data_key",
           "tune_data"]

DEFAULT_OUT = Path("user_data") / "tune"
DEFAULT_CACHE = Path("user_data") / "tune_cache"
DEFAULT_STUDY = "metastrategy"


# -- parsing -----------------------------------------------------------------------------------
def _param_overrides(items: list[str] | None) -> dict[str, tuple[float, float]]:
    """``--param NAME=LOW:HIGH`` (repeatable)."""
    out: dict[str, tuple[float, float]] = {}
    for item in items or []:
        name, sep, rng = item.partition("=")
        low, sep2, high = rng.partition(":")
        try:
            if not (sep and sep2):
                raise ValueError
            out[name.strip()] = (float(low), float(high))
        except ValueError:
            raise ConfigError(f"--param {item}", "expected NAME=LOW:HIGH, e.g. "
                              "--param regime_trend_adx=20:35") from None
        if name.strip() not in PARAMETERS:
            raise ConfigError(f"--param {name.strip()}",
                              f"unknown parameter; known: {', '.join(PARAMETERS)}")
    return out


# -- the cached data ---------------------------------------------------------------------------
def _package_digest() -> str:
    """A hash of this package's source (a change to the simulator invalidates the cache)."""
    root = Path(__file__).resolve().parents[1]
    h = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        h.update(str(path.relative_to(root)).encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def _entry_params(path: Path) -> Any:
    """The parameter file's spaces that can change the signals (the entry's ``buy``/``sell``
    ...), not ours (only labels and decisions, which a trial sets) nor its export time: an
    installed winner does not change the data key of the study it came from."""
    if not path.is_file():
        return None
    try:
        doc = json.loads(path.read_text())
    except ValueError:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    params = doc.get("params") if isinstance(doc, dict) else None
    return {k: v for k, v in (params or {}).items() if k not in SPACES}


def data_key(config: Mapping[str, Any], timerange: str) -> str:
    """The cache key of :func:`tune_data`: the strategy's source and parameter file, the
    config keys the signals and outcomes depend on, the candle files (name, size, mtime), the
    timerange and this package's source."""
    from freqtrade.optimize.hyperopt_tools import HyperoptTools

    strategy = str(config.get("strategy"))
    doc: dict[str, Any] = {"version": CACHE_VERSION, "package": _package_digest(),
                           "timerange": timerange, "strategy": strategy}
    path = HyperoptTools.get_strategy_filename(dict(config), strategy)
    if path is not None:
        doc["strategy_source"] = hashlib.sha256(path.read_bytes()).hexdigest()
        doc["strategy_params"] = _entry_params(path.with_suffix(".json"))
    exchange = config.get("exchange") or {}
    doc["config"] = {
        **{k: config.get(k) for k in ("timeframe", "stake_currency", "trading_mode",
                                      "margin_mode", "fee", "startup_candle_count",
                                      "metastrategy", "candle_type_def")},
        "exchange": {k: exchange.get(k) for k in ("name", "pair_whitelist", "pair_blacklist")},
    }
    datadir = Path(str(config.get("datadir", "")))
    files = []
    if datadir.is_dir():
        for f in sorted(datadir.rglob("*")):
            if f.is_file() and f.suffix in (".feather", ".json", ".gz", ".parquet"):
                st = f.stat()
                files.append((str(f.relative_to(datadir)), st.st_size, st.st_mtime_ns))
    doc["candles"] = files
    text = json.dumps(doc, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def tune_data(config: Mapping[str, Any], timerange: str, *,
              progress: Any = None) -> TuneData:
    """Every entry signal of the config's strategy over ``timerange`` (illiquid ones too),
    every profile's outcome on it, its context and its regime features."""
    from freqtrade_metastrategy.entries import load_entries
    from freqtrade_metastrategy.evaluation.outcomes import OutcomeTable
    from freqtrade_metastrategy.regime import CLASSIFY_INPUTS

    es = load_entries(dict(config), timerange, progress=progress, keep_illiquid=True)
    if not es.entries:
        raise MetaStrategyError(f"no entry signal in {timerange}")
    missing = [c for c in CLASSIFY_INPUTS if c not in es.regime_features.columns]
    if missing:
        raise MetaStrategyError(f"the strategy's dataframe has no {', '.join(missing)} column: "
                                "tune needs the regime features MetaStrategy computes")
    outcomes = es.simulated_outcomes()
    features = es.regime_features[list(CLASSIFY_INPUTS)].to_numpy(dtype=np.float64)
    return TuneData(OutcomeTable.coerce(outcomes), features, es.profiles, meta={
        "strategy": es.strategy, "timerange": timerange, "timeframe": es.timeframe,
        "fee": es.fee, "signals": len(es.entries), "pairs": sorted(es.candles)})


# -- the command -------------------------------------------------------------------------------
def cmd_tune(args: argparse.Namespace) -> int:
    """``tune`` (Freqtrade's own errors -- no strategy, bad config -- end as exit code 2)."""
    return run_with_freqtrade(_tune, args)


def _tune(args: argparse.Namespace) -> int:
    from rich.progress import Progress

    from freqtrade_metastrategy.tuning.study import (
        open_storage,
        open_study,
        run_trials,
        study_identity,
    )

    t0 = time.monotonic()
    # 1. everything checked before any work or write
    if args.trials < 0:
        raise ConfigError("--trials", f"must be >= 0, got {args.trials}")
    if args.study is not None and args.storage is None:
        raise ConfigError(f"--study {args.study}", "resumes a study kept in --storage; give "
                          "--storage sqlite:///user_data/tune.sqlite or postgresql://...")
    full_range = parse_timerange(args.timerange)
    rolling = parse_walk_forward(args)
    if rolling is None:
        raise ConfigError("--walk-forward", "is required, e.g. --walk-forward 365D:365D")
    splits = walk_forward_splits(args, rolling, full_range)
    overrides = _param_overrides(args.param)
    config = strategy_config(args)
    ms_config = MetaStrategyConfig.from_freqtrade_config(config)
    space = search_space(ms_config, overrides=overrides, spaces=tuple(args.spaces or SPACES))
    if not space.parameters:
        raise ConfigError("--spaces", f"{' '.join(args.spaces)} holds no parameter that acts "
                          "on the configured policy")
    quiet_freqtrade()
    key = data_key(config, args.timerange)
    identity = study_identity(space, objective=args.objective, unit=args.unit,
                              walk_forward=f"{args.walk_forward}{':anchored' * args.anchored}",
                              data_key=key)
    storage = open_storage(args.storage)
    study = open_study(storage, args.study or DEFAULT_STUDY, identity, args.seed)

    # 2. data (cached), trials
    console = rich_console()
    cache = Path(args.cache_dir) / f"{key[:24]}.pkl"
    with Progress(console=console, transient=False) as prog:
        data = None if args.no_cache else TuneData.load(cache, key)
        from_cache = data is not None
        if data is None:
            pairs = list((config.get("exchange") or {}).get("pair_whitelist") or [])
            task = prog.add_task("load + analyse candles", total=max(len(pairs), 1))
            data = tune_data(config, args.timerange, progress=lambda _p: prog.advance(task))
            quiet_freqtrade()
            if not args.no_cache:
                data.save(cache, key)
                _prune_cache(cache)
        folds = [Fold((tr[0].value, tr[1].value), (te[0].value, te[1].value))
                 for tr, te in splits]
        evaluator = TrialEvaluator(data, space, folds, unit=args.unit, seed=args.seed)
        task = prog.add_task(f"trials ({args.objective})", total=args.trials)
        best = [float("-inf")]

        def advance(res: TrialResult) -> None:
            best[0] = max(best[0], res.objective(args.objective))
            prog.update(task, advance=1,
                        description=f"trials ({args.objective}, best {best[0]:.2f})")

        t_trials = time.monotonic()
        run_trials(study, evaluator, n_trials=args.trials, objective=args.objective,
                   callback=advance)
        trials_seconds = time.monotonic() - t_trials

    # 3. checks and outputs
    return _report(args, console, config, study, evaluator, space, key, data,
                   trials_seconds=trials_seconds, total_seconds=time.monotonic() - t0,
                   from_cache=from_cache)


#: Cached data files kept per cache directory (the newest; one per data key).
CACHE_KEEP = 4


def _prune_cache(keep: Path) -> None:
    """Delete all but the :data:`CACHE_KEEP` newest cache files next to ``keep``."""
    files = sorted(keep.parent.glob("*.pkl"), key=lambda f: f.stat().st_mtime_ns, reverse=True)
    for f in files[CACHE_KEEP:]:
        if f != keep:
            f.unlink(missing_ok=True)


def _report(args: argparse.Namespace, console: Any, config: Mapping[str, Any],
            study: optuna.Study, evaluator: TrialEvaluator, space: SearchSpace, key: str,
            data: TuneData, *, trials_seconds: float, total_seconds: float,
            from_cache: bool) -> int:
    from freqtrade_metastrategy.tuning.study import completed_trials
    from freqtrade_metastrategy.tuning.verdict import compare, judge

    trials = completed_trials(study)
    if not trials:
        raise MetaStrategyError("the study has no completed trial: run with --trials N > 0")
    # the winner: highest objective, the lowest trial number among ties (same from any worker)
    win_i = max(range(len(trials)), key=lambda i: (trials[i].value, -trials[i].number))
    winner = trials[win_i]
    # on the parameters' grids (Optuna samples them continuous; the trial used them snapped,
    # as the parameter file and Freqtrade will)
    values = space.snapped(winner.params)
    res = evaluator.evaluate(values)
    # the base config's own settings (no value given), even where --param moved a range
    # away from them
    defaults = evaluator.evaluate({})
    static = evaluator.static_train_best({})
    mask = evaluator.oos_mask
    weeks = evaluator.weeks[mask]
    comparisons = [compare(res.oos[mask], defaults.oos[mask], weeks, "defaults"),
                   compare(res.oos[mask], static[mask], weeks, "static_train_best")]
    verdict = judge([t.weekly for t in trials], win_i, args.objective, comparisons)

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    strategy = str(config.get("strategy"))
    params_file = out / f"{strategy}.json"
    _write_params(params_file, strategy, space, values)
    installed: str | None = None
    if verdict.clears or args.install:
        installed = _install(config, strategy, params_file, out)

    rows = sorted(trials, key=lambda t: (-t.value, t.number))
    report = {
        "meta": {
            "strategy": strategy, "timerange": args.timerange, "walk_forward": args.walk_forward,
            "anchored": args.anchored, "objective": args.objective, "unit": args.unit,
            "seed": args.seed, "study": study.study_name,
            "storage": _masked(args.storage), "data_key": key, "from_cache": from_cache,
            "signals": int(data.meta.get("signals", len(data.table))),
            "oos_signals": int(mask.sum()), "oos_weeks": len(evaluator.oos_weeks),
            "folds": [{"train": list(f.train), "test": list(f.test)} for f in evaluator.folds],
            "policy": study.user_attrs.get("metastrategy_tune", {}).get("policy"),
            "space": space.signature(), "trials_run_here": args.trials,
            "trials_in_study": len(trials), "trials_seconds": trials_seconds,
            "trials_per_second": args.trials / trials_seconds if trials_seconds > 0 else None,
            "total_seconds": total_seconds,
        },
        "winner": {"number": winner.number, "params": values, **res.summary()},
        "defaults": {"params": space.defaults(), **defaults.summary()},
        "static_train_best": {"oos_total": float(static[mask].sum())},
        "verdict": verdict.to_dict(),
        "trials": [{"number": t.number, "value": t.value, "params": space.snapped(t.params),
                    **t.figures} for t in rows],
        "params_file": str(params_file), "installed": installed,
    }
    (out / "report.json").write_text(json.dumps(report, indent=2, allow_nan=True,
                                                default=float))
    html = _write_html(out / "report.html", study, report, verdict.sentence())

    _print(console, args, report, rows, verdict.sentence(), html, installed)
    return 0


def _masked(url: str | None) -> str | None:
    if url is None:
        return None
    from freqtrade_metastrategy.store.engine import mask_password

    return mask_password(url)


def _params_doc(space: SearchSpace, values: Mapping[str, float]) -> dict[str, dict[str, Any]]:
    by_space: dict[str, dict[str, Any]] = {}
    for p in space.parameters:
        v = p.snap(values[p.name])
        by_space.setdefault(p.space, {})[p.name] = int(v) if p.is_int else v
    return by_space


def _write_params(path: Path, strategy: str, space: SearchSpace,
                  values: Mapping[str, float]) -> None:
    """Freqtrade's parameter file of ``values`` (``HyperoptTools.export_params``)."""
    from freqtrade.optimize.hyperopt_tools import HyperoptTools

    HyperoptTools.export_params({"params_details": _params_doc(space, values),
                                 "params_not_optimized": {}}, strategy, path)


def _install(config: Mapping[str, Any], strategy: str, written: Path, out: Path) -> str:
    """Copy ``written`` next to the strategy file, keeping the existing file's other spaces
    (and a copy of it in ``out``). Returns the installed path."""
    from freqtrade.optimize.hyperopt_tools import HyperoptTools

    location = HyperoptTools.get_strategy_filename(dict(config), strategy)
    if location is None:
        raise MetaStrategyError(f"strategy {strategy} not found: cannot install "
                                f"{written}; copy it next to the strategy file yourself")
    target = location.with_suffix(".json")
    doc = HyperoptTools.load_params_from_file(written)
    if target.is_file():
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
        shutil.copy2(target, out / f"{target.stem}.replaced-{stamp}.json")
        try:
            old = HyperoptTools.load_params_from_file(target)
        except ValueError:
            old = {}
        if old.get("strategy_name") not in (None, strategy):
            raise MetaStrategyError(
                f"{target} belongs to strategy {old.get('strategy_name')!r} (another class in "
                f"the same file), not {strategy}: not installed; {written} is the winner's "
                "file, move the other strategy to its own file to use both")
        kept = {s: v for s, v in (old.get("params") or {}).items() if s not in SPACES}
        doc["params"] = {**kept, **doc["params"]}
    HyperoptTools.export_params({"params_details": doc["params"], "params_not_optimized": {}},
                                strategy, target)
    return str(target)


def _write_html(path: Path, study: optuna.Study, report: Mapping[str, Any],
                sentence: str) -> str | None:
    """Optimisation history and parameter importances (plotly, self-contained); the reason
    when a figure could not be drawn."""
    import html

    import optuna

    figs: list[Any] = [optuna.visualization.plot_optimization_history(study)]
    note = None
    try:
        figs.append(optuna.visualization.plot_param_importances(study))
    except (ValueError, RuntimeError, ZeroDivisionError) as exc:
        note = f"parameter importances not drawn: {exc}"
    parts = [f.to_html(include_plotlyjs=(i == 0), full_html=False) for i, f in enumerate(figs)]
    title = f"tune {report['meta']['strategy']} {report['meta']['timerange']}"
    verdict = json.dumps(report["verdict"], indent=2, default=float)
    path.write_text(
        "<!DOCTYPE html>\n<html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title></head><body>\n<h1>{html.escape(title)}</h1>\n"
        f"<p><b>{html.escape(sentence)}</b></p>\n<pre>{html.escape(verdict)}</pre>\n"
        + ("" if note is None else f"<p>{html.escape(note)}</p>\n")
        + "\n".join(parts) + "\n</body></html>\n")
    return note


def _print(console: Any, args: argparse.Namespace, report: Mapping[str, Any],
           rows: list[Any], sentence: str, html_note: str | None,
           installed: str | None) -> None:
    from rich.markup import escape
    from rich.table import Table

    meta = report["meta"]
    table = Table(title=f"top trials of study {escape(meta['study'])} "
                        f"({meta['trials_in_study']} completed; objective OOS {args.objective}, "
                        f"{args.unit})", title_justify="left")
    for h in ("trial", "IS total", "OOS total", "OOS SQN", "OOS traded/decided"):
        table.add_column(h, justify="right", no_wrap=True)

    def cells(label: str, fig: Mapping[str, Any]) -> list[str]:
        return [label, f"{fig.get('is_total', float('nan')):.1f}",
                f"{fig.get('oos_total', float('nan')):.1f}",
                f"{fig.get('oos_sqn', float('nan')):.2f}",
                f"{int(fig.get('oos_traded', 0))}/{int(fig.get('oos_entries', 0))}"]

    for t in rows[:10]:
        table.add_row(*cells(str(t.number), t.figures))
    table.add_row(*cells("defaults", report["defaults"]))
    console.print(table)
    params = Table(title=f"winner: trial {report['winner']['number']}", title_justify="left")
    for h in ("parameter", "winner", "defaults", "range"):
        params.add_column(h, justify="left" if h == "parameter" else "right", no_wrap=True)
    for name, value in report["winner"]["params"].items():
        rng = meta["space"][name]
        params.add_row(name, f"{value:g}", f"{report['defaults']['params'][name]:g}",
                       f"{rng['low']:g}..{rng['high']:g}" + (" log" if rng["log"] else ""))
    console.print(params)
    v = report["verdict"]
    for c in v["comparisons"]:
        console.print(f"winner vs {c['against']}: {c['winner_total']:.1f} vs "
                      f"{c['other_total']:.1f} {args.unit} OOS, difference "
                      f"{c['difference']:+.1f} (week-clustered SE {c['se_clustered']:.1f})",
                      markup=False)
    if v["pbo"] is not None:
        console.print(f"PBO (CSCV, {v['pbo']['n_splits']} blocks of weeks, "
                      f"{v['pbo']['n_trials']} trials): {v['pbo']['pbo']:.3f}", markup=False)
    if v["dsr"] is not None:
        console.print(f"deflated Sharpe (weekly, {v['dsr']['n_trials']} trials): "
                      f"{v['dsr']['dsr']:.3f} (Sharpe {v['dsr']['sharpe']:.3f}, expected max "
                      f"of noise {v['dsr']['sr0']:.3f})", markup=False)
    console.print(sentence, markup=False)
    per = meta["trials_per_second"]
    console.print(f"{meta['trials_run_here']} trials in {meta['trials_seconds']:.1f} s"
                  + (f" ({per:.2f} trials/s)" if per else "")
                  + f"; total {meta['total_seconds']:.1f} s"
                  + (" (data from the cache)" if meta["from_cache"] else ""), markup=False)
    out = Path(args.out)
    console.print(f"wrote {out / 'report.json'}, {out / 'report.html'}, "
                  f"{report['params_file']}", markup=False)
    if html_note:
        console.print(html_note, markup=False)
    if installed:
        console.print(f"installed the parameters at {installed} (freqtrade backtesting and "
                      "trade use them from now on)", markup=False)
    else:
        console.print("not installed; to use the winner anyway: --install, or copy "
                      f"{report['params_file']} next to the strategy file", markup=False)


# -- argparse ----------------------------------------------------------------------------------
TUNE_DESCRIPTION = """\
Tune the regime thresholds and the configured policy's settings on cached counterfactual
outcomes (no Freqtrade backtest per trial), walk-forward; prints the winner with the
probability of backtest overfitting (CSCV), the deflated Sharpe ratio and the comparison
with the defaults and last year's best static profile; writes report.json, report.html and
Freqtrade's parameter file (installed next to the strategy only when the winner clears the
checks, or with --install). Several workers share one study with --storage."""


def add_tune_parser(sub: Any) -> None:
    p = sub.add_parser("tune", help="tune regime thresholds and learner settings, walk-forward",
                       description=TUNE_DESCRIPTION)
    add_strategy_arguments(p)
    p.add_argument("--walk-forward", metavar="TRAIN:TEST[:STEP]", required=True,
                   help="e.g. 365D:365D (learners start empty in every fold, as in evaluate)")
    p.add_argument("--anchored", action="store_true",
                   help="expanding train windows from the start of --timerange")
    p.add_argument("--trials", type=int, default=100,
                   help="trials this worker runs (0: only report the study)")
    p.add_argument("--objective", choices=OBJECTIVES, default="total",
                   help="out-of-sample total reward, or its SQN")
    p.add_argument("--unit", choices=list(UNITS), default="r_atr")
    p.add_argument("--spaces", nargs="+", choices=list(SPACES),
                   help="parameter spaces (default: all that act on the configured policy)")
    p.add_argument("--param", action="append", metavar="NAME=LOW:HIGH",
                   help="another range for a parameter (repeatable)")
    p.add_argument("--seed", type=int, default=0,
                   help="sampler and learner seed (give each worker of a study its own)")
    p.add_argument("--storage", help="Optuna RDB storage shared by workers, e.g. "
                                     "postgresql://user:pw@host/db (default: in memory)")
    p.add_argument("--study", help=f"study name in --storage (default {DEFAULT_STUDY}); "
                                   "an existing one is resumed")
    p.add_argument("--out", default=str(DEFAULT_OUT))
    p.add_argument("--cache-dir", default=str(DEFAULT_CACHE))
    p.add_argument("--no-cache", action="store_true", help="recompute the data, write no cache")
    p.add_argument("--install", action="store_true",
                   help="install the winner's parameter file even if it fails the checks")
    p.set_defaults(func=cmd_tune)
