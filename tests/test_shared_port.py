"""REUSE_PORT=1: two app processes on one real redis-server listen on one port and both serve it."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import websockets

from testbed.harness import AppProcess, free_port, recv_until
from testbed.services import (
    RedisServer,
    metric,
    needs_redis,
    sockets_of,
    start_on_shared_port,
    wait_for,
    wait_for_async,
)

pytestmark = [pytest.mark.redis, needs_redis]

# The kernel hashes each connection to one listener: with 16 of them, all landing on the same one
# of two processes has a chance of 2**-15.
CLIENTS = 16


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[AppProcess]]:
    base: Path = tmp_path_factory.mktemp("shared-port")
    redis = RedisServer(base / "redis").start()
    env = {"REDIS_URL": redis.url, "REDIS_PREFIX": f"t{uuid.uuid4().hex[:8]}"}
    port, apps = free_port(), []
    try:
        for name in ("p0", "p1"):
            apps.append(start_on_shared_port(base, name, port, env))
        # Any scrape reaches one of the two; both count two processes once each has joined.
        wait_for(lambda: metric(apps[0], "hub_cluster_processes") == 2.0, 15)
        yield apps
    finally:
        for app in apps:
            app.stop()
        redis.stop()


@contextlib.asynccontextmanager
async def news_clients(app: AppProcess) -> AsyncIterator[list[websockets.ClientConnection]]:
    async with contextlib.AsyncExitStack() as stack:
        yield [await stack.enter_async_context(websockets.connect(app.ws("/ws/news"))) for _ in range(CLIENTS)]


def held_by_each(pair: list[AppProcess]) -> list[int]:
    return [sockets_of(app.proc.pid, app.port) for app in pair if app.proc is not None]


def all_held(pair: list[AppProcess]) -> list[int] | None:
    """Connections per process once the server side holds every client, else None."""
    held = held_by_each(pair)
    return held if sum(held) >= CLIENTS else None


def test_both_processes_listen_on_the_one_port(pair: list[AppProcess]) -> None:
    assert pair[0].port == pair[1].port
    assert all(sockets_of(app.proc.pid, app.port, "0A") == 1 for app in pair if app.proc is not None)


async def test_connections_to_the_one_port_are_served_by_both_processes(pair: list[AppProcess]) -> None:
    async with news_clients(pair[0]):
        held = await wait_for_async(lambda: all_held(pair), 10)
    assert all(count > 0 for count in held), held


async def test_news_posted_once_reaches_the_clients_of_both_processes(pair: list[AppProcess]) -> None:
    async with news_clients(pair[0]) as clients:
        held = await wait_for_async(lambda: all_held(pair), 10)
        reply = pair[0].post_news(title="one port, two processes")
        assert reply.status_code == 201, reply.text
        received = [await recv_until(ws, lambda m: m["type"] == "news") for ws in clients]
    assert all(count > 0 for count in held), held
    assert [m["data"]["title"] for m in received] == ["one port, two processes"] * CLIENTS
    assert {m["seq"] for m in received} == {reply.json()["seq"]}
