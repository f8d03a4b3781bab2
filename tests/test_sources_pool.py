"""The pool against injected faults: every fault is logged, counted, yields nothing and never stops
the other providers; breaker, Retry-After, budgets and health status."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from sources import (
    CoinGeckoProvider,
    CoinLoreProvider,
    Feed,
    FetchResult,
    KrakenProvider,
    RssProvider,
    SourcePool,
)
from tests.upstream import (
    DROP,
    ENDLESS,
    HANG,
    PATHS,
    Fault,
    Reply,
    UpstreamServer,
    closed_url,
    fixture_reply,
    html_page,
    huge,
    install_happy_routes,
    json_reply,
    malformed_json,
    rate_limited,
    server_error,
    upstream,
)

__all__ = ["upstream"]

TIMEOUT_S = 0.5  # provider timeout used where a fault must run into it


class FakeClock:
    """Monotonic seconds that only move when told to."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as http:
        yield http


def coingecko(server: UpstreamServer, **kwargs: Any) -> CoinGeckoProvider:
    kwargs.setdefault("timeout_s", TIMEOUT_S)
    kwargs.setdefault("min_interval_s", 0.0)
    return CoinGeckoProvider(base_url=f"{server.url}/coingecko/api/v3", **kwargs)


def coinlore(server: UpstreamServer) -> CoinLoreProvider:
    return CoinLoreProvider(base_url=f"{server.url}/coinlore/api", timeout_s=5.0, min_interval_s=0.0)


async def tripped_pool(
    server: UpstreamServer, client: httpx.AsyncClient, clock: FakeClock, *, base_backoff_s: float
) -> SourcePool[Any]:
    """Return a CoinGecko pool after the three failed fetches that open its breaker."""
    pool: SourcePool[Any] = SourcePool(
        "market_data", [coingecko(server)], client=client, clock=clock, base_backoff_s=base_backoff_s
    )
    for _ in range(3):
        await pool.fetch_first()
    return pool


# Each fault as served at CoinGecko's path (None: a base URL nobody listens on), and the error
# it must be reported as.
FAULTS: dict[str, tuple[Reply | Fault | None, str]] = {
    "http_503": (server_error(503), "UpstreamHTTPError: HTTP 503"),
    "http_500": (server_error(500), "UpstreamHTTPError: HTTP 500"),
    "rate_limited_429": (rate_limited("30"), "UpstreamRateLimited: HTTP 429: rate limited, retry after 30 s"),
    "html_instead_of_json": (html_page(), "UpstreamGarbage: coingecko: expected JSON, got an HTML page"),
    "malformed_json": (malformed_json(), "UpstreamGarbage: coingecko: malformed JSON"),
    "missing_fields": (json_reply([{"id": "bitcoin", "symbol": "btc"}]), "current_price is None"),
    "mistyped_fields": (
        json_reply([{"id": "bitcoin", "current_price": {"usd": 1}}]),
        "current_price is a dict",
    ),
    "empty_list": (json_reply([]), "expected at least one item, got an empty list"),
    "absurd_negative_price": (json_reply([{"id": "bitcoin", "current_price": -43000}]), "expected > 0"),
    "absurd_zero_price": (json_reply([{"id": "bitcoin", "current_price": 0}]), "expected > 0"),
    "connection_dropped": (DROP, "UpstreamConnectionError"),
    "connection_refused": (None, "UpstreamConnectionError"),
    "hang_timeout": (HANG, "UpstreamTimeout"),
    "endless_chunked_body": (ENDLESS, "ResponseTooLarge"),
    "huge_body": (huge(10_000_000), "ResponseTooLarge"),
}


@pytest.mark.parametrize("fault", sorted(FAULTS))
async def test_pool_fault_is_logged_counted_and_yields_nothing(
    upstream: UpstreamServer, client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture, fault: str
) -> None:
    install_happy_routes(upstream)
    reply, expected_error = FAULTS[fault]
    if reply is None:
        faulty = CoinGeckoProvider(base_url=f"{closed_url()}/api/v3", timeout_s=TIMEOUT_S, min_interval_s=0)
    else:
        upstream.route(PATHS["coingecko"], reply)
        faulty = coingecko(upstream)
    faulty.max_bytes = 1_000_000  # the endless and huge bodies must hit the cap, not the timeout
    pool: SourcePool[Any] = SourcePool("market_data", [faulty, coinlore(upstream)], client=client)
    with caplog.at_level(logging.WARNING, logger="sources"):
        results = await pool.fetch_all()
    assert [r.provider for r in results] == ["coinlore"]  # the other provider still delivered
    state = pool.state("coingecko")
    assert (state.failures, state.successes) == (1, 0)
    assert state.last_error is not None and expected_error in state.last_error
    assert any("coingecko" in r.getMessage() and "failed" in r.getMessage() for r in caplog.records)
    assert pool.health()[0].status == "inactive"


