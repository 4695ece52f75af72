"""The ``evaluate`` and ``ope`` subcommands of ``freqtrade-metastrategy``.

``evaluate``: entries of the config's strategy (:mod:`freqtrade_metastrategy.entries`) ->
counterfactual outcomes of every profile (:func:`~.evaluation.simulator.simulate`, ticks
inferred from the prices) -> replay of the default policies over the whole timerange and a
train/test walk-forward (:mod:`~.evaluation.walkforward`), per reward unit (with ``--unit
all`` the learners are replayed once per unit: each learns the unit it is evaluated in).
Writes ``report.json`` (every number), ``report.html`` (self-contained plotly) and
``report.png`` (cumulative reward per policy without ``oracle_trade``, drawn with matplotlib:
plotly's PNG export needs kaleido >= 1, which drives a Chrome browser; the kaleido 0.2.1 wheel
that bundled its own binary does not work with plotly 7).

Plots: cumulative reward and regret against ``best_static`` are drawn in decision order
(entries by ``signal_time``; x = signal time) on the whole timerange. "Q-values over time" of
the default learner (``eps_greedy``) are reconstructed from its own decisions: per (regime,
profile), the exponential average (alpha of the learner, first reward taken as is) of the
rewards of the trades it chose, pooled over pairs, at their exit times -- what its Q-table
cells hold, pooled over pairs.

``ope``: off-policy estimates (IPS, SNIPS, DM, DR, and the logged policy's own mean) of a target
policy from a store's ledger (``--store URL``, ``--file EXPORT.json`` or ``-c CONFIG``).
``uniform`` is uniform over the regime's candidate profiles (what the ``random`` policy
does; the logging learners never choose outside them).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from freqtrade_metastrategy.errors import MetaStrategyError
from freqtrade_metastrategy.evaluation.metrics import Metrics, compute_metrics
from freqtrade_metastrategy.evaluation.replay import (
    DEFAULT_LEARNERS,
    UNITS,
    ReplayResult,
    replay,
)
from freqtrade_metastrategy.evaluation.simulator import infer_tick_sizes, simulate
from freqtrade_metastrategy.evaluation.walkforward import WalkForwardResult, evaluate

__all__ = ["add_evaluate_parser", "add_ope_parser", "cmd_evaluate", "cmd_ope"]

DEFAULT_OUT = Path("user_data") / "evaluation"
DEFAULT_LEARNER = "eps_greedy"
PLOT_TITLES = (
    "Cumulative reward per policy",
    "Regret vs best static",
    "Regime mix",
    "Q-values per regime over time",
)


# -- parsing -----------------------------------------------------------------------------------
def _ts_range(text: str) -> tuple[pd.Timestamp, pd.Timestamp]:
    try:
        a, b = text.split("-")
        start = pd.Timestamp(a, tz="UTC")
        end = pd.Timestamp(b, tz="UTC")
    except ValueError as exc:
        raise MetaStrategyError(f"timerange {text!r}: expected YYYYMMDD-YYYYMMDD") from exc
    if end <= start:
        raise MetaStrategyError(f"timerange {text!r}: the end must be after the start")
    return start, end


def _split(
    args: argparse.Namespace, full: tuple[pd.Timestamp, pd.Timestamp]
) -> tuple[tuple[pd.Timestamp, pd.Timestamp], tuple[pd.Timestamp, pd.Timestamp]]:
    if (args.train is None) != (args.test is None):
        raise MetaStrategyError("give both --train and --test, or neither")
    if args.train is not None:
        return _ts_range(args.train), _ts_range(args.test)
    mid = (full[0] + (full[1] - full[0]) / 2).floor("D")
    return (full[0], mid), (mid, full[1])


# -- rendering helpers -------------------------------------------------------------------------
def _num(x: Any, fmt: str = "{:+.2f}") -> str:
    if x is None:
        return "-"
    try:
        v = float(x)
    except (TypeError, ValueError):
        return str(x)
    return "nan" if not math.isfinite(v) else fmt.format(v)


def _regret_cell(m: Metrics, policy: str, comp: str) -> str:
    sel = m.regret[(m.regret["policy"] == policy) & (m.regret["comparator"] == comp)]
    if sel.empty:
        return "-"
    r = sel.iloc[0]
    return f"{_num(r['regret_total'])} ± {_num(r['se_total_clustered'], '{:.2f}')}"


def _se_ratio(m: Metrics, policy: str) -> str:
    sel = m.regret[(m.regret["policy"] == policy) & (m.regret["comparator"] == m.comparators[0])]
    return "-" if sel.empty else _num(sel.iloc[0]["se_ratio"], "{:.2f}")


def summary_rows(m: Metrics) -> tuple[list[str], list[list[str]]]:
    """Header and rows of a policy table (regret: total ± week-clustered SE of the total)."""
    header = ["policy", "trades", "total", "mean", "Sharpe", "win %", "max DD"]
    header += [f"regret vs {c}" for c in m.comparators]
    header.append(f"SE ratio ({m.comparators[0]})" if m.comparators else "SE ratio")
    rows = []
    for policy, r in m.summary.iterrows():
        p = str(policy)
        row = [p, str(int(r["trades"])), _num(r["total"]), _num(r["mean"], "{:+.3f}"),
               _num(r["sharpe"], "{:+.3f}"), _num(100 * float(r["win_rate"]), "{:.1f}"),
               _num(r["max_drawdown"], "{:.2f}")]
        row += [_regret_cell(m, p, c) for c in m.comparators]
        row.append(_se_ratio(m, p) if m.comparators else "-")
        rows.append(row)
    return header, rows


def year_rows(m: Metrics) -> tuple[list[str], list[list[str]]]:
    """Total per policy and calendar year."""
    by = m.by_year
    years = sorted(int(y) for y in by["year"].unique())
    comp = m.comparators[0] if m.comparators else None
    header = ["policy"] + [f"{y} total" for y in years]
    if comp:
        header += [f"{y} regret vs {comp}" for y in years]
    rows = []
    for policy in m.summary.index:
        sub = by[by["policy"] == policy].set_index("year")
        row = [str(policy)] + [_num(sub.loc[y, "total"]) if y in sub.index else "-"
                               for y in years]
        if comp:
            row += [
                f"{_num(sub.loc[y, f'regret[{comp}]'])} ± "
                f"{_num(sub.loc[y, f'regret_se[{comp}]'], '{:.2f}')}" if y in sub.index else "-"
                for y in years
            ]
        rows.append(row)
    return header, rows


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


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """The same table as GitHub markdown (for READMEs).

    >>> print(markdown_table(["a", "b"], [["x", "1"]]))
    | a | b |
    |---|---:|
    | x | 1 |
    """
    out = ["| " + " | ".join(header) + " |",
           "|" + "|".join("---" if i == 0 else "---:" for i in range(len(header))) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(out)


# -- JSON --------------------------------------------------------------------------------------
def _clean(x: Any) -> Any:
    """JSON-ready: numpy scalars to Python, NaN/inf to None, timestamps to ISO strings."""
    if isinstance(x, Mapping):
        return {str(k): _clean(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_clean(v) for v in x]
    if isinstance(x, np.generic):
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, pd.Timestamp):
        return x.isoformat()
    return x


# -- plots -------------------------------------------------------------------------------------
def _curves(res: ReplayResult) -> tuple[pd.DatetimeIndex, dict[str, np.ndarray[Any, Any]]]:
    times = pd.DatetimeIndex(res.table.entries["signal_time"])
    return times, {p: np.cumsum(res.rewards(p)) for p in res.policies}


def q_history(res: ReplayResult, learner: str, alpha: float) -> pd.DataFrame:
    """Reconstructed pooled Q-values of ``learner``: one row per settled reward (columns
    ``time``, ``regime``, ``profile``, ``q``); see module doc."""
    d = res.decisions(learner).sort_values(["exit_time", "signal_time"], kind="stable")
    q: dict[tuple[str, str], float] = {}
    rows = []
    for t, regime, prof, r in zip(d["exit_time"], d["regime"].astype(str),
                                  d["profile"].astype(str), d["reward"], strict=True):
        key = (regime, prof)
        q[key] = float(r) if key not in q else (1 - alpha) * q[key] + alpha * float(r)
        rows.append({"time": t, "regime": regime, "profile": prof, "q": q[key]})
    return pd.DataFrame(rows, columns=["time", "regime", "profile", "q"])


def _html_figures(results: Mapping[str, ReplayResult]) -> list[Any]:
    import plotly.graph_objects as go  # type: ignore[import-untyped]
    from plotly.subplots import make_subplots  # type: ignore[import-untyped]

    figs: list[Any] = []
    for unit, res in results.items():
        times, cum = _curves(res)
        fig = go.Figure()
        for p, y in cum.items():
            # the per-trade oracle dwarfs everything else: hidden until clicked in the legend
            fig.add_trace(go.Scatter(x=times, y=y, mode="lines", name=p,
                                     visible="legendonly" if p == "oracle_trade" else True))
        fig.update_layout(title=f"{PLOT_TITLES[0]} ({unit})", xaxis_title="signal time",
                          yaxis_title=f"cumulative {unit}", height=550)
        figs.append(fig)
        fig = go.Figure()
        best = res.rewards("best_static")
        for p in res.policies:
            if res.kinds[p] == "hindsight":
                continue
            fig.add_trace(go.Scatter(x=times, y=np.cumsum(best - res.rewards(p)),
                                     mode="lines", name=p))
        fig.update_layout(title=f"{PLOT_TITLES[1]} ({unit}; best static = "
                                f"{res.info['best_static']['profile']})",
                          xaxis_title="signal time", yaxis_title=f"cumulative regret ({unit})",
                          height=550)
        figs.append(fig)
    first = next(iter(results.values()))
    ent = first.table.entries
    month = pd.DatetimeIndex(ent["signal_time"]).tz_localize(None).to_period("M").astype(str)
    mix = pd.crosstab(month, ent["regime"].astype(str).to_numpy())
    fig = go.Figure([go.Bar(x=mix.index, y=mix[c], name=str(c)) for c in mix.columns])
    fig.update_layout(barmode="stack", title=f"{PLOT_TITLES[2]} (entries per month)",
                      height=450)
    figs.append(fig)
    alpha = DEFAULT_LEARNERS[DEFAULT_LEARNER].alpha
    for unit, res in results.items():
        if DEFAULT_LEARNER not in res.policies:
            continue
        hist = q_history(res, DEFAULT_LEARNER, alpha)
        regimes = sorted(hist["regime"].unique())
        if not regimes:
            continue
        fig = make_subplots(rows=len(regimes), cols=1, shared_xaxes=True,
                            subplot_titles=regimes, vertical_spacing=0.04)
        profiles = list(res.table.profiles)
        for i, regime in enumerate(regimes, start=1):
            sub = hist[hist["regime"] == regime]
            for j, prof in enumerate(profiles):
                s = sub[sub["profile"] == prof]
                if s.empty:
                    continue
                fig.add_trace(go.Scatter(x=s["time"], y=s["q"], mode="lines", name=prof,
                                         legendgroup=prof, showlegend=i == 1,
                                         line={"shape": "hv"},
                                         marker={"color": f"hsl({j * 360 // len(profiles)},"
                                                          "60%,45%)"}), row=i, col=1)
        fig.update_layout(title=f"{PLOT_TITLES[3]} ({DEFAULT_LEARNER}, {unit}; pooled over "
                                "pairs, reconstructed)", height=260 * len(regimes) + 120)
        figs.append(fig)
    return figs


def write_html(path: Path, results: Mapping[str, ReplayResult], title: str) -> None:
    figs = _html_figures(results)
    parts = [f.to_html(include_plotlyjs=(i == 0), full_html=False) for i, f in enumerate(figs)]
    path.write_text(
        "<!DOCTYPE html>\n<html><head><meta charset='utf-8'>"
        f"<title>{title}</title></head><body>\n<h1>{title}</h1>\n"
        + "\n".join(parts) + "\n</body></html>\n"
    )


def write_png(path: Path, results: Mapping[str, ReplayResult]) -> str | None:
    """Cumulative reward per policy, one panel per unit (matplotlib); the reason if skipped."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed (pip install matplotlib): report.png skipped"
    fig, axes = plt.subplots(len(results), 1, figsize=(12, 5 * len(results)), squeeze=False)
    for ax, (unit, res) in zip(axes[:, 0], results.items(), strict=True):
        times, cum = _curves(res)
        for p, y in cum.items():
            if p == "oracle_trade":  # its scale would flatten every other curve
                continue
            ax.plot(times.tz_localize(None), y, label=p,
                    linestyle="--" if res.kinds[p] == "hindsight" else "-", linewidth=1)
        ax.set_title(f"{PLOT_TITLES[0]} ({unit}; oracle_trade not drawn)")
        ax.set_ylabel(f"cumulative {unit}")
        ax.grid(alpha=0.3)
    axes[0, 0].legend(fontsize=7, ncol=3, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return None


# -- evaluate ----------------------------------------------------------------------------------
def _quiet_freqtrade() -> None:
    for name in ("freqtrade", "freqtrade_metastrategy"):
        logging.getLogger(name).setLevel(logging.WARNING)


def _console() -> Any:
    from rich.console import Console

    console = Console()
    if not console.is_terminal:  # piped / captured: do not squeeze the tables into 80 columns
        console = Console(width=240)
    return console


def cmd_evaluate(args: argparse.Namespace) -> int:
    """``evaluate`` (Freqtrade's own errors -- no strategy, bad config -- end as exit code 2)."""
    from freqtrade.exceptions import FreqtradeException

    try:
        return _evaluate(args)
    except FreqtradeException as exc:
        raise MetaStrategyError(f"freqtrade: {exc}") from exc


def _evaluate(args: argparse.Namespace) -> int:
    from rich.progress import Progress

    from freqtrade_metastrategy.entries import load_config, load_entries

    t0 = time.monotonic()
    console = _console()
    full_range = _ts_range(args.timerange)
    train, test = _split(args, full_range)
    units = list(UNITS) if args.unit == "all" else [args.unit]
    config = load_config(args.config, strategy=args.strategy, strategy_path=args.strategy_path,
                         datadir=args.datadir)
    _quiet_freqtrade()
    full: dict[str, ReplayResult] = {}
    metrics: dict[str, Metrics] = {}
    wfs: dict[str, WalkForwardResult] = {}
    with Progress(console=console, transient=False) as prog:
        pairs = list(config.get("exchange", {}).get("pair_whitelist") or [])
        task = prog.add_task("load + analyse candles", total=max(len(pairs), 1))
        es = load_entries(config, args.timerange,
                          progress=lambda _p: prog.advance(task))
        _quiet_freqtrade()
        if not es.entries:
            raise MetaStrategyError(f"no entry signal in {args.timerange}")
        task = prog.add_task(f"simulate {len(es.entries)} entries x {len(es.profiles)} "
                             "profiles", total=1)
        outcomes = simulate(es.candles, es.entries, dict(es.profiles), fee=es.fee,
                            tick_size=infer_tick_sizes(es.candles))
        prog.advance(task)
        task = prog.add_task("replay + walk-forward", total=2 * len(units))
        for unit in units:
            full[unit] = replay(outcomes, unit=unit, seed=args.seed, profiles=es.profiles)
            metrics[unit] = compute_metrics(full[unit])
            prog.advance(task)
            wfs[unit] = evaluate(outcomes, train=train, test=test, unit=unit, seed=args.seed,
                                 profiles=es.profiles)
            prog.advance(task)

    n_entries = int(outcomes["entry_id"].nunique())
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
    if len(units) > 1:
        h, rows = side_by_side(wfs, units)
        _print_table(console, "test range, the three units side by side", h, rows)
        tables["side_by_side/test"] = markdown_table(h, rows)

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
            "cluster": "week",
        },
        "units": {
            unit: {
                "full": metrics[unit].to_dict(),
                "full_info": {p: full[unit].info.get(p, {}) for p in full[unit].policies},
                "choice_counts": full[unit].choice_counts().to_dict(orient="index"),
                "walk_forward": wfs[unit].to_dict(),
            } for unit in units
        },
        "markdown": tables,
    }
    (out / "report.json").write_text(json.dumps(_clean(report), indent=1, allow_nan=False))
    write_html(out / "report.html", full, f"freqtrade-metastrategy evaluation: {es.strategy} "
                                           f"{args.timerange}")
    why = write_png(out / "report.png", full)
    console.print(f"wrote {out / 'report.json'}, {out / 'report.html'}"
                  + (f"; {why}" if why else f", {out / 'report.png'}"), markup=False)
    console.print(f"wall time {time.monotonic() - t0:.1f} s")
    return 0


