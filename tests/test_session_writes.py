"""How a session writes: straight to a socket that keeps up, through a bounded drain for one that does not.

Real uvicorn on a free loopback port inside the test's event loop, real clients; envelopes are published
on the registry's own bus.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from typing import Any

import websockets
from pydantic import BaseModel
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket

from core.bus import Bus
from core.config import AccessSection, LimitsSection
from core.counters import RequestCounter
from core.endpoints import NEWS_PATH
from testbed.harness import MS, recv_json, uvicorn_in_this_loop
from ws.admission import ConnectionLimiter
from ws.routes import ENDPOINTS
from ws.session import Session, SocketRegistry

SPECS = {spec.path: spec for spec in ENDPOINTS}


class _Item(BaseModel):
    type: str = "news"
    seq: int = 0
    epoch: str = ""
    data: dict[str, Any] = {}


@contextlib.asynccontextmanager
async def _serving(**limits: Any) -> AsyncIterator[tuple[SocketRegistry, int]]:
    registry = SocketRegistry(bus=Bus(), limits=LimitsSection(**limits), access=AccessSection(),
                              symbols=frozenset({"BTC"}), counter=RequestCounter(),
                              limiter=ConnectionLimiter(10, 10))

    async def endpoint(websocket: WebSocket) -> None:
        await Session(websocket, SPECS[NEWS_PATH], registry).serve()

    async with uvicorn_in_this_loop(Starlette(routes=[WebSocketRoute(NEWS_PATH, endpoint)])) as port:
        yield registry, port


async def _until(predicate: Any, timeout: float = 10_000 * MS) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(10 * MS)


def _publish(registry: SocketRegistry, title: str, body: str = "") -> int:
    return registry.bus.publish("news", _Item(data={"title": title, "description": body}), match_text=title).seq


async def _stalled_socket(port: int) -> socket.socket:
    """Open /ws/news by hand and never read from it (without blocking the loop the server runs in)."""
    loop = asyncio.get_running_loop()
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect, so the window stays small
    sock.setblocking(False)
    await loop.sock_connect(sock, ("127.0.0.1", port))
    await loop.sock_sendall(sock, (
        f"GET {NEWS_PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
    await loop.sock_recv(sock, 1024)  # the 101 response
    return sock


async def test_a_client_that_keeps_up_gets_every_frame_in_order_without_a_drain_task() -> None:
    async with _serving() as (registry, port), websockets.connect(f"ws://127.0.0.1:{port}{NEWS_PATH}") as ws:
        await _until(lambda: len(registry.sessions) == 1)
        (session,) = registry.sessions
        seqs = [_publish(registry, f"item {i}") for i in range(50)]
        assert session._drain is None and len(session.outbox) == 0  # written during publish, nothing queued
        got = [(await recv_json(ws))["seq"] for _ in seqs]
    assert got == seqs and registry.stats.messages_sent == 50


async def test_a_stalled_reader_is_closed_as_slow_consumer_and_its_session_ends() -> None:
    async with (
        _serving(outbox_size=16) as (registry, port),
        websockets.connect(f"ws://127.0.0.1:{port}{NEWS_PATH}") as ws,
    ):
        stalled = await _stalled_socket(port)
        try:
            await _until(lambda: len(registry.sessions) == 2)
            received: list[int] = []

            async def read_all() -> None:
                while True:
                    received.append((await recv_json(ws, 20_000 * MS))["seq"])

            reader = asyncio.create_task(read_all())
            published: list[int] = []
            for batch in range(200):  # up to 1,600 items of 5 KB: more than the stalled socket's buffers hold
                published += [_publish(registry, f"flood {batch}-{i}", "x" * 5_000) for i in range(8)]
                await asyncio.sleep(5 * MS)  # fewer at once than OUTBOX_SIZE: the healthy reader is never behind
                if registry.stats.slow_consumer_closes:
                    break
            await _until(lambda: len(registry.sessions) == 1)  # the stalled session ended within its grace periods
            await _until(lambda: len(received) == len(published))
            reader.cancel()
        finally:
            stalled.close()
    assert registry.stats.slow_consumer_closes == 1
    assert received == published  # the healthy reader lost nothing and kept order