async def test_pool_hung_provider_does_not_delay_the_others(
    upstream: UpstreamServer, client: httpx.AsyncClient
) -> None:
    install_happy_routes(upstream)
    upstream.route(PATHS["coingecko"], HANG)
    pool: SourcePool[Any] = SourcePool(
        "market_data", [coingecko(upstream), coinlore(upstream)], client=client
    )
    started = time.perf_counter()
    results = await pool.fetch_all()
    elapsed = time.perf_counter() - started
    assert [r.provider for r in results] == ["coinlore"] and results[0].latency_ms < TIMEOUT_S * 1000 / 2
    assert TIMEOUT_S <= elapsed < TIMEOUT_S * 3
    assert "UpstreamTimeout" in (pool.state("coingecko").last_error or "")


async def test_pool_endless_body_cut_off_by_size_cap(
    upstream: UpstreamServer, client: httpx.AsyncClient
) -> None:
    upstream.route(PATHS["coingecko"], ENDLESS)
    provider = coingecko(upstream, timeout_s=5.0)
    provider.max_bytes = 200_000
    pool: SourcePool[Any] = SourcePool("market_data", [provider], client=client)
    assert await pool.fetch_first() is None
    assert "ResponseTooLarge" in (pool.state("coingecko").last_error or "")


async def test_pool_breaker_opens_then_skips_calls(
    upstream: UpstreamServer, client: httpx.AsyncClient
) -> None:
    upstream.route(PATHS["coingecko"], server_error(503))
    clock = FakeClock()
    pool: SourcePool[Any] = SourcePool("market_data", [coingecko(upstream)], client=client, clock=clock)
    for _ in range(3):
        await pool.fetch_first()
    assert await pool.fetch_first() is None
    assert upstream.hits(PATHS["coingecko"]) == 3
    health = pool.health()[0]
    assert health.status == "inactive" and health.reason is not None and "circuit open" in health.reason


async def test_pool_breaker_half_open_probe_recovers(
    upstream: UpstreamServer, client: httpx.AsyncClient
) -> None:
    upstream.route(PATHS["coingecko"], [server_error(503)] * 3 + [fixture_reply("coingecko_markets.json")])
    clock = FakeClock()
    pool = await tripped_pool(upstream, client, clock, base_backoff_s=15)
    clock.advance(14.9)
    assert await pool.fetch_first() is None and upstream.hits(PATHS["coingecko"]) == 3
    clock.advance(0.2)
    result = await pool.fetch_first()
    assert result is not None and pool.state("coingecko").breaker.state == "closed"
    assert pool.health()[0].status == "active"


async def test_pool_breaker_failed_probe_doubles_backoff(
    upstream: UpstreamServer, client: httpx.AsyncClient
) -> None:
    upstream.route(PATHS["coingecko"], server_error(503))
    clock = FakeClock()
    pool = await tripped_pool(upstream, client, clock, base_backoff_s=10)
    clock.advance(10)
    await pool.fetch_first()  # the probe fails
    clock.advance(19)
    await pool.fetch_first()
    assert upstream.hits(PATHS["coingecko"]) == 4
    clock.advance(1)
    await pool.fetch_first()
    assert upstream.hits(PATHS["coingecko"]) == 5


async def test_pool_honours_retry_after(upstream: UpstreamServer, client: httpx.AsyncClient) -> None:
    upstream.route(PATHS["coingecko"], [rate_limited("120"), fixture_reply("coingecko_markets.json")])
    clock = FakeClock()
    pool: SourcePool[Any] = SourcePool("market_data", [coingecko(upstream)], client=client, clock=clock)
    await pool.fetch_first()
    clock.advance(119)
    assert await pool.fetch_first() is None and upstream.hits(PATHS["coingecko"]) == 1
    health = pool.health()[0]
    assert health.last_error is not None and "429" in health.last_error
    clock.advance(2)
    assert await pool.fetch_first() is not None


async def test_pool_rate_budget_skips_without_counting_failure(
    upstream: UpstreamServer, client: httpx.AsyncClient
) -> None:
    install_happy_routes(upstream)
    clock = FakeClock()
    provider = coingecko(upstream, min_interval_s=30.0)
    pool: SourcePool[Any] = SourcePool("market_data", [provider], client=client, clock=clock)
    assert await pool.fetch_first() is not None
    assert await pool.fetch_first() is None
    assert upstream.hits(PATHS["coingecko"]) == 1 and pool.state("coingecko").failures == 0
    clock.advance(30)
    assert await pool.fetch_first() is not None


async def test_pool_health_degraded_after_failure_following_success(
    upstream: UpstreamServer, client: httpx.AsyncClient
) -> None:
    upstream.route(PATHS["coingecko"], [fixture_reply("coingecko_markets.json"), server_error(502)])
    pool: SourcePool[Any] = SourcePool("market_data", [coingecko(upstream)], client=client)
    await pool.fetch_first()
    await pool.fetch_first()
    health = pool.health()[0]
    assert health.status == "degraded" and health.last_success is not None
    assert health.last_error == "UpstreamHTTPError: HTTP 502: upstream temporarily unavailable"


