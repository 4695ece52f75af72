"""The counterfactual simulator against real Freqtrade backtests, trade by trade.

**Real data.** ``MetaStrategy`` (spot, longs) and ``MetaFuturesStrategy`` (USDT-M, 1x, longs
and shorts, funding 0) are backtested on the bundled data over 2023 with one static profile
each (``metastrategy.enabled: false``): ``moderate``, ``scalp``, ``trend_rider``, ``moderate``
on futures, and ``edge`` (a user profile: breakeven 0.5R above the entry, trailing 2.5R from
TP1 on, which exercises the after-fill stop being ignored and trailing stops racing TP3).
``max_open_trades`` is large so every signal trades. Freqtrade's trades become the
simulator's entries (pair, signal time = open date - 1h, side, 1R recomputed as the strategy
does: ATR(14) of the signal candle on the data with missing candles filled), with the tick
sizes the exchange announces. For every trade:

* the fills are the same: tags (including ``trailing_stop_loss``), candles and prices exactly;
  fractions of the entry amount within two lot steps (Freqtrade truncates each partial's amount
  to the market's lot step and the last fill takes the rest; the simulator keeps exact
  fractions);
* so exit time and exit reason are the same, and R differs only through the amounts: R
  recomputed from the simulator's prices and Freqtrade's amounts equals Freqtrade's
  ``profit_abs / (amount x 1R)`` to 1e-6 (its profits are rounded to 8 decimals), and
  ``|R_sim - R_freqtrade|`` stays below :data:`R_TOL` (observed: max ~6e-4, median ~2e-11).

Measured on the bundled data (2026-11-21, Freqtrade 2026.9): every trade of every run agrees
(0 mismatching fills, exit times or reasons); ``|dR|`` max / median: moderate 1.9e-4 / 2e-11
(768 trades), scalp 8.2e-5 / 3e-11 (914), trend_rider 5.8e-4 / 3e-11 (474, one force exit),
futures moderate 1.9e-4 / 2e-11 (1403, longs and shorts), edge 1.2e-4 / 2e-11 (787). Without
tick sizes 2-3% of the trades take another path (e.g. a stop a fraction of a tick lower is
not touched): pass ``tick_size``. The summary line of every run is printed (``pytest -s``).

**Hand-built paths.** ``tests/evaluation/test_simulator.py``'s :data:`EXTRA_CASES`
(trailing stop vs TP3, after-fill stop vs TP3, trailing stop hit, stop vs TP3 on the entry
candle, forced exit at the last candle's open) run through ``PathStrategy`` (spot longs,
futures shorts) exactly as
``tests/adapter/test_exits_e2e.py`` does: Freqtrade's fills must be the cases' expected fills, which
the fast tests check against the simulator.
"""

from __future__ import annotations

import json
import math
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import test_simulator as fast
from conftest import (
    DATADIR,
    REPO_ROOT,
    TEST_STRATEGY_PATH,
    FreqtradeRun,
    module_runner,
    read_trades,
    write_offline_config,
    write_offline_futures_config,
)
from freqtrade.data.converter import ohlcv_fill_up_missing_data
from helpers.exit_paths import (
    BASE,
    ENTRY_DATE,
    SIGNAL_DATE,
    TIMERANGE,
    Geometry,
    independent_r,
    load_backtest_trades,
    sign_of,
    write_feather,
)

from freqtrade_metastrategy import strategy as strategy_module
from freqtrade_metastrategy.evaluation import (
    Entry,
    infer_tick_sizes,
    simulate_with_fills,
)
from freqtrade_metastrategy.evaluation import simulator as simulator_module
from freqtrade_metastrategy.loopback import LoopbackExchange, derive_futures
from freqtrade_metastrategy.profiles import ProfileRegistry
from freqtrade_metastrategy.regime import add_regime_columns

pytestmark = pytest.mark.slow

RANGE = "20230101-20240101"
FEE = 0.001
STAKE = 10_000.0
#: Bound on |R_sim - R_freqtrade| (lot rounding of the partials only; see the module doc).
R_TOL = 2e-3
MONEY_TOL = 1e-6
EDGE = {"edge": {"base": "moderate", "breakeven_offset_r": 0.5, "trail_after_tp": 1,
                 "trail_distance_r": 2.5}}
