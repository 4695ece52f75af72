"""Shared fixtures: a running loopback exchange and offline Freqtrade configs.

- ``loopback_exchange``: a :class:`LoopbackExchange` serving the bundled slice on a free
  127.0.0.1 port, in this process (session scoped; clear ``.requests`` before asserting on it).
- ``offline_env``: environment for subprocesses (``NO_PROXY`` for 127.0.0.1, repo on
  ``PYTHONPATH``).
- ``offline_config``: a minimal valid base config + the repo's loopback overlay rewritten to the
  running exchange's port, in a tmp dir (user_data_dir and backtest dir inside it, so nothing is
  written into the repository). ``write_offline_config`` builds one for any port/overrides.
- ``run_freqtrade``: run the ``freqtrade`` CLI as a subprocess from the repo root.

Futures (USDT-M perpetuals, isolated margin):

- ``futures_datadir``: a tmp datadir with the bundled spot files plus ``futures/`` data derived
  from them (``derive_futures``: contract + mark candles = spot candles, funding 0.01%/8h).
- ``futures_loopback_exchange``: a :class:`LoopbackExchange` serving it (spot and ``/fapi``).
- ``offline_futures_config``: like ``offline_config`` with ``trading_mode: futures``,
  ``margin_mode: isolated``, the ``BTC/USDT:USDT``... pairs, order-book pricing and ccxt told to
  load linear markets; ``write_offline_futures_config(dir, url, datadir=...)`` builds one.
  ``config.backtest_args(...)`` passes ``--datadir`` = the futures datadir.

Trap: freqtrade exits 0 on a *configuration* error (``main.py`` leaves ``return_code`` None),
so check its output as well as the return code (``FreqtradeRun.ok``).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from freqtrade_metastrategy.loopback import (  # noqa: E402
    DEFAULT_PORT,
    LoopbackExchange,
    derive_futures,
)

DATADIR = REPO_ROOT / "user_data" / "data" / "binance"
OVERLAY = REPO_ROOT / "user_data" / "config.loopback.json"
TEST_STRATEGY_PATH = REPO_ROOT / "tests" / "strategies"
PAIRS = ["BTC/USDT", "ETH/USDT", "SOL/USDT", "XRP/USDT"]
FUTURES_PAIRS = [f"{pair}:USDT" for pair in PAIRS]  # USDT-M perpetuals, e.g. BTC/USDT:USDT
NO_PROXY = "127.0.0.1,localhost"
OVERLAY_URL = f"http://127.0.0.1:{DEFAULT_PORT}"

# Output that means freqtrade failed even if it exited 0.
FREQTRADE_FAILURE_MARKERS = (
    "Configuration error",
    "Could not load markets",
    "Fatal exception",
    "Traceback (most recent call last)",
    "No data found. Terminating.",
)


def freqtrade_command() -> list[str]:
    """The venv's ``freqtrade`` script (falls back to ``python -m freqtrade``)."""
    script = Path(sys.executable).with_name("freqtrade")
    return [str(script)] if script.exists() else [sys.executable, "-m", "freqtrade"]


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def read_line(stream: IO[str] | None, timeout: float) -> str:
    """One line of ``stream`` (a child's stdout), or "" after ``timeout`` seconds."""
    result: list[str] = []
    if stream is not None:
        reader = threading.Thread(target=lambda: result.append(stream.readline()), daemon=True)
        reader.start()
        reader.join(timeout)
    return result[0] if result else ""


def make_offline_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env["NO_PROXY"] = env["no_proxy"] = NO_PROXY
    pythonpath = [str(REPO_ROOT), *filter(None, env.get("PYTHONPATH", "").split(os.pathsep))]
    env["PYTHONPATH"] = os.pathsep.join(pythonpath)
    env.setdefault("PYTHONUNBUFFERED", "1")
    # Freqtrade's console is 200 columns wide without a terminal, but takes COLUMNS when it is
    # set (a developer's shell, pytest-xdist's workers set 80): the log lines the tests read
    # must not depend on who runs them
    env["COLUMNS"] = "200"
    env.pop("LINES", None)
    env.update(extra or {})
    return env


def _rewrite_urls(value: Any, base_url: str) -> Any:
    if isinstance(value, dict):
        return {k: _rewrite_urls(v, base_url) for k, v in value.items()}
    if isinstance(value, list):
        return [_rewrite_urls(v, base_url) for v in value]
    if isinstance(value, str) and value.startswith(OVERLAY_URL):
        return base_url + value[len(OVERLAY_URL) :]
    return value


def _deep_update(target: dict[str, Any], updates: dict[str, Any]) -> dict[str, Any]:
    for key, value in updates.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            _deep_update(target[key], value)
        else:
            target[key] = value
    return target


