"""``show``, ``export``, ``import``, ``reset``: inspect and manage the learned Q-table.

The store, first match wins: ``show --file EXPORT.json``; ``--store URL`` (any SQLAlchemy URL,
or ``memory``); ``-c CONFIG`` (see :mod:`.shared`); ``./user_data/metastrategy.sqlite``.
``import --replace`` and ``reset`` first write a JSON backup next to the store (or into the
current directory for a non-file store). They, and any import, move the store's watermark to
now: the strategy settles only trades closed since then, so older trades do not refill it.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from freqtrade_metastrategy.commands.shared import load_export, resolve_store_url
from freqtrade_metastrategy.errors import MetaStrategyError
from freqtrade_metastrategy.qtable import QEntry
from freqtrade_metastrategy.store import QStore, SqlStore, open_store

__all__ = [
    "add_store_parsers",
    "cmd_export",
    "cmd_import",
    "cmd_reset",
    "cmd_show",
    "format_learner",
    "format_table",
]


def _open(args: argparse.Namespace, *, create: bool = False) -> QStore:
    if args.command == "show" and args.file:
        return load_export(args.file)
    url, user_data = resolve_store_url(args)
    if url is None and not create:
        default = user_data / "metastrategy.sqlite"
        if not default.exists():
            raise MetaStrategyError(
                f"no Q-table store at {default.resolve()} (nothing learned yet?). "
                "Pass --store URL or -c CONFIG to read another one."
            )
    return open_store(url, user_data_dir=user_data)


def _backup(store: QStore, what: str) -> Path:
    """Export the store's content to a timestamped JSON file before ``what`` changes it."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    if isinstance(store, SqlStore) and store.path is not None:
        target = store.path.with_name(f"{store.path.stem}.backup-{stamp}.json")
    else:
        target = Path(f"metastrategy.backup-{stamp}.json")
    store.export_json(target)
    print(f"backup of the current Q-table ({what}) written to {target}")
    return target


def _since(store: QStore) -> str:
    return f"settles trades closed since {store.watermark():%Y-%m-%d %H:%M:%S} UTC"


def _confirm(args: argparse.Namespace, question: str) -> bool:
    if args.yes:
        return True
    if not sys.stdin.isatty():
        raise MetaStrategyError(f"{question} Refusing without a terminal: pass --yes.")
    answer = input(f"{question} [y/N] ").strip().lower()
    return answer in ("y", "yes")


def format_table(entries: Sequence[QEntry]) -> str:
    """The ``show`` table: one line per (symbol, regime, strategy) cell.

    >>> e = QEntry.empty("BTC/USDT", "trend_up", "scalp").updated(1.5, alpha=0.2)
    >>> print(format_table([e]))
    symbol    regime    strategy  count  EMA R  win rate  total R
    --------  --------  --------  -----  -----  --------  -------
    BTC/USDT  trend_up  scalp         1  +1.50    100.0%    +1.50
    """
    header = ("symbol", "regime", "strategy", "count", "EMA R", "win rate", "total R")
    rows = [
        (e.symbol, e.regime, e.strategy, str(e.count), f"{e.ema_reward:+.2f}",
         f"{100 * e.win_rate:.1f}%", f"{e.total_r:+.2f}")
        for e in entries
    ]
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    numeric = {3, 4, 5, 6}

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            c.rjust(w) if i in numeric else c.ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    out = [line(header), line(["-" * w for w in widths])]
    out.extend(line(r) for r in rows)
    return "\n".join(out)


def cmd_show(args: argparse.Namespace) -> int:
    with _open(args) as store:
        entries = store.entries(symbol=args.symbol, regime=args.regime)
        if args.json:
            print(json.dumps([e.to_dict() for e in entries], indent=1))
            return 0
        print(f"Q-table: {store.location}")
        if not args.file:
            print(_since(store))
        doc, _generation = store.learner_state()
        if not entries:
            print("(empty: no reward settled yet)")
        else:
            print(format_table(entries))
            rewards = sum(e.count for e in entries)
            total_r = sum(e.total_r for e in entries)
            print(f"{len(entries)} cells, {rewards} rewards, total {total_r:+.2f} R")
        if doc:
            print()
            print(format_learner(doc))
    return 0


