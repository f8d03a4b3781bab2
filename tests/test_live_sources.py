"""Live providers end to end: the real app polls local stand-ins of every upstream API.

Failover, outage and recovery are asserted through the WebSocket endpoints, as a client sees them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import websockets

from testbed.harness import MS, AppProcess, recv_until, running_app
from tests.upstream import (
    PATHS,
    UpstreamServer,
    html_page,
    install_happy_routes,
    malformed_json,
    server_error,
)

MARKET_PATHS = ("coingecko", "binance", "kraken", "coinbase_btc", "coinbase_eth", "coinbase_any", "coinpaprika",
                "coinlore")


def live_env(server: UpstreamServer) -> dict[str, str]:
    base = server.url
    return {
        "DATA_MODE": "live",
        "ENABLE_SOURCES": "1",
        "COINGECKO_URL": f"{base}/coingecko/api/v3",
        "BINANCE_URL": f"{base}/binance",
        "BINANCE_WS_ENABLED": "0",
        "KRAKEN_URL": f"{base}/kraken",
        "COINBASE_URL": f"{base}/coinbase",
        "COINPAPRIKA_URL": f"{base}/coinpaprika/v1",
        "COINLORE_URL": f"{base}/coinlore/api",
        "FNG_URL": f"{base}/fng",
        "REDDIT_URL": f"{base}/reddit",
        "NEWS_FEEDS": ",".join(f"{base}{PATHS[k]}" for k in ("feed_coindesk", "feed_cointelegraph")),
        "MARKET_POLL_S": "0.2",
        "NEWS_POLL_S": "0.5",
        "FNG_POLL_S": "0.5",
        "SOCIAL_POLL_S": "0.5",
        "SOURCES_BUDGET_SCALE": "0",
        "SOURCES_BACKOFF_S": "0.2",
        "SOURCES_MAX_BACKOFF_S": "1",
        "MARKET_UP_WINDOW_S": "1.5",
    }


@pytest.fixture(scope="module")
def upstream_server() -> Iterator[UpstreamServer]:
    with UpstreamServer() as server:
        install_happy_routes(server)
        yield server


@pytest.fixture(scope="module")
def app(upstream_server, tmp_path_factory) -> Iterator[AppProcess]:
    with running_app(tmp_path_factory.mktemp("live"), **live_env(upstream_server)) as proc:
        yield proc


def _price(symbol: str):
    return lambda m: m["type"] == "price_update" and m["data"]["symbol"] == symbol


async def _status(app: AppProcess, predicate=lambda m: True) -> dict:
    async with websockets.connect(app.ws("/api/monitoring/ws")) as ws:
        return await recv_until(ws, lambda m: m["type"] == "system_status" and predicate(m), timeout=10_000 * MS)


async def test_live_prices_name_their_provider_and_no_simulator(app):
    async with websockets.connect(app.ws("/ws/market_data?symbols=BTC")) as ws:
        msg = await recv_until(ws, _price("BTC"), timeout=10_000 * MS)
    assert msg["source"] in {"coingecko", "binance", "kraken", "coinbase", "coinpaprika", "coinlore"}
    assert msg["data"]["price"] > 0 and msg["data"]["market_cap"] and msg["data"]["change_7d"] is not None
    status = await _status(app, lambda m: any(
        s["name"] == "coingecko" and s["status"] == "active" for s in m["data_sources"]["sources"]))
    assert status["data_sources"]["simulated"] is False
    names = {s["name"]: s for s in status["data_sources"]["sources"]}
    assert names["simulator"]["status"] == "inactive" and names["coingecko"]["last_success"]
    assert status["data_sources"]["categories"]["market_data"]["total"] >= 6
    assert status["data_sources"]["pools"] == len(status["data_sources"]["categories"])


async def test_rss_news_arrive_with_source_and_image(app):
    async with websockets.connect(app.ws("/ws/news?since=0")) as ws:
        msg = await recv_until(ws, lambda m: m["type"] == "news", timeout=10_000 * MS)
    data = msg["data"]
    assert data["source"] and data["url"].startswith("http") and data["published_at"].endswith("Z")
    assert "<" not in data["description"]


async def test_fear_greed_and_reddit_reach_the_sentiment_stream(app):
    def ready(m):
        return m["type"] == "sentiment_update" and m["data"]["fear_greed"]["value"] is not None

    async with websockets.connect(app.ws("/ws/sentiment")) as ws:
        msg = await recv_until(ws, ready, timeout=10_000 * MS)
    data = msg["data"]
    assert data["fear_greed"]["value"] == 75 and data["fear_greed"]["classification"] == "Extreme Greed"
    assert data["social"]["twitter"]["reason"] == "TWITTER_BEARER_TOKEN not set"
    assert data["social"]["reddit"]["mentions"] is not None
    assert data["market"]["overall"] in {"bullish", "bearish", "neutral"}


async def test_garbage_from_one_provider_is_counted_and_others_carry_on(app, upstream_server):
    upstream_server.route(PATHS["kraken"], html_page())
    upstream_server.route(PATHS["coinpaprika"], malformed_json())
    try:
        status = await _status(app, lambda m: any(
            s["name"] == "kraken" and s["last_error"] for s in m["data_sources"]["sources"]))
        async with websockets.connect(app.ws("/ws/market_data?symbols=ETH")) as ws:
            msg = await recv_until(ws, _price("ETH"), timeout=5000 * MS)
    finally:
        install_happy_routes(upstream_server)
    kraken = next(s for s in status["data_sources"]["sources"] if s["name"] == "kraken")
    assert kraken["status"] in {"degraded", "inactive"} and kraken["last_error"]
    assert msg["data"]["price"] > 0


async def test_all_market_providers_down_gives_one_connection_error_then_recovers(app, upstream_server):
    async with websockets.connect(app.ws("/ws/market_data?symbols=BTC")) as ws:
        await recv_until(ws, _price("BTC"), timeout=10_000 * MS)
        for key in MARKET_PATHS:
            upstream_server.route(PATHS[key], server_error(503))
        try:
            err = await recv_until(ws, lambda m: m["type"] == "error", timeout=15_000 * MS)
            stale = await recv_until(ws, _price("BTC"))
            errors_seen = 0
            for _ in range(8):  # a few more ticks: the error is not repeated every second
                m = await recv_until(ws, lambda m: m["type"] in ("error", "price_update"))
                errors_seen += m["type"] == "error"
        finally:
            install_happy_routes(upstream_server)
        fresh = await recv_until(ws, lambda m: _price("BTC")(m) and m["data"]["age_s"] < stale["data"]["age_s"],
                                 timeout=15_000 * MS)
    assert err["error"]["code"] == "CONNECTION_ERROR"
    assert errors_seen == 0
    assert fresh["source"] != "simulator"


async def test_news_are_not_republished_after_a_restart(upstream_server, tmp_path):
    env = live_env(upstream_server)
    with running_app(tmp_path, **env) as first:
        async with websockets.connect(first.ws("/ws/news?since=0")) as ws:
            await recv_until(ws, lambda m: m["type"] == "news", timeout=10_000 * MS)
    with running_app(tmp_path, **env) as second:
        async with websockets.connect(second.ws("/ws/news")) as ws:
            with pytest.raises(TimeoutError):
                await recv_until(ws, lambda m: m["type"] == "news", timeout=2000 * MS)
        stored = json.loads(__import__("httpx").get(f"{second.http}/api/news?limit=100").text)
    assert stored["count"] >= 1
