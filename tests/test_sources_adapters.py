"""Every adapter against the local fake upstream: the request it sends and what it yields."""

from __future__ import annotations

import json
import threading
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from core.config import SourcesSection
from sources import (
    BinanceProvider,
    CoinbaseProvider,
    CoinGeckoProvider,
    CoinLoreProvider,
    CoinPaprikaProvider,
    CryptoCompareNewsProvider,
    CryptoPanicProvider,
    FearGreedProvider,
    FetchResult,
    KrakenProvider,
    Provider,
    RedditProvider,
    SourcePool,
    TwitterProvider,
)
from sources.market import MARKET_PROVIDERS, coinpaprika
from sources.parsing import PARSE_OFF_LOOP_BYTES
from tests.upstream import (
    PATHS,
    UpstreamServer,
    fixture_reply,
    install_happy_routes,
    json_reply,
    load_fixture,
    server_error,
    upstream,
)

__all__ = ["upstream"]


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as http:
        yield http


async def fetch_once(
    provider: Provider[Any], client: httpx.AsyncClient
) -> tuple[FetchResult[Any] | None, SourcePool[Any]]:
    pool: SourcePool[Any] = SourcePool(provider.category, [provider], client=client)
    return await pool.fetch_first(), pool


async def test_coingecko_adapter_sends_documented_query(
    upstream: UpstreamServer, client: httpx.AsyncClient
) -> None:
    install_happy_routes(upstream)
    result, _ = await fetch_once(CoinGeckoProvider(base_url=f"{upstream.url}/coingecko/api/v3"), client)
    request = upstream.last_request(PATHS["coingecko"])
    assert result is not None and len(result.records) == 4
    assert request.query["vs_currency"] == ["usd"] and request.query["price_change_percentage"] == ["24h,7d"]
    assert "bitcoin" in request.query["ids"][0].split(",")
    assert request.headers["user-agent"].startswith("crypto-market-hub/")


async def test_coingecko_adapter_base_url_from_settings() -> None:
    options = CoinGeckoProvider.options_from(SourcesSection(coingecko_url="http://127.0.0.1:1/cg/"))
    assert CoinGeckoProvider(**options).base_url == "http://127.0.0.1:1/cg"


async def test_coingecko_adapter_ignores_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings are read once at start-up; a provider never looks at the environment itself."""
    monkeypatch.setenv("COINGECKO_URL", "http://127.0.0.1:1/cg/")
    assert CoinGeckoProvider().base_url == SourcesSection().coingecko_url


async def test_keyed_adapter_secret_from_settings() -> None:
    """The token is kept as pydantic's `SecretStr` (it never prints) and reaches the provider as its value."""
    options = TwitterProvider.options_from(SourcesSection(twitter_bearer_token="b-1"))
    assert options.get("secret") == "b-1" and TwitterProvider(**options).unavailable_reason is None


async def test_binance_adapter_sends_symbols_as_json_array(
    upstream: UpstreamServer, client: httpx.AsyncClient
) -> None:
    install_happy_routes(upstream)
    result, _ = await fetch_once(
        BinanceProvider(base_url=f"{upstream.url}/binance", symbols=["BTC", "ETH"]), client
    )
    assert result is not None and [q.symbol for q in result.records] == ["BTC", "ETH"]
    assert json.loads(upstream.last_request(PATHS["binance"]).query["symbols"][0]) == ["BTCUSDT", "ETHUSDT"]


async def test_kraken_adapter_asks_for_kraken_pair_names(
    upstream: UpstreamServer, client: httpx.AsyncClient
) -> None:
    install_happy_routes(upstream)
    result, _ = await fetch_once(
        KrakenProvider(base_url=f"{upstream.url}/kraken", symbols=["BTC", "ETH", "SOL"]), client
    )
    assert result is not None and {q.symbol for q in result.records} == {"BTC", "ETH", "SOL"}
    assert upstream.last_request(PATHS["kraken"]).query["pair"] == ["XXBTZUSD,XETHZUSD,SOLUSD"]


