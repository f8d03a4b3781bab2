"""`SourceService` end to end against the fake upstream: callbacks, failover, health, lifecycle."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import pytest

from core.config import Settings, SourcesSection
from core.records import FearGreedReading, NewsItem, PriceQuote, SocialPost
from sources import SYMBOLS, SourceService
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
    """Collects what the service hands to its callbacks."""

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

    def service(self, settings: SourcesSection) -> SourceService:
        return SourceService(
            settings,
            SYMBOLS,
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


async def test_service_delivers_every_kind_of_record(upstream: UpstreamServer) -> None:
    install_happy_routes(upstream)
    sink = Sink()
    async with sink.service(settings_for(upstream)) as service:
        await wait_for(lambda: bool(sink.quotes and sink.news and sink.fear_greed and sink.social))
        assert service.market_is_up()
    latest = service.latest_quotes()
    assert {"BTC", "ETH", "SOL", "USDT", "USDC", "DOGE"} <= set(latest)
    assert latest["BTC"].market_cap == 850012345678 and latest["BTC"].change_7d == -1.2048
    assert sink.fear_greed[0].value == 75
    posts, mentions = sink.social[0]
    assert len(posts) == 5 and mentions["reddit"]["BTC"] == 2


async def test_service_news_only_new_items_deduped_across_feeds(upstream: UpstreamServer) -> None:
    install_happy_routes(upstream)
    sink = Sink()
    service = sink.service(settings_for(upstream))
    first = await service.poll_news_once()
    second = await service.poll_news_once()
    await service.stop()
    titles = [item.title for item in first]
    copies = {"Bitcoin Tops $43K as ETF Demand Returns", "Bitcoin tops $43K as ETF demand returns!"}
    assert len(titles) == 5 and len(copies & set(titles)) == 1  # whichever feed answered first
    assert sink.news == first and second == []
    assert upstream.last_request(PATHS["feed_coindesk"]).headers.get("if-none-match") == '"cd-1"'


async def test_service_news_batches_are_oldest_first(upstream: UpstreamServer) -> None:
    install_happy_routes(upstream)
    batches: list[list[NewsItem]] = []

    async def on_news(items: list[NewsItem]) -> None:
        batches.append(items)

    service = SourceService(settings_for(upstream), SYMBOLS, on_news=on_news)
    await service.poll_news_once()
    await service.stop()
    assert len(batches) == 3
    assert all(batch == sorted(batch, key=lambda item: item.published_at) for batch in batches)


async def test_service_mark_news_seen_suppresses_stored_urls(upstream: UpstreamServer) -> None:
    install_happy_routes(upstream)
    service = SourceService(settings_for(upstream), SYMBOLS)
    service.mark_news_seen(urls=["https://www.coindesk.com/markets/2025/12/08/ether-options-traders-bet-on-2500"])
    titles = [item.title for item in await service.poll_news_once()]
    await service.stop()
    assert "Ether Options Traders Bet on $2,500 by Year-End" not in titles and titles


async def test_service_stream_prices_and_rest_binance_skipped_while_fresh(
    upstream: UpstreamServer, upstream_stream: UpstreamStream
) -> None:
    install_happy_routes(upstream)
    upstream_stream.serve([MINI_TICKER], interval_s=TICK, repeat=True)
    sink = Sink()
    async with sink.service(settings_for(upstream, upstream_stream, market_poll_s=0.2)) as service:
        await wait_for(lambda: any(q.price == 43270.55 for q in sink.quotes))
        await wait_for(lambda: upstream.hits(PATHS["kraken"]) >= 3)
    assert service.latest_quotes()["BTC"].source == "binance" and service.latest_quotes()["BTC"].price == 43270.55
    assert upstream.hits(PATHS["binance"]) <= 1  # at most the round that raced the first frame


async def test_service_falls_back_to_rest_when_stream_is_down(upstream: UpstreamServer) -> None:
    install_happy_routes(upstream)
    settings = settings_for(
        upstream,
        binance_ws_enabled=True,
        binance_ws_url=closed_url().replace("http", "ws"),
        sources_disabled=("kraken", "coinbase"),  # leave Binance REST as the freshest price
    )
    async with SourceService(settings, SYMBOLS) as service:
        await wait_for(lambda: upstream.hits(PATHS["binance"]) >= 2)
    health = {h.name: h for h in service.health()}
    assert health["binance_ws"].status == "inactive" and health["binance_ws"].last_error
    assert health["binance"].status == "active"
    assert (service.latest_quotes()["BTC"].source, service.latest_quotes()["BTC"].price) == ("binance", 43262.01)


async def test_service_one_hung_and_one_failing_provider_do_not_stop_others(upstream: UpstreamServer) -> None:
    install_happy_routes(upstream)
    upstream.route(PATHS["kraken"], HANG)
    upstream.route(PATHS["coingecko"], server_error(503))
    # The timeout ends the hung provider's call; at 0.3 s a loaded machine timed the healthy ones out too.
    service = SourceService(settings_for(upstream, sources_timeout_s=2.0), SYMBOLS)
    quotes = await service.poll_market_once()
    await service.stop()
    health = {h.name: h.status for h in service.health()}
    assert {q.symbol for q in quotes} >= {"BTC", "ETH", "SOL"}
    assert (health["kraken"], health["coingecko"], health["binance"]) == ("inactive", "inactive", "active")


async def test_service_market_is_down_when_every_market_source_fails(upstream: UpstreamServer) -> None:
    for name in ("coingecko", "binance", "kraken", "coinbase_any", "coinpaprika", "coinlore"):
        upstream.route(PATHS[name], server_error(503))
    sink = Sink()
    service = sink.service(settings_for(upstream))
    assert await service.poll_market_once() == []
    await service.stop()
    assert not service.market_is_up() and sink.quotes == []
    assert all(h.status == "inactive" for h in service.health() if h.category == "market_data")


async def test_service_keyless_sources_report_why_inactive(upstream: UpstreamServer) -> None:
    service = SourceService(settings_for(upstream), SYMBOLS)
    reasons = {h.name: h.reason for h in service.health() if h.status == "inactive"}
    await service.stop()
    assert reasons["twitter"] == "TWITTER_BEARER_TOKEN not set"
    assert reasons["cryptopanic"] == "CRYPTOPANIC_TOKEN not set"
    assert reasons["coingecko"] == "not polled yet"


async def test_service_callback_error_is_logged_and_polling_continues(
    upstream: UpstreamServer, caplog: pytest.LogCaptureFixture
) -> None:
    install_happy_routes(upstream)
    calls = 0

    async def broken(reading: FearGreedReading) -> None:
        nonlocal calls
        calls += 1
        raise RuntimeError("consumer bug")

    with caplog.at_level(logging.ERROR, logger="sources"):
        async with SourceService(settings_for(upstream), SYMBOLS, on_fear_greed=broken):
            await wait_for(lambda: calls >= 3)
    assert "on_fear_greed callback failed" in caplog.text


async def test_service_stop_cancels_every_task(upstream: UpstreamServer, upstream_stream: UpstreamStream) -> None:
    install_happy_routes(upstream)
    upstream.route(PATHS["coinpaprika"], HANG)  # keeps a fetch in flight at stop time
    service = SourceService(settings_for(upstream, upstream_stream), SYMBOLS)
    await service.start()
    await asyncio.sleep(2 * TICK)
    tasks = [t for t in asyncio.all_tasks() if t.get_name().startswith("sources.")]
    await service.stop()
    loops = {t.get_name() for t in tasks if not t.get_name().startswith("sources.fetch.")}
    assert loops == {f"sources.{n}" for n in ("market", "news", "fear_greed", "social", "binance_ws")}
    assert "sources.fetch.coinpaprika" in {t.get_name() for t in tasks}
    assert all(t.done() for t in tasks)


async def test_service_start_twice_raises(upstream: UpstreamServer) -> None:
    service = SourceService(settings_for(upstream), SYMBOLS)
    await service.start()
    with pytest.raises(RuntimeError, match="twice"):
        await service.start()
    await service.stop()


async def test_service_slow_provider_does_not_hold_back_fast_quotes(upstream: UpstreamServer) -> None:
    install_happy_routes(upstream)
    upstream.route(PATHS["coinpaprika"], HANG)
    first_at: list[float] = []

    async def on_quotes(quotes: list[PriceQuote]) -> None:
        first_at.append(asyncio.get_running_loop().time())

    service = SourceService(settings_for(upstream, sources_timeout_s=40 * TICK), SYMBOLS, on_quotes=on_quotes)
    started = asyncio.get_running_loop().time()
    await service.poll_market_once()
    finished = asyncio.get_running_loop().time()
    await service.stop()
    assert finished - started >= 40 * TICK and first_at[0] - started < 20 * TICK


async def test_service_disabled_sources_left_out(upstream: UpstreamServer) -> None:
    service = SourceService(settings_for(upstream, sources_disabled=("coinpaprika", "twitter")), SYMBOLS)
    names = {h.name for h in service.health()}
    await service.stop()
    assert "coinpaprika" not in names and "twitter" not in names and "coingecko" in names


async def test_service_takes_the_sources_section_of_the_settings() -> None:
    env = {
        "SYMBOLS": "btc, eth",
        "MARKET_POLL_S": "5",
        "NEWS_FEEDS": "https://decrypt.co/feed,https://example.org/rss",
        "SOURCES_DISABLED": "Coinbase",
        "CRYPTOPANIC_TOKEN": "secret",
    }
    settings = Settings.from_env(env)
    service = SourceService(settings.section(SourcesSection), settings.symbols)
    await service.stop()
    names = {h.name for h in service.health()}
    assert service.symbols == ("BTC", "ETH") and service.settings.market_poll_s == 5.0
    assert {"decrypt", "example_org", "cryptopanic"} <= names and "coinbase" not in names
    assert "secret" not in repr(service.settings)


@pytest.mark.parametrize(("poll_s", "window_s", "up_for_s"), [(10.0, 60.0, 60.0), (30.0, 60.0, 90.0)])
async def test_service_market_is_up_for_three_polls_or_the_window(
    poll_s: float, window_s: float, up_for_s: float
) -> None:
    """`MARKET_UP_WINDOW_S` is a floor: the market stays up for at least three market polls."""
    now = [1000.0]
    settings = SourcesSection(market_poll_s=poll_s, market_up_window_s=window_s)
    service = SourceService(settings, SYMBOLS, clock=lambda: now[0])
    await service.stop()
    service.market.state("kraken").record_success(now[0], latency_ms=1.0)
    now[0] += up_for_s
    assert service.market_is_up()
    now[0] += 1.0
    assert not service.market_is_up()
