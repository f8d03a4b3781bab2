"""A process keeps the news it receives: dedupe knows it at once, its database soon after."""

from __future__ import annotations

import asyncio
import socket
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from core.bus import Bus
from core.bus.redis_wire import connect_redis
from core.records import NewsItem
from core.store import Store
from desk.news import news_message
from desk.news_relay import ClusterNewsDesk, LeaderUnavailable
from testbed.harness import MS
from testbed.services import RedisServer, needs_redis
from tests.tcp_proxy import TcpProxy


def _item(i: int) -> NewsItem:
    return NewsItem(title=f"item {i}", description="d", url=f"https://relay.example/{i}", source="Wire",
                    published_at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC), sentiment="positive",
                    sentiment_score=0.5, sentiment_model="m")


async def test_a_received_item_is_a_duplicate_with_its_seq_and_is_stored(tmp_path: Path):
    store = Store(data_dir=tmp_path)
    desk = ClusterNewsDesk(Bus(journal=store), store, scorer=None)
    desk.attach(None, lambda: True)  # this process leads now; it received seq 7 from the one before
    keeping = asyncio.create_task(desk.keep_loop())
    try:
        received = replace(Bus().stamp("news", news_message(_item(1))), seq=7)
        desk.keep_received(received)
        [again] = await desk.ingest([_item(1)])
        for _ in range(100):
            if store.stored_news_seqs([_item(1).url]):
                break
            await asyncio.sleep(20 * MS)
    finally:
        keeping.cancel()
        await asyncio.gather(keeping, return_exceptions=True)
    stored = store.recent_news()
    store.close()
    assert again.duplicate is True and again.seq == 7
    assert [(n["url"], n["seq"], n["sentiment_model"]) for n in stored] == [(_item(1).url, 7, "m")]


@needs_redis
async def test_a_push_whose_answer_is_late_waits_for_the_leader_instead_of_answering_503(tmp_path: Path):
    redis_server = RedisServer(tmp_path / "redis").start()
    proxy = await TcpProxy("127.0.0.1", redis_server.port).start()
    direct, slow = connect_redis(redis_server.url), connect_redis(proxy.url, socket_timeout_s=0.3)
    stores = [Store(data_dir=tmp_path / name) for name in ("leader", "follower")]
    leader, follower = (ClusterNewsDesk(Bus(journal=store), store, scorer=None) for store in stores)
    leader.attach(direct, lambda: True, prefix="late")
    follower.attach(slow, lambda: False, prefix="late", pickup_timeout_s=3.0, reply_timeout_s=10.0)
    serving = asyncio.create_task(leader.serve_forwarded())
    try:
        # Redis stores the push; only its answer (and its retry's) comes past the 0.3 s socket timeout.
        proxy.reply_delay_s, proxy.late_for = 600 * MS, b"RPUSH"
        [result] = await follower.ingest([_item(2)])
        proxy.reply_delay_s = 0.0
    finally:
        serving.cancel()
        await asyncio.gather(serving, return_exceptions=True)
        for client in (direct, slow):
            await client.aclose()
        await proxy.stop()
        redis_server.stop()
        for store in stores:
            store.close()
    assert proxy.delayed > 0  # the push's answer really was late
    assert (result.seq, result.duplicate) == (1, False)


async def test_a_follower_that_cannot_reach_redis_answers_at_once_and_says_a_retry_is_safe(tmp_path: Path):
    store = Store(data_dir=tmp_path)
    follower = ClusterNewsDesk(Bus(journal=store), store, scorer=None)
    with socket.socket() as closed:  # a port with nothing listening: the connection is refused
        closed.bind(("127.0.0.1", 0))
        unreachable = connect_redis(f"redis://127.0.0.1:{closed.getsockname()[1]}/0")
    follower.attach(unreachable, lambda: False, prefix="gone")
    try:
        with pytest.raises(LeaderUnavailable, match="retry with the same URL"):
            await asyncio.wait_for(follower.ingest([_item(3)]), 5)
    finally:
        await unreachable.aclose()
        store.close()
