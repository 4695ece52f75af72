"""Helpers the command modules share: the Freqtrade config file and where the store is.

``--store URL`` wins over ``-c CONFIG`` (its ``metastrategy.store_url``, else the default
file under its ``user_data_dir``); with neither, the default ``./user_data`` store.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from freqtrade_metastrategy.errors import MetaStrategyError
from freqtrade_metastrategy.store import MemoryStore

__all__ = [
    "DEFAULT_USER_DATA",
    "add_strategy_arguments",
    "load_export",
    "read_config",
    "resolve_store_url",
    "run_with_freqtrade",
    "strategy_config",
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