async def test_coinbase_adapter_tolerates_unlisted_products(
    upstream: UpstreamServer, client: httpx.AsyncClient
) -> None:
    install_happy_routes(upstream)
    provider = CoinbaseProvider(base_url=f"{upstream.url}/coinbase", symbols=["BTC", "ETH", "SOL"])
    result, pool = await fetch_once(provider, client)
    assert result is not None and [q.symbol for q in result.records] == ["BTC", "ETH"]
    health = pool.health()[0]
    assert (
        health.status == "active"
        and health.reason is not None
        and "SOL-USD: not listed (404)" in health.reason
    )


async def test_coinbase_adapter_all_products_failing_is_a_failure(
    upstream: UpstreamServer, client: httpx.AsyncClient
) -> None:
    upstream.route(PATHS["coinbase_any"], server_error(502))
    result, pool = await fetch_once(
        CoinbaseProvider(base_url=f"{upstream.url}/coinbase", symbols=["BTC"]), client
    )
    assert (
        result is None
        and pool.state("coinbase").last_error
        == "UpstreamHTTPError: HTTP 502: upstream temporarily unavailable"
    )


async def test_coinpaprika_adapter_filters_to_tracked(
    upstream: UpstreamServer, client: httpx.AsyncClient
) -> None:
    install_happy_routes(upstream)
    result, _ = await fetch_once(CoinPaprikaProvider(base_url=f"{upstream.url}/coinpaprika/v1"), client)
    assert result is not None and [q.symbol for q in result.records] == ["BTC", "ETH", "DOGE"]
    assert upstream.last_request(PATHS["coinpaprika"]).query["quotes"] == ["USD"]


