"""Command line: run the loopback exchange in the foreground until SIGINT/SIGTERM.

``main(argv)`` is the whole command; :func:`add_arguments` + :func:`run` let another CLI
(e.g. a ``freqtrade-metastrategy exchange`` subcommand) embed it in its own parser.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import Any

from .account import DEFAULT_BALANCES, FEE_RATE, SpotAccount
from .derive import DEFAULT_FUNDING_RATE, derive_futures
from .server import DEFAULT_PORT, LoopbackExchange

DESCRIPTION = (
    "Serve Binance's public spot (and USDT-M futures) REST API on 127.0.0.1 from Freqtrade "
    "feather files, so Freqtrade can load markets (and candles) with no internet."
)


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument(
        "--port",
        type=int,
        default=DEFAULT_PORT,
        help=f"TCP port on 127.0.0.1 (default {DEFAULT_PORT}; 0 = pick a free port)",
    )
    parser.add_argument(
        "--datadir",
        type=Path,
        default=Path("user_data/data/binance"),
        help="folder with <BASE>_<QUOTE>-<tf>.feather files (default user_data/data/binance)",
    )
    parser.add_argument(
        "--derive-futures",
        type=Path,
        metavar="DIR",
        help=(
            "write USDT-M perpetual data derived from --datadir's spot files into DIR/futures "
            "(Freqtrade layout; spot files copied to DIR too) and serve DIR, for offline "
            "futures backtests with --datadir DIR"
        ),
    )
    parser.add_argument(
        "--funding-rate",
        type=float,
        default=DEFAULT_FUNDING_RATE,
        help=(
            "constant funding rate per 8h of the perpetuals, for --derive-futures and --live "
            f"(default {DEFAULT_FUNDING_RATE}; positive: longs pay shorts)"
        ),
    )
    parser.add_argument(
        "--live",
        action="store_true",
        help=(
            "live mode for `freqtrade trade --dry-run`: spot candles shifted to the wall clock "
            "(the last stored candle is the current one, served in progress), price set with "
            'POST /_control/price {"symbol": "BTCUSDT", "price": 43000}; several symbols at '
            'once with POST /_control/prices {"prices": {"BTCUSDT": 41000, "ETHUSDT": 2100}}; '
            'order-book shape with POST /_control/book {"symbol": "BTCUSDT", "depth_scale": '
            '0.01, "spread_bps": 25} (or "reset": true); GET /_control/state. Also serves '
            "every USDT pair as a USDT-M perpetual on the same price (BTC/USDT:USDT; funding "
            "--funding-rate every 8h) and a private spot API on one in-memory account for "
            "`freqtrade trade` without --dry-run (any API key; GET /_control/account; "
            'POST /_control/fees {"report": false}; POST /_control/balances {"balances": '
            '{"USDT": 5000}})'
        ),
    )
    parser.add_argument(
        "--balance",
        action="append",
        metavar="ASSET=AMOUNT",
        help=(
            "--live: starting free balance of the private spot account (repeatable; default "
            + ", ".join(f"{a}={v:g}" for a, v in DEFAULT_BALANCES.items())
            + "; every other asset 0)"
        ),
    )
    parser.add_argument(
        "--fee-rate",
        type=float,
        default=FEE_RATE,
        help=f"--live: commission rate of the private spot account's fills (default {FEE_RATE})",
    )
    parser.add_argument(
        "--no-fees",
        action="store_true",
        help=(
            "--live: the private spot account charges and reports no fee at all (no "
            "commission in order fills nor myTrades; POST /_control/fees switches at run time)"
        ),
    )
    parser.add_argument("--log-requests", action="store_true", help="log every request to stderr")
    return parser


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    return add_arguments(
        argparse.ArgumentParser(
            prog=prog or "python -m freqtrade_metastrategy.loopback", description=DESCRIPTION
        )
    )


def run(args: argparse.Namespace) -> int:
    """Serve until SIGINT/SIGTERM (or forever when not on the main thread).

    Prints ``loopback exchange listening on <url> (pairs: ...)`` to stdout once listening.
    Returns 0 after a clean stop, 2 when the data or the port is unusable.
    """
    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous: dict[signal.Signals, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, request_stop)
    try:
        try:
            datadir = args.datadir
            derive_to = getattr(args, "derive_futures", None)
            live = bool(getattr(args, "live", False))
            if live and derive_to is not None:
                raise ValueError(
                    "--live serves its own perpetuals (on the live price, funding "
                    "--funding-rate); drop --derive-futures"
                )
            if derive_to is not None:
                rate = getattr(args, "funding_rate", DEFAULT_FUNDING_RATE)
                derive_futures(datadir, derive_to, funding_rate=rate)
                datadir = derive_to
            account = spot_account(args) if live else None
            exchange = LoopbackExchange(
                datadir,
                port=args.port,
                log_requests=args.log_requests,
                live=live,
                funding_rate=getattr(args, "funding_rate", DEFAULT_FUNDING_RATE),
                account=account,
            ).start()
        except (OSError, ValueError) as err:
            print(f"loopback exchange: {err}", file=sys.stderr, flush=True)
            return 2
        try:
            print(exchange.describe(), flush=True)
            while not stop.wait(0.2):
                pass
        finally:
            exchange.stop()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    print("loopback exchange stopped", file=sys.stderr, flush=True)
    return 0


def parse_balances(specs: list[str] | None) -> dict[str, float]:
    """``["USDT=5000", "BTC=0.5"]`` -> ``{"USDT": 5000.0, "BTC": 0.5}`` (default
    :data:`~.account.DEFAULT_BALANCES`); ValueError naming a bad entry.

    >>> parse_balances(["usdt=5000", "BTC=0.5"])
    {'USDT': 5000.0, 'BTC': 0.5}
    """
    if not specs:
        return dict(DEFAULT_BALANCES)
    balances: dict[str, float] = {}
    for spec in specs:
        asset, sep, amount = spec.partition("=")
        try:
            value = float(amount)
        except ValueError:
            value = -1.0
        if not sep or not asset.strip() or not (value >= 0 and value != float("inf")):
            raise ValueError(f"--balance wants ASSET=AMOUNT with AMOUNT >= 0, got {spec!r}")
        balances[asset.strip().upper()] = value
    return balances


def spot_account(args: argparse.Namespace) -> SpotAccount:
    """The live private spot account from ``--balance``, ``--fee-rate``, ``--no-fees``."""
    return SpotAccount(
        parse_balances(getattr(args, "balance", None)),
        fee_rate=getattr(args, "fee_rate", FEE_RATE),
        report_fees=not getattr(args, "no_fees", False),
    )


def main(argv: list[str] | None = None, *, prog: str | None = None) -> int:
    """``python -m freqtrade_metastrategy.loopback [--port N] [--datadir DIR]
    [--derive-futures DIR] [--funding-rate R] [--live [--balance ASSET=AMOUNT]... [--fee-rate F]
    [--no-fees]]``."""
    return run(build_parser(prog).parse_args(argv))
