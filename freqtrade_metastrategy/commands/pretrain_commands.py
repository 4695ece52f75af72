"""``pretrain``: the full-information learner's state built from history, in the store format.

The strategy's own entry signals over ``--timerange`` (:mod:`freqtrade_metastrategy.entries`),
every profile simulated on every signal (:func:`~.evaluation.simulator.simulate`), then fed, in
time order and released at each signal's last virtual exit, to the learner the config selects
(the replay's :class:`~.evaluation.runners.FullInfoRunner`: the same code the strategy runs).
Signals whose virtual trades are still open at the end of the range are left out. The result
is an export document (``freqtrade-metastrategy export`` format, with the ``learner``) that:

* backtests and hyperopt start from with ``"metastrategy": {"pretrained": "<file>"}``
  (``"freeze_learner": true`` to decide from it without learning more);
* a live store takes with ``freqtrade-metastrategy import <file>`` (``--replace`` over a store
  that learned already; the bot must be stopped).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

from freqtrade_metastrategy.commands.shared import (
    add_strategy_arguments,
    run_with_freqtrade,
    strategy_config,
)
from freqtrade_metastrategy.errors import MetaStrategyError

__all__ = ["add_pretrain_parser", "cmd_pretrain"]

DEFAULT_OUT = Path("user_data") / "metastrategy_pretrained.json"


def cmd_pretrain(args: argparse.Namespace) -> int:
    """``pretrain`` (Freqtrade's own errors -- no strategy, bad config -- end as exit code 2)."""
    return run_with_freqtrade(_pretrain, args)


def _pretrain(args: argparse.Namespace) -> int:
    from freqtrade_metastrategy.entries import load_entries
    from freqtrade_metastrategy.evaluation.outcomes import OutcomeTable
    from freqtrade_metastrategy.evaluation.runners import FullInfoRunner, build_runners
    from freqtrade_metastrategy.evaluation.specs import FullInfoSpec
    from freqtrade_metastrategy.store import MemoryStore

    es = load_entries(strategy_config(args), args.timerange)
    ms = es.ms_config
    if ms.full_info is None:
        raise MetaStrategyError(
            f"pretrain builds a full-information learner, but metastrategy.policy is "
            f"{ms.selector.policy!r}: set it to walk_forward_static or contextual_ridge")
    if not es.entries:
        raise MetaStrategyError(f"no entry signal in {args.timerange}")
    out = es.simulated_outcomes()
    last = {p: df["date"].iloc[-1] for p, df in es.candles.items()}
    open_at_end = (out["exit_reason"].astype(str) == "force_exit") & (
        out["exit_time"] == out["pair"].astype(str).map(last))
    still_open = set(out.loc[open_at_end, "entry_id"])
    out = out[~out["entry_id"].isin(still_open)]
    if out.empty:
        raise MetaStrategyError(f"no signal in {args.timerange} whose virtual trades all closed")
    table = OutcomeTable.from_frame(out)
    _, (runner,) = build_runners(table, [FullInfoSpec("pretrain", ms.full_info)],
                                 unit=ms.reward_unit, seed=0, profiles=es.profiles)
    assert isinstance(runner, FullInfoRunner)
    runner.run(range(len(table)))
    learner = runner.learner
    learner.advance(np.iinfo(np.int64).max)
    learner.meta = ms.learner_meta(es.timeframe, es.fee)
    doc: dict[str, Any] = {"learner": learner.to_dict(),
                           "tracker": {"watching": [], "seen_through": {}, "counts": {}}}
    store = MemoryStore()
    store.save_learner_state(doc, generation=0)
    path = store.export_json(args.out)
    estimates = learner.means.values()
    best = learner.profiles[int(np.argmax(estimates))]
    print(f"pretrained {ms.full_info.policy} on {learner.released} signals of "
          f"{es.strategy} {args.timerange} ({len(still_open)} still open at the end, left out; "
          f"best so far: {best} {float(estimates.max()):+.3f} R); written to {path}")
    print(f'backtests: "metastrategy": {{"pretrained": "{path}"}}; live: '
          f"freqtrade-metastrategy import {path} -c <config> (bot stopped)")
    return 0


def add_pretrain_parser(sub: Any) -> None:
    p = sub.add_parser(
        "pretrain", help="build the full-information learner's state from history",
        description=__doc__)
    add_strategy_arguments(p)
    p.add_argument("--out", default=str(DEFAULT_OUT), help=f"default {DEFAULT_OUT}")
    p.set_defaults(func=cmd_pretrain)