def base_config(user_data_dir: Path, pairs: list[str] | None = None) -> dict[str, Any]:
    """A minimal valid Freqtrade config for offline backtests / dry runs."""
    return {
        "max_open_trades": 3,
        "stake_currency": "USDT",
        "stake_amount": 100,
        "tradable_balance_ratio": 0.99,
        "dry_run": True,
        "dry_run_wallet": 1000,
        "timeframe": "1h",
        "user_data_dir": str(user_data_dir),
        "db_url": f"sqlite:///{user_data_dir / 'dryrun.sqlite'}",
        "exchange": {
            "name": "binance",
            "key": "",
            "secret": "",
            "pair_whitelist": list(pairs or PAIRS),
            "pair_blacklist": [],
        },
        "pairlists": [{"method": "StaticPairList"}],
        "entry_pricing": {"price_side": "other", "use_order_book": False},
        "exit_pricing": {"price_side": "other", "use_order_book": False},
        "internals": {"process_throttle_secs": 5},
    }


def futures_config_overrides(pairs: list[str] | None = None) -> dict[str, Any]:
    """What turns :func:`base_config` into an isolated USDT-M futures config.

    Binance futures tickers carry no price (``tickers_have_price: False``), so ticker pricing
    (``use_order_book: false``) is a configuration error in futures mode: use the order book.
    """
    return {
        "trading_mode": "futures",
        "margin_mode": "isolated",
        "exchange": {"pair_whitelist": list(pairs or FUTURES_PAIRS)},
        "entry_pricing": {"price_side": "other", "use_order_book": True, "order_book_top": 1},
        "exit_pricing": {"price_side": "other", "use_order_book": True, "order_book_top": 1},
    }


def _futures_overlay(overlay: dict[str, Any]) -> dict[str, Any]:
    """The loopback overlay with ccxt loading USDT-M (``/fapi``) instead of spot markets."""
    for key in ("ccxt_config", "ccxt_async_config"):
        conf = overlay.get("exchange", {}).get(key)
        if isinstance(conf, dict):
            conf.setdefault("options", {}).setdefault("fetchMarkets", {})["types"] = ["linear"]
    return overlay


@dataclass(frozen=True)
class OfflineConfig:
    """Files of a generated offline config (see :func:`write_offline_config` and
    :func:`write_offline_futures_config`)."""

    directory: Path
    base: Path
    overlay: Path
    user_data_dir: Path
    backtest_dir: Path
    url: str
    datadir: Path = DATADIR
    trading_mode: str = "spot"

    def config_args(self) -> list[str]:
        return ["-c", str(self.base), "-c", str(self.overlay)]

    def backtest_args(
        self, strategy: str, timerange: str, strategy_path: Path = TEST_STRATEGY_PATH
    ) -> list[str]:
        return [
            "backtesting",
            "--strategy",
            strategy,
            "--strategy-path",
            str(strategy_path),
            "--datadir",
            str(self.datadir),
            "--timerange",
            timerange,
            *self.config_args(),
            "--export",
            "trades",
            # must exist: a missing directory is taken as a file-name prefix
            "--backtest-directory",
            str(self.backtest_dir),
            "--cache",
            "none",
        ]


def write_offline_config(
    directory: Path,
    url: str,
    *,
    pairs: list[str] | None = None,
    overrides: dict[str, Any] | None = None,
    datadir: Path = DATADIR,
) -> OfflineConfig:
    """Write ``base.json`` (+ ``overrides`` deep-merged) and ``loopback.json`` (the repo overlay
    with its URLs pointed at ``url``) into ``directory``. With ``overrides`` containing
    ``"trading_mode": "futures"`` the overlay makes ccxt load linear (``/fapi``) markets."""
    directory.mkdir(parents=True, exist_ok=True)
    user_data_dir = directory / "user_data"
    backtest_dir = user_data_dir / "backtest_results"
    backtest_dir.mkdir(parents=True, exist_ok=True)
    config = _deep_update(base_config(user_data_dir, pairs), overrides or {})
    trading_mode = str(config.get("trading_mode", "spot"))
    base = directory / "base.json"
    base.write_text(json.dumps(config, indent=2))
    overlay_config = _rewrite_urls(json.loads(OVERLAY.read_text()), url)
    if trading_mode == "futures":
        overlay_config = _futures_overlay(overlay_config)
    overlay = directory / "loopback.json"
    overlay.write_text(json.dumps(overlay_config, indent=2))
    return OfflineConfig(
        directory, base, overlay, user_data_dir, backtest_dir, url, datadir, trading_mode
    )


def write_offline_futures_config(
    directory: Path,
    url: str,
    *,
    datadir: Path,
    pairs: list[str] | None = None,
    overrides: dict[str, Any] | None = None,
) -> OfflineConfig:
    """An offline isolated USDT-M futures config (:func:`futures_config_overrides`, then
    ``overrides`` deep-merged) for a loopback exchange at ``url`` serving ``datadir`` (a
    datadir with a Freqtrade ``futures/`` folder, e.g. the ``futures_datadir`` fixture).
    ``pairs`` are perpetuals (default :data:`FUTURES_PAIRS`). The strategy sets leverage
    through its ``leverage()`` callback (default 1x)."""
    config_overrides = _deep_update(futures_config_overrides(pairs), overrides or {})
    return write_offline_config(directory, url, overrides=config_overrides, datadir=datadir)


