"""Several app processes on one real redis-server: delivery, resume, leader death, Redis restart."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import websockets

from testbed.harness import MS, AppProcess, recv_until
from testbed.services import (
    RedisServer,
    leader_of,
    metric,
    needs_redis,
    run_cluster,
    start_app,
    wait_for,
    wait_for_async,
)

pytestmark = [pytest.mark.redis, needs_redis]

TAKEOVER_LIMIT_S = 15.0  # the promise


@pytest.fixture(scope="module")
def redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def trio(redis: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[AppProcess]]:
    """Three app processes sharing one Redis; one of them is elected leader."""
    with run_cluster(tmp_path_factory.mktemp("trio"), redis.url, 3) as apps:
        wait_for(lambda: leader_of(apps), 10)
        yield apps


async def _news(ws) -> dict:
    return await recv_until(ws, lambda m: m["type"] == "news")


def _redis_entry(status: dict) -> dict:
    return next(s for s in status["data_sources"]["sources"] if s["name"] == "redis")


def test_exactly_one_process_leads(trio):
    assert [metric(app, "hub_leader") for app in trio].count(1.0) == 1
    assert all(metric(app, "hub_backplane_up") == 1.0 for app in trio)
    assert wait_for(lambda: all(metric(app, "hub_cluster_processes") == 3.0 for app in trio), 5)


async def test_news_posted_on_any_process_reaches_every_process_with_one_seq(trio):
    sockets = [await websockets.connect(app.ws("/ws/news")) for app in trio]
    try:
        replies = [app.post_news(title=f"from process {i}") for i, app in enumerate(trio)]
        assert [r.status_code for r in replies] == [201, 201, 201]
        seen = [[await _news(ws) for _ in trio] for ws in sockets]
    finally:
        for ws in sockets:
            await ws.close()
    orders = [[(m["seq"], m["epoch"], m["data"]["title"]) for m in msgs] for msgs in seen]
    assert orders[0] == orders[1] == orders[2]
    assert sorted(r.json()["seq"] for r in replies) == [seq for seq, _, _ in orders[0]]
    assert [seq for seq, _, _ in orders[0]] == list(range(orders[0][0][0], orders[0][0][0] + 3))


async def test_prices_on_every_process_carry_the_leaders_seq(trio):
    sockets = [await websockets.connect(app.ws("/ws/market_data?symbols=BTC")) for app in trio]
    try:
        updates = [
            [await recv_until(ws, lambda m: m["type"] == "price_update") for _ in range(4)] for ws in sockets
        ]
    finally:
        for ws in sockets:
            await ws.close()
    by_seq = {}
    for msgs in updates:
        for m in msgs:
            by_seq.setdefault(m["seq"], set()).add(m["data"]["price"])
    assert all(len(prices) == 1 for prices in by_seq.values())  # one seq, one price, on every process
    assert len({m["epoch"] for msgs in updates for m in msgs}) == 1


async def test_resume_with_since_on_another_process(trio):
    first, second, third = trio
    async with websockets.connect(first.ws("/ws/news")) as ws:
        assert first.post_news(title="before").status_code == 201
        last = await _news(ws)
    posted = [second.post_news(title=f"while away {i}").json()["seq"] for i in range(3)]
    async with websockets.connect(third.ws(f"/ws/news?since={last['seq']}&epoch={last['epoch']}")) as ws:
        resumed = [await _news(ws) for _ in posted]
    assert [m["seq"] for m in resumed] == posted == list(range(last["seq"] + 1, last["seq"] + 4))
    assert [m["data"]["title"] for m in resumed] == [f"while away {i}" for i in range(3)]


async def test_leader_sigkill_another_takes_over_within_15s_and_seq_continues(redis, tmp_path: Path):
    with run_cluster(tmp_path, redis.url, 2) as apps:
        leader = wait_for(lambda: leader_of(apps), 10)
        survivor = next(app for app in apps if app is not leader)
        async with websockets.connect(survivor.ws("/ws/market_data?symbols=ETH")) as ws:
            before = await recv_until(ws, lambda m: m["type"] == "price_update")
            leader.stop(signal.SIGKILL)
            killed_at = time.monotonic()
            await wait_for_async(lambda: metric(survivor, "hub_leader") == 1.0, TAKEOVER_LIMIT_S)
            after = await recv_until(
                ws, lambda m: m["type"] == "price_update" and m["seq"] > before["seq"] + 1, TAKEOVER_LIMIT_S
            )
            took = time.monotonic() - killed_at
        news = survivor.post_news(title="after takeover")
    assert took < TAKEOVER_LIMIT_S
    assert after["epoch"] == before["epoch"]  # the new leader continued the same history
    assert news.status_code == 201 and news.json()["seq"] is not None


async def test_sigterm_of_the_leader_hands_over_at_once(redis, tmp_path: Path):
    with run_cluster(tmp_path, redis.url, 2) as apps:
        leader = wait_for(lambda: leader_of(apps), 10)
        survivor = next(app for app in apps if app is not leader)
        leader.stop(signal.SIGTERM)
        stopped_at = time.monotonic()
        wait_for(lambda: metric(survivor, "hub_leader") == 1.0, TAKEOVER_LIMIT_S)
        took = time.monotonic() - stopped_at
    assert took < 3.0  # the lock was released, not left to expire
    assert "stepping down" in leader.log() and "resigned" in leader.log()


async def test_redis_restart_processes_keep_serving_reconnect_and_say_so(tmp_path: Path):
    redis = RedisServer(tmp_path / "redis").start()
    try:
        with run_cluster(tmp_path, redis.url, 2) as apps:
            wait_for(lambda: leader_of(apps), 10)
            async with (
                websockets.connect(apps[1].ws("/api/monitoring/ws")) as status_ws,
                websockets.connect(apps[0].ws("/ws/news")) as news_ws,
            ):
                up = await recv_until(status_ws, lambda m: m["type"] == "system_status")
                redis.kill()
                down = await recv_until(
                    status_ws,
                    lambda m: m["type"] == "system_status" and _redis_entry(m)["status"] == "inactive",
                    10_000 * MS,
                )
                redis.start()  # same port, empty: every process must reconnect and resubscribe
                back = await recv_until(
                    status_ws,
                    lambda m: m["type"] == "system_status" and _redis_entry(m)["status"] == "active",
                    20_000 * MS,
                )
                await wait_for_async(lambda: leader_of(apps), 15)
                reply = apps[1].post_news(title="after the restart")
                item = await _news(news_ws)
                reconnects = [metric(app, "hub_backplane_reconnects_total") for app in apps]
    finally:
        redis.stop()
    assert _redis_entry(up)["status"] == "active"
    assert "unreachable" in _redis_entry(down)["reason"]
    assert _redis_entry(back)["status"] == "active"
    assert reply.status_code == 201 and item["data"]["title"] == "after the restart"
    assert all(r is not None and r >= 1 for r in reconnects)


async def test_post_news_on_a_follower_without_a_leader_is_503(tmp_path: Path):
    redis = RedisServer(tmp_path / "redis").start()
    try:
        with run_cluster(tmp_path, redis.url, 1) as (app,):
            wait_for(lambda: metric(app, "hub_leader") == 1.0, 10)
            redis.kill()
            wait_for(lambda: metric(app, "hub_leader") == 0.0, 10)
            started = time.monotonic()
            reply = app.post_news(title="nobody leads")
            took = time.monotonic() - started
    finally:
        redis.stop()
    assert reply.status_code == 503 and reply.headers["retry-after"]
    assert took < 15


async def test_a_process_that_joins_late_serves_the_snapshot_and_history(redis, tmp_path: Path):
    with run_cluster(tmp_path, redis.url, 1) as (first,):
        wait_for(lambda: metric(first, "hub_leader") == 1.0, 10)
        posted = first.post_news(title="before the late one").json()["seq"]
        late = start_app(tmp_path, "late", first.env)
        try:
            # /health answers before the backplane has caught up with Redis; `get_all` answers with
            # the snapshot this process holds, so wait until it holds the cluster's.
            wait_for(lambda: metric(late, "hub_backplane_up") == 1.0, 10)
            # max_queue=None: 19 unread snapshots must not pause the client and stall its closing handshake.
            async with websockets.connect(late.ws("/ws/market_data"), max_queue=None) as ws:
                await ws.send(json.dumps({"action": "get_all"}))
                price = await recv_until(ws, lambda m: m["type"] == "price_update")
            async with websockets.connect(late.ws(f"/ws/news?since={posted - 1}")) as ws:
                news = await _news(ws)
        finally:
            late.stop()
    assert price["seq"] > 0 and price["source"] == "simulator"
    assert news["seq"] == posted and news["data"]["title"] == "before the late one"


def _listed(app: AppProcess, url: str) -> list[dict]:
    items = httpx.get(f"{app.http}/api/news", params={"limit": 500}, timeout=10).json()["items"]
    return [item for item in items if item["url"] == url]


async def test_repost_to_the_survivor_after_the_leader_died_is_a_duplicate_with_its_seq(redis, tmp_path: Path):
    """Each process keeps its own SQLite: the survivor stored what it received, under its seq."""
    with run_cluster(tmp_path, redis.url, 2) as apps:
        leader = wait_for(lambda: leader_of(apps), 10)
        survivor = next(app for app in apps if app is not leader)
        first = leader.post_news(title="acknowledged, then the leader died", url="https://kill.example/1")
        leader.stop(signal.SIGKILL)
        listed = await wait_for_async(lambda: _listed(survivor, "https://kill.example/1"), 10)
        await wait_for_async(lambda: metric(survivor, "hub_leader") == 1.0, TAKEOVER_LIMIT_S)
        again = survivor.post_news(title="acknowledged, then the leader died", url="https://kill.example/1")
    assert first.status_code == 201 and first.json()["duplicate"] is False
    assert again.status_code == 201 and again.json() == {**again.json(), "duplicate": True, "seq": first.json()["seq"]}
    assert listed[0]["seq"] == first.json()["seq"]
