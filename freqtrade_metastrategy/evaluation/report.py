"""The evaluation report's tables and plots (used by ``freqtrade-metastrategy evaluate``).

Tables are (header, rows) of strings, printed with rich by the command and kept as markdown in
``report.json``. Plots: cumulative reward and regret against ``best_static`` are drawn in
decision order (entries by ``signal_time``; x = signal time) on the whole timerange. "Q-values
over time" of the default learner (``eps_greedy``) are reconstructed from its own decisions:
per (regime, profile), the exponential average (alpha of the learner, first reward taken as
is) of the rewards of the trades it chose, pooled over pairs, at their exit times -- what its
Q-table cells hold, pooled over pairs. ``report.html`` is self-contained plotly;
``report.png`` is drawn with matplotlib (plotly's PNG export needs kaleido >= 1, which drives a
Chrome browser).

>>> num(1.5), num(None), num(float("nan")), num(3, "{:.0f}")
('+1.50', '-', 'nan', '3')
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from freqtrade_metastrategy.evaluation.metrics import Metrics
from freqtrade_metastrategy.evaluation.replay import ReplayResult
from freqtrade_metastrategy.evaluation.specs import DEFAULT_LEARNERS
from freqtrade_metastrategy.evaluation.walkforward import WalkForwardResult, WalkForwardRun

__all__ = [
    "DEFAULT_LEARNER",
    "FOLD_POLICIES",
    "PLOT_TITLES",
    "fold_rows",
    "json_safe",
    "markdown_table",
    "next_fixed_plan",
    "num",
    "q_history",
    "side_by_side",
    "summary_rows",
    "write_html",
    "write_png",
    "year_rows",
]

DEFAULT_LEARNER = "eps_greedy"
PLOT_TITLES = (
    "Cumulative reward per policy",
    "Regret vs best static",
    "Regime mix",
    "Q-values per regime over time",
)


#: Policies shown per fold of a rolling walk-forward (all of them are in report.json).
FOLD_POLICIES = ("eps_greedy[frozen]", "eps_greedy[online]", "random", "static_train_best",
                 "regime_train_best", "best_static")


def next_fixed_plan(wf: WalkForwardResult) -> str:
    """The static profile with the best total on the test range: what ``static_train_best``
    would trade in the period after it."""
    summary = wf.test_metrics.summary
    statics = summary[[str(p).startswith("static:") for p in summary.index]]
    return str(statics["total"].astype(float).idxmax()).removeprefix("static:")


def fold_rows(run: WalkForwardRun) -> tuple[list[str], list[list[str]]]:
    """One row per fold: test range, the train-best profile, test totals of key policies."""
    header = ["fold", "test", "static_train_best", *(f"{p} total" for p in FOLD_POLICIES)]
    rows = []
    for k, fold in enumerate(run.folds):
        summary = fold.test_metrics.summary
        a, b = fold.test_range
        rows.append([str(k), f"{a.date()}..{b.date()}", str(fold.info["static_train_best"]),
                     *(num(summary.loc[p, "total"]) if p in summary.index else "-"
                       for p in FOLD_POLICIES)])
    return header, rows


# -- rendering helpers -------------------------------------------------------------------------
def num(x: Any, fmt: str = "{:+.2f}") -> str:
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
    return f"{num(r['regret_total'])} ± {num(r['se_total_clustered'], '{:.2f}')}"


def _se_ratio(m: Metrics, policy: str) -> str:
    sel = m.regret[(m.regret["policy"] == policy) & (m.regret["comparator"] == m.comparators[0])]
    return "-" if sel.empty else num(sel.iloc[0]["se_ratio"], "{:.2f}")


def summary_rows(m: Metrics) -> tuple[list[str], list[list[str]]]:
    """Header and rows of a policy table (regret: total ± week-clustered SE of the total)."""
    header = ["policy", "entries", "traded %", "total", "mean", "Sharpe", "win %", "max DD"]
    header += [f"regret vs {c}" for c in m.comparators]
    header.append(f"SE ratio ({m.comparators[0]})" if m.comparators else "SE ratio")
    rows = []
    for policy, r in m.summary.iterrows():
        p = str(policy)
        share = 100 * float(r["traded"]) / float(r["trades"]) if r["trades"] else float("nan")
        row = [p, str(int(r["trades"])), num(share, "{:.0f}"), num(r["total"]),
               num(r["mean"], "{:+.3f}"),
               num(r["sharpe"], "{:+.3f}"), num(100 * float(r["win_rate"]), "{:.1f}"),
               num(r["max_drawdown"], "{:.2f}")]
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
        row = [str(policy)] + [num(sub.loc[y, "total"]) if y in sub.index else "-"
                               for y in years]
        if comp:
            row += [
                f"{num(sub.loc[y, f'regret[{comp}]'])} ± "
                f"{num(sub.loc[y, f'regret_se[{comp}]'], '{:.2f}')}" if y in sub.index else "-"
                for y in years
            ]
        rows.append(row)
    return header, rows


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
def json_safe(x: Any) -> Any:
    """JSON-ready: numpy scalars to Python, NaN/inf to None, timestamps to ISO strings."""
    if isinstance(x, Mapping):
        return {str(k): json_safe(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [json_safe(v) for v in x]
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
            row += [num(tot), _regret_cell(m, str(policy), "static_train_best")]
        rows.append(row)
    return header, rows
