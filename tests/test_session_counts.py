"""The connection gauge and the ended-sessions count (the GC pacer's turnover) count accepted sockets only."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import AsyncIterator

import pytest
import websockets
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket

from core.bus import Bus
from core.config import AccessSection, LimitsSection
from core.counters import RequestCounter
from core.endpoints import NEWS_PATH
from testbed.harness import MS, uvicorn_in_this_loop
from ws.admission import ConnectionLimiter
from ws.routes import ENDPOINTS
from ws.session import Session, SocketRegistry

NEWS_SPEC = next(spec for spec in ENDPOINTS if spec.path == NEWS_PATH)
HANDSHAKE = (
    "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)


@contextlib.asynccontextmanager
async def _serving(client_gone: asyncio.Event) -> AsyncIterator[tuple[SocketRegistry, int]]:
    registry = SocketRegistry(bus=Bus(), limits=LimitsSection(), access=AccessSection(), symbols=frozenset({"BTC"}),
                              counter=RequestCounter(), limiter=ConnectionLimiter(10, 10))

    async def endpoint(websocket: WebSocket) -> None:
        if websocket.query_params.get("late"):
            await client_gone.wait()  # the client hangs up before the server accepts
            await asyncio.sleep(100 * MS)  # and the server has seen it go
        await Session(websocket, NEWS_SPEC, registry).serve()

    async with uvicorn_in_this_loop(Starlette(routes=[WebSocketRoute(NEWS_PATH, endpoint)])) as port:
        yield registry, port


async def test_a_client_gone_before_its_accept_is_neither_counted_nor_ended(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="ws.session")
    client_gone = asyncio.Event()
    async with _serving(client_gone) as (registry, port):
        async with websockets.connect(f"ws://127.0.0.1:{port}{NEWS_PATH}"):
            pass  # one accepted session, ended: the gauge has an entry for the path, back at 0
        async with asyncio.timeout(5):
            while registry.stats.sessions_ended < 1:
                await asyncio.sleep(10 * MS)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0")
        writer.write(HANDSHAKE.format(path=f"{NEWS_PATH}?late=1").encode())
        await writer.drain()
        await asyncio.sleep(100 * MS)
        writer.close()  # SO_LINGER 0: a reset, as from a client that went away
        client_gone.set()
        await asyncio.sleep(500 * MS)
        assert registry.stats.connections[NEWS_PATH] == 0
        assert registry.stats.sessions_ended == 1
    assert "gone before accept" in caplog.text and "session failed" not in caplog.text  # no 1011, no trace
