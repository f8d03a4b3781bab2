"""A closed WebSocket connection is freed when it ends, not left for the garbage collector (#13).

Under churn, every closed socket that sits in a reference cycle waits for a collection, and the
collector frees them all at once while the event loop stands still. The server runs in this
process so that `gc.garbage` shows what a closed connection leaves behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
from collections.abc import AsyncIterator
from pathlib import Path

import websockets

from app import _server, create_app
from core.config import Settings
from tests.harness import free_port


@contextlib.asynccontextmanager
async def _serving(tmp_path: Path) -> AsyncIterator[int]:
    port = free_port()
    settings = Settings(host="127.0.0.1", port=port, data_dir=tmp_path, data_mode="demo", enable_ui=False,
                        enable_inference=False, enable_sources=False, log_file=None, gc_freeze=False)
    server = _server(create_app(settings), settings)
    serving = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.05)
    try:
        yield port
    finally:
        server.should_exit = True
        await serving


async def _visit(port: int, path: str) -> None:
    async with websockets.connect(f"ws://127.0.0.1:{port}{path}") as socket:
        if path == "/ws/market_data":
            await socket.send(json.dumps({"action": "subscribe", "symbols": ["BTC", "ETH"]}))
        await asyncio.sleep(0.2)  # served for a moment: greeted, subscribed, listening


def _garbage_types() -> set[str]:
    """Collect with DEBUG_SAVEALL and return the type names of what was unreachable."""
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        gc.collect()
        return {f"{type(o).__module__}.{type(o).__qualname__}" for o in gc.garbage}
    finally:
        gc.set_debug(0)
        gc.garbage.clear()


async def test_closed_connections_leave_no_session_or_server_protocol_in_a_reference_cycle(tmp_path: Path) -> None:
    async with _serving(tmp_path) as port:
        await asyncio.gather(*(_visit(port, "/ws/news") for _ in range(3)))  # warm: first-use caches
        await asyncio.sleep(0.3)
        gc.collect()
        gc.garbage.clear()
        await asyncio.gather(*(_visit(port, path) for path in ("/ws/news", "/ws/market_data") for _ in range(5)))
        await asyncio.sleep(0.5)  # the server's side of each close runs after the client's
        left = _garbage_types()
    server_side = {name for name in left if name.startswith(("ws.", "uvicorn.", "starlette.", "websockets.server"))}
    assert not server_side
