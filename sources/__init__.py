"""Fetch market prices, news, Fear & Greed and social posts from public providers, as typed records.

Providers return typed records (`core.records`); they never publish or persist. `SourceService`
runs the pollers, configured by the settings' `SourcesSection` and the tracked symbols, and hands
records to the app's callbacks. Pools (`pool.py`) give every provider the same budget, breaker
and health; `market/` holds the price providers. See docs/sources.md.
"""

from __future__ import annotations

from .breaker import CircuitBreaker, TokenBucket
from .dedupe import NewsDeduper, canonical_url, normalize_title
from .errors import (
    MissingCredentials,
    ResponseTooLarge,
    SourceError,
    SourceUnavailable,
    UpstreamBlocked,
    UpstreamConnectionError,
    UpstreamGarbage,
    UpstreamHTTPError,
    UpstreamRateLimited,
    UpstreamTimeout,
)
from .fear_greed import FearGreedProvider, parse_fear_greed
from .fusion import QuoteBook, fuse_quote
from .geoblock import is_geo_block
from .http import HttpReply, UpstreamHttp, parse_retry_after
from .market import (
    AGGREGATORS,
    BinanceProvider,
    BinanceStream,
    CoinbaseProvider,
    CoinGeckoProvider,
    CoinLoreProvider,
    CoinPaprikaProvider,
    KrakenProvider,
)
from .market_mood import MarketMood, compute_market_mood, momentum_from_quotes
from .news import (
    CryptoCompareNewsProvider,
    CryptoPanicProvider,
    parse_cryptocompare_news,
    parse_cryptopanic_posts,
)
from .pool import Category, FetchResult, Provider, ProviderSpec, ProviderState, SourcePool
from .rss import Feed, RssProvider, feeds_from_urls, parse_feed, strip_html
from .service import OnFearGreed, OnNews, OnQuotes, OnSocial, SourceService
from .social import (
    RedditProvider,
    TwitterProvider,
    count_mentions,
    parse_reddit_listing,
    parse_twitter_search,
    symbols_mentioned,
)
from .symbols import ASSETS, STABLECOINS, SYMBOLS, Asset, asset_for, is_known_symbol, provider_ids

__all__ = [
    "AGGREGATORS",
    "ASSETS",
    "STABLECOINS",
    "SYMBOLS",
    "Asset",
    "BinanceProvider",
    "BinanceStream",
    "Category",
    "CircuitBreaker",
    "CoinGeckoProvider",
    "CoinLoreProvider",
    "CoinPaprikaProvider",
    "CoinbaseProvider",
    "CryptoCompareNewsProvider",
    "CryptoPanicProvider",
    "FearGreedProvider",
    "Feed",
    "FetchResult",
    "HttpReply",
    "KrakenProvider",
    "MarketMood",
    "MissingCredentials",
    "NewsDeduper",
    "OnFearGreed",
    "OnNews",
    "OnQuotes",
    "OnSocial",
    "Provider",
    "ProviderSpec",
    "ProviderState",
    "QuoteBook",
    "RedditProvider",
    "ResponseTooLarge",
    "RssProvider",
    "SourceError",
    "SourceService",
    "SourcePool",
    "SourceUnavailable",
    "TokenBucket",
    "TwitterProvider",
    "UpstreamBlocked",
    "UpstreamConnectionError",
    "UpstreamGarbage",
    "UpstreamHTTPError",
    "UpstreamHttp",
    "UpstreamRateLimited",
    "UpstreamTimeout",
    "asset_for",
    "canonical_url",
    "compute_market_mood",
    "count_mentions",
    "feeds_from_urls",
    "fuse_quote",
    "is_geo_block",
    "is_known_symbol",
    "momentum_from_quotes",
    "normalize_title",
    "parse_cryptocompare_news",
    "parse_cryptopanic_posts",
    "parse_fear_greed",
    "parse_feed",
    "parse_reddit_listing",
    "parse_retry_after",
    "parse_twitter_search",
    "provider_ids",
    "strip_html",
    "symbols_mentioned",
]
