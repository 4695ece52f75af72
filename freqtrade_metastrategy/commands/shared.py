"""Helpers the command modules share: the Freqtrade config file and where the store is.

``--store URL`` wins over ``-c CONFIG`` (its ``metastrategy.store_url``, else the default
file under its ``user_data_dir``); with neither, the default ``./user_data`` store.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from freqtrade_metastrategy.errors import MetaStrategyError
from freqtrade_metastrategy.store import MemoryStore

__all__ = ["DEFAULT_USER_DATA", "load_export", "read_config", "resolve_store_url"]

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