def format_learner(doc: dict[str, Any]) -> str:
    """The full-information learner of a store: what it learned and what it decided.

    >>> doc = {"learner": {"config": {"policy": "walk_forward_static", "estimator": "mean",
    ...         "half_life": 1000.0, "stand_aside": True, "stand_aside_margin": 0.0},
    ...         "profiles": ["scalp", "trend_rider"], "released": 3,
    ...         "means": {"s": [-0.9, 0.6], "w": 3.0}, "pending": [{}]},
    ...        "tracker": {"watching": [{}, {}], "counts": {"trend_up": [5, 2]}}}
    >>> print(format_learner(doc))
    full-information learner: walk_forward_static (estimator mean, stand aside below 0.00 R)
    3 signals learned, 1 waiting for their virtual exits, 2 still open
    profile      expected R
    -----------  ----------
    scalp             -0.30
    trend_rider       +0.20
    regime    decisions  stood aside
    --------  ---------  -----------
    trend_up          5            2
    """
    lrn = doc.get("learner", {})
    cfg = lrn.get("config", {})
    tracker = doc.get("tracker", {})
    gate = (f"stand aside below {float(cfg.get('stand_aside_margin', 0.0)):.2f} R"
            if cfg.get("stand_aside") else "never stands aside")
    lines = [f"full-information learner: {cfg.get('policy')} (estimator "
             f"{cfg.get('estimator')}, {gate})",
             f"{lrn.get('released', 0)} signals learned, {len(lrn.get('pending', []))} waiting "
             f"for their virtual exits, {len(tracker.get('watching', []))} still open"]
    means = lrn.get("means", {})
    profiles = list(lrn.get("profiles", []))
    w = float(means.get("w") or 0.0)
    if profiles and w > 0:
        width = max(11, *(len(p) for p in profiles))
        lines.append(f"{'profile':<{width}}  expected R")
        lines.append(f"{'-' * width}  ----------")
        for p, total in zip(profiles, means.get("s", []), strict=False):
            lines.append(f"{p:<{width}}  {float(total) / w:>+10.2f}")
    counts = tracker.get("counts", {})
    if counts:
        width = max(8, *(len(r) for r in counts))
        lines.append(f"{'regime':<{width}}  decisions  stood aside")
        lines.append(f"{'-' * width}  ---------  -----------")
        for regime, (made, aside) in sorted(counts.items()):
            lines.append(f"{regime:<{width}}  {int(made):>9}  {int(aside):>11}")
    return "\n".join(lines)


def cmd_export(args: argparse.Namespace) -> int:
    with _open(args) as store:
        path = store.export_json(args.file)
        doc = store.export_dict()
    print(f"exported {len(doc['entries'])} cells and {len(doc['ledger'])} ledger rows to {path}")
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    with _open(args, create=True) as store:
        if not store.is_empty():
            if not args.replace:
                raise MetaStrategyError(
                    f"{store.location} already holds learned data; pass --replace to overwrite "
                    "it (a backup is written first)."
                )
            if not _confirm(args, f"Replace the Q-table in {store.location} with {args.file}?"):
                print("aborted, nothing changed")
                return 1
            _backup(store, "before import --replace")
        store.import_json(args.file, replace=True)
        print(f"imported {args.file} into {store.location}: {len(store.entries())} cells; "
              f"{_since(store)}")
    return 0


def cmd_reset(args: argparse.Namespace) -> int:
    with _open(args) as store:
        if store.is_empty():
            print(f"{store.location} is already empty")
            return 0
        if not _confirm(args, f"Delete every learned reward in {store.location}?"):
            print("aborted, nothing changed")
            return 1
        _backup(store, "before reset")
        store.reset()
        print(f"reset {store.location}; {_since(store)}")
    return 0


def add_store_parsers(sub: Any) -> None:
    """The four store subcommands, sharing ``--store`` / ``-c``, on ``sub`` (argparse)."""
    common = argparse.ArgumentParser(add_help=False)
    where = common.add_mutually_exclusive_group()
    where.add_argument("--store", help="SQLAlchemy URL of the store (or 'memory')")
    where.add_argument("-c", "--config", help="Freqtrade config with a 'metastrategy' section")

    show = sub.add_parser("show", parents=[common], help="print the Q-table")
    show.add_argument("--file", help="an exported JSON file (e.g. a backtest's learned table)")
    show.add_argument("--symbol")
    show.add_argument("--regime")
    show.add_argument("--json", action="store_true", help="machine-readable output")
    show.set_defaults(func=cmd_show)

    exp = sub.add_parser("export", parents=[common], help="write the Q-table and ledger to JSON")
    exp.add_argument("file")
    exp.set_defaults(func=cmd_export)

    imp = sub.add_parser("import", parents=[common], help="load an exported JSON file")
    imp.add_argument("file")
    imp.add_argument("--replace", action="store_true", help="overwrite a non-empty store")
    imp.add_argument("-y", "--yes", action="store_true", help="do not ask for confirmation")
    imp.set_defaults(func=cmd_import)

    reset = sub.add_parser("reset", parents=[common], help="delete everything learned")
    reset.add_argument("-y", "--yes", action="store_true", help="do not ask for confirmation")
    reset.set_defaults(func=cmd_reset)
