"""`SourceService` end to end against the fake upstream: callbacks, failover, health, lifecycle."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable

import pytest

from core.records import FearGreedReading, NewsItem, PriceQuote, SocialPost
from sources import ENV_VARS, SourceService, SourceSettings
from tests.upstream import (
    FIXTURES,
    HANG,
    PATHS,
    UpstreamServer,
    UpstreamStream,
    closed_url,
    install_happy_routes,
    server_error,
    settings_for,
    upstream,
    upstream_stream,
)

__all__ = ["upstream", "upstream_stream"]

TICK = 0.05
MINI_TICKER = (FIXTURES / "binance_mini_ticker.json").read_text()


class Sink:
    """Collects what the hub hands to its callbacks."""

    def __init__(self) -> None:
        self.quotes: list[PriceQuote] = []
        self.news: list[NewsItem] = []
        self.fear_greed: list[FearGreedReading] = []
        self.social: list[tuple[list[SocialPost], dict[str, dict[str, int]]]] = []

    async def on_quotes(self, quotes: list[PriceQuote]) -> None:
        self.quotes.extend(quotes)

    async def on_news(self, items: list[NewsItem]) -> None:
        self.news.extend(items)

    async def on_fear_greed(self, reading: FearGreedReading) -> None:
        self.fear_greed.append(reading)

    async def on_social(self, posts: list[SocialPost], mentions: dict[str, dict[str, int]]) -> None:
        self.social.append((posts, mentions))

    def hub(self, settings: SourceSettings) -> SourceService:
        return SourceService(
            settings,
            on_quotes=self.on_quotes,
            on_news=self.on_news,
            on_fear_greed=self.on_fear_greed,
            on_social=self.on_social,
        )


async def wait_for(condition: Callable[[], bool], limit_s: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + limit_s
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(TICK / 5)


async def test_hub_delivers_every_kind_of_record(upstream: UpstreamServer) -> None:
    install_happy_routes(upstream)
    sink = Sink()
    async with sink.hub(settings_for(upstream)) as hub:
        await wait_for(lambda: bool(sink.quotes and sink.news and sink.fear_greed and sink.social))
        assert hub.market_is_up()
    latest = hub.latest_quotes()
    assert {"BTC", "ETH", "SOL", "USDT", "USDC", "DOGE"} <= set(latest)
    assert latest["BTC"].market_cap == 850012345678 and latest["BTC"].change_7d == -1.2048
    assert sink.fear_greed[0].value == 75
    posts, mentions = sink.social[0]
    assert len(posts) == 5 and mentions["reddit"]["BTC"] == 2


async def test_hub_news_only_new_items_deduped_across_feeds(upstream: UpstreamServer) -> None:
    install_happy_routes(upstream)
    sink = Sink()
    hub = sink.hub(settings_for(upstream))
    first = await hub.poll_news_once()
    second = await hub.poll_news_once()
    await hub.stop()
    titles = [item.title for item in first]
    copies = {"Bitcoin Tops $43K as ETF Demand Returns", "Bitcoin tops $43K as ETF demand returns!"}
    assert len(titles) == 5 and len(copies & set(titles)) == 1  # whichever feed answered first
    assert sink.news == first and second == []
    assert upstream.last_request(PATHS["feed_coindesk"]).headers.get("if-none-match") == '"cd-1"'


async def test_hub_news_batches_are_oldest_first(upstream: UpstreamServer) -> None:
    install_happy_routes(upstream)
    batches: list[list[NewsItem]] = []

    async def on_news(items: list[NewsItem]) -> None:
        batches.append(items)

    hub = SourceService(settings_for(upstream), on_news=on_news)
    await hub.poll_news_once()
    await hub.stop()
    assert len(batches) == 3
    assert all(batch == sorted(batch, key=lambda item: item.published_at) for batch in batches)


async def test_hub_mark_news_seen_suppresses_stored_urls(upstream: UpstreamServer) -> None:
    install_happy_routes(upstream)
    hub = SourceService(settings_for(upstream))
    hub.mark_news_seen(urls=["https://www.coindesk.com/markets/2025/12/08/ether-options-traders-bet-on-2500"])
    titles = [item.title for item in await hub.poll_news_once()]
    await hub.stop()
    assert "Ether Options Traders Bet on $2,500 by Year-End" not in titles and titles


async def test_hub_stream_prices_and_rest_binance_skipped_while_fresh(
    upstream: UpstreamServer, upstream_stream: UpstreamStream
) -> None:
    install_happy_routes(upstream)
    upstream_stream.serve([MINI_TICKER], interval_s=TICK, repeat=True)
    sink = Sink()
    async with sink.hub(settings_for(upstream, upstream_stream, market_poll_s=0.2)) as hub:
        await wait_for(lambda: any(q.price == 43270.55 for q in sink.quotes))
        await wait_for(lambda: upstream.hits(PATHS["kraken"]) >= 3)
    assert hub.latest_quotes()["BTC"].source == "binance" and hub.latest_quotes()["BTC"].price == 43270.55
    assert upstream.hits(PATHS["binance"]) <= 1  # at most the round that raced the first frame


async def test_hub_falls_back_to_rest_when_stream_is_down(upstream: UpstreamServer) -> None:
    install_happy_routes(upstream)
    settings = settings_for(
        upstream,
        binance_ws_enabled=True,
        binance_ws_url=closed_url().replace("http", "ws"),
        disabled=frozenset({"kraken", "coinbase"}),  # leave Binance REST as the freshest price
    )
    async with SourceService(settings) as hub:
        await wait_for(lambda: upstream.hits(PATHS["binance"]) >= 2)
    health = {h.name: h for h in hub.health()}
    assert health["binance_ws"].status == "inactive" and health["binance_ws"].last_error
    assert health["binance"].status == "active"
    assert (hub.latest_quotes()["BTC"].source, hub.latest_quotes()["BTC"].price) == ("binance", 43262.01)


async def test_hub_one_hung_and_one_failing_provider_do_not_stop_others(upstream: UpstreamServer) -> None:
    install_happy_routes(upstream)
    upstream.route(PATHS["kraken"], HANG)
    upstream.route(PATHS["coingecko"], server_error(503))
    # The timeout ends the hung provider's call; at 0.3 s a loaded machine timed the healthy ones out too.
    hub = SourceService(settings_for(upstream, provider_timeout_s=2.0))
    quotes = await hub.poll_market_once()
    await hub.stop()
    health = {h.name: h.status for h in hub.health()}
    assert {q.symbol for q in quotes} >= {"BTC", "ETH", "SOL"}
    assert (health["kraken"], health["coingecko"], health["binance"]) == ("inactive", "inactive", "active")


async def test_hub_market_is_down_when_every_market_source_fails(upstream: UpstreamServer) -> None:
    for name in ("coingecko", "binance", "kraken", "coinbase_any", "coinpaprika", "coinlore"):
        upstream.route(PATHS[name], server_error(503))
    sink = Sink()
    hub = sink.hub(settings_for(upstream))
    assert await hub.poll_market_once() == []
    await hub.stop()
    assert not hub.market_is_up() and sink.quotes == []
    assert all(h.status == "inactive" for h in hub.health() if h.category == "market_data")


async def test_hub_keyless_sources_report_why_inactive(upstream: UpstreamServer) -> None:
    hub = SourceService(settings_for(upstream))
    reasons = {h.name: h.reason for h in hub.health() if h.status == "inactive"}
    await hub.stop()
    assert reasons["twitter"] == "TWITTER_BEARER_TOKEN not set"
    assert reasons["cryptopanic"] == "CRYPTOPANIC_TOKEN not set"
    assert reasons["coingecko"] == "not polled yet"


async def test_hub_callback_error_is_logged_and_polling_continues(
    upstream: UpstreamServer, caplog: pytest.LogCaptureFixture
) -> None:
    install_happy_routes(upstream)
    calls = 0

    async def broken(reading: FearGreedReading) -> None:
        nonlocal calls
        calls += 1
        raise RuntimeError("consumer bug")

    with caplog.at_level(logging.ERROR, logger="sources"):
        async with SourceService(settings_for(upstream), on_fear_greed=broken):
            await wait_for(lambda: calls >= 3)
    assert "on_fear_greed callback failed" in caplog.text


async def test_hub_stop_cancels_every_task(upstream: UpstreamServer, upstream_stream: UpstreamStream) -> None:
    install_happy_routes(upstream)
    upstream.route(PATHS["coinpaprika"], HANG)  # keeps a fetch in flight at stop time
    hub = SourceService(settings_for(upstream, upstream_stream))
    await hub.start()
    await asyncio.sleep(2 * TICK)
    tasks = [t for t in asyncio.all_tasks() if t.get_name().startswith("sources.")]
    await hub.stop()
    loops = {t.get_name() for t in tasks if not t.get_name().startswith("sources.fetch.")}
    assert loops == {f"sources.{n}" for n in ("market", "news", "fear_greed", "social", "binance_ws")}
    assert "sources.fetch.coinpaprika" in {t.get_name() for t in tasks}
    assert all(t.done() for t in tasks)


async def test_hub_start_twice_raises(upstream: UpstreamServer) -> None:
    hub = SourceService(settings_for(upstream))
    await hub.start()
    with pytest.raises(RuntimeError, match="twice"):
        await hub.start()
    await hub.stop()


async def test_hub_slow_provider_does_not_hold_back_fast_quotes(upstream: UpstreamServer) -> None:
    install_happy_routes(upstream)
    upstream.route(PATHS["coinpaprika"], HANG)
    first_at: list[float] = []

    async def on_quotes(quotes: list[PriceQuote]) -> None:
        first_at.append(asyncio.get_running_loop().time())

    hub = SourceService(settings_for(upstream, provider_timeout_s=40 * TICK), on_quotes=on_quotes)
    started = asyncio.get_running_loop().time()
    await hub.poll_market_once()
    finished = asyncio.get_running_loop().time()
    await hub.stop()
    assert finished - started >= 40 * TICK and first_at[0] - started < 20 * TICK


async def test_hub_disabled_sources_left_out(upstream: UpstreamServer) -> None:
    hub = SourceService(settings_for(upstream, disabled=frozenset({"coinpaprika", "twitter"})))
    names = {h.name for h in hub.health()}
    await hub.stop()
    assert "coinpaprika" not in names and "twitter" not in names and "coingecko" in names


def test_settings_from_env_reads_every_documented_var() -> None:
    env = {
        "SYMBOLS": "btc, eth",
        "MARKET_POLL_S": "5",
        "NEWS_FEEDS": "https://decrypt.co/feed,https://example.org/rss",
        "BINANCE_WS_ENABLED": "false",
        "SOURCES_DISABLED": "Coinbase",
        "KRAKEN_URL": "http://127.0.0.1:1/k",
        "CRYPTOPANIC_TOKEN": "secret",
        "SOURCES_TIMEOUT_S": "3",
    }
    settings = SourceSettings.from_env(env)
    assert settings.symbols == ("BTC", "ETH") and settings.market_poll_s == 5.0
    assert [f.name for f in settings.news_feeds] == ["Decrypt", "example.org"]
    assert (settings.binance_ws_enabled, settings.disabled, settings.kraken_url) == (
        False,
        frozenset({"coinbase"}),
        "http://127.0.0.1:1/k",
    )
    assert settings.provider_timeout_s == 3.0 and "secret" not in repr(settings)
    assert set(env) <= set(ENV_VARS)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"SYMBOLS": "BTC,PEPE"}, "SYMBOLS has PEPE, which the live providers do not know"),
        ({"MARKET_POLL_S": "fast"}, "MARKET_POLL_S must be a valid number"),
        ({"NEWS_POLL_S": "0"}, "NEWS_POLL_S must be greater than 0"),
        ({"BINANCE_WS_ENABLED": "maybe"}, "BINANCE_WS_ENABLED"),
    ],
)
def test_settings_from_env_rejects_bad_values(env: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SourceSettings.from_env(env)


def test_settings_defaults_respect_provider_rate_limits() -> None:
    settings = SourceSettings.from_env({})
    assert (settings.market_poll_s, settings.news_poll_s, settings.fng_poll_s, settings.social_poll_s) == (
        10.0,
        120.0,
        600.0,
        180.0,
    )
    assert dataclasses.replace(settings, budget_scale=0.0).budget_scale == 0.0
