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
        help=f"constant funding rate per 8h for --derive-futures (default {DEFAULT_FUNDING_RATE})",
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
            '0.01, "spread_bps": 25} (or "reset": true); GET /_control/state. Serves no futures'
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
                raise ValueError("--live serves spot markets only; drop --derive-futures")
            if derive_to is not None:
                rate = getattr(args, "funding_rate", DEFAULT_FUNDING_RATE)
                derive_futures(datadir, derive_to, funding_rate=rate)
                datadir = derive_to
            exchange = LoopbackExchange(
                datadir, port=args.port, log_requests=args.log_requests, live=live
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


def main(argv: list[str] | None = None, *, prog: str | None = None) -> int:
    """``python -m freqtrade_metastrategy.loopback [--port N] [--datadir DIR]
    [--derive-futures DIR [--funding-rate R]] [--live]``."""
    return run(build_parser(prog).parse_args(argv))
