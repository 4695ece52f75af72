"""Exits and rewards of MetaStrategyBase, end to end: real Freqtrade backtests over hand-built
price paths, offline against a loopback exchange serving them.

One backtest per side runs every case at once (one pair per case, synthetic prices, all
entering on the same signal candle): longs in a spot backtest, the mirrored shorts in an
isolated 1x USDT-M futures backtest (funding 0). Every case checks, in this order:

1. that Freqtrade's ``profit_abs`` and the reward the strategy settled in the Q-table ledger it
   wrote equal the profit and R computed here from the trade's own fills and the fee, once per
   trade, at the closing fill;
2. that the fills (fraction of the entry amount, price, tag, candle) and the exit reason are the
   ones the plan gives for the path (so the reward is the expected R).

Some cases pin behaviour that follows from the design but is worth knowing
(``stop_gap_wick``, ``tp12_trailing``, ``spike_through_tp3``, ``tp1_then_gap_down``; see their
comments). Regression: short stops exactly on the tick grid used to come back one tick inside
the level (float noise in the ratio Freqtrade rebuilds the price from; fixed by
``STOP_NUDGE``): ``stop``, ``stop_gap_wick`` and ``tp1_gap_breakeven`` on the short side.

The profile is ``moderate`` (``metastrategy.enabled: false`` pins ``default_strategy``):
stop 1R, TP1 2R (close 50%), TP2 3.5R (30%), TP3 5.5R (the rest), breakeven after TP1,
trailing 1R behind the best price after TP2. 1R = ATR(14) of the signal candle = 1.02 (see
``tests/helpers/exit_paths.py``), so from the entry at 100: stop 98.98, TP1 102.04,
TP2 103.57, TP3 105.61 (shorts: 101.02, 97.96, 96.43, 94.39).

Tolerances: the market's tick is 0.01 (asserted from the exchange's own exchangeInfo) and
its lot step 0.001, so a wrong fill is off by at least 0.01 in price or 0.001 in amount;
prices and amounts are compared to 1e-9 (float noise only). Freqtrade rounds each exit's
profit to 8 decimals, so ``profit_abs`` (a sum of up to three of them) is compared to 1e-6,
and the reward (the same profit / (amount x 1R), 1R ~ 1) to 1e-6 as well: one tick on the
smallest partial (0.2 x 0.01 = 0.002) would be 2,000 times larger.
"""

from __future__ import annotations

import json
import math
import subprocess
import time
import urllib.request
from dataclasses import dataclass
from typing import Any

import pandas as pd
import pytest
from conftest import (
    FREQTRADE_FAILURE_MARKERS,
    REPO_ROOT,
    TEST_STRATEGY_PATH,
    FreqtradeRun,
    freqtrade_command,
    make_offline_env,
    write_offline_config,
)
from helpers.exit_paths import (
    BASE,
    CASES,
    ENTRY_DATE,
    FEE,
    MONEY_TOL,
    PRICE_TOL,
    PROFILE,
    SIGNAL_DATE,
    STAKE,
    STRATEGY,
    TIMERANGE,
    WARMUP,
    Case,
    Geometry,
    P,
    build_frame,
    independent_r,
    load_backtest_trades,
    sign_of,
    write_feather,
)

from freqtrade_metastrategy.indicators import compute_regime_features
from freqtrade_metastrategy.loopback import LoopbackExchange

pytestmark = pytest.mark.slow

SIDES = ["long", "short"]

# ------------------------------------------------------------------------------------------
# one backtest per side
# ------------------------------------------------------------------------------------------
@dataclass
class PathBacktest:
    side: str
    run: FreqtradeRun
    frames: dict[str, pd.DataFrame]  # pair -> the OHLCV frame served
    ticks: dict[str, float]  # pair -> tick size the exchange announced
    trades: list[dict[str, Any]]
    ledger: list[dict[str, Any]]

    @property
    def sign(self) -> int:
        return sign_of(self.side)

    def trades_of(self, pair: str) -> list[dict[str, Any]]:
        return [t for t in self.trades if t["pair"] == pair]

    def ledger_of(self, pair: str) -> list[dict[str, Any]]:
        return [row for row in self.ledger if row["symbol"] == pair]


def _tick_sizes(url: str, futures: bool) -> dict[str, float]:
    """pair -> PRICE_FILTER tickSize, as the exchange announces it to ccxt."""
    path = "/fapi/v1/exchangeInfo" if futures else "/api/v3/exchangeInfo"
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(url + path, timeout=10) as resp:
        info = json.loads(resp.read())
    ticks = {}
    for sym in info["symbols"]:
        pair = f"{sym['baseAsset']}/{sym['quoteAsset']}" + (":USDT" if futures else "")
        price_filter = next(f for f in sym["filters"] if f["filterType"] == "PRICE_FILTER")
        ticks[pair] = float(price_filter["tickSize"])
    return ticks


