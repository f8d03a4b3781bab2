"""Two app processes sharing one PostgreSQL (DATABASE_URL) and one Redis: persistence is shared."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import websockets

from testbed.harness import recv_until
from testbed.services import (
    RedisServer,
    leader_of,
    needs_postgres,
    needs_redis,
    run_cluster,
    wait_for,
)

pytestmark = [pytest.mark.redis, pytest.mark.postgres, needs_redis, needs_postgres]


@pytest.fixture(scope="module")
def redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


def _stored(app, title: str) -> list[dict]:
    items = httpx.get(f"{app.http}/api/news", params={"q": title}, timeout=10).json()["items"]
    return [item for item in items if item["title"] == title]


async def test_news_posted_on_a_follower_is_stored_once_and_visible_from_every_process(
    postgres, redis, tmp_path: Path
):
    with run_cluster(tmp_path, redis.url, 2, DATABASE_URL=postgres.url) as apps:
        leader = wait_for(lambda: leader_of(apps), 10)
        follower = next(app for app in apps if app is not leader)
        reply = follower.post_news(title="shared by postgres", url="https://pg.example/1")
        again = leader.post_news(title="shared by postgres", url="https://pg.example/1")
        seen = [_stored(app, "shared by postgres") for app in apps]
        async with websockets.connect(follower.ws("/api/monitoring/ws")) as ws:
            status = await recv_until(ws, lambda m: m["type"] == "system_status")
    assert reply.status_code == 201 and again.json()["duplicate"] is True
    assert [len(items) for items in seen] == [1, 1]
    assert seen[0][0]["seq"] == reply.json()["seq"]
    assert status["database"]["online"] is True


async def test_seq_and_epoch_continue_after_every_process_restarts(postgres, redis, tmp_path: Path):
    with run_cluster(tmp_path, redis.url, 2, DATABASE_URL=postgres.url) as apps:
        wait_for(lambda: leader_of(apps), 10)
        async with websockets.connect(apps[0].ws("/ws/news")) as ws:
            apps[1].post_news(title="before the restart")
            before = await recv_until(ws, lambda m: m["type"] == "news")
        prefix = apps[0].env["REDIS_PREFIX"]
    with run_cluster(
        tmp_path / "again", redis.url, 2, DATABASE_URL=postgres.url, REDIS_PREFIX=prefix
    ) as apps:
        wait_for(lambda: leader_of(apps), 10)
        after = apps[1].post_news(title="after the restart").json()
        async with websockets.connect(
            apps[0].ws(f"/ws/news?since={before['seq']}&epoch={before['epoch']}")
        ) as ws:
            resumed = await recv_until(ws, lambda m: m["type"] == "news")
    assert after["seq"] == before["seq"] + 1
    assert resumed["seq"] == after["seq"] and resumed["epoch"] == before["epoch"]