#: run name -> (trading mode, profile)
RUNS = {
    "moderate": ("spot", "moderate"),
    "scalp": ("spot", "scalp"),
    "trend_rider": ("spot", "trend_rider"),
    "futures_moderate": ("futures", "moderate"),
    "edge": ("spot", "edge"),
}


def test_stop_nudge_is_the_strategys() -> None:
    assert simulator_module.STOP_NUDGE == strategy_module.STOP_NUDGE


# ------------------------------------------------------------------------------------------
# helpers
# ------------------------------------------------------------------------------------------
def market_filters(url: str, futures: bool) -> dict[str, tuple[float, float]]:
    """pair -> (tick size, lot step), as the exchange announces them to ccxt."""
    path = "/fapi/v1/exchangeInfo" if futures else "/api/v3/exchangeInfo"
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(url + path, timeout=10) as resp:
        info = json.loads(resp.read())
    out = {}
    for sym in info["symbols"]:
        pair = f"{sym['baseAsset']}/{sym['quoteAsset']}" + (":USDT" if futures else "")
        filters = {f["filterType"]: f for f in sym["filters"]}
        out[pair] = (float(filters["PRICE_FILTER"]["tickSize"]),
                     float(filters["LOT_SIZE"]["stepSize"]))
    return out


def freqtrade_frame(pair: str) -> pd.DataFrame:
    """The 1h candles of ``pair`` as Freqtrade loads them (missing candles filled); futures
    contract candles are the spot candles (``derive_futures``)."""
    spot = pair.split(":")[0]
    df = pd.read_feather(DATADIR / f"{spot.replace('/', '_')}-1h.feather")
    return ohlcv_fill_up_missing_data(df, "1h", pair)


def fills_of(trade: dict[str, Any]) -> tuple[float, list[tuple[float, float, str, pd.Timestamp]]]:
    """(entry amount, [(fraction, price, tag, time)] of the exit orders) of a Freqtrade trade."""
    amount = math.fsum(o["amount"] for o in trade["orders"] if o["ft_is_entry"])
    exits = [(o["amount"] / amount, float(o["safe_price"]), str(o["ft_order_tag"]),
              pd.Timestamp(o["order_filled_timestamp"], unit="ms", tz="UTC"))
             for o in trade["orders"] if not o["ft_is_entry"]]
    return amount, exits


@dataclass
class Agreement:
    name: str
    trades: list[dict[str, Any]]
    out: pd.DataFrame  # simulator rows, in trade order
    fills: pd.DataFrame
    lots: dict[str, float]

    def sim_fills(self, i: int) -> list[tuple[float, float, str, pd.Timestamp]]:
        f = self.fills[self.fills["entry_id"] == i]
        return [(float(x.fraction), float(x.price), str(x.tag), x.time) for x in f.itertuples()]