async def test_coinpaprika_adapter_parses_a_large_body_off_the_event_loop(
    upstream: UpstreamServer, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    tickers = json.loads(load_fixture("coinpaprika_tickers.json", now=None))
    filler = [{**tickers[0], "id": f"filler-{i}", "symbol": f"F{i}"} for i in range(PARSE_OFF_LOOP_BYTES // 300)]
    upstream.route(PATHS["coinpaprika"], json_reply(tickers + filler))
    threads: list[str] = []

    def parse_and_record(*args: Any, **kwargs: Any) -> Any:
        threads.append(threading.current_thread().name)
        return parse(*args, **kwargs)

    parse = coinpaprika.parse_coinpaprika_tickers
    monkeypatch.setattr(coinpaprika, "parse_coinpaprika_tickers", parse_and_record)
    result, _ = await fetch_once(CoinPaprikaProvider(base_url=f"{upstream.url}/coinpaprika/v1"), client)
    assert result is not None and [q.symbol for q in result.records] == ["BTC", "ETH", "DOGE"]
    assert len(threads) == 1 and threads[0].startswith("provider-parse")


async def test_coinlore_adapter_pages_top_100(upstream: UpstreamServer, client: httpx.AsyncClient) -> None:
    install_happy_routes(upstream)
    result, _ = await fetch_once(CoinLoreProvider(base_url=f"{upstream.url}/coinlore/api"), client)
    assert result is not None and len(result.records) == 4
    assert upstream.last_request(PATHS["coinlore"]).query == {"start": ["0"], "limit": ["100"]}


async def test_fear_greed_adapter_sends_limit(upstream: UpstreamServer, client: httpx.AsyncClient) -> None:
    install_happy_routes(upstream)
    result, _ = await fetch_once(FearGreedProvider(base_url=f"{upstream.url}/fng", limit=2), client)
    assert result is not None and result.records[0].value == 75
    assert upstream.last_request(PATHS["fng"]).query["limit"] == ["2"]


async def test_reddit_adapter_reads_every_subreddit(
    upstream: UpstreamServer, client: httpx.AsyncClient
) -> None:
    install_happy_routes(upstream)
    result, _ = await fetch_once(RedditProvider(base_url=f"{upstream.url}/reddit"), client)
    assert result is not None and {p.community for p in result.records} == {"CryptoCurrency", "Bitcoin"}
    assert upstream.last_request(PATHS["reddit_btc"]).query == {"limit": ["50"], "raw_json": ["1"]}


async def test_reddit_adapter_one_subreddit_failing_fails_fetch(
    upstream: UpstreamServer, client: httpx.AsyncClient
) -> None:
    install_happy_routes(upstream)
    upstream.route(PATHS["reddit_btc"], server_error(403))
    result, pool = await fetch_once(RedditProvider(base_url=f"{upstream.url}/reddit"), client)
    assert result is None and pool.state("reddit").failures == 1


async def test_cryptopanic_adapter_sends_token(upstream: UpstreamServer, client: httpx.AsyncClient) -> None:
    install_happy_routes(upstream)
    provider = CryptoPanicProvider(secret="tok123", base_url=f"{upstream.url}/cryptopanic/api/developer/v2")
    result, _ = await fetch_once(provider, client)
    request = upstream.last_request(PATHS["cryptopanic"])
    assert result is not None and len(result.records) == 2
    assert request.query["auth_token"] == ["tok123"] and request.query["kind"] == ["news"]


async def test_cryptocompare_adapter_sends_apikey_header(
    upstream: UpstreamServer, client: httpx.AsyncClient
) -> None:
    install_happy_routes(upstream)
    provider = CryptoCompareNewsProvider(secret="k-9", base_url=f"{upstream.url}/cryptocompare")
    result, _ = await fetch_once(provider, client)
    assert result is not None and len(result.records) == 2
    assert upstream.last_request(PATHS["cryptocompare"]).headers["authorization"] == "Apikey k-9"


async def test_twitter_adapter_sends_bearer_token(
    upstream: UpstreamServer, client: httpx.AsyncClient
) -> None:
    install_happy_routes(upstream)
    result, _ = await fetch_once(
        TwitterProvider(secret="b-1", base_url=f"{upstream.url}/twitter/2"), client
    )
    assert result is not None and len(result.records) == 2
    assert upstream.last_request(PATHS["twitter"]).headers["authorization"] == "Bearer b-1"


@pytest.mark.parametrize(
    ("provider", "reason"),
    [
        (CryptoPanicProvider(secret=""), "CRYPTOPANIC_TOKEN not set"),
        (CryptoCompareNewsProvider(secret=""), "CRYPTOCOMPARE_KEY not set"),
        (TwitterProvider(secret=""), "TWITTER_BEARER_TOKEN not set"),
    ],
)
async def test_keyed_provider_without_key_is_inactive_and_never_called(
    upstream: UpstreamServer, client: httpx.AsyncClient, provider: Provider[Any], reason: str
) -> None:
    result, pool = await fetch_once(provider, client)
    health = pool.health()[0]
    assert result is None and upstream.requests == []
    assert (health.status, health.reason) == ("inactive", reason)


async def test_rss_adapter_fetches_feed_with_publisher_name(
    upstream: UpstreamServer, client: httpx.AsyncClient
) -> None:
    from sources import Feed, RssProvider

    upstream.route("/feed.xml", fixture_reply("rss_cointelegraph.xml"))
    result, _ = await fetch_once(RssProvider(Feed("Cointelegraph", f"{upstream.url}/feed.xml")), client)
    assert result is not None and {item.source for item in result.records} == {"Cointelegraph"}


@pytest.mark.parametrize(
    "provider_class",
    [*MARKET_PROVIDERS, FearGreedProvider, CryptoPanicProvider, CryptoCompareNewsProvider, RedditProvider,
     TwitterProvider],
)
def test_provider_spec_names_existing_settings(provider_class: type[Provider[Any]]) -> None:
    spec, settings = provider_class.spec, SourcesSection()
    named = [name for name in (spec.url_setting, spec.secret_setting) if name is not None]
    assert spec.url_setting is not None and all(hasattr(settings, name) for name in named)
