"""Loopback exchange: a local imitation of Binance's public spot REST API.

Freqtrade needs exchange markets even to backtest; offline it stops with "Could not load
markets". Point ccxt at this server (``user_data/config.loopback.json``) and Freqtrade loads
its markets, candles, order books and tickers from the bundled data instead.

Start it with ``python -m freqtrade_metastrategy.loopback --port 18080 --datadir
user_data/data/binance`` or from Python::

    with LoopbackExchange("user_data/data/binance", port=0) as exchange:
        ...  # exchange.url, exchange.port

Never imports freqtrade.
"""

from .candles import Candles, CandleStore, MarketData, ReplayMarketData, SymbolInfo
from .cli import main
from .server import DEFAULT_PORT, HOST, LoopbackExchange

__all__ = [
    "DEFAULT_PORT",
    "HOST",
    "CandleStore",
    "Candles",
    "LoopbackExchange",
    "MarketData",
    "ReplayMarketData",
    "SymbolInfo",
    "main",
]