def _run(args: list[str], timeout: float = 180.0) -> FreqtradeRun:
    started = time.monotonic()
    proc = subprocess.run(
        [*freqtrade_command(), *args], cwd=REPO_ROOT, env=make_offline_env(),
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        timeout=timeout, check=False,
    )
    markers = [m for m in FREQTRADE_FAILURE_MARKERS if m in proc.stdout]
    return FreqtradeRun(args, proc.returncode, proc.stdout, time.monotonic() - started, markers)


def _futures_support() -> tuple[Any, Any] | str:
    """(write_offline_futures_config, derive_futures), or why futures cannot run."""
    import conftest

    writer = getattr(conftest, "write_offline_futures_config", None)
    if writer is None:
        return "tests/conftest.py has no write_offline_futures_config (futures loopback support)"
    try:
        from freqtrade_metastrategy.loopback import derive_futures
    except ImportError:
        return "freqtrade_metastrategy.loopback has no derive_futures (futures loopback data)"
    return writer, derive_futures


@pytest.fixture(scope="module", params=SIDES)
def backtest(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
             ) -> PathBacktest:
    side: str = request.param
    sign = sign_of(side)
    root = tmp_path_factory.mktemp(f"paths-{side}")
    spot_dir = root / "data"
    spot_dir.mkdir()
    frames: dict[str, pd.DataFrame] = {}
    for case in CASES:
        frame = build_frame(case.bars, sign)
        write_feather(frame, spot_dir, case.base)
        frames[case.pair(side)] = frame
    pairs = [case.pair(side) for case in CASES]
    qtable = root / "qtable.json"
    overrides: dict[str, Any] = {
        "max_open_trades": len(CASES),
        "stake_amount": STAKE,
        "dry_run_wallet": 10 * STAKE * len(CASES),
        "fee": FEE,
        "metastrategy": {
            "enabled": False,
            "default_strategy": PROFILE.strategy_id,
            "block_illiquid": False,
            "backtest_qtable_file": str(qtable),
        },
        "path_test": {f"enter_{side}": [SIGNAL_DATE.isoformat()]},
    }
    if side == "short":
        support = _futures_support()
        if isinstance(support, str):
            pytest.skip(f"short paths need futures backtests: {support}")
        write_futures_config, derive_futures = support
        datadir = root / "futures-data"
        # Funding rate 0: the R formula under test has no funding term (each trade asserts
        # funding_fees == 0).
        derive_futures(spot_dir, datadir, funding_rate=0.0)
    else:
        datadir = spot_dir
    with LoopbackExchange(datadir, port=0) as exchange:
        if side == "short":
            config = write_futures_config(
                root / "ft", exchange.url, datadir=datadir, pairs=pairs, overrides=overrides
            )
        else:
            config = write_offline_config(root / "ft", exchange.url, pairs=pairs,
                                          overrides=overrides)
        ticks = _tick_sizes(exchange.url, futures=side == "short")
        args = config.backtest_args(STRATEGY, TIMERANGE, TEST_STRATEGY_PATH)
        args[args.index("--datadir") + 1] = str(datadir)
        run = _run(args)
    assert run.ok, run.tail(60)
    trades = load_backtest_trades(config.backtest_dir, STRATEGY)
    assert qtable.exists(), run.tail(60)
    ledger = json.loads(qtable.read_text())["ledger"]
    return PathBacktest(side, run, frames, ticks, trades, ledger)


def _geometry(bt: PathBacktest, pair: str, entry: float) -> Geometry:
    """1R computed independently: ATR(14) of the signal candle of the frame we served."""
    frame = bt.frames[pair]
    features = compute_regime_features(frame, "1h")
    signal = frame.index[frame["date"] == SIGNAL_DATE][0]
    r_unit = float(features["atr"].iloc[signal])
    return Geometry(bt.sign, entry, r_unit, bt.ticks[pair])