async def test_pool_health_degraded_when_stale(upstream: UpstreamServer, client: httpx.AsyncClient) -> None:
    install_happy_routes(upstream)
    clock = FakeClock()
    pool: SourcePool[Any] = SourcePool(
        "market_data", [coingecko(upstream)], client=client, clock=clock, poll_interval_s=10.0
    )
    await pool.fetch_first()
    assert pool.health()[0].status == "active" and pool.health()[0].latency_ms is not None
    clock.advance(60)
    health = pool.health()[0]
    assert health.status == "degraded" and health.reason is not None and health.reason.startswith("stale")


async def test_pool_not_polled_yet_is_inactive(client: httpx.AsyncClient) -> None:
    pool: SourcePool[Any] = SourcePool(
        "market_data", [KrakenProvider(base_url="http://127.0.0.1:9")], client=client
    )
    health = pool.health()[0]
    assert (health.status, health.reason, health.last_success) == ("inactive", "not polled yet", None)


async def test_pool_fetch_first_falls_back_by_priority(
    upstream: UpstreamServer, client: httpx.AsyncClient
) -> None:
    install_happy_routes(upstream)
    upstream.route(PATHS["coingecko"], server_error(503))
    primary = coingecko(upstream, priority=1)
    pool: SourcePool[Any] = SourcePool("market_data", [coinlore(upstream), primary], client=client)
    result = await pool.fetch_first()
    assert result is not None and result.provider == "coinlore"
    assert [h.name for h in pool.health()] == ["coingecko", "coinlore"]


async def test_pool_parser_bug_is_counted_not_raised(
    upstream: UpstreamServer, client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    class Broken(CoinGeckoProvider):
        async def fetch(self, http: Any) -> list[Any]:
            raise KeyError("bug")

    pool: SourcePool[Any] = SourcePool("market_data", [Broken(base_url=upstream.url)], client=client)
    with caplog.at_level(logging.ERROR, logger="sources"):
        assert await pool.fetch_first() is None
    assert pool.state("coingecko").failures == 1 and "crashed" in caplog.text


def test_pool_rejects_duplicate_names_and_wrong_category() -> None:
    http = httpx.AsyncClient()
    with pytest.raises(ValueError, match="unique"):
        SourcePool("market_data", [CoinGeckoProvider(), CoinGeckoProvider()], client=http)
    with pytest.raises(ValueError, match="category"):
        SourcePool("news", [CoinGeckoProvider()], client=http)


async def test_rss_conditional_get_sends_validators_and_handles_304(
    upstream: UpstreamServer, client: httpx.AsyncClient
) -> None:
    modified = "Mon, 08 Dec 2025 10:20:00 GMT"
    upstream.route("/feed.xml", fixture_reply("rss_coindesk.xml", etag='"v1"', last_modified=modified))
    provider = RssProvider(Feed("CoinDesk", f"{upstream.url}/feed.xml"), min_interval_s=0)
    pool: SourcePool[Any] = SourcePool("news", [provider], client=client)
    first: FetchResult[Any] | None = await pool.fetch_first()
    second = await pool.fetch_first()
    request = upstream.last_request("/feed.xml")
    assert first is not None and len(first.records) == 3
    assert second is not None and second.records == [] and provider.not_modified_count == 1
    assert (request.headers["if-none-match"], request.headers["if-modified-since"]) == ('"v1"', modified)
    assert pool.health()[0].status == "active"


async def test_rss_broken_xml_keeps_no_validators(
    upstream: UpstreamServer, client: httpx.AsyncClient
) -> None:
    upstream.route("/feed.xml", fixture_reply("rss_truncated.xml", etag='"bad"'))
    provider = RssProvider(Feed("Decrypt", f"{upstream.url}/feed.xml"), min_interval_s=0)
    pool: SourcePool[Any] = SourcePool("news", [provider], client=client)
    assert await pool.fetch_first() is None
    assert provider.etag is None and "UpstreamGarbage" in (pool.state("decrypt").last_error or "")


@pytest.mark.parametrize(
    "make_body",
    [lambda: json.dumps({"oops": True}).encode(), lambda: b"\x00\xff\xfe garbage"],
)
async def test_pool_binary_or_foreign_body_is_garbage(
    upstream: UpstreamServer, client: httpx.AsyncClient, make_body: Callable[[], bytes]
) -> None:
    upstream.route(PATHS["coingecko"], Reply(body=make_body()))
    pool: SourcePool[Any] = SourcePool("market_data", [coingecko(upstream)], client=client)
    assert await pool.fetch_first() is None
    assert "UpstreamGarbage" in (pool.state("coingecko").last_error or "")
