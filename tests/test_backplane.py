"""The backplane on a real redis-server: confirmed before acknowledged, a bounded queue, a leader that steps down."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import pytest

from core.bus import Bus
from core.protocol import PongMessage
from desk.backplane import BackplaneRefused, BackplaneUnconfirmed, RedisBackplane
from desk.cluster import connect_redis
from tests.harness import MS
from tests.services import RedisServer, needs_redis

pytestmark = [pytest.mark.redis, needs_redis]

TOKEN = "1:test-process:abcd"


class _Msg(PongMessage):
    seq: int | None = None
    epoch: str | None = None


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


class _Office:
    """The leader's side as the backplane sees it: a token, and a record of every step-down."""

    def __init__(self) -> None:
        self.token: str | None = TOKEN
        self.step_downs: list[str] = []

    async def step_down(self, reason: str) -> None:
        self.step_downs.append(reason)
        self.token = None


@pytest.fixture
async def leader(redis_server: RedisServer, request: pytest.FixtureRequest) -> AsyncIterator[tuple]:
    redis = connect_redis(redis_server.url)
    prefix = f"bp{abs(hash(request.node.name)) % 10**8}"
    await redis.set(f"{prefix}:leader", TOKEN)
    office, bus = _Office(), Bus()
    backplane = RedisBackplane(redis, bus, process_id="test-process", current_token=lambda: office.token,
                               on_fenced=office.step_down, prefix=prefix, lock_key=f"{prefix}:leader",
                               max_pending=3, publish_timeout_s=500 * MS)
    bus.set_relay(backplane.relay, backplane.confirm)
    writer = asyncio.create_task(backplane.write_loop())
    yield bus, backplane, office, redis, writer
    writer.cancel()
    await asyncio.gather(writer, return_exceptions=True)
    await redis.aclose()


async def test_confirmed_news_is_in_redis_before_it_reaches_a_socket(leader):
    bus, backplane, _office, redis, _writer = leader
    order: list[str] = []
    bus.add_listener("news", lambda env: order.append("socket"))

    def commit(envelope) -> None:
        order.append("commit")

    envelope = await bus.publish_durable("news", _Msg(), commit)
    assert await redis.hget(f"{backplane.prefix}:t:news:meta", "seq") == str(envelope.seq).encode()
    assert order == ["commit", "socket"]


async def test_pending_queue_is_bounded_and_refuses_past_it(leader):
    bus, backplane, _office, _redis, writer = leader
    writer.cancel()  # Redis never answers: everything published stays pending
    await asyncio.gather(writer, return_exceptions=True)
    for _ in range(backplane.max_pending + 2):
        bus.publish("market", _Msg())
    with pytest.raises(BackplaneRefused):
        await bus.publish_durable("news", _Msg(), lambda env: None)
    assert backplane.pending == backplane.max_pending and backplane.refused == 3
    assert bus.stamp("news", _Msg()).seq == 1  # the refused news seq was given back


async def test_leader_that_cannot_publish_steps_down_and_nothing_is_acknowledged(leader):
    bus, backplane, office, redis, _writer = leader
    await redis.set(f"{backplane.prefix}:t:news:meta", "not a hash")  # every publish script now fails
    with pytest.raises(BackplaneUnconfirmed):
        await bus.publish_durable("news", _Msg(), lambda env: None)
    assert office.step_downs and "cannot publish" in office.step_downs[0]
    assert backplane.pending == 0 and bus.last_seq("news") == 0
