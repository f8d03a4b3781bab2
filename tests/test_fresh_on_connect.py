"""A client that connects now sees what the server already has: news backlog and a current sentiment."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import httpx
import pytest
import websockets

from core.endpoints import STATUS_PATH
from testbed.harness import MS, AppProcess, recv_json, recv_until, running_app
from tests.test_live_sources import live_env
from tests.upstream import UpstreamServer, install_happy_routes


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppProcess]:
    with running_app(tmp_path_factory.mktemp("fresh")) as proc:
        yield proc


async def _news_on_connect(app: AppProcess, query: str) -> list[dict]:
    """Connect to /ws/news with `query`; return what arrives before the connection goes quiet."""
    got = []
    async with websockets.connect(app.ws(f"/ws/news?{query}")) as ws:
        while True:
            try:
                got.append(await recv_json(ws, 500 * MS))
            except TimeoutError:
                return got


async def test_news_backlog_sends_the_latest_items_oldest_first(app):
    seqs = [app.post_news(title=f"backlog {i}").json()["seq"] for i in range(5)]
    got = await _news_on_connect(app, "backlog=3")
    assert [(m["type"], m["seq"]) for m in got] == [("news", seq) for seq in seqs[-3:]]


async def test_news_backlog_holds_only_items_that_pass_the_url_filter(app):
    wanted = [app.post_news(title=f"Solana {i}").json()["seq"] for i in range(2)]
    app.post_news(title="something else")
    got = await _news_on_connect(app, "backlog=2&keywords=solana")
    assert [m["seq"] for m in got] == wanted


async def test_news_backlog_past_the_maximum_gets_a_coded_error_and_no_items(app):
    app.post_news(title="one item at least")
    got = await _news_on_connect(app, "backlog=101")
    assert [m["type"] for m in got] == ["error"] and got[0]["error"]["code"] == "INVALID_MESSAGE"
    assert "0 to 100" in got[0]["error"]["message"]


async def test_news_resume_takes_precedence_over_backlog(app):
    first = app.post_news(title="resume marker").json()["seq"]
    after = app.post_news(title="after the marker").json()["seq"]
    got = await _news_on_connect(app, f"since={first}&backlog=50")
    assert [m["seq"] for m in got] == [after]


async def test_news_without_backlog_sends_nothing_on_connect(app):
    app.post_news(title="not a backlog")
    assert await _news_on_connect(app, "") == []


@pytest.fixture(scope="module")
def live_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppProcess]:
    with UpstreamServer() as server:
        install_happy_routes(server)
        # A sentiment cadence longer than the test: a fresh value can only come from the change itself.
        env = {**live_env(server), "SENTIMENT_INTERVAL_S": "600"}
        with running_app(tmp_path_factory.mktemp("fresh-live"), **env) as proc:
            yield proc


def _has_fear_greed(message: dict) -> bool:
    return message["type"] == "sentiment_update" and message["data"]["fear_greed"]["value"] is not None


async def test_sentiment_update_follows_a_fear_greed_reading_without_waiting_for_the_cadence(live_app):
    async with websockets.connect(live_app.ws("/ws/sentiment")) as ws:
        update = await recv_until(ws, _has_fear_greed, timeout=10_000 * MS)
    assert update["data"]["fear_greed"]["value"] == 75


async def test_a_new_sentiment_client_gets_the_fetched_fear_greed_on_connect(live_app):
    async with websockets.connect(live_app.ws("/ws/sentiment")) as ws:
        await recv_until(ws, _has_fear_greed, timeout=10_000 * MS)
    await asyncio.sleep(200 * MS)
    async with websockets.connect(live_app.ws("/ws/sentiment")) as ws:
        first = json.loads(await asyncio.wait_for(ws.recv(), 5000 * MS))
    assert _has_fear_greed(first)


async def test_news_since_ahead_of_the_stream_gets_seq_ahead_then_live_news(app):
    newest = app.post_news(title="the newest item").json()["seq"]
    (latest,) = await _news_on_connect(app, "backlog=1")
    epoch = latest["epoch"]
    async with websockets.connect(app.ws(f"/ws/news?since={newest + 100}&epoch={epoch}")) as ws:
        error = await recv_json(ws)
        posted = app.post_news(title="after a position ahead").json()["seq"]
        item = await recv_until(ws, lambda m: m["type"] == "news")
    assert error["error"]["code"] == "SEQ_AHEAD" and f"newest seq is {newest}" in error["error"]["message"]
    assert item["seq"] == posted == newest + 1


@pytest.fixture(scope="module")
def quiet_status_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppProcess]:
    # One periodic system_status at start, none after it for the length of the test.
    with running_app(tmp_path_factory.mktemp("fresh-status"), STATUS_INTERVAL_S="600") as proc:
        yield proc


async def test_system_status_on_connect_is_built_then_not_the_last_periodic_one(quiet_status_app):
    app = quiet_status_app
    periodic = httpx.get(f"{app.http}/api/status", timeout=10).json()
    async with websockets.connect(app.ws("/ws/news")), websockets.connect(app.ws(STATUS_PATH)) as monitor:
        greeting = await recv_json(monitor)
    assert periodic["stats"]["connections"] == 0 and greeting["stats"]["connections"] == 2
    assert greeting["seq"] == periodic["seq"] and greeting["timestamp"] > periodic["timestamp"]
