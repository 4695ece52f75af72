"""Loopback exchange: a local imitation of Binance's public spot and USDT-M futures REST API.

Freqtrade needs exchange markets even to backtest; offline it stops with "Could not load
markets". Point ccxt at this server (``user_data/config.loopback.json``) and Freqtrade loads
its markets, candles, order books and tickers from the bundled data instead.

Start it with ``python -m freqtrade_metastrategy.loopback --port 18080 --datadir
user_data/data/binance`` or from Python::

    with LoopbackExchange("user_data/data/binance", port=0) as exchange:
        ...  # exchange.url, exchange.port

Live mode (``--live`` / ``LoopbackExchange(datadir, live=True)``): spot candles shifted to the
wall clock with the in-progress candle last, and a price moved through ``POST /_control/price``,
for ``freqtrade trade --dry-run`` (see :mod:`.live`); every USDT pair is also served as a USDT-M
perpetual on the same price (:class:`LiveFuturesMarketData`, funding ``--funding-rate`` every
8h), and a private spot API on one in-memory account (:class:`SpotAccount`, see
:mod:`.account`) lets ``freqtrade trade`` run live, without ``--dry-run``.

Futures (``trading_mode: futures``): Freqtrade backtests perpetuals from
``<datadir>/futures/*-futures|-mark|-funding_rate.feather`` files and loads the
``BTC/USDT:USDT`` markets from ``/fapi/v1/exchangeInfo``. :func:`derive_futures` writes such a
datadir from the spot slice (``--derive-futures DIR`` on the command line), and the exchange
then serves ``/fapi`` from it; the ccxt config must ask for linear markets
(``options.fetchMarkets.types: ["linear"]``).

Never imports freqtrade.
"""

from .account import FEE_RATE, SpotAccount
from .candles import (
    Candles,
    CandleStore,
    FundingRates,
    FuturesMarketData,
    MarketData,
    ReplayMarketData,
    SymbolInfo,
)
from .cli import main
from .derive import DEFAULT_FUNDING_RATE, derive_futures
from .live import LiveFuturesMarketData, LiveMarketData
from .server import DEFAULT_PORT, HOST, LoopbackExchange

__all__ = [
    "DEFAULT_FUNDING_RATE",
    "DEFAULT_PORT",
    "FEE_RATE",
    "HOST",
    "CandleStore",
    "Candles",
    "FundingRates",
    "FuturesMarketData",
    "LiveFuturesMarketData",
    "LiveMarketData",
    "LoopbackExchange",
    "MarketData",
    "ReplayMarketData",
    "SpotAccount",
    "SymbolInfo",
    "derive_futures",
    "main",
]
