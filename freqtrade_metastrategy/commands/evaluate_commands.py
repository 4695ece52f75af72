"""``evaluate`` and ``ope``: offline evaluation of profile selection, and off-policy estimates.

``evaluate``: a strategy's entries -> counterfactual outcomes -> replay and walk-forward ->
``report.json`` / ``.html`` / ``.png`` (see :data:`EVALUATE_DESCRIPTION`; tables and plots:
:mod:`freqtrade_metastrategy.evaluation.report`). ``ope``: IPS, SNIPS, DM, DR and the logged
mean of a target policy (``static:PROFILE`` or ``uniform``) from a store's ledger.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from freqtrade_metastrategy.commands.shared import (
    add_strategy_arguments,
    load_export,
    parse_walk_forward,
    quiet_freqtrade,
    read_config,
    resolve_store_url,
    rich_console,
    run_with_freqtrade,
    strategy_config,
    walk_forward_splits,
)
from freqtrade_metastrategy.errors import MetaStrategyError
from freqtrade_metastrategy.evaluation.evidence import COMPARATOR, pick_default
from freqtrade_metastrategy.evaluation.metrics import Metrics, compute_metrics
from freqtrade_metastrategy.evaluation.outcomes import OutcomeTable
from freqtrade_metastrategy.evaluation.replay import (
    DEFAULT_LEARNERS,
    UNITS,
    ReplayResult,
    replay,
)
from freqtrade_metastrategy.evaluation.report import (
    fold_rows,
    json_safe,
    markdown_table,
    next_fixed_plan,
    num,
    side_by_side,
    summary_rows,
    write_html,
    write_png,
    year_rows,
)
from freqtrade_metastrategy.evaluation.specs import (
    CONFIGURED,
    DEFAULT_POLICY,
    FULL_INFO_CANDIDATES,
    configured_spec,
    default_policies,
    describe,
)
from freqtrade_metastrategy.evaluation.walkforward import (
    WalkForwardResult,
    WalkForwardRun,
    evaluate,
    walk_forward,
)
from freqtrade_metastrategy.store import open_store
from freqtrade_metastrategy.timerange import UtcRange, parse_timerange

__all__ = [
    "DEFAULT_OUT",
    "EVALUATE_DESCRIPTION",
    "add_evaluate_parser",
    "add_evidence_parser",
    "add_ope_parser",
    "cmd_evaluate",
    "cmd_evidence",
    "cmd_ope",
]

DEFAULT_OUT = Path("user_data") / "evaluation"

#: ``evaluate --help`` (argparse folds the lines).
EVALUATE_DESCRIPTION = """\
``evaluate``: entries of the config's strategy (:mod:`freqtrade_metastrategy.entries`) ->
counterfactual outcomes of every profile (:func:`~.evaluation.simulator.simulate`, ticks
inferred from the prices) -> replay of the default policies over the whole timerange and a
train/test walk-forward (:mod:`~.evaluation.walkforward`), per reward unit (with ``--unit
all`` the learners are replayed once per unit: each learns the unit it is evaluated in).
Writes ``report.json`` (every number), ``report.html`` (self-contained plotly) and
``report.png`` (cumulative reward per policy without ``oracle_trade``, drawn with matplotlib:
plotly's PNG export needs kaleido >= 1, which drives a Chrome browser; the kaleido 0.2.1 wheel
that bundled its own binary does not work with plotly 7)."""


# -- parsing -----------------------------------------------------------------------------------
def _split(args: argparse.Namespace, full: UtcRange) -> tuple[UtcRange, UtcRange]:
    if (args.train is None) != (args.test is None):
        raise MetaStrategyError("give both --train and --test, or neither")
    if args.train is not None:
        return parse_timerange(args.train), parse_timerange(args.test)
    mid = (full[0] + (full[1] - full[0]) / 2).floor("D")
    return (full[0], mid), (mid, full[1])


def _print_table(console: Any, title: str, header: Sequence[str],
                 rows: Sequence[Sequence[str]]) -> None:
    from rich.markup import escape
    from rich.table import Table

    # escape: policy names such as "eps_greedy[frozen]" are not rich markup
    table = Table(title=escape(title), title_justify="left")
    for i, h in enumerate(header):
        table.add_column(escape(h), justify="left" if i == 0 else "right", no_wrap=True)
    for r in rows:
        table.add_row(*(escape(c) for c in r))
    console.print(table)


# -- evaluate ----------------------------------------------------------------------------------
def cmd_evaluate(args: argparse.Namespace) -> int:
    """``evaluate`` (Freqtrade's own errors -- no strategy, bad config -- end as exit code 2)."""
    return run_with_freqtrade(_evaluate, args)


def _evaluate(args: argparse.Namespace) -> int:
    from rich.progress import Progress

    from freqtrade_metastrategy.entries import load_entries

    t0 = time.monotonic()
    console = rich_console()
    full_range = parse_timerange(args.timerange)
    train, test = _split(args, full_range)
    units = list(UNITS) if args.unit == "all" else [args.unit]
    rolling = parse_walk_forward(args)
    splits = walk_forward_splits(args, rolling, full_range)
    config = strategy_config(args)
    quiet_freqtrade()
    full: dict[str, ReplayResult] = {}
    metrics: dict[str, Metrics] = {}
    wfs: dict[str, WalkForwardResult] = {}
    rolls: dict[str, WalkForwardRun] = {}
    with Progress(console=console, transient=False) as prog:
        pairs = list(config.get("exchange", {}).get("pair_whitelist") or [])
        task = prog.add_task("load + analyse candles", total=max(len(pairs), 1))
        es = load_entries(config, args.timerange,
                          progress=lambda _p: prog.advance(task))
        quiet_freqtrade()
        if not es.entries:
            raise MetaStrategyError(f"no entry signal in {args.timerange}")
        task = prog.add_task(f"simulate {len(es.entries)} entries x {len(es.profiles)} "
                             "profiles", total=1)
        outcomes = es.simulated_outcomes()
        prog.advance(task)
        table = OutcomeTable.coerce(outcomes)
        specs = [*default_policies(table.profiles), configured_spec(es.ms_config)]
        task = prog.add_task("replay + walk-forward", total=(2 + bool(splits)) * len(units))
        for unit in units:
            full[unit] = replay(table, specs, unit=unit, seed=args.seed, profiles=es.profiles)
            metrics[unit] = compute_metrics(full[unit])
            prog.advance(task)
            wfs[unit] = evaluate(table, train=train, test=test, policies=specs, unit=unit,
                                 seed=args.seed, profiles=es.profiles)
            prog.advance(task)
            if splits:
                rolls[unit] = walk_forward(table, splits, policies=specs, unit=unit,
                                           seed=args.seed, profiles=es.profiles,
                                           skip_empty=True)
                prog.advance(task)

    n_entries = len(table)
    console.print(
        f"{es.strategy} {args.timerange}: {len(es.entries)} signals "
        f"({es.dropped_illiquid} illiquid dropped), {n_entries} simulated entries, "
        f"{len(es.profiles)} profiles, fee {es.fee}, seed {args.seed}; train "
        f"{train[0].date()}..{train[1].date()}, test {test[0].date()}..{test[1].date()}",
        markup=False,
    )
    tables: dict[str, Any] = {}
    for unit in units:
        wf = wfs[unit]
        for name, m, title in (
            ("full", metrics[unit], f"[{unit}] whole range {args.timerange} (in-sample)"),
            ("train", wf.train_metrics, f"[{unit}] train {train[0].date()}..{train[1].date()}"),
            ("test", wf.test_metrics, f"[{unit}] test {test[0].date()}..{test[1].date()} "
                                      f"(static_train_best = {wf.info['static_train_best']})"),
        ):
            h, rows = summary_rows(m)
            _print_table(console, title, h, rows)
            tables[f"{unit}/{name}"] = markdown_table(h, rows)
        h, rows = year_rows(metrics[unit])
        _print_table(console, f"[{unit}] per year", h, rows)
        tables[f"{unit}/by_year"] = markdown_table(h, rows)
        if unit in rolls:
            run = rolls[unit]
            for tr, te in run.skipped:
                console.print(f"[{unit}] walk-forward fold train {tr[0].date()}..{tr[1].date()}"
                              f" / test {te[0].date()}..{te[1].date()} skipped: no entry on one "
                              "side", markup=False)
            h, rows = fold_rows(run)
            _print_table(console, f"[{unit}] rolling walk-forward {args.walk_forward}"
                         f"{' (anchored)' if args.anchored else ''}: folds", h, rows)
            tables[f"{unit}/rolling_folds"] = markdown_table(h, rows)
            h, rows = summary_rows(run.oos_metrics)
            _print_table(console, f"[{unit}] rolling walk-forward: all test ranges "
                         "(out of sample)", h, rows)
            tables[f"{unit}/rolling_oos"] = markdown_table(h, rows)
    if len(units) > 1:
        h, rows = side_by_side(wfs, units)
        _print_table(console, "test range, the three units side by side", h, rows)
        tables["side_by_side/test"] = markdown_table(h, rows)

    plans: dict[str, str] = {}
    for unit in units:
        basis = _plan_basis(wfs[unit], rolls.get(unit), rolling)
        plans[unit] = next_fixed_plan(basis)
        console.print(
            f"[{unit}] fixed plan for after {basis.test_range[1].date()}: {plans[unit]} (best "
            f"static profile on {basis.test_range[0].date()}..{basis.test_range[1].date()}; the "
            f"walk-forward choice): \"metastrategy\": {{\"enabled\": false, "
            f"\"default_strategy\": \"{plans[unit]}\"}}", markup=False)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    report = {
        "meta": {
            "strategy": es.strategy, "timeframe": es.timeframe, "timerange": args.timerange,
            "train": [t.isoformat() for t in train], "test": [t.isoformat() for t in test],
            "units": units, "seed": args.seed, "fee": es.fee, "signals": len(es.entries),
            "signals_per_pair": es.signals, "illiquid_dropped": es.dropped_illiquid,
            "entries_simulated": n_entries, "profiles": list(es.profiles),
            "learners": {k: repr(v) for k, v in DEFAULT_LEARNERS.items()},
            "full_info": {k: v.to_dict() for k, v in FULL_INFO_CANDIDATES.items()},
            "configured_policy": {"name": CONFIGURED, **describe(specs[-1])},
            "default_policy": {"name": DEFAULT_POLICY,
                               **FULL_INFO_CANDIDATES[DEFAULT_POLICY].to_dict()},
            "cluster": "week",
            "next_fixed_plan": plans,
            "rolling": None if rolling is None else {
                "spec": args.walk_forward, "anchored": args.anchored,
                # every fold requested; units.<unit>.rolling.skipped lists those left out
                "folds": [[[t.isoformat() for t in tr], [t.isoformat() for t in te]]
                          for tr, te in splits]},
        },
        "units": {
            unit: {
                "full": metrics[unit].to_dict(),
                "full_info": {p: full[unit].info.get(p, {}) for p in full[unit].policies},
                "choice_counts": full[unit].choice_counts().to_dict(orient="index"),
                "walk_forward": wfs[unit].to_dict(),
                **({"rolling": rolls[unit].to_dict()} if unit in rolls else {}),
            } for unit in units
        },
        "markdown": tables,
    }
    (out / "report.json").write_text(json.dumps(json_safe(report), indent=1, allow_nan=False))
    # the plan for the unit the config's learner optimises, as a config overlay to trade it
    plan_unit = str((config.get("metastrategy") or {}).get("reward_unit", "r_atr"))
    plan_unit = plan_unit if plan_unit in plans else units[0]
    (out / "fixed_plan.json").write_text(json.dumps(
        {"metastrategy": {"enabled": False, "default_strategy": plans[plan_unit]}}, indent=1))
    console.print(f"to trade the fixed plan ({plan_unit}): add -c {out / 'fixed_plan.json'} "
                  "to your freqtrade command", markup=False)
    write_html(out / "report.html", full, f"freqtrade-metastrategy evaluation: {es.strategy} "
                                           f"{args.timerange}")
    why = write_png(out / "report.png", full)
    console.print(f"wrote {out / 'report.json'}, {out / 'report.html'}"
                  + (f"; {why}" if why else f", {out / 'report.png'}"), markup=False)
    console.print(f"wall time {time.monotonic() - t0:.1f} s")
    return 0


def _plan_basis(wf: WalkForwardResult, run: WalkForwardRun | None,
                rolling: tuple[str, str, str | None] | None) -> WalkForwardResult:
    """The test range the next fixed plan is chosen on: the latest rolling fold at least half
    as long as TEST (a clipped last fold of a day says little), else the ``--test`` range."""
    if run is None or rolling is None:
        return wf
    half = pd.Timedelta(rolling[1]) / 2
    full = [f for f in run.folds if f.test_range[1] - f.test_range[0] >= half]
    return full[-1] if full else wf


# -- ope ---------------------------------------------------------------------------------------
def _target(spec: str, profiles: Any) -> Callable[[Mapping[str, Any]], Mapping[str, float]]:
    """``--target``: ``uniform`` is uniform over the regime's candidate profiles (what the
    ``random`` policy does; the logging learners never choose outside them)."""
    from freqtrade_metastrategy.evaluation.ope import static_target, uniform_target
    from freqtrade_metastrategy.heuristics import candidates

    if spec == "uniform":
        return uniform_target(lambda ctx: candidates(profiles, str(ctx["regime"])))
    if spec.startswith("static:"):
        name = spec.split(":", 1)[1]
        if name not in profiles:
            raise MetaStrategyError(f"--target {spec}: unknown profile; known: "
                                    f"{', '.join(profiles)}")
        return static_target(name)
    raise MetaStrategyError(f"--target {spec!r}: expected static:PROFILE or uniform")


def _support_gap(log: pd.DataFrame, target: Callable[[Mapping[str, Any]], Mapping[str, float]],
                 profiles: Any) -> float:
    """Share of logged rows whose regime's candidates miss an action the target may take."""
    from freqtrade_metastrategy.heuristics import candidates

    out = 0
    for pair, regime in zip(log["pair"], log["regime"], strict=True):
        cands = set(candidates(profiles, str(regime)))
        dist = target({"pair": pair, "regime": regime})
        out += any(p > 0 and a not in cands for a, p in dist.items())
    return out / len(log) if len(log) else 0.0


def cmd_ope(args: argparse.Namespace) -> int:
    from freqtrade_metastrategy.config import MetaStrategyConfig
    from freqtrade_metastrategy.evaluation.ope import (
        drop_missing_probability,
        log_from_ledger,
        off_policy_evaluate,
    )

    ms = MetaStrategyConfig.from_freqtrade_config(read_config(args.config) if args.config
                                                  else {})
    target = _target(args.target, ms.profiles)
    if args.file:
        rows = load_export(args.file).ledger()
        where = str(args.file)
    else:
        url, user_data = resolve_store_url(args)
        if url is None and not (user_data / "metastrategy.sqlite").exists():
            raise MetaStrategyError(f"no store at {(user_data / 'metastrategy.sqlite')}")
        with open_store(url, user_data_dir=user_data) as store:
            rows = store.ledger()
            where = str(store.location)
    log, skipped = drop_missing_probability(log_from_ledger(rows))
    if log.empty:
        raise MetaStrategyError(
            f"{where}: no ledger row has a logging probability ({skipped} left out: trades "
            "adopted without decision data), nothing to evaluate" if skipped
            else f"{where}: the ledger is empty"
        )
    cluster = "week" if not bool(log["time"].isna().any()) else None
    res = off_policy_evaluate(log, target, cluster=cluster)
    gap = _support_gap(log, target, ms.profiles)
    if args.json:
        print(json.dumps(json_safe({"source": where, "target": args.target, "cluster": cluster,
                                    "support_gap": gap, "skipped_no_probability": skipped,
                                    **res.to_dict()}), indent=1))
        return 0
    console = rich_console()
    table = res.table().reset_index()
    header = [str(c) for c in table.columns]
    ints = {"n", "n_clusters"}
    body = [[str(r[0])] + [num(v, "{:.0f}" if c in ints else "{:+.4f}")
                           for c, v in zip(header[1:], r[1:], strict=True)]
            for r in table.itertuples(index=False, name=None)]
    _print_table(console, f"OPE of {args.target} from {where} ({res.n} logged trades, mean "
                          "reward per trade)", header, body)
    console.print(f"ESS {res.ess:.1f}, mean weight {res.mean_weight:.3f}, max weight "
                  f"{res.max_weight:.1f}, match rate {res.match_rate:.3f}, cluster {cluster}; "
                  f"reward model: {res.reward_model}", markup=False)
    if skipped:
        console.print(f"left out {skipped} ledger row(s) without a logging probability (trades "
                      "adopted without decision data)", markup=False)
    if gap > 0:
        console.print(
            f"warning: on {100 * gap:.1f}% of the logged trades the target puts probability on "
            "a profile outside the regime's candidates, which the project's learners never "
            "choose (logging probability 0): that part of the target is not identified from "
            "this log and the IPS/SNIPS/DR estimates miss it.",
            markup=False,
        )
    return 0


def cmd_evidence(args: argparse.Namespace) -> int:
    """``evidence NAME=report.json ...``: the default-policy rule over walk-forward reports."""
    reports: dict[str, Any] = {}
    for item in args.reports:
        name, sep, path = str(item).partition("=")
        if not sep or not name or not path:
            raise MetaStrategyError(f"{item!r}: expected NAME=PATH/report.json (e.g. "
                                    "breakout=user_data/evaluation/report.json)")
        try:
            reports[name] = json.loads(Path(path).read_text())
        except (OSError, ValueError) as exc:
            raise MetaStrategyError(f"{name}: cannot read {path}: {exc}") from None
    ev = pick_default(reports, args.unit)
    console = rich_console()
    signals = list(reports)
    header = ["policy", "eligible", "sum", *[f"{s} total" for s in signals],
              *[f"{s} regret vs {COMPARATOR}" for s in signals]]
    rows = []
    order = sorted(ev.totals, key=lambda p: -sum(ev.totals[p].values()))
    for p in order:
        rs = ev.regret.get(p, {})
        rows.append([p + (" <- default" if p == ev.chosen else ""),
                     "yes" if p in ev.eligible else "no", num(sum(ev.totals[p].values())),
                     *[num(ev.totals[p].get(s, float("nan"))) for s in signals],
                     *[f"{num(rs[s][0])} ± {num(rs[s][1], '{:.1f}')}" if s in rs else "-"
                       for s in signals]])
    _print_table(console, f"[{args.unit}] out-of-sample totals and the default-policy rule",
                 header, rows)
    console.print(f"default policy by the rule: {ev.chosen}", markup=False)
    if args.out:
        Path(args.out).write_text(json.dumps(json_safe(ev.to_dict()), indent=1))
    if args.markdown:
        console.print(markdown_table(header, rows), markup=False)
    return 0


# -- argparse ----------------------------------------------------------------------------------
def add_evaluate_parser(sub: Any) -> None:
    p = sub.add_parser(
        "evaluate", help="offline evaluation of profile selection on a strategy's signals",
        description=EVALUATE_DESCRIPTION,
    )
    add_strategy_arguments(p)
    p.add_argument("--train", help="train range (default: first half of --timerange)")
    p.add_argument("--test", help="test range (default: second half of --timerange)")
    p.add_argument("--walk-forward", metavar="TRAIN:TEST[:STEP]",
                   help="also a rolling walk-forward over --timerange, e.g. 365D:365D (train on "
                        "a year, test on the next, step a year); learners start empty per fold")
    p.add_argument("--anchored", action="store_true",
                   help="with --walk-forward: expanding train windows from the start")
    p.add_argument("--unit", default="r_atr", choices=[*UNITS, "all"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=str(DEFAULT_OUT))
    p.set_defaults(func=cmd_evaluate)


def add_evidence_parser(sub: Any) -> None:
    p = sub.add_parser(
        "evidence", help="which policy is the default: the rule over walk-forward reports",
        description="Apply the default-policy rule (freqtrade_metastrategy.evaluation.evidence) "
                    "to one evaluate --walk-forward report.json per entry signal.")
    p.add_argument("reports", nargs="+", metavar="NAME=REPORT",
                   help="signal name and its report.json, e.g. breakout=out/report.json")
    p.add_argument("--unit", default="r_atr", choices=list(UNITS))
    p.add_argument("--out", help="write the rule's inputs and answer as JSON")
    p.add_argument("--markdown", action="store_true", help="also print the table as markdown")
    p.set_defaults(func=cmd_evidence)


def add_ope_parser(sub: Any) -> None:
    p = sub.add_parser("ope", help="off-policy estimate of a target policy from a ledger")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--store", help="SQLAlchemy URL of the store (or 'memory')")
    where.add_argument("--file", help="an exported JSON file (e.g. a backtest's qtable.json)")
    where.add_argument("-c", "--config", help="Freqtrade config with a 'metastrategy' section")
    p.add_argument("--target", required=True, help="static:PROFILE or uniform")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_ope)
