"""Real processes for end-to-end dry-run tests: the loopback exchange in live mode
(``python -m freqtrade_metastrategy.loopback --live``) and ``freqtrade trade --dry-run`` with
its REST API, driven through Freqtrade's own REST client (``freqtrade_client.FtRestClient``).

Every wait is bounded and, when it runs out, fails with the bot's log tail (and the
exchange's), so a red test says what the bot was doing.

Futures and live trading (the loopback's live mode serves both)::

    exchange = LoopbackProcess(tmp / "exchange", args=["--funding-rate", "0.0005"])
    # isolated USDT-M futures dry run, shorts allowed
    bot = DryRunBot(tmp / "bot", exchange, pairs=["BTC/USDT:USDT"], futures=True,
                    strategy="MetaFuturesStrategy", strategy_path=TEST_STRATEGY_PATH)
    bot.start(); trade = bot.force_enter("BTC/USDT:USDT", "short")
    # live (not dry-run) spot trading on the exchange's in-memory account, fees not reported
    exchange = LoopbackProcess(tmp / "exchange", args=["--no-fees"])  # or .set_fees(False)
    bot = DryRunBot(tmp / "bot", exchange, pairs=["BTC/USDT"], live_trading=True)
    bot.start(); trade = bot.force_enter("BTC/USDT", "long"); bot.kill(); bot.start()
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from conftest import (
    REPO_ROOT,
    OfflineConfig,
    free_port,
    freqtrade_command,
    futures_config_overrides,
    make_offline_env,
    read_line,
    restore_sigint,
    write_offline_config,
)
from freqtrade_client import FtRestClient

T = TypeVar("T")

API_USER, API_PASSWORD = "e2e", "e2e-dry-run-password"
JWT_SECRET = "freqtrade-metastrategy-e2e-jwt-secret-0123456789"
# live_trading=True: any key is accepted by the loopback exchange (signatures are not checked)
LIVE_KEY, LIVE_SECRET = "loopback-e2e-api-key", "loopback-e2e-api-secret"
STRATEGY_PATH = REPO_ROOT / "user_data" / "strategies"
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def tail(path: Path, lines: int = 60) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return f"({path} not written)"


class LoopbackProcess:
    """``freqtrade-metastrategy exchange --live`` as a child process, controlled over HTTP.

    ``args`` are extra command-line flags, e.g. ``["--funding-rate", "0.0005"]``,
    ``["--no-fees"]``, ``["--balance", "USDT=5000"]``, ``["--log-requests"]``."""

    def __init__(self, workdir: Path, *, args: list[str] | None = None) -> None:
        self.log = workdir / "exchange.log"
        workdir.mkdir(parents=True, exist_ok=True)
        self._log_file = self.log.open("w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "freqtrade_metastrategy.loopback", "--live", "--port", "0",
             *(args or [])],
            cwd=REPO_ROOT,
            env=make_offline_env(),
            preexec_fn=restore_sigint,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._log_file,
            text=True,
        )
        line = read_line(self.proc.stdout, timeout=30)
        match = re.match(r"loopback exchange listening on (http://127\.0\.0\.1:\d+)", line)
        if not match:
            self.stop()
            raise AssertionError(f"exchange did not start: {line!r}\n{tail(self.log)}")
        self.url = match[1]

    def control(self, path: str, body: dict[str, Any] | None = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(f"{self.url}/_control/{path}", data=data,
                                     method="GET" if body is None else "POST")
        req.add_header("Content-Type", "application/json")
        try:
            with _OPENER.open(req, timeout=10) as resp:
                return json.loads(resp.read())
        except urllib.error.HTTPError as err:
            raise AssertionError(f"/_control/{path} {body}: {err.read()!r}") from None

    def set_price(self, pair: str, price: float) -> None:
        self.control("price", {"symbol": pair, "price": price})

    def set_prices(self, prices: dict[str, float]) -> None:
        """Move several pairs at once (one lock on the exchange's side)."""
        self.control("prices", {"prices": prices})

    def set_book(self, pair: str, **shape: float) -> None:
        self.control("book", {"symbol": pair, **shape})

    def set_fees(self, report: bool, rate: float | None = None) -> dict[str, Any]:
        """Fees of later fills on the private spot account (``report=False``: none charged,
        none reported); answers ``{"report": ..., "rate": ...}``."""
        body: dict[str, Any] = {"report": report}
        if rate is not None:
            body["rate"] = rate
        return dict(self.control("fees", body))

    def set_balances(self, balances: dict[str, float]) -> dict[str, Any]:
        """Set free balances of the private spot account; answers :meth:`account`."""
        return dict(self.control("balances", {"balances": balances}))

    def account(self) -> dict[str, Any]:
        """The private spot account: ``balances`` ({asset: {"free", "locked"}}), ``fees``,
        ``orders`` and ``trades`` (Binance shapes)."""
        return dict(self.control("account"))

    def balance(self, asset: str) -> float:
        """Free + locked balance of ``asset`` on the private spot account."""
        entry = self.account()["balances"].get(asset, {"free": 0.0, "locked": 0.0})
        return float(entry["free"]) + float(entry["locked"])

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self._log_file.close()


class DryRunBot:
    """``freqtrade trade --dry-run --strategy MetaStrategy`` with the REST API on a free port.

    The config is the tests' offline base config for ``exchange`` plus: the API server,
    ``force_entry_enable``, ``initial_state: running``, a 1 s loop, and ``metastrategy`` (its
    ``store_url`` defaults to ``<workdir>/metastrategy.sqlite``). The trades database and the
    store live in ``workdir``, so a restart (:meth:`start` again) finds both.

    ``futures=True``: isolated USDT-M futures (``conftest.futures_config_overrides``: pairs like
    ``BTC/USDT:USDT``, order-book pricing, ccxt loading linear markets); shorting needs a
    strategy with ``can_short`` (e.g. ``strategy="MetaFuturesStrategy"``,
    ``strategy_path=TEST_STRATEGY_PATH``). ``live_trading=True``: ``freqtrade trade`` without
    ``--dry-run`` (``dry_run: false``, a dummy key / secret) trading on the loopback exchange's
    in-memory spot account (it outlives the bot: kill and :meth:`start` again). ``overrides`` are
    deep-merged last.
    """

    def __init__(
        self,
        workdir: Path,
        exchange: LoopbackProcess,
        *,
        pairs: list[str],
        metastrategy: dict[str, Any] | None = None,
        overrides: dict[str, Any] | None = None,
        strategy: str = "MetaStrategy",
        strategy_path: Path = STRATEGY_PATH,
        futures: bool = False,
        live_trading: bool = False,
    ) -> None:
        self.futures, self.live_trading = futures, live_trading
        self.workdir = workdir
        self.exchange = exchange
        self.port = free_port()
        self.store_url = f"sqlite:///{workdir / 'metastrategy.sqlite'}"
        self.strategy, self.strategy_path = strategy, strategy_path
        config: dict[str, Any] = {
            "initial_state": "running",
            "force_entry_enable": True,
            "max_open_trades": 3,
            "stake_amount": 1000,
            "dry_run_wallet": 10000,
            "internals": {"process_throttle_secs": 1},
            "api_server": {
                "enabled": True,
                "listen_ip_address": "127.0.0.1",
                "listen_port": self.port,
                "username": API_USER,
                "password": API_PASSWORD,
                "jwt_secret_key": JWT_SECRET,
                "CORS_origins": [],
                "enable_openapi": False,
            },
            "metastrategy": {"store_url": self.store_url, **(metastrategy or {})},
        }
        if futures:
            _merge(config, futures_config_overrides(pairs))
        if live_trading:
            _merge(config, {"dry_run": False,
                            "exchange": {"key": LIVE_KEY, "secret": LIVE_SECRET}})
        _merge(config, overrides or {})
        self.config: OfflineConfig = write_offline_config(
            workdir, exchange.url, pairs=pairs, overrides=config
        )
        self.log = workdir / "freqtrade.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.client = FtRestClient(f"http://127.0.0.1:{self.port}", API_USER, API_PASSWORD,
                                   timeout=10)
        self.starts = 0

    # -- process ---------------------------------------------------------------------------
    def command(self) -> list[str]:
        dry_run = [] if self.live_trading else ["--dry-run"]
        return [*freqtrade_command(), "trade", *dry_run, "--strategy", self.strategy,
                "--strategy-path", str(self.strategy_path), *self.config.config_args()]

    def start(self, *, wait: bool = True) -> None:
        """Start (or restart) the bot; with ``wait``, until it is RUNNING and answers."""
        assert self.proc is None or self.proc.poll() is not None, "already running"
        self.starts += 1
        with self.log.open("a") as out:
            out.write(f"\n===== start {self.starts} =====\n")
            out.flush()
            self.proc = subprocess.Popen(self.command(), cwd=REPO_ROOT, env=make_offline_env(),
                                         preexec_fn=restore_sigint,
                                         stdin=subprocess.DEVNULL, stdout=out,
                                         stderr=subprocess.STDOUT)
        if wait:
            marker = f"===== start {self.starts} ====="
            self.wait_for(
                lambda: "Changing state to: RUNNING" in self.log.read_text().split(marker)[-1]
                and self._ping(),
                60, "the bot to be RUNNING with its API up",
            )

    def _ping(self) -> bool:
        try:
            return bool((self.client.ping() or {}).get("status") == "pong")
        except Exception:  # the API is not up yet
            return False

    def kill(self) -> None:
        """SIGKILL: no clean-up, no shutdown hooks, the way a crash ends a bot."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self) -> int | None:
        """SIGINT and wait (Freqtrade exits 130 on SIGINT); None if it was not running."""
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(signal.SIGINT)
        try:
            return self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
            return None

    def wait_exit(self, timeout: float) -> int:
        assert self.proc is not None
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"the bot did not exit within {timeout}s:\n{self.diagnostics()}"
            ) from None

    # -- waiting and reading -----------------------------------------------------------------
    def diagnostics(self) -> str:
        return (f"--- freqtrade log tail ---\n{tail(self.log)}\n"
                f"--- exchange log tail ---\n{tail(self.exchange.log, 15)}")

    def wait_for(self, predicate: Callable[[], T | None], timeout: float, what: str) -> T:
        """Poll ``predicate`` every 0.25 s until it returns something truthy."""
        deadline = time.monotonic() + timeout
        while True:
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"the bot exited ({self.proc.returncode}) while waiting "
                                     f"for {what}:\n{self.diagnostics()}")
            result = predicate()
            if result:
                return result
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout}s waiting for {what}:\n"
                                     f"{self.diagnostics()}")
            time.sleep(0.25)

    def loops(self) -> int:
        """Time (epoch s) of the bot's last completed loop (``/health``)."""
        return int((self.client.health() or {}).get("last_process_ts") or 0)

    def wait_loops(self, n: int, timeout: float = 30) -> None:
        """Wait until the bot has completed ``n`` more process loops."""
        seen: list[int] = []

        def advanced() -> bool:
            ts = self.loops()
            if not seen or ts != seen[-1]:
                seen.append(ts)
            return len(seen) > n

        self.wait_for(advanced, timeout, f"{n} bot loops")

    def open_trade(self, pair: str) -> dict[str, Any] | None:
        """The pair's open trade once its entry has filled and its plan is frozen."""
        for trade in self.client.status() or []:
            if trade.get("pair") == pair and not trade.get("has_open_orders"):
                return trade
        return None

    def trade(self, trade_id: int) -> dict[str, Any]:
        result = self.client.trade(trade_id)
        assert isinstance(result, dict), result
        return result

    def frozen(self, trade_id: int) -> dict[str, Any] | None:
        """The plan MetaStrategy froze on the trade (custom data ``metastrategy``)."""
        rows = self.client.list_custom_data(trade_id, "metastrategy")
        if not isinstance(rows, list) or not rows:
            return None
        for entry in rows[0].get("custom_data", []):
            if entry.get("key") == "metastrategy":
                value = entry.get("value")
                return json.loads(value) if isinstance(value, str) else value
        return None

    def force_entry(self, pair: str) -> tuple[dict[str, Any], dict[str, Any]]:
        """Force a long entry; wait for the fill and the frozen plan: (trade, plan)."""
        answer = self.client.forceenter(pair, "long")
        assert isinstance(answer, dict) and answer.get("trade_id"), answer
        trade_id = int(answer["trade_id"])
        trade = self.wait_for(lambda: self.open_trade(pair), 20, f"{pair} entry to fill")
        plan = self.wait_for(lambda: self.frozen(trade_id), 20, f"{pair} frozen plan")
        return trade, plan

    def closed_trade(self, trade_id: int) -> dict[str, Any] | None:
        trade = self.trade(trade_id)
        return trade if trade.get("is_open") is False else None

    def force_enter(self, pair: str, side: str = "long", timeout: float = 20) -> dict[str, Any]:
        """Force an entry (``"long"`` or ``"short"``) through the REST API and wait for its
        fill: the open trade (no plan needed, any strategy)."""
        answer = self.client.forceenter(pair, side)
        assert isinstance(answer, dict) and answer.get("trade_id"), answer
        trade_id = int(answer["trade_id"])

        def filled() -> dict[str, Any] | None:
            trade = self.trade(trade_id)
            return trade if trade.get("is_open") and not trade.get("has_open_orders") else None

        return self.wait_for(filled, timeout, f"the forced {side} entry on {pair} to fill")

    def force_exit(self, trade_id: int, timeout: float = 20) -> dict[str, Any]:
        """Force the trade's exit through the REST API and wait until it is closed (a trade
        the strategy closed in the meantime is returned as it is)."""
        answer = self.client.forceexit(trade_id)
        if not (isinstance(answer, dict) and "result" in answer):
            closed = self.closed_trade(trade_id)
            assert closed is not None, f"forceexit {trade_id}: {answer}\n{self.diagnostics()}"
            return closed
        return self.wait_for(lambda: self.closed_trade(trade_id), timeout,
                             f"trade {trade_id} to close after forceexit")

    def log_since_start(self) -> str:
        """The bot log written since the latest :meth:`start`."""
        return self.log.read_text(errors="replace").split(f"===== start {self.starts} =====")[-1]


