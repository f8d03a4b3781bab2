"""The backplane on a real redis-server: confirmed before acknowledged, a bounded queue, a leader that steps down."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Iterator

import pytest

from core.bus import AlreadyPublished, Bus
from core.bus.redis_backplane import BackplaneRefused, BackplaneUnconfirmed, RedisBackplane
from core.bus.redis_wire import connect_redis
from core.protocol import PongMessage
from testbed.harness import MS
from testbed.services import RedisServer, needs_redis
from tests.tcp_proxy import TcpProxy

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


@contextlib.asynccontextmanager
async def _writing_leader(redis, prefix: str, **options) -> AsyncIterator[tuple]:
    """A backplane holding the lock as TOKEN, its write loop running; yields (bus, backplane, office, writer)."""
    office, bus = _Office(), Bus()
    backplane = RedisBackplane(redis, bus, process_id="test-process", current_token=lambda: office.token,
                               on_fenced=office.step_down, prefix=prefix, lock_key=f"{prefix}:leader",
                               publish_timeout_s=500 * MS, **options)
    bus.set_relay(backplane.relay, backplane.confirm)
    writer = asyncio.create_task(backplane.write_loop())
    try:
        yield bus, backplane, office, writer
    finally:
        writer.cancel()
        await asyncio.gather(writer, return_exceptions=True)


@pytest.fixture
async def leader(redis_server: RedisServer, request: pytest.FixtureRequest) -> AsyncIterator[tuple]:
    redis = connect_redis(redis_server.url)
    prefix = f"bp{abs(hash(request.node.name)) % 10**8}"
    await redis.set(f"{prefix}:leader", TOKEN)
    async with _writing_leader(redis, prefix, max_pending=3) as (bus, backplane, office, writer):
        yield bus, backplane, office, redis, writer
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


@pytest.fixture
async def proxied_leader(redis_server: RedisServer, request: pytest.FixtureRequest) -> AsyncIterator[tuple]:
    """A leader whose Redis replies pass a TcpProxy (socket timeout 300 ms); it settles through a direct client."""
    proxy = await TcpProxy("127.0.0.1", redis_server.port).start()
    redis, patient = connect_redis(proxy.url, socket_timeout_s=300 * MS), connect_redis(redis_server.url)
    prefix = f"px{abs(hash(request.node.name)) % 10**8}"
    await patient.set(f"{prefix}:leader", TOKEN)
    await redis.ping()  # connected before any delay: a first try goes out, only its answer is late
    async with _writing_leader(redis, prefix, patient_redis=patient) as (bus, backplane, office, _writer):
        yield bus, backplane, office, patient, proxy
    await proxy.stop()
    await asyncio.gather(redis.aclose(), patient.aclose())


async def _history(redis, backplane: RedisBackplane) -> list[int]:
    return [json.loads(raw)["s"] for raw in await redis.lrange(f"{backplane.prefix}:t:news:history", 0, -1)]


async def _lift_after(proxy: TcpProxy, seconds: float) -> None:
    await asyncio.sleep(seconds)
    proxy.reply_delay_s = 0.0


async def test_publish_whose_answer_was_late_is_confirmed_under_its_one_seq(proxied_leader):
    """The writer's retry after a socket timeout learns that its first try went out."""
    bus, backplane, office, redis, proxy = proxied_leader
    proxy.reply_delay_s, proxy.late_for = 400 * MS, b"EVALSHA"  # past the 300 ms socket timeout
    lift = asyncio.create_task(_lift_after(proxy, 350 * MS))
    envelope = await bus.publish_durable("news", _Msg(), lambda env: None, dedupe_key="https://a.example/1")
    await lift
    assert proxy.delayed > 0 and office.step_downs == []
    assert envelope.seq == 1 and await _history(redis, backplane) == [1]


async def test_publish_whose_answer_never_came_is_settled_as_published(proxied_leader):
    """Every reply late: the leader steps down, then settles from the dedupe key that it went out."""
    bus, backplane, office, redis, proxy = proxied_leader
    proxy.reply_delay_s = 5000 * MS
    envelope = await bus.publish_durable("news", _Msg(), lambda env: None, dedupe_key="https://a.example/2")
    assert office.step_downs and backplane.settled == 1
    assert envelope.seq == 1 and await _history(redis, backplane) == [1]
    assert await redis.get(f"{backplane.prefix}:leader") is None  # released: no late try can land now


async def test_publish_that_never_reached_redis_is_refused_after_settling(proxied_leader):
    bus, backplane, office, redis, proxy = proxied_leader
    proxy.drop_requests = True
    with pytest.raises(BackplaneRefused):
        await bus.publish_durable("news", _Msg(), lambda env: None, dedupe_key="https://a.example/3")
    assert office.step_downs and backplane.settled == 1
    assert await _history(redis, backplane) == [] and bus.last_seq("news") == 0


async def test_republishing_a_dedupe_key_answers_with_its_original_seq(leader):
    bus, _backplane, _office, _redis, _writer = leader
    first = await bus.publish_durable("news", _Msg(), lambda env: None, dedupe_key="https://a.example/4")
    with pytest.raises(AlreadyPublished) as caught:
        await bus.publish_durable("news", _Msg(), lambda env: None, dedupe_key="https://a.example/4")
    assert caught.value.seq == first.seq and bus.stamp("news", _Msg()).seq == first.seq + 1