@pytest.fixture(scope="module")
def zero_funding_datadir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Spot data + derived perpetuals with funding 0 (R has no funding term)."""
    datadir = tmp_path_factory.mktemp("zero-funding")
    derive_futures(DATADIR, datadir, funding_rate=0.0)
    return datadir


@pytest.fixture(scope="module", params=list(RUNS))
def agreement(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
              zero_funding_datadir: Path) -> Agreement:
    name: str = request.param
    mode, profile = RUNS[name]
    futures = mode == "futures"
    root = tmp_path_factory.mktemp(f"agree-{name}")
    overrides: dict[str, Any] = {
        "stake_amount": STAKE, "dry_run_wallet": 1000 * STAKE, "max_open_trades": 100,
        "fee": FEE,
        "metastrategy": {"enabled": False, "default_strategy": profile, "block_illiquid": False,
                         "profiles": EDGE, "backtest_qtable_file": str(root / "qtable.json")},
    }
    datadir = zero_funding_datadir if futures else DATADIR
    strategy = "MetaFuturesStrategy" if futures else "MetaStrategy"
    strategy_path = TEST_STRATEGY_PATH if futures else REPO_ROOT / "user_data" / "strategies"
    run: Callable[..., FreqtradeRun] = module_runner()
    with LoopbackExchange(datadir, port=0) as exchange:
        if futures:
            cfg = write_offline_futures_config(root, exchange.url, datadir=datadir,
                                               overrides=overrides)
        else:
            cfg = write_offline_config(root, exchange.url, overrides=overrides)
        filters = market_filters(exchange.url, futures)
        result = run(cfg.backtest_args(strategy, RANGE, strategy_path), timeout=300)
    assert result.ok, result.tail()
    trades = read_trades(cfg.backtest_dir, strategy)
    assert len(trades) > 300, len(trades)
    assert all(not t["is_open"] for t in trades)

    pairs = sorted({t["pair"] for t in trades})
    frames = {p: freqtrade_frame(p) for p in pairs}
    if not futures:  # the simulator's stand-in for unknown ticks agrees with the exchange
        assert infer_tick_sizes(frames) == {p: filters[p][0] for p in pairs}
    features = {p: add_regime_columns(frames[p].copy(), "1h").set_index("date") for p in pairs}
    entries = []
    for t in trades:
        signal = pd.Timestamp(t["open_date"]) - pd.Timedelta(hours=1)
        row = features[t["pair"]].loc[signal]
        entries.append(Entry(t["pair"], signal, "short" if t["is_short"] else "long",
                             float(row["atr"]), str(row["regime"])))
    registry = ProfileRegistry.from_config(EDGE)
    out, fills = simulate_with_fills(frames, entries, {profile: registry[profile]}, fee=FEE,
                                     tick_size={p: filters[p][0] for p in pairs})
    assert out["entry_id"].tolist() == list(range(len(trades)))
    return Agreement(name, trades, out, fills, {p: filters[p][1] for p in pairs})


# ------------------------------------------------------------------------------------------
# real data
# ------------------------------------------------------------------------------------------
def test_simulated_trades_are_freqtrades(agreement: Agreement) -> None:
    ag = agreement
    bad_fills, bad_exit, bad_r, d_r = [], [], [], []
    sides = {True: 0, False: 0}
    for i, trade in enumerate(ag.trades):
        row = ag.out.iloc[i]
        sides[bool(trade["is_short"])] += 1
        assert row.entry_time == pd.Timestamp(trade["open_date"])
        assert row.entry_price == trade["open_rate"]
        amount, ft = fills_of(trade)
        sim = ag.sim_fills(i)
        # each partial is truncated to the lot step; the last fill takes what is left
        lot = 2 * ag.lots[trade["pair"]] / amount + 1e-12
        same = len(ft) == len(sim) and all(
            abs(a[0] - b[0]) <= lot and a[1] == pytest.approx(b[1], rel=1e-12, abs=1e-9)
            and a[2:] == b[2:] for a, b in zip(ft, sim, strict=True))
        if not same:
            bad_fills.append((i, trade["pair"], trade["open_date"], ft, sim))
        reason = {"trailing_stop_loss": "stop_loss"}.get(trade["exit_reason"],
                                                         trade["exit_reason"])
        if (row.exit_time != pd.Timestamp(trade["close_date"]) or row.exit_reason != reason):
            bad_exit.append((i, trade["pair"], trade["open_date"], trade["exit_reason"],
                             trade["close_date"], row.exit_reason, row.exit_time))
        r_ft = trade["profit_abs"] / (amount * row.r_unit)
        d_r.append(abs(row.r_atr - r_ft))
        if same:
            # the whole difference is the amounts: the simulator's prices with Freqtrade's
            # amounts give Freqtrade's R
            _, r_mixed = independent_r(
                sign=-1 if trade["is_short"] else 1, entry_amount=amount,
                entry_price=row.entry_price,
                exits=[(a[0] * amount, b[1]) for a, b in zip(ft, sim, strict=True)], fee=FEE,
                r_unit=row.r_unit)
            if abs(r_mixed - r_ft) > MONEY_TOL * max(1.0, 1.0 / row.r_unit):
                bad_r.append((i, trade["pair"], trade["open_date"], r_ft, r_mixed))
    d = np.array(d_r)
    reasons = pd.Series([t["exit_reason"] for t in ag.trades]).value_counts().to_dict()
    print(f"\n[agreement] {ag.name}: {len(ag.trades)} trades (long {sides[False]}, short "
          f"{sides[True]}), exits {reasons}; identical fills {len(ag.trades) - len(bad_fills)}, "
          f"identical exit time+reason {len(ag.trades) - len(bad_exit)}; |dR| max {d.max():.2e}"
          f" median {np.median(d):.2e}")
    assert not bad_fills, bad_fills[:5]
    assert not bad_exit, bad_exit[:5]
    assert not bad_r, bad_r[:5]
    assert d.max() <= R_TOL
    assert np.median(d) <= 1e-6


# ------------------------------------------------------------------------------------------
# hand-built paths
# ------------------------------------------------------------------------------------------
@pytest.fixture(scope="module", params=["long", "short"])
def path_trades(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
                ) -> Iterator[tuple[str, dict[str, Any], dict[str, pd.DataFrame]]]:
    """side, {case name: Freqtrade trade}, {pair: frame} for :data:`fast.EXTRA_CASES`."""
    side: str = request.param
    root = tmp_path_factory.mktemp(f"extra-paths-{side}")
    spot_dir = root / "data"
    spot_dir.mkdir()
    frames = {}
    for case in fast.EXTRA_CASES:
        frame = fast.path_frame(case, side)
        write_feather(frame, spot_dir, case.base)
        frames[case.pair(side)] = frame
    pairs = list(frames)
    overrides: dict[str, Any] = {
        "max_open_trades": len(pairs), "stake_amount": 100.0, "dry_run_wallet": 10_000.0,
        "fee": FEE,
        "metastrategy": {"enabled": False, "default_strategy": "moderate",
                         "block_illiquid": False,
                         "backtest_qtable_file": str(root / "qtable.json")},
        "path_test": {f"enter_{side}": [SIGNAL_DATE.isoformat()]},
    }
    datadir = spot_dir
    if side == "short":
        datadir = root / "futures-data"
        derive_futures(spot_dir, datadir, funding_rate=0.0)
    run = module_runner()
    with LoopbackExchange(datadir, port=0) as exchange:
        if side == "short":
            cfg = write_offline_futures_config(root / "ft", exchange.url, datadir=datadir,
                                               pairs=pairs, overrides=overrides)
        else:
            cfg = write_offline_config(root / "ft", exchange.url, pairs=pairs,
                                       overrides=overrides)
        args = cfg.backtest_args("PathStrategy", TIMERANGE, TEST_STRATEGY_PATH)
        args[args.index("--datadir") + 1] = str(datadir)
        result = run(args, timeout=180)
    assert result.ok, result.tail(60)
    trades = load_backtest_trades(cfg.backtest_dir, "PathStrategy")
    by_case = {}
    for case in fast.EXTRA_CASES:
        mine = [t for t in trades if t["pair"] == case.pair(side)]
        assert len(mine) == 1, (case.name, mine)
        by_case[case.name] = mine[0]
    yield side, by_case, frames


@pytest.mark.parametrize("case", fast.EXTRA_CASES, ids=[c.name for c in fast.EXTRA_CASES])
def test_extra_paths_are_what_freqtrade_does(
    path_trades: tuple[str, dict[str, Any], dict[str, pd.DataFrame]], case: Any
) -> None:
    side, by_case, frames = path_trades
    trade = by_case[case.name]
    assert pd.Timestamp(trade["open_date"]) == ENTRY_DATE and trade["open_rate"] == BASE
    pair = case.pair(side)
    r_unit = fast.signal_r(frames[pair])
    g = Geometry(sign_of(side), BASE, r_unit, 0.01)
    amount, ft = fills_of(trade)
    want = [(f.fraction, f.price, f.tag, f.date) for f in case.exits(g)]
    assert len(ft) == len(want), f"{case.name} ({side}): {case.doc}\n{ft}\n!= {want}"
    for got, exp in zip(ft, want, strict=True):
        assert got[0] == pytest.approx(exp[0], abs=1e-9), (case.name, got, exp)
        assert got[1] == pytest.approx(exp[1], abs=1e-9), (case.name, got, exp)
        assert got[2:] == exp[2:], (case.name, got, exp)
    assert trade["exit_reason"] == want[-1][2]
    # and the simulator, directly
    out, fills = simulate_with_fills(
        {pair: frames[pair]}, [Entry(pair, SIGNAL_DATE, side, r_unit, "x")],
        {"moderate": fast.P}, fee=FEE, tick_size={pair: 0.01})
    sim = [(f.fraction, f.price, str(f.tag), f.time) for f in fills.itertuples()]
    assert [s[2:] for s in sim] == [w[2:] for w in want]
    assert out.loc[0, "r_atr"] == pytest.approx(
        trade["profit_abs"] / (amount * r_unit), abs=MONEY_TOL)
