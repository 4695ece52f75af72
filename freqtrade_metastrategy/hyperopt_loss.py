"""MetaStrategyRLoss: Freqtrade hyperopt loss scoring trades in R (System Quality Number).

:class:`MetaStrategyRLossBase` is the loss; Freqtrade loads a loss only from a file that
defines the class itself, hence ``user_data/hyperopts/MetaStrategyRLoss.py``, a thin subclass
(as ``user_data/strategies/MetaStrategy.py`` is for the strategy).

What it scores
    Every closed trade is turned into an R multiple, ``R = profit_abs / (initial entry amount x
    1R)``, where 1R is the ATR (column ``atr``) of the trade's *signal candle*: the candle before
    the entry candle (:func:`~freqtrade_metastrategy.trade_math.signal_candle`), read from
    ``processed[pair]`` (columns ``date`` and ``atr``). The initial entry amount is the
    ``amount`` of the first filled entry order in ``orders``: after partial exits (TP1/TP2) the
    ``amount`` column holds only the *remaining* amount of the last leg, while ``profit_abs``
    is the whole trade's net profit. The epoch's score is Van Tharp's System Quality Number in
    R::

        SQN = sqrt(min(n, 100)) * mean(R) / std(R, ddof=1)

    and the loss is ``-SQN`` (Freqtrade minimises the loss).

Why R
    R is volatility-normalised: 1R of BTC and 1R of a meme coin, or 1R in a quiet and in a
    trending regime, are the same amount of risk, so trades are comparable across pairs and
    regimes. It is also the unit the plugin's learner optimises (``metastrategy.reward_unit:
    "r_atr"``, ``net profit / (amount x 1R)``), so hyperopt and the bandit pull the same way.

When to use it
    Freqtrade's built-ins (``SharpeHyperOptLoss``, ``ProfitDrawDownHyperOptLoss``, ...) score
    money: they favour whichever pairs are the most volatile and whatever parameters put more
    stake into them. Use this loss when the question is the quality of the entry/exit plan per
    unit of risk, e.g.::

        freqtrade hyperopt -s MetaStrategy --hyperopt-loss MetaStrategyRLoss \\
            --spaces regime learner --min-trades 30 -e 200

    Always combine it with ``--min-trades 30`` (``hyperopt_min_trades``; Freqtrade's default is
    1): an SQN from a handful of trades is noise, and the ``sqrt(min(n, 100))`` factor already
    rewards sample size up to 100 trades. Below ``--min-trades`` Freqtrade itself scores the epoch
    100000 without calling this loss.

Degenerate epochs
    Fewer than 2 scorable trades, a zero standard deviation, no ATR found at all, or more than
    half of the trades without an ATR (wrong timeframe, no ``atr`` column) score
    :data:`NO_SCORE_LOSS` (10000.0): worse than any realistic SQN (|SQN| <= 10 x |mean| / std),
    better than Freqtrade's 100000 for epochs below ``--min-trades``. Trades whose signal-candle
    ATR is missing, non-finite or <= 0 are skipped.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any, Final

import numpy as np
import pandas as pd
from freqtrade.exchange import timeframe_to_seconds
from freqtrade.optimize.hyperopt_loss.hyperopt_loss_interface import IHyperOptLoss

from freqtrade_metastrategy.trade_math import r_multiple, signal_candle

NO_SCORE_LOSS: Final = 10_000.0
"""Loss of an epoch that cannot be scored (see the module docstring)."""

SQN_TRADE_CAP: Final = 100
"""``n`` is capped at this in ``sqrt(min(n, SQN_TRADE_CAP))``."""

RECOMMENDED_MIN_TRADES: Final = 30
"""The ``--min-trades`` value to run this loss with."""


def _initial_entry_amount(orders: Any, is_short: Any, fallback: float) -> float:
    """``amount`` of the first filled entry order in a trade's ``orders``, else ``fallback``.

    Backtest/hyperopt orders are minified dicts (``amount`` = filled amount, ``safe_price``,
    ``ft_order_side``, ``ft_is_entry``, ...) listing only filled (or open) orders; full order
    dicts also carry ``filled``, which is then required to be > 0 and used as the amount.
    """
    if isinstance(orders, list | tuple):
        entry_side = "sell" if bool(is_short) else "buy"
        for order in orders:
            if not isinstance(order, dict):
                continue
            is_entry = order.get("ft_is_entry")
            if is_entry is None:
                is_entry = order.get("ft_order_side") == entry_side
            if not is_entry:
                continue
            if "filled" in order and not (order["filled"] or 0) > 0:
                continue
            amount = float(order.get("filled") or order.get("amount") or 0.0)
            if math.isfinite(amount) and amount > 0:
                return amount
    return float(fallback)


def _atr_table(processed: dict[str, pd.DataFrame], pairs: set[str]) -> pd.DataFrame:
    """``(pair, signal_date, atr)`` rows for the traded pairs that have ``date`` and ``atr``."""
    frames = [
        pd.DataFrame(
            {
                "pair": pair,
                "signal_date": pd.to_datetime(df["date"], utc=True).dt.as_unit("ns"),
                "atr": pd.to_numeric(df["atr"], errors="coerce").astype("float64"),
            }
        )
        for pair, df in processed.items()
        if pair in pairs and {"date", "atr"} <= set(df.columns)
    ]
    if not frames:
        return pd.DataFrame(
            {
                "pair": pd.Series(dtype="object"),
                "signal_date": pd.Series(dtype="datetime64[ns, UTC]"),
                "atr": pd.Series(dtype="float64"),
            }
        )
    table = pd.concat(frames, ignore_index=True)
    return table.drop_duplicates(["pair", "signal_date"], keep="last")


def trade_r_multiples(
    results: pd.DataFrame, processed: dict[str, pd.DataFrame], timeframe: str
) -> pd.Series:
    """R multiple of every trade in ``results`` (same index), NaN where it cannot be computed.

    ``R = profit_abs / (initial filled entry amount x ATR of the signal candle)``; the signal
    candle is the one before the entry candle (a backtest trade's ``open_date``). ATRs are
    joined with one merge on ``(pair, signal date)``. NaN when the ATR is missing, non-finite
    or <= 0, or the amount is not positive.
    """
    if results.empty:
        return pd.Series(np.nan, index=results.index, dtype="float64", name="r_multiple")

    step = pd.Timedelta(seconds=timeframe_to_seconds(timeframe))
    base = results.reset_index(drop=True)
    is_short = base["is_short"] if "is_short" in base else pd.Series(False, index=base.index)
    orders = base["orders"] if "orders" in base else pd.Series(None, index=base.index)
    amounts = [
        _initial_entry_amount(o, s, a)
        for o, s, a in zip(orders, is_short, base["amount"], strict=True)
    ]
    trades = pd.DataFrame(
        {
            "pair": base["pair"],
            "signal_date": signal_candle(pd.to_datetime(base["open_date"], utc=True),
                                         step).dt.as_unit("ns"),
            "profit_abs": pd.to_numeric(base["profit_abs"], errors="coerce").astype("float64"),
            "entry_amount": np.asarray(amounts, dtype="float64"),
        }
    )
    table = _atr_table(processed, set(trades["pair"]))
    merged = trades.merge(table, on=["pair", "signal_date"], how="left", validate="many_to_one")
    atr = merged["atr"].to_numpy(dtype="float64")
    amount = merged["entry_amount"].to_numpy(dtype="float64")
    valid = np.isfinite(atr) & (atr > 0) & np.isfinite(amount) & (amount > 0)
    r = np.full(len(merged), np.nan)
    r[valid] = r_multiple(merged["profit_abs"].to_numpy(dtype="float64")[valid], amount[valid],
                          atr[valid])
    return pd.Series(r, index=results.index, dtype="float64", name="r_multiple")


def sqn(r_multiples: pd.Series) -> float | None:
    """``sqrt(min(n, 100)) * mean / std(ddof=1)`` of the non-NaN values; None if undefined."""
    r = r_multiples.dropna().to_numpy(dtype="float64")
    r = r[np.isfinite(r)]
    n = len(r)
    if n < 2:
        return None
    std = float(np.std(r, ddof=1))
    if not (math.isfinite(std) and std > 0):
        return None
    return math.sqrt(min(n, SQN_TRADE_CAP)) * float(np.mean(r)) / std


class MetaStrategyRLossBase(IHyperOptLoss):  # type: ignore[misc]  # freqtrade is untyped (Any)
    """Loss = -SQN of the trades' R multiples (1R = ATR of the signal candle).

    Subclass it in a file of the hyperopt path (Freqtrade sets ``timeframe`` on that class).
    """

    @classmethod
    def hyperopt_loss_function(
        cls,
        *,
        results: pd.DataFrame,
        trade_count: int,
        min_date: datetime,
        max_date: datetime,
        config: dict[str, Any],
        processed: dict[str, pd.DataFrame],
        backtest_stats: dict[str, Any],
        starting_balance: float,
        **kwargs: Any,
    ) -> float:
        timeframe = config.get("timeframe") or getattr(cls, "timeframe", None)
        if results.empty or not timeframe:
            return NO_SCORE_LOSS
        r = trade_r_multiples(results, processed, str(timeframe))
        found = int(r.notna().sum())
        if found == 0 or (len(r) - found) * 2 > len(r):
            return NO_SCORE_LOSS
        score = sqn(r)
        if score is None or not math.isfinite(score):
            return NO_SCORE_LOSS
        return -score


__all__ = [
    "NO_SCORE_LOSS",
    "RECOMMENDED_MIN_TRADES",
    "SQN_TRADE_CAP",
    "MetaStrategyRLossBase",
    "sqn",
    "trade_r_multiples",
]