@dataclass
class FreqtradeRun:
    args: list[str]
    returncode: int
    output: str
    seconds: float
    failure_markers: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.failure_markers

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.output.splitlines()[-lines:])


@pytest.fixture(scope="session")
def loopback_exchange() -> Iterator[LoopbackExchange]:
    with LoopbackExchange(DATADIR, port=0) as exchange:
        yield exchange


@pytest.fixture(scope="session")
def futures_datadir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Bundled spot slice + derived USDT-M perpetual data (``futures/``), generated once."""
    datadir = tmp_path_factory.mktemp("futures-datadir")
    derive_futures(DATADIR, datadir)
    return datadir


@pytest.fixture(scope="session")
def futures_loopback_exchange(futures_datadir: Path) -> Iterator[LoopbackExchange]:
    with LoopbackExchange(futures_datadir, port=0) as exchange:
        yield exchange


@pytest.fixture
def offline_futures_config(
    tmp_path: Path, futures_loopback_exchange: LoopbackExchange, futures_datadir: Path
) -> OfflineConfig:
    return write_offline_futures_config(
        tmp_path / "ft-futures", futures_loopback_exchange.url, datadir=futures_datadir
    )


@pytest.fixture
def offline_env() -> dict[str, str]:
    return make_offline_env()


@pytest.fixture
def offline_config(tmp_path: Path, loopback_exchange: LoopbackExchange) -> OfflineConfig:
    return write_offline_config(tmp_path / "ft", loopback_exchange.url)


def freqtrade_runner(
    env: dict[str, str] | None = None, default_timeout: float = 120.0
) -> Callable[..., FreqtradeRun]:
    """``run(args, timeout=default_timeout) -> FreqtradeRun``: the ``freqtrade`` CLI as a
    subprocess from the repo root (usable from module-scoped fixtures, unlike the
    ``run_freqtrade`` fixture)."""
    env = make_offline_env() if env is None else env

    def run(args: list[str], timeout: float = default_timeout) -> FreqtradeRun:
        import time

        cmd = [*freqtrade_command(), *args]
        started = time.monotonic()
        try:
            proc = subprocess.run(
                cmd,
                cwd=REPO_ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                timeout=timeout,
            )
            returncode, output = proc.returncode, proc.stdout
        except subprocess.TimeoutExpired as exc:
            raw = exc.stdout or b""
            returncode = -9
            output = (raw.decode(errors="replace") if isinstance(raw, bytes) else raw) + (
                f"\n[timed out after {timeout}s]"
            )
        markers = [m for m in FREQTRADE_FAILURE_MARKERS if m in output]
        return FreqtradeRun(cmd, returncode, output, time.monotonic() - started, markers)

    return run


@pytest.fixture
def run_freqtrade(offline_env: dict[str, str]) -> Callable[..., FreqtradeRun]:
    return freqtrade_runner(offline_env)


_NO_PROXY_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def call(url: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
    """GET ``url`` (or POST ``body`` as JSON) bypassing any proxy: (status, decoded JSON),
    also for HTTP errors (the loopback exchange answers errors in Binance's JSON shape)."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method="GET" if body is None else "POST")
    req.add_header("Content-Type", "application/json")
    try:
        with _NO_PROXY_OPENER.open(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


class FakeClock:
    """A clock (epoch seconds) that tests move by hand: ``clock.now = ...``."""

    def __init__(self, seconds: float) -> None:
        self.now = seconds

    def __call__(self) -> float:
        return self.now


def restore_sigint() -> None:
    """``preexec_fn`` for child processes a test stops with SIGINT (as Ctrl-C would): a shell
    that starts the test run in the background leaves SIGINT ignored, children inherit that,
    and Python then never turns SIGINT into KeyboardInterrupt."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def module_runner() -> Callable[..., FreqtradeRun]:
    """``run_freqtrade`` for module-scoped fixtures (the conftest one is function-scoped)."""
    return freqtrade_runner(default_timeout=300.0)


def read_trades(backtest_dir: Path, strategy: str = "MetaStrategy") -> list[dict[str, Any]]:
    [zpath] = sorted(backtest_dir.glob("*.zip"))
    with zipfile.ZipFile(zpath) as zf:
        name = next(n for n in zf.namelist()
                    if n.endswith(".json") and "_config" not in n and "market" not in n)
        return list(json.loads(zf.read(name))["strategy"][strategy]["trades"])


@pytest.fixture
def exchange(tmp_path: Path) -> Iterator[Any]:
    """The loopback exchange in live mode as its own process (``helpers.dryrun``), as a user
    runs it; stopped at the end."""
    from helpers.dryrun import LoopbackProcess  # imports this module: not at the top

    proc = LoopbackProcess(tmp_path / "exchange")
    try:
        yield proc
    finally:
        proc.stop()
