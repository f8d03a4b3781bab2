"""A socket session whose own code fails: the failure is logged with its socket, never swallowed.

The faults are injected by subclassing Session (nothing real fails on demand); the socket, bus and
registry are real, served by uvicorn on a free loopback port inside the test's event loop.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import AsyncIterator, Coroutine
from typing import Any

import pytest
import websockets
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket

from core.bus import Bus
from core.config import AccessSection, LimitsSection
from core.counters import RequestCounter
from testbed.harness import recv_json, uvicorn_in_this_loop
from ws.admission import ConnectionLimiter
from ws.routes import ENDPOINTS
from ws.session import Session, SocketRegistry
from ws.session_state import SessionState

SPECS = {spec.path: spec for spec in ENDPOINTS}


class _BrokenWriter(Session):
    def _write(self, text: str) -> Coroutine[Any, Any, None]:
        raise RuntimeError("writer bug")


class _BrokenSubscribeState(SessionState):
    def _subscribe(self, symbols: list[str], request_id: Any, ack: bool = True) -> None:
        raise KeyError("subscribe bug")


class _BrokenSubscribe(Session):
    state_class = _BrokenSubscribeState


@contextlib.asynccontextmanager
async def _serving(session_type: type[Session], path: str) -> AsyncIterator[str]:
    """Serve `path` with `session_type` sessions; yield the socket's URL."""
    registry = SocketRegistry(bus=Bus(), limits=LimitsSection(), access=AccessSection(), symbols=frozenset({"BTC"}),
                              counter=RequestCounter(), limiter=ConnectionLimiter(10, 10))

    async def endpoint(websocket: WebSocket) -> None:
        await session_type(websocket, SPECS[path], registry).serve()

    async with uvicorn_in_this_loop(Starlette(routes=[WebSocketRoute(path, endpoint)])) as port:
        yield f"ws://127.0.0.1:{port}{path}"


async def test_a_failed_writer_is_logged_with_its_socket_and_closed_with_1011(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.ERROR, logger="ws.session"):
        async with _serving(_BrokenWriter, "/ws/sentiment") as url, websockets.connect(url) as ws:
            await ws.send(json.dumps({"type": "ping", "id": 1}))  # its pong is the first frame written
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await recv_json(ws)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1011
    assert "ws /ws/sentiment from 127.0.0.1: writing to the socket failed" in caplog.text
    assert "writer bug" in caplog.text


async def test_a_failed_handler_answers_internal_error_and_keeps_the_socket(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.ERROR, logger="ws.session"):
        async with _serving(_BrokenSubscribe, "/ws/market_data") as url, websockets.connect(url) as ws:
            await ws.send(json.dumps({"action": "subscribe", "symbols": ["BTC"]}))
            error = await recv_json(ws)
            await ws.send(json.dumps({"type": "ping", "id": 7}))
            pong = await recv_json(ws)
    assert error["error"]["code"] == "INTERNAL_ERROR" and (pong["type"], pong["id"]) == ("pong", 7)
    assert "ws /ws/market_data from 127.0.0.1: handling a client message failed" in caplog.text
    assert "subscribe bug" in caplog.text
