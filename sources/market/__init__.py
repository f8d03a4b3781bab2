"""Market-data providers: one module per upstream, each a pure parser plus a thin `Provider`."""

from __future__ import annotations

from .base import MarketProvider
from .binance import BinanceProvider, parse_binance_mini_tickers, parse_binance_ticker_24hr
from .binance_stream import BinanceStream
from .coinbase import CoinbaseProvider, parse_coinbase_stats
from .coingecko import CoinGeckoProvider, parse_coingecko_markets
from .coinlore import CoinLoreProvider, parse_coinlore_tickers
from .coinpaprika import CoinPaprikaProvider, parse_coinpaprika_tickers
from .kraken import KrakenProvider, parse_kraken_ticker

__all__ = [
    "AGGREGATORS",
    "MARKET_PROVIDERS",
    "BinanceProvider",
    "BinanceStream",
    "CoinGeckoProvider",
    "CoinLoreProvider",
    "CoinPaprikaProvider",
    "CoinbaseProvider",
    "KrakenProvider",
    "MarketProvider",
    "parse_binance_mini_tickers",
    "parse_binance_ticker_24hr",
    "parse_coinbase_stats",
    "parse_coingecko_markets",
    "parse_coinlore_tickers",
    "parse_coinpaprika_tickers",
    "parse_kraken_ticker",
]

# Providers that know market cap and 7 d change, in order of preference for those fields.
AGGREGATORS: tuple[str, ...] = ("coingecko", "coinpaprika", "coinlore")

# The REST price providers the app polls, one per upstream (failover order is each one's priority).
MARKET_PROVIDERS: tuple[type[MarketProvider], ...] = (
    KrakenProvider,
    CoinbaseProvider,
    BinanceProvider,
    CoinGeckoProvider,
    CoinPaprikaProvider,
    CoinLoreProvider,
)
