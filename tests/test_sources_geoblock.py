"""Geo-blocks (HTTP 451, or 403 naming a location rule) against a local stand-in for the blocked upstream:
the breaker opens at once, the round fails over without losing a tick, one re-check per hold, and
health says why and what to set."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest

from core.records import PriceQuote
from desk.status import data_sources_section
from sources import SYMBOLS, BinanceProvider, BinanceStream, ProviderState, SourcePool, SourceService, is_geo_block
from tests.upstream import (
    PATHS,
    Reply,
    UpstreamServer,
    install_happy_routes,
    json_reply,
    settings_for,
    upstream,
)

__all__ = ["upstream"]

TICK = 0.05
RECHECK_S = 3600.0
# What api.binance.com answers from a restricted location (as quoted in public bug reports).
BINANCE_451_BODY = {
    "code": 0,
    "msg": "Service unavailable from a restricted location according to 'b. Eligibility' in "
    "https://www.binance.com/en/terms. Please contact customer service if you believe you "
    "received this message in error.",
}
CLOUDFRONT_403 = "The Amazon CloudFront distribution is configured to block access from your country."
MIRROR_FIX = "set BINANCE_URL=https://data-api.binance.vision"


def blocked_451() -> Reply:
    return json_reply(BINANCE_451_BODY, status=451)


class FakeClock:
    """Monotonic seconds that only move when told to."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as http:
        yield http


def binance_pool(server: UpstreamServer, client: httpx.AsyncClient, clock: FakeClock) -> SourcePool[PriceQuote]:
    provider = BinanceProvider(base_url=f"{server.url}/binance", min_interval_s=0.0, timeout_s=5.0)
    return SourcePool("market_data", [provider], client=client, clock=clock, blocked_recheck_s=RECHECK_S)


@pytest.mark.parametrize(
    ("status", "body", "blocked"),
    [
        (451, "", True),
        (403, BINANCE_451_BODY["msg"], True),
        (403, CLOUDFRONT_403, True),
        (403, '{"message":"invalid API key"}', False),
        (503, "Service unavailable from a restricted location", False),
    ],
)
def test_geo_block_is_451_or_a_403_naming_a_location(status: int, body: str, blocked: bool) -> None:
    assert is_geo_block(status, body) is blocked


async def test_service_fails_over_in_the_same_poll_when_a_provider_answers_451(upstream: UpstreamServer) -> None:
    """Prices keep flowing in the very round that met the 451, and health says why and what to set."""
    install_happy_routes(upstream)
    upstream.route(PATHS["binance"], blocked_451())
    service = SourceService(settings_for(upstream, sources_blocked_recheck_s=RECHECK_S), SYMBOLS)
    quotes = await service.poll_market_once()
    await service.stop()
    health = {h.name: h for h in service.health()}
    host = upstream.url.removeprefix("http://")
    assert {q.symbol for q in quotes} >= {"BTC", "ETH", "SOL"} and "binance" not in {q.source for q in quotes}
    assert health["binance"].status == "inactive" and health["binance"].reason == (
        f"blocked here: HTTP 451 Unavailable For Legal Reasons from {host}; {MIRROR_FIX}; re-check in 60 min")


async def test_service_does_not_ask_a_blocked_provider_again_on_every_poll(upstream: UpstreamServer) -> None:
    install_happy_routes(upstream)
    upstream.route(PATHS["binance"], blocked_451())
    service = SourceService(settings_for(upstream, sources_blocked_recheck_s=RECHECK_S), SYMBOLS)
    rounds = [await service.poll_market_once() for _ in range(5)]
    await service.stop()
    assert upstream.hits(PATHS["binance"]) == 1 and all(rounds)
    assert upstream.hits(PATHS["kraken"]) == 5


async def test_system_status_shows_the_blocked_reason(upstream: UpstreamServer) -> None:
    install_happy_routes(upstream)
    upstream.route(PATHS["binance"], blocked_451())
    service = SourceService(settings_for(upstream), SYMBOLS)
    await service.poll_market_once()
    await service.stop()
    section = data_sources_section(service.health(), "live", False).model_dump()
    entry = {e["name"]: e for e in section["sources"]}["binance"]
    assert entry["status"] == "inactive" and MIRROR_FIX in entry["reason"]
    assert entry["reason"].startswith("blocked here: HTTP 451 Unavailable For Legal Reasons")
    assert "restricted location" in entry["last_error"]


