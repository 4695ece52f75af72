"""freqtrade_metastrategy.hyperopt_loss (R multiples, SQN, guards) and its Freqtrade file
user_data/hyperopts/MetaStrategyRLoss.py (loaded by name)."""

from __future__ import annotations

import importlib.util
import math
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import pandas as pd
import pytest

from freqtrade_metastrategy import hyperopt_loss as rloss

REPO_ROOT = Path(__file__).resolve().parents[2]
LOSS_DIR = REPO_ROOT / "user_data" / "hyperopts"
LOSS_FILE = LOSS_DIR / "MetaStrategyRLoss.py"

T0 = datetime(2023, 1, 1, tzinfo=UTC)
HOUR = timedelta(hours=1)


def _load_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("metastrategy_rloss_under_test", LOSS_FILE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


loss_file = _load_module()


def candles(atrs: list[float], start: datetime = T0) -> pd.DataFrame:
    """Hourly candles from ``start`` whose ``atr`` column is ``atrs``."""
    return pd.DataFrame(
        {
            "date": pd.date_range(start, periods=len(atrs), freq="1h", tz="UTC"),
            "close": 1000.0,
            "atr": atrs,
        }
    )


def order(amount: float, side: str = "buy", *, entry: bool = True) -> dict[str, Any]:
    """A minified backtest order, as in ``results["orders"]``."""
    return {"amount": amount, "safe_price": 1000.0, "ft_order_side": side, "ft_is_entry": entry,
            "ft_order_tag": "", "cost": amount * 1000.0}


def trade(
    pair: str, entry_candle: int, profit_abs: float, amount: float = 1.0,
    orders: list[dict[str, Any]] | None = None, is_short: bool = False,
) -> dict[str, Any]:
    """A ``results`` row whose trade opens on candle ``entry_candle`` (signal = the one before)."""
    return {
        "pair": pair,
        "open_date": pd.Timestamp(T0 + entry_candle * HOUR),
        "amount": amount,
        "profit_abs": profit_abs,
        "is_short": is_short,
        "orders": orders if orders is not None else [order(amount)],
    }


def results_of(rows: list[dict[str, Any]]) -> pd.DataFrame:
    return pd.DataFrame(rows)


def loss(results: pd.DataFrame, processed: dict[str, pd.DataFrame]) -> float:
    return float(
        loss_file.MetaStrategyRLoss.hyperopt_loss_function(
            results=results, trade_count=len(results), min_date=T0, max_date=T0 + 100 * HOUR,
            config={"timeframe": "1h"}, processed=processed, backtest_stats={},
            starting_balance=10_000.0,
        )
    )


def test_r_multiple_uses_the_signal_candle_atr() -> None:
    # Signal candle of a trade opened on candle 3 is candle 2 (ATR 100): 250 / (1 x 100) = 2.5R.
    processed = {"BTC/USDT": candles([10.0, 20.0, 100.0, 999.0])}
    r = rloss.trade_r_multiples(results_of([trade("BTC/USDT", 3, 250.0)]), processed, "1h")
    assert r.tolist() == pytest.approx([2.5])


def test_r_multiples_per_pair_and_index_preserved() -> None:
    processed = {
        "BTC/USDT": candles([100.0, 200.0, 400.0]),
        "ETH/USDT": candles([5.0, 10.0, 20.0]),
    }
    results = results_of([
        trade("BTC/USDT", 2, -200.0),          # signal candle 1: ATR 200 -> -1.0R
        trade("ETH/USDT", 1, 15.0, amount=3),  # signal candle 0: ATR 5, 15 / (3 x 5) = 1.0R
        trade("ETH/USDT", 2, 5.0, amount=0.5),  # signal candle 1: ATR 10, 5 / (0.5 x 10) = 1.0R
    ])
    results.index = pd.Index([10, 20, 30])
    r = rloss.trade_r_multiples(results, processed, "1h")
    assert list(r.index) == [10, 20, 30]
    assert r.tolist() == pytest.approx([-1.0, 1.0, 1.0])


def test_partial_exits_use_the_first_filled_entry_amount() -> None:
    # Entry 2.0; TP1 sold 1.2, TP2 0.6, the last leg 0.2: after the partial exits freqtrade's
    # ``amount`` column is the remaining 0.2, ``profit_abs`` the whole trade's 300.
    # R = 300 / (2.0 x 100) = 1.5 (not 300 / (0.2 x 100) = 15).
    orders = [order(2.0), order(1.2, "sell", entry=False), order(0.6, "sell", entry=False),
              order(0.2, "sell", entry=False)]
    processed = {"BTC/USDT": candles([100.0, 100.0])}
    results = results_of([trade("BTC/USDT", 1, 300.0, amount=0.2, orders=orders)])
    assert rloss.trade_r_multiples(results, processed, "1h").tolist() == pytest.approx([1.5])


def test_entry_amount_fallbacks() -> None:
    processed = {"BTC/USDT": candles([100.0, 100.0, 100.0, 100.0])}
    short_orders = [{"amount": 4.0, "ft_order_side": "sell"},
                    {"amount": 4.0, "ft_order_side": "buy"}]
    unfilled_first = [{**order(9.0), "filled": 0.0}, {**order(2.0), "filled": 2.0}]
    results = results_of([
        trade("BTC/USDT", 1, 100.0, amount=0.5, orders=[]),  # no orders: ``amount`` -> 2.0R
        # no ``ft_is_entry`` key: a short's entry side is "sell" -> 400 / (4 x 100) = 1.0R
        trade("BTC/USDT", 2, 400.0, amount=4.0, orders=short_orders, is_short=True),
        # full orders: the first entry with ``filled`` > 0 -> 100 / (2 x 100) = 0.5R
        trade("BTC/USDT", 3, 100.0, amount=2.0, orders=unfilled_first),
    ])
    assert rloss.trade_r_multiples(results, processed, "1h").tolist() == pytest.approx(
        [2.0, 1.0, 0.5]
    )


def test_sqn_value_exact() -> None:
    # 1R = 100 everywhere; R = 2.5, -1, 0.5, -1 -> mean 0.25,
    # var = (2.25^2 + 1.25^2 + 0.25^2 + 1.25^2) / 3 = 8.25 / 3 = 2.75,
    # SQN = sqrt(4) x 0.25 / sqrt(2.75)
    processed = {"BTC/USDT": candles([100.0] * 6)}
    results = results_of([trade("BTC/USDT", i + 1, p)
                          for i, p in enumerate([250.0, -100.0, 50.0, -100.0])])
    expected_sqn = 2 * 0.25 / math.sqrt(2.75)
    assert loss(results, processed) == pytest.approx(-expected_sqn, rel=1e-12)


def test_sqn_caps_n_at_100() -> None:
    # 150 trades alternating 2R / -1R: mean 0.5, std (ddof=1) = 1.5 x sqrt(150 / 149).
    processed = {"BTC/USDT": candles([100.0] * 160)}
    results = results_of([trade("BTC/USDT", i + 1, 200.0 if i % 2 == 0 else -100.0)
                          for i in range(150)])
    expected_sqn = math.sqrt(100) * 0.5 / (1.5 * math.sqrt(150 / 149))
    assert loss(results, processed) == pytest.approx(-expected_sqn, rel=1e-12)


def test_missing_atr_trades_are_skipped() -> None:
    # Candle 2 has no ATR (NaN), candle 3 a zero ATR, ETH has no ``atr`` column, SOL no data:
    # 4 of 8 trades skipped (exactly half: still scored), the rest R = 2, -1, 1, 0.
    processed = {
        "BTC/USDT": candles([100.0, 100.0, float("nan"), 0.0, 100.0, 100.0, 100.0]),
        "ETH/USDT": candles([100.0, 100.0]).drop(columns="atr"),
    }
    results = results_of([
        trade("BTC/USDT", 1, 200.0),
        trade("BTC/USDT", 3, 500.0),   # NaN ATR
        trade("BTC/USDT", 4, 500.0),   # zero ATR
        trade("BTC/USDT", 5, -100.0),
        trade("ETH/USDT", 1, 500.0),   # no atr column
        trade("SOL/USDT", 1, 500.0),   # pair not in processed
        trade("BTC/USDT", 6, 100.0),
        trade("BTC/USDT", 7, 0.0),
    ])
    r = rloss.trade_r_multiples(results, processed, "1h")
    assert r.isna().tolist() == [False, True, True, False, True, True, False, False]
    assert r.dropna().tolist() == pytest.approx([2.0, -1.0, 1.0, 0.0])
    # mean 0.5, var = (2.25 + 2.25 + 0.25 + 0.25) / 3 = 5/3
    assert loss(results, processed) == pytest.approx(-2 * 0.5 / math.sqrt(5 / 3), rel=1e-12)


def test_trade_before_the_data_has_no_atr() -> None:
    # The entry on the first candle has its signal candle before the (trimmed) data.
    processed = {"BTC/USDT": candles([100.0, 100.0])}
    r = rloss.trade_r_multiples(results_of([trade("BTC/USDT", 0, 100.0)]), processed, "1h")
    assert r.isna().all()


def test_more_than_half_missing_is_the_large_loss() -> None:
    processed = {"BTC/USDT": candles([100.0, 100.0, 100.0])}
    results = results_of([trade("BTC/USDT", 1, 200.0), trade("BTC/USDT", 2, -100.0),
                          trade("ETH/USDT", 1, 50.0), trade("ETH/USDT", 2, 50.0),
                          trade("ETH/USDT", 3, 50.0)])
    assert loss(results, processed) == rloss.NO_SCORE_LOSS


@pytest.mark.parametrize(
    ("profits", "atrs"),
    [
        ([], [100.0, 100.0]),                              # no trades
        ([250.0], [100.0, 100.0]),                         # n = 1
        ([100.0, 100.0, 100.0], [100.0] * 4),              # std = 0
        ([100.0, -50.0], [float("nan")] * 3),              # no ATR at all
    ],
)
def test_degenerate_epochs_get_the_large_loss(profits: list[float], atrs: list[float]) -> None:
    processed = {"BTC/USDT": candles(atrs)}
    rows = [trade("BTC/USDT", i + 1, p) for i, p in enumerate(profits)]
    results = results_of(rows) if rows else pd.DataFrame(
        columns=["pair", "open_date", "amount", "profit_abs", "is_short", "orders"]
    )
    assert loss(results, processed) == rloss.NO_SCORE_LOSS == 10_000.0


def test_no_atr_column_anywhere_is_the_large_loss() -> None:
    processed = {"BTC/USDT": candles([100.0] * 4).drop(columns="atr")}
    results = results_of([trade("BTC/USDT", 1, 200.0), trade("BTC/USDT", 2, -100.0)])
    assert loss(results, processed) == rloss.NO_SCORE_LOSS


def test_lower_loss_for_better_r_distribution() -> None:
    processed = {"BTC/USDT": candles([100.0] * 10)}
    good = results_of([trade("BTC/USDT", i + 1, p) for i, p in enumerate([200, -100, 250, 150])])
    bad = results_of([trade("BTC/USDT", i + 1, p) for i, p in enumerate([-200, 100, -250, 50])])
    assert loss(good, processed) < 0 < loss(bad, processed)


def test_date_resolution_and_timeframe() -> None:
    # Millisecond ``open_date`` (as trade_list_to_dataframe builds it) vs second-resolution
    # candle dates, 4h timeframe: the merge must still match.
    df = candles([50.0, 100.0])
    df["date"] = pd.date_range(T0, periods=2, freq="4h", tz="UTC").as_unit("s")
    results = results_of([trade("BTC/USDT", 0, 300.0)])
    results["open_date"] = pd.to_datetime(
        [int((T0 + 8 * HOUR).timestamp() * 1000)], unit="ms", utc=True
    )
    r = rloss.trade_r_multiples(results, {"BTC/USDT": df}, "4h")
    assert r.tolist() == pytest.approx([3.0])


def test_freqtrade_resolver_loads_it_by_name(tmp_path: Path) -> None:
    from freqtrade.optimize.hyperopt_loss.hyperopt_loss_interface import IHyperOptLoss
    from freqtrade.resolvers.hyperopt_resolver import HyperOptLossResolver

    config = {
        "hyperopt_loss": "MetaStrategyRLoss",
        "hyperopt_path": str(LOSS_DIR),
        "user_data_dir": tmp_path,  # a Path, as Freqtrade's configuration makes it
        "timeframe": "1h",
    }
    loss_obj = HyperOptLossResolver.load_hyperoptloss(config)
    assert isinstance(loss_obj, IHyperOptLoss)
    assert type(loss_obj).__name__ == "MetaStrategyRLoss"
    assert Path(type(loss_obj).__file__).resolve() == LOSS_FILE.resolve()
    processed = {"BTC/USDT": candles([100.0] * 6)}
    results = results_of([trade("BTC/USDT", i + 1, p)
                          for i, p in enumerate([250.0, -100.0, 50.0, -100.0])])
    value = loss_obj.hyperopt_loss_function(
        results=results, trade_count=4, min_date=T0, max_date=T0, config=config,
        processed=processed, backtest_stats={}, starting_balance=1000.0,
    )
    assert value == pytest.approx(-2 * 0.25 / math.sqrt(2.75), rel=1e-12)


def test_timeframe_falls_back_to_the_class_attribute_freqtrade_sets(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Freqtrade's resolver sets ``timeframe`` on the loaded class (the file's subclass).
    processed = {"BTC/USDT": candles([100.0] * 6)}
    results = results_of([trade("BTC/USDT", i + 1, p)
                          for i, p in enumerate([250.0, -100.0, 50.0, -100.0])])
    cls = loss_file.MetaStrategyRLoss

    def run() -> float:
        return float(cls.hyperopt_loss_function(
            results=results, trade_count=4, min_date=T0, max_date=T0, config={},
            processed=processed, backtest_stats={}, starting_balance=1000.0,
        ))

    assert run() == rloss.NO_SCORE_LOSS  # no timeframe anywhere
    monkeypatch.setattr(cls, "timeframe", "1h", raising=False)
    assert run() == pytest.approx(-2 * 0.25 / math.sqrt(2.75), rel=1e-12)