def _merge(target: dict[str, Any], updates: dict[str, Any]) -> None:
    for key, value in updates.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            _merge(target[key], value)
        else:
            target[key] = value


def realized_r(trade: dict[str, Any], plan: dict[str, Any]) -> float:
    """R of a closed trade recomputed from its fills (as the REST API reports them) and the
    frozen plan, independently of the strategy, with Freqtrade's accounting: the position is
    what the exits sold (a fee the exchange took in the base asset, and the lot rounding after
    it, never reached the position), bought at the entry fills' average price; each side pays
    its fee rate on its value; funding adds to either side's profit. Longs and shorts."""
    short = bool(trade.get("is_short"))
    sign, entry_side = (-1.0, "sell") if short else (1.0, "buy")
    fills = [o for o in trade["orders"] if o.get("status") == "closed" and o.get("filled")]
    entries = [o for o in fills if o["ft_order_side"] == entry_side]
    exits = [o for o in fills if o["ft_order_side"] != entry_side]
    entry_price = (sum(float(o["filled"]) * float(o["safe_price"]) for o in entries)
                   / sum(float(o["filled"]) for o in entries))
    held = sum(float(o["filled"]) for o in exits)
    exit_value = sum(float(o["filled"]) * float(o["safe_price"]) for o in exits)
    entry_value = held * entry_price
    pnl = (sign * (exit_value - entry_value) - entry_value * float(trade["fee_open"])
           - exit_value * float(trade["fee_close"]) + float(trade.get("funding_fees") or 0.0))
    return pnl / (float(plan["amount"]) * float(plan["r_unit"]))
