"""Which policy is the default: the rule, fixed before the out-of-sample evidence was read.

Input: one ``evaluate --walk-forward`` report per entry signal (``report.json``). For each, the
out-of-sample summary and regrets of the rolling walk-forward (``units.<unit>.rolling.oos``).

Rule (issue 12, written down before the development-set runs):

1. **Eligible**: every causal selection policy the reports replayed -- learners (frozen and
   online), full-information policies, the walk-forward static, uniform random and the
   train-range baselines (``static_train_best``: last year's best static profile;
   ``regime_train_best``) -- but not the fixed ``static:<profile>`` policies (choosing a fixed
   profile by its out-of-sample total would be hindsight) nor the hindsight baselines.
2. **Not worse by more than noise**: on *every* signal, the policy trails last year's best
   static profile (``static_train_best``) by less than one week-clustered standard error:
   ``regret_total < se_total_clustered`` (a policy that beats it qualifies).
3. **Best**: among those, the highest out-of-sample total summed over the signals;
   ``static_train_best`` itself is always eligible, so if nothing beats it, it is the answer.

>>> def report(totals, regrets):
...     summary = [{"policy": p, "kind": k, "total": t} for p, (k, t) in totals.items()]
...     regret = [{"policy": p, "comparator": "static_train_best", "regret_total": r,
...                "se_total_clustered": s} for p, (r, s) in regrets.items()]
...     return {"units": {"r_atr": {"rolling": {"oos": {"summary": summary, "regret": regret}}}}}
>>> a = report({"static_train_best": ("train_hindsight", -10.0), "x": ("full_info", 5.0),
...             "static:scalp": ("static", 50.0)}, {"x": (-15.0, 20.0), "static:scalp": (-60, 9)})
>>> b = report({"static_train_best": ("train_hindsight", -3.0), "x": ("full_info", -2.0),
...             "static:scalp": ("static", 9.0)}, {"x": (-1.0, 30.0), "static:scalp": (-12, 9)})
>>> e = pick_default({"breakout": a, "rsi": b})
>>> e.chosen, e.eligible     # static:scalp is never eligible (hindsight)
('x', ('static_train_best', 'x'))
>>> b["units"]["r_atr"]["rolling"]["oos"]["regret"][0]["regret_total"] = 31.0  # x trails by > 1 SE
>>> pick_default({"breakout": a, "rsi": b}).chosen
'static_train_best'
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from freqtrade_metastrategy.errors import EvaluationError

__all__ = ["COMPARATOR", "ELIGIBLE_KINDS", "Evidence", "pick_default"]

COMPARATOR: Final = "static_train_best"
#: Policy kinds that may become the default (see the module doc).
ELIGIBLE_KINDS: Final = frozenset({"learner", "full_info", "walk_forward", "random",
                                   "train_hindsight"})


@dataclass(frozen=True)
class Evidence:
    """The rule's inputs and answer: per policy, the totals and regrets per signal."""

    chosen: str
    eligible: tuple[str, ...]
    totals: Mapping[str, Mapping[str, float]]  # policy -> signal -> total
    regret: Mapping[str, Mapping[str, tuple[float, float]]]  # policy -> signal -> (regret, se)

    def to_dict(self) -> dict[str, Any]:
        return {"chosen": self.chosen, "eligible": list(self.eligible),
                "totals": {p: dict(v) for p, v in self.totals.items()},
                "regret": {p: {s: list(rs) for s, rs in v.items()}
                           for p, v in self.regret.items()}}


def _oos(report: Mapping[str, Any], unit: str, signal: str) -> Mapping[str, Any]:
    try:
        oos: Mapping[str, Any] = report["units"][unit]["rolling"]["oos"]
    except (KeyError, TypeError):
        raise EvaluationError(f"{signal}: the report has no rolling walk-forward in {unit!r} "
                              "(run evaluate with --walk-forward TRAIN:TEST)") from None
    return oos


def pick_default(reports: Mapping[str, Mapping[str, Any]], unit: str = "r_atr") -> Evidence:
    """Apply the rule (module doc) to ``{signal name: report.json content}``."""
    if not reports:
        raise EvaluationError("pick_default: no report")
    totals: dict[str, dict[str, float]] = {}
    kinds: dict[str, str] = {}
    regret: dict[str, dict[str, tuple[float, float]]] = {}
    for signal, rep in reports.items():
        oos = _oos(rep, unit, signal)
        for row in oos["summary"]:
            totals.setdefault(row["policy"], {})[signal] = float(row["total"])
            kinds[row["policy"]] = str(row["kind"])
        for row in oos["regret"]:
            if row["comparator"] == COMPARATOR:
                se = row["se_total_clustered"]
                regret.setdefault(row["policy"], {})[signal] = (
                    float(row["regret_total"]), math.nan if se is None else float(se))
        regret.setdefault(COMPARATOR, {})[signal] = (0.0, 0.0)
    signals = list(reports)
    eligible = []
    for policy, per_signal in totals.items():
        if kinds.get(policy) not in ELIGIBLE_KINDS or len(per_signal) != len(signals):
            continue
        rs = regret.get(policy, {})
        if policy == COMPARATOR or all(
            s in rs and rs[s][0] < rs[s][1] for s in signals
        ):
            eligible.append(policy)
    if COMPARATOR not in eligible:
        raise EvaluationError(f"the reports have no {COMPARATOR} on every signal")
    best = max(eligible, key=lambda p: (sum(totals[p].values()), p == COMPARATOR))
    return Evidence(best, tuple(eligible), totals, regret)