# ------------------------------------------------------------------------------------------
# tests
# ------------------------------------------------------------------------------------------
def test_synthetic_market_is_as_designed(backtest: PathBacktest) -> None:
    """The premises the expected numbers rest on: tick 0.01, 1R = 1.02 on the signal candle
    only (1.0 before it, different after it), every level used on the tick grid."""
    for case in CASES:
        pair = case.pair(backtest.side)
        assert backtest.ticks[pair] == 0.01, pair
        g = _geometry(backtest, pair, BASE)
        assert g.r_unit == pytest.approx(1.02, abs=1e-12)
        atr = compute_regime_features(backtest.frames[pair], "1h")["atr"]
        assert atr.iloc[WARMUP - 1] == 1.0  # the candle before the signal
        assert abs(atr.iloc[WARMUP + 1] - g.r_unit) > 0.01  # the entry candle
        for level in (-P.r_sl, P.r_tp1, P.r_tp2, P.r_tp3):
            raw = g.entry + g.sign * level * g.r_unit
            assert g.on_tick(raw), (level, raw)
        for fill in case.exits(g):
            assert g.on_tick(fill.price), (case.name, fill)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_exit_path(request: pytest.FixtureRequest, backtest: PathBacktest, case: Case) -> None:
    side, sign = backtest.side, backtest.sign
    pair = case.pair(side)
    trades = backtest.trades_of(pair)
    assert len(trades) == 1, f"{case.name}: {case.doc}; trades: {trades}"
    trade = trades[0]
    assert trade["is_short"] is (side == "short")
    assert pd.Timestamp(trade["open_date"]) == ENTRY_DATE
    assert trade["open_rate"] == BASE  # the entry candle's open
    assert trade["leverage"] == 1.0
    assert trade.get("funding_fees", 0.0) == 0.0
    g = _geometry(backtest, pair, trade["open_rate"])
    entry_side, exit_side = ("sell", "buy") if side == "short" else ("buy", "sell")
    entry, *exits = trade["orders"]
    assert entry["ft_is_entry"] and entry["ft_order_side"] == entry_side
    assert entry["safe_price"] == g.entry
    entry_amount = entry["amount"]
    assert entry_amount == pytest.approx(STAKE / g.entry, abs=PRICE_TOL)
    assert all(not o["ft_is_entry"] and o["ft_order_side"] == exit_side for o in exits)
    assert math.fsum(o["amount"] for o in exits) == pytest.approx(entry_amount, abs=PRICE_TOL)

    # 1. Whatever the fills, Freqtrade's profit and the settled reward are those of the fills.
    profit, r_multiple = independent_r(
        sign=sign, entry_amount=entry_amount, entry_price=g.entry,
        exits=[(o["amount"], o["safe_price"]) for o in exits], fee=FEE, r_unit=g.r_unit,
    )
    assert trade["profit_abs"] == pytest.approx(profit, abs=MONEY_TOL)
    rows = backtest.ledger_of(pair)
    assert len(rows) == 1, rows
    assert rows[0]["strategy"] == PROFILE.strategy_id
    assert rows[0]["reward"] == pytest.approx(r_multiple, abs=MONEY_TOL)
    # settled once, under the trade's key, at the closing fill
    assert rows[0]["trade_id"].startswith(f"{pair}|{ENTRY_DATE.isoformat()}|")
    assert pd.Timestamp(rows[0]["settled_at"]) == pd.Timestamp(exits[-1]["order_filled_timestamp"],
                                                               unit="ms", tz="UTC")

    # 2. The fills are the ones the plan and Freqtrade's backtest rules give for this path.
    expected = case.exits(g)
    assert math.fsum(f.fraction for f in expected) == pytest.approx(1.0)
    actual = [
        (o["amount"] / entry_amount, o["safe_price"], o["ft_order_tag"],
         pd.Timestamp(o["order_filled_timestamp"], unit="ms", tz="UTC"))
        for o in exits
    ]
    wanted = [(f.fraction, f.price, f.tag, f.date) for f in expected]
    assert len(actual) == len(wanted), f"{case.name}: {case.doc}\n{actual}\n!= {wanted}"
    for got, want in zip(actual, wanted, strict=True):
        assert got[0] == pytest.approx(want[0], abs=PRICE_TOL), (case.name, got, want)
        assert got[1] == pytest.approx(want[1], abs=PRICE_TOL), (case.name, got, want)
        assert got[2:] == want[2:], (case.name, got, want)
    assert trade["exit_reason"] == expected[-1].tag
    _, expected_r = independent_r(
        sign=sign, entry_amount=entry_amount, entry_price=g.entry,
        exits=[(f.fraction * entry_amount, f.price) for f in expected], fee=FEE,
        r_unit=g.r_unit,
    )
    assert rows[0]["reward"] == pytest.approx(expected_r, abs=MONEY_TOL)


def test_every_closed_trade_settled_exactly_once(backtest: PathBacktest) -> None:
    closed = [t for t in backtest.trades if not t["is_open"]]
    assert len(closed) == len(backtest.trades) == len(CASES)
    assert len(backtest.ledger) == len(closed)
    keys = [row["trade_id"] for row in backtest.ledger]
    assert len(set(keys)) == len(keys)
    assert sorted(row["symbol"] for row in backtest.ledger) == sorted(t["pair"] for t in closed)
