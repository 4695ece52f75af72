"""Derive USDT-M perpetual futures data, in Freqtrade's file layout, from spot candles.

Freqtrade backtests futures only from files (it never downloads while backtesting), and it
needs three per pair, all under ``<datadir>/futures/``:

- ``BTC_USDT_USDT-<tf>-futures.feather``: the contract's candles (strategy timeframe);
- ``BTC_USDT_USDT-1h-mark.feather``: mark price candles (Binance ``mark_ohlcv_timeframe``);
- ``BTC_USDT_USDT-1h-funding_rate.feather``: ``date, funding_rate`` rows, one per funding
  event (Binance ``funding_fee_timeframe`` is 1h; events are every 8h at 00/08/16 UTC).

:func:`derive_futures` writes them from the spot files of a datadir, deterministically:

- contract candles = the spot candles (same timestamps and values, every stored interval);
- mark candles = the spot candles at 1h with volume 0 (Binance reports no mark volume),
  i.e. mark price = last price, so no basis;
- funding rate = the constant :data:`DEFAULT_FUNDING_RATE` (0.01% per 8h, Binance's baseline
  when the premium is zero: positive, so longs pay and shorts receive), every 8h from the
  first 8h boundary at or after the first candle to the last candle.

The loopback exchange serves such a datadir as both markets: spot from ``<datadir>/*.feather``
and USDT-M perpetuals (``/fapi``) from ``<datadir>/futures/``. This module must not import
freqtrade; it needs pandas + pyarrow only.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from .candles import (
    FUNDING_RATE,
    FUTURES,
    INTERVAL_MS,
    MARK,
    SPOT,
    Candles,
    CandleStore,
    SymbolInfo,
)

DEFAULT_FUNDING_RATE = 0.0001  # per funding event: 0.01% every 8h (~11% a year)
FUNDING_INTERVAL_MS = 8 * INTERVAL_MS["1h"]  # Binance USDT-M: 00:00, 08:00, 16:00 UTC
MARK_TIMEFRAME = "1h"  # freqtrade Exchange._ft_has["mark_ohlcv_timeframe"] for binance
FUNDING_TIMEFRAME = "1h"  # freqtrade Exchange._ft_has["funding_fee_timeframe"] for binance
OHLCV_COLUMNS = ["date", "open", "high", "low", "close", "volume"]


def futures_file_name(info: SymbolInfo, timeframe: str, candle_type: str) -> str:
    """Freqtrade's file name of a perpetual's data (inside ``<datadir>/futures``).

    >>> futures_file_name(SymbolInfo("BTC", "USDT", "USDT"), "1h", "funding_rate")
    'BTC_USDT_USDT-1h-funding_rate.feather'
    """
    if info.settle is None:
        raise ValueError(f"{info.pair} is not a perpetual")
    return f"{info.base}_{info.quote}_{info.settle}-{timeframe}-{candle_type}.feather"


def funding_times(first_ms: int, last_ms: int) -> np.ndarray:
    """Funding event times (ms) in [first, last]: every 8h on UTC 00/08/16.

    >>> h = INTERVAL_MS["1h"]
    >>> (funding_times(1 * h, 24 * h) // h).tolist()
    [8, 16, 24]
    """
    start = -(-first_ms // FUNDING_INTERVAL_MS) * FUNDING_INTERVAL_MS
    if last_ms < start:
        return np.empty(0, np.int64)
    return np.arange(start, last_ms + 1, FUNDING_INTERVAL_MS, dtype=np.int64)


def _dates(ms: np.ndarray) -> pd.Series:
    return pd.Series(pd.to_datetime(ms, unit="ms", utc=True)).astype("datetime64[ns, UTC]")


def _candle_frame(candles: Candles, *, volume: bool = True) -> pd.DataFrame:
    frame = pd.DataFrame(candles.ohlcv, columns=OHLCV_COLUMNS[1:])
    if not volume:
        frame["volume"] = 0.0
    frame.insert(0, "date", _dates(candles.open_time))
    return frame


def _write(frame: pd.DataFrame, path: Path) -> Path:
    """Write like freqtrade's FeatherDataHandler (lz4, level 9, fresh RangeIndex)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.reset_index(drop=True).to_feather(path, compression="lz4", compression_level=9)
    return path


def derive_futures(
    source: Path | str,
    dest: Path | str,
    *,
    funding_rate: float = DEFAULT_FUNDING_RATE,
    quotes: tuple[str, ...] = ("USDT",),
    include_spot: bool = True,
) -> list[Path]:
    """Write a USDT-M perpetual for every spot ``<BASE>_<QUOTE>-<tf>.feather`` of ``source``
    whose quote is in ``quotes`` into ``dest/futures/`` (see the module docstring), and with
    ``include_spot`` copy the spot files into ``dest`` too (so one datadir serves both markets).
    ``dest`` may be ``source``. Returns the written files; the same input gives the same values.
    """
    source, dest = Path(source), Path(dest)
    store = CandleStore(source, SPOT)
    spot = [info for info in store.symbols() if info.quote in quotes]
    if not spot:
        raise ValueError(f"no spot files quoted in {', '.join(quotes)} in {source}")
    written: list[Path] = []
    folder = dest / FUTURES
    for info in spot:
        perp = SymbolInfo(info.base, info.quote, info.quote)
        for tf in store.stored_intervals(info.symbol):
            candles = store.candles(info.symbol, tf)
            path = folder / futures_file_name(perp, tf, FUTURES)
            written.append(_write(_candle_frame(candles), path))
            if include_spot and dest.resolve() != source.resolve():
                target = dest / f"{info.base}_{info.quote}-{tf}.feather"
                shutil.copyfile(source / target.name, target)
                written.append(target)
        hourly = store.candles(info.symbol, MARK_TIMEFRAME)
        if len(hourly) == 0:
            raise ValueError(f"{info.pair}: no candles that aggregate to {MARK_TIMEFRAME}")
        mark_path = folder / futures_file_name(perp, MARK_TIMEFRAME, MARK)
        written.append(_write(_candle_frame(hourly, volume=False), mark_path))
        times = funding_times(int(hourly.open_time[0]), int(hourly.open_time[-1]))
        funding = pd.DataFrame(
            {"date": _dates(times), FUNDING_RATE: np.full(len(times), float(funding_rate))}
        )
        funding_path = folder / futures_file_name(perp, FUNDING_TIMEFRAME, FUNDING_RATE)
        written.append(_write(funding, funding_path))
    return written
