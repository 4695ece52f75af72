"""Helpers the command modules share: the Freqtrade config file and where the store is.

``--store URL`` wins over ``-c CONFIG`` (its ``metastrategy.store_url``, else the default
file under its ``user_data_dir``); with neither, the default ``./user_data`` store.
"""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from freqtrade_metastrategy.errors import MetaStrategyError
from freqtrade_metastrategy.evaluation.walkforward import rolling_splits
from freqtrade_metastrategy.store import MemoryStore
from freqtrade_metastrategy.timerange import UtcRange

__all__ = [
    "DEFAULT_USER_DATA",
    "add_strategy_arguments",
    "load_export",
    "parse_walk_forward",
    "quiet_freqtrade",
    "read_config",
    "resolve_store_url",
    "rich_console",
    "run_with_freqtrade",
    "strategy_config",
    "walk_forward_splits",
]

DEFAULT_USER_DATA = Path("user_data")


def read_config(path: str) -> dict[str, Any]:
    """A Freqtrade config file (JSON, comments allowed as Freqtrade allows them)."""
    text = Path(path).read_text()
    try:
        import rapidjson  # Freqtrade's own parser: accepts comments and trailing commas

        data = rapidjson.loads(
            text, parse_mode=rapidjson.PM_COMMENTS | rapidjson.PM_TRAILING_COMMAS
        )
    except ImportError:  # pragma: no cover - rapidjson ships with freqtrade
        data = json.loads(text)
    if not isinstance(data, dict):
        raise MetaStrategyError(f"{path}: a Freqtrade config must be a JSON object")
    return data


def resolve_store_url(args: argparse.Namespace) -> tuple[str | None, Path]:
    """(store URL or None for the default, user_data dir) from the command line."""
    if args.store:
        return args.store, DEFAULT_USER_DATA
    if args.config:
        cfg = read_config(args.config)
        user_data = Path(cfg.get("user_data_dir") or DEFAULT_USER_DATA)
        section = cfg.get("metastrategy") or {}
        return section.get("store_url"), user_data
    return None, DEFAULT_USER_DATA


def load_export(path: str) -> MemoryStore:
    """An exported JSON file (``--file``) as an in-memory store located at ``path``."""
    store = MemoryStore()
    store.import_json(path)
    store.location = str(path)
    return store


def add_strategy_arguments(p: argparse.ArgumentParser) -> None:
    """``-c`` (repeatable), ``--strategy``, ``--strategy-path``, ``--datadir``, ``--timerange``:
    what a command that analyses a strategy's signals reads (``evaluate``, ``pretrain``)."""
    p.add_argument("-c", "--config", action="append", required=True,
                   help="Freqtrade config file (repeatable, merged like freqtrade's -c)")
    p.add_argument("--strategy")
    p.add_argument("--strategy-path")
    p.add_argument("--datadir")
    p.add_argument("--timerange", required=True, help="YYYYMMDD-YYYYMMDD")


def strategy_config(args: argparse.Namespace) -> dict[str, Any]:
    """The merged Freqtrade config of :func:`add_strategy_arguments`' arguments."""
    from freqtrade_metastrategy.entries import load_config

    return load_config(args.config, strategy=args.strategy, strategy_path=args.strategy_path,
                       datadir=args.datadir)


def run_with_freqtrade(run: Callable[[argparse.Namespace], int],
                       args: argparse.Namespace) -> int:
    """``run(args)``; Freqtrade's own errors (no strategy, bad config) end as ours (exit 2)."""
    from freqtrade.exceptions import FreqtradeException

    try:
        return run(args)
    except FreqtradeException as exc:
        raise MetaStrategyError(f"freqtrade: {exc}") from exc


def parse_walk_forward(args: argparse.Namespace) -> tuple[str, str, str | None] | None:
    """``--walk-forward TRAIN:TEST[:STEP]`` (pandas durations, e.g. ``365D:365D``) or None."""
    if not args.walk_forward:
        if args.anchored:
            raise MetaStrategyError("--anchored needs --walk-forward TRAIN:TEST")
        return None
    parts = str(args.walk_forward).split(":")
    try:
        if len(parts) not in (2, 3):
            raise ValueError("expected TRAIN:TEST or TRAIN:TEST:STEP")
        for part in parts:
            if pd.Timedelta(part) <= pd.Timedelta(0):
                raise ValueError(f"{part!r} is not a positive duration")
        if len(parts) == 3 and pd.Timedelta(parts[2]) < pd.Timedelta(parts[1]):
            raise ValueError("STEP shorter than TEST would make the test ranges overlap")
    except ValueError as exc:
        raise MetaStrategyError(
            f"--walk-forward {args.walk_forward!r}: {exc} (durations like 365D, 90D, 12h; "
            "m is minutes)"
        ) from None
    return parts[0], parts[1], parts[2] if len(parts) == 3 else None


#: More folds than this is almost surely a unit mistake (``3m`` is three minutes).
MAX_FOLDS = 500


def walk_forward_splits(args: argparse.Namespace, rolling: tuple[str, str, str | None] | None,
                    full: UtcRange) -> list[Any]:
    """The folds of ``--walk-forward`` over ``--timerange`` (checked before any work)."""
    if rolling is None:
        return []
    step = pd.Timedelta(rolling[2] or rolling[1])
    estimate = (full[1] - full[0] - pd.Timedelta(rolling[0])) / step
    if estimate > MAX_FOLDS:
        raise MetaStrategyError(f"--walk-forward {args.walk_forward}: about {int(estimate)} "
                                f"folds (more than {MAX_FOLDS}); use days, e.g. 365D:90D")
    splits = rolling_splits(full[0], full[1], train=rolling[0], test=rolling[1],
                            step=rolling[2], anchored=args.anchored)
    if not splits:
        raise MetaStrategyError(f"--walk-forward {args.walk_forward}: no fold fits in "
                                f"{args.timerange} (the train length alone reaches its end)")
    return splits


def quiet_freqtrade() -> None:
    """Freqtrade's and our INFO lines off (an analysis command prints its own tables)."""
    for name in ("freqtrade", "freqtrade_metastrategy"):
        logging.getLogger(name).setLevel(logging.WARNING)


def rich_console() -> Any:
    """A rich console; piped or captured, a wide one (tables are not squeezed into 80
    columns)."""
    from rich.console import Console

    console = Console()
    return console if console.is_terminal else Console(width=240)