def side_by_side(wfs: Mapping[str, WalkForwardResult],
                 units: Sequence[str]) -> tuple[list[str], list[list[str]]]:
    """Test-range total and regret vs ``static_train_best`` per unit."""
    header = ["policy"]
    for u in units:
        header += [f"{u} total", f"{u} regret vs static_train_best"]
    first = wfs[units[0]].test_metrics
    rows = []
    for policy in first.summary.index:
        row = [str(policy)]
        for u in units:
            m = wfs[u].test_metrics
            tot = m.summary["total"].get(policy)
            row += [_num(tot), _regret_cell(m, str(policy), "static_train_best")]
        rows.append(row)
    return header, rows


# -- ope ---------------------------------------------------------------------------------------
def _target(spec: str, profiles: Any) -> Callable[[Mapping[str, Any]], Mapping[str, float]]:
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
    from freqtrade_metastrategy.cli import _read_config, resolve_store_url
    from freqtrade_metastrategy.config import MetaStrategyConfig
    from freqtrade_metastrategy.evaluation.ope import log_from_ledger, off_policy_evaluate
    from freqtrade_metastrategy.store import MemoryStore, open_store

    ms = MetaStrategyConfig.from_freqtrade_config(_read_config(args.config) if args.config
                                                  else {})
    target = _target(args.target, ms.profiles)
    if args.file:
        mem = MemoryStore()
        mem.import_json(args.file)
        rows = mem.ledger()
        where = str(args.file)
    else:
        url, user_data = resolve_store_url(args)
        if url is None and not (user_data / "metastrategy.sqlite").exists():
            raise MetaStrategyError(f"no store at {(user_data / 'metastrategy.sqlite')}")
        with open_store(url, user_data_dir=user_data) as store:
            rows = store.ledger()
            where = str(store.location)
    log = log_from_ledger(rows)
    if log.empty:
        raise MetaStrategyError(f"{where}: the ledger is empty")
    cluster = "week" if not bool(log["time"].isna().any()) else None
    res = off_policy_evaluate(log, target, cluster=cluster)
    gap = _support_gap(log, target, ms.profiles)
    if args.json:
        print(json.dumps(_clean({"source": where, "target": args.target, "cluster": cluster,
                                 "support_gap": gap, **res.to_dict()}), indent=1))
        return 0
    console = _console()
    table = res.table().reset_index()
    header = [str(c) for c in table.columns]
    ints = {"n", "n_clusters"}
    body = [[str(r[0])] + [_num(v, "{:.0f}" if c in ints else "{:+.4f}")
                           for c, v in zip(header[1:], r[1:], strict=True)]
            for r in table.itertuples(index=False, name=None)]
    _print_table(console, f"OPE of {args.target} from {where} ({res.n} logged trades, mean "
                          "reward per trade)", header, body)
    console.print(f"ESS {res.ess:.1f}, mean weight {res.mean_weight:.3f}, max weight "
                  f"{res.max_weight:.1f}, match rate {res.match_rate:.3f}, cluster {cluster}; "
                  f"reward model: {res.reward_model}", markup=False)
    if gap > 0:
        console.print(
            f"warning: on {100 * gap:.1f}% of the logged trades the target puts probability on "
            "a profile outside the regime's candidates, which the project's learners never "
            "choose (logging probability 0): that part of the target is not identified from "
            "this log and the IPS/SNIPS/DR estimates miss it.",
            markup=False,
        )
    return 0


