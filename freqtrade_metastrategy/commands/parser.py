"""The ``freqtrade-metastrategy`` argument parser and ``main``.

Each command family registers its subcommands (:mod:`.store_commands`,
:mod:`.evaluate_commands`, :mod:`.pretrain_commands`, :mod:`.tune_commands`;
``exchange`` is :mod:`freqtrade_metastrategy.loopback.cli`).
:class:`~freqtrade_metastrategy.errors.MetaStrategyError` ends as ``error: ...``, exit code 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from freqtrade_metastrategy.commands.evaluate_commands import (
    add_evaluate_parser,
    add_evidence_parser,
    add_ope_parser,
)
from freqtrade_metastrategy.commands.pretrain_commands import add_pretrain_parser
from freqtrade_metastrategy.commands.store_commands import add_store_parsers
from freqtrade_metastrategy.commands.tune_commands import add_tune_parser
from freqtrade_metastrategy.errors import MetaStrategyError
from freqtrade_metastrategy.loopback import cli as loopback_cli

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="freqtrade-metastrategy", description="Inspect and manage the learned Q-table."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    add_store_parsers(sub)

    exchange = sub.add_parser(
        "exchange", help="run the loopback exchange (offline Binance API on 127.0.0.1)",
        description=loopback_cli.DESCRIPTION,
    )
    loopback_cli.add_arguments(exchange)
    exchange.set_defaults(func=loopback_cli.run)

    add_evaluate_parser(sub)
    add_evidence_parser(sub)
    add_pretrain_parser(sub)
    add_ope_parser(sub)
    add_tune_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except MetaStrategyError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