async def test_pool_opens_the_breaker_at_once_on_451(upstream: UpstreamServer, client: httpx.AsyncClient) -> None:
    """One 451 opens the breaker for the whole hold, without the failure streak of ordinary faults."""
    upstream.route(PATHS["binance"], blocked_451())
    clock = FakeClock()
    pool = binance_pool(upstream, client, clock)
    assert await pool.fetch_first() is None
    state = pool.state("binance")
    assert (state.breaker.state, state.breaker.consecutive_failures) == ("open", 1)
    assert state.breaker.reopens_at == clock.now + RECHECK_S


async def test_pool_rechecks_a_blocked_provider_once_per_hold(
    upstream: UpstreamServer, client: httpx.AsyncClient
) -> None:
    upstream.route(PATHS["binance"], [blocked_451(), blocked_451(), Reply(fixture="binance_ticker_24hr.json")])
    clock = FakeClock()
    pool = binance_pool(upstream, client, clock)
    for step in (0.0, RECHECK_S / 2, RECHECK_S / 2 - 1.0):
        clock.now += step
        await pool.fetch_first()
    assert upstream.hits(PATHS["binance"]) == 1
    clock.now += 1.0  # the hold is over: one re-check, still blocked, holds again
    assert await pool.fetch_first() is None and await pool.fetch_first() is None
    assert upstream.hits(PATHS["binance"]) == 2
    clock.now += RECHECK_S  # unblocked now: the re-check succeeds and health clears
    assert await pool.fetch_first() is not None
    assert pool.state("binance").health(clock.now).status == "active" and pool.state("binance").blocked_reason is None


async def test_pool_treats_a_geo_403_as_blocked_and_a_plain_403_as_a_failure(
    upstream: UpstreamServer, client: httpx.AsyncClient
) -> None:
    clock = FakeClock()
    pool = binance_pool(upstream, client, clock)
    upstream.route(PATHS["binance"], Reply(status=403, body=CLOUDFRONT_403.encode(), content_type="text/html"))
    await pool.fetch_first()
    assert pool.state("binance").breaker.state == "open" and pool.state("binance").blocked_reason
    other = binance_pool(upstream, client, clock)
    upstream.route(PATHS["binance"], json_reply({"code": -2015, "msg": "Invalid API-key"}, status=403))
    await other.fetch_first()
    assert other.state("binance").breaker.state == "closed" and other.state("binance").blocked_reason is None


def test_binance_names_the_mirror_as_the_fix_unless_it_is_the_mirror() -> None:
    assert BinanceProvider(base_url="https://api.binance.com").blocked_fix() == MIRROR_FIX
    assert BinanceProvider(base_url="https://data-api.binance.vision/").blocked_fix() is None
    assert BinanceStream(url="wss://stream.binance.com:9443/ws/!miniTicker@arr").blocked_fix() is not None
    assert BinanceStream().blocked_fix() is None


async def test_stream_handshake_451_blocks_the_stream_until_the_recheck(
    upstream: UpstreamServer, client: httpx.AsyncClient
) -> None:
    """The stream's HTTP handshake answered 451: no reconnect ladder, and the reason names the mirror."""
    upstream.route("/ws/*", blocked_451())
    pool: SourcePool[PriceQuote] = SourcePool("market_data", [], client=client, blocked_recheck_s=RECHECK_S)
    state: ProviderState = pool.add_external("binance_ws", priority=1, stale_after_s=30.0)
    url = upstream.url.replace("http://", "ws://") + "/ws/!miniTicker@arr"
    stream = BinanceStream(url=url, base_backoff_s=TICK, max_backoff_s=4 * TICK)
    task = asyncio.create_task(stream.run(_ignore, state))
    await asyncio.sleep(20 * TICK)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    reason = state.health(stream._clock()).reason or ""
    assert upstream.hits("/ws/*") == 1 and state.breaker.state == "open"
    assert reason.startswith("blocked here: HTTP 451 Unavailable For Legal Reasons from 127.0.0.1")
    assert "set BINANCE_WS_URL=wss://data-stream.binance.vision/ws/!miniTicker@arr" in reason


async def _ignore(quotes: list[PriceQuote]) -> None:
    return None