# -- argparse ----------------------------------------------------------------------------------
def add_evaluate_parser(sub: Any) -> None:
    p = sub.add_parser(
        "evaluate", help="offline evaluation of profile selection on a strategy's signals",
        description=__doc__.split("\n\n")[1] if __doc__ else None,
    )
    p.add_argument("-c", "--config", action="append", required=True,
                   help="Freqtrade config file (repeatable, merged like freqtrade's -c)")
    p.add_argument("--strategy")
    p.add_argument("--strategy-path")
    p.add_argument("--datadir")
    p.add_argument("--timerange", required=True, help="YYYYMMDD-YYYYMMDD")
    p.add_argument("--train", help="train range (default: first half of --timerange)")
    p.add_argument("--test", help="test range (default: second half of --timerange)")
    p.add_argument("--unit", default="r_atr", choices=[*UNITS, "all"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=str(DEFAULT_OUT))
    p.set_defaults(func=cmd_evaluate)


def add_ope_parser(sub: Any) -> None:
    p = sub.add_parser("ope", help="off-policy estimate of a target policy from a ledger")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--store", help="SQLAlchemy URL of the store (or 'memory')")
    where.add_argument("--file", help="an exported JSON file (e.g. a backtest's qtable.json)")
    where.add_argument("-c", "--config", help="Freqtrade config with a 'metastrategy' section")
    p.add_argument("--target", required=True, help="static:PROFILE or uniform")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_ope)
